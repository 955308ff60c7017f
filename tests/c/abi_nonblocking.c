/*
 * abi_nonblocking.c - the non-blocking command path through the C ABI, plain and TLS:
 * pool_conn_start / pool_conn_start_pipeline, pool_conn_finish /
 * pool_conn_finish_pipeline, pool_conn_started, pool_conn_wait_ms.
 *
 *   ./abi_nonblocking PLAIN_ADDR CERT_DIR TLS_ADDR
 *
 * Checks, through the public header only, on a plain pool and on a TLS pool:
 *  - 64 conns, each with a command started, finished from one thread that waits only in
 *    poll(2) for the interest each finish asks for; a value bigger than the socket
 *    buffers sent (POOL_WANT_WRITE on the way) and read back;
 *  - a pipeline of 200 commands with an error reply in its place;
 *  - a deadline that passes between start and finish: POOL_ERR_IO, the conn is bad and
 *    never pooled again;
 *  - misuse: finish without start, a second start, a blocking command and raw I/O
 *    mid-command, finish of a pipeline with too little room, put mid-command (closed,
 *    counted in reset_conns, never handed out), NULLs;
 *  - RESP3 pushes right behind the last reply of a command or a pipeline (a tracking
 *    conn's invalidation of a key it wrote) are kept for pool_conn_next_push.
 *
 * Prints one line per failed check (file:line) on stderr; exits 0 only if every check
 * passed. Run by tests/c_abi.rs (also under valgrind and ASan).
 */
#define _GNU_SOURCE

#include <poll.h>
#include <unistd.h>

#include "check.h"

#define NCONNS 64

static const char *plain_addr, *tls_addr;
static char ca_file[1024];

static pool_t *make_pool_protocol(int tls, int protocol)
{
    pool_options_t o;
    pool_options_init(&o);
    o.protocol = protocol;
    o.addr = tls ? tls_addr : plain_addr;
    o.pool_size = NCONNS;
    o.dialer_retries = 1;
    o.read_timeout_ms = scaled(10000);
    o.write_timeout_ms = scaled(10000);
    if (tls) {
        o.tls = true;
        o.tls_ca_file = ca_file;
    }
    pool_t *pool = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_new(&o, &pool, &err), POOL_OK, &err);
    return pool;
}

static pool_t *make_pool(int tls)
{
    return make_pool_protocol(tls, 2);
}

static short events_of(int want)
{
    return want == POOL_WANT_WRITE ? POLLOUT : POLLIN;
}

/* Finishes the command started on `conn`, waiting only in poll(2); counts the waits. */
static pool_status_t finish_polling(pool_conn_t *conn, int want, pool_reply_t **reply,
                                    int waits[2], pool_error_t *err)
{
    int64_t end = now_ms() + scaled(30000);
    for (;;) {
        struct pollfd p = {.fd = pool_conn_fd(conn), .events = events_of(want)};
        int64_t left = pool_conn_wait_ms(conn);
        (void)poll(&p, 1, left < 0 || left > scaled(5000) ? (int)scaled(5000) : (int)left);
        pool_status_t st = pool_conn_finish(conn, reply, &want, err);
        if (st != POOL_ERR_WOULD_BLOCK)
            return st;
        if (want == POOL_WANT_READ || want == POOL_WANT_WRITE)
            waits[want - 1]++;
        else
            return POOL_ERR_INTERNAL;
        if (now_ms() > end)
            return POOL_ERR_INTERNAL;
    }
}

/* Opens the section "non-blocking[ over TLS]: `what`", makes its pool and gets a conn;
   NULL (the failure counted, nothing left open) when either could not be had. */
static pool_t *section_pool_conn(int tls, const char *what, pool_conn_t **conn)
{
    static char name[256]; /* section() keeps the pointer until the next section */
    snprintf(name, sizeof name, "non-blocking%s: %s", tls ? " over TLS" : "", what);
    section(name);
    *conn = NULL;
    pool_t *pool = make_pool(tls);
    if (pool == NULL)
        return NULL;
    pool_error_t err;
    CHECK_STATUS(pool_get(pool, conn, &err), POOL_OK, &err);
    if (*conn == NULL) {
        pool_free(pool);
        return NULL;
    }
    return pool;
}

static void test_many(int tls)
{
    pool_conn_t *conn;
    pool_t *pool =
        section_pool_conn(tls, "64 conns on one thread, a value larger than the socket", &conn);
    if (pool == NULL)
        return;
    pool_error_t err;
    size_t big_len = 16u << 20;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    const char *set_argv[] = {"SET", "nb:big", big};
    size_t set_len[] = {3, 6, big_len};
    int want = 0;
    CHECK_STATUS(pool_conn_start(conn, 3, set_argv, set_len, -1, &want, &err), POOL_OK, &err);
    /* Usually POOL_WANT_WRITE (16 MiB do not fit), but a fast reader may take it all:
     * tests/nonblocking.rs stops the server to see each interest for sure. */
    CHECK(want == POOL_WANT_WRITE || want == POOL_WANT_READ);
    CHECK_EQ(pool_conn_started(conn), 1);
    int waits[2] = {0, 0};
    pool_reply_t *reply = NULL;
    CHECK_STATUS(finish_polling(conn, want, &reply, waits, &err), POOL_OK, &err);
    if (CHECK(reply != NULL)) {
        CHECK_EQ(reply->type, POOL_REPLY_STATUS);
        pool_reply_free(reply);
    }
    const char *get_argv[] = {"GET", "nb:big"};
    CHECK_STATUS(pool_conn_start(conn, 2, get_argv, NULL, -1, &want, &err), POOL_OK, &err);
    CHECK_EQ(want, POOL_WANT_READ);
    reply = NULL;
    CHECK_STATUS(finish_polling(conn, want, &reply, waits, &err), POOL_OK, &err);
    if (CHECK(reply != NULL)) {
        CHECK_EQ(reply->len, big_len);
        CHECK(reply->len == big_len && memcmp(reply->str, big, big_len) == 0);
        pool_reply_free(reply);
    }
    free(big);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);

    /* 64 conns, one command each in flight, finished in whatever order they get ready. */
    pool_conn_t *conns[NCONNS];
    int wants[NCONNS], done[NCONNS];
    char keys[NCONNS][32];
    int got = 0;
    for (int i = 0; i < NCONNS; i++) {
        conns[i] = NULL;
        CHECK_STATUS(pool_get(pool, &conns[i], &err), POOL_OK, &err);
        snprintf(keys[i], sizeof keys[i], "nb:n%d", i);
        const char *argv[] = {"INCRBY", keys[i], "7"};
        done[i] = 0;
        wants[i] = 0;
        if (conns[i] == NULL) {
            done[i] = 1;
            continue;
        }
        CHECK_STATUS(pool_conn_start(conns[i], 3, argv, NULL, -1, &wants[i], &err), POOL_OK, &err);
    }
    int64_t end = now_ms() + scaled(30000);
    int finished = 0;
    while (finished < NCONNS && now_ms() < end) {
        struct pollfd fds[NCONNS];
        int idx[NCONNS], n = 0;
        for (int i = 0; i < NCONNS; i++) {
            if (done[i])
                continue;
            fds[n].fd = pool_conn_fd(conns[i]);
            fds[n].events = events_of(wants[i]);
            fds[n].revents = 0;
            idx[n++] = i;
        }
        if (n == 0)
            break;
        (void)poll(fds, (nfds_t)n, (int)scaled(5000));
        for (int k = 0; k < n; k++) {
            if (fds[k].revents == 0)
                continue;
            int i = idx[k];
            pool_reply_t *r = NULL;
            pool_status_t st = pool_conn_finish(conns[i], &r, &wants[i], &err);
            if (st == POOL_ERR_WOULD_BLOCK)
                continue;
            done[i] = 1;
            finished++;
            if (CHECK_STATUS(st, POOL_OK, &err) && CHECK(r != NULL)) {
                CHECK_EQ(r->type, POOL_REPLY_INTEGER);
                if (r->integer % 7 == 0)
                    got++;
                pool_reply_free(r);
            }
        }
    }
    CHECK_EQ(got, NCONNS);
    for (int i = 0; i < NCONNS; i++)
        if (conns[i] != NULL)
            CHECK_EQ(pool_put(pool, conns[i]), POOL_OK);
    pool_stats_t s;
    s.struct_size = sizeof s;
    CHECK_EQ(pool_stats(pool, &s), POOL_OK);
    CHECK_EQ(s.reset_conns, 0);
    pool_free(pool);
}

static void test_pipeline(int tls)
{
    pool_conn_t *conn;
    pool_t *pool =
        section_pool_conn(tls, "a pipeline of 200, an error reply in its place", &conn);
    if (pool == NULL)
        return;
    pool_error_t err;
    enum { N = 200 };
    int argcs[N];
    const char *const *argvs[N];
    static const char *del[] = {"DEL", "nb:p"};
    static const char *incr[] = {"INCR", "nb:p"};
    static const char *lpush[] = {"LPUSH", "nb:p", "x"};
    argcs[0] = 2;
    argvs[0] = del;
    for (int i = 1; i < N; i++) {
        argcs[i] = 2;
        argvs[i] = incr;
    }
    argcs[100] = 3;
    argvs[100] = lpush;
    int want = 0;
    CHECK_STATUS(pool_conn_start_pipeline(conn, N, argcs, argvs, NULL, -1, &want, &err), POOL_OK,
                 &err);
    CHECK_EQ(pool_conn_started(conn), N);
    pool_reply_t *one = NULL;
    CHECK_STATUS(pool_conn_finish(conn, &one, &want, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(one == NULL);
    pool_reply_t *replies[N];
    size_t n = 0;
    pool_status_t st;
    int64_t end = now_ms() + scaled(30000);
    while ((st = pool_conn_finish_pipeline(conn, replies, N, &n, &want, &err)) ==
               POOL_ERR_WOULD_BLOCK &&
           now_ms() < end) {
        struct pollfd p = {.fd = pool_conn_fd(conn), .events = events_of(want)};
        (void)poll(&p, 1, (int)scaled(5000));
    }
    CHECK_STATUS(st, POOL_OK, &err);
    CHECK_EQ(n, N);
    if (st == POOL_OK) {
        CHECK_EQ(replies[1]->integer, 1);
        CHECK_EQ(replies[99]->integer, 99);
        CHECK_EQ(replies[100]->type, POOL_REPLY_ERROR);
        CHECK_EQ(replies[199]->integer, 198);
        for (size_t i = 0; i < n; i++)
            pool_reply_free(replies[i]);
    }
    CHECK_EQ(pool_conn_started(conn), 0);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_free(pool);
}

static void test_deadline(int tls)
{
    pool_conn_t *conn;
    pool_t *pool = section_pool_conn(tls, "a deadline passes between start and finish", &conn);
    if (pool == NULL)
        return;
    pool_error_t err;
    uint64_t id = pool_conn_id(conn);
    const char *argv[] = {"BLPOP", "nb:empty", "0"};
    int want = 0;
    int64_t t = scaled(200);
    CHECK_STATUS(pool_conn_start(conn, 3, argv, NULL, t, &want, &err), POOL_OK, &err);
    int64_t left = pool_conn_wait_ms(conn);
    CHECK(left >= 0 && left <= t);
    int waits[2] = {0, 0};
    pool_reply_t *reply = NULL;
    CHECK_STATUS(finish_polling(conn, want, &reply, waits, &err), POOL_ERR_IO, &err);
    CHECK_CONTAINS(err.message, "timeout");
    CHECK(reply == NULL);
    CHECK_EQ(pool_conn_wait_ms(conn), -1);
    const char *ping[] = {"PING"};
    CHECK_STATUS(pool_conn_command(conn, 1, ping, NULL, &reply, &err), POOL_ERR_BAD_CONN, &err);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    conn = NULL;
    CHECK_STATUS(pool_get(pool, &conn, &err), POOL_OK, &err);
    if (conn != NULL) {
        CHECK_NE(pool_conn_id(conn), id);
        CHECK_STATUS(pool_conn_command(conn, 1, ping, NULL, &reply, &err), POOL_OK, &err);
        if (reply != NULL)
            pool_reply_free(reply);
        CHECK_EQ(pool_put(pool, conn), POOL_OK);
    }
    pool_free(pool);
}

static void test_misuse(int tls)
{
    pool_conn_t *conn;
    pool_t *pool = section_pool_conn(tls, "misuse gets clear codes, nothing is lost", &conn);
    if (pool == NULL)
        return;
    pool_error_t err;
    pool_reply_t *reply = NULL;
    int want = -1;
    CHECK_STATUS(pool_conn_finish(conn, &reply, &want, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "no command started");
    CHECK_EQ(want, 0);
    const char *set1[] = {"SET", "nb:m", "first"};
    CHECK_STATUS(pool_conn_command(conn, 3, set1, NULL, &reply, &err), POOL_OK, &err);
    pool_reply_free(reply);
    const char *get[] = {"GET", "nb:m"};
    CHECK_STATUS(pool_conn_start(conn, 2, get, NULL, -1, &want, &err), POOL_OK, &err);
    const char *set2[] = {"SET", "nb:m", "second"};
    CHECK_STATUS(pool_conn_start(conn, 3, set2, NULL, -1, &want, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "unfinished");
    reply = NULL;
    CHECK_STATUS(pool_conn_command(conn, 3, set2, NULL, &reply, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(reply == NULL);
    char buf[8];
    size_t n = 0;
    CHECK_STATUS(pool_conn_read(conn, buf, sizeof buf, 0, &n, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_write(conn, "x", 1, 0, &n, &err), POOL_ERR_INVALID_ARG, &err);
    int waits[2] = {0, 0};
    CHECK_STATUS(finish_polling(conn, POOL_WANT_READ, &reply, waits, &err), POOL_OK, &err);
    if (CHECK(reply != NULL)) {
        CHECK_EQ(reply->len, 5);
        CHECK(memcmp(reply->str, "first", 5) == 0);
        pool_reply_free(reply);
    }
    /* NULLs. */
    CHECK_STATUS(pool_conn_start(NULL, 2, get, NULL, -1, &want, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_start(conn, 0, get, NULL, -1, &want, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_start(conn, 2, NULL, NULL, -1, &want, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_finish(conn, NULL, &want, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_finish_pipeline(conn, NULL, 1, &n, &want, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK_EQ(pool_conn_started(NULL), 0);
    CHECK_EQ(pool_conn_wait_ms(NULL), -1);

    /* Put mid-command: closed, never handed out with its reply unread. */
    pool_stats_t s;
    s.struct_size = sizeof s;
    CHECK_EQ(pool_stats(pool, &s), POOL_OK);
    uint64_t reset = s.reset_conns;
    uint64_t id = pool_conn_id(conn);
    CHECK_STATUS(pool_conn_start(conn, 2, get, NULL, -1, &want, &err), POOL_OK, &err);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    CHECK_EQ(pool_stats(pool, &s), POOL_OK);
    CHECK_EQ(s.reset_conns, reset + 1);
    for (int i = 0; i < 3; i++) {
        conn = NULL;
        CHECK_STATUS(pool_get(pool, &conn, &err), POOL_OK, &err);
        if (conn == NULL)
            break;
        CHECK_NE(pool_conn_id(conn), id);
        const char *echo[] = {"ECHO", "mine"};
        CHECK_STATUS(pool_conn_command(conn, 2, echo, NULL, &reply, &err), POOL_OK, &err);
        if (reply != NULL) {
            CHECK(reply->len == 4 && memcmp(reply->str, "mine", 4) == 0);
            pool_reply_free(reply);
        }
        CHECK_EQ(pool_put(pool, conn), POOL_OK);
    }
    /* A handle already put. */
    CHECK_STATUS(pool_conn_finish(conn, &reply, &want, &err), POOL_ERR_INVALID_ARG, &err);
    pool_free(pool);
}

static int is_invalidate(const pool_reply_t *r, const char *key)
{
    return r != NULL && r->type == POOL_REPLY_PUSH && r->elements == 2 &&
           r->element[0]->str != NULL && strcmp(r->element[0]->str, "invalidate") == 0 &&
           r->element[1]->elements == 1 && r->element[1]->element[0]->str != NULL &&
           strcmp(r->element[1]->element[0]->str, key) == 0;
}

/* Finishes the pipeline started on `conn`, waiting only in poll(2). */
static pool_status_t finish_pipeline_polling(pool_conn_t *conn, int want, pool_reply_t **replies,
                                             size_t cap, size_t *n, pool_error_t *err)
{
    int64_t end = now_ms() + scaled(30000);
    for (;;) {
        struct pollfd p = {.fd = pool_conn_fd(conn), .events = events_of(want)};
        (void)poll(&p, 1, (int)scaled(5000));
        pool_status_t st = pool_conn_finish_pipeline(conn, replies, cap, n, &want, err);
        if (st != POOL_ERR_WOULD_BLOCK || now_ms() > end)
            return st;
    }
}

/* RESP3 pushes that arrive right behind a started command's last reply (an invalidation
 * Redis sends a tracking conn after the reply of its own write to a key it tracks) are
 * kept for pool_conn_next_push when the conn keeps pushes, as the blocking call keeps
 * them; the conn stays in step. */
static void test_pushes(int tls)
{
    section(tls ? "non-blocking over TLS: pushes right behind the last reply are kept"
                : "non-blocking: pushes right behind the last reply are kept");
    pool_t *pool = make_pool_protocol(tls, 3);
    if (pool == NULL)
        return;
    pool_error_t err;
    pool_conn_t *conn = NULL;
    CHECK_STATUS(pool_get(pool, &conn, &err), POOL_OK, &err);
    if (conn == NULL) {
        pool_free(pool);
        return;
    }
    CHECK_STATUS(pool_conn_keep_pushes(conn, true, &err), POOL_OK, &err);
    const char *tracking[] = {"CLIENT", "TRACKING", "ON"};
    const char *get[] = {"GET", "nb:tracked"};
    const char *set[] = {"SET", "nb:tracked", "v"};
    const char *ping[] = {"PING"};
    pool_reply_t *reply = NULL, *push = NULL;
    CHECK_STATUS(pool_conn_command(conn, 3, tracking, NULL, &reply, &err), POOL_OK, &err);
    pool_reply_free(reply);
    for (int round = 0; round < 2; round++) {
        /* Track the key, then change it on this conn: the invalidation follows the reply. */
        reply = NULL;
        CHECK_STATUS(pool_conn_command(conn, 2, get, NULL, &reply, &err), POOL_OK, &err);
        pool_reply_free(reply);
        int want = 0;
        if (round == 0) {
            CHECK_STATUS(pool_conn_start(conn, 3, set, NULL, -1, &want, &err), POOL_OK, &err);
            int waits[2] = {0, 0};
            reply = NULL;
            CHECK_STATUS(finish_polling(conn, want, &reply, waits, &err), POOL_OK, &err);
            if (CHECK(reply != NULL)) {
                CHECK_EQ(reply->type, POOL_REPLY_STATUS);
                pool_reply_free(reply);
            }
        } else {
            const char *const *argvs[] = {ping, set};
            int argcs[] = {1, 3};
            CHECK_STATUS(pool_conn_start_pipeline(conn, 2, argcs, argvs, NULL, -1, &want, &err),
                         POOL_OK, &err);
            pool_reply_t *replies[2] = {NULL, NULL};
            size_t n = 0;
            CHECK_STATUS(finish_pipeline_polling(conn, want, replies, 2, &n, &err), POOL_OK, &err);
            CHECK_EQ(n, 2);
            for (size_t i = 0; i < n && i < 2; i++) {
                CHECK(replies[i] != NULL && replies[i]->type == POOL_REPLY_STATUS);
                pool_reply_free(replies[i]);
            }
        }
        /* Already read with the reply: there without waiting. */
        push = NULL;
        CHECK_STATUS(pool_conn_next_push(conn, 0, &push, &err), POOL_OK, &err);
        CHECK(is_invalidate(push, "nb:tracked"));
        pool_reply_free(push);
        push = NULL;
        CHECK_STATUS(pool_conn_next_push(conn, 0, &push, &err), POOL_ERR_TIMEOUT, &err);
        CHECK(push == NULL);
        /* The conn is in step: the next reply is its own. */
        reply = NULL;
        CHECK_STATUS(pool_conn_command(conn, 1, ping, NULL, &reply, &err), POOL_OK, &err);
        CHECK(reply != NULL && reply->type == POOL_REPLY_STATUS && reply->str != NULL &&
              strcmp(reply->str, "PONG") == 0);
        pool_reply_free(reply);
    }
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_free(pool);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 4) {
        fprintf(stderr, "usage: %s PLAIN_ADDR CERT_DIR TLS_ADDR\n", argv[0]);
        return 2;
    }
    plain_addr = argv[1];
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", argv[2]);
    tls_addr = argv[3];
    for (int tls = 0; tls < 2; tls++) {
        test_many(tls);
        test_pipeline(tls);
        test_deadline(tls);
        test_misuse(tls);
        test_pushes(tls);
    }
    return check_exit_status();
}
