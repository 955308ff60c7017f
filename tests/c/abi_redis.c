/*
 * abi_redis.c - Redis-ready conns through the C ABI, against real redis-servers:
 * pool_new_url, pool_conn_command and pool_reply_t (RESP2 and RESP3), the session set-up
 * of every new conn (AUTH / ACL user / HELLO 3 / SELECT / CLIENT SETNAME), handshake
 * refusals, read timeouts marking a conn bad, and the PING check of long-idle conns.
 *
 * usage: abi_redis PLAIN_ADDR AUTH_ADDR
 *   PLAIN_ADDR  a redis-server without a password, started with --enable-debug-command yes
 *   AUTH_ADDR   a redis-server with requirepass "s3cret" and an ACL user alice/wonderland
 */
#define _GNU_SOURCE /* strdup, clock_gettime under -std=c11 */
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "check.h"

static const char *plain_addr;
static const char *auth_addr;

/* A command run from NULL-terminated string arguments (at most 32). */
typedef struct command {
    const char *name; /* argv[0], for messages */
    pool_status_t st;
    pool_error_t err;
    pool_reply_t *reply; /* NULL on error */
} command_t;

static command_t vcommand(pool_conn_t *conn, va_list ap)
{
    const char *argv[32];
    int argc = 0;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 32)
        argv[argc++] = a;
    command_t c;
    c.name = argv[0];
    c.reply = NULL;
    c.st = pool_conn_command(conn, argc, argv, NULL, &c.reply, &c.err);
    return c;
}

/* Runs a command given as NULL-terminated strings; returns the reply (NULL on error). */
static pool_reply_t *cmd_status(pool_conn_t *conn, pool_status_t *st, pool_error_t *err, ...)
{
    va_list ap;
    va_start(ap, err);
    command_t c = vcommand(conn, ap);
    va_end(ap);
    *st = c.st;
    *err = c.err;
    return c.reply;
}

/* A command that must succeed. */
#define CMD(conn, ...) cmd_ok((conn), __FILE__, __LINE__, __VA_ARGS__, (const char *)NULL)

static pool_reply_t *cmd_ok(pool_conn_t *conn, const char *file, int line, ...)
{
    va_list ap;
    va_start(ap, line);
    command_t c = vcommand(conn, ap);
    va_end(ap);
    check_total++;
    if (c.st != POOL_OK || c.reply == NULL)
        check_fail(file, line, "%s: status %d (%s): %s", c.name, c.st, pool_status_str(c.st),
                   c.st == POOL_OK ? "(no reply)" : c.err.message);
    return c.reply;
}

static void check_reply_str(pool_reply_t *r, int32_t type, const char *want, const char *file,
                            int line)
{
    check_total++;
    if (r == NULL) {
        check_fail(file, line, "no reply (wanted %s)", want);
        return;
    }
    if (r->type != type) {
        check_fail(file, line, "reply type %d, wanted %d (%s)", r->type, type,
                   r->str ? r->str : "");
        return;
    }
    if (r->str == NULL || r->len != strlen(want) || memcmp(r->str, want, r->len) != 0 ||
        r->str[r->len] != '\0')
        check_fail(file, line, "reply %.*s, wanted %s", (int)r->len, r->str ? r->str : "",
                   want);
}
#define CHECK_REPLY_STR(r, type, want) check_reply_str((r), (type), (want), __FILE__, __LINE__)

/* Runs a command whose reply must be a string of `type` equal to `want`, and frees it. */
#define EXPECT_STR(conn, type, want, ...)                                                 \
    do {                                                                                  \
        pool_reply_t *r_ = CMD((conn), __VA_ARGS__);                                      \
        CHECK_REPLY_STR(r_, (type), (want));                                              \
        pool_reply_free(r_);                                                              \
    } while (0)

static int64_t cmd_int(pool_conn_t *conn, const char *file, int line, ...)
{
    va_list ap;
    va_start(ap, line);
    command_t c = vcommand(conn, ap);
    va_end(ap);
    int64_t v = INT64_MIN;
    check_total++;
    if (c.st != POOL_OK)
        check_fail(file, line, "%s: status %d: %s", c.name, c.st, c.err.message);
    else if (c.reply->type != POOL_REPLY_INTEGER)
        check_fail(file, line, "%s: reply type %d, wanted an integer", c.name, c.reply->type);
    else
        v = c.reply->integer;
    pool_reply_free(c.reply);
    return v;
}
#define CMD_INT(conn, ...) cmd_int((conn), __FILE__, __LINE__, __VA_ARGS__, (const char *)NULL)

static pool_t *pool_from_url(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static pool_t *pool_from_url(const char *fmt, ...)
{
    char url[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(url, sizeof url, fmt, ap);
    va_end(ap);
    pool_t *pool = NULL;
    pool_error_t err;
    pool_status_t st = pool_new_url(url, &pool, &err);
    CHECK_STATUS(st, POOL_OK, &err);
    if (st != POOL_OK) {
        fprintf(stderr, "cannot continue without a pool for %s\n", url);
        exit(1);
    }
    return pool;
}

/* A conn from pool_get; the program cannot go on without it. */
static pool_conn_t *get_conn_or_exit(pool_t *pool)
{
    pool_conn_t *conn = NULL;
    pool_error_t err;
    pool_status_t st = pool_get(pool, &conn, &err);
    CHECK_STATUS(st, POOL_OK, &err);
    if (st != POOL_OK) {
        fprintf(stderr, "cannot continue without a conn\n");
        exit(1);
    }
    return conn;
}

/* CLIENT INFO of the conn, as a heap string (the reply is verbatim in RESP3). */
static char *client_info(pool_conn_t *conn)
{
    pool_reply_t *r = CMD(conn, "CLIENT", "INFO");
    char *s = strdup(r && r->str ? r->str : "");
    pool_reply_free(r);
    return s;
}

static void test_url_and_commands(void)
{
    section("pool_new_url and pool_conn_command: SET/GET/INCR, binary data, error replies");
    pool_t *pool = pool_from_url("redis://%s?pool_size=4&pool_timeout=2s&dial_timeout=500ms",
                                 plain_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");
    EXPECT_STR(conn, POOL_REPLY_STATUS, "OK", "SET", "rp:greeting", "hello");
    EXPECT_STR(conn, POOL_REPLY_STRING, "hello", "GET", "rp:greeting");
    CMD_INT(conn, "DEL", "rp:counter");
    CHECK_EQ(CMD_INT(conn, "INCR", "rp:counter"), 1);
    CHECK_EQ(CMD_INT(conn, "INCRBY", "rp:counter", "41"), 42);

    /* Nil. */
    pool_reply_t *r = CMD(conn, "GET", "rp:missing");
    CHECK(r != NULL && r->type == POOL_REPLY_NIL && r->str == NULL && r->len == 0);
    pool_reply_free(r);

    /* Binary-safe arguments and replies through argvlen. */
    const char bin[] = {'a', '\0', 'b', '\r', '\n', 'c'};
    const char *argv[] = {"SET", "rp:bin", bin};
    const size_t argvlen[] = {3, 6, sizeof bin};
    pool_error_t err;
    r = NULL;
    CHECK_STATUS(pool_conn_command(conn, 3, argv, argvlen, &r, &err), POOL_OK, &err);
    pool_reply_free(r);
    r = CMD(conn, "GET", "rp:bin");
    CHECK(r != NULL && r->type == POOL_REPLY_STRING && r->len == sizeof bin &&
          memcmp(r->str, bin, sizeof bin) == 0 && r->str[r->len] == '\0');
    pool_reply_free(r);

    /* An error reply is POOL_OK with type ERROR, and the conn stays good. */
    CMD_INT(conn, "LPUSH", "rp:list", "x");
    r = CMD(conn, "INCR", "rp:list");
    CHECK(r != NULL && r->type == POOL_REPLY_ERROR);
    if (r != NULL)
        CHECK_CONTAINS(r->str, "WRONGTYPE");
    pool_reply_free(r);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");

    /* Arrays. */
    CMD_INT(conn, "DEL", "rp:list");
    CMD_INT(conn, "RPUSH", "rp:list", "a", "b", "c");
    r = CMD(conn, "LRANGE", "rp:list", "0", "-1");
    CHECK(r != NULL && r->type == POOL_REPLY_ARRAY && r->elements == 3);
    if (r != NULL && r->elements == 3) {
        CHECK_REPLY_STR(r->element[0], POOL_REPLY_STRING, "a");
        CHECK_REPLY_STR(r->element[2], POOL_REPLY_STRING, "c");
    }
    pool_reply_free(r);
    r = CMD(conn, "LRANGE", "rp:nolist", "0", "-1");
    CHECK(r != NULL && r->type == POOL_REPLY_ARRAY && r->elements == 0 && r->element == NULL);
    pool_reply_free(r);

    /* Put and get again: the conn stays usable across checkouts. */
    uint64_t id = pool_conn_id(conn);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    conn = get_conn_or_exit(pool);
    CHECK_EQ(pool_conn_id(conn), id);
    EXPECT_STR(conn, POOL_REPLY_STRING, "hello", "GET", "rp:greeting");

    /* Argument checks: nothing is sent, the conn stays good. */
    r = (pool_reply_t *)&err; /* must be overwritten with NULL */
    CHECK_STATUS(pool_conn_command(conn, 0, argv, NULL, &r, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(r == NULL);
    CHECK_STATUS(pool_conn_command(conn, -3, argv, NULL, &r, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_command(conn, 1, NULL, NULL, &r, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "argv");
    CHECK_STATUS(pool_conn_command(conn, 1, argv, NULL, NULL, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_STATUS(pool_conn_command(NULL, 1, argv, NULL, &r, &err), POOL_ERR_INVALID_ARG, &err);
    const char *with_null[] = {"PING", NULL};
    CHECK_STATUS(pool_conn_command(conn, 2, with_null, NULL, &r, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK_CONTAINS(err.message, "argv[1]");
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");
    pool_reply_free(NULL);

    /* A conn already put back is refused, not used. */
    pool_conn_t *stale = conn;
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    CHECK_STATUS(pool_conn_command(stale, 1, argv, NULL, &r, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(r == NULL);
    pool_free(pool);
}

static void test_malformed_urls(void)
{
    section("pool_new_url: malformed and unknown options name the culprit");
    static const struct {
        const char *url;
        const char *needle;
    } cases[] = {
        {"redis://127.0.0.1:6390?pool_sise=3", "pool_sise"},
        {"redis://127.0.0.1:6390?pool_size=abc", "pool_size"},
        {"redis://127.0.0.1:6390?pool_size=3&pool_size=4", "pool_size"},
        {"redis://127.0.0.1:6390?dial_timeout=5parsecs", "dial_timeout"},
        {"redis://127.0.0.1:6390/notadb", "database"},
        {"redis://127.0.0.1:6390?protocol=4", "protocol"},
        {"redis://127.0.0.1:6390?min_idle_conns=50&pool_size=2", "min_idle_conns"},
        {"rediss://127.0.0.1:6390?tls_ca_file=/nonexistent/ca.pem", "tls_ca_file"},
        {"http://127.0.0.1:6390", "scheme"},
        {"redis://127.0.0.1:99999", "port"},
        {"not a url", "url"},
        {"", "url"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pool_t *pool = (pool_t *)&cases; /* must be overwritten with NULL */
        pool_error_t err;
        pool_status_t st = pool_new_url(cases[i].url, &pool, &err);
        if (!CHECK_STATUS(st, POOL_ERR_INVALID_ARG, &err)) {
            fprintf(stderr, "  url: %s\n", cases[i].url);
            if (st == POOL_OK)
                pool_free(pool);
            continue;
        }
        CHECK(pool == NULL);
        if (!check_contains(err.message, cases[i].needle, __FILE__, __LINE__, "err.message"))
            fprintf(stderr, "  url: %s\n", cases[i].url);
    }

    /* The password never shows in a message. */
    pool_t *pool = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_new_url("redis://u:hunter2@127.0.0.1:6390?bogus=1", &pool, &err),
                 POOL_ERR_INVALID_ARG, &err);
    CHECK(strstr(err.message, "hunter2") == NULL);
    CHECK_CONTAINS(err.message, "bogus");

    /* Oversized URL. */
    size_t big = 64 * 1024;
    char *url = malloc(big + 1);
    memset(url, 'a', big);
    memcpy(url, "redis://", 8);
    url[big] = '\0';
    CHECK_STATUS(pool_new_url(url, &pool, &err), POOL_ERR_INVALID_ARG, &err);
    free(url);

    /* NULLs. */
    CHECK_STATUS(pool_new_url(NULL, &pool, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_EQ(pool_new_url("redis://127.0.0.1:6390", NULL, NULL), POOL_ERR_INVALID_ARG);
    CHECK_EQ(pool_new_url(NULL, &pool, NULL), POOL_ERR_INVALID_ARG);
}

typedef struct {
    pool_t *pool;
    int ok;
} auth_worker_t;

static void *auth_worker(void *arg)
{
    auth_worker_t *w = arg;
    pool_conn_t *conn = NULL;
    pool_error_t err;
    if (pool_get(w->pool, &conn, &err) != POOL_OK)
        return NULL;
    pool_reply_t *r = NULL;
    const char *argv[] = {"ACL", "WHOAMI"};
    if (pool_conn_command(conn, 2, argv, NULL, &r, &err) == POOL_OK &&
        r->type == POOL_REPLY_STRING)
        w->ok = strcmp(r->str, "alice") == 0 ? 2 : 1;
    pool_reply_free(r);
    /* Hold the conn a moment so the other workers dial their own. */
    sleep_ms(50);
    pool_put(w->pool, conn);
    return NULL;
}

static void test_auth(void)
{
    section("requirepass and an ACL user: every new conn is authenticated");
    pool_t *pool = pool_from_url("redis://:s3cret@%s?pool_size=4", auth_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);
    EXPECT_STR(conn, POOL_REPLY_STRING, "default", "ACL", "WHOAMI");
    EXPECT_STR(conn, POOL_REPLY_STATUS, "OK", "SET", "rp:auth", "yes");
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_free(pool);

    /* The same through pool_options_t. */
    pool_options_t o;
    pool_options_init(&o);
    o.addr = auth_addr;
    o.username = "alice";
    o.password = "wonderland";
    o.pool_size = 4;
    pool_error_t err;
    CHECK_STATUS(pool_new(&o, &pool, &err), POOL_OK, &err);
    auth_worker_t workers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (auth_worker_t){pool, 0};
        pthread_create(&threads[i], NULL, auth_worker, &workers[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK_EQ(workers[i].ok, 2);
    }
    CHECK(pool_len(pool) >= 2); /* several conns, each authenticated on its own */
    pool_free(pool);

    /* Without a password: the PING every new conn gets is refused with NOAUTH, so the get
       fails at once with the server's text (not retried: the settings are wrong), instead
       of handing out a conn whose every command would fail. */
    pool = pool_from_url("redis://%s?dialer_retries=5&dialer_retry_backoff=1s", auth_addr);
    conn = NULL;
    const int64_t t0 = now_ms();
    CHECK_STATUS(pool_get(pool, &conn, &err), POOL_ERR_HANDSHAKE, &err);
    CHECK(conn == NULL);
    CHECK_CONTAINS(err.message, "NOAUTH");
    CHECK(now_ms() - t0 < scaled(900));
    pool_free(pool);
}

static void test_wrong_password(void)
{
    section("wrong password: POOL_ERR_HANDSHAKE at once, with the server's text");
    /* Generous pool timeout, retries and backoff: none of them may be spent on a refusal. */
    pool_t *pool = pool_from_url(
        "redis://:wrong@%s?pool_size=2&pool_timeout=10s&dialer_retries=5&dialer_retry_backoff=1s",
        auth_addr);
    for (int i = 0; i < 3; i++) {
        pool_conn_t *conn = NULL;
        pool_error_t err;
        int64_t t0 = now_ms();
        pool_status_t st = pool_get(pool, &conn, &err);
        int64_t took = now_ms() - t0;
        CHECK_STATUS(st, POOL_ERR_HANDSHAKE, &err);
        CHECK(conn == NULL);
        CHECK_CONTAINS(err.message, "WRONGPASS");
        CHECK(strstr(err.message, "wrong") == NULL || strstr(err.message, ":wrong@") == NULL);
        if (!CHECK(took < 900 * slow_factor()))
            fprintf(stderr, "  get took %" PRId64 " ms\n", took);
    }
    CHECK_EQ(pool_len(pool), 0);
    pool_stats_t s = stats_of(pool);
    CHECK(s.dial_errors >= 1);
    /* pool_size refusals in a row start the background probe: its dials are refused too,
       and never leave an unauthenticated conn in the pool. */
    CHECK_EVENTUALLY(stats_of(pool).dial_errors >= s.dial_errors + 2, 10000);
    CHECK_EQ(pool_len(pool), 0);
    CHECK_EQ(pool_idle_len(pool), 0);
    pool_conn_t *late = NULL;
    pool_error_t late_err;
    CHECK_STATUS(pool_get(pool, &late, &late_err), POOL_ERR_HANDSHAKE, &late_err);
    CHECK(late == NULL);
    pool_free(pool);

    /* An ACL user that does not exist, through HELLO 3. */
    pool = pool_from_url("redis://nobody:pw@%s?protocol=3", auth_addr);
    pool_conn_t *conn = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_get(pool, &conn, &err), POOL_ERR_HANDSHAKE, &err);
    CHECK_CONTAINS(err.message, "WRONGPASS");
    CHECK_CONTAINS(err.message, "HELLO");
    pool_free(pool);
}

static void test_db_and_name(void)
{
    section("db and client_name: visible in CLIENT INFO, keys land in that db");
    pool_t *pool = pool_from_url("redis://%s/5?client_name=rp-test-app", plain_addr);
    pool_t *db0 = pool_from_url("redis://%s", plain_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);
    char *info = client_info(conn);
    CHECK_CONTAINS(info, " db=5 ");
    CHECK_CONTAINS(info, " name=rp-test-app ");
    free(info);
    EXPECT_STR(conn, POOL_REPLY_STRING, "rp-test-app", "CLIENT", "GETNAME");
    EXPECT_STR(conn, POOL_REPLY_STATUS, "OK", "SET", "rp:db5only", "1");

    pool_conn_t *other = get_conn_or_exit(db0);
    CHECK_EQ(CMD_INT(other, "EXISTS", "rp:db5only"), 0);
    EXPECT_STR(other, POOL_REPLY_STATUS, "OK", "SELECT", "5");
    CHECK_EQ(CMD_INT(other, "EXISTS", "rp:db5only"), 1);
    /* This conn was moved to db 5 by hand: remove it rather than pool it. */
    CHECK_EQ(pool_remove(db0, other, "switched db"), POOL_OK);

    /* A conn redialed after a kill is set up again. */
    char id_text[32];
    snprintf(id_text, sizeof id_text, "%" PRId64, CMD_INT(conn, "CLIENT", "ID"));
    other = get_conn_or_exit(db0);
    CHECK_EQ(CMD_INT(other, "CLIENT", "KILL", "ID", id_text), 1);
    CHECK_EQ(pool_put(db0, other), POOL_OK);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_stats_t before = stats_of(pool);
    conn = get_conn_or_exit(pool); /* the killed one is found stale, a new one dialed */
    pool_stats_t after = stats_of(pool);
    CHECK_EQ(after.stale_conns, before.stale_conns + 1);
    info = client_info(conn);
    CHECK_CONTAINS(info, " db=5 ");
    CHECK_CONTAINS(info, " name=rp-test-app ");
    free(info);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);

    /* Through pool_options_t, with RESP3: the name travels inside HELLO. */
    pool_options_t o;
    pool_options_init(&o);
    o.addr = plain_addr;
    o.db = 3;
    o.client_name = "rp-resp3";
    o.protocol = 3;
    pool_t *p3 = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_new(&o, &p3, &err), POOL_OK, &err);
    conn = get_conn_or_exit(p3);
    info = client_info(conn);
    CHECK_CONTAINS(info, " db=3 ");
    CHECK_CONTAINS(info, " name=rp-resp3 ");
    CHECK_CONTAINS(info, " resp=3");
    free(info);
    CHECK_EQ(pool_put(p3, conn), POOL_OK);
    pool_free(p3);
    pool_free(db0);
    pool_free(pool);
}

static pool_reply_t *debug_protocol(pool_conn_t *conn, const char *what)
{
    return CMD(conn, "DEBUG", "PROTOCOL", what);
}

static void test_resp3(void)
{
    section("RESP3 replies: map, set, double, bool, bignum, verbatim, null, push, attributes");
    pool_t *pool = pool_from_url("redis://%s?protocol=3", plain_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);

    pool_reply_t *r = debug_protocol(conn, "map");
    CHECK(r != NULL && r->type == POOL_REPLY_MAP && r->elements == 6);
    if (r != NULL && r->elements == 6) {
        CHECK_EQ(r->element[0]->type, POOL_REPLY_INTEGER);
        CHECK_EQ(r->element[0]->integer, 0);
        CHECK_EQ(r->element[1]->type, POOL_REPLY_BOOL);
        CHECK_EQ(r->element[1]->integer, 0);
        CHECK_EQ(r->element[3]->integer, 1);
    }
    pool_reply_free(r);

    r = debug_protocol(conn, "set");
    CHECK(r != NULL && r->type == POOL_REPLY_SET && r->elements == 3);
    pool_reply_free(r);

    r = debug_protocol(conn, "double");
    CHECK(r != NULL && r->type == POOL_REPLY_DOUBLE && r->dval > 3.14 && r->dval < 3.15 &&
          r->str != NULL && strncmp(r->str, "3.14", 4) == 0);
    pool_reply_free(r);

    r = debug_protocol(conn, "true");
    CHECK(r != NULL && r->type == POOL_REPLY_BOOL && r->integer == 1);
    pool_reply_free(r);
    r = debug_protocol(conn, "false");
    CHECK(r != NULL && r->type == POOL_REPLY_BOOL && r->integer == 0);
    pool_reply_free(r);

    r = debug_protocol(conn, "bignum");
    CHECK(r != NULL && r->type == POOL_REPLY_BIGNUM && r->str != NULL &&
          strcmp(r->str, "1234567999999999999999999999999999999") == 0);
    pool_reply_free(r);

    r = debug_protocol(conn, "verbatim");
    CHECK(r != NULL && r->type == POOL_REPLY_VERB && strcmp(r->vtype, "txt") == 0 &&
          r->str != NULL && strstr(r->str, "verbatim") != NULL);
    pool_reply_free(r);

    r = debug_protocol(conn, "null");
    CHECK(r != NULL && r->type == POOL_REPLY_NIL);
    pool_reply_free(r);

    /* An attribute is read and dropped: the reply it annotates comes back. */
    r = debug_protocol(conn, "attrib");
    CHECK(r != NULL && r->type == POOL_REPLY_STRING && r->str != NULL &&
          strstr(r->str, "attribute") != NULL);
    pool_reply_free(r);

    /* Scores come back as doubles in RESP3. */
    CMD_INT(conn, "DEL", "rp:z");
    CMD_INT(conn, "ZADD", "rp:z", "1.5", "m");
    r = CMD(conn, "ZSCORE", "rp:z", "m");
    CHECK(r != NULL && r->type == POOL_REPLY_DOUBLE && r->dval == 1.5);
    pool_reply_free(r);

    /* HGETALL is a map with keys and values, 2 per entry. */
    CMD_INT(conn, "DEL", "rp:h");
    CMD_INT(conn, "HSET", "rp:h", "f1", "v1", "f2", "v2");
    r = CMD(conn, "HGETALL", "rp:h");
    CHECK(r != NULL && r->type == POOL_REPLY_MAP && r->elements == 4);
    pool_reply_free(r);

    /* SUBSCRIBE answers with a push message. */
    r = CMD(conn, "SUBSCRIBE", "rp:chan");
    CHECK(r != NULL && r->type == POOL_REPLY_PUSH && r->elements == 3);
    if (r != NULL && r->elements == 3) {
        CHECK_REPLY_STR(r->element[0], POOL_REPLY_STRING, "subscribe");
        CHECK_REPLY_STR(r->element[1], POOL_REPLY_STRING, "rp:chan");
    }
    pool_reply_free(r);
    r = CMD(conn, "UNSUBSCRIBE", "rp:chan");
    CHECK(r != NULL && r->type == POOL_REPLY_PUSH);
    pool_reply_free(r);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_free(pool);
}

static void test_resp3_tracking_push(void)
{
    section("RESP3 client tracking: an invalidation push is never taken for a command's reply");
    pool_t *pool = pool_from_url("redis://%s?protocol=3&pool_size=2", plain_addr);
    pool_conn_t *tracking = get_conn_or_exit(pool);
    pool_conn_t *writer = get_conn_or_exit(pool);
    int64_t id = CMD_INT(tracking, "CLIENT", "ID");
    EXPECT_STR(tracking, POOL_REPLY_STATUS, "OK", "CLIENT", "TRACKING", "ON");
    CMD_INT(writer, "DEL", "rp:tracked");
    pool_reply_free(CMD(tracking, "GET", "rp:tracked"));
    EXPECT_STR(writer, POOL_REPLY_STATUS, "OK", "SET", "rp:tracked", "v");
    /* Redis now sends `tracking` an invalidate push nobody asked for: wait until it is
       there, so the next command's reply comes after it. */
    struct pollfd p = {.fd = pool_conn_fd(tracking), .events = POLLIN};
    CHECK_EQ(poll(&p, 1, scaled(5000)), 1);
    EXPECT_STR(tracking, POOL_REPLY_STATUS, "PONG", "PING");
    EXPECT_STR(tracking, POOL_REPLY_STRING, "x", "ECHO", "x");
    /* Reading it again sends one more invalidation, which arrives right behind the GET's
       reply or before the next command's. */
    EXPECT_STR(tracking, POOL_REPLY_STRING, "v", "GET", "rp:tracked");
    EXPECT_STR(writer, POOL_REPLY_STATUS, "OK", "SET", "rp:tracked", "w");
    CHECK_EQ(poll(&p, 1, scaled(5000)), 1);
    EXPECT_STR(tracking, POOL_REPLY_STRING, "y", "ECHO", "y");
    EXPECT_STR(tracking, POOL_REPLY_STRING, "w", "GET", "rp:tracked");
    /* The conn stayed in step: it is pooled, and the next get hands out the same one. */
    CHECK_EQ(pool_put(pool, tracking), POOL_OK);
    CHECK_EQ(pool_put(pool, writer), POOL_OK);
    pool_conn_t *again = get_conn_or_exit(pool);
    pool_conn_t *other = get_conn_or_exit(pool);
    int64_t a = CMD_INT(again, "CLIENT", "ID"), b = CMD_INT(other, "CLIENT", "ID");
    CHECK(a == id || b == id);
    pool_stats_t st = stats_of(pool);
    CHECK_EQ(st.removed_conns, 0);
    CHECK_EQ(st.stale_conns, 0);
    CHECK_EQ(st.dials, 2);
    CHECK_EQ(pool_put(pool, again), POOL_OK);
    CHECK_EQ(pool_put(pool, other), POOL_OK);
    pool_free(pool);
}

static void test_read_timeout(void)
{
    section("read timeout on a blocking command: POOL_ERR_IO, the conn is bad and removed");
    pool_t *pool = pool_from_url("redis://%s?read_timeout=200ms&pool_size=2", plain_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);
    int64_t first_id = CMD_INT(conn, "CLIENT", "ID");
    pool_reply_t *r = NULL;
    pool_error_t err;
    pool_status_t st;
    int64_t t0 = now_ms();
    r = cmd_status(conn, &st, &err, "BLPOP", "rp:never", "10", (const char *)NULL);
    int64_t took = now_ms() - t0;
    CHECK_STATUS(st, POOL_ERR_IO, &err);
    CHECK(r == NULL);
    CHECK_CONTAINS(err.message, "timeout");
    CHECK(took >= 190);
    if (!CHECK(took < 2000 * slow_factor()))
        fprintf(stderr, "  BLPOP took %" PRId64 " ms\n", took);

    /* Out of step now: later commands refuse instead of reading BLPOP's late reply. */
    r = cmd_status(conn, &st, &err, "PING", (const char *)NULL);
    CHECK_STATUS(st, POOL_ERR_BAD_CONN, &err);
    CHECK(r == NULL);

    CHECK_EQ(pool_len(pool), 1);
    pool_stats_t before = stats_of(pool);
    CHECK_EQ(pool_put(pool, conn), POOL_OK); /* removed, not pooled */
    pool_stats_t after = stats_of(pool);
    CHECK_EQ(pool_len(pool), 0);
    CHECK_EQ(pool_idle_len(pool), 0);
    CHECK_EQ(after.removed_conns, before.removed_conns + 1);

    conn = get_conn_or_exit(pool);
    CHECK_NE(CMD_INT(conn, "CLIENT", "ID"), first_id);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    CHECK_EQ(pool_idle_len(pool), 1);
    pool_free(pool);
}

static void test_reply_limits(void)
{
    section("max_reply_bytes / max_reply_elements: a reply past them is POOL_ERR_PROTOCOL");
    /* Set through pool_options_t (the URL parameters go the same way). */
    pool_options_t o;
    pool_options_init(&o);
    CHECK_EQ(o.max_reply_bytes, 0);
    CHECK_EQ(o.max_reply_elements, 0);
    o.addr = plain_addr;
    o.pool_size = 2;
    o.max_reply_bytes = 4096;
    o.max_reply_elements = 100;
    pool_t *pool = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_new(&o, &pool, &err), POOL_OK, &err);
    if (pool == NULL)
        return;
    pool_conn_t *conn = get_conn_or_exit(pool);
    char big[4098]; /* 4097 bytes: one over */
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = 0;
    EXPECT_STR(conn, POOL_REPLY_STATUS, "OK", "SET", "rp:big", big);
    big[4096] = 0; /* exactly the limit */
    EXPECT_STR(conn, POOL_REPLY_STATUS, "OK", "SET", "rp:fits", big);
    EXPECT_STR(conn, POOL_REPLY_STRING, big, "GET", "rp:fits");
    CMD_INT(conn, "DEL", "rp:list");
    for (int i = 0; i < 99; i++)
        CMD_INT(conn, "RPUSH", "rp:list", "x");
    pool_reply_t *r = CMD(conn, "LRANGE", "rp:list", "0", "-1"); /* 1 + 99 elements */
    CHECK(r != NULL && r->type == POOL_REPLY_ARRAY && r->elements == 99);
    pool_reply_free(r);

    pool_status_t st;
    r = cmd_status(conn, &st, &err, "GET", "rp:big", (const char *)NULL);
    CHECK_STATUS(st, POOL_ERR_PROTOCOL, &err);
    CHECK(r == NULL);
    CHECK_CONTAINS(err.message, "max_reply_bytes");
    r = cmd_status(conn, &st, &err, "PING", (const char *)NULL);
    CHECK_STATUS(st, POOL_ERR_BAD_CONN, &err);
    CHECK_EQ(pool_put(pool, conn), POOL_OK); /* removed, not pooled */
    CHECK_EQ(pool_len(pool), 0);

    conn = get_conn_or_exit(pool);
    CMD_INT(conn, "RPUSH", "rp:list", "x");
    r = cmd_status(conn, &st, &err, "LRANGE", "rp:list", "0", "-1", (const char *)NULL);
    CHECK_STATUS(st, POOL_ERR_PROTOCOL, &err);
    CHECK(r == NULL);
    CHECK_CONTAINS(err.message, "max_reply_elements");
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    CHECK_EQ(pool_len(pool), 0);
    pool_free(pool);

    o.max_reply_bytes = -1;
    pool = NULL;
    CHECK_STATUS(pool_new(&o, &pool, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "max_reply_bytes");
    CHECK(pool == NULL);
}

static void test_ping_after_idle(void)
{
    section("ping_after_idle: a long-idle conn that does not answer PONG is replaced");
    /* CLIENT PAUSE holds every client's commands, the admin's own too: its read timeout
       must outlast the pause. */
    pool_t *admin = pool_from_url("redis://%s?read_timeout=%" PRId64 "ms", plain_addr,
                                  scaled(10000));
    /* The threshold and the naps scale with slow_factor() (valgrind runs). */
    int64_t idle_ms = scaled(100);
    /* The PING check is part of the get: pool_timeout must cover it and the dial of the
       replacement, which waits for the pause to end. */
    pool_t *pool = pool_from_url("redis://%s?ping_after_idle=%" PRId64 "ms&read_timeout=%" PRId64
                                 "ms&pool_timeout=%" PRId64 "ms",
                                 plain_addr, idle_ms, scaled(300), scaled(10000));
    pool_conn_t *conn = get_conn_or_exit(pool);
    int64_t first_id = CMD_INT(conn, "CLIENT", "ID");
    CHECK_EQ(pool_put(pool, conn), POOL_OK);

    /* Used a moment ago: handed out without a PING, even while the server is paused. */
    pool_conn_t *a = get_conn_or_exit(admin);
    char pause_ms[32];
    snprintf(pause_ms, sizeof pause_ms, "%" PRId64, scaled(1500));
    EXPECT_STR(a, POOL_REPLY_STATUS, "OK", "CLIENT", "PAUSE", pause_ms, "ALL");
    conn = get_conn_or_exit(pool);
    CHECK_EQ(stats_of(pool).stale_conns, 0);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);

    /* Idle past the threshold: the PING times out, the conn is stale, a new one is dialed. */
    sleep_ms(idle_ms + idle_ms / 2);
    pool_stats_t before = stats_of(pool);
    conn = get_conn_or_exit(pool);
    pool_stats_t after = stats_of(pool);
    CHECK_EQ(after.stale_conns, before.stale_conns + 1);
    /* Answered once the pause is over. */
    EXPECT_STR(a, POOL_REPLY_STATUS, "PONG", "PING");
    CHECK_NE(CMD_INT(conn, "CLIENT", "ID"), first_id);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);

    /* Idle past the threshold on a healthy server: PONG, the same conn comes back. */
    conn = get_conn_or_exit(pool);
    int64_t id = CMD_INT(conn, "CLIENT", "ID");
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    sleep_ms(idle_ms + idle_ms / 2);
    before = stats_of(pool);
    conn = get_conn_or_exit(pool);
    CHECK_EQ(stats_of(pool).stale_conns, before.stale_conns);
    CHECK_EQ(CMD_INT(conn, "CLIENT", "ID"), id);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    CHECK_EQ(pool_put(admin, a), POOL_OK);
    pool_free(pool);
    pool_free(admin);
}

/* Keeps SETting keys over its own conn until `stop` is set (at most 15 s scaled), so a
   conn tracking in BCAST mode keeps getting invalidation pushes. */
typedef struct {
    pool_t *pool;
    atomic_int stop;
    int64_t sets;
} bcast_writer_t;

static void *bcast_writer(void *arg)
{
    bcast_writer_t *w = arg;
    pool_conn_t *conn = get_conn_or_exit(w->pool);
    int64_t end = now_ms() + scaled(15000);
    char key[32];
    while (!atomic_load(&w->stop) && now_ms() < end) {
        snprintf(key, sizeof key, "rp:bcast:%d", (int)(w->sets % 16));
        pool_status_t st;
        pool_error_t err;
        pool_reply_t *r = cmd_status(conn, &st, &err, "SET", key, "v", (const char *)NULL);
        pool_reply_free(r);
        if (st != POOL_OK)
            break;
        w->sets++;
        sleep_ms(1);
    }
    CHECK_EQ(pool_put(w->pool, conn), POOL_OK);
    return NULL;
}

static void test_tracking_pushes_keep_the_deadline(void)
{
    section("RESP3 CLIENT TRACKING BCAST: pushes never extend a command's read timeout");
    int64_t read_timeout = scaled(1000);
    pool_t *pool =
        pool_from_url("redis://%s?protocol=3&pool_size=2&read_timeout=%" PRId64 "ms",
                      plain_addr, read_timeout);
    pool_conn_t *tracking = get_conn_or_exit(pool);
    EXPECT_STR(tracking, POOL_REPLY_STATUS, "OK", "CLIENT", "TRACKING", "ON", "BCAST");
    bcast_writer_t w = {.pool = pool, .sets = 0};
    atomic_init(&w.stop, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, bcast_writer, &w), 0);
    /* Pushes are flowing before the blocking command starts. */
    struct pollfd p = {.fd = pool_conn_fd(tracking), .events = POLLIN};
    CHECK_EQ(poll(&p, 1, scaled(5000)), 1);

    char blpop_s[32];
    snprintf(blpop_s, sizeof blpop_s, "%" PRId64, 6 * slow_factor());
    pool_status_t st;
    pool_error_t err;
    int64_t t0 = now_ms();
    pool_reply_t *r =
        cmd_status(tracking, &st, &err, "BLPOP", "rp:bcast:empty", blpop_s, (const char *)NULL);
    int64_t took = now_ms() - t0;
    atomic_store(&w.stop, 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_STATUS(st, POOL_ERR_IO, &err);
    CHECK(r == NULL);
    pool_reply_free(r);
    CHECK_CONTAINS(err.message, "timeout");
    CHECK(took >= read_timeout - 10);
    if (!CHECK(took < read_timeout + scaled(2000)))
        fprintf(stderr, "  BLPOP took %" PRId64 " ms\n", took);
    CHECK(w.sets > 0);
    CHECK_EQ(pool_put(pool, tracking), POOL_OK); /* bad: removed */
    pool_free(pool);
}

static void test_ping_after_idle_keeps_the_gets_deadline(void)
{
    section("ping_after_idle: the PING check ends by the get's pool_timeout");
    pool_t *admin = pool_from_url("redis://%s?read_timeout=%" PRId64 "ms", plain_addr,
                                  scaled(10000));
    int64_t idle_ms = scaled(100), pool_timeout = scaled(1000);
    pool_t *pool = pool_from_url("redis://%s?ping_after_idle=%" PRId64
                                 "ms&pool_timeout=%" PRId64 "ms&read_timeout=%" PRId64 "ms",
                                 plain_addr, idle_ms, pool_timeout, scaled(5000));
    pool_conn_t *conn = get_conn_or_exit(pool);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    sleep_ms(idle_ms + idle_ms / 2);

    /* The server holds every command for 3 s: the PING of the long-idle conn is not
       answered within the get's 1 s. */
    pool_conn_t *a = get_conn_or_exit(admin);
    char pause_ms[32];
    snprintf(pause_ms, sizeof pause_ms, "%" PRId64, scaled(3000));
    EXPECT_STR(a, POOL_REPLY_STATUS, "OK", "CLIENT", "PAUSE", pause_ms, "ALL");
    pool_stats_t before = stats_of(pool);
    pool_error_t err;
    conn = NULL;
    int64_t t0 = now_ms();
    pool_status_t st = pool_get(pool, &conn, &err);
    int64_t took = now_ms() - t0;
    CHECK_STATUS(st, POOL_ERR_TIMEOUT, &err);
    CHECK(conn == NULL);
    CHECK(took >= pool_timeout - 10);
    if (!CHECK(took < pool_timeout + scaled(1500)))
        fprintf(stderr, "  pool_get took %" PRId64 " ms\n", took);
    pool_stats_t after = stats_of(pool);
    CHECK_EQ(after.stale_conns, before.stale_conns + 1);
    CHECK_EQ(after.timeouts, before.timeouts + 1);
    CHECK_EQ(pool_len(pool), 0);

    /* Once the pause is over, a get dials a new conn. */
    EXPECT_STR(a, POOL_REPLY_STATUS, "PONG", "PING");
    CHECK_EQ(pool_put(admin, a), POOL_OK);
    conn = get_conn_or_exit(pool);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_free(pool);
    pool_free(admin);
}

/* A thread that takes one conn from `pool` (waiting in the queue), asks its CLIENT ID,
   and holds it until `release` is posted. */
typedef struct {
    pool_t *pool;
    sem_t release;
    int64_t client_id;
    pool_status_t st;
} queued_get_t;

static void *queued_get(void *arg)
{
    queued_get_t *q = arg;
    pool_conn_t *conn = NULL;
    pool_error_t err;
    q->st = pool_get(q->pool, &conn, &err);
    if (q->st == POOL_OK)
        q->client_id = CMD_INT(conn, "CLIENT", "ID");
    sem_wait(&q->release);
    if (q->st == POOL_OK)
        CHECK_EQ(pool_put(q->pool, conn), POOL_OK);
    return NULL;
}

static void queued_get_start(queued_get_t *q, pool_t *pool, pthread_t *t)
{
    q->pool = pool;
    q->client_id = 0;
    q->st = -1;
    sem_init(&q->release, 0, 0);
    pthread_create(t, NULL, queued_get, q);
}

static void queued_get_end(queued_get_t *q, pthread_t t)
{
    sem_post(&q->release);
    pthread_join(t, NULL);
    sem_destroy(&q->release);
    CHECK_EQ(q->st, POOL_OK);
}

/* One round on a pool of one conn: this thread holds it while another get queues, then
   gives it back and at once asks again without waiting (timeout 0). Returns 1 when that
   ask took the conn ahead of the queued get. Either way both gets end with the conn. */
static int put_then_ask_again(pool_t *pool, pool_conn_t **held)
{
    queued_get_t q;
    pthread_t t;
    queued_get_start(&q, pool, &t);
    CHECK_EVENTUALLY(stats_of(pool).waiting == 1, 10000);
    CHECK_EQ(pool_put(pool, *held), POOL_OK);
    pool_conn_t *again = NULL;
    pool_error_t err;
    pool_status_t st = pool_get_ex(pool, 0, NULL, &again, &err);
    int overtook = st == POOL_OK;
    if (overtook) {
        /* The queued get is still waiting (woken, it found nothing and queued again):
           it gets the conn now. */
        CHECK_EQ(pool_put(pool, again), POOL_OK);
    } else {
        /* The queued get has it, and holds it: the ask cannot have come after its put. */
        CHECK_STATUS(st, POOL_ERR_TIMEOUT, &err);
    }
    queued_get_end(&q, t);
    *held = get_conn_or_exit(pool);
    return overtook;
}

static void test_overtake_window(void)
{
    section("overtake_window: a get may take a conn ahead of queued gets, for a bounded time");
    /* The default window is 1 ms (Go's sync.Mutex starvation threshold). */
    pool_options_t defaults;
    pool_options_init(&defaults);
    CHECK_EQ(defaults.overtake_window_ms, 5);
    /* overtake_window=0: strict arrival order. The put hands the conn to the queued get,
       so the immediate ask never gets it. */
    pool_t *strict = pool_from_url("redis://%s?pool_size=1&overtake_window=0", plain_addr);
    pool_conn_t *held = get_conn_or_exit(strict);
    int overtakes = 0;
    for (int round = 0; round < 10; round++)
        overtakes += put_then_ask_again(strict, &held);
    CHECK_EQ(overtakes, 0);
    CHECK_EQ(pool_put(strict, held), POOL_OK);
    pool_free(strict);

    /* A window (via the URL): the put leaves the conn idle and wakes the queued get, and
       the ask, already running, gets there first (a woken thread takes microseconds to
       run: it may win now and then on a busy machine, so not every round is asserted). */
    pool_t *open = pool_from_url("redis://%s?pool_size=1&overtake_window=60s", plain_addr);
    held = get_conn_or_exit(open);
    overtakes = 0;
    for (int round = 0; round < 10; round++)
        overtakes += put_then_ask_again(open, &held);
    CHECK(overtakes >= 1);
    printf("overtake_window 60s: the immediate ask overtook in %d of 10 rounds\n", overtakes);
    CHECK_EQ(pool_put(open, held), POOL_OK);
    pool_stats_t s = stats_of(open);
    CHECK_EQ(s.total_conns, 1);
    CHECK_EQ(s.idle_conns, 1);
    CHECK_EQ(s.waiting, 0);
    pool_free(open);

    /* Once the queued get has waited the window (via pool_options_t), puts hand over in
       order again: the ask after the put finds nothing. */
    pool_options_t o;
    pool_options_init(&o);
    o.addr = plain_addr;
    o.pool_size = 1;
    o.overtake_window_ms = scaled(100);
    pool_t *bounded = NULL;
    pool_error_t err;
    CHECK_STATUS(pool_new(&o, &bounded, &err), POOL_OK, &err);
    held = get_conn_or_exit(bounded);
    int64_t first_id = CMD_INT(held, "CLIENT", "ID");
    queued_get_t q;
    pthread_t t;
    queued_get_start(&q, bounded, &t);
    CHECK_EVENTUALLY(stats_of(bounded).waiting == 1, 10000);
    sleep_ms(scaled(300));
    CHECK_EQ(pool_put(bounded, held), POOL_OK);
    pool_conn_t *again = NULL;
    CHECK_STATUS(pool_get_ex(bounded, 0, NULL, &again, &err), POOL_ERR_TIMEOUT, &err);
    queued_get_end(&q, t);
    CHECK_EQ(q.client_id, first_id);
    pool_free(bounded);

    /* Out of range: a negative window is refused, naming the field. */
    o.overtake_window_ms = -1;
    pool_t *bad = NULL;
    CHECK_STATUS(pool_new(&o, &bad, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(strstr(err.message, "overtake_window_ms") != NULL);
    CHECK(bad == NULL);
}

static void test_bypass_and_raw_fd(void)
{
    section("health_check_bypass: no peek for a conn used a moment ago, unless its fd was lent");
    pool_t *pool = pool_from_url("redis://%s?pool_size=2&health_check_bypass=60s", plain_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);
    int64_t first_id = CMD_INT(conn, "CLIENT", "ID");
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    /* Used a moment ago, commands only: handed out again without a peek. */
    conn = get_conn_or_exit(pool);
    CHECK_EQ(CMD_INT(conn, "CLIENT", "ID"), first_id);
    /* Raw I/O that leaves the reply unread: the next get peeks despite the window, finds
       the +PONG nobody read, and replaces the conn instead of handing the reply to the
       next command. */
    int fd = pool_conn_fd(conn);
    CHECK(fd >= 0);
    const char ping[] = "*1\r\n$4\r\nPING\r\n";
    CHECK_EQ(write(fd, ping, sizeof ping - 1), (ssize_t)(sizeof ping - 1));
    /* Let the reply arrive before the conn goes back. */
    sleep_ms(scaled(50));
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_stats_t before = stats_of(pool);
    conn = get_conn_or_exit(pool);
    CHECK_EQ(stats_of(pool).stale_conns, before.stale_conns + 1);
    CHECK_NE(CMD_INT(conn, "CLIENT", "ID"), first_id);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_free(pool);
}

/* pool_conn_command_ex with NUL-terminated string arguments (at most 32). */
static pool_reply_t *cmd_ex(pool_conn_t *conn, int64_t timeout_ms, pool_status_t *st,
                            pool_error_t *err, ...)
{
    const char *argv[32];
    int argc = 0;
    const char *a;
    va_list ap;
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 32)
        argv[argc++] = a;
    va_end(ap);
    pool_reply_t *r = NULL;
    *st = pool_conn_command_ex(conn, argc, argv, NULL, timeout_ms, &r, err);
    return r;
}

struct delayed_push {
    pool_t *pool;
    pool_status_t st;
};

/* RPUSH ct:list late, on a conn of its own, 500 ms after it starts. */
static void *delayed_push_worker(void *arg)
{
    struct delayed_push *d = arg;
    pool_error_t err;
    pool_conn_t *conn = NULL;
    d->st = pool_get(d->pool, &conn, &err);
    if (d->st != POOL_OK)
        return NULL;
    sleep_ms(500);
    const char *argv[] = {"RPUSH", "ct:list", "late"};
    pool_reply_t *r = NULL;
    d->st = pool_conn_command(conn, 3, argv, NULL, &r, &err);
    pool_reply_free(r);
    pool_put(d->pool, conn);
    return NULL;
}

static void test_per_call_timeout(void)
{
    section("pool_conn_command_ex: a blocking command with its own read timeout");
    pool_t *pool = pool_from_url("redis://%s?read_timeout=1000ms&pool_size=2", plain_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);
    int64_t id = CMD_INT(conn, "CLIENT", "ID");
    CMD_INT(conn, "DEL", "ct:empty", "ct:list");
    pool_reply_t *r = NULL;
    pool_error_t err;
    pool_status_t st;

    /* BLPOP 2 with 3000 ms: its nil after ~2 s is a reply, not a timeout. */
    int64_t t0 = now_ms();
    r = cmd_ex(conn, 3000, &st, &err, "BLPOP", "ct:empty", "2", (const char *)NULL);
    int64_t took = now_ms() - t0;
    CHECK_STATUS(st, POOL_OK, &err);
    CHECK(r != NULL && r->type == POOL_REPLY_NIL);
    pool_reply_free(r);
    CHECK(took >= 1900);
    if (!CHECK(took < 2900 * slow_factor()))
        fprintf(stderr, "  BLPOP 2 took %" PRId64 " ms\n", took);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");

    /* 0: no read timeout at all. */
    r = cmd_ex(conn, 0, &st, &err, "BLPOP", "ct:empty", "1.2", (const char *)NULL);
    CHECK_STATUS(st, POOL_OK, &err);
    CHECK(r != NULL && r->type == POOL_REPLY_NIL);
    pool_reply_free(r);
    /* < 0: the pool's read timeout, as pool_conn_command. */
    r = cmd_ex(conn, -1, &st, &err, "PING", (const char *)NULL);
    CHECK_STATUS(st, POOL_OK, &err);
    CHECK_REPLY_STR(r, POOL_REPLY_STATUS, "PONG");
    pool_reply_free(r);

    /* Another client pushes after 500 ms: BLPOP returns the element. */
    struct delayed_push d = {pool, POOL_OK};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, delayed_push_worker, &d), 0);
    t0 = now_ms();
    r = cmd_ex(conn, 6000, &st, &err, "BLPOP", "ct:list", "5", (const char *)NULL);
    took = now_ms() - t0;
    pthread_join(th, NULL);
    CHECK_STATUS(d.st, POOL_OK, &err);
    CHECK_STATUS(st, POOL_OK, &err);
    CHECK(r != NULL && r->type == POOL_REPLY_ARRAY && r->elements == 2);
    if (r != NULL && r->elements == 2) {
        CHECK_REPLY_STR(r->element[0], POOL_REPLY_STRING, "ct:list");
        CHECK_REPLY_STR(r->element[1], POOL_REPLY_STRING, "late");
    }
    pool_reply_free(r);
    CHECK(took >= 400);
    if (!CHECK(took < 4000 * slow_factor()))
        fprintf(stderr, "  BLPOP with a push took %" PRId64 " ms\n", took);
    CHECK_EQ(CMD_INT(conn, "CLIENT", "ID"), id); /* the same conn, still good */

    /* BLPOP 3 with 1000 ms: POOL_ERR_IO after ~1 s, and the conn is bad. */
    t0 = now_ms();
    r = cmd_ex(conn, 1000, &st, &err, "BLPOP", "ct:empty", "3", (const char *)NULL);
    took = now_ms() - t0;
    CHECK_STATUS(st, POOL_ERR_IO, &err);
    CHECK(r == NULL);
    CHECK_CONTAINS(err.message, "timeout");
    CHECK(took >= 950);
    if (!CHECK(took < 2900 * slow_factor()))
        fprintf(stderr, "  BLPOP 3 took %" PRId64 " ms\n", took);
    r = cmd_status(conn, &st, &err, "PING", (const char *)NULL);
    CHECK_STATUS(st, POOL_ERR_BAD_CONN, &err);
    CHECK(r == NULL);
    pool_stats_t before = stats_of(pool);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    CHECK_EQ(stats_of(pool).removed_conns, before.removed_conns + 1);
    pool_free(pool);
}

/* A pipeline of up to 256 commands of NUL-terminated strings, each at most 4 arguments. */
typedef struct pipe {
    size_t n;
    int argcs[256];
    const char *args[256][4];
    const char *const *argvs[256];
    char bufs[256][2][32];
    pool_reply_t *replies[256];
    size_t nreplies;
    pool_error_t err;
} pipe_t;

static void pipe_add(pipe_t *p, const char *a0, const char *a1, const char *a2)
{
    size_t i = p->n++;
    p->args[i][0] = a0;
    p->args[i][1] = a1;
    p->args[i][2] = a2;
    p->argcs[i] = a2 != NULL ? 3 : a1 != NULL ? 2 : 1;
    p->argvs[i] = p->args[i];
}

static pool_status_t pipe_run(pool_conn_t *conn, pipe_t *p, int64_t timeout_ms)
{
    return pool_conn_pipeline(conn, p->n, p->argcs, p->argvs, NULL, timeout_ms, p->replies,
                              &p->nreplies, &p->err);
}

static void pipe_free(pipe_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        pool_reply_free(p->replies[i]);
    p->n = 0;
}

static void pipeline_on(const char *url_fmt)
{
    pool_t *pool = pool_from_url(url_fmt, plain_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);
    static pipe_t p;
    memset(&p, 0, sizeof p);

    /* 100 SETs, a WRONGTYPE in the middle, 100 GETs: every reply in its place. */
    for (int i = 0; i < 100; i++) {
        snprintf(p.bufs[i][0], 32, "pl:k%d", i);
        snprintf(p.bufs[i][1], 32, "v%d", i);
        pipe_add(&p, "SET", p.bufs[i][0], p.bufs[i][1]);
    }
    pipe_add(&p, "LPUSH", "pl:k0", "x");
    for (int i = 0; i < 100; i++)
        pipe_add(&p, "GET", p.bufs[i][0], NULL);
    CHECK_STATUS(pipe_run(conn, &p, -1), POOL_OK, &p.err);
    CHECK_EQ(p.nreplies, 201);
    for (int i = 0; i < 100; i++) {
        CHECK_REPLY_STR(p.replies[i], POOL_REPLY_STATUS, "OK");
        CHECK_REPLY_STR(p.replies[101 + i], POOL_REPLY_STRING, p.bufs[i][1]);
    }
    CHECK(p.replies[100] != NULL && p.replies[100]->type == POOL_REPLY_ERROR &&
          strncmp(p.replies[100]->str, "WRONGTYPE", 9) == 0);
    pipe_free(&p);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");

    /* MULTI / SET / INCR / EXEC: EXEC's reply is the array of theirs. */
    pipe_add(&p, "MULTI", NULL, NULL);
    pipe_add(&p, "SET", "pl:t", "1");
    pipe_add(&p, "INCR", "pl:t", NULL);
    pipe_add(&p, "EXEC", NULL, NULL);
    CHECK_STATUS(pipe_run(conn, &p, -1), POOL_OK, &p.err);
    CHECK_EQ(p.nreplies, 4);
    CHECK_REPLY_STR(p.replies[0], POOL_REPLY_STATUS, "OK");
    CHECK_REPLY_STR(p.replies[1], POOL_REPLY_STATUS, "QUEUED");
    CHECK_REPLY_STR(p.replies[2], POOL_REPLY_STATUS, "QUEUED");
    pool_reply_t *exec = p.replies[3];
    CHECK(exec != NULL && exec->type == POOL_REPLY_ARRAY && exec->elements == 2);
    if (exec != NULL && exec->elements == 2) {
        CHECK_REPLY_STR(exec->element[0], POOL_REPLY_STATUS, "OK");
        CHECK(exec->element[1]->type == POOL_REPLY_INTEGER && exec->element[1]->integer == 2);
    }
    pipe_free(&p);

    /* WATCH, another client changes the key, then MULTI/SET/EXEC: EXEC is nil, not an
       error. */
    EXPECT_STR(conn, POOL_REPLY_STATUS, "OK", "WATCH", "pl:w");
    pool_conn_t *other = get_conn_or_exit(pool);
    EXPECT_STR(other, POOL_REPLY_STATUS, "OK", "SET", "pl:w", "theirs");
    CHECK_EQ(pool_put(pool, other), POOL_OK);
    pipe_add(&p, "MULTI", NULL, NULL);
    pipe_add(&p, "SET", "pl:w", "mine");
    pipe_add(&p, "EXEC", NULL, NULL);
    CHECK_STATUS(pipe_run(conn, &p, -1), POOL_OK, &p.err);
    CHECK_EQ(p.nreplies, 3);
    CHECK(p.replies[2] != NULL && p.replies[2]->type == POOL_REPLY_NIL);
    pipe_free(&p);
    EXPECT_STR(conn, POOL_REPLY_STRING, "theirs", "GET", "pl:w");
    /* A refused command inside MULTI: EXEC is an EXECABORT error reply instead. */
    pipe_add(&p, "MULTI", NULL, NULL);
    pipe_add(&p, "NOSUCHCOMMAND", NULL, NULL);
    pipe_add(&p, "EXEC", NULL, NULL);
    CHECK_STATUS(pipe_run(conn, &p, -1), POOL_OK, &p.err);
    CHECK_EQ(p.nreplies, 3);
    CHECK(p.replies[1] != NULL && p.replies[1]->type == POOL_REPLY_ERROR);
    CHECK(p.replies[2] != NULL && p.replies[2]->type == POOL_REPLY_ERROR &&
          strncmp(p.replies[2]->str, "EXECABORT", 9) == 0);
    pipe_free(&p);

    /* ncmds 0: refused, nothing sent. */
    p.nreplies = 99;
    CHECK_STATUS(pipe_run(conn, &p, -1), POOL_ERR_INVALID_ARG, &p.err);
    CHECK_CONTAINS(p.err.message, "ncmds");
    CHECK_EQ(p.nreplies, 0);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");

    /* HELLO 3 inside a pipeline: the conn expects RESP3 afterwards, so a client tracking
       invalidation push is skipped, not a protocol error. */
    pipe_add(&p, "HELLO", "3", NULL);
    pipe_add(&p, "CLIENT", "TRACKING", "ON");
    pipe_add(&p, "GET", "pl:trk", NULL);
    CHECK_STATUS(pipe_run(conn, &p, -1), POOL_OK, &p.err);
    CHECK(p.nreplies == 3 && p.replies[0] != NULL && p.replies[0]->type == POOL_REPLY_MAP);
    pipe_free(&p);
    other = get_conn_or_exit(pool);
    EXPECT_STR(other, POOL_REPLY_STATUS, "OK", "SET", "pl:trk", "changed");
    CHECK_EQ(pool_put(pool, other), POOL_OK);
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");

    /* A timeout mid-way: the replies before it are returned, the conn is bad. */
    pipe_add(&p, "SET", "pl:a", "1");
    pipe_add(&p, "BLPOP", "pl:none", "5");
    pipe_add(&p, "GET", "pl:a", NULL);
    CHECK_STATUS(pipe_run(conn, &p, 500), POOL_ERR_IO, &p.err);
    CHECK_EQ(p.nreplies, 1);
    CHECK_REPLY_STR(p.replies[0], POOL_REPLY_STATUS, "OK");
    CHECK(p.replies[1] == NULL && p.replies[2] == NULL);
    pipe_free(&p);
    pool_error_t err;
    pool_status_t st;
    pool_reply_t *r = cmd_status(conn, &st, &err, "PING", (const char *)NULL);
    CHECK_STATUS(st, POOL_ERR_BAD_CONN, &err);
    CHECK(r == NULL);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    pool_free(pool);
}

/* A pipeline at the 2^20 limit (PINGs) completes, every reply read; one past it is
   refused before anything is sent. Under valgrind or ASan (REDISPOOL_SLOW > 1) a
   smaller pipeline keeps the run short; the refusal is checked at the limit there too. */
static void pipeline_at_the_limit(void)
{
    pool_t *pool = pool_from_url("redis://%s?pool_size=1", plain_addr);
    pool_conn_t *conn = get_conn_or_exit(pool);
    const size_t limit = (size_t)1 << 20;
    const size_t n = slow_factor() > 1 ? limit / 64 : limit;
    static const char *const ping[] = {"PING"};
    int *argcs = malloc((limit + 1) * sizeof *argcs);
    const char *const **argvs = malloc((limit + 1) * sizeof *argvs);
    pool_reply_t **replies = calloc(limit + 1, sizeof *replies);
    if (argcs == NULL || argvs == NULL || replies == NULL) {
        fprintf(stderr, "out of memory for a pipeline of %zu\n", limit + 1);
        exit(1);
    }
    for (size_t i = 0; i <= limit; i++) {
        argcs[i] = 1;
        argvs[i] = ping;
    }
    pool_error_t err;
    size_t nreplies = 0;
    CHECK_STATUS(pool_conn_pipeline(conn, n, argcs, argvs, NULL, -1, replies, &nreplies, &err),
                 POOL_OK, &err);
    CHECK_EQ(nreplies, n);
    for (size_t i = 0; i < nreplies; i++) {
        pool_reply_free(replies[i]);
        replies[i] = NULL;
    }

    nreplies = 99;
    CHECK_STATUS(
        pool_conn_pipeline(conn, limit + 1, argcs, argvs, NULL, -1, replies, &nreplies, &err),
        POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "ncmds");
    CHECK_EQ(nreplies, 0);
    /* Nothing was sent: the conn is in step and goes back to the pool. */
    EXPECT_STR(conn, POOL_REPLY_STATUS, "PONG", "PING");
    pool_stats_t before = stats_of(pool);
    CHECK_EQ(pool_put(pool, conn), POOL_OK);
    CHECK_EQ(stats_of(pool).idle_conns, before.idle_conns + 1);
    free(argcs);
    free(argvs);
    free(replies);
    pool_free(pool);
}

static void test_pipeline(void)
{
    section("pool_conn_pipeline: replies in place, MULTI/EXEC, WATCH's nil, a failure mid-way, 2^20");
    pipeline_on("redis://%s?pool_size=2");
    pipeline_on("redis://%s?pool_size=2&protocol=3");
    pipeline_at_the_limit();
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PLAIN_ADDR AUTH_ADDR\n", argv[0]);
        return 2;
    }
    plain_addr = argv[1];
    auth_addr = argv[2];
    test_url_and_commands();
    test_malformed_urls();
    test_auth();
    test_wrong_password();
    test_db_and_name();
    test_resp3();
    test_resp3_tracking_push();
    test_read_timeout();
    test_reply_limits();
    test_ping_after_idle();
    test_tracking_pushes_keep_the_deadline();
    test_ping_after_idle_keeps_the_gets_deadline();
    test_overtake_window();
    test_bypass_and_raw_fd();
    test_per_call_timeout();
    test_pipeline();
    return check_exit_status();
}
