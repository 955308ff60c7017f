/*
 * abi_tls.c - TLS through the C ABI, against real redis-servers started with --tls-port
 * and certificates made at test time (tests/common/tls.rs).
 *
 *   ./abi_tls CERT_DIR TLS_ADDR PLAIN_ADDR MTLS_ADDR EXPIRED_ADDR
 *
 * TLS_ADDR: TLS port (server certificate for 127.0.0.1/localhost, no client
 * certificate asked); PLAIN_ADDR: the plain port of that server; MTLS_ADDR: TLS with
 * --tls-auth-clients yes; EXPIRED_ADDR: TLS with an expired certificate.
 *
 * Checks, through the public header only:
 *  - pool_options_t tls fields and rediss:// URLs: commands, pipelines, a big reply;
 *  - each failure: unknown CA, wrong host name, expired certificate, TLS to a plain
 *    port, plain to a TLS port, mutual TLS without a client certificate: a clear code
 *    and message, within dial_timeout_ms;
 *  - configuration errors from pool_new: missing / malformed PEM, key not matching its
 *    certificate, a key file that holds no key (never its contents in the message);
 *  - mutual TLS with a client certificate;
 *  - pool_conn_read / pool_conn_write on a TLS conn, blocking and non-blocking;
 *  - the health check: a TLS conn the server killed is never handed out, a healthy one
 *    is reused; pool_try_get; a cancelled get;
 *  - fork(): the child drops the parent's TLS sessions without using them, and dials
 *    its own; the parent's conn still works afterwards;
 *  - a subscriber on a TLS pool: messages of many records taken as its fd says, ping,
 *    resubscription over a new TLS session after CLIENT KILL.
 *
 * Prints one line per failed check (file:line) on stderr; exits 0 only if every
 * check passed. Run by tests/c_abi.rs (also under valgrind and ASan).
 */
#define _GNU_SOURCE

#include <poll.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static const char *cert_dir, *tls_addr, *plain_addr, *mtls_addr, *expired_addr;
static char ca_file[1024], other_ca[1024], client_cert[1024], client_key[1024],
    server_key[1024], malformed[1024];

static pool_options_t tls_options(const char *addr)
{
    pool_options_t o;
    pool_options_init(&o);
    o.addr = addr;
    o.tls = true;
    o.tls_ca_file = ca_file;
    o.pool_size = 4;
    o.dialer_retries = 1;
    o.dial_timeout_ms = scaled(3000);
    o.pool_timeout_ms = scaled(10000);
    o.read_timeout_ms = scaled(5000);
    o.write_timeout_ms = scaled(5000);
    return o;
}

/* One command by NUL-terminated arguments: the reply (owned by the caller) or NULL. */
static pool_reply_t *cmd(pool_conn_t *conn, int argc, const char *const *argv)
{
    pool_reply_t *reply = NULL;
    pool_error_t err;
    err_reset(&err);
    if (!CHECK_STATUS(pool_conn_command(conn, argc, argv, NULL, &reply, &err), POOL_OK, &err))
        return NULL;
    return reply;
}

static int reply_is(pool_conn_t *conn, int argc, const char *const *argv, const char *want)
{
    pool_reply_t *r = cmd(conn, argc, argv);
    int ok = r != NULL && r->str != NULL && strcmp(r->str, want) == 0;
    if (!ok)
        fprintf(stderr, "  %s: got %s\n", argv[0], r != NULL && r->str ? r->str : "(none)");
    pool_reply_free(r);
    return ok;
}

/* PING through pool_conn_command (pool_conn_fd would see TLS records). */
static int tls_ping(pool_conn_t *conn)
{
    return reply_is(conn, 1, (const char *const[]){"PING"}, "PONG");
}

static void test_round_trip(void)
{
    section("TLS: pool_options_t tls fields, commands, pipeline, a reply over many records");
    pool_options_t o = tls_options(tls_addr);
    pool_t *pool = new_pool_or_exit(&o);
    pool_conn_t *conn = get_conn(pool);
    if (conn == NULL)
        goto out;
    CHECK(reply_is(conn, 3, (const char *const[]){"SET", "k", "over tls"}, "OK"));
    CHECK(reply_is(conn, 2, (const char *const[]){"GET", "k"}, "over tls"));
    /* 200 KB: a dozen TLS records. */
    size_t big_len = 200 * 1000;
    char *big = malloc(big_len + 1);
    memset(big, 'b', big_len);
    big[big_len] = '\0';
    CHECK(reply_is(conn, 3, (const char *const[]){"SET", "big", big}, "OK"));
    pool_reply_t *r = cmd(conn, 2, (const char *const[]){"GET", "big"});
    CHECK(r != NULL && r->len == big_len && memcmp(r->str, big, big_len) == 0);
    pool_reply_free(r);
    free(big);
    /* A pipeline: three commands in one write. */
    const char *a0[] = {"INCR", "n"}, *a1[] = {"INCR", "n"}, *a2[] = {"GET", "n"};
    const char *const *argvs[] = {a0, a1, a2};
    int argcs[] = {2, 2, 2};
    pool_reply_t *replies[3] = {NULL, NULL, NULL};
    pool_error_t err;
    err_reset(&err);
    size_t nreplies = 0;
    if (CHECK_STATUS(pool_conn_pipeline(conn, 3, argcs, argvs, NULL, -1, replies, &nreplies, &err),
                     POOL_OK, &err)) {
        CHECK_EQ(nreplies, 3);
        CHECK(replies[2] != NULL && replies[2]->str != NULL && strcmp(replies[2]->str, "2") == 0);
    }
    for (int i = 0; i < 3; i++)
        pool_reply_free(replies[i]);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
out:
    pool_free(pool);
}

/* A get on a pool with options `o` must fail with `want`, the message naming `needle`. */
static void check_get_fails(pool_options_t *o, pool_status_t want, const char *needle)
{
    pool_t *pool = new_pool_or_exit(o);
    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    int64_t start = now_ms();
    pool_status_t rc = pool_get(pool, &conn, &err);
    int64_t took = now_ms() - start;
    CHECK_STATUS(rc, want, &err);
    CHECK(conn == NULL);
    if (!CHECK_CONTAINS(err.message, needle))
        fprintf(stderr, "  (message: %s)\n", err.message);
    /* Within the dial timeout (with room for a loaded machine), never a hang. */
    CHECK(took < o->dial_timeout_ms + scaled(10000));
    pool_free(pool);
}

static void test_failures(void)
{
    section("TLS: unknown CA, wrong host name, expired, plain port, no client certificate");
    pool_options_t o = tls_options(tls_addr);
    o.tls_ca_file = other_ca;
    check_get_fails(&o, POOL_ERR_TLS, "unknown issuer");

    o = tls_options(tls_addr);
    o.tls_server_name = "wrong.example";
    check_get_fails(&o, POOL_ERR_TLS, "wrong host name");

    o = tls_options(expired_addr);
    check_get_fails(&o, POOL_ERR_TLS, "expired");

    o = tls_options(mtls_addr);
    check_get_fails(&o, POOL_ERR_TLS, "client certificate");

    /* Plain Redis reads the ClientHello as an inline command: an error line back (not
     * TLS), or a wait for the rest of the line until the dial timeout. */
    o = tls_options(plain_addr);
    o.dial_timeout_ms = scaled(1500);
    pool_t *pool = new_pool_or_exit(&o);
    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    pool_status_t rc = pool_get(pool, &conn, &err);
    CHECK((rc == POOL_ERR_TLS && strstr(err.message, "non-TLS port") != NULL) ||
          (rc == POOL_ERR_DIAL && strstr(err.message, "TLS handshake timed out") != NULL));
    pool_free(pool);

    /* Plain spoken to the TLS port. */
    pool_options_init(&o);
    o.addr = tls_addr;
    o.dialer_retries = 1;
    o.dial_timeout_ms = scaled(3000);
    pool = new_pool_or_exit(&o);
    err_reset(&err);
    conn = NULL;
    rc = pool_get(pool, &conn, &err);
    CHECK(rc != POOL_OK && conn == NULL);
    CHECK_CONTAINS(err.message, "TLS port?");
    pool_free(pool);

    section("TLS: mutual TLS with a client certificate");
    o = tls_options(mtls_addr);
    o.tls_cert_file = client_cert;
    o.tls_key_file = client_key;
    pool = new_pool_or_exit(&o);
    conn = get_conn(pool);
    if (conn != NULL) {
        CHECK(tls_ping(conn));
        CHECK_EQ(pool_put(pool, conn), POOL_OK);
    }
    pool_free(pool);
}

/* pool_new with `o` must fail with POOL_ERR_INVALID_ARG naming `needle`. */
static void check_config_error(const pool_options_t *o, const char *needle)
{
    pool_t *pool = NULL;
    pool_error_t err;
    err_reset(&err);
    CHECK_STATUS(pool_new(o, &pool, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(pool == NULL);
    if (!CHECK_CONTAINS(err.message, needle))
        fprintf(stderr, "  (message: %s)\n", err.message);
    CHECK(strstr(err.message, "BEGIN") == NULL);
    CHECK(strstr(err.message, "PRIVATE") == NULL);
}

static void test_config_errors(void)
{
    section("TLS: configuration errors come from pool_new, never a key in a message");
    pool_options_t o = tls_options(tls_addr);
    o.tls_ca_file = "/nonexistent/ca.pem";
    check_config_error(&o, "tls_ca_file");
    o.tls_ca_file = malformed;
    check_config_error(&o, "malformed PEM");
    o = tls_options(tls_addr);
    o.tls_cert_file = client_cert;
    o.tls_key_file = server_key;
    check_config_error(&o, "does not match");
    o.tls_key_file = client_cert;
    check_config_error(&o, "no PEM private key");
    o.tls_key_file = NULL;
    check_config_error(&o, "tls_cert_file");
    o = tls_options(tls_addr);
    o.tls_min_version = 11;
    check_config_error(&o, "tls_min_version");
    /* A unix socket has no host name to verify. */
    o = tls_options("/tmp/redispool-no-such.sock");
    check_config_error(&o, "tls_server_name");
}

static void test_raw_io(void)
{
    section("TLS: pool_conn_read / pool_conn_write, blocking and non-blocking");
    pool_options_t o = tls_options(tls_addr);
    pool_t *pool = new_pool_or_exit(&o);
    pool_conn_t *conn = get_conn(pool);
    if (conn == NULL)
        goto out;
    char buf[64];
    size_t n = 0;
    pool_error_t err;
    /* Nothing sent yet: a non-blocking read would block. */
    err_reset(&err);
    CHECK_STATUS(pool_conn_read(conn, buf, sizeof buf, 0, &n, &err), POOL_ERR_WOULD_BLOCK, &err);
    CHECK_EQ(n, 0);
    const char *ping = "*1\r\n$4\r\nPING\r\n";
    err_reset(&err);
    CHECK_STATUS(pool_conn_write(conn, ping, strlen(ping), scaled(5000), &n, &err), POOL_OK, &err);
    CHECK_EQ(n, strlen(ping));
    CHECK(!pool_conn_write_pending(conn));
    err_reset(&err);
    CHECK_STATUS(pool_conn_read(conn, buf, sizeof buf, scaled(5000), &n, &err), POOL_OK, &err);
    CHECK(n == 7 && memcmp(buf, "+PONG\r\n", 7) == 0);

    /* Non-blocking: write, poll the fd, read until would-block. */
    err_reset(&err);
    CHECK_STATUS(pool_conn_write(conn, ping, strlen(ping), 0, &n, &err), POOL_OK, &err);
    int64_t deadline = now_ms() + scaled(5000);
    while (pool_conn_write_pending(conn) && now_ms() < deadline) {
        struct pollfd p = {pool_conn_fd(conn), POLLOUT, 0};
        poll(&p, 1, 100);
        err_reset(&err);
        pool_conn_write(conn, NULL, 0, 0, &n, &err);
    }
    size_t got = 0;
    while (got < 7 && now_ms() < deadline) {
        err_reset(&err);
        pool_status_t rc = pool_conn_read(conn, buf + got, sizeof buf - got, 0, &n, &err);
        if (rc == POOL_ERR_WOULD_BLOCK) {
            struct pollfd p = {pool_conn_fd(conn), POLLIN, 0};
            poll(&p, 1, 100);
            continue;
        }
        if (!CHECK_STATUS(rc, POOL_OK, &err) || !CHECK(n > 0))
            break;
        got += n;
    }
    CHECK(got == 7 && memcmp(buf, "+PONG\r\n", 7) == 0);
    /* The conn's own commands still work after raw I/O. */
    CHECK(tls_ping(conn));
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    /* The next get peeks it (the fd was lent) and keeps it: nothing left unread. */
    pool_conn_t *again = get_conn(pool);
    if (again != NULL) {
        CHECK(tls_ping(again));
        CHECK_EQ(pool_put(pool, again), POOL_OK);
    }
    CHECK_EQ(stats_of(pool).stale_conns, 0);
out:
    pool_free(pool);
}

static void test_health(void)
{
    section("TLS: health check: a killed conn is never handed out, a healthy one is reused");
    pool_options_t o = tls_options(tls_addr);
    o.client_name = "abi-tls-victim";
    pool_t *pool = new_pool_or_exit(&o);
    pool_conn_t *conn = get_conn(pool);
    if (conn == NULL)
        goto out;
    uint64_t id = pool_conn_id(conn);
    CHECK(tls_ping(conn));
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    /* Reused, session tickets and all. */
    for (int i = 0; i < 3; i++) {
        conn = get_conn(pool);
        if (conn == NULL)
            goto out;
        CHECK_EQ(pool_conn_id(conn), id);
        CHECK(tls_ping(conn));
        CHECK_EQ(pool_put(pool, conn), POOL_OK);
    }
    /* Killed from another conn of the same pool. */
    conn = get_conn(pool);
    if (conn == NULL)
        goto out;
    pool_reply_t *r = cmd(conn, 2, (const char *const[]){"CLIENT", "ID"});
    char victim[32] = "0";
    if (CHECK(r != NULL && r->type == POOL_REPLY_INTEGER))
        snprintf(victim, sizeof victim, "%lld", (long long)r->integer);
    pool_reply_free(r);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_conn_t *killer = NULL;
    pool_error_t err;
    err_reset(&err);
    if (CHECK_STATUS(pool_new_conn(pool, &killer, &err), POOL_OK, &err)) {
        r = cmd(killer, 4, (const char *const[]){"CLIENT", "KILL", "ID", victim});
        CHECK(r != NULL && r->type == POOL_REPLY_INTEGER && r->integer == 1);
        pool_reply_free(r);
        /* Gone once the server lists it no more. */
        int gone = 0;
        int64_t deadline = now_ms() + scaled(10000);
        while (!gone && now_ms() < deadline) {
            r = cmd(killer, 4, (const char *const[]){"CLIENT", "LIST", "ID", victim});
            gone = r != NULL && r->str != NULL && r->len == 0;
            pool_reply_free(r);
            if (!gone)
                sleep_ms(10);
        }
        CHECK(gone);
        pool_close_conn(pool, killer);
    }
    pool_stats_t before = stats_of(pool);
    conn = get_conn(pool);
    if (conn != NULL) {
        CHECK_NE(pool_conn_id(conn), id);
        CHECK(tls_ping(conn));
        CHECK_EQ(pool_put(pool, conn), POOL_OK);
    }
    CHECK_EQ(stats_of(pool).stale_conns, before.stale_conns + 1);

    section("TLS: pool_try_get and pool_notify_fd, a cancelled get");
    pool_conn_t *held[4];
    for (int i = 0; i < 4; i++)
        held[i] = get_conn(pool);
    conn = NULL;
    CHECK_EQ(pool_try_get(pool, &conn), POOL_ERR_WOULD_BLOCK);
    int nfd = pool_notify_fd(pool);
    CHECK(nfd >= 0);
    for (int i = 0; i < 4; i++)
        if (held[i] != NULL)
            CHECK_EQ(pool_put(pool, held[i]), POOL_OK);
    struct pollfd p = {nfd, POLLIN, 0};
    CHECK(poll(&p, 1, (int)scaled(5000)) == 1);
    conn = NULL;
    if (CHECK_EQ(pool_try_get(pool, &conn), POOL_OK) && conn != NULL) {
        CHECK(tls_ping(conn));
        CHECK_EQ(pool_put(pool, conn), POOL_OK);
    }
    pool_cancel_t *cancel = pool_cancel_new();
    for (int i = 0; i < 4; i++)
        held[i] = get_conn(pool);
    pool_cancel_fire(cancel);
    conn = NULL;
    err_reset(&err);
    CHECK_STATUS(pool_get_ex(pool, scaled(5000), cancel, &conn, &err), POOL_ERR_CANCELED, &err);
    pool_cancel_free(cancel);
    for (int i = 0; i < 4; i++)
        if (held[i] != NULL)
            CHECK_EQ(pool_put(pool, held[i]), POOL_OK);
out:
    pool_free(pool);
}

static void test_fork(void)
{
    section("TLS: fork: the child drops the parent's sessions, dials its own");
    pool_options_t o = tls_options(tls_addr);
    pool_t *pool = new_pool_or_exit(&o);
    pool_conn_t *conn = get_conn(pool);
    if (conn == NULL)
        goto out;
    uint64_t id = pool_conn_id(conn);
    CHECK(tls_ping(conn));
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int before = check_failures;
        pool_conn_t *c = get_conn(pool);
        if (c != NULL) {
            CHECK_NE(pool_conn_id(c), id);
            CHECK(reply_is(c, 3, (const char *const[]){"SET", "forked", "child"}, "OK"));
            CHECK_EQ(pool_put(pool, c), POOL_OK);
        }
        pool_free(pool);
        check_child_exit(check_failures == before ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's TLS session was neither used nor shut down by the child. */
    conn = get_conn(pool);
    if (conn != NULL) {
        CHECK_EQ(pool_conn_id(conn), id);
        CHECK(reply_is(conn, 2, (const char *const[]){"GET", "forked"}, "child"));
        CHECK_EQ(pool_put(pool, conn), POOL_OK);
    }
    CHECK_EQ(stats_of(pool).stale_conns, 0);
out:
    pool_free(pool);
}

/* The next subscriber message within 10 s (scaled) of `kind`, NULL (a failed check) else. */
static pool_message_t *sub_expect(pool_subscriber_t *sub, int32_t kind, int line)
{
    pool_message_t *m = NULL;
    pool_error_t err;
    err_reset(&err);
    pool_status_t st = pool_subscriber_receive(sub, scaled(10000), &m, &err);
    if (!check_status(st, POOL_OK, &err, __FILE__, line, "pool_subscriber_receive"))
        return NULL;
    if (!check_eq_i64(m->kind, kind, __FILE__, line, "message kind", "kind")) {
        pool_message_free(m);
        return NULL;
    }
    return m;
}

static void publish(pool_t *pool, const char *chan, const char *payload, size_t len)
{
    pool_conn_t *conn = get_conn(pool);
    if (conn == NULL)
        return;
    const char *argv[] = {"PUBLISH", chan, payload};
    size_t lens[] = {7, strlen(chan), len};
    pool_reply_t *r = NULL;
    pool_error_t err;
    err_reset(&err);
    if (CHECK_STATUS(pool_conn_command(conn, 3, argv, lens, &r, &err), POOL_OK, &err))
        CHECK(r != NULL && r->type == POOL_REPLY_INTEGER && r->integer == 1);
    pool_reply_free(r);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
}

static void test_subscriber(void)
{
    section("TLS: a subscriber: messages over many records, its fd, resubscribed after a kill");
    pool_options_t o = tls_options(tls_addr);
    o.client_name = "abi-tls-sub";
    pool_t *pool = new_pool_or_exit(&o);
    pool_subscriber_t *sub = NULL;
    pool_error_t err;
    err_reset(&err);
    if (!CHECK_STATUS(pool_subscriber_new(pool, &sub, &err), POOL_OK, &err))
        goto out;
    const char *chans[] = {"abi-tls-ch"};
    err_reset(&err);
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    pool_message_free(sub_expect(sub, POOL_MSG_SUBSCRIBE, __LINE__));
    /* Small and large messages (a 200 kB payload spans 13 TLS records), taken as the fd
     * says: poll, then receive without waiting until nothing is left. */
    size_t big_len = 200 * 1000;
    char *big = malloc(big_len);
    if (!CHECK(big != NULL))
        goto out;
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        if (i % 4 == 3)
            publish(pool, chans[0], big, big_len);
        else
            publish(pool, chans[0], "small", 5);
    }
    int fd = pool_subscriber_fd(sub);
    CHECK(fd >= 0);
    int got = 0;
    int64_t deadline = now_ms() + scaled(10000);
    while (got < N && now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)scaled(10000)) != 1)
            break;
        pool_message_t *m = NULL;
        while (pool_subscriber_receive(sub, 0, &m, NULL) == POOL_OK) {
            int want_big = got % 4 == 3;
            CHECK_EQ(m->kind, POOL_MSG_MESSAGE);
            if (want_big)
                CHECK(m->payload_len == big_len && memcmp(m->payload, big, big_len) == 0);
            else
                CHECK(m->payload_len == 5 && memcmp(m->payload, "small", 5) == 0);
            pool_message_free(m);
            got++;
        }
    }
    CHECK_EQ(got, N);
    free(big);
    err_reset(&err);
    CHECK_STATUS(pool_subscriber_ping(sub, scaled(5000), &err), POOL_OK, &err);
    /* The server kills the subscriber's conn: a new TLS session carries the channel. */
    pool_conn_t *killer = get_conn(pool);
    if (killer != NULL) {
        pool_reply_t *r =
            cmd(killer, 4, (const char *const[]){"CLIENT", "KILL", "TYPE", "pubsub"});
        CHECK(r != NULL && r->type == POOL_REPLY_INTEGER && r->integer == 1);
        pool_reply_free(r);
        CHECK_EQ(pool_put(pool, killer), POOL_OK);
    }
    pool_message_t *m = sub_expect(sub, POOL_MSG_RESUBSCRIBED, __LINE__);
    if (m != NULL)
        CHECK_EQ(m->count, 1);
    pool_message_free(m);
    pool_message_free(sub_expect(sub, POOL_MSG_SUBSCRIBE, __LINE__));
    publish(pool, chans[0], "again", 5);
    m = sub_expect(sub, POOL_MSG_MESSAGE, __LINE__);
    if (m != NULL)
        CHECK(m->payload_len == 5 && memcmp(m->payload, "again", 5) == 0);
    pool_message_free(m);
    CHECK_EQ(pool_subscriber_resubscribes(sub), 1);
out:
    pool_subscriber_free(sub);
    pool_free(pool);
}

/* An edge-triggered loop on pool_subscriber_fd (epoll EPOLLET, as Go's netpoller or libuv):
 * after each edge, receive with timeout 0 until POOL_ERR_TIMEOUT. A burst of 200 messages
 * (3 KiB, every tenth 40 kB to 640 kB: frames cut across TLS records), published before the
 * subscriber reads any, must all arrive, each wait seeing an edge: a POOL_ERR_TIMEOUT leaves
 * nothing in the socket, the TLS session or the parser. */
static void test_subscriber_edge_triggered(void)
{
    section("TLS: a subscriber on an edge-triggered epoll: every message of a burst");
    enum { N = 200 };
    pool_options_t o = tls_options(tls_addr);
    pool_t *pool = new_pool_or_exit(&o);
    pool_subscriber_t *sub = NULL;
    pool_error_t err;
    err_reset(&err);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char *buf = malloc((size_t)40000 << 4);
    if (!CHECK(ep >= 0) || !CHECK(buf != NULL) ||
        !CHECK_STATUS(pool_subscriber_new(pool, &sub, &err), POOL_OK, &err))
        goto out;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, pool_subscriber_fd(sub), &ev), 0);
    const char *chans[] = {"abi-tls-et"};
    err_reset(&err);
    CHECK_STATUS(pool_subscriber_subscribe(sub, 1, chans, NULL, &err), POOL_OK, &err);
    int got = -1; /* -1: the confirmation comes first */
    int edges = 0, bad = 0;
    while (got < N && edges < 100000) {
        struct epoll_event out;
        check_total++;
        if (epoll_wait(ep, &out, 1, (int)scaled(10000)) != 1) {
            check_fail(__FILE__, __LINE__, "message %d of %d pending, no edge within %lld ms",
                       got, N, (long long)scaled(10000));
            break;
        }
        edges++;
        pool_message_t *m = NULL;
        pool_status_t st;
        err_reset(&err);
        while ((st = pool_subscriber_receive(sub, 0, &m, &err)) == POOL_OK) {
            if (got < 0) {
                CHECK_EQ(m->kind, POOL_MSG_SUBSCRIBE);
            } else if (got < N) {
                /* Message i: "<i>:" then its size in 'x'. */
                size_t len = got % 10 == 9 ? (size_t)40000 << (got / 10 % 5) : 3072;
                char head[16];
                int n = snprintf(head, sizeof head, "%d:", got);
                int ok = m->kind == POOL_MSG_MESSAGE && m->payload_len == len &&
                         memcmp(m->payload, head, (size_t)n) == 0 &&
                         strspn(m->payload + n, "x") == len - (size_t)n;
                /* One check for the burst, with the first message that is wrong. */
                if (!ok && bad++ == 0) {
                    check_total++;
                    check_fail(__FILE__, __LINE__, "message %d: kind %d, %zu bytes", got, m->kind,
                               m->payload_len);
                }
            }
            got++;
            pool_message_free(m);
        }
        CHECK_STATUS(st, POOL_ERR_TIMEOUT, &err);
        /* The burst goes out once the confirmation is in, before any of it is read. */
        if (got == 0) {
            for (int i = 0; i < N; i++) {
                size_t len = i % 10 == 9 ? (size_t)40000 << (i / 10 % 5) : 3072;
                memset(buf, 'x', len);
                char head[16];
                int n = snprintf(head, sizeof head, "%d:", i);
                memcpy(buf, head, (size_t)n);
                publish(pool, chans[0], buf, len);
            }
        }
    }
    CHECK_EQ(got, N);
    CHECK_EQ(bad, 0);
out:
    free(buf);
    if (ep >= 0)
        close(ep);
    pool_subscriber_free(sub);
    pool_free(pool);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 6) {
        fprintf(stderr, "usage: %s CERT_DIR TLS_ADDR PLAIN_ADDR MTLS_ADDR EXPIRED_ADDR\n", argv[0]);
        return 2;
    }
    cert_dir = argv[1];
    tls_addr = argv[2];
    plain_addr = argv[3];
    mtls_addr = argv[4];
    expired_addr = argv[5];
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", cert_dir);
    snprintf(other_ca, sizeof other_ca, "%s/other-ca.pem", cert_dir);
    snprintf(client_cert, sizeof client_cert, "%s/client.pem", cert_dir);
    snprintf(client_key, sizeof client_key, "%s/client.key", cert_dir);
    snprintf(server_key, sizeof server_key, "%s/server.key", cert_dir);
    snprintf(malformed, sizeof malformed, "%s/malformed.pem", cert_dir);

    test_round_trip();
    test_failures();
    test_config_errors();
    test_raw_io();
    test_health();
    test_fork();
    test_subscriber();
    test_subscriber_edge_triggered();
    return check_exit_status();
}
