/*
 * transaction.c - MULTI/EXEC transactions on a sticky pool shared by threads.
 *
 *   ./transaction [URL | HOST:PORT] [THREADS] [TRANSACTIONS_PER_THREAD]
 *
 * A transaction must run on one connection from MULTI to EXEC. A sticky pool
 * (go-redis's StickyConnPool, what Client.Conn() and TxPipeline use) borrows
 * one connection from its parent pool on the first pool_get and hands that same
 * connection to every later pool_get; while one thread holds it, the others wait
 * their turn (in arrival order, bounded by the pool timeout). Each thread here
 * runs MULTI, INCR, INCR, EXEC and checks that its two increments came out
 * consecutive: no other command ran in between.
 *
 * Closing the sticky pool gives its connection back to the parent.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redispool.h"

static pool_t *sticky;
static int per_thread = 100;

/* Runs one command; returns the reply or NULL (error printed). */
static pool_reply_t *command(pool_conn_t *conn, int argc, const char *const *argv)
{
    pool_reply_t *reply = NULL;
    pool_error_t err;
    if (pool_conn_command(conn, argc, argv, NULL, &reply, &err) != POOL_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], err.message);
        return NULL;
    }
    if (reply->type == POOL_REPLY_ERROR) {
        fprintf(stderr, "%s: %s\n", argv[0], reply->str);
        pool_reply_free(reply);
        return NULL;
    }
    return reply;
}

/* MULTI, INCR, INCR, EXEC on the sticky conn. Returns 0 when both increments are adjacent. */
static int transaction(pool_conn_t *conn)
{
    static const char *const multi[] = {"MULTI"};
    static const char *const incr[] = {"INCR", "tx:counter"};
    static const char *const exec[] = {"EXEC"};
    pool_reply_t *r = command(conn, 1, multi);
    if (r == NULL)
        return -1;
    pool_reply_free(r);
    for (int i = 0; i < 2; i++) {
        r = command(conn, 2, incr); /* +QUEUED */
        if (r == NULL)
            return -1;
        pool_reply_free(r);
    }
    r = command(conn, 1, exec);
    if (r == NULL)
        return -1;
    int ok = r->type == POOL_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == POOL_REPLY_INTEGER &&
             r->element[1]->integer == r->element[0]->integer + 1;
    if (!ok)
        fprintf(stderr, "EXEC: increments were not adjacent\n");
    pool_reply_free(r);
    return ok ? 0 : -1;
}

static void *worker(void *arg)
{
    uint64_t *conn_id = arg;
    for (int i = 0; i < per_thread; i++) {
        pool_conn_t *conn = NULL;
        pool_error_t err;
        /* The first get borrows from the parent; later ones wait for the same conn. */
        if (pool_get(sticky, &conn, &err) != POOL_OK) {
            fprintf(stderr, "pool_get(sticky): %s\n", err.message);
            return (void *)1;
        }
        *conn_id = pool_conn_id(conn);
        int rc = transaction(conn);
        if (rc != 0) {
            /* The conn may be mid-transaction: mark the sticky pool bad. */
            pool_remove(sticky, conn, "transaction failed");
            return (void *)1;
        }
        pool_put(sticky, conn);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *arg = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    per_thread = argc > 3 ? atoi(argv[3]) : 100;
    if (threads < 1 || threads > 64 || per_thread < 1) {
        fprintf(stderr, "usage: %s [URL] [THREADS 1..64] [TRANSACTIONS_PER_THREAD]\n", argv[0]);
        return 2;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s%s", strstr(arg, "://") ? "" : "redis://", arg);

    pool_t *parent = NULL;
    pool_error_t err;
    if (pool_new_url(url, &parent, &err) != POOL_OK) {
        fprintf(stderr, "pool_new_url: %s\n", err.message);
        return EXIT_FAILURE;
    }
    if (pool_sticky_new(parent, &sticky) != POOL_OK) {
        fprintf(stderr, "pool_sticky_new failed\n");
        pool_free(parent);
        return EXIT_FAILURE;
    }

    /* Start from zero. */
    pool_conn_t *conn = NULL;
    if (pool_get(parent, &conn, &err) != POOL_OK) {
        fprintf(stderr, "pool_get: %s\n", err.message);
        return EXIT_FAILURE;
    }
    static const char *const del[] = {"DEL", "tx:counter"};
    pool_reply_free(command(conn, 2, del));
    pool_put(parent, conn);

    pthread_t tid[64];
    uint64_t ids[64] = {0};
    for (int t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, worker, &ids[t]);
    int failed = 0;
    for (int t = 0; t < threads; t++) {
        void *rv;
        pthread_join(tid[t], &rv);
        failed |= rv != NULL;
        failed |= ids[t] != ids[0];
    }

    /* The sticky pool holds one conn, borrowed from the parent. */
    printf("threads=%d transactions=%d sticky conn id=%" PRIu64 " parent conns=%d\n", threads,
           threads * per_thread, ids[0], pool_len(parent));

    static const char *const get[] = {"GET", "tx:counter"};
    if (pool_get(parent, &conn, &err) != POOL_OK) {
        fprintf(stderr, "pool_get: %s\n", err.message);
        return EXIT_FAILURE;
    }
    pool_reply_t *r = command(conn, 2, get);
    long long counter = r != NULL && r->str != NULL ? atoll(r->str) : -1;
    pool_reply_free(r);
    pool_put(parent, conn);
    printf("counter=%lld (expected %d)\n", counter, 2 * threads * per_thread);
    failed |= counter != 2LL * threads * per_thread;

    /* Closing the sticky pool puts its conn back into the parent's idle list. */
    int idle_before = pool_idle_len(parent);
    pool_close(sticky);
    pool_free(sticky);
    printf("parent idle conns: %d before closing the sticky pool, %d after\n", idle_before,
           pool_idle_len(parent));
    failed |= pool_idle_len(parent) != idle_before + 1;
    pool_free(parent);

    if (failed) {
        fprintf(stderr, "FAILED\n");
        return EXIT_FAILURE;
    }
    printf("every transaction was atomic\n");
    return EXIT_SUCCESS;
}
