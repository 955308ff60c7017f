/*
 * abi_pubsub.c - pool_subscriber_t against a real redis-server: SUBSCRIBE / PSUBSCRIBE /
 * SSUBSCRIBE and their UNSUBSCRIBEs, messages in RESP2 and RESP3, the receive timeout, the
 * pollable fd (level- and edge-triggered), the health ping, resubscription after CLIENT KILL and after a server restart
 * (this program kills the server and starts a new one on the same port), a closed or freed
 * pool, and misuse.
 *
 * usage: abi_pubsub ADDR
 *   ADDR  a redis-server (7 or later) that this program may kill and restart; the
 *         restarted one is started from $REDIS_SERVER (default "redis-server") and shut
 *         down before exit.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "check.h"

static const char *addr;
static char port[16];
static pid_t restarted = -1;

static pool_t *new_pool(const char *query)
{
    char url[256];
    snprintf(url, sizeof url, "redis://%s/%s", addr, query);
    pool_t *p = NULL;
    pool_error_t err;
    pool_status_t st = pool_new_url(url, &p, &err);
    CHECK_STATUS(st, POOL_OK, &err);
    return p;
}

/* A pool on `query` and a subscriber of it; NULL (the failure counted, the pool freed) if
   either could not be made. */
static pool_subscriber_t *new_subscriber(const char *query, pool_t **pool)
{
    *pool = new_pool(query);
    pool_subscriber_t *sub = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_subscriber_new(*pool, &sub, &err), POOL_OK, &err);
    if (sub == NULL) {
        pool_free(*pool);
        *pool = NULL;
    }
    return sub;
}

/* Runs a command on a pooled conn; returns the reply's integer (-1 on failure). */
static long long run(pool_t *pool, int argc, const char **argv)
{
    pool_conn_t *c = NULL;
    pool_error_t err;
    if (!CHECK_STATUS(pool_get(pool, &c, &err), POOL_OK, &err))
        return -1;
    pool_reply_t *r = NULL;
    long long n = -1;
    if (CHECK_STATUS(pool_conn_command(c, argc, argv, NULL, &r, &err), POOL_OK, &err)) {
        if (r->type == POOL_REPLY_INTEGER)
            n = r->integer;
        else if (r->type == POOL_REPLY_STATUS)
            n = 0;
    }
    pool_reply_free(r);
    pool_put(pool, c);
    return n;
}

static long long publish(pool_t *pool, const char *cmd, const char *ch, const char *msg)
{
    const char *argv[] = {cmd, ch, msg};
    return run(pool, 3, argv);
}

/* The next message, which must be of `kind` (NULL otherwise; the caller frees it). */
#define EXPECT(sub, kind) expect((sub), (kind), __FILE__, __LINE__)

static pool_message_t *expect(pool_subscriber_t *sub, int32_t kind, const char *file, int line)
{
    pool_message_t *m = NULL;
    pool_error_t err;
    pool_status_t st = pool_subscriber_receive(sub, scaled(5000), &m, &err);
    check_total++;
    if (st != POOL_OK) {
        check_fail(file, line, "receive: status %d (%s): %s (wanted kind %d)", st,
                   pool_status_str(st), err.message, kind);
        return NULL;
    }
    if (m->kind != kind) {
        check_fail(file, line, "kind %d (channel %s, payload %s), wanted %d", m->kind,
                   m->channel ? m->channel : "-", m->payload ? m->payload : "-", kind);
        pool_message_free(m);
        return NULL;
    }
    return m;
}

static void check_str(const char *got, size_t len, const char *want, const char *file, int line)
{
    check_total++;
    if (got == NULL || len != strlen(want) || memcmp(got, want, len) != 0 || got[len] != 0)
        check_fail(file, line, "got \"%s\" (%zu bytes), want \"%s\"", got ? got : "(null)", len,
                   want);
}
#define CHECK_STR(got, len, want) check_str((got), (len), (want), __FILE__, __LINE__)

/* Expects a message of `kind` on `channel` with `payload` (NULL: not checked). */
#define EXPECT_MSG(sub, kind, channel, payload) \
    expect_msg((sub), (kind), (channel), (payload), __FILE__, __LINE__)

static void expect_msg(pool_subscriber_t *sub, int32_t kind, const char *channel,
                       const char *payload, const char *file, int line)
{
    pool_message_t *m = expect(sub, kind, file, line);
    if (m == NULL)
        return;
    check_str(m->channel, m->channel_len, channel, file, line);
    if (payload != NULL)
        check_str(m->payload, m->payload_len, payload, file, line);
    pool_message_free(m);
}

static void no_message(pool_subscriber_t *sub, int64_t ms)
{
    pool_message_t *m = (pool_message_t *)1;
    pool_error_t err;
    CHECK_EQ(pool_subscriber_receive(sub, ms, &m, &err), POOL_ERR_TIMEOUT);
    CHECK(m == NULL);
    CHECK(strstr(err.message, "no message within") != NULL);
}

static void messages(const char *query)
{
    pool_t *pool = NULL;
    pool_subscriber_t *sub = new_subscriber(query, &pool);
    if (sub == NULL)
        return;
    pool_error_t err;
    CHECK_EQ(pool_len(pool), 1); /* its own conn, counted, outside the turns */
    CHECK_EQ(pool_idle_len(pool), 0);
    no_message(sub, 0);
    no_message(sub, 50);

    const char *chans[] = {"news", "bin\0ary"};
    size_t lens[] = {4, 7};
    CHECK_STATUS(pool_subscriber_subscribe(sub, 2, chans, lens, &err), POOL_OK, &err);
    pool_message_t *m = EXPECT(sub, POOL_MSG_SUBSCRIBE);
    if (m) {
        CHECK_STR(m->channel, m->channel_len, "news");
        CHECK_EQ(m->count, 1);
        pool_message_free(m);
    }
    m = EXPECT(sub, POOL_MSG_SUBSCRIBE);
    if (m) {
        CHECK_EQ(m->channel_len, 7);
        CHECK(m->channel && memcmp(m->channel, "bin\0ary", 7) == 0);
        CHECK_EQ(m->count, 2);
        pool_message_free(m);
    }
    const char *pats[] = {"sport.*"};
    CHECK_STATUS(pool_subscriber_psubscribe(sub, 1, pats, NULL, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_PSUBSCRIBE, "sport.*", NULL);
    const char *shards[] = {"shard-a"};
    CHECK_STATUS(pool_subscriber_ssubscribe(sub, 1, shards, NULL, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_SSUBSCRIBE, "shard-a", NULL);

    CHECK_EQ(publish(pool, "PUBLISH", "news", "hello"), 1);
    CHECK_EQ(publish(pool, "PUBLISH", "sport.ski", "fast"), 1);
    CHECK_EQ(publish(pool, "SPUBLISH", "shard-a", "sharded"), 1);
    EXPECT_MSG(sub, POOL_MSG_MESSAGE, "news", "hello");
    m = EXPECT(sub, POOL_MSG_PMESSAGE);
    if (m) {
        CHECK_STR(m->pattern, m->pattern_len, "sport.*");
        CHECK_STR(m->channel, m->channel_len, "sport.ski");
        CHECK_STR(m->payload, m->payload_len, "fast");
        CHECK(m->reply == NULL);
        pool_message_free(m);
    }
    EXPECT_MSG(sub, POOL_MSG_SMESSAGE, "shard-a", "sharded");

    /* A message larger than one read, and many at once: none lost, in order. */
    char *big = malloc(300001);
    memset(big, 'x', 300000);
    big[300000] = 0;
    CHECK_EQ(publish(pool, "PUBLISH", "news", big), 1);
    m = EXPECT(sub, POOL_MSG_MESSAGE);
    if (m) {
        CHECK_EQ(m->payload_len, 300000);
        pool_message_free(m);
    }
    free(big);
    for (int i = 0; i < 200; i++) {
        char n[16];
        snprintf(n, sizeof n, "%d", i);
        publish(pool, "PUBLISH", "news", n);
    }
    int in_order = 1;
    for (int i = 0; i < 200; i++) {
        m = EXPECT(sub, POOL_MSG_MESSAGE);
        if (m == NULL) {
            in_order = 0;
            break;
        }
        if (atoi(m->payload) != i)
            in_order = 0;
        pool_message_free(m);
    }
    CHECK(in_order);

    /* ping: answered, not delivered; a message sent meanwhile is kept. */
    CHECK_EQ(publish(pool, "PUBLISH", "news", "during-ping"), 1);
    CHECK_STATUS(pool_subscriber_ping(sub, scaled(5000), &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_MESSAGE, "news", "during-ping");
    no_message(sub, 0);

    /* Unsubscribe one, then all: confirmations, and no more messages from them. */
    CHECK_STATUS(pool_subscriber_unsubscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_UNSUBSCRIBE, "news", NULL);
    CHECK_EQ(publish(pool, "PUBLISH", "news", "gone"), 0);
    CHECK_STATUS(pool_subscriber_punsubscribe(sub, 0, NULL, NULL, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_PUNSUBSCRIBE, "sport.*", NULL);
    CHECK_STATUS(pool_subscriber_sunsubscribe(sub, 0, NULL, NULL, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_SUNSUBSCRIBE, "shard-a", NULL);
    CHECK_STATUS(pool_subscriber_unsubscribe(sub, 0, NULL, NULL, &err), POOL_OK, &err);
    m = EXPECT(sub, POOL_MSG_UNSUBSCRIBE);
    if (m) {
        CHECK_EQ(m->count, 0);
        pool_message_free(m);
    }
    no_message(sub, 20);
    CHECK_EQ(pool_subscriber_resubscribes(sub), 0);

    CHECK_EQ(pool_len(pool) - pool_idle_len(pool), 1);
    pool_subscriber_free(sub);
    CHECK_EQ(pool_len(pool) - pool_idle_len(pool), 0); /* its conn was closed, uncounted */
    pool_free(pool);
}

/* The fd is readable exactly while receive has something without waiting. */
static void pollable_fd(void)
{
    pool_t *pool = NULL;
    pool_subscriber_t *sub = new_subscriber("?protocol=3", &pool);
    if (sub == NULL)
        return;
    pool_error_t err;
    int fd = pool_subscriber_fd(sub);
    CHECK(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 0);
    const char *chans[] = {"ev"};
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    CHECK_EQ(poll(&p, 1, scaled(5000)), 1);
    for (int i = 0; i < 3; i++)
        publish(pool, "PUBLISH", "ev", "x");
    /* Drain with timeout 0 while readable: the confirmation and three messages. */
    int got = 0;
    for (int rounds = 0; rounds < 1000 && got < 4; rounds++) {
        if (poll(&p, 1, scaled(5000)) != 1)
            break;
        pool_message_t *m = NULL;
        while (pool_subscriber_receive(sub, 0, &m, NULL) == POOL_OK) {
            got++;
            pool_message_free(m);
        }
    }
    CHECK_EQ(got, 4);
    CHECK_EQ(poll(&p, 1, 0), 0);
    /* A message kept by ping makes it readable too. */
    publish(pool, "PUBLISH", "ev", "kept");
    CHECK_STATUS(pool_subscriber_ping(sub, scaled(5000), &err), POOL_OK, &err);
    CHECK_EQ(poll(&p, 1, 0), 1);
    EXPECT_MSG(sub, POOL_MSG_MESSAGE, "ev", "kept");
    CHECK_EQ(poll(&p, 1, 0), 0);
    CHECK_EQ(pool_subscriber_fd(sub), fd);
    pool_subscriber_free(sub);
    pool_free(pool);
}

/* Waits for pool_subscriber_ping_finish to end the ping: on POOL_ERR_WOULD_BLOCK, polls
   the fd in slices of 50 ms (the deadline brings no readiness), at most `ms` in all. The fd
   stays readable while a message is kept, so this may spin until the answer comes. */
static pool_status_t finish_ping(pool_subscriber_t *sub, int64_t ms, int *would_block,
                                 pool_error_t *err)
{
    struct pollfd p = {.fd = pool_subscriber_fd(sub), .events = POLLIN};
    pool_status_t st = POOL_ERR_WOULD_BLOCK;
    for (int64_t end = now_ms() + ms; now_ms() <= end;) {
        st = pool_subscriber_ping_finish(sub, err);
        if (st != POOL_ERR_WOULD_BLOCK)
            break;
        (*would_block)++;
        poll(&p, 1, 50);
    }
    return st;
}

/* pool_subscriber_ping_start / _finish / _cancel: the ping split in two calls that never
   wait; misuse gets POOL_ERR_INVALID_ARG; a paused server's missing answer ends in
   POOL_ERR_IO at the deadline with the conn treated as lost. */
static void ping_nonblocking(const char *query)
{
    pool_t *pool = NULL;
    pool_subscriber_t *sub = new_subscriber(query, &pool);
    if (sub == NULL)
        return;
    pool_error_t err;
    const char *chans[] = {"np"};
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_SUBSCRIBE, "np", NULL);

    /* Answered; a message published before the answer is kept for receive. */
    CHECK_EQ(publish(pool, "PUBLISH", "np", "before-pong"), 1);
    CHECK_STATUS(pool_subscriber_ping_start(sub, scaled(5000), &err), POOL_OK, &err);
    int wb = 0;
    CHECK_STATUS(finish_ping(sub, scaled(5000), &wb, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_MESSAGE, "np", "before-pong");
    no_message(sub, 0);

    /* Misuse: finish with none under way, start twice, the blocking ping meanwhile. */
    CHECK_STATUS(pool_subscriber_ping_finish(sub, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(strstr(err.message, "no subscriber ping") != NULL);
    CHECK_STATUS(pool_subscriber_ping_start(sub, scaled(5000), &err), POOL_OK, &err);
    CHECK_STATUS(pool_subscriber_ping_start(sub, scaled(5000), &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(strstr(err.message, "already under way") != NULL);
    CHECK_STATUS(pool_subscriber_ping(sub, scaled(5000), &err), POOL_ERR_INVALID_ARG, &err);
    /* Cancelled: its answer is dropped, a new ping counts only its own. */
    CHECK_STATUS(pool_subscriber_ping_cancel(sub, &err), POOL_OK, &err);
    CHECK_STATUS(pool_subscriber_ping_finish(sub, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_subscriber_ping_start(sub, scaled(5000), &err), POOL_OK, &err);
    CHECK_STATUS(finish_ping(sub, scaled(5000), &wb, &err), POOL_OK, &err);
    no_message(sub, 0);
    CHECK_EQ(pool_subscriber_resubscribes(sub), 0);

    /* A paused server: start returns at once, finish says WOULD_BLOCK until the deadline,
       then POOL_ERR_IO; the next receive resubscribes on a new conn. */
    char pause_ms[32];
    snprintf(pause_ms, sizeof pause_ms, "%lld", (long long)scaled(1500));
    const char *pause[] = {"CLIENT", "PAUSE", pause_ms, "ALL"};
    pool_conn_t *c = NULL;
    CHECK_STATUS(pool_get(pool, &c, &err), POOL_OK, &err);
    pool_reply_t *r = NULL;
    CHECK_STATUS(pool_conn_command(c, 4, pause, NULL, &r, &err), POOL_OK, &err);
    pool_reply_free(r);
    pool_put(pool, c);
    wb = 0;
    CHECK_STATUS(pool_subscriber_ping_start(sub, 200, &err), POOL_OK, &err);
    CHECK_STATUS(finish_ping(sub, scaled(5000), &wb, &err), POOL_ERR_IO, &err);
    CHECK(strstr(err.message, "no answer within") != NULL);
    CHECK(wb >= 1);
    CHECK_STATUS(pool_subscriber_ping_finish(sub, &err), POOL_ERR_INVALID_ARG, &err);
    pool_message_t *m = EXPECT(sub, POOL_MSG_RESUBSCRIBED);
    pool_message_free(m);
    EXPECT_MSG(sub, POOL_MSG_SUBSCRIBE, "np", NULL);
    CHECK_EQ(pool_subscriber_resubscribes(sub), 1);
    pool_subscriber_free(sub);
    pool_free(pool);
}

/* A payload of `len` bytes that says which message it is ("<i>:xxx..."), NUL-terminated;
   the caller frees it. */
static char *numbered_payload(int i, size_t len)
{
    char *p = malloc(len + 1);
    if (p == NULL)
        return NULL;
    memset(p, 'x', len);
    char head[16];
    int n = snprintf(head, sizeof head, "%d:", i);
    memcpy(p, head, (size_t)n < len ? (size_t)n : len);
    p[len] = 0;
    return p;
}

/* The burst's message sizes: 3 KiB, every tenth 40 KB to 640 KB (more than one read into
   the parser's buffer takes). */
static size_t burst_size(int i)
{
    return i % 10 == 9 ? (size_t)40000 << (i / 10 % 5) : 3072;
}

/* An edge-triggered loop on pool_subscriber_fd (epoll EPOLLET, as libuv, libevent's EV_ET or
   Go's netpoller): after each edge, receive with timeout 0 until POOL_ERR_TIMEOUT. A burst
   of 200 messages published before the subscriber reads any must all arrive, each wait
   seeing an edge: a POOL_ERR_TIMEOUT leaves nothing unread in the socket or the parser. */
static void edge_triggered(const char *query)
{
    enum { N = 200 };
    pool_t *pool = NULL;
    pool_subscriber_t *sub = new_subscriber(query, &pool);
    if (sub == NULL)
        return;
    pool_error_t err;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, pool_subscriber_fd(sub), &ev), 0);
    const char *chans[] = {"et"};
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    int got = -1; /* -1: the confirmation comes first */
    int edges = 0, bad = 0;
    while (got < N && edges < 100000) {
        struct epoll_event out;
        check_total++;
        if (epoll_wait(ep, &out, 1, (int)scaled(10000)) != 1) {
            check_fail(__FILE__, __LINE__, "\"%s\": message %d of %d pending, no edge within %lld ms",
                       query, got, N, (long long)scaled(10000));
            break;
        }
        edges++;
        pool_message_t *m = NULL;
        pool_status_t st;
        while ((st = pool_subscriber_receive(sub, 0, &m, &err)) == POOL_OK) {
            if (got < 0) {
                CHECK_EQ(m->kind, POOL_MSG_SUBSCRIBE);
            } else if (got < N) {
                char *want = numbered_payload(got, burst_size(got));
                int ok = want != NULL && m->kind == POOL_MSG_MESSAGE &&
                         m->payload_len == burst_size(got) &&
                         memcmp(m->payload, want, m->payload_len) == 0;
                free(want);
                /* One check for the burst, with the first message that is wrong. */
                if (!ok && bad++ == 0) {
                    check_total++;
                    check_fail(__FILE__, __LINE__, "\"%s\": message %d: kind %d, %zu bytes", query,
                               got, m->kind, m->payload_len);
                }
            }
            got++;
            pool_message_free(m);
        }
        CHECK_STATUS(st, POOL_ERR_TIMEOUT, &err);
        /* The burst goes out once the confirmation is in, before any of it is read. */
        if (got == 0) {
            for (int i = 0; i < N; i++) {
                char *p = numbered_payload(i, burst_size(i));
                CHECK(p != NULL);
                if (p != NULL)
                    CHECK_EQ(publish(pool, "PUBLISH", "et", p), 1);
                free(p);
            }
        }
    }
    CHECK_EQ(got, N);
    CHECK_EQ(bad, 0);
    close(ep);
    pool_subscriber_free(sub);
    pool_free(pool);
}

static void client_kill(const char *query)
{
    pool_t *pool = NULL;
    pool_subscriber_t *sub = new_subscriber(query, &pool);
    if (sub == NULL)
        return;
    pool_error_t err;
    const char *chans[] = {"k1", "k2"};
    const char *pats[] = {"kp*"};
    const char *shards[] = {"ks"};
    CHECK_STATUS(pool_subscriber_subscribe(sub, 2, chans, NULL, &err), POOL_OK, &err);
    CHECK_STATUS(pool_subscriber_psubscribe(sub, 1, pats, NULL, &err), POOL_OK, &err);
    CHECK_STATUS(pool_subscriber_ssubscribe(sub, 1, shards, NULL, &err), POOL_OK, &err);
    for (int i = 0; i < 4; i++)
        pool_message_free(EXPECT(sub, i < 2 ? POOL_MSG_SUBSCRIBE
                                         : i == 2 ? POOL_MSG_PSUBSCRIBE
                                                  : POOL_MSG_SSUBSCRIBE));
    const char *kill[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
    CHECK(run(pool, 4, kill) >= 1);
    pool_message_t *m = EXPECT(sub, POOL_MSG_RESUBSCRIBED);
    if (m) {
        CHECK_EQ(m->count, 1);
        CHECK(m->channel == NULL);
        CHECK(m->payload != NULL && strstr(m->payload, "EOF") != NULL);
        pool_message_free(m);
    }
    CHECK_EQ(pool_subscriber_resubscribes(sub), 1);
    for (int i = 0; i < 4; i++)
        pool_message_free(EXPECT(sub, i < 2 ? POOL_MSG_SUBSCRIBE
                                         : i == 2 ? POOL_MSG_PSUBSCRIBE
                                                  : POOL_MSG_SSUBSCRIBE));
    CHECK_EQ(publish(pool, "PUBLISH", "k2", "after"), 1);
    CHECK_EQ(publish(pool, "PUBLISH", "kpx", "pat"), 1);
    CHECK_EQ(publish(pool, "SPUBLISH", "ks", "sh"), 1);
    EXPECT_MSG(sub, POOL_MSG_MESSAGE, "k2", "after");
    EXPECT_MSG(sub, POOL_MSG_PMESSAGE, "kpx", "pat");
    EXPECT_MSG(sub, POOL_MSG_SMESSAGE, "ks", "sh");
    /* The lost conn was uncounted, the new one counted (the others are idle). */
    CHECK_EQ(pool_len(pool) - pool_idle_len(pool), 1);

    /* A kill found by ping, not by a receive: ping fails, the next receive resubscribes. */
    CHECK(run(pool, 4, kill) >= 1);
    pool_status_t st = POOL_OK;
    for (int i = 0; i < 100 && st == POOL_OK; i++)
        st = pool_subscriber_ping(sub, scaled(2000), &err);
    CHECK_EQ(st, POOL_ERR_IO);
    pool_message_free(EXPECT(sub, POOL_MSG_RESUBSCRIBED));
    CHECK_EQ(pool_subscriber_resubscribes(sub), 2);
    pool_subscriber_free(sub);
    pool_free(pool);
}

static long long server_pid(pool_t *pool)
{
    pool_conn_t *c = NULL;
    if (pool_get(pool, &c, NULL) != POOL_OK)
        return -1;
    const char *argv[] = {"INFO", "server"};
    pool_reply_t *r = NULL;
    long long pid = -1;
    if (pool_conn_command(c, 2, argv, NULL, &r, NULL) == POOL_OK && r->str) {
        const char *p = strstr(r->str, "process_id:");
        if (p)
            pid = atoll(p + strlen("process_id:"));
    }
    pool_reply_free(r);
    pool_put(pool, c);
    return pid;
}

static void start_server(void)
{
    const char *prog = getenv("REDIS_SERVER");
    if (prog == NULL || *prog == 0)
        prog = "redis-server";
    restarted = fork();
    if (restarted == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp(prog, prog, "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    CHECK(restarted > 0);
}

static void server_restart(const char *query)
{
    pool_t *pool = NULL;
    pool_subscriber_t *sub = new_subscriber(query, &pool);
    if (sub == NULL)
        return;
    pool_error_t err;
    const char *chans[] = {"r"};
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_SUBSCRIBE, "r", NULL);
    long long pid = server_pid(pool);
    CHECK(pid > 0);
    if (pid <= 0 || kill((pid_t)pid, SIGKILL) != 0) {
        pool_subscriber_free(sub);
        pool_free(pool);
        return;
    }
    if (restarted > 0) /* our own server from an earlier round */
        waitpid(restarted, NULL, 0);
    /* Down: receive reports the failed dial, and keeps trying on later calls. */
    pool_message_t *m = NULL;
    pool_status_t st = POOL_OK;
    for (int i = 0; i < 100 && (st == POOL_OK || st == POOL_ERR_TIMEOUT); i++) {
        st = pool_subscriber_receive(sub, scaled(1000), &m, &err);
        pool_message_free(m);
        m = NULL;
    }
    CHECK_EQ(st, POOL_ERR_DIAL);
    CHECK(strstr(err.message, port) != NULL);
    start_server();
    /* Back: the next receives dial again and resubscribe. */
    st = POOL_ERR_DIAL;
    for (int i = 0; i < 200 && st != POOL_OK; i++)
        st = pool_subscriber_receive(sub, scaled(1000), &m, &err);
    CHECK_STATUS(st, POOL_OK, &err);
    if (m) {
        CHECK_EQ(m->kind, POOL_MSG_RESUBSCRIBED);
        CHECK(m->payload != NULL && strstr(m->payload, "EOF") != NULL);
        pool_message_free(m);
    }
    EXPECT_MSG(sub, POOL_MSG_SUBSCRIBE, "r", NULL);
    CHECK_EQ(publish(pool, "PUBLISH", "r", "back"), 1);
    EXPECT_MSG(sub, POOL_MSG_MESSAGE, "r", "back");
    CHECK_EQ(pool_subscriber_resubscribes(sub), 1);
    pool_subscriber_free(sub);
    pool_free(pool);
}

static void closed_pool(void)
{
    pool_t *pool = new_pool("");
    pool_subscriber_t *sub = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_subscriber_new(pool, &sub, &err), POOL_OK, &err);
    const char *chans[] = {"c"};
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    CHECK_EQ(pool_close(pool), POOL_OK);
    pool_message_t *m = (pool_message_t *)1;
    CHECK_STATUS(pool_subscriber_receive(sub, 0, &m, &err), POOL_ERR_CLOSED, &err);
    CHECK(m == NULL);
    CHECK(strstr(err.message, "closed") != NULL);
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_ERR_CLOSED, &err);
    CHECK_STATUS(pool_subscriber_ping(sub, 100, &err), POOL_ERR_CLOSED, &err);
    CHECK_EQ(pool_len(pool), 0); /* closed: no idle conns, the subscriber's is closed */
    pool_subscriber_free(sub);
    CHECK_STATUS(pool_subscriber_new(pool, &sub, &err), POOL_ERR_CLOSED, &err);
    CHECK(sub == NULL);
    pool_free(pool);

    /* pool_free first: the subscriber keeps working until then... it is closed. */
    pool = new_pool("");
    CHECK_STATUS(pool_subscriber_new(pool, &sub, &err), POOL_OK, &err);
    pool_free(pool);
    CHECK_STATUS(pool_subscriber_receive(sub, 0, &m, &err), POOL_ERR_CLOSED, &err);
    pool_subscriber_free(sub);
}

static void misuse(void)
{
    pool_t *pool = new_pool("");
    pool_subscriber_t *sub = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_subscriber_new(NULL, &sub, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_subscriber_new(pool, NULL, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_subscriber_new((pool_t *)0x1234, &sub, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_cluster_subscriber_new(NULL, &sub, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_subscriber_new(pool, &sub, &err), POOL_OK, &err);
    const char *chans[] = {"c", NULL};
    CHECK_STATUS(pool_subscriber_subscribe(sub, 0, chans, NULL, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK(strstr(err.message, "count") != NULL);
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, NULL, NULL, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK_STATUS(pool_subscriber_subscribe(sub, 2, chans, NULL, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK(strstr(err.message, "names[1]") != NULL);
    CHECK_STATUS(pool_subscriber_subscribe(NULL, 1, chans, NULL, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK_STATUS(pool_subscriber_receive(sub, 0, NULL, &err), POOL_ERR_INVALID_ARG, &err);
    pool_message_t *m = NULL;
    CHECK_STATUS(pool_subscriber_receive(NULL, 0, &m, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_subscriber_ping(NULL, 0, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_EQ(pool_subscriber_fd(NULL), -1);
    CHECK_EQ(pool_subscriber_resubscribes(NULL), 0);
    pool_subscriber_free(NULL);
    pool_message_free(NULL);
    /* Nothing changed by the refused calls. */
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    EXPECT_MSG(sub, POOL_MSG_SUBSCRIBE, "c", NULL);
    pool_subscriber_free(sub);
    pool_free(pool);
}

/* A command on `c` that must succeed; the reply is freed. */
static void must(pool_conn_t *c, int argc, const char **argv)
{
    pool_reply_t *r = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_conn_command(c, argc, argv, NULL, &r, &err), POOL_OK, &err);
    pool_reply_free(r);
}

/* `r` is an "invalidate" push naming `key`. */
static int is_invalidate(const pool_reply_t *r, const char *key)
{
    return r != NULL && r->type == POOL_REPLY_PUSH && r->elements == 2 &&
           strcmp(r->element[0]->str, "invalidate") == 0 && r->element[1]->elements == 1 &&
           strcmp(r->element[1]->element[0]->str, key) == 0;
}

static void conn_pushes(void)
{
    pool_t *pool = new_pool("?protocol=3");
    pool_conn_t *c = NULL, *other = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_get(pool, &c, &err), POOL_OK, &err);
    CHECK_STATUS(pool_get(pool, &other, &err), POOL_OK, &err);
    if (c == NULL || other == NULL)
        return;
    CHECK_STATUS(pool_conn_keep_pushes(c, true, &err), POOL_OK, &err);
    const char *tracking[] = {"CLIENT", "TRACKING", "ON"};
    const char *get[] = {"GET", "tracked"};
    const char *set[] = {"SET", "tracked", "v"};
    const char *ping[] = {"PING"};
    must(c, 3, tracking);
    must(c, 2, get);
    /* Nothing yet. */
    pool_reply_t *p = (pool_reply_t *)1;
    CHECK_STATUS(pool_conn_next_push(c, 0, &p, &err), POOL_ERR_TIMEOUT, &err);
    CHECK(p == NULL);
    /* Another client changes the key: the invalidation arrives on its own. */
    must(other, 3, set);
    CHECK_STATUS(pool_conn_next_push(c, scaled(5000), &p, &err), POOL_OK, &err);
    CHECK(is_invalidate(p, "tracked"));
    pool_reply_free(p);
    /* Met by a command before its reply: kept, not dropped, and the reply is PING's. */
    must(c, 2, get);
    must(other, 3, set);
    pool_reply_t *r = NULL;
    CHECK_STATUS(pool_conn_command(c, 1, ping, NULL, &r, &err), POOL_OK, &err);
    CHECK(r != NULL && r->type == POOL_REPLY_STATUS && strcmp(r->str, "PONG") == 0);
    pool_reply_free(r);
    p = NULL;
    CHECK_STATUS(pool_conn_next_push(c, scaled(5000), &p, &err), POOL_OK, &err);
    CHECK(is_invalidate(p, "tracked"));
    pool_reply_free(p);
    /* In a pipeline: the replies stay in their places, the push is kept. */
    must(c, 2, get);
    must(other, 3, set);
    const char *const *argvs[] = {ping, get, ping};
    int argcs[] = {1, 2, 1};
    pool_reply_t *replies[3] = {0};
    size_t n = 0;
    CHECK_STATUS(pool_conn_pipeline(c, 3, argcs, argvs, NULL, -1, replies, &n, &err), POOL_OK,
                 &err);
    CHECK_EQ(n, 3);
    CHECK(replies[0] && replies[0]->type == POOL_REPLY_STATUS);
    CHECK(replies[1] && replies[1]->type == POOL_REPLY_STRING && strcmp(replies[1]->str, "v") == 0);
    CHECK(replies[2] && replies[2]->type == POOL_REPLY_STATUS);
    for (int i = 0; i < 3; i++)
        pool_reply_free(replies[i]);
    p = NULL;
    CHECK_STATUS(pool_conn_next_push(c, scaled(5000), &p, &err), POOL_OK, &err);
    CHECK(is_invalidate(p, "tracked"));
    pool_reply_free(p);
    CHECK_STATUS(pool_conn_next_push(c, 0, &p, &err), POOL_ERR_TIMEOUT, &err);

    /* Such a conn is not handed to the next user as it is: it is restored (RESET turns
       tracking off, the set-up runs again), and then it gets no invalidations. */
    pool_stats_t before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    pool_stats(pool, &before);
    must(c, 2, get);
    CHECK_EQ(pool_put(pool, other), POOL_OK);
    CHECK_EQ(pool_put(pool, c), POOL_OK);
    CHECK_STATUS(pool_get(pool, &c, &err), POOL_OK, &err); /* LIFO: the changed conn */
    pool_stats(pool, &after);
    CHECK_EQ(after.reset_conns, before.reset_conns + 1);
    CHECK_STATUS(pool_get(pool, &other, &err), POOL_OK, &err);
    must(other, 3, set);
    CHECK_STATUS(pool_conn_next_push(c, scaled(200), &p, &err), POOL_ERR_TIMEOUT, &err);
    pool_put(pool, other);
    pool_put(pool, c);
    /* Misuse: NULLs, a handle not checked out, a RESP2 conn. */
    CHECK_STATUS(pool_conn_keep_pushes(NULL, true, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_keep_pushes(c, true, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_next_push(c, 0, &p, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_next_push(NULL, 0, &p, &err), POOL_ERR_INVALID_ARG, &err);
    pool_free(pool);
    pool = new_pool("");
    CHECK_STATUS(pool_get(pool, &c, &err), POOL_OK, &err);
    CHECK_STATUS(pool_conn_keep_pushes(c, true, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(strstr(err.message, "RESP2") != NULL);
    CHECK_STATUS(pool_conn_next_push(c, 0, NULL, &err), POOL_ERR_INVALID_ARG, &err);
    pool_put(pool, c);
    pool_free(pool);
}

/* Raw I/O on the fd changed the session: pool_conn_session_changed has it restored. */
static void raw_session_changed(void)
{
    pool_t *pool = new_pool("?pool_size=2");
    pool_conn_t *c = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_get(pool, &c, &err), POOL_OK, &err);
    if (c == NULL)
        return;
    int fd = pool_conn_fd(c);
    const char raw[] = "*2\r\n$6\r\nSELECT\r\n$1\r\n5\r\n*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\nraw\r\n";
    CHECK(write(fd, raw, sizeof raw - 1) == (ssize_t)(sizeof raw - 1));
    /* +OK, then the subscribe confirmation (an array): read until its ":1". */
    char buf[256];
    size_t got = 0;
    for (int i = 0; i < 100 && (got < 4 || memcmp(buf + got - 4, ":1\r\n", 4) != 0); i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, scaled(5000)) != 1)
            break;
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    CHECK(got >= 4 && memcmp(buf + got - 4, ":1\r\n", 4) == 0);
    uint64_t id = pool_conn_id(c);
    CHECK_EQ(pool_conn_session_changed(c), POOL_OK);
    pool_stats_t before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    pool_stats(pool, &before);
    pool_conn_t *other = NULL;
    CHECK_STATUS(pool_get(pool, &other, &err), POOL_OK, &err);
    CHECK_EQ(pool_put(pool, c), POOL_OK);
    /* A message lands on it while it is idle: dropped by the restore, not handed on. */
    const char *pub[] = {"PUBLISH", "raw", "while idle"};
    pool_reply_t *n = NULL;
    CHECK_STATUS(pool_conn_command(other, 3, pub, NULL, &n, &err), POOL_OK, &err);
    CHECK(n && n->integer == 1);
    pool_reply_free(n);
    CHECK_STATUS(pool_get(pool, &c, &err), POOL_OK, &err);
    pool_put(pool, other);
    CHECK_EQ(pool_conn_id(c), id);
    pool_stats(pool, &after);
    CHECK_EQ(after.reset_conns, before.reset_conns + 1);
    const char *info[] = {"CLIENT", "INFO"};
    pool_reply_t *r = NULL;
    CHECK_STATUS(pool_conn_command(c, 2, info, NULL, &r, &err), POOL_OK, &err);
    CHECK(r && r->str && strstr(r->str, " db=0 ") && strstr(r->str, " sub=0 "));
    pool_reply_free(r);
    pool_put(pool, c);
    CHECK_EQ(pool_conn_session_changed(c), POOL_ERR_INVALID_ARG); /* not checked out */
    CHECK_EQ(pool_conn_session_changed(NULL), POOL_ERR_INVALID_ARG);
    pool_free(pool);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDR\n", argv[0]);
        return 2;
    }
    addr = argv[1];
    const char *colon = strrchr(addr, ':');
    snprintf(port, sizeof port, "%s", colon ? colon + 1 : "6379");

    section("subscribe, psubscribe, ssubscribe: messages and confirmations (RESP2)");
    messages("");
    section("the same in RESP3 (pushes)");
    messages("?protocol=3");
    section("the pollable fd: readable while receive has something");
    pollable_fd();
    section("ping start / finish / cancel: never waiting, misuse, a paused server (RESP2)");
    ping_nonblocking("");
    section("ping start / finish in RESP3");
    ping_nonblocking("?protocol=3");
    section("the pollable fd, edge-triggered: every message of a burst (RESP2)");
    edge_triggered("");
    section("the pollable fd, edge-triggered, in RESP3");
    edge_triggered("?protocol=3");
    section("CLIENT KILL: resubscribed, the gap reported, nothing subscribed lost (RESP2)");
    client_kill("");
    section("CLIENT KILL in RESP3");
    client_kill("?protocol=3");
    section("server restart: dial errors while down, then resubscribed (RESP2)");
    server_restart("?dial_timeout=1s");
    section("server restart in RESP3");
    server_restart("?protocol=3&dial_timeout=1s");
    section("a closed or freed pool: POOL_ERR_CLOSED");
    closed_pool();
    section("misuse: NULLs, no names, made-up handles");
    misuse();
    section("RESP3 pushes on a normal conn: client tracking invalidations kept and delivered");
    conn_pushes();
    section("raw I/O on the fd: pool_conn_session_changed has the conn restored");
    raw_session_changed();

    if (restarted > 0) {
        kill(restarted, SIGKILL);
        waitpid(restarted, NULL, 0);
    }
    return check_exit_status();
}
