/*
 * abi_misuse.c - the C ABI's argument checking and ownership rules, against a
 * real redis-server.
 *
 *   ./abi_misuse HOST:PORT
 *
 * Checks, through the public header only:
 *  - every exported function given NULL pointers returns its documented result
 *    and fills err_out; status strings and the version are never NULL;
 *  - pool_new rejects invalid options with POOL_ERR_INVALID_ARG naming the field;
 *  - double put, put/remove after remove, a conn of another pool and made-up
 *    handles are rejected and change nothing; the conn keeps working;
 *  - close/free semantics: second close, gets after close, conns returned after
 *    pool_close / pool_free are closed (Redis sees the client go away);
 *  - pool_free while gets wait for a turn, for a hung dial or for a dial's retry
 *    backoff: each returns POOL_ERR_CLOSED promptly, no memory error (valgrind,
 *    ASan), and the dial threads end;
 *  - pool handles are checked as conn handles are: a second pool_free, any call after
 *    pool_free, a made-up handle, and calls racing with pool_free are refused, never
 *    a read of freed memory;
 *  - conn userdata survives put/get and its free_fn runs exactly once;
 *  - pool_stats honours struct_size.
 *
 * Prints one line per failed check (file:line) on stderr; exits 0 only if every
 * check passed. Run by tests/c_abi.rs (also under valgrind).
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <unistd.h>

#include "check.h"

static redis_server_t redis; /* argv[1] */

/* ---- pools ----------------------------------------------------------------- */

static pool_options_t base_options(int32_t pool_size)
{
    /* Nothing here should ever wait; a leaked turn then fails a check instead of hanging. */
    return redis_pool_options(&redis, pool_size, scaled(2000));
}

static pool_t *new_pool(int32_t pool_size)
{
    pool_options_t o = base_options(pool_size);
    return new_pool_or_exit(&o);
}

/* ---- status strings and version -------------------------------------------- */

static void test_status_and_version(void)
{
    section("status strings and version");
    static const pool_status_t codes[] = {
        POOL_OK,          POOL_ERR_CLOSED,      POOL_ERR_EXHAUSTED, POOL_ERR_TIMEOUT,
        POOL_ERR_DIAL,    POOL_ERR_INVALID_ARG, POOL_ERR_WOULD_BLOCK, POOL_ERR_CANCELED,
        POOL_ERR_BAD_CONN, POOL_ERR_HANDSHAKE,  POOL_ERR_IO,        POOL_ERR_PROTOCOL,
        POOL_ERR_INTERNAL, POOL_ERR_CLUSTER, POOL_ERR_TLS,
    };
    const size_t n = sizeof codes / sizeof codes[0];
    CHECK_EQ(POOL_OK, 0);
    for (size_t i = 0; i < n; i++) {
        const char *s = pool_status_str(codes[i]);
        if (!CHECK(s != NULL))
            continue;
        if (!CHECK(s[0] != '\0'))
            fprintf(stderr, "  (status %d)\n", (int)codes[i]);
        if (!CHECK(strcmp(s, "unknown status") != 0))
            fprintf(stderr, "  (status %d is defined)\n", (int)codes[i]);
        for (size_t j = i + 1; j < n; j++)
            CHECK_NE(codes[i], codes[j]);
    }
    CHECK_CONTAINS(pool_status_str(POOL_ERR_CLOSED), "redis: client is closed");
    CHECK_CONTAINS(pool_status_str(POOL_ERR_EXHAUSTED), "redis: connection pool exhausted");
    CHECK_CONTAINS(pool_status_str(POOL_ERR_TIMEOUT), "redis: connection pool timeout");
    CHECK_CONTAINS(pool_status_str(POOL_ERR_BAD_CONN), "redis: Conn is in a bad state");

    static const pool_status_t unknown[] = {-1, 15, 100, 1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = pool_status_str(unknown[i]);
        if (CHECK(s != NULL) && !CHECK(strcmp(s, "unknown status") == 0))
            fprintf(stderr, "  (status %d gave \"%s\")\n", (int)unknown[i], s);
    }

    const char *v = pool_version();
    if (CHECK(v != NULL)) {
        CHECK(v[0] >= '0' && v[0] <= '9');
        CHECK(strchr(v, '.') != NULL);
    }
}

/* ---- invalid options ----------------------------------------------------- */

typedef struct option_case {
    const char *what;
    void (*mutate)(pool_options_t *o);
    const char *field; /* NULL: the options are valid */
} option_case_t;

static void o_valid(pool_options_t *o) { (void)o; }
static void o_neg_pool_size(pool_options_t *o) { o->pool_size = -1; }
static void o_min_idle_gt_size(pool_options_t *o) { o->pool_size = 2; o->min_idle_conns = 3; }
static void o_neg_min_idle(pool_options_t *o) { o->min_idle_conns = -1; }
static void o_neg_max_idle(pool_options_t *o) { o->max_idle_conns = -1; }
static void o_neg_max_active(pool_options_t *o) { o->max_active_conns = -1; }
static void o_neg_concurrent_dials(pool_options_t *o) { o->max_concurrent_dials = -1; }
static void o_null_addr(pool_options_t *o) { o->addr = NULL; o->dialer = NULL; }
static void o_no_port(pool_options_t *o) { o->addr = "nohostport"; }
static void o_bare_v6(pool_options_t *o) { o->addr = "::1:6379"; }
static void o_empty_addr(pool_options_t *o) { o->addr = ""; }
static void o_bad_port(pool_options_t *o) { o->addr = "127.0.0.1:notaport"; }
static void o_big_port(pool_options_t *o) { o->addr = "127.0.0.1:99999"; }
static void o_pool_timeout_m5(pool_options_t *o) { o->pool_timeout_ms = -5; }
static void o_dial_timeout_m5(pool_options_t *o) { o->dial_timeout_ms = -5; }
static void o_dial_timeout_m1(pool_options_t *o) { o->dial_timeout_ms = -1; }
static void o_neg_lifetime(pool_options_t *o) { o->conn_max_lifetime_ms = -5; }
static void o_neg_idle_time(pool_options_t *o) { o->conn_max_idle_time_ms = -5; }
static void o_neg_retries(pool_options_t *o) { o->dialer_retries = -1; }
static void o_struct_size_0(pool_options_t *o) { o->struct_size = 0; }
static void o_user_no_password(pool_options_t *o) { o->username = "alice"; }
static void o_protocol_4(pool_options_t *o) { o->protocol = 4; }
static void o_neg_db(pool_options_t *o) { o->db = -1; }
static void o_client_name_space(pool_options_t *o) { o->client_name = "my app"; }
static void o_read_timeout_m5(pool_options_t *o) { o->read_timeout_ms = -5; }
static void o_write_timeout_m5(pool_options_t *o) { o->write_timeout_ms = -5; }
static void o_ping_after_idle_m5(pool_options_t *o) { o->ping_after_idle_ms = -5; }

static const option_case_t option_cases[] = {
    {"defaults with addr (control)", o_valid, NULL},
    {"pool_size = -1", o_neg_pool_size, "pool_size"},
    {"min_idle_conns > pool_size", o_min_idle_gt_size, "min_idle_conns"},
    {"min_idle_conns = -1", o_neg_min_idle, "min_idle_conns"},
    {"max_idle_conns = -1", o_neg_max_idle, "max_idle_conns"},
    {"max_active_conns = -1", o_neg_max_active, "max_active_conns"},
    {"max_concurrent_dials = -1", o_neg_concurrent_dials, "max_concurrent_dials"},
    {"addr = NULL without dialer", o_null_addr, "addr"},
    {"addr = \"nohostport\"", o_no_port, "addr"},
    {"addr = \"::1:6379\" (v6 without brackets)", o_bare_v6, "addr"},
    {"addr = \"\"", o_empty_addr, "addr"},
    {"addr with a non-numeric port", o_bad_port, "addr"},
    {"addr with port 99999", o_big_port, "addr"},
    {"pool_timeout_ms = -5", o_pool_timeout_m5, "pool_timeout_ms"},
    {"dial_timeout_ms = -5", o_dial_timeout_m5, "dial_timeout_ms"},
    /* The header documents 0 = none for dial_timeout_ms, and no meaning for -1. */
    {"dial_timeout_ms = -1", o_dial_timeout_m1, "dial_timeout_ms"},
    {"conn_max_lifetime_ms = -5", o_neg_lifetime, "conn_max_lifetime_ms"},
    {"conn_max_idle_time_ms = -5", o_neg_idle_time, "conn_max_idle_time_ms"},
    {"dialer_retries = -1", o_neg_retries, "dialer_retries"},
    {"struct_size = 0", o_struct_size_0, "struct_size"},
    {"username without password", o_user_no_password, "username"},
    {"protocol = 4", o_protocol_4, "protocol"},
    {"db = -1", o_neg_db, "db"},
    {"client_name with a space", o_client_name_space, "client_name"},
    {"read_timeout_ms = -5", o_read_timeout_m5, "read_timeout_ms"},
    {"write_timeout_ms = -5", o_write_timeout_m5, "write_timeout_ms"},
    {"ping_after_idle_ms = -5", o_ping_after_idle_m5, "ping_after_idle_ms"},
};

static void test_invalid_options(void)
{
    section("pool_new with invalid options");
    for (size_t i = 0; i < sizeof option_cases / sizeof option_cases[0]; i++) {
        const option_case_t *c = &option_cases[i];
        pool_status_t want = c->field == NULL ? POOL_OK : POOL_ERR_INVALID_ARG;
        int failed_before = check_failures;

        /* With err_out. */
        pool_options_t o = base_options(4);
        c->mutate(&o);
        pool_t *pool = NULL;
        pool_error_t err;
        err_reset(&err);
        pool_status_t rc = pool_new(&o, &pool, &err);
        CHECK_STATUS(rc, want, &err);
        if (want == POOL_OK) {
            CHECK(pool != NULL);
            CHECK_EQ(err.code, ERR_UNTOUCHED);
        } else {
            CHECK(pool == NULL);
            if (CHECK_ERR_FILLED(&err, want))
                CHECK_CONTAINS(err.message, c->field);
        }
        if (rc == POOL_OK)
            pool_free(pool);

        /* Without err_out: same status, no crash. */
        pool = NULL;
        rc = pool_new(&o, &pool, NULL);
        CHECK_STATUS(rc, want, NULL);
        if (rc == POOL_OK)
            pool_free(pool);

        if (check_failures != failed_before)
            fprintf(stderr, "  (in option case: %s)\n", c->what);
    }
}

/* ---- NULL arguments ----------------------------------------------------- */

/* The live pool and checked-out conn the NULL cases pass as their other arguments. */
static pool_t *g_pool;
static pool_conn_t *g_conn;
static userdata_t g_ud;

typedef struct null_case {
    const char *what;
    int64_t (*call)(pool_error_t *err); /* err may be NULL */
    int64_t want;
    int fills_err; /* the function takes err_out */
} null_case_t;

static int64_t n_new_opts(pool_error_t *e)
{
    pool_t *p = NULL;
    pool_status_t rc = pool_new(NULL, &p, e);
    if (rc == POOL_OK)
        pool_free(p);
    return rc;
}
static int64_t n_new_out(pool_error_t *e)
{
    pool_options_t o = base_options(2);
    return pool_new(&o, NULL, e);
}
static int64_t n_get_pool(pool_error_t *e)
{
    pool_conn_t *c = NULL;
    return pool_get(NULL, &c, e);
}
static int64_t n_get_out(pool_error_t *e) { return pool_get(g_pool, NULL, e); }
static int64_t n_get_ex_pool(pool_error_t *e)
{
    pool_conn_t *c = NULL;
    return pool_get_ex(NULL, 0, NULL, &c, e);
}
static int64_t n_get_ex_out(pool_error_t *e) { return pool_get_ex(g_pool, 0, NULL, NULL, e); }
static int64_t n_get_ex_out_wait(pool_error_t *e) { return pool_get_ex(g_pool, -1, NULL, NULL, e); }
static int64_t n_try_get_pool(pool_error_t *e)
{
    pool_conn_t *c = NULL;
    (void)e;
    return pool_try_get(NULL, &c);
}
static int64_t n_try_get_out(pool_error_t *e) { (void)e; return pool_try_get(g_pool, NULL); }
static int64_t n_put_pool(pool_error_t *e) { (void)e; return pool_put(NULL, g_conn); }
static int64_t n_put_conn(pool_error_t *e) { (void)e; return pool_put(g_pool, NULL); }
static int64_t n_remove_pool(pool_error_t *e) { (void)e; return pool_remove(NULL, g_conn, "r"); }
static int64_t n_remove_conn(pool_error_t *e) { (void)e; return pool_remove(g_pool, NULL, "r"); }
static int64_t n_remove_all(pool_error_t *e) { (void)e; return pool_remove(NULL, NULL, NULL); }
static int64_t n_new_conn_pool(pool_error_t *e)
{
    pool_conn_t *c = NULL;
    return pool_new_conn(NULL, &c, e);
}
static int64_t n_new_conn_out(pool_error_t *e) { return pool_new_conn(g_pool, NULL, e); }
static int64_t n_close_conn_pool(pool_error_t *e) { (void)e; return pool_close_conn(NULL, g_conn); }
static int64_t n_close_conn_conn(pool_error_t *e) { (void)e; return pool_close_conn(g_pool, NULL); }
static int64_t n_len(pool_error_t *e) { (void)e; return pool_len(NULL); }
static int64_t n_idle_len(pool_error_t *e) { (void)e; return pool_idle_len(NULL); }
static int64_t n_stats_pool(pool_error_t *e)
{
    pool_stats_t s;
    (void)e;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    return pool_stats(NULL, &s);
}
static int64_t n_stats_out(pool_error_t *e) { (void)e; return pool_stats(g_pool, NULL); }
static int64_t n_close(pool_error_t *e) { (void)e; return pool_close(NULL); }
static int64_t n_free(pool_error_t *e) { (void)e; pool_free(NULL); return 0; }
static int64_t n_conn_fd(pool_error_t *e) { (void)e; return pool_conn_fd(NULL); }
static int64_t n_conn_id(pool_error_t *e) { (void)e; return (int64_t)pool_conn_id(NULL); }
static int64_t n_set_userdata(pool_error_t *e)
{
    (void)e;
    pool_conn_set_userdata(NULL, &g_ud, count_free);
    return g_ud.freed; /* nothing attached, nothing freed */
}
static int64_t n_userdata(pool_error_t *e) { (void)e; return pool_conn_userdata(NULL) != NULL; }
static int64_t n_options_init(pool_error_t *e) { (void)e; pool_options_init(NULL); return 0; }
static int64_t n_cancel_fire(pool_error_t *e) { (void)e; pool_cancel_fire(NULL); return 0; }
static int64_t n_cancel_free(pool_error_t *e) { (void)e; pool_cancel_free(NULL); return 0; }

static const null_case_t null_cases[] = {
    {"pool_new(opts=NULL)", n_new_opts, POOL_ERR_INVALID_ARG, 1},
    {"pool_new(pool_out=NULL)", n_new_out, POOL_ERR_INVALID_ARG, 1},
    {"pool_get(pool=NULL)", n_get_pool, POOL_ERR_INVALID_ARG, 1},
    {"pool_get(conn_out=NULL)", n_get_out, POOL_ERR_INVALID_ARG, 1},
    {"pool_get_ex(pool=NULL)", n_get_ex_pool, POOL_ERR_INVALID_ARG, 1},
    {"pool_get_ex(conn_out=NULL, timeout 0)", n_get_ex_out, POOL_ERR_INVALID_ARG, 1},
    {"pool_get_ex(conn_out=NULL, timeout -1)", n_get_ex_out_wait, POOL_ERR_INVALID_ARG, 1},
    {"pool_try_get(pool=NULL)", n_try_get_pool, POOL_ERR_INVALID_ARG, 0},
    {"pool_try_get(conn_out=NULL)", n_try_get_out, POOL_ERR_INVALID_ARG, 0},
    {"pool_put(pool=NULL)", n_put_pool, POOL_ERR_INVALID_ARG, 0},
    {"pool_put(conn=NULL)", n_put_conn, POOL_ERR_INVALID_ARG, 0},
    {"pool_remove(pool=NULL)", n_remove_pool, POOL_ERR_INVALID_ARG, 0},
    {"pool_remove(conn=NULL)", n_remove_conn, POOL_ERR_INVALID_ARG, 0},
    {"pool_remove(NULL, NULL, NULL)", n_remove_all, POOL_ERR_INVALID_ARG, 0},
    {"pool_new_conn(pool=NULL)", n_new_conn_pool, POOL_ERR_INVALID_ARG, 1},
    {"pool_new_conn(conn_out=NULL)", n_new_conn_out, POOL_ERR_INVALID_ARG, 1},
    {"pool_close_conn(pool=NULL)", n_close_conn_pool, POOL_ERR_INVALID_ARG, 0},
    {"pool_close_conn(conn=NULL)", n_close_conn_conn, POOL_ERR_INVALID_ARG, 0},
    {"pool_len(NULL)", n_len, -1, 0},
    {"pool_idle_len(NULL)", n_idle_len, -1, 0},
    {"pool_stats(pool=NULL)", n_stats_pool, POOL_ERR_INVALID_ARG, 0},
    {"pool_stats(stats_out=NULL)", n_stats_out, POOL_ERR_INVALID_ARG, 0},
    {"pool_close(NULL)", n_close, POOL_ERR_INVALID_ARG, 0},
    {"pool_free(NULL)", n_free, 0, 0},
    {"pool_conn_fd(NULL)", n_conn_fd, -1, 0},
    {"pool_conn_id(NULL)", n_conn_id, 0, 0},
    {"pool_conn_set_userdata(NULL, ...)", n_set_userdata, 0, 0},
    {"pool_conn_userdata(NULL)", n_userdata, 0, 0},
    {"pool_options_init(NULL)", n_options_init, 0, 0},
    {"pool_cancel_fire(NULL)", n_cancel_fire, 0, 0},
    {"pool_cancel_free(NULL)", n_cancel_free, 0, 0},
};

static void test_null_args(void)
{
    section("NULL arguments");
    const int32_t size = 2;
    g_pool = new_pool(size);
    g_conn = get_conn(g_pool);
    if (g_conn == NULL)
        return;
    const uint64_t id = pool_conn_id(g_conn);
    CHECK_NE(id, 0);
    const pool_snapshot_t before = snapshot_of(g_pool);

    for (size_t i = 0; i < sizeof null_cases / sizeof null_cases[0]; i++) {
        const null_case_t *c = &null_cases[i];
        int failed_before = check_failures;

        pool_error_t err;
        err_reset(&err);
        CHECK_EQ(c->call(&err), c->want);
        if (c->fills_err)
            CHECK_ERR_FILLED(&err, (pool_status_t)c->want);
        else
            CHECK_EQ(err.code, ERR_UNTOUCHED);
        CHECK_EQ(c->call(NULL), c->want);

        /* Nothing changed: the pool's counts, and the conn is still checked out. */
        CHECK_UNCHANGED(g_pool, before);
        CHECK_EQ(pool_conn_id(g_conn), id);
        if (check_failures != failed_before)
            fprintf(stderr, "  (in NULL case: %s)\n", c->what);
    }
    CHECK_EQ(g_ud.freed, 0);

    /* The conn still works and goes back normally. */
    CHECK(ping_ok(g_conn));
    CHECK_STATUS(pool_put(g_pool, g_conn), POOL_OK, NULL);

    /* No call above leaked a turn: all pool_size conns can be had without waiting. */
    pool_conn_t *held[2] = {NULL, NULL};
    for (int32_t i = 0; i < size; i++) {
        pool_error_t err;
        err_reset(&err);
        CHECK_STATUS(pool_get_ex(g_pool, 0, NULL, &held[i], &err), POOL_OK, &err);
    }
    /* ... and the pool still enforces its size (so the check above can fail). */
    pool_conn_t *extra = NULL;
    pool_error_t err;
    err_reset(&err);
    CHECK_STATUS(pool_get_ex(g_pool, 0, NULL, &extra, &err), POOL_ERR_TIMEOUT, &err);
    for (int32_t i = 0; i < size; i++)
        if (held[i] != NULL)
            CHECK_STATUS(pool_put(g_pool, held[i]), POOL_OK, NULL);
    if (extra != NULL)
        pool_put(g_pool, extra);
    pool_free(g_pool);
    g_pool = NULL;
    g_conn = NULL;
}

/* ---- conn misuse ------------------------------------------------------------ */

/* Every way of giving back or using `conn` that must be rejected, with `pool` unchanged. */
static void check_dead_handle(pool_t *pool, pool_conn_t *conn, const char *what)
{
    int failed_before = check_failures;
    pool_snapshot_t before = snapshot_of(pool);
    userdata_t ud = {0};

    CHECK_EQ(pool_conn_fd(conn), -1);
    CHECK_EQ(pool_conn_id(conn), 0);
    CHECK(pool_conn_userdata(conn) == NULL);
    pool_conn_set_userdata(conn, &ud, count_free);
    CHECK(pool_conn_userdata(conn) == NULL);
    CHECK_EQ(ud.freed, 0);
    CHECK_UNCHANGED(pool, before);

    CHECK_STATUS(pool_put(pool, conn), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(pool, before);
    CHECK_STATUS(pool_remove(pool, conn, "misuse"), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(pool, before);
    CHECK_STATUS(pool_remove(pool, conn, NULL), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(pool, before);
    CHECK_STATUS(pool_close_conn(pool, conn), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(pool, before);
    CHECK_EQ(ud.freed, 0);
    if (check_failures != failed_before)
        fprintf(stderr, "  (handle: %s)\n", what);
}

static void test_conn_misuse(void)
{
    section("double put, put/remove after remove, foreign and made-up handles");
    pool_t *a = new_pool(3);
    pool_t *b = new_pool(3);

    /* A conn put back: its handle is dead. */
    pool_conn_t *c = get_conn(a);
    if (c == NULL)
        return;
    const uint64_t id = pool_conn_id(c);
    CHECK_NE(id, 0);
    CHECK(pool_conn_fd(c) >= 0);
    CHECK(ping_ok(c));
    CHECK_STATUS(pool_put(a, c), POOL_OK, NULL);
    CHECK_EQ(pool_len(a), 1);
    CHECK_EQ(pool_idle_len(a), 1);
    check_dead_handle(a, c, "after put (double put)");
    check_dead_handle(b, c, "after put, given to another pool");

    /* The conn itself is fine: the next get reuses it and it works. */
    pool_conn_t *c2 = get_conn(a);
    if (c2 == NULL)
        return;
    CHECK_EQ(pool_conn_id(c2), id);
    CHECK(ping_ok(c2));
    CHECK(pool_conn_userdata(c2) == NULL); /* set_userdata on the dead handle was ignored */

    /* The stale handle stays dead while the same conn is checked out again. */
    check_dead_handle(a, c, "stale while its conn is checked out again");
    CHECK_EQ(pool_conn_id(c2), id);
    CHECK(ping_ok(c2));

    /* Removed: put, remove and close_conn after it are rejected. */
    CHECK_STATUS(pool_remove(a, c2, "test"), POOL_OK, NULL);
    CHECK_EQ(pool_len(a), 0);
    CHECK_EQ(pool_idle_len(a), 0);
    check_dead_handle(a, c2, "after remove");

    /* A conn of pool b given to pool a: rejected, both pools unchanged, conn still b's. */
    pool_conn_t *cb = get_conn(b);
    if (cb == NULL)
        return;
    const uint64_t idb = pool_conn_id(cb);
    pool_snapshot_t sa = snapshot_of(a), sb = snapshot_of(b);
    CHECK_STATUS(pool_put(a, cb), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_remove(a, cb, "not yours"), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_close_conn(a, cb), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(a, sa);
    CHECK_UNCHANGED(b, sb);
    CHECK_EQ(pool_conn_id(cb), idb);
    CHECK(pool_conn_fd(cb) >= 0);
    CHECK(ping_ok(cb));
    CHECK_STATUS(pool_put(b, cb), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(b), 1);
    pool_conn_t *cb2 = get_conn(b);
    if (cb2 != NULL) {
        CHECK_EQ(pool_conn_id(cb2), idb);
        CHECK(ping_ok(cb2));
        CHECK_STATUS(pool_put(b, cb2), POOL_OK, NULL);
    }

    /* Made-up handle values: never checked out, never dereferenced. */
    userdata_t local = {0};
    pool_conn_t *fakes[] = {
        (pool_conn_t *)(uintptr_t)0x1234,
        (pool_conn_t *)(uintptr_t)-1,
        (pool_conn_t *)(void *)&local, /* a real address that is not a handle */
#if UINTPTR_MAX > 0xFFFFFFFFu
        (pool_conn_t *)(uintptr_t)0x8000000000000001u,
        (pool_conn_t *)(uintptr_t)0xFFFFFFFF00000000u,
#endif
    };
    /* One conn checked out from each pool while the fakes are tried. */
    pool_conn_t *ha = get_conn(a), *hb = get_conn(b);
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "made-up %p", (void *)fakes[i]);
        check_dead_handle(a, fakes[i], what);
        check_dead_handle(b, fakes[i], what);
    }
    CHECK_EQ(local.freed, 0);
    if (ha != NULL) {
        CHECK(ping_ok(ha));
        CHECK_STATUS(pool_put(a, ha), POOL_OK, NULL);
    }
    if (hb != NULL) {
        CHECK(ping_ok(hb));
        CHECK_STATUS(pool_put(b, hb), POOL_OK, NULL);
    }
    pool_free(a);
    pool_free(b);
}

/* ---- racing returns of one handle ------------------------------------------- */

#define RACERS 6
#define RACE_ROUNDS 300

typedef struct {
    pool_t *pool;
    pool_conn_t *volatile conn; /* the handle every racer returns this round */
    volatile int round;         /* racers start a round when it changes */
    volatile int arrived;       /* racers done with the current round */
    int ok[RACERS];             /* POOL_OK results per racer, all rounds */
    int bad[RACERS];            /* any other status */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} race_t;

typedef struct {
    race_t *r;
    int idx;
} racer_arg_t;

static void *racer(void *p)
{
    racer_arg_t *a = p;
    race_t *r = a->r;
    for (int round = 1; round <= RACE_ROUNDS; round++) {
        pthread_mutex_lock(&r->mu);
        while (r->round < round)
            pthread_cond_wait(&r->cv, &r->mu);
        pool_conn_t *c = r->conn;
        pthread_mutex_unlock(&r->mu);
        /* Half the racers put, half remove: exactly one of them may win the handle. */
        pool_status_t s = (a->idx % 2 == 0) ? pool_put(r->pool, c) : pool_remove(r->pool, c, "race");
        if (s == POOL_OK)
            r->ok[a->idx]++;
        else if (s != POOL_ERR_INVALID_ARG)
            r->bad[a->idx]++;
        pthread_mutex_lock(&r->mu);
        r->arrived++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

static void test_racing_returns(void)
{
    section("racing puts and removes of one handle; stale handle of a reused slot");
    pool_t *a = new_pool(2);
    race_t r = {.pool = a};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    pthread_t th[RACERS];
    racer_arg_t args[RACERS];
    for (int i = 0; i < RACERS; i++) {
        args[i] = (racer_arg_t){&r, i};
        pthread_create(&th[i], NULL, racer, &args[i]);
    }
    int rounds_ok = 0;
    for (int round = 1; round <= RACE_ROUNDS; round++) {
        pool_conn_t *c = get_conn(a);
        pthread_mutex_lock(&r.mu);
        r.conn = c;
        r.arrived = 0;
        r.round = round;
        pthread_cond_broadcast(&r.cv);
        while (r.arrived < RACERS)
            pthread_cond_wait(&r.cv, &r.mu);
        pthread_mutex_unlock(&r.mu);
        /* Every conn came back exactly once: nothing checked out, nothing lost. */
        pool_stats_t st = {.struct_size = sizeof st};
        pool_stats(a, &st);
        if (st.in_use_conns == 0 && pool_len(a) <= 2)
            rounds_ok++;
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    int ok = 0, bad = 0;
    for (int i = 0; i < RACERS; i++) {
        ok += r.ok[i];
        bad += r.bad[i];
    }
    CHECK_EQ(ok, RACE_ROUNDS); /* one winner per round */
    CHECK_EQ(bad, 0);          /* every loser was told INVALID_ARG */
    CHECK_EQ(rounds_ok, RACE_ROUNDS);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);

    /* A removed conn's slot is reused by the next new conn: the old handle stays dead and
       cannot touch the new checkout. */
    pool_free(a);
    pool_t *b = new_pool(1);
    pool_conn_t *c1 = get_conn(b);
    if (c1 != NULL) {
        CHECK_STATUS(pool_remove(b, c1, "closing"), POOL_OK, NULL);
        pool_conn_t *c2 = get_conn(b); /* a new conn, likely in c1's slot */
        if (c2 != NULL) {
            check_dead_handle(b, c1, "stale handle of a closed conn, slot reused");
            CHECK(ping_ok(c2));
            CHECK_STATUS(pool_put(b, c2), POOL_OK, NULL);
            CHECK_EQ(pool_idle_len(b), 1);
        }
    }
    pool_free(b);
}

/* ---- close ------------------------------------------------------------------ */

static void test_close(void)
{
    section("pool_close");
    int admin = redis_connect(&redis);
    if (!CHECK(admin >= 0))
        return;
    pool_t *pool = new_pool(3);
    pool_conn_t *out = get_conn(pool);  /* stays checked out across the close */
    pool_conn_t *idle = get_conn(pool); /* put back: idle at close */
    if (out == NULL || idle == NULL)
        return;
    long long out_client = client_id_of(out);
    long long idle_client = client_id_of(idle);
    CHECK(out_client > 0);
    CHECK(idle_client > 0);
    CHECK_EQ(client_exists(admin, out_client), 1);
    CHECK_EQ(client_exists(admin, idle_client), 1);
    userdata_t ud_idle = {0}, ud_out = {0};
    pool_conn_set_userdata(idle, &ud_idle, count_free);
    pool_conn_set_userdata(out, &ud_out, count_free);
    CHECK_STATUS(pool_put(pool, idle), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(pool), 1);

    CHECK_STATUS(pool_close(pool), POOL_OK, NULL);
    /* Idle conns are closed by the close itself. */
    CHECK_EQ(pool_idle_len(pool), 0);
    CHECK_EQ(ud_idle.freed, 1);
    CHECK_EVENTUALLY(client_exists(admin, idle_client) == 0, 5000);
    CHECK_STATUS(pool_close(pool), POOL_ERR_CLOSED, NULL);

    pool_error_t err;
    pool_conn_t *c = NULL;
    err_reset(&err);
    CHECK_STATUS(pool_get(pool, &c, &err), POOL_ERR_CLOSED, &err);
    CHECK_ERR_FILLED(&err, POOL_ERR_CLOSED);
    if (!CHECK(strcmp(err.message, "redis: client is closed") == 0))
        fprintf(stderr, "  (message: \"%s\")\n", err.message);
    CHECK(c == NULL);
    err_reset(&err);
    CHECK_STATUS(pool_get_ex(pool, 0, NULL, &c, &err), POOL_ERR_CLOSED, &err);
    CHECK_ERR_FILLED(&err, POOL_ERR_CLOSED);
    CHECK(strcmp(err.message, "redis: client is closed") == 0);
    CHECK(c == NULL);
    CHECK_STATUS(pool_try_get(pool, &c), POOL_ERR_CLOSED, NULL);
    CHECK(c == NULL);
    err_reset(&err);
    CHECK_STATUS(pool_new_conn(pool, &c, &err), POOL_ERR_CLOSED, &err);
    CHECK_ERR_FILLED(&err, POOL_ERR_CLOSED);
    CHECK(c == NULL);

    /* The conn checked out across the close still works until it comes back ... */
    CHECK_EQ(client_exists(admin, out_client), 1);
    CHECK(ping_ok(out));
    CHECK_EQ(ud_out.freed, 0);
    /* ... and coming back closes it. */
    CHECK_STATUS(pool_put(pool, out), POOL_OK, NULL);
    CHECK_EQ(ud_out.freed, 1);
    CHECK_EQ(pool_len(pool), 0);
    CHECK_EQ(pool_idle_len(pool), 0);
    CHECK_EVENTUALLY(client_exists(admin, out_client) == 0, 5000);
    CHECK_STATUS(pool_put(pool, out), POOL_ERR_INVALID_ARG, NULL);
    pool_free(pool);
    CHECK_EQ(ud_idle.freed, 1);
    CHECK_EQ(ud_out.freed, 1);
    close(admin);
}

/* ---- conns returned after pool_free ------------------------------------------ */

static void test_put_after_free(void)
{
    section("conns returned after pool_free");
    int admin = redis_connect(&redis);
    if (!CHECK(admin >= 0))
        return;
    pool_t *pool = new_pool(3);
    pool_conn_t *put_me = get_conn(pool);
    pool_conn_t *remove_me = get_conn(pool);
    pool_conn_t *unpooled = NULL;
    pool_error_t err;
    err_reset(&err);
    CHECK_STATUS(pool_new_conn(pool, &unpooled, &err), POOL_OK, &err);
    if (put_me == NULL || remove_me == NULL || unpooled == NULL)
        return;

    long long ids[3] = {client_id_of(put_me), client_id_of(remove_me), client_id_of(unpooled)};
    for (int i = 0; i < 3; i++) {
        CHECK(ids[i] > 0);
        CHECK_EQ(client_exists(admin, ids[i]), 1);
    }
    userdata_t ud[3] = {{0}, {0}, {0}};
    pool_conn_set_userdata(put_me, &ud[0], count_free);
    pool_conn_set_userdata(remove_me, &ud[1], count_free);
    pool_conn_set_userdata(unpooled, &ud[2], count_free);

    pool_free(pool);

    /* Still checked out: open and usable until returned. */
    CHECK(ping_ok(put_me));
    CHECK(ping_ok(remove_me));
    CHECK(ping_ok(unpooled));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ud[i].freed, 0);

    CHECK_STATUS(pool_put(pool, put_me), POOL_OK, NULL);
    CHECK_EQ(ud[0].freed, 1);
    CHECK_EQ(pool_conn_fd(put_me), -1);
    CHECK_EVENTUALLY(client_exists(admin, ids[0]) == 0, 5000);
    CHECK_EQ(client_exists(admin, ids[1]), 1);

    CHECK_STATUS(pool_remove(pool, remove_me, "after free"), POOL_OK, NULL);
    CHECK_EQ(ud[1].freed, 1);
    CHECK_EVENTUALLY(client_exists(admin, ids[1]) == 0, 5000);
    CHECK_EQ(client_exists(admin, ids[2]), 1);

    /* The last conn out: after this the pool's memory is gone (valgrind watches). */
    CHECK_STATUS(pool_close_conn(pool, unpooled), POOL_OK, NULL);
    CHECK_EQ(ud[2].freed, 1);
    CHECK_EVENTUALLY(client_exists(admin, ids[2]) == 0, 5000);

    for (int i = 0; i < 3; i++)
        CHECK_EQ(ud[i].freed, 1);
    close(admin);
}

/* ---- a pool freed while another thread keeps its count ----------------------- */

/* A thread's pool_put parks the pool's count for that thread's next get (so a steady
 * get/put costs no atomic on the pool's shared count). A pool freed on another thread
 * meanwhile must stay valid for its conns still out and be released by that thread
 * later (its next put of another pool, or its exit), never inside a call on the pool.
 * valgrind and ASan watch every step. */

typedef struct {
    pool_t *first;  /* gets and puts here, then waits */
    pool_t *second; /* NULL: the worker just exits after the wait */
    int step;       /* 1: first done; 2: main freed `first`; 3: worker done */
    pool_status_t status[4];
    pthread_mutex_t mu;
    pthread_cond_t cv;
} parked_t;

static void parked_set(parked_t *t, int step)
{
    pthread_mutex_lock(&t->mu);
    t->step = step;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void parked_await(parked_t *t, int step)
{
    pthread_mutex_lock(&t->mu);
    while (t->step < step)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

static void *parked_worker(void *p)
{
    parked_t *t = p;
    pool_conn_t *c = NULL;
    t->status[0] = pool_get(t->first, &c, NULL);
    t->status[1] = c ? pool_put(t->first, c) : POOL_ERR_INTERNAL;
    parked_set(t, 1);
    parked_await(t, 2);
    if (t->second != NULL) {
        c = NULL;
        t->status[2] = pool_get(t->second, &c, NULL);
        t->status[3] = c ? pool_put(t->second, c) : POOL_ERR_INTERNAL;
    }
    parked_set(t, 3);
    return NULL;
}

static void test_parked_count_of_freed_pool(void)
{
    section("a pool freed while another thread keeps its count from its last put");
    for (int exits = 0; exits <= 1; exits++) {
        pool_t *first = new_pool(2);
        pool_t *second = exits ? NULL : new_pool(2);
        parked_t t = {.first = first, .second = second};
        for (int i = 0; i < 4; i++)
            t.status[i] = POOL_OK;
        pthread_mutex_init(&t.mu, NULL);
        pthread_cond_init(&t.cv, NULL);
        pool_conn_t *held = get_conn(first);
        userdata_t ud = {0};
        if (held != NULL)
            pool_conn_set_userdata(held, &ud, count_free);
        pthread_t th;
        if (!CHECK_EQ(pthread_create(&th, NULL, parked_worker, &t), 0))
            return;
        parked_await(&t, 1);

        pool_free(first);
        if (held != NULL) {
            CHECK(ping_ok(held));
            CHECK_STATUS(pool_put(first, held), POOL_OK, NULL);
            CHECK_EQ(ud.freed, 1);
        }
        /* The worker's next put parks `second`'s count and drops `first`'s, the last;
         * or the worker exits and its thread-local drops it. */
        parked_set(&t, 2);
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK_EQ(t.step, 3);
        for (int i = 0; i < 4; i++)
            if (!CHECK_STATUS(t.status[i], POOL_OK, NULL))
                fprintf(stderr, "  (worker call %d, worker %s)\n", i, exits ? "exits" : "goes on");
        if (second != NULL) {
            /* This thread's own parked count of `second` goes with pool_free. */
            pool_conn_t *c = get_conn(second);
            if (c != NULL)
                CHECK_STATUS(pool_put(second, c), POOL_OK, NULL);
            pool_free(second);
        }
        pthread_cond_destroy(&t.cv);
        pthread_mutex_destroy(&t.mu);
    }
}

/* ---- pool_free while calls are in flight ------------------------------------ */

/* A dial function that blocks while its gate is shut (a slow server), answers with one end
 * of a socketpair when it is open, or fails with `fail_errno`. It is static and outlives
 * every pool that uses it: a dial already running when its pool is freed still returns
 * into it. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int shut;       /* dials block while set */
    int fail_errno; /* non-zero: answer with it */
    int calls, in_progress;
} gate_t;

static gate_t gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};

static int gate_dial(void *userdata, int64_t timeout_ms, int *fd_out)
{
    gate_t *g = userdata;
    pthread_mutex_lock(&g->mu);
    g->calls++;
    g->in_progress++;
    pthread_cond_broadcast(&g->cv);
    const int64_t until = now_ms() + (timeout_ms > 0 ? timeout_ms : 60000);
    while (g->shut && now_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    int rc = g->shut ? ETIMEDOUT : g->fail_errno;
    if (rc == 0) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            rc = errno;
        } else {
            close(sv[1]); /* nobody speaks on it: the conns here are never used */
            *fd_out = sv[0];
        }
    }
    g->in_progress--;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static void gate_set(int shut, int fail_errno)
{
    pthread_mutex_lock(&gate.mu);
    gate.shut = shut;
    gate.fail_errno = fail_errno;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static int gate_get(const int *field)
{
    pthread_mutex_lock(&gate.mu);
    int n = *field;
    pthread_mutex_unlock(&gate.mu);
    return n;
}

static pool_t *gate_pool(int32_t pool_size, int32_t retries, int64_t backoff_ms)
{
    pool_options_t o;
    pool_options_init(&o);
    o.addr = NULL;
    o.dialer = gate_dial;
    o.dialer_userdata = &gate;
    o.pool_size = pool_size;
    o.pool_timeout_ms = 60000; /* far beyond any bound checked here */
    o.dial_timeout_ms = 60000;
    o.dialer_retries = retries;
    o.dialer_retry_backoff_ms = backoff_ms;
    return new_pool_or_exit(&o);
}

/* How many threads of this process are named `name` (/proc/self/task/<tid>/comm). */
static int threads_named(const char *name)
{
    int n = 0;
    DIR *dir = opendir("/proc/self/task");
    if (dir == NULL)
        return -1;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) != NULL) {
            comm[strcspn(comm, "\n")] = '\0';
            n += strcmp(comm, name) == 0;
        }
        fclose(f);
    }
    closedir(dir);
    return n;
}

#define IN_FLIGHT 4

typedef struct {
    pool_t *pool;
    int64_t timeout_ms; /* pool_get_ex's */
    int new_conn;       /* pool_new_conn instead of pool_get_ex */
    pool_status_t status;
    int64_t took_ms;
    pool_conn_t *conn;
    atomic_int done;
} in_flight_t;

static void *in_flight_get(void *p)
{
    in_flight_t *t = p;
    pool_error_t err;
    err_reset(&err);
    int64_t t0 = now_ms();
    if (t->new_conn)
        t->status = pool_new_conn(t->pool, &t->conn, &err);
    else
        t->status = pool_get_ex(t->pool, t->timeout_ms, NULL, &t->conn, &err);
    t->took_ms = now_ms() - t0;
    atomic_store(&t->done, 1);
    return NULL;
}

static int all_done(in_flight_t *t, int n)
{
    for (int i = 0; i < n; i++)
        if (!atomic_load(&t[i].done))
            return 0;
    return 1;
}

/* Starts `n` gets (pool_get_ex with `timeout_ms`) or pool_new_conn calls on `pool`. */
static int start_calls(pthread_t *th, in_flight_t *t, int n, pool_t *pool, int64_t timeout_ms,
                       int new_conn)
{
    for (int i = 0; i < n; i++) {
        t[i] = (in_flight_t){
            .pool = pool, .timeout_ms = timeout_ms, .new_conn = new_conn, .status = -1};
        if (!CHECK_EQ(pthread_create(&th[i], NULL, in_flight_get, &t[i]), 0))
            return 0;
    }
    return 1;
}

/* After pool_free: every call returns POOL_ERR_CLOSED promptly (well before pool_timeout). */
static void check_gets_closed(pthread_t *th, in_flight_t *t, int n, const char *what)
{
    int ok;
    POLL_UNTIL(ok, all_done(t, n), 5000);
    if (!CHECK(ok)) {
        fprintf(stderr, "  (%s: gets still blocked 5 s after pool_free; giving up)\n", what);
        exit(check_exit_status());
    }
    for (int i = 0; i < n; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
        if (!CHECK_STATUS(t[i].status, POOL_ERR_CLOSED, NULL))
            fprintf(stderr, "  (%s: get %d)\n", what, i);
        CHECK(t[i].conn == NULL);
        CHECK(t[i].took_ms < scaled(5000));
    }
}

typedef struct {
    pool_cluster_t *cluster;
    pool_status_t status;
    pool_conn_t *conn;
    int64_t took_ms;
    atomic_int done;
} cluster_get_t;

static void *cluster_get_thread(void *p)
{
    cluster_get_t *t = p;
    int64_t t0 = now_ms();
    t->status = pool_cluster_get_slot(t->cluster, 0, -1, NULL, &t->conn, NULL);
    t->took_ms = now_ms() - t0;
    atomic_store(&t->done, 1);
    return NULL;
}

/* 6. A cluster get loading the slot map from a seed that accepts the connection and never
 * answers (a listener nobody accepts on: the kernel completes the handshake) is inside
 * the cluster, waiting for the seed's new conn, when the cluster is freed: it returns
 * POOL_ERR_CLOSED well before any timeout. */
static void test_cluster_free_in_flight(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (!CHECK(lfd >= 0) || !CHECK_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0) ||
        !CHECK_EQ(listen(lfd, 8), 0) ||
        !CHECK_EQ(getsockname(lfd, (struct sockaddr *)&sa, &len), 0))
        return;
    char seed[64];
    snprintf(seed, sizeof seed, "127.0.0.1:%d", ntohs(sa.sin_port));
    const char *seeds[] = {seed};
    pool_options_t node;
    pool_options_init(&node);
    node.read_timeout_ms = 60000;
    node.dial_timeout_ms = 60000;
    node.pool_timeout_ms = 60000;
    pool_cluster_options_t co;
    pool_cluster_options_init(&co);
    co.seeds = seeds;
    co.seeds_len = 1;
    co.node = &node;
    cluster_get_t t = {.status = -1};
    CHECK_STATUS(pool_cluster_new(&co, &t.cluster, NULL), POOL_OK, NULL);
    if (t.cluster == NULL)
        return;
    pthread_t th;
    if (!CHECK_EQ(pthread_create(&th, NULL, cluster_get_thread, &t), 0))
        return;
    /* The get's connection waits in the listener's queue: it is reading the slot map. */
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    CHECK_EVENTUALLY(poll(&pfd, 1, 0) == 1, 5000);
    pool_cluster_free(t.cluster);
    int ok;
    POLL_UNTIL(ok, atomic_load(&t.done), 5000);
    if (!CHECK(ok)) {
        fprintf(stderr, "  (cluster get still blocked 5 s after pool_cluster_free)\n");
        exit(check_exit_status());
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_STATUS(t.status, POOL_ERR_CLOSED, NULL);
    CHECK(t.took_ms < scaled(5000));
    CHECK(t.conn == NULL);
    close(lfd);
}

static void test_free_in_flight(void)
{
    section("pool_free while calls are in flight: blocked gets and dials return POOL_ERR_CLOSED");
    pthread_t th[IN_FLIGHT];
    in_flight_t t[IN_FLIGHT];
    char buf[512];

    /* 1. pool_size 1 and a dial that hangs: one get waits for its dial, the others for
     * the turn. No conn is out, so nothing but the calls themselves and the dial thread
     * keeps the pool. The dial is let go right after pool_free, so its thread (which
     * may drop the pool's last count) races with the gets on their way out; a few
     * rounds, as which one wins varies. */
    for (int round = 0; round < 5; round++) {
        gate_set(1, 0);
        pool_t *pool = gate_pool(1, 1, 0);
        if (!start_calls(th, t, IN_FLIGHT, pool, -1, 0))
            return;
        CHECK_EVENTUALLY(gate_get(&gate.in_progress) == 1, 5000);
        CHECK_EVENTUALLY(stats_of(pool).waiting == IN_FLIGHT - 1, 5000);
        CHECK_EVENTUALLY(stats_of(pool).pending_requests == IN_FLIGHT, 5000);
        pool_free(pool);
        gate_set(0, 0);
        check_gets_closed(th, t, IN_FLIGHT, "hung dial");
        CHECK_EVENTUALLY(gate_get(&gate.in_progress) == 0, 5000);
        CHECK_EVENTUALLY(threads_named("redispool-dial") == 0, 5000);
    }

    /* 2. pool_new_conn dials on the calling thread, so no dial thread keeps the pool:
     * freed while its dial hangs, the pool is only kept by the call itself. The dial
     * then returns to a closed pool: POOL_ERR_CLOSED, its conn closed. */
    gate_set(1, 0);
    const int calls_before_new_conn = gate_get(&gate.calls);
    pool_t *pool = gate_pool(1, 1, 0);
    if (!start_calls(th, t, 1, pool, -1, 1))
        return;
    CHECK_EVENTUALLY(gate_get(&gate.calls) == calls_before_new_conn + 1, 5000);
    pool_free(pool);
    gate_set(0, 0);
    check_gets_closed(th, t, 1, "pool_new_conn in a hung dial");
    CHECK_EVENTUALLY(gate_get(&gate.in_progress) == 0, 5000);

    /* 3. The turn is held by a conn that stays out across the free; gets wait for it,
     * get_ex with its own long timeout too. The conn comes back through the freed handle. */
    pool = gate_pool(1, 1, 0);
    pool_conn_t *held = get_conn(pool);
    if (held == NULL)
        return;
    if (!start_calls(th, t, 1, pool, 60000, 0) ||
        !start_calls(th + 1, t + 1, IN_FLIGHT - 1, pool, -1, 0))
        return;
    CHECK_EVENTUALLY(stats_of(pool).waiting == IN_FLIGHT, 5000);
    pool_free(pool);
    check_gets_closed(th, t, IN_FLIGHT, "turn held");
    CHECK(pool_conn_fd(held) >= 0);
    CHECK_STATUS(pool_put(pool, held), POOL_OK, NULL);

    /* 4. A dial worker between retries (dialer_retries 5, a 60 s backoff) when the pool
     * is freed: the get returns POOL_ERR_CLOSED, the worker stops at once (no further
     * dial call) and its thread ends. */
    gate_set(0, ECONNREFUSED);
    const int calls_before = gate_get(&gate.calls);
    pool = gate_pool(2, 5, 60000);
    if (!start_calls(th, t, 1, pool, -1, 0))
        return;
    CHECK_EVENTUALLY(gate_get(&gate.calls) == calls_before + 1, 5000);
    CHECK_EVENTUALLY(stats_of(pool).dials_in_progress == 1, 5000);
    pool_stats_t s = stats_of(pool);
    if (!CHECK_EQ(s.pending_requests, 1))
        fprintf(stderr, "  (%s)\n", stats_str(&s, buf, sizeof buf));
    pool_free(pool);
    check_gets_closed(th, t, 1, "dial backoff");
    CHECK_EVENTUALLY(threads_named("redispool-dial") == 0, 5000);
    CHECK_EQ(gate_get(&gate.calls), calls_before + 1);
    gate_set(0, 0);

    /* 5. A sticky pool whose conn is held: gets on it wait for that conn; freeing the
     * sticky pool (not its parent) wakes them with POOL_ERR_CLOSED, and the conn, put
     * through the freed handle, goes back to the parent. */
    pool_t *parent = gate_pool(2, 1, 0);
    pool_t *sticky = NULL;
    CHECK_STATUS(pool_sticky_new(parent, &sticky), POOL_OK, NULL);
    if (sticky == NULL)
        return;
    held = get_conn(sticky);
    if (held == NULL)
        return;
    if (!start_calls(th, t, IN_FLIGHT, sticky, 60000, 0))
        return;
    CHECK_EVENTUALLY(stats_of(sticky).waiting == IN_FLIGHT, 5000);
    pool_free(sticky);
    check_gets_closed(th, t, IN_FLIGHT, "sticky conn held");
    CHECK_STATUS(pool_put(sticky, held), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(parent), 1);
    pool_free(parent);

    test_cluster_free_in_flight();
}

/* ---- pool handles after pool_free ------------------------------------------------ */

/* Every call a freed handle can get, and what it must answer: refused, never a read of
 * freed memory (valgrind and ASan watch). */
static void check_dead_pool(pool_t *pool, const char *what)
{
    pool_conn_t *c = NULL;
    pool_error_t err;
    err_reset(&err);
    if (!CHECK_STATUS(pool_get(pool, &c, &err), POOL_ERR_INVALID_ARG, &err))
        fprintf(stderr, "  (%s)\n", what);
    CHECK_CONTAINS(err.message, "not a live pool handle");
    CHECK(c == NULL);
    CHECK_STATUS(pool_get_ex(pool, 0, NULL, &c, NULL), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_try_get(pool, &c), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_new_conn(pool, &c, NULL), POOL_ERR_INVALID_ARG, NULL);
    CHECK(c == NULL);
    CHECK_EQ(pool_len(pool), -1);
    CHECK_EQ(pool_idle_len(pool), -1);
    pool_stats_t s = {.struct_size = sizeof s};
    CHECK_STATUS(pool_stats(pool, &s), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_close(pool), POOL_ERR_INVALID_ARG, NULL);
    CHECK_EQ(pool_notify_fd(pool), -1);
    pool_t *child = NULL;
    CHECK_STATUS(pool_sticky_new(pool, &child), POOL_ERR_INVALID_ARG, NULL);
    CHECK(child == NULL);
    CHECK_STATUS(pool_sticky_reset(pool), POOL_ERR_INVALID_ARG, NULL);
    pool_free(pool); /* once more: ignored */
}

/* A pool handle is checked as a conn handle is: after pool_free it is dead, and a second
 * pool_free or any other call with it is refused, whether or not the pool's memory is
 * still alive (a conn of it still out) and however long ago. A second pool_free must
 * above all not give back a checked-out conn's count, which would free the pool under
 * that conn. */
static void test_dead_pool_handles(void)
{
    section("pool handles: a second pool_free, calls after it and made-up handles are refused");
    pool_t *pool = new_pool(2);
    pool_conn_t *c = get_conn(pool);
    if (c == NULL)
        return;
    userdata_t ud = {0};
    pool_conn_set_userdata(c, &ud, count_free);
    pool_free(pool);
    pool_free(pool);
    check_dead_pool(pool, "conn still out");
    CHECK(ping_ok(c));
    /* pool_conn_command reaches the pool through the conn's own reference. */
    const char *argv[] = {"PING"};
    pool_reply_t *reply = NULL;
    CHECK_STATUS(pool_conn_command(c, 1, argv, NULL, &reply, NULL), POOL_OK, NULL);
    CHECK(reply != NULL && reply->type == POOL_REPLY_STATUS && strcmp(reply->str, "PONG") == 0);
    pool_reply_free(reply);
    CHECK_EQ(ud.freed, 0);
    /* The handle the conn came through still takes it back. */
    CHECK_STATUS(pool_put(pool, c), POOL_OK, NULL);
    CHECK_EQ(ud.freed, 1);
    CHECK_STATUS(pool_put(pool, c), POOL_ERR_INVALID_ARG, NULL);
    /* Now nothing keeps the pool: its memory is gone, the handle is still refused. */
    check_dead_pool(pool, "memory gone");

    /* A new pool may reuse the slot: the old handle still does not reach it. */
    pool_t *again = new_pool(2);
    CHECK(again != pool);
    check_dead_pool(pool, "slot reused");
    c = get_conn(again);
    if (c != NULL)
        CHECK_STATUS(pool_put(again, c), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(again), 1);
    pool_free(again);

    /* Made-up values. */
    static char not_a_pool[64];
    check_dead_pool((pool_t *)(void *)not_a_pool, "an address");
    check_dead_pool((pool_t *)(uintptr_t)0xC000000000123456ull, "made-up bits");

    /* Each pool_cluster_node_pool is a handle of its own, freed once; a second free of
     * one of them is refused too, and the node pool (the cluster's) stays open for the
     * other handle. */
    const char *seeds[] = {redis.addr};
    pool_cluster_options_t co;
    pool_cluster_options_init(&co);
    co.seeds = seeds;
    co.seeds_len = 1;
    pool_cluster_t *cluster = NULL;
    CHECK_STATUS(pool_cluster_new(&co, &cluster, NULL), POOL_OK, NULL);
    if (cluster == NULL)
        return;
    pool_t *node1 = NULL, *node2 = NULL;
    CHECK_STATUS(pool_cluster_node_pool(cluster, redis.addr, &node1, NULL), POOL_OK, NULL);
    CHECK_STATUS(pool_cluster_node_pool(cluster, redis.addr, &node2, NULL), POOL_OK, NULL);
    CHECK(node1 != NULL && node2 != NULL && node1 != node2);
    if (node1 != NULL && node2 != NULL) {
        c = get_conn(node1);
        /* Another handle of the same node pool takes it back. */
        if (c != NULL)
            CHECK_STATUS(pool_put(node2, c), POOL_OK, NULL);
        pool_free(node1);
        pool_free(node1);
        check_dead_pool(node1, "node pool handle");
        c = get_conn(node2);
        if (c != NULL)
            CHECK_STATUS(pool_put(node2, c), POOL_OK, NULL);
        pool_free(node2);
    }
    pool_cluster_free(cluster);
}

/* ---- calls racing with pool_free --------------------------------------------------- */

/* Threads call a handle in a loop while another thread frees it: every call either got in
 * (and answers as on a closed pool or cluster at worst) or is refused as a dead handle;
 * once refused, always refused. Nothing reads freed memory (valgrind, ASan). */
#define FREE_RACERS 4

/* One call of kind `kind` (0..3) on `handle`; gives back a conn it got, counting a failed
 * give-back in *bad. */
typedef pool_status_t (*race_call_fn)(void *handle, int kind, int *bad);

typedef struct {
    void *handle;
    race_call_fn call;
    int kind;
    atomic_int *go;
    int calls, refused, bad;
} free_race_t;

static void *race_calls(void *p)
{
    free_race_t *r = p;
    while (!atomic_load(r->go)) {
    }
    int64_t deadline = now_ms() + scaled(10000);
    for (;;) {
        pool_status_t st = r->call(r->handle, r->kind, &r->bad);
        r->calls++;
        if (st == POOL_ERR_INVALID_ARG) {
            r->refused++;
            if (r->refused >= 3)
                return NULL;
        } else if (r->refused > 0) {
            r->bad++; /* refused, then let in again */
        } else if (st != POOL_OK && st != POOL_ERR_CLOSED && st != POOL_ERR_WOULD_BLOCK &&
                   st != POOL_ERR_TIMEOUT) {
            r->bad++;
        }
        if (now_ms() > deadline) {
            r->bad++; /* still let in long after the free */
            return NULL;
        }
    }
}

/* 20 rounds of FREE_RACERS threads (one of each kind) calling a handle from make() while
 * this thread frees it with free_fn at varying points of their loops. */
static void race_free_rounds(void *(*make)(void), race_call_fn call, void (*free_fn)(void *))
{
    for (int round = 0; round < 20; round++) {
        void *handle = make();
        if (handle == NULL)
            return;
        atomic_int go = 0;
        free_race_t r[FREE_RACERS];
        pthread_t th[FREE_RACERS];
        for (int i = 0; i < FREE_RACERS; i++) {
            r[i] = (free_race_t){.handle = handle, .call = call, .kind = i % 4, .go = &go};
            if (!CHECK_EQ(pthread_create(&th[i], NULL, race_calls, &r[i]), 0))
                exit(check_exit_status());
        }
        atomic_store(&go, 1);
        sleep_ms(round % 3);
        free_fn(handle);
        for (int i = 0; i < FREE_RACERS; i++) {
            CHECK_EQ(pthread_join(th[i], NULL), 0);
            if (!CHECK_EQ(r[i].bad, 0))
                fprintf(stderr, "  (round %d, racer kind %d)\n", round, r[i].kind);
            CHECK_EQ(r[i].refused, 3);
        }
    }
}

static pool_status_t pool_race_call(void *handle, int kind, int *bad)
{
    pool_t *pool = handle;
    pool_status_t st;
    pool_conn_t *c = NULL;
    switch (kind) {
    case 0:
        st = pool_try_get(pool, &c);
        break;
    case 1:
        st = pool_get_ex(pool, 0, NULL, &c, NULL);
        break;
    case 2: {
        pool_stats_t s = {.struct_size = sizeof s};
        st = pool_stats(pool, &s);
        break;
    }
    default:
        st = pool_len(pool) >= 0 ? POOL_OK : POOL_ERR_INVALID_ARG;
        break;
    }
    if (c != NULL && pool_put(pool, c) != POOL_OK)
        (*bad)++;
    return st;
}

static void *pool_race_make(void)
{
    pool_t *pool = new_pool(2);
    pool_conn_t *c = get_conn(pool); /* one conn dialed: try_get has something to find */
    if (c != NULL)
        CHECK_STATUS(pool_put(pool, c), POOL_OK, NULL);
    return pool;
}

static void pool_race_free(void *handle) { pool_free(handle); }

static void test_calls_racing_free(void)
{
    section("calls racing with pool_free get in or are refused");
    race_free_rounds(pool_race_make, pool_race_call, pool_race_free);
}

/* ---- cluster handles: dead, made up, racing pool_cluster_free ---------------------- */

static pool_cluster_t *new_cluster(void)
{
    const char *seeds[] = {redis.addr};
    pool_cluster_options_t co;
    pool_cluster_options_init(&co);
    co.seeds = seeds;
    co.seeds_len = 1;
    pool_cluster_t *cluster = NULL;
    CHECK_STATUS(pool_cluster_new(&co, &cluster, NULL), POOL_OK, NULL);
    return cluster;
}

/* Every call on a dead (or made-up) cluster handle is refused, changes nothing and writes
 * no output but the cleared out-pointers. */
static void check_dead_cluster(pool_cluster_t *cluster, const char *what)
{
    pool_conn_t *c = (pool_conn_t *)(uintptr_t)1;
    pool_error_t err;
    err_reset(&err);
    if (!CHECK_STATUS(pool_cluster_get_node(cluster, redis.addr, 0, NULL, &c, &err),
                      POOL_ERR_INVALID_ARG, &err))
        fprintf(stderr, "  (%s)\n", what);
    CHECK_CONTAINS(err.message, "not a live cluster handle");
    CHECK(c == NULL);
    err_reset(&err);
    CHECK_STATUS(pool_cluster_get(cluster, "k", 1, 0, NULL, &c, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "not a live cluster handle");
    CHECK_STATUS(pool_cluster_get_slot(cluster, 0, 0, NULL, &c, NULL), POOL_ERR_INVALID_ARG, NULL);
    CHECK(c == NULL);
    pool_t *node = (pool_t *)(uintptr_t)1;
    err_reset(&err);
    CHECK_STATUS(pool_cluster_node_pool(cluster, redis.addr, &node, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK_CONTAINS(err.message, "not a live cluster handle");
    CHECK(node == NULL);
    err_reset(&err);
    CHECK_STATUS(pool_cluster_refresh(cluster, 100, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "not a live cluster handle");
    pool_stats_t s = {.struct_size = sizeof s};
    CHECK_STATUS(pool_cluster_stats(cluster, NULL, &s), POOL_ERR_INVALID_ARG, NULL);
    pool_cluster_info_t info = {.struct_size = sizeof info};
    CHECK_STATUS(pool_cluster_info(cluster, &info), POOL_ERR_INVALID_ARG, NULL);
    size_t count = 12345;
    CHECK_STATUS(pool_cluster_nodes(cluster, NULL, 0, &count), POOL_ERR_INVALID_ARG, NULL);
    CHECK_EQ(count, 12345);
    CHECK_STATUS(pool_cluster_close(cluster), POOL_ERR_INVALID_ARG, NULL);
    pool_cluster_free(cluster); /* once more: ignored */
}

/* A pool_cluster_t is checked as a pool_t is: after pool_cluster_free it is dead, a second
 * pool_cluster_free or any other call with it is refused (with the memory alive or gone,
 * and with its slot reused), and it still takes back the conns of its nodes. */
static void test_dead_cluster_handles(void)
{
    section("cluster handles: a second pool_cluster_free, calls after it and made-up handles are refused");
    pool_cluster_t *cluster = new_cluster();
    if (cluster == NULL)
        return;
    pool_conn_t *c = NULL, *c2 = NULL;
    CHECK_STATUS(pool_cluster_get_node(cluster, redis.addr, -1, NULL, &c, NULL), POOL_OK, NULL);
    CHECK_STATUS(pool_cluster_get_node(cluster, redis.addr, -1, NULL, &c2, NULL), POOL_OK, NULL);
    pool_t *node = NULL;
    CHECK_STATUS(pool_cluster_node_pool(cluster, redis.addr, &node, NULL), POOL_OK, NULL);
    if (c == NULL || c2 == NULL || node == NULL)
        return;
    pool_cluster_free(cluster);
    pool_cluster_free(cluster);
    check_dead_cluster(cluster, "conns still out");
    CHECK(ping_ok(c));
    /* The freed handle still takes back its conns (closing them), once each. */
    CHECK_STATUS(pool_cluster_put(cluster, c), POOL_OK, NULL);
    CHECK_STATUS(pool_cluster_put(cluster, c), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_cluster_remove(cluster, c2, "done"), POOL_OK, NULL);
    CHECK_STATUS(pool_cluster_remove(cluster, c2, "done"), POOL_ERR_INVALID_ARG, NULL);
    CHECK_EQ(pool_len(node), 0);
    pool_free(node);
    /* Now nothing keeps the cluster: its memory is gone, the handle is still refused. */
    check_dead_cluster(cluster, "memory gone");

    /* A new cluster may reuse the slot: the old handle does not reach it, nor its conns. */
    pool_cluster_t *again = new_cluster();
    if (again == NULL)
        return;
    CHECK(again != cluster);
    check_dead_cluster(cluster, "slot reused");
    c = NULL;
    CHECK_STATUS(pool_cluster_get_node(again, redis.addr, -1, NULL, &c, NULL), POOL_OK, NULL);
    if (c != NULL) {
        CHECK_STATUS(pool_cluster_put(cluster, c), POOL_ERR_INVALID_ARG, NULL);
        CHECK_STATUS(pool_cluster_put(again, c), POOL_OK, NULL);
    }
    pool_stats_t s = {.struct_size = sizeof s};
    CHECK_STATUS(pool_cluster_stats(again, redis.addr, &s), POOL_OK, NULL);
    CHECK_EQ(s.idle_conns, 1);

    /* Made-up values, and handles of the other kind, both ways. */
    static char not_a_cluster[64];
    check_dead_cluster((pool_cluster_t *)(void *)not_a_cluster, "an address");
    check_dead_cluster((pool_cluster_t *)(uintptr_t)0xE000000000123456ull, "made-up bits");
    pool_t *pool = new_pool(1);
    check_dead_cluster((pool_cluster_t *)(void *)pool, "a pool_t");
    CHECK_EQ(pool_len(pool), 0); /* not freed by pool_cluster_free above */
    pool_free(pool);
    CHECK_EQ(pool_len((pool_t *)(void *)again), -1);
    pool_free((pool_t *)(void *)again); /* ignored: not a pool */
    CHECK_STATUS(pool_cluster_stats(again, redis.addr, &s), POOL_OK, NULL);
    pool_cluster_free(again);
}

static pool_status_t cluster_race_call(void *handle, int kind, int *bad)
{
    pool_cluster_t *cluster = handle;
    pool_status_t st;
    pool_conn_t *c = NULL;
    switch (kind) {
    case 0:
        st = pool_cluster_get_node(cluster, redis.addr, 0, NULL, &c, NULL);
        break;
    case 1: {
        pool_stats_t s = {.struct_size = sizeof s};
        st = pool_cluster_stats(cluster, NULL, &s);
        break;
    }
    case 2: {
        pool_cluster_info_t info = {.struct_size = sizeof info};
        st = pool_cluster_info(cluster, &info);
        break;
    }
    default: {
        size_t n = 0;
        st = pool_cluster_nodes(cluster, NULL, 0, &n);
        break;
    }
    }
    if (c != NULL && pool_cluster_put(cluster, c) != POOL_OK)
        (*bad)++;
    return st;
}

static void *cluster_race_make(void)
{
    pool_cluster_t *cluster = new_cluster();
    pool_conn_t *c = NULL; /* the node's pool exists, with an idle conn */
    if (cluster != NULL &&
        CHECK_STATUS(pool_cluster_get_node(cluster, redis.addr, -1, NULL, &c, NULL), POOL_OK,
                     NULL))
        CHECK_STATUS(pool_cluster_put(cluster, c), POOL_OK, NULL);
    return cluster;
}

static void cluster_race_free(void *handle) { pool_cluster_free(handle); }

/* As test_calls_racing_free, for a cluster handle. */
static void test_cluster_calls_racing_free(void)
{
    section("cluster calls racing with pool_cluster_free get in or are refused");
    race_free_rounds(cluster_race_make, cluster_race_call, cluster_race_free);
}

/* ---- userdata ------------------------------------------------------------- */

static void test_userdata(void)
{
    section("conn userdata");
    pool_t *pool = new_pool(3);
    userdata_t u1 = {0}, u2 = {0}, u3 = {0}, u4 = {0};

    pool_conn_t *c = get_conn(pool);
    if (c == NULL)
        return;
    const uint64_t id = pool_conn_id(c);
    CHECK(pool_conn_userdata(c) == NULL);
    pool_conn_set_userdata(c, &u1, count_free);
    CHECK(pool_conn_userdata(c) == &u1);
    CHECK_STATUS(pool_put(pool, c), POOL_OK, NULL);
    CHECK_EQ(u1.freed, 0);

    /* Survives put/get: the same conn comes back with the same pointer. */
    c = get_conn(pool);
    if (c == NULL)
        return;
    CHECK_EQ(pool_conn_id(c), id);
    CHECK(pool_conn_userdata(c) == &u1);
    CHECK_EQ(u1.freed, 0);

    /* Setting the same pointer again frees nothing; a new one frees the old once. */
    pool_conn_set_userdata(c, &u1, count_free);
    CHECK_EQ(u1.freed, 0);
    CHECK(pool_conn_userdata(c) == &u1);
    pool_conn_set_userdata(c, &u2, count_free);
    CHECK_EQ(u1.freed, 1);
    CHECK(pool_conn_userdata(c) == &u2);
    CHECK_STATUS(pool_put(pool, c), POOL_OK, NULL);

    c = get_conn(pool);
    if (c == NULL)
        return;
    CHECK_EQ(pool_conn_id(c), id);
    CHECK(pool_conn_userdata(c) == &u2);
    CHECK_EQ(u2.freed, 0);

    /* Removed: free_fn runs exactly once, right away. */
    CHECK_STATUS(pool_remove(pool, c, "done"), POOL_OK, NULL);
    CHECK_EQ(u2.freed, 1);
    CHECK_EQ(u1.freed, 1);
    check_dead_handle(pool, c, "removed conn with userdata");
    CHECK_EQ(u2.freed, 1);

    /* A NULL free_fn is allowed; clearing with (NULL, NULL) runs the previous free_fn. */
    c = get_conn(pool);
    if (c == NULL)
        return;
    CHECK_NE(pool_conn_id(c), id); /* a new conn: ids are never reused */
    CHECK(pool_conn_userdata(c) == NULL);
    pool_conn_set_userdata(c, &u3, NULL);
    CHECK(pool_conn_userdata(c) == &u3);
    pool_conn_set_userdata(c, &u4, count_free);
    CHECK(pool_conn_userdata(c) == &u4);
    CHECK_EQ(u3.freed, 0);
    pool_conn_set_userdata(c, NULL, NULL);
    CHECK(pool_conn_userdata(c) == NULL);
    CHECK_EQ(u4.freed, 1);
    CHECK_STATUS(pool_remove(pool, c, NULL), POOL_OK, NULL);
    CHECK_EQ(u3.freed, 0);
    CHECK_EQ(u4.freed, 1);

    /* pool_close_conn of a pooled conn frees it too. */
    userdata_t u5 = {0};
    c = get_conn(pool);
    if (c == NULL)
        return;
    pool_conn_set_userdata(c, &u5, count_free);
    CHECK_STATUS(pool_close_conn(pool, c), POOL_OK, NULL);
    CHECK_EQ(u5.freed, 1);

    pool_free(pool);
    CHECK_EQ(u1.freed, 1);
    CHECK_EQ(u2.freed, 1);
    CHECK_EQ(u3.freed, 0);
    CHECK_EQ(u4.freed, 1);
    CHECK_EQ(u5.freed, 1);
}

/* ---- stats struct_size -------------------------------------------------------- */

static int all_bytes(const unsigned char *p, size_t from, size_t to, unsigned char v)
{
    for (size_t i = from; i < to; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void test_stats_sizes(void)
{
    section("pool_stats struct_size");
    pool_t *pool = new_pool(3);
    pool_conn_t *c = get_conn(pool); /* one miss, one conn, then idle */
    if (c == NULL)
        return;
    CHECK_STATUS(pool_put(pool, c), POOL_OK, NULL);

    union {
        pool_stats_t s;
        unsigned char bytes[sizeof(pool_stats_t) + 64];
    } buf;

    /* sizeof(pool_stats_t): everything written. */
    memset(&buf, 0xAB, sizeof buf);
    buf.s.struct_size = sizeof(pool_stats_t);
    CHECK_STATUS(pool_stats(pool, &buf.s), POOL_OK, NULL);
    CHECK_EQ(buf.s.struct_size, sizeof(pool_stats_t));
    CHECK_EQ(buf.s.misses, 1);
    CHECK_EQ(buf.s.hits, 0);
    CHECK_EQ(buf.s.total_conns, 1);
    CHECK_EQ(buf.s.idle_conns, 1);
    CHECK_EQ(buf.s.pending_requests, 0);
    CHECK_EQ(buf.s.dials, 1);
    CHECK_EQ(buf.s.waiting, 0);
    CHECK_EQ(buf.s.dials_in_progress, 0);
    CHECK(all_bytes(buf.bytes, sizeof(pool_stats_t), sizeof buf, 0xAB));

    /* 0 means the same. */
    memset(&buf, 0xAB, sizeof buf);
    buf.s.struct_size = 0;
    CHECK_STATUS(pool_stats(pool, &buf.s), POOL_OK, NULL);
    CHECK_EQ(buf.s.struct_size, sizeof(pool_stats_t));
    CHECK_EQ(buf.s.misses, 1);
    CHECK_EQ(buf.s.total_conns, 1);
    CHECK_EQ(buf.s.idle_conns, 1);
    CHECK_EQ(buf.s.dials_in_progress, 0);
    CHECK(all_bytes(buf.bytes, sizeof(pool_stats_t), sizeof buf, 0xAB));

    /* The first version's struct (up to pending_requests): only that much is written. */
    const size_t v1 = offsetof(pool_stats_t, pending_requests) + sizeof(uint32_t);
    memset(&buf, 0xAB, sizeof buf);
    buf.s.struct_size = v1;
    CHECK_STATUS(pool_stats(pool, &buf.s), POOL_OK, NULL);
    CHECK_EQ(buf.s.struct_size, v1);
    CHECK_EQ(buf.s.misses, 1);
    CHECK_EQ(buf.s.total_conns, 1);
    CHECK_EQ(buf.s.idle_conns, 1);
    CHECK_EQ(buf.s.pending_requests, 0);
    CHECK(all_bytes(buf.bytes, v1, sizeof buf, 0xAB));

    /* Too small to be any version: rejected. */
    static const size_t too_small[] = {1, 8, offsetof(pool_stats_t, total_conns)};
    for (size_t i = 0; i < sizeof too_small / sizeof too_small[0]; i++) {
        memset(&buf, 0xAB, sizeof buf);
        buf.s.struct_size = too_small[i];
        if (!CHECK_STATUS(pool_stats(pool, &buf.s), POOL_ERR_INVALID_ARG, NULL))
            fprintf(stderr, "  (struct_size %zu)\n", too_small[i]);
        /* Nothing beyond what the caller said it has (nor beyond struct_size itself). */
        size_t from = too_small[i] > sizeof(size_t) ? too_small[i] : sizeof(size_t);
        CHECK(all_bytes(buf.bytes, from, sizeof buf, 0xAB));
    }
    pool_free(pool);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = redis_server_from_args(&redis, argc, argv);
    if (rc != 0)
        return rc;

    test_status_and_version();
    test_invalid_options();
    test_null_args();
    test_conn_misuse();
    test_racing_returns();
    test_close();
    test_put_after_free();
    test_parked_count_of_freed_pool();
    test_free_in_flight();
    test_dead_pool_handles();
    test_calls_racing_free();
    test_dead_cluster_handles();
    test_cluster_calls_racing_free();
    test_userdata();
    test_stats_sizes();
    return check_exit_status();
}
