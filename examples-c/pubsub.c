/*
 * pubsub.c - a subscriber in an event loop: SUBSCRIBE and PSUBSCRIBE on a conn of its
 * own, messages published through the pool, and resubscription after the server drops
 * the subscriber's conn.
 *
 *   ./pubsub [URL | HOST:PORT]
 *
 *   1. makes a subscriber on the pool (its own conn, dialed with the pool's set-up),
 *      subscribes to "news" and to the pattern "sport.*";
 *   2. publishes three messages through ordinary pooled conns and receives them in a
 *      poll() loop on pool_subscriber_fd, draining with timeout 0 each time it is
 *      readable;
 *   3. kills the subscriber's conn from another client (CLIENT KILL TYPE pubsub): the
 *      next receive sees the loss, dials a new conn, subscribes it to both again and
 *      returns POOL_MSG_RESUBSCRIBED first, so the program knows messages may have
 *      been missed; one more message is then received as before.
 * Exits 0 only if every check passed. The tests run it against a throwaway
 * redis-server (tests/c_examples.rs).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redispool.h"

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "check failed: %s\n", what);
        failures++;
    }
}

/* A command on a pooled conn, given back at once; its integer reply, or -1. */
static long long command(pool_t *pool, int argc, const char **argv)
{
    pool_conn_t *conn = NULL;
    pool_error_t err;
    if (pool_get(pool, &conn, &err) != POOL_OK) {
        fprintf(stderr, "pool_get: %s\n", err.message);
        return -1;
    }
    pool_reply_t *reply = NULL;
    long long n = -1;
    if (pool_conn_command(conn, argc, argv, NULL, &reply, &err) == POOL_OK &&
        reply->type == POOL_REPLY_INTEGER)
        n = reply->integer;
    pool_reply_free(reply);
    pool_put(pool, conn);
    return n;
}

static const char *kind_name(int32_t kind)
{
    switch (kind) {
    case POOL_MSG_MESSAGE: return "message";
    case POOL_MSG_PMESSAGE: return "pmessage";
    case POOL_MSG_SUBSCRIBE: return "subscribe";
    case POOL_MSG_PSUBSCRIBE: return "psubscribe";
    case POOL_MSG_RESUBSCRIBED: return "resubscribed";
    default: return "other";
    }
}

/* Receives in a poll() loop until `want` messages (POOL_MSG_MESSAGE or _PMESSAGE) came;
   prints every message and event. */
static void receive_loop(pool_subscriber_t *sub, int want)
{
    struct pollfd pfd = {.fd = pool_subscriber_fd(sub), .events = POLLIN};
    int messages = 0;
    for (int rounds = 0; rounds < 100 && messages < want; rounds++) {
        if (poll(&pfd, 1, 5000) != 1) {
            check(0, "the subscriber's fd became readable within 5 s");
            break;
        }
        pool_message_t *m = NULL;
        pool_error_t err;
        pool_status_t st;
        /* Readable: take everything there is without waiting. */
        while ((st = pool_subscriber_receive(sub, 0, &m, &err)) == POOL_OK) {
            printf("%s", kind_name(m->kind));
            if (m->pattern)
                printf(" pattern=%s", m->pattern);
            if (m->channel)
                printf(" channel=%s", m->channel);
            if (m->kind == POOL_MSG_MESSAGE || m->kind == POOL_MSG_PMESSAGE) {
                printf(" payload=%s", m->payload);
                messages++;
            }
            if (m->kind == POOL_MSG_RESUBSCRIBED)
                printf(" count=%lld why=\"%s\"", (long long)m->count, m->payload);
            printf("\n");
            pool_message_free(m);
        }
        check(st == POOL_ERR_TIMEOUT, "receive ends with POOL_ERR_TIMEOUT when drained");
        if (st != POOL_ERR_TIMEOUT)
            fprintf(stderr, "receive: %s\n", err.message);
    }
    check(messages == want, "every message published was received");
}

int main(int argc, char **argv)
{
    const char *arg = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
    char url[1024];
    snprintf(url, sizeof url, "%s%s%spool_size=2", strstr(arg, "://") ? "" : "redis://", arg,
             strchr(arg, '?') ? "&" : "?");

    pool_t *pool = NULL;
    pool_error_t err;
    if (pool_new_url(url, &pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_new_url: %s (%s)\n", err.message, pool_status_str(err.code));
        return EXIT_FAILURE;
    }
    pool_subscriber_t *sub = NULL;
    if (pool_subscriber_new(pool, &sub, &err) != POOL_OK) {
        fprintf(stderr, "pool_subscriber_new: %s (%s)\n", err.message,
                pool_status_str(err.code));
        pool_free(pool);
        return EXIT_FAILURE;
    }

    const char *channels[] = {"news"};
    const char *patterns[] = {"sport.*"};
    check(pool_subscriber_subscribe(sub, 1, channels, NULL, &err) == POOL_OK, "subscribe");
    check(pool_subscriber_psubscribe(sub, 1, patterns, NULL, &err) == POOL_OK, "psubscribe");
    /* Confirmed before anything is published: a PUBLISH before that could be missed. */
    pool_message_t *m = NULL;
    for (int i = 0; i < 2; i++) {
        check(pool_subscriber_receive(sub, 5000, &m, &err) == POOL_OK, "confirmation");
        pool_message_free(m);
    }

    const char *p1[] = {"PUBLISH", "news", "hello"};
    const char *p2[] = {"PUBLISH", "sport.ski", "fast"};
    const char *p3[] = {"PUBLISH", "news", "bye"};
    check(command(pool, 3, p1) == 1, "one subscriber got news");
    check(command(pool, 3, p2) == 1, "one subscriber got sport.ski");
    check(command(pool, 3, p3) == 1, "one subscriber got news again");
    receive_loop(sub, 3);

    /* The server drops the subscriber's conn: the next receive resubscribes. */
    const char *kill[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
    check(command(pool, 4, kill) == 1, "the subscriber's conn was killed");
    /* Wait for the resubscription (the RESUBSCRIBED event and both confirmations)
       before publishing: the new conn's subscriptions must be in place. */
    int resubscribed = 0, confirmations = 0;
    for (int i = 0; i < 10 && confirmations < 2; i++) {
        if (pool_subscriber_receive(sub, 5000, &m, &err) != POOL_OK) {
            fprintf(stderr, "receive: %s\n", err.message);
            break;
        }
        printf("%s\n", kind_name(m->kind));
        resubscribed += m->kind == POOL_MSG_RESUBSCRIBED;
        confirmations += m->kind == POOL_MSG_SUBSCRIBE || m->kind == POOL_MSG_PSUBSCRIBE;
        pool_message_free(m);
    }
    check(resubscribed == 1, "POOL_MSG_RESUBSCRIBED came once");
    const char *p4[] = {"PUBLISH", "news", "again"};
    check(command(pool, 3, p4) == 1, "the new conn got news");
    receive_loop(sub, 1);

    printf("pubsub: resubscribes=%llu\n",
           (unsigned long long)pool_subscriber_resubscribes(sub));
    pool_subscriber_free(sub);
    pool_free(pool);
    if (failures == 0)
        printf("OK\n");
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
