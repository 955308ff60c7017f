/*
 * abi_hostile.c - hostile input through every exported function, table-driven,
 * against a real redis-server.
 *
 *   ./abi_hostile HOST:PORT
 *
 * Every function of include/redispool.h gets rows in the tables below: NULL for
 * each pointer argument (one at a time), zero, negative and huge sizes and
 * timeouts, option structs with out-of-range values, made-up conn handles, double
 * put / remove, conns of another pool, use after pool_close and after pool_free,
 * malformed and oversized URLs. A row names the function, the input, a fixture
 * (the pools and conns it needs), the documented result (a status, or the
 * neutral value of a function without one) and, for functions with a
 * pool_error_t *err_out, text the message must contain.
 *
 * For every row the runner checks that "nothing is lost":
 *  - the call returns the documented value, twice (with err_out and with NULL);
 *  - err_out is filled (code, non-empty NUL-terminated UTF-8 message containing the
 *    expected text, never the password) on failure and untouched on success;
 *  - the pools involved are unchanged: len, idle_len and every stats field
 *    (rows that are not misuse, such as a timeout, may only move counters);
 *  - the long-lived conns of the shared pools are still checked out, with their
 *    userdata, and a normal get / command / put still works on every pool.
 *
 * Prints "hostile: N cases, M checks" and the list of functions covered (the
 * Rust side compares it with the header); exits 0 only if every check passed.
 * Run by tests/c_abi.rs (plain, under valgrind, and with ASan + UBSan).
 */
#define _GNU_SOURCE

#include <limits.h>
#include <stddef.h>
#include <unistd.h>

#include "check.h"

static redis_server_t redis; /* argv[1] */

/* The password used wherever one must never show up in a message. */
#define SECRET "hunter2"

/* ---- the shared pools ----------------------------------------------------------
 *
 * g_pool and g_other live for the whole run, each with one conn checked out all
 * along (g_conn carries userdata). Misuse aimed at them must leave all of that
 * exactly as it was.
 */
static pool_t *g_pool;
static pool_conn_t *g_conn;
static uint64_t g_conn_id;
static userdata_t g_ud;
static pool_t *g_other;
/* A cluster handle seeded with the (not cluster-enabled) test server: it dials on use only. */
static pool_cluster_t *g_cluster;
static pool_conn_t *g_other_conn;
static uint64_t g_other_conn_id;

/* Long strings, made once in main. */
static char *g_long_reason; /* 1 MiB of 'r' */
static char *g_url_8k;      /* a valid URL of exactly POOL_MAX_URL_LEN bytes */
static char *g_url_8k1;     /* the same, one byte longer */
static char *g_url_1m;      /* 1 MiB */
static char *g_addr_1m;     /* "aaaa...:6379", 1 MiB */
static char *g_addr_300;    /* a host of 300 bytes (DNS allows 253), port 6379 */
static char g_url_ok[128];  /* redis://HOST:PORT/0?pool_size=2 */
static char *g_multibyte_reason; /* 300 times U+00E9: clipping must keep the message UTF-8 */

static pool_options_t base_options(int32_t pool_size)
{
    return redis_pool_options(&redis, pool_size, scaled(2000));
}

/* ---- fixtures ----------------------------------------------------------------- */

enum fixture {
    FX_NONE,         /* only the shared pools */
    FX_DEAD_PUT,     /* dead: a conn of g_pool, put back */
    FX_DEAD_REMOVED, /* dead: a conn of g_pool, removed */
    FX_DEAD_CLOSED,  /* dead: a pool_new_conn conn of g_pool, closed with pool_close_conn */
    FX_FULL,         /* pool: size 1, max_active_conns 1, pool_timeout 100 ms; conn: its conn */
    FX_LEAKY,        /* pool: leak_detection_threshold_ms 1; conn: held past it */
    FX_CLOSED,       /* pool: closed, conn checked out across the close */
    FX_FREED,        /* pool: freed, conn/conn2 (get) and conn3 (new_conn) still out */
    FX_STICKY,       /* pool: sticky over g_pool; conn: its conn, checked out */
    FX_STICKY_CLOSED, /* pool: sticky over g_pool that held a conn, closed */
    FX_SINGLE,       /* pool: single over a conn of g_pool; conn: checked out from it */
};

typedef struct fx {
    enum fixture kind;
    pool_t *pool;        /* the fixture's own pool, or NULL */
    pool_conn_t *conn;   /* checked out from `pool` (NULL once a row consumed it) */
    pool_conn_t *conn2;  /* FX_FREED */
    pool_conn_t *conn3;  /* FX_FREED: from pool_new_conn */
    pool_conn_t *dead;   /* FX_DEAD_*: a handle that is no longer checked out */
    int watch;           /* `pool` may be snapshotted (not freed) */
    int closes;          /* a row closed `pool` */
    userdata_t ud;       /* FX_FREED: on conn */
    userdata_t ud2;      /* FX_FREED: replaces ud when a row says so */
    int ud2_set;
    uintptr_t stack_word; /* its address: a real stack address that is not a handle */
} fx_t;

/* A conn of `pool` that must be had: the run cannot go on without it. */
static pool_conn_t *must_get(pool_t *pool)
{
    pool_conn_t *c = get_conn(pool);
    if (c == NULL) {
        fprintf(stderr, "cannot get a conn for a fixture: giving up\n");
        check_exit_status();
        exit(1);
    }
    return c;
}

static void fx_setup(enum fixture kind, fx_t *fx)
{
    memset(fx, 0, sizeof *fx);
    fx->kind = kind;
    fx->stack_word = 0x5EED;
    pool_options_t o;
    pool_conn_t *c;
    switch (kind) {
    case FX_NONE:
        break;
    case FX_DEAD_PUT:
        fx->dead = must_get(g_pool);
        CHECK_STATUS(pool_put(g_pool, fx->dead), POOL_OK, NULL);
        break;
    case FX_DEAD_REMOVED:
        fx->dead = must_get(g_pool);
        CHECK_STATUS(pool_remove(g_pool, fx->dead, "fixture"), POOL_OK, NULL);
        break;
    case FX_DEAD_CLOSED: {
        pool_error_t err;
        err_reset(&err);
        if (!CHECK_STATUS(pool_new_conn(g_pool, &fx->dead, &err), POOL_OK, &err))
            exit(check_exit_status());
        CHECK_STATUS(pool_close_conn(g_pool, fx->dead), POOL_OK, NULL);
        break;
    }
    case FX_FULL:
        o = redis_pool_options(&redis, 1, scaled(100));
        o.max_active_conns = 1;
        fx->pool = new_pool_or_exit(&o);
        fx->conn = must_get(fx->pool);
        fx->watch = 1;
        break;
    case FX_LEAKY:
        o = base_options(2);
        o.leak_detection_threshold_ms = 1;
        fx->pool = new_pool_or_exit(&o);
        fx->conn = must_get(fx->pool);
        sleep_ms(5);
        fx->watch = 1;
        break;
    case FX_CLOSED:
        o = base_options(3);
        fx->pool = new_pool_or_exit(&o);
        fx->conn = must_get(fx->pool);
        c = must_get(fx->pool);
        CHECK_STATUS(pool_put(fx->pool, c), POOL_OK, NULL); /* idle at the close */
        CHECK_STATUS(pool_close(fx->pool), POOL_OK, NULL);
        fx->watch = 1;
        fx->closes = 1;
        break;
    case FX_FREED:
        o = base_options(3);
        fx->pool = new_pool_or_exit(&o);
        fx->conn = must_get(fx->pool);
        fx->conn2 = must_get(fx->pool);
        {
            pool_error_t err;
            err_reset(&err);
            if (!CHECK_STATUS(pool_new_conn(fx->pool, &fx->conn3, &err), POOL_OK, &err))
                exit(check_exit_status());
        }
        pool_conn_set_userdata(fx->conn, &fx->ud, count_free);
        pool_free(fx->pool);
        break;
    case FX_STICKY:
        if (!CHECK_STATUS(pool_sticky_new(g_pool, &fx->pool), POOL_OK, NULL))
            exit(check_exit_status());
        fx->conn = must_get(fx->pool);
        fx->watch = 1;
        break;
    case FX_STICKY_CLOSED:
        if (!CHECK_STATUS(pool_sticky_new(g_pool, &fx->pool), POOL_OK, NULL))
            exit(check_exit_status());
        c = must_get(fx->pool);
        CHECK_STATUS(pool_put(fx->pool, c), POOL_OK, NULL);
        CHECK_STATUS(pool_close(fx->pool), POOL_OK, NULL);
        fx->watch = 1;
        fx->closes = 1;
        break;
    case FX_SINGLE:
        c = must_get(g_pool);
        if (!CHECK_STATUS(pool_single_new(g_pool, c, &fx->pool), POOL_OK, NULL))
            exit(check_exit_status());
        fx->conn = must_get(fx->pool);
        fx->watch = 1;
        break;
    }
}

/* ---- call helpers --------------------------------------------------------------
 *
 * Each makes the call a row describes and returns its result; what a call must
 * also leave behind (a reply's content, a conn consumed) it checks itself.
 */

#define CONN_AT(v) ((pool_conn_t *)(uintptr_t)(v))
/* A real address on the runner's stack: not a handle. */
#define STACK_CONN ((pool_conn_t *)(void *)&fx->stack_word)
/* g_conn's handle with one high bit flipped: close to a live handle, but not one. */
#if UINTPTR_MAX > 0xFFFFFFFFu
#define FLIPPED_CONN CONN_AT((uintptr_t)g_conn ^ ((uintptr_t)1 << 40))
#else
#define FLIPPED_CONN CONN_AT((uintptr_t)g_conn ^ ((uintptr_t)1 << 20))
#endif

/* pool_conn_command with a reply that is freed (or kept in *keep); a failure leaves no reply. */
static int64_t command(pool_conn_t *c, int argc, const char *const *argv, const size_t *argvlen,
                       pool_error_t *err, pool_reply_t **keep)
{
    pool_reply_t *reply = NULL;
    pool_status_t rc = pool_conn_command(c, argc, argv, argvlen, &reply, err);
    if (rc != POOL_OK) {
        CHECK(reply == NULL);
        return rc;
    }
    if (!CHECK(reply != NULL))
        return rc;
    if (keep != NULL)
        *keep = reply;
    else
        pool_reply_free(reply);
    return rc;
}

/* PING through pool_conn_command: POOL_OK must come with +PONG. */
static int64_t ping_cmd(pool_conn_t *c, pool_error_t *err)
{
    static const char *const argv[] = {"PING"};
    pool_reply_t *reply = NULL;
    pool_status_t rc = (pool_status_t)command(c, 1, argv, NULL, err, &reply);
    if (rc == POOL_OK && reply != NULL) {
        CHECK_EQ(reply->type, POOL_REPLY_STATUS);
        CHECK(reply->str != NULL && strcmp(reply->str, "PONG") == 0);
        pool_reply_free(reply);
    }
    return rc;
}

/* PING through pool_conn_command_ex with `timeout_ms`: POOL_OK must come with +PONG. */
/* pool_conn_read of up to 8 bytes on `c`: the status; *n_out must stay 0 on failure. */
static int64_t raw_read(pool_conn_t *c, int64_t timeout_ms, pool_error_t *err)
{
    char buf[8];
    size_t n = 99;
    pool_status_t rc = pool_conn_read(c, buf, sizeof buf, timeout_ms, &n, err);
    if (rc != POOL_OK)
        CHECK_EQ(n, 0);
    return rc;
}

/* pool_conn_read into `buf` of `len` on the test's conn. */
static int64_t raw_read_buf(void *buf, size_t len, int64_t timeout_ms, pool_error_t *err)
{
    size_t n = 99;
    pool_status_t rc = pool_conn_read(g_conn, buf, len, timeout_ms, &n, err);
    CHECK_EQ(n, 0);
    return rc;
}

/* pool_conn_start of PING (argc 1) or of `argc` arguments: the status; *want_out
 * must be 0 on failure. */
static int64_t nb_start(pool_conn_t *c, int argc, pool_error_t *err)
{
    static const char *const argv[] = {"PING"};
    int want = 7;
    pool_status_t rc = pool_conn_start(c, argc, argc == 1 ? argv : NULL, NULL, -1, &want, err);
    if (rc != POOL_OK)
        CHECK_EQ(want, 0);
    return rc;
}

/* pool_conn_start_pipeline of `ncmds` PINGs (at most 2): the status. */
static int64_t nb_start_pipe(pool_conn_t *c, size_t ncmds, pool_error_t *err)
{
    static const char *const argv[] = {"PING"};
    const int argcs[] = {1, 1};
    const char *const *argvs[] = {argv, argv};
    int want = 7;
    pool_status_t rc = pool_conn_start_pipeline(c, ncmds, argcs, argvs, NULL, -1, &want, err);
    if (rc != POOL_OK)
        CHECK_EQ(want, 0);
    return rc;
}

/* pool_conn_finish on `c`: the status; no reply and no interest on failure. */
static int64_t nb_finish(pool_conn_t *c, pool_error_t *err)
{
    pool_reply_t *reply = (pool_reply_t *)(uintptr_t)1;
    int want = 7;
    pool_status_t rc = pool_conn_finish(c, &reply, &want, err);
    if (rc != POOL_OK) {
        CHECK(reply == NULL);
        CHECK_EQ(want, 0);
    }
    return rc;
}

/* pool_conn_finish_pipeline on `c` with room for `cap`: the status; no replies. */
static int64_t nb_finish_pipe(pool_conn_t *c, size_t cap, pool_error_t *err)
{
    pool_reply_t *replies[2] = {NULL, NULL};
    size_t n = 7;
    int want = 7;
    pool_status_t rc = pool_conn_finish_pipeline(c, replies, cap, &n, &want, err);
    if (rc != POOL_OK) {
        CHECK_EQ(n, 0);
        CHECK_EQ(want, 0);
    }
    return rc;
}

/* pool_conn_write of one byte on `c`: the status. */
static int64_t raw_write(pool_conn_t *c, int64_t timeout_ms, pool_error_t *err)
{
    size_t n = 99;
    pool_status_t rc = pool_conn_write(c, "x", 1, timeout_ms, &n, err);
    if (rc != POOL_OK)
        CHECK_EQ(n, 0);
    return rc;
}

static int64_t ping_ex(pool_conn_t *c, int64_t timeout_ms, pool_error_t *err)
{
    static const char *const argv[] = {"PING"};
    pool_reply_t *reply = NULL;
    pool_status_t rc = pool_conn_command_ex(c, 1, argv, NULL, timeout_ms, &reply, err);
    if (rc != POOL_OK) {
        CHECK(reply == NULL);
        return rc;
    }
    if (CHECK(reply != NULL)) {
        CHECK_EQ(reply->type, POOL_REPLY_STATUS);
        CHECK(reply->str != NULL && strcmp(reply->str, "PONG") == 0);
        pool_reply_free(reply);
    }
    return rc;
}

/* pool_conn_command_ex on g_conn with hostile arguments (reply_out NULL when !with_reply). */
static int64_t cmd_ex_args(int argc, const char *const *argv, int with_reply, pool_error_t *err)
{
    pool_reply_t *reply = NULL;
    pool_status_t rc = pool_conn_command_ex(g_conn, argc, argv, NULL, 1000,
                                            with_reply ? &reply : NULL, err);
    if (rc != POOL_OK)
        CHECK(reply == NULL);
    pool_reply_free(reply);
    return rc;
}

/* pool_conn_pipeline of PING, ECHO x on `c` with hostile arguments: `which` picks what is
   broken (0: nothing). The replies that came are checked and freed. */
static int64_t pipe_case(pool_conn_t *c, int which, size_t ncmds, pool_error_t *err)
{
    static const char *const ping[] = {"PING"};
    static const char *const echo[] = {"ECHO", "x"};
    static const char *const echo_null[] = {"ECHO", NULL};
    static const size_t ping_len[] = {4};
    int argcs[2] = {1, 2};
    const char *const *argvs[2] = {ping, echo};
    const size_t *lens[2] = {ping_len, NULL}; /* mixed: lengths, then NUL-terminated */
    pool_reply_t *replies[2] = {(pool_reply_t *)1, (pool_reply_t *)1};
    size_t n = 77;
    if (which == 3)
        argcs[1] = 0;
    if (which == 4)
        argcs[1] = INT_MIN;
    if (which == 5)
        argvs[1] = NULL;
    if (which == 6)
        argvs[1] = echo_null;
    pool_status_t rc = pool_conn_pipeline(c, ncmds, which == 1 ? NULL : argcs,
                                          which == 2 ? NULL : argvs, which == 9 ? NULL : lens,
                                          1000, which == 7 ? NULL : replies,
                                          which == 8 ? NULL : &n, err);
    if (which == 8)
        return rc;
    CHECK(n <= 2);
    if (rc != POOL_OK) {
        CHECK_EQ(n, 0);
        if (which != 7 && ncmds <= 2)
            for (size_t i = 0; i < ncmds; i++)
                CHECK(replies[i] == NULL);
        return rc;
    }
    CHECK_EQ(n, 2);
    if (CHECK(replies[0] != NULL && replies[1] != NULL)) {
        CHECK(replies[0]->type == POOL_REPLY_STATUS && strcmp(replies[0]->str, "PONG") == 0);
        CHECK(replies[1]->type == POOL_REPLY_STRING && strcmp(replies[1]->str, "x") == 0);
    }
    pool_reply_free(replies[0]);
    pool_reply_free(replies[1]);
    return rc;
}

/* A subscriber of g_other that lives for the whole run (made in main). */
static pool_subscriber_t *g_sub;

typedef pool_status_t (*sub_fn_t)(pool_subscriber_t *, size_t, const char *const *,
                                  const size_t *, pool_error_t *);

/* `fn` on g_sub with hostile names: nothing is sent, g_sub stays as it was. */
static int64_t sub_call(sub_fn_t fn, size_t count, const char *const *names, pool_error_t *err)
{
    return fn(g_sub, count, names, NULL, err);
}

/* A subscriber made on a pool of its own, subscribed, its confirmation received, freed. */
static int64_t sub_roundtrip(pool_error_t *err)
{
    pool_options_t o = base_options(1);
    pool_t *pool = NULL;
    pool_status_t rc = pool_new(&o, &pool, err);
    if (rc != POOL_OK)
        return rc;
    pool_subscriber_t *sub = NULL;
    rc = pool_subscriber_new(pool, &sub, err);
    if (rc != POOL_OK) {
        pool_free(pool);
        return rc;
    }
    const char *names[] = {"hostile-sub"};
    rc = pool_subscriber_subscribe(sub, 1, names, NULL, err);
    pool_message_t *m = NULL;
    if (rc == POOL_OK)
        rc = pool_subscriber_receive(sub, scaled(5000), &m, err);
    if (rc == POOL_OK && !CHECK(m->kind == POOL_MSG_SUBSCRIBE))
        rc = POOL_ERR_INTERNAL;
    pool_message_free(m);
    pool_subscriber_free(sub);
    CHECK_EQ(pool_len(pool), 0);
    pool_free(pool);
    return rc;
}

/* g_sub subscribes once more: its confirmation is received with `timeout_ms`. */
static int64_t sub_recv_pong(int64_t timeout_ms, pool_error_t *err)
{
    const char *names[] = {"hostile-pong"};
    pool_status_t rc = pool_subscriber_subscribe(g_sub, 1, names, NULL, err);
    if (rc != POOL_OK)
        return rc;
    pool_message_t *m = NULL;
    rc = pool_subscriber_receive(g_sub, timeout_ms, &m, err);
    if (rc == POOL_OK && !CHECK(m->kind == POOL_MSG_SUBSCRIBE))
        rc = POOL_ERR_INTERNAL;
    pool_message_free(m);
    return rc;
}

/* Nothing is there for g_sub: receive with `timeout_ms` times out with msg_out NULL. */
static int64_t sub_recv_none(int64_t timeout_ms, pool_error_t *err)
{
    pool_message_t *m = (pool_message_t *)1;
    pool_status_t rc = pool_subscriber_receive(g_sub, timeout_ms, &m, err);
    CHECK(m == NULL);
    return rc;
}

/* A normal get, PING and put on `pool` give `want_get` and then work: nothing was lost. */
static void check_get_put_works(pool_t *pool, pool_status_t want_get)
{
    pool_conn_t *c = NULL;
    pool_error_t err;
    err_reset(&err);
    pool_status_t rc = pool_get_ex(pool, scaled(2000), NULL, &c, &err);
    CHECK_STATUS(rc, want_get, &err);
    if (rc != POOL_OK)
        return;
    CHECK_EQ(ping_cmd(c, NULL), POOL_OK);
    CHECK_STATUS(pool_put(pool, c), POOL_OK, NULL);
}

/* A new pool works: two rounds of get, PING and put (the second reuses the idle conn). */
static void check_pool_works(pool_t *pool)
{
    check_get_put_works(pool, POOL_OK);
    check_get_put_works(pool, POOL_OK);
    CHECK_EQ(pool_len(pool), 1);
    CHECK_EQ(pool_idle_len(pool), 1);
}

/* pool_conn_set_userdata on a handle that is not checked out: ignored, nothing freed. */
static int64_t set_userdata_ignored(pool_conn_t *h)
{
    userdata_t ud = {0};
    pool_conn_set_userdata(h, &ud, count_free);
    int64_t wrong = ud.freed + (pool_conn_userdata(h) != NULL);
    pool_conn_set_userdata(h, NULL, NULL);
    return wrong + ud.freed;
}

/* pool_single_new refusing `h`: no pool made. */
static int64_t single_new(pool_t *parent, pool_conn_t *h)
{
    pool_t *single = NULL;
    pool_status_t rc = pool_single_new(parent, h, &single);
    if (rc == POOL_OK) {
        pool_free(single);
        return rc;
    }
    CHECK(single == NULL);
    return rc;
}

static int64_t sticky_new(pool_t *parent)
{
    pool_t *sticky = NULL;
    pool_status_t rc = pool_sticky_new(parent, &sticky);
    if (rc == POOL_OK)
        pool_free(sticky);
    else
        CHECK(sticky == NULL);
    return rc;
}


/* ---- cluster handles ---- */

static int refuse_dial(void *userdata, int64_t timeout_ms, int *fd_out)
{
    (void)userdata;
    (void)timeout_ms;
    (void)fd_out;
    return ECONNREFUSED;
}

static pool_cluster_options_t cluster_opts(void)
{
    static const char *seeds[] = {"127.0.0.1:1"};
    pool_cluster_options_t o;
    pool_cluster_options_init(&o);
    o.seeds = seeds;
    o.seeds_len = 1;
    return o;
}

/* pool_cluster_new with one field of valid options changed by `edit`. */
static pool_status_t cluster_new_with(pool_error_t *err, int edit)
{
    pool_cluster_options_t o = cluster_opts();
    static const char *null_seed[] = {NULL};
    static const char *space_seed[] = {" 127.0.0.1:7000"};
    static const char *plus_seed[] = {"127.0.0.1:+7000"};
    pool_options_t node;
    pool_options_init(&node);
    switch (edit) {
    case 0: o.struct_size = 0; break;
    case 1: o.seeds_len = 0; break;
    case 2: o.seeds = null_seed; break;
    case 3: o.seeds = NULL; o.seeds_len = 3; break;
    case 4: o.max_redirects = -1; break;
    case 5: o.max_redirects = INT32_MAX; break;
    case 6: o.refresh_min_interval_ms = INT64_MIN; break;
    case 7: node.dialer = refuse_dial; o.node = &node; break;
    case 8: node.db = 1; o.node = &node; break;
    case 9: node.pool_size = INT32_MIN; o.node = &node; break;
    case 10: o.seeds_len = SIZE_MAX; break;
    case 11: o.seeds = space_seed; break;
    case 12: o.seeds = plus_seed; break;
    default: break;
    }
    pool_cluster_t *c = NULL;
    pool_status_t rc = pool_cluster_new(&o, &c, err);
    pool_cluster_free(c);
    return rc;
}

static pool_status_t cluster_url(pool_error_t *err, const char *url)
{
    pool_cluster_t *c = NULL;
    pool_status_t rc = pool_cluster_new_url(url, &c, err);
    pool_cluster_free(c);
    return rc;
}

static pool_status_t cluster_info_sized(size_t size)
{
    pool_cluster_info_t info;
    memset(&info, 0xa5, sizeof info);
    info.struct_size = size;
    return pool_cluster_info(g_cluster, &info);
}

/* A conn of g_pool given to every cluster function that takes a conn: each refuses it,
 * and it stays checked out, working. */
static int64_t cluster_foreign_conn(void)
{
    char buf[POOL_CLUSTER_ADDR_MAX];
    return pool_cluster_put(g_cluster, g_conn) == POOL_ERR_INVALID_ARG &&
           pool_cluster_remove(g_cluster, g_conn, "x") == POOL_ERR_INVALID_ARG &&
           pool_cluster_conn_node(g_conn, buf, sizeof buf) == POOL_ERR_INVALID_ARG &&
           pool_conn_id(g_conn) == g_conn_id && ping_cmd(g_conn, NULL) == POOL_OK;
}

static pool_status_t cluster_get_down(pool_error_t *err)
{
    pool_conn_t *conn = (pool_conn_t *)1;
    pool_status_t rc = pool_cluster_get(g_cluster, "k", 1, 2000, NULL, &conn, err);
    return conn == NULL ? rc : POOL_ERR_INTERNAL;
}


/* ---- sentinel pools ---- */

/* pool_sentinel_new with one field of valid options changed by `edit`. Nothing is dialed
 * by pool_sentinel_new, so valid options succeed without a sentinel. */
static pool_status_t sentinel_new_with(pool_error_t *err, int edit)
{
    static const char *addrs[] = {"127.0.0.1:1"};
    static const char *null_addr[] = {NULL};
    static const char *space_addr[] = {"127.0.0.1: 26379"};
    static const char *plus_addr[] = {"127.0.0.1:+26379"};
    pool_sentinel_options_t so;
    pool_sentinel_options_init(&so);
    so.master_name = "mymaster";
    so.sentinel_addrs = addrs;
    so.sentinel_addrs_len = 1;
    pool_options_t node;
    pool_options_init(&node);
    const pool_options_t *np = NULL;
    switch (edit) {
    case 0: so.struct_size = 0; break;
    case 1: so.master_name = NULL; break;
    case 2: so.sentinel_addrs_len = 0; break;
    case 3: so.sentinel_addrs = NULL; break;
    case 4: so.sentinel_addrs = null_addr; break;
    case 5: so.sentinel_addrs_len = SIZE_MAX; break;
    case 6: so.poll_interval_ms = INT64_MIN; break;
    case 7: node.addr = "127.0.0.1:2"; np = &node; break;
    case 8: node.dialer = refuse_dial; np = &node; break;
    case 9: node.pool_size = INT32_MIN; np = &node; break;
    case 10: so.sentinel_password = SECRET "\xff"; break;
    case 11: so.sentinel_addrs = space_addr; break;
    case 12: so.sentinel_addrs = plus_addr; break;
    default: break;
    }
    pool_t *p = NULL;
    pool_status_t rc = pool_sentinel_new(&so, np, &p, err);
    pool_free(p);
    return rc;
}

/* ---- pure functions ---- */

static int64_t version_ok(void)
{
    const char *v = pool_version();
    return v != NULL && v[0] >= '0' && v[0] <= '9' && strchr(v, '.') != NULL &&
           pool_version() == v;
}

static int64_t is_unknown_status(pool_status_t s)
{
    const char *t = pool_status_str(s);
    return t != NULL && strcmp(t, "unknown status") == 0;
}

/* Every defined code has a non-empty text of its own. */
static int64_t defined_statuses_named(void)
{
    for (pool_status_t s = POOL_OK; s <= POOL_ERR_TLS; s++) {
        const char *t = pool_status_str(s);
        if (t == NULL || t[0] == '\0' || is_unknown_status(s))
            return 0;
        for (pool_status_t u = POOL_OK; u < s; u++)
            if (strcmp(pool_status_str(u), t) == 0)
                return 0;
    }
    return 1;
}

/* pool_options_init over garbage: every field is its default afterwards. */
static int64_t options_init_over_garbage(void)
{
    pool_options_t o, clean;
    memset(&o, 0xA5, sizeof o);
    memset(&clean, 0, sizeof clean);
    pool_options_init(&o);
    pool_options_init(&clean);
    return o.struct_size == sizeof o && o.addr == NULL && o.dialer == NULL &&
           o.username == NULL && o.password == NULL && o.client_name == NULL &&
           o.pool_size > 0 && o.pool_timeout_ms == 6000 && o.dial_timeout_ms == 5000 &&
           o.protocol == 2 && !o.pool_fifo && o.pool_size == clean.pool_size &&
           o.min_idle_conns == 0 && o.leak_detection_threshold_ms == 0;
}

/* The first published pool_options_t ends at write_timeout_ms: what a program built
 * against the oldest header has. */
/* The first pool_sentinel_options_t ended at poll_interval_ms (sentinel_tls came later). */
#define SENTINEL_OPTIONS_V1_SIZE \
    (offsetof(pool_sentinel_options_t, poll_interval_ms) + sizeof(int64_t))
#define OPTIONS_V1_SIZE (offsetof(pool_options_t, write_timeout_ms) + sizeof(int64_t))

/* An "older header" caller: a struct of `size` bytes followed by a guard region. The
 * *_init_size function writes its bytes (struct_size = min(size, sizeof)) and not one
 * byte past them; a size below the first version's writes nothing. Returns the status,
 * -1 if a guard byte changed. */
#define GUARDED_INIT(fn, type, size)                                                         \
    do {                                                                                     \
        union {                                                                              \
            type o;                                                                          \
            unsigned char bytes[sizeof(type) + 64];                                          \
        } u_;                                                                                \
        size_t size_ = (size);                                                               \
        memset(&u_, 0xAB, sizeof u_);                                                        \
        pool_status_t rc_ = fn(&u_.o, size_);                                                \
        size_t limit_ = size_ < sizeof(type) ? size_ : sizeof(type);                         \
        if (rc_ != POOL_OK)                                                                  \
            limit_ = 0;                                                                      \
        for (size_t i_ = limit_; i_ < sizeof u_.bytes; i_++)                                 \
            if (u_.bytes[i_] != 0xAB) {                                                      \
                CHECK(!#fn " wrote past the caller's struct_size");                          \
                fprintf(stderr, "  (size %zu: byte %zu written)\n", size_, i_);              \
                return -1;                                                                   \
            }                                                                                \
        if (rc_ == POOL_OK && !CHECK_EQ(u_.o.struct_size, limit_))                           \
            return -1;                                                                       \
        return rc_;                                                                          \
    } while (0)

static int64_t options_init_sized(size_t size)
{
    GUARDED_INIT(pool_options_init_size, pool_options_t, size);
}

static int64_t cluster_options_init_sized(size_t size)
{
    GUARDED_INIT(pool_cluster_options_init_size, pool_cluster_options_t, size);
}

static int64_t sentinel_options_init_sized(size_t size)
{
    GUARDED_INIT(pool_sentinel_options_init_size, pool_sentinel_options_t, size);
}

/* An older program's options on the heap, exactly the first version's bytes (ASan and
 * valgrind see any byte read or written past them): filled by pool_options_init_size,
 * defaults kept for the fields it lacks, accepted by pool_new. */
static int64_t options_v1_heap(pool_error_t *err)
{
    pool_options_t *o = malloc(OPTIONS_V1_SIZE);
    if (o == NULL)
        return -1;
    pool_status_t rc = pool_options_init_size(o, OPTIONS_V1_SIZE);
    if (rc == POOL_OK && o->struct_size == OPTIONS_V1_SIZE) {
        o->addr = "127.0.0.1:1";
        pool_t *p = NULL;
        rc = pool_new(o, &p, err);
        pool_free(p);
    } else if (rc == POOL_OK) {
        rc = -1;
    }
    free(o);
    return rc;
}

/* The function behind the pool_options_init macro is still exported, and fills a whole
 * struct of this header. */
static int64_t options_init_symbol(void)
{
    pool_options_t o;
    memset(&o, 0xA5, sizeof o);
    (pool_options_init)(&o);
    return o.struct_size == sizeof o && o.addr == NULL && o.pool_timeout_ms == 6000;
}

/* 1000 tokens made, fired twice and freed: none NULL. Returns how many were NULL. */
static int64_t cancel_churn(void)
{
    int64_t nulls = 0;
    for (int i = 0; i < 1000; i++) {
        pool_cancel_t *t = pool_cancel_new();
        if (t == NULL) {
            nulls++;
            continue;
        }
        if (i % 2 == 0) {
            pool_cancel_fire(t);
            pool_cancel_fire(t);
        }
        pool_cancel_free(t);
    }
    return nulls;
}

/* ---- pool_conn_command ---- */

static int64_t cmd_argc(int argc, pool_error_t *err)
{
    static const char *const argv[] = {"PING"};
    return command(g_conn, argc, argv, NULL, err, NULL);
}

static int64_t cmd_argv(int argc, const char *const *argv, pool_error_t *err)
{
    return command(g_conn, argc, argv, NULL, err, NULL);
}

static int64_t cmd_no_reply_out(pool_error_t *err)
{
    static const char *const argv[] = {"PING"};
    return pool_conn_command(g_conn, 1, argv, NULL, NULL, err);
}

/* argvlen of 0 for every argument: Redis answers an error reply; the conn stays good. */
static int64_t cmd_zero_lengths(pool_error_t *err)
{
    static const char *const argv[] = {"PING", "x"};
    static const size_t lens[] = {0, 0};
    pool_reply_t *reply = NULL;
    pool_status_t rc = (pool_status_t)command(g_conn, 2, argv, lens, err, &reply);
    if (rc == POOL_OK && reply != NULL) {
        CHECK_EQ(reply->type, POOL_REPLY_ERROR);
        pool_reply_free(reply);
    }
    CHECK_EQ(ping_cmd(g_conn, NULL), POOL_OK);
    return rc;
}

/* argvlen shorter than the strings: only that many bytes are sent. */
static int64_t cmd_short_lengths(pool_error_t *err)
{
    static const char *const argv[] = {"ECHO", "hello"};
    static const size_t lens[] = {4, 2};
    pool_reply_t *reply = NULL;
    pool_status_t rc = (pool_status_t)command(g_conn, 2, argv, lens, err, &reply);
    if (rc == POOL_OK && reply != NULL) {
        CHECK_EQ(reply->type, POOL_REPLY_STRING);
        CHECK_EQ(reply->len, 2);
        CHECK(reply->str != NULL && memcmp(reply->str, "he", 3) == 0);
        pool_reply_free(reply);
    }
    return rc;
}

/* Binary arguments: embedded NULs and 0xFF bytes go through with argvlen. */
static int64_t cmd_binary(pool_error_t *err)
{
    static const char bin[] = {'a', '\0', (char)0xFF, '\r', '\n', 'b'};
    const char *const argv[] = {"ECHO", bin};
    const size_t lens[] = {4, sizeof bin};
    pool_reply_t *reply = NULL;
    pool_status_t rc = (pool_status_t)command(g_conn, 2, argv, lens, err, &reply);
    if (rc == POOL_OK && reply != NULL) {
        CHECK_EQ(reply->type, POOL_REPLY_STRING);
        CHECK_EQ(reply->len, sizeof bin);
        CHECK(reply->str != NULL && memcmp(reply->str, bin, sizeof bin) == 0);
        pool_reply_free(reply);
    }
    return rc;
}

/* A 1 MiB argument comes back whole. */
static int64_t cmd_huge_arg(pool_error_t *err)
{
    const char *const argv[] = {"ECHO", g_long_reason};
    pool_reply_t *reply = NULL;
    pool_status_t rc = (pool_status_t)command(g_conn, 2, argv, NULL, err, &reply);
    if (rc == POOL_OK && reply != NULL) {
        CHECK_EQ(reply->type, POOL_REPLY_STRING);
        CHECK_EQ(reply->len, strlen(g_long_reason));
        CHECK(reply->str != NULL && memcmp(reply->str, g_long_reason, reply->len) == 0);
        pool_reply_free(reply);
    }
    return rc;
}

/* 100000 arguments (a real, huge argc): EXISTS of 99999 missing keys is 0. */
static int64_t cmd_many_args(pool_error_t *err)
{
    enum { N = 100000 };
    const char **argv = malloc(N * sizeof *argv);
    if (!CHECK(argv != NULL))
        return -1;
    argv[0] = "EXISTS";
    for (int i = 1; i < N; i++)
        argv[i] = "hostile:no-such-key";
    pool_reply_t *reply = NULL;
    pool_status_t rc = (pool_status_t)command(g_conn, N, argv, NULL, err, &reply);
    if (rc == POOL_OK && reply != NULL) {
        CHECK_EQ(reply->type, POOL_REPLY_INTEGER);
        CHECK_EQ(reply->integer, 0);
        pool_reply_free(reply);
    }
    free(argv);
    return rc;
}

/* An unknown command is an error reply, POOL_OK; the conn stays good. */
static int64_t cmd_unknown(pool_error_t *err)
{
    static const char *const argv[] = {"NO-SUCH-COMMAND", "x"};
    pool_reply_t *reply = NULL;
    pool_status_t rc = (pool_status_t)command(g_conn, 2, argv, NULL, err, &reply);
    if (rc == POOL_OK && reply != NULL) {
        CHECK_EQ(reply->type, POOL_REPLY_ERROR);
        CHECK_CONTAINS(reply->str, "unknown command");
        pool_reply_free(reply);
    }
    CHECK_EQ(ping_cmd(g_conn, NULL), POOL_OK);
    return rc;
}

/* ---- pool_new ---- */

/* pool_new of `o`; a pool it makes must work, and is freed. */
static int64_t try_new(const pool_options_t *o, pool_error_t *err)
{
    pool_t *pool = NULL;
    pool_status_t rc = pool_new(o, &pool, err);
    if (rc != POOL_OK) {
        CHECK(pool == NULL);
        return rc;
    }
    if (CHECK(pool != NULL)) {
        check_pool_works(pool);
        pool_free(pool);
    }
    return rc;
}

static int64_t opt_i32(pool_error_t *err, size_t offset, int32_t v)
{
    pool_options_t o = base_options(2);
    memcpy((char *)&o + offset, &v, sizeof v);
    return try_new(&o, err);
}

static int64_t opt_i64(pool_error_t *err, size_t offset, int64_t v)
{
    pool_options_t o = base_options(2);
    memcpy((char *)&o + offset, &v, sizeof v);
    return try_new(&o, err);
}

static int64_t opt_str(pool_error_t *err, size_t offset, const char *v)
{
    pool_options_t o = base_options(2);
    memcpy((char *)&o + offset, &v, sizeof v);
    return try_new(&o, err);
}

#define OPT32(field, v) opt_i32(err, offsetof(pool_options_t, field), (v))
#define OPT64(field, v) opt_i64(err, offsetof(pool_options_t, field), (v))
#define OPTSTR(field, v) opt_str(err, offsetof(pool_options_t, field), (v))

static int64_t opt_struct_size(pool_error_t *err, size_t size)
{
    pool_options_t o = base_options(2);
    o.struct_size = size;
    return try_new(&o, err);
}

/* A later version's larger struct: the tail this library does not know is ignored. */
static int64_t opt_bigger_struct(pool_error_t *err)
{
    union {
        pool_options_t o;
        unsigned char bytes[sizeof(pool_options_t) + 64];
    } u;
    memset(&u, 0, sizeof u);
    u.o = base_options(2);
    u.o.struct_size = sizeof u.bytes;
    return try_new(&u.o, err);
}

static int64_t opt_min_idle_over_size(pool_error_t *err)
{
    pool_options_t o = base_options(2);
    o.min_idle_conns = 3;
    return try_new(&o, err);
}

/* A C bool byte that is neither 0 nor 1 (what an uninitialised struct holds). */
static int64_t opt_fifo_byte(pool_error_t *err, unsigned char byte)
{
    pool_options_t o = base_options(2);
    memcpy((char *)&o + offsetof(pool_options_t, pool_fifo), &byte, 1);
    return try_new(&o, err);
}

static int64_t opt_lifetime_and_jitter_max(pool_error_t *err)
{
    pool_options_t o = base_options(2);
    o.conn_max_lifetime_ms = INT64_MAX;
    o.conn_max_lifetime_jitter_ms = INT64_MAX;
    return try_new(&o, err);
}

/* Every duration INT64_MAX and every count INT32_MAX at once. */
static int64_t opt_everything_max(pool_error_t *err)
{
    pool_options_t o = base_options(INT32_MAX);
    o.max_idle_conns = INT32_MAX;
    o.max_active_conns = INT32_MAX;
    o.max_concurrent_dials = INT32_MAX;
    o.dialer_retries = INT32_MAX;
    o.dial_timeout_ms = INT64_MAX;
    o.pool_timeout_ms = INT64_MAX;
    o.conn_max_idle_time_ms = INT64_MAX;
    o.conn_max_lifetime_ms = INT64_MAX;
    o.conn_max_lifetime_jitter_ms = INT64_MAX;
    o.dialer_retry_backoff_ms = INT64_MAX;
    o.read_timeout_ms = INT64_MAX;
    o.write_timeout_ms = INT64_MAX;
    o.reaper_interval_ms = INT64_MAX;
    o.ping_after_idle_ms = INT64_MAX;
    o.leak_detection_threshold_ms = INT64_MAX;
    o.health_check_bypass_ms = INT64_MAX;
    o.overtake_window_ms = INT64_MAX;
    o.max_reply_bytes = INT64_MAX;
    o.max_reply_elements = INT64_MAX;
    return try_new(&o, err);
}

/* username without a password is refused, also when the password is "" (= none). */
static int64_t opt_user_empty_password(pool_error_t *err)
{
    pool_options_t o = base_options(2);
    o.username = "alice";
    o.password = "";
    return try_new(&o, err);
}

/* A pool whose every new conn Redis refuses (SELECT 2147483647): the get fails at once. */
static int64_t get_bad_db(pool_error_t *err)
{
    pool_options_t o = base_options(2);
    o.db = INT32_MAX;
    pool_t *pool = new_pool_or_exit(&o);
    pool_conn_t *c = NULL;
    pool_status_t rc = pool_get(pool, &c, err);
    if (rc == POOL_OK)
        pool_put(pool, c);
    else
        CHECK(c == NULL);
    CHECK_EQ(pool_len(pool), 0);
    CHECK_EQ(stats_of(pool).in_use_conns, 0);
    pool_free(pool);
    return rc;
}

/* A pool of an address nobody listens on: POOL_ERR_DIAL naming it, no turn lost. */
static int64_t get_unreachable(pool_error_t *err)
{
    pool_options_t o = base_options(1);
    o.addr = "127.0.0.1:1";
    pool_t *pool = new_pool_or_exit(&o);
    pool_conn_t *c = NULL;
    pool_status_t rc = pool_get(pool, &c, err);
    if (rc == POOL_OK)
        pool_put(pool, c);
    CHECK_EQ(pool_len(pool), 0);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.in_use_conns, 0);
    CHECK_EQ(s.pending_requests, 0);
    pool_free(pool);
    return rc;
}

/*
 * An addr that pool_new may refuse (POOL_ERR_INVALID_ARG naming addr) or accept; once
 * accepted, a get must fail with POOL_ERR_DIAL, whose message carries the address (its
 * start) and the OS error (`os_error`), however long the address is. 0 when either held.
 */
static int64_t addr_refused_or_dial_error(const char *addr, const char *os_error)
{
    pool_options_t o = base_options(1);
    o.addr = addr;
    pool_t *pool = NULL;
    pool_error_t err;
    err_reset(&err);
    pool_status_t rc = pool_new(&o, &pool, &err);
    if (rc == POOL_ERR_INVALID_ARG)
        return CHECK_CONTAINS(err.message, "addr") ? 0 : rc;
    if (!CHECK_STATUS(rc, POOL_OK, &err))
        return rc;
    pool_conn_t *c = NULL;
    err_reset(&err);
    rc = pool_get(pool, &c, &err);
    if (rc == POOL_OK)
        pool_put(pool, c);
    CHECK_EQ(pool_len(pool), 0);
    pool_free(pool);
    if (!CHECK_STATUS(rc, POOL_ERR_DIAL, &err))
        return rc;
    char start[17];
    snprintf(start, sizeof start, "%s", addr);
    int ok = CHECK_CONTAINS(err.message, start);
    ok &= CHECK_CONTAINS(err.message, os_error);
    return ok ? 0 : -1;
}

/* ---- pool_new_url ---- */

static int64_t try_url(const char *url, pool_error_t *err)
{
    pool_t *pool = NULL;
    pool_status_t rc = pool_new_url(url, &pool, err);
    if (rc != POOL_OK) {
        CHECK(pool == NULL);
        return rc;
    }
    if (CHECK(pool != NULL)) {
        check_pool_works(pool);
        pool_free(pool);
    }
    return rc;
}

/* pool_new_url alone: a URL it accepts makes a pool that has dialed nothing yet. */
static int64_t try_url_no_dial(const char *url, pool_error_t *err)
{
    pool_t *pool = NULL;
    pool_status_t rc = pool_new_url(url, &pool, err);
    if (rc == POOL_OK) {
        CHECK(pool != NULL);
        CHECK_EQ(pool_len(pool), 0);
        pool_free(pool);
    } else {
        CHECK(pool == NULL);
    }
    return rc;
}

/* ---- gets ---- */

/* pool_get_ex on `pool`; a conn it hands out goes back. Checks the get took >= min_ms. */
static int64_t get_ex_on(pool_t *pool, int64_t timeout_ms, const pool_cancel_t *cancel,
                         pool_error_t *err, int64_t min_ms)
{
    pool_conn_t *c = NULL;
    int64_t start = now_ms();
    pool_status_t rc = pool_get_ex(pool, timeout_ms, cancel, &c, err);
    int64_t took = now_ms() - start;
    if (rc == POOL_OK)
        pool_put(pool, c);
    else
        CHECK(c == NULL);
    if (!CHECK(took >= min_ms))
        fprintf(stderr, "  (the get took %" PRId64 " ms, expected at least %" PRId64 ")\n",
                took, min_ms);
    return rc;
}

static int64_t get_on(pool_t *pool, pool_error_t *err)
{
    pool_conn_t *c = NULL;
    pool_status_t rc = pool_get(pool, &c, err);
    if (rc == POOL_OK)
        pool_put(pool, c);
    else
        CHECK(c == NULL);
    return rc;
}

static int64_t try_get_on(pool_t *pool)
{
    pool_conn_t *c = NULL;
    pool_status_t rc = pool_try_get(pool, &c);
    if (rc == POOL_OK)
        pool_put(pool, c);
    else
        CHECK(c == NULL);
    return rc;
}

static int64_t new_conn_on(pool_t *pool, pool_error_t *err)
{
    pool_conn_t *c = NULL;
    pool_status_t rc = pool_new_conn(pool, &c, err);
    if (rc == POOL_OK)
        pool_close_conn(pool, c);
    else
        CHECK(c == NULL);
    return rc;
}

/* A token fired (twice) before the get: POOL_ERR_CANCELED even with a conn idle. */
static int64_t get_fired(pool_t *pool, int64_t timeout_ms, pool_error_t *err)
{
    pool_cancel_t *t = pool_cancel_new();
    if (!CHECK(t != NULL))
        return -1;
    pool_cancel_fire(t);
    pool_cancel_fire(t);
    int64_t rc = get_ex_on(pool, timeout_ms, t, err, 0);
    pool_cancel_free(t);
    return rc;
}

/* Something another thread does after a delay, while this one is blocked in a get. */
enum later_action { LATER_FIRE, LATER_PUT, LATER_CLOSE };

typedef struct later {
    pthread_t thread;
    enum later_action action;
    int64_t delay_ms;
    pool_t *pool;
    pool_conn_t *conn;
    pool_cancel_t *cancel;
    pool_status_t rc;
} later_t;

static void *later_main(void *arg)
{
    later_t *l = arg;
    sleep_ms(l->delay_ms);
    switch (l->action) {
    case LATER_FIRE:
        pool_cancel_fire(l->cancel);
        break;
    case LATER_PUT:
        l->rc = pool_put(l->pool, l->conn);
        break;
    case LATER_CLOSE:
        l->rc = pool_close(l->pool);
        break;
    }
    return NULL;
}

/*
 * A get with timeout INT64_MAX on the full pool, ended by `action` from another
 * thread 50 ms in: a fired token, the held conn put back (the get then gets it),
 * or pool_close.
 */
static int64_t get_forever_until(fx_t *fx, enum later_action action, pool_error_t *err)
{
    later_t l;
    memset(&l, 0, sizeof l);
    l.action = action;
    l.delay_ms = 50;
    l.pool = fx->pool;
    l.conn = fx->conn;
    l.cancel = pool_cancel_new();
    if (!CHECK(l.cancel != NULL))
        return -1;
    if (action == LATER_PUT)
        fx->conn = NULL; /* the other thread gives it back */
    start_thread(&l.thread, later_main, &l);
    pool_conn_t *c = NULL;
    pool_status_t rc = pool_get_ex(fx->pool, INT64_MAX, l.cancel, &c, err);
    pthread_join(l.thread, NULL);
    CHECK_STATUS(l.rc, POOL_OK, NULL);
    if (rc == POOL_OK)
        fx->conn = c; /* checked out again: the teardown gives it back */
    else
        CHECK(c == NULL);
    pool_cancel_free(l.cancel);
    return rc;
}

/* ---- put, remove, close_conn ---- */

/* Gives fx->conn back with `how`; it is consumed. */
static int64_t give(pool_t *pool, pool_conn_t **conn, int how, const char *reason)
{
    pool_status_t rc = how == 0   ? pool_put(pool, *conn)
                       : how == 1 ? pool_remove(pool, *conn, reason)
                                  : pool_close_conn(pool, *conn);
    if (rc == POOL_OK) {
        CHECK_EQ(pool_conn_id(*conn), 0); /* the handle is dead */
        *conn = NULL;
    }
    return rc;
}

#define GIVE_PUT 0
#define GIVE_REMOVE 1
#define GIVE_CLOSE 2

/* Gives *conn back with `how`, then again: the second call's result. */
static int64_t give_twice(pool_t *pool, pool_conn_t **conn, int how, int again)
{
    pool_conn_t *c = *conn;
    pool_status_t first = (pool_status_t)give(pool, conn, how, "hostile");
    CHECK_STATUS(first, POOL_OK, NULL);
    return give(pool, &c, again, "again");
}

/* A sticky pool's conn removed with `reason`: the next get fails with the reason. */
static int64_t sticky_removed_get(fx_t *fx, const char *reason, pool_error_t *err)
{
    CHECK_STATUS(give(fx->pool, &fx->conn, GIVE_REMOVE, reason), POOL_OK, NULL);
    return get_ex_on(fx->pool, 0, NULL, err, 0);
}

/* A sticky pool over a closed pool: made, but its gets fail with POOL_ERR_CLOSED. */
static int64_t sticky_over_closed(pool_t *closed, pool_error_t *err)
{
    pool_t *sticky = NULL;
    if (!CHECK_STATUS(pool_sticky_new(closed, &sticky), POOL_OK, NULL))
        return -1;
    int64_t rc = get_on(sticky, err);
    pool_free(sticky);
    return rc;
}

/* ---- leaks, notify fd, stats ---- */

/* cap 0 (out NULL or not): nothing written, the total counted. */
static int64_t leaks_count_only(fx_t *fx, int with_buffer, pool_error_t *err)
{
    pool_leak_t out[2];
    memset(out, 0xAB, sizeof out);
    size_t n = 12345;
    pool_status_t rc = pool_leaks(fx->pool, with_buffer ? out : NULL, 0, &n, err);
    if (rc == POOL_OK)
        CHECK_EQ(n, 1);
    const unsigned char *bytes = (const unsigned char *)out;
    for (size_t i = 0; i < sizeof out; i++)
        if (bytes[i] != 0xAB) {
            CHECK(!"pool_leaks wrote past cap");
            break;
        }
    return rc;
}

/* cap 1: the one leak, nothing after it. */
static int64_t leaks_one(fx_t *fx, pool_error_t *err)
{
    pool_leak_t out[2];
    memset(out, 0xAB, sizeof out);
    size_t n = 0;
    pool_status_t rc = pool_leaks(fx->pool, out, 1, &n, err);
    if (rc == POOL_OK) {
        CHECK_EQ(n, 1);
        CHECK_EQ(out[0].conn_id, pool_conn_id(fx->conn));
        CHECK(out[0].held_ms >= 1);
        const unsigned char *tail = (const unsigned char *)&out[1];
        CHECK(tail[0] == 0xAB && tail[sizeof out[1] - 1] == 0xAB);
    }
    return rc;
}

static int64_t notify_same_fd(pool_t *pool)
{
    int a = pool_notify_fd(pool), b = pool_notify_fd(pool);
    return a >= 0 && a == b;
}

static int64_t notify_readable(pool_t *pool)
{
    int fd = pool_notify_fd(pool);
    if (fd < 0)
        return 0;
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, (int)scaled(1000)) == 1 && (p.revents & POLLIN) != 0;
}

/* pool_stats with struct_size `size`: writes at most what it was told, never past sizeof. */
static int64_t stats_sized(const pool_t *pool, size_t size)
{
    union {
        pool_stats_t s;
        unsigned char bytes[sizeof(pool_stats_t) + 64];
    } u;
    memset(&u, 0xAB, sizeof u);
    u.s.struct_size = size;
    pool_status_t rc = pool_stats(pool, &u.s);
    size_t limit = size < sizeof(size_t) ? sizeof(size_t) : size;
    if (limit > sizeof(pool_stats_t))
        limit = sizeof(pool_stats_t);
    if (rc == POOL_OK)
        CHECK_EQ(u.s.struct_size, limit);
    for (size_t i = rc == POOL_OK ? limit : sizeof(size_t); i < sizeof u.bytes; i++)
        if (u.bytes[i] != 0xAB) {
            if (!CHECK(!"pool_stats wrote past struct_size"))
                fprintf(stderr, "  (struct_size %zu: byte %zu written)\n", size, i);
            break;
        }
    return rc;
}

/* ---- after pool_free ---- */

/* Every conn of the freed pool comes back; the last one releases the pool's memory. */
static int64_t freed_return_all(fx_t *fx)
{
    int64_t bad = 0;
    bad += give(fx->pool, &fx->conn2, GIVE_REMOVE, "after free") != POOL_OK;
    bad += give(fx->pool, &fx->conn, GIVE_PUT, NULL) != POOL_OK;
    CHECK_EQ(fx->ud.freed, 1);
    bad += give(fx->pool, &fx->conn3, GIVE_CLOSE, NULL) != POOL_OK;
    return bad;
}

/* Userdata of a conn of a freed pool can still be replaced: the old one is freed at once. */
static int64_t freed_replace_userdata(fx_t *fx)
{
    pool_conn_set_userdata(fx->conn, &fx->ud2, count_free);
    fx->ud2_set = 1;
    return fx->ud.freed == 1 && fx->ud2.freed == 0 && pool_conn_userdata(fx->conn) == &fx->ud2;
}

/* A reply outlives its conn and the freed pool. */
static int64_t freed_reply_outlives(fx_t *fx, pool_error_t *err)
{
    static const char *const argv[] = {"ECHO", "still here"};
    pool_reply_t *reply = NULL;
    pool_status_t rc = (pool_status_t)command(fx->conn3, 2, argv, NULL, err, &reply);
    CHECK_EQ(freed_return_all(fx), 0);
    if (rc == POOL_OK && reply != NULL) {
        CHECK_EQ(reply->type, POOL_REPLY_STRING);
        CHECK(reply->str != NULL && strcmp(reply->str, "still here") == 0);
        pool_reply_free(reply);
    }
    return rc;
}

/* ---- the tables ------------------------------------------------------------------
 *
 * X(id, function, input, fixture, want, message, flags, call...): `call` is an
 * expression over `fx` (the fixture) and `err` (a pool_error_t *, NULL in the
 * second round), whose value is compared with `want`.
 */

enum {
    F_ERR = 1,     /* the function takes err_out: filled on failure, untouched on success */
    F_ONCE = 2,    /* the call consumes something: one round only */
    F_COUNTS = 4,  /* not misuse (a timeout, a served get): only conns and turns must not move */
    F_NOWATCH = 8, /* the call changes the fixture pool on purpose (a conn given back) */
    F_SECRET = 16, /* the message must not show SECRET */
    F_CLOSES = 32, /* the call closes the fixture pool */
};

typedef struct hcase {
    const char *fn;   /* the exported function under test */
    const char *what; /* the hostile input */
    enum fixture fixture;
    int64_t (*call)(fx_t *fx, pool_error_t *err);
    int64_t want; /* the status, or the neutral value */
    const char *msg; /* F_ERR failures: text the message contains */
    unsigned flags;
    const char *code; /* the call, for failure messages */
} hcase_t;

#define DEFINE_CASE(id, fn, what, fixture, want, msg, flags, ...)  \
    static int64_t hc_##id(fx_t *fx, pool_error_t *err)            \
    {                                                              \
        (void)fx;                                                  \
        (void)err;                                                 \
        return (int64_t)(__VA_ARGS__);                             \
    }
#define CASE_ROW(id, fn, what, fixture, want, msg, flags, ...) \
    {fn, what, fixture, hc_##id, want, msg, flags, #__VA_ARGS__},

#define INV POOL_ERR_INVALID_ARG

/* ---- pure functions ---- */
#define PURE_CASES(X)                                                                          \
    X(version, "pool_version", "static, non-empty, the same every call", FX_NONE, 1, NULL, 0,  \
      version_ok())                                                                            \
    X(status_min, "pool_status_str", "INT32_MIN", FX_NONE, 1, NULL, 0,                         \
      is_unknown_status(INT32_MIN))                                                            \
    X(status_m1, "pool_status_str", "-1", FX_NONE, 1, NULL, 0, is_unknown_status(-1))          \
    X(status_next, "pool_status_str", "POOL_ERR_TLS + 1", FX_NONE, 1, NULL, 0,                 \
      is_unknown_status(POOL_ERR_TLS + 1))                                                    \
    X(status_max, "pool_status_str", "INT32_MAX", FX_NONE, 1, NULL, 0,                         \
      is_unknown_status(INT32_MAX))                                                            \
    X(status_defined, "pool_status_str", "every defined code: its own text", FX_NONE, 1, NULL, \
      0, defined_statuses_named())                                                             \
    X(init_null, "pool_options_init", "NULL", FX_NONE, 0, NULL, 0, (pool_options_init(NULL), 0)) \
    X(init_garbage, "pool_options_init", "a struct full of garbage", FX_NONE, 1, NULL, 0,      \
      options_init_over_garbage())                                                             \
    X(init_symbol, "pool_options_init", "the symbol behind the macro", FX_NONE, 1, NULL, 0,    \
      options_init_symbol())                                                                   \
    X(init_size_null, "pool_options_init_size", "NULL", FX_NONE, INV, NULL, 0,                 \
      pool_options_init_size(NULL, sizeof(pool_options_t)))                                    \
    X(init_size0, "pool_options_init_size", "size 0: nothing written", FX_NONE, INV, NULL, 0,  \
      options_init_sized(0))                                                                   \
    X(init_size_short, "pool_options_init_size", "one byte short of the first version",       \
      FX_NONE, INV, NULL, 0, options_init_sized(OPTIONS_V1_SIZE - 1))                          \
    X(init_size_v1, "pool_options_init_size", "an older header: only its bytes written",      \
      FX_NONE, POOL_OK, NULL, 0, options_init_sized(OPTIONS_V1_SIZE))                          \
    X(init_size_odd, "pool_options_init_size", "a size between two fields", FX_NONE, POOL_OK,  \
      NULL, 0, options_init_sized(OPTIONS_V1_SIZE + 3))                                        \
    X(init_size_max, "pool_options_init_size", "SIZE_MAX: a later header, sizeof written",    \
      FX_NONE, POOL_OK, NULL, 0, options_init_sized(SIZE_MAX))                                 \
    X(init_v1_heap, "pool_options_init_size", "a first-version struct on the heap, to pool_new", \
      FX_NONE, POOL_OK, NULL, F_ERR, options_v1_heap(err))                                     \
    X(cancel_churn, "pool_cancel_new", "1000 tokens made, fired twice, freed", FX_NONE, 0,     \
      NULL, 0, cancel_churn())                                                                 \
    X(cancel_fire_null, "pool_cancel_fire", "NULL", FX_NONE, 0, NULL, 0,                       \
      (pool_cancel_fire(NULL), 0))                                                             \
    X(cancel_free_null, "pool_cancel_free", "NULL", FX_NONE, 0, NULL, 0,                       \
      (pool_cancel_free(NULL), 0))                                                             \
    X(reply_free_null, "pool_reply_free", "NULL", FX_NONE, 0, NULL, 0, (pool_reply_free(NULL), 0))

/* ---- conn handles: every function taking a conn, for one hostile handle ---- */
#define HANDLE_CASES(X, id, label, fixture, H, cmd_msg)                                        \
    X(id##_fd, "pool_conn_fd", label, fixture, -1, NULL, 0, pool_conn_fd(H))                   \
    X(id##_id, "pool_conn_id", label, fixture, 0, NULL, 0, pool_conn_id(H))                    \
    X(id##_ud, "pool_conn_userdata", label, fixture, 0, NULL, 0, pool_conn_userdata(H) != NULL) \
    X(id##_set_ud, "pool_conn_set_userdata", label " (ignored, nothing freed)", fixture, 0,    \
      NULL, 0, set_userdata_ignored(H))                                                        \
    X(id##_cmd, "pool_conn_command", label, fixture, INV, cmd_msg, F_ERR, ping_cmd(H, err))    \
    X(id##_cmd_ex, "pool_conn_command_ex", label, fixture, INV, cmd_msg, F_ERR,                \
      ping_ex(H, 1000, err))                                                                   \
    X(id##_pipe, "pool_conn_pipeline", label, fixture, INV, cmd_msg, F_ERR,                    \
      pipe_case(H, 0, 2, err))                                                                 \
    X(id##_session_changed, "pool_conn_session_changed", label, fixture, INV, NULL, 0,        \
      pool_conn_session_changed(H))                                                            \
    X(id##_keep_pushes, "pool_conn_keep_pushes", label, fixture, INV, cmd_msg, F_ERR,         \
      pool_conn_keep_pushes(H, true, err))                                                      \
    X(id##_next_push, "pool_conn_next_push", label, fixture, INV, cmd_msg, F_ERR,             \
      pool_conn_next_push(H, 0, &(pool_reply_t *){NULL}, err))                                  \
    X(id##_wait, "pool_conn_wait_replicas", label, fixture, INV, cmd_msg, F_ERR,               \
      pool_conn_wait_replicas(H, 1, 50, NULL, err))                                            \
    X(id##_read, "pool_conn_read", label, fixture, INV, cmd_msg, F_ERR, raw_read(H, 0, err))   \
    X(id##_write, "pool_conn_write", label, fixture, INV, cmd_msg, F_ERR, raw_write(H, 0, err)) \
    X(id##_wpend, "pool_conn_write_pending", label, fixture, 0, NULL, 0,                       \
      pool_conn_write_pending(H))                                                              \
    X(id##_nb_start, "pool_conn_start", label, fixture, INV, cmd_msg, F_ERR, nb_start(H, 1, err)) \
    X(id##_nb_start_pipe, "pool_conn_start_pipeline", label, fixture, INV, cmd_msg, F_ERR,     \
      nb_start_pipe(H, 2, err))                                                                \
    X(id##_nb_finish, "pool_conn_finish", label, fixture, INV, cmd_msg, F_ERR, nb_finish(H, err)) \
    X(id##_nb_finish_pipe, "pool_conn_finish_pipeline", label, fixture, INV, cmd_msg, F_ERR,   \
      nb_finish_pipe(H, 2, err))                                                               \
    X(id##_nb_started, "pool_conn_started", label, fixture, 0, NULL, 0, pool_conn_started(H))  \
    X(id##_nb_wait, "pool_conn_wait_ms", label, fixture, -1, NULL, 0, pool_conn_wait_ms(H))    \
    X(id##_put, "pool_put", label, fixture, INV, NULL, 0, pool_put(g_pool, H))                 \
    X(id##_remove, "pool_remove", label, fixture, INV, NULL, 0, pool_remove(g_pool, H, "x"))   \
    X(id##_remove_nr, "pool_remove", label ", reason NULL", fixture, INV, NULL, 0,             \
      pool_remove(g_pool, H, NULL))                                                            \
    X(id##_close_conn, "pool_close_conn", label, fixture, INV, NULL, 0, pool_close_conn(g_pool, H)) \
    X(id##_single, "pool_single_new", label, fixture, INV, NULL, 0, single_new(g_pool, H))

#define CONN_CASES(X)                                                                           \
    HANDLE_CASES(X, h_null, "conn NULL", FX_NONE, NULL, "conn: NULL")                           \
    HANDLE_CASES(X, h_one, "made-up conn 0x1", FX_NONE, CONN_AT(1), "checked-out")              \
    HANDLE_CASES(X, h_ones, "made-up conn ~0", FX_NONE, CONN_AT(UINTPTR_MAX), "checked-out")    \
    HANDLE_CASES(X, h_stack, "a stack address as conn", FX_NONE, STACK_CONN, "checked-out")     \
    HANDLE_CASES(X, h_top, "made-up conn 0x8000...01", FX_NONE,                                 \
                 CONN_AT(((uintptr_t)1 << (sizeof(uintptr_t) * 8 - 1)) | 1), "checked-out")       \
    HANDLE_CASES(X, h_flip, "a live handle with a high bit flipped", FX_NONE, FLIPPED_CONN,     \
                 "checked-out")                                                                 \
    HANDLE_CASES(X, h_put, "a conn already put (double put)", FX_DEAD_PUT, fx->dead,            \
                 "checked-out")                                                                 \
    HANDLE_CASES(X, h_removed, "a removed conn (put/remove after remove)", FX_DEAD_REMOVED,      \
                 fx->dead, "checked-out")                                                       \
    HANDLE_CASES(X, h_closed, "a pool_new_conn conn already closed", FX_DEAD_CLOSED, fx->dead,  \
                 "checked-out")                                                                 \
    X(foreign_put, "pool_put", "a conn of another pool", FX_NONE, INV, NULL, 0,                  \
      pool_put(g_pool, g_other_conn))                                                           \
    X(foreign_remove, "pool_remove", "a conn of another pool", FX_NONE, INV, NULL, 0,            \
      pool_remove(g_pool, g_other_conn, "not yours"))                                           \
    X(foreign_close_conn, "pool_close_conn", "a conn of another pool", FX_NONE, INV, NULL, 0,    \
      pool_close_conn(g_pool, g_other_conn))                                                    \
    X(foreign_single, "pool_single_new", "a conn of another pool", FX_NONE, INV, NULL, 0,        \
      single_new(g_pool, g_other_conn))                                                         \
    X(foreign_put_back, "pool_put", "a conn of another pool, the other way", FX_NONE, INV, NULL, \
      0, pool_put(g_other, g_conn))                                                             \
    X(foreign_remove_back, "pool_remove", "a conn of another pool, the other way", FX_NONE, INV, \
      NULL, 0, pool_remove(g_other, g_conn, NULL))                                              \
    X(foreign_close_back, "pool_close_conn", "a conn of another pool, the other way", FX_NONE,   \
      INV, NULL, 0, pool_close_conn(g_other, g_conn))

/* ---- pool_conn_command ---- */
#define COMMAND_CASES(X)                                                                        \
    X(cmd_reply_null, "pool_conn_command", "reply_out NULL", FX_NONE, INV, "reply_out", F_ERR,  \
      cmd_no_reply_out(err))                                                                    \
    X(cmd_argc0, "pool_conn_command", "argc 0", FX_NONE, INV, "argc", F_ERR, cmd_argc(0, err))  \
    X(cmd_argc_m1, "pool_conn_command", "argc -1", FX_NONE, INV, "argc", F_ERR,                 \
      cmd_argc(-1, err))                                                                        \
    X(cmd_argc_min, "pool_conn_command", "argc INT_MIN", FX_NONE, INV, "argc", F_ERR,           \
      cmd_argc(INT_MIN, err))                                                                   \
    X(cmd_argc_max, "pool_conn_command", "argc INT_MAX", FX_NONE, INV, "argc", F_ERR,           \
      cmd_argc(INT_MAX, err))                                                                   \
    X(cmd_argc_max_msg, "pool_conn_command", "argc INT_MAX: the message says what is wrong",    \
      FX_NONE, INV, "at most", F_ERR, cmd_argc(INT_MAX, err))                                   \
    X(cmd_argv_null, "pool_conn_command", "argv NULL", FX_NONE, INV, "argv", F_ERR,             \
      cmd_argv(1, NULL, err))                                                                   \
    X(cmd_argv0_null, "pool_conn_command", "argv[0] NULL", FX_NONE, INV, "argv[0]", F_ERR,      \
      cmd_argv(1, (const char *const[]){NULL}, err))                                            \
    X(cmd_argv2_null, "pool_conn_command", "argv[2] NULL of 3", FX_NONE, INV, "argv[2]", F_ERR, \
      cmd_argv(3, (const char *const[]){"SET", "hostile:k", NULL}, err))                        \
    X(cmd_zero_len, "pool_conn_command", "argvlen all 0: an error reply, conn still good",      \
      FX_NONE, POOL_OK, NULL, F_ERR, cmd_zero_lengths(err))                                     \
    X(cmd_short_len, "pool_conn_command", "argvlen shorter than the strings", FX_NONE, POOL_OK,  \
      NULL, F_ERR, cmd_short_lengths(err))                                                      \
    X(cmd_binary, "pool_conn_command", "binary argument: NUL, 0xFF, CRLF", FX_NONE, POOL_OK,     \
      NULL, F_ERR, cmd_binary(err))                                                             \
    X(cmd_huge_arg, "pool_conn_command", "a 1 MiB argument", FX_NONE, POOL_OK, NULL, F_ERR,      \
      cmd_huge_arg(err))                                                                        \
    X(cmd_many_args, "pool_conn_command", "argc 100000", FX_NONE, POOL_OK, NULL, F_ERR,          \
      cmd_many_args(err))                                                                       \
    X(cmd_unknown, "pool_conn_command", "an unknown command: error reply, conn still good",     \
      FX_NONE, POOL_OK, NULL, F_ERR, cmd_unknown(err))                                          \
    X(read_n_null, "pool_conn_read", "n_out NULL", FX_NONE, INV, "n_out", F_ERR,                \
      pool_conn_read(g_conn, (char[4]){0}, 4, 0, NULL, err))                                    \
    X(read_buf_null, "pool_conn_read", "buf NULL, len 4", FX_NONE, INV, "buf", F_ERR,           \
      raw_read_buf(NULL, 4, 0, err))                                                            \
    X(read_t_m2, "pool_conn_read", "timeout_ms -2", FX_NONE, INV, "timeout_ms", F_ERR,          \
      raw_read(g_conn, -2, err))                                                                \
    X(read_nothing, "pool_conn_read", "nothing sent: would block, conn still good", FX_NONE,    \
      POOL_ERR_WOULD_BLOCK, "POLLIN", F_ERR, raw_read(g_conn, 0, err))                          \
    X(read_len0, "pool_conn_read", "len 0", FX_NONE, INV, "len", F_ERR,                         \
      raw_read_buf((char[4]){0}, 0, 0, err))                                                    \
    X(write_n_null, "pool_conn_write", "n_out NULL", FX_NONE, INV, "n_out", F_ERR,              \
      pool_conn_write(g_conn, "x", 1, 0, NULL, err))                                            \
    X(write_buf_null, "pool_conn_write", "buf NULL, len 4", FX_NONE, INV, "buf", F_ERR,         \
      pool_conn_write(g_conn, NULL, 4, 0, &(size_t){0}, err))                                   \
    X(write_t_min, "pool_conn_write", "timeout_ms INT64_MIN", FX_NONE, INV, "timeout_ms",       \
      F_ERR, pool_conn_write(g_conn, "x", 1, INT64_MIN, &(size_t){0}, err))                     \
    X(write_len0, "pool_conn_write", "len 0 on a plain conn: nothing to do", FX_NONE, POOL_OK,  \
      NULL, F_ERR, pool_conn_write(g_conn, NULL, 0, 0, &(size_t){7}, err))                      \
    X(write_pending_plain, "pool_conn_write_pending", "a plain conn", FX_NONE, 0, NULL, 0,      \
      pool_conn_write_pending(g_conn))                                                          \
    X(nb_start_argc0, "pool_conn_start", "argc 0", FX_NONE, INV, "argc", F_ERR,                  \
      nb_start(g_conn, 0, err))                                                                 \
    X(nb_start_argv_null, "pool_conn_start", "argv NULL", FX_NONE, INV, "argv", F_ERR,           \
      nb_start(g_conn, 2, err))                                                                 \
    X(nb_start_pipe0, "pool_conn_start_pipeline", "ncmds 0", FX_NONE, INV, "ncmds", F_ERR,       \
      nb_start_pipe(g_conn, 0, err))                                                            \
    X(nb_finish_none, "pool_conn_finish", "nothing started", FX_NONE, INV, "no command started", \
      F_ERR, nb_finish(g_conn, err))                                                            \
    X(nb_finish_pipe_none, "pool_conn_finish_pipeline", "nothing started", FX_NONE, INV,         \
      "no command started", F_ERR, nb_finish_pipe(g_conn, 2, err))                              \
    X(nb_finish_pipe_null, "pool_conn_finish_pipeline", "replies_out NULL", FX_NONE, INV,        \
      "replies_out", F_ERR,                                                                     \
      pool_conn_finish_pipeline(g_conn, NULL, 1, &(size_t){0}, NULL, err))                      \
    X(nb_started_none, "pool_conn_started", "nothing started", FX_NONE, 0, NULL, 0,              \
      pool_conn_started(g_conn))                                                                \
    X(nb_wait_none, "pool_conn_wait_ms", "nothing started", FX_NONE, -1, NULL, 0,                \
      pool_conn_wait_ms(g_conn))                                                                \
    X(cmd_ex_reply_null, "pool_conn_command_ex", "reply_out NULL", FX_NONE, INV, "reply_out",   \
      F_ERR, cmd_ex_args(1, (const char *const[]){"PING"}, 0, err))                             \
    X(cmd_ex_argc0, "pool_conn_command_ex", "argc 0", FX_NONE, INV, "argc", F_ERR,              \
      cmd_ex_args(0, (const char *const[]){"PING"}, 1, err))                                    \
    X(cmd_ex_argc_max, "pool_conn_command_ex", "argc INT_MAX", FX_NONE, INV, "at most", F_ERR,  \
      cmd_ex_args(INT_MAX, (const char *const[]){"PING"}, 1, err))                              \
    X(cmd_ex_argv_null, "pool_conn_command_ex", "argv NULL", FX_NONE, INV, "argv", F_ERR,       \
      cmd_ex_args(1, NULL, 1, err))                                                             \
    X(cmd_ex_argv1_null, "pool_conn_command_ex", "argv[1] NULL of 2", FX_NONE, INV, "argv[1]",  \
      F_ERR, cmd_ex_args(2, (const char *const[]){"ECHO", NULL}, 1, err))                       \
    X(cmd_ex_t_min, "pool_conn_command_ex", "timeout_ms INT64_MIN: the pool's", FX_NONE,        \
      POOL_OK, NULL, F_ERR, ping_ex(g_conn, INT64_MIN, err))                                    \
    X(cmd_ex_t_m1, "pool_conn_command_ex", "timeout_ms -1: the pool's", FX_NONE, POOL_OK, NULL, \
      F_ERR, ping_ex(g_conn, -1, err))                                                          \
    X(cmd_ex_t_0, "pool_conn_command_ex", "timeout_ms 0: none", FX_NONE, POOL_OK, NULL, F_ERR,  \
      ping_ex(g_conn, 0, err))                                                                  \
    X(cmd_ex_t_max, "pool_conn_command_ex", "timeout_ms INT64_MAX: as good as none", FX_NONE,   \
      POOL_OK, NULL, F_ERR, ping_ex(g_conn, INT64_MAX, err))                                    \
    X(keep_resp2, "pool_conn_keep_pushes", "a RESP2 conn: it gets no pushes", FX_NONE, INV,    \
      "RESP2", F_ERR, pool_conn_keep_pushes(g_conn, true, err))                                 \
    X(next_push_out_null, "pool_conn_next_push", "push_out NULL", FX_NONE, INV, "push_out",     \
      F_ERR, pool_conn_next_push(g_conn, 0, NULL, err))                                         \
    X(next_push_none, "pool_conn_next_push", "timeout_ms 0, none there", FX_NONE,               \
      POOL_ERR_TIMEOUT, "no push", F_ERR | F_COUNTS, pool_conn_next_push(g_conn, 0,             \
      &(pool_reply_t *){NULL}, err))                                                            \
    X(next_push_t_min, "pool_conn_next_push", "timeout_ms INT64_MIN on a RESP2 conn: none",     \
      FX_NONE, POOL_ERR_TIMEOUT, "no push", F_ERR | F_COUNTS, pool_conn_next_push(g_conn,       \
      INT64_MIN, &(pool_reply_t *){NULL}, err))                                                 \
    X(pipe_ok, "pool_conn_pipeline", "PING + ECHO, lengths for one, NUL-terminated the other",  \
      FX_NONE, POOL_OK, NULL, F_ERR, pipe_case(g_conn, 0, 2, err))                              \
    X(pipe_no_lens, "pool_conn_pipeline", "argvlens NULL", FX_NONE, POOL_OK, NULL, F_ERR,       \
      pipe_case(g_conn, 9, 2, err))                                                             \
    X(pipe_n0, "pool_conn_pipeline", "ncmds 0", FX_NONE, INV, "ncmds", F_ERR,                   \
      pipe_case(g_conn, 0, 0, err))                                                             \
    X(pipe_n_big, "pool_conn_pipeline", "ncmds 2^20 + 1: the message says the limit", FX_NONE,  \
      INV, "at most 1048576", F_ERR, pipe_case(g_conn, 0, ((size_t)1 << 20) + 1, err))          \
    X(pipe_n_max, "pool_conn_pipeline", "ncmds SIZE_MAX", FX_NONE, INV, "ncmds", F_ERR,         \
      pipe_case(g_conn, 0, SIZE_MAX, err))                                                      \
    X(pipe_argcs_null, "pool_conn_pipeline", "argcs NULL", FX_NONE, INV, "argcs", F_ERR,        \
      pipe_case(g_conn, 1, 2, err))                                                             \
    X(pipe_argvs_null, "pool_conn_pipeline", "argvs NULL", FX_NONE, INV, "argvs", F_ERR,        \
      pipe_case(g_conn, 2, 2, err))                                                             \
    X(pipe_argc0, "pool_conn_pipeline", "argcs[1] 0", FX_NONE, INV, "argcs[1]", F_ERR,          \
      pipe_case(g_conn, 3, 2, err))                                                             \
    X(pipe_argc_min, "pool_conn_pipeline", "argcs[1] INT_MIN", FX_NONE, INV, "argcs[1]", F_ERR, \
      pipe_case(g_conn, 4, 2, err))                                                             \
    X(pipe_argv1_null, "pool_conn_pipeline", "argvs[1] NULL", FX_NONE, INV, "argvs[1]", F_ERR,  \
      pipe_case(g_conn, 5, 2, err))                                                             \
    X(pipe_arg_null, "pool_conn_pipeline", "argvs[1][1] NULL", FX_NONE, INV, "argvs[1][1]",     \
      F_ERR, pipe_case(g_conn, 6, 2, err))                                                      \
    X(pipe_replies_null, "pool_conn_pipeline", "replies_out NULL", FX_NONE, INV, "replies_out", \
      F_ERR, pipe_case(g_conn, 7, 2, err))                                                      \
    X(pipe_n_null, "pool_conn_pipeline", "nreplies_out NULL", FX_NONE, INV, "nreplies_out",     \
      F_ERR, pipe_case(g_conn, 8, 2, err))

/* ---- pool_new ---- */
#define BAD32(X, id, field, v)                                                                  \
    X(id, "pool_new", #field " = " #v, FX_NONE, INV, #field, F_ERR, OPT32(field, v))
#define BAD64(X, id, field, v)                                                                  \
    X(id, "pool_new", #field " = " #v, FX_NONE, INV, #field, F_ERR, OPT64(field, v))
#define OK32(X, id, field, v)                                                                   \
    X(id, "pool_new", #field " = " #v " (accepted; the pool works)", FX_NONE, POOL_OK, NULL,    \
      F_ERR, OPT32(field, v))
#define OK64(X, id, field, v)                                                                   \
    X(id, "pool_new", #field " = " #v " (accepted; the pool works)", FX_NONE, POOL_OK, NULL,    \
      F_ERR, OPT64(field, v))

#define NEW_CASES(X)                                                                            \
    X(new_opts_null, "pool_new", "opts NULL", FX_NONE, INV, "opts", F_ERR,                      \
      pool_new(NULL, &(pool_t *){NULL}, err))                                                   \
    X(new_out_null, "pool_new", "pool_out NULL", FX_NONE, INV, "pool_out", F_ERR,               \
      pool_new(&(pool_options_t){.struct_size = sizeof(pool_options_t)}, NULL, err))            \
    X(size0, "pool_new", "struct_size 0", FX_NONE, INV, "struct_size", F_ERR,                   \
      opt_struct_size(err, 0))                                                                  \
    X(size1, "pool_new", "struct_size 1", FX_NONE, INV, "struct_size", F_ERR,                   \
      opt_struct_size(err, 1))                                                                  \
    X(size_short, "pool_new", "struct_size one field short of the first version", FX_NONE, INV, \
      "struct_size", F_ERR, opt_struct_size(err, offsetof(pool_options_t, write_timeout_ms)))   \
    X(size_bigger, "pool_new", "struct_size of a later, larger version", FX_NONE, POOL_OK, NULL, \
      F_ERR, opt_bigger_struct(err))                                                            \
    X(size_max, "pool_new", "struct_size SIZE_MAX (read as a later version)", FX_NONE, POOL_OK,  \
      NULL, F_ERR, opt_struct_size(err, SIZE_MAX))                                              \
    BAD32(X, pool_size_m1, pool_size, -1)                                                       \
    BAD32(X, pool_size_min, pool_size, INT32_MIN)                                               \
    BAD32(X, min_idle_m1, min_idle_conns, -1)                                                   \
    BAD32(X, min_idle_min, min_idle_conns, INT32_MIN)                                           \
    X(min_idle_over, "pool_new", "min_idle_conns 3 > pool_size 2", FX_NONE, INV,                \
      "min_idle_conns", F_ERR, opt_min_idle_over_size(err))                                     \
    X(min_idle_max, "pool_new", "min_idle_conns INT32_MAX > pool_size", FX_NONE, INV,           \
      "min_idle_conns", F_ERR, OPT32(min_idle_conns, INT32_MAX))                                \
    BAD32(X, max_idle_m1, max_idle_conns, -1)                                                   \
    BAD32(X, max_idle_min, max_idle_conns, INT32_MIN)                                           \
    BAD32(X, max_active_m1, max_active_conns, -1)                                               \
    BAD32(X, max_active_min, max_active_conns, INT32_MIN)                                       \
    BAD32(X, dials_m1, max_concurrent_dials, -1)                                                \
    BAD32(X, dials_min, max_concurrent_dials, INT32_MIN)                                        \
    BAD32(X, retries_m1, dialer_retries, -1)                                                    \
    BAD32(X, retries_min, dialer_retries, INT32_MIN)                                            \
    BAD32(X, db_m1, db, -1)                                                                     \
    BAD32(X, db_min, db, INT32_MIN)                                                             \
    BAD32(X, protocol_m1, protocol, -1)                                                         \
    BAD32(X, protocol_min, protocol, INT32_MIN)                                                 \
    BAD32(X, protocol_1, protocol, 1)                                                           \
    BAD32(X, protocol_4, protocol, 4)                                                           \
    BAD32(X, protocol_max, protocol, INT32_MAX)                                                 \
    BAD64(X, dial_timeout_m1, dial_timeout_ms, -1)                                              \
    BAD64(X, dial_timeout_min, dial_timeout_ms, INT64_MIN)                                      \
    BAD64(X, pool_timeout_m2, pool_timeout_ms, -2)                                              \
    BAD64(X, pool_timeout_min, pool_timeout_ms, INT64_MIN)                                      \
    BAD64(X, idle_time_m2, conn_max_idle_time_ms, -2)                                           \
    BAD64(X, idle_time_min, conn_max_idle_time_ms, INT64_MIN)                                   \
    BAD64(X, lifetime_m1, conn_max_lifetime_ms, -1)                                             \
    BAD64(X, lifetime_min, conn_max_lifetime_ms, INT64_MIN)                                     \
    BAD64(X, jitter_m1, conn_max_lifetime_jitter_ms, -1)                                        \
    BAD64(X, jitter_min, conn_max_lifetime_jitter_ms, INT64_MIN)                                \
    BAD64(X, backoff_m1, dialer_retry_backoff_ms, -1)                                           \
    BAD64(X, backoff_min, dialer_retry_backoff_ms, INT64_MIN)                                   \
    BAD64(X, read_timeout_m2, read_timeout_ms, -2)                                              \
    BAD64(X, read_timeout_min, read_timeout_ms, INT64_MIN)                                      \
    BAD64(X, write_timeout_m2, write_timeout_ms, -2)                                            \
    BAD64(X, write_timeout_min, write_timeout_ms, INT64_MIN)                                    \
    BAD64(X, reaper_m1, reaper_interval_ms, -1)                                                 \
    BAD64(X, reaper_min, reaper_interval_ms, INT64_MIN)                                         \
    BAD64(X, ping_idle_m1, ping_after_idle_ms, -1)                                              \
    BAD64(X, ping_idle_min, ping_after_idle_ms, INT64_MIN)                                      \
    BAD64(X, leak_m1, leak_detection_threshold_ms, -1)                                          \
    BAD64(X, leak_min, leak_detection_threshold_ms, INT64_MIN)                                  \
    BAD64(X, bypass_m1, health_check_bypass_ms, -1)                                             \
    BAD64(X, bypass_min, health_check_bypass_ms, INT64_MIN)                                     \
    BAD64(X, overtake_m1, overtake_window_ms, -1)                                               \
    BAD64(X, overtake_min, overtake_window_ms, INT64_MIN)                                       \
    BAD64(X, reply_bytes_m1, max_reply_bytes, -1)                                               \
    BAD64(X, reply_bytes_min, max_reply_bytes, INT64_MIN)                                       \
    BAD64(X, reply_elements_m1, max_reply_elements, -1)                                         \
    BAD64(X, reply_elements_min, max_reply_elements, INT64_MIN)                                 \
    OK32(X, pool_size_max, pool_size, INT32_MAX)                                                \
    OK32(X, max_idle_max, max_idle_conns, INT32_MAX)                                            \
    OK32(X, max_active_max, max_active_conns, INT32_MAX)                                        \
    OK32(X, dials_max, max_concurrent_dials, INT32_MAX)                                         \
    OK32(X, retries_max, dialer_retries, INT32_MAX)                                             \
    OK64(X, dial_timeout_max, dial_timeout_ms, INT64_MAX)                                       \
    OK64(X, pool_timeout_max, pool_timeout_ms, INT64_MAX)                                       \
    OK64(X, idle_time_max, conn_max_idle_time_ms, INT64_MAX)                                    \
    OK64(X, lifetime_max, conn_max_lifetime_ms, INT64_MAX)                                      \
    OK64(X, jitter_max, conn_max_lifetime_jitter_ms, INT64_MAX)                                 \
    OK64(X, backoff_max, dialer_retry_backoff_ms, INT64_MAX)                                    \
    OK64(X, read_timeout_max, read_timeout_ms, INT64_MAX)                                       \
    OK64(X, write_timeout_max, write_timeout_ms, INT64_MAX)                                     \
    OK64(X, reaper_max, reaper_interval_ms, INT64_MAX)                                          \
    OK64(X, ping_idle_max, ping_after_idle_ms, INT64_MAX)                                       \
    OK64(X, leak_max, leak_detection_threshold_ms, INT64_MAX)                                   \
    OK64(X, bypass_max, health_check_bypass_ms, INT64_MAX)                                      \
    OK64(X, overtake_max, overtake_window_ms, INT64_MAX)                                        \
    OK64(X, reply_bytes_max, max_reply_bytes, INT64_MAX)                                        \
    OK64(X, reply_bytes_4, max_reply_bytes, 4) /* "PONG" fits exactly */                       \
    OK64(X, reply_elements_max, max_reply_elements, INT64_MAX)                                  \
    OK64(X, reply_elements_1, max_reply_elements, 1)                                            \
    X(life_jitter_max, "pool_new", "conn_max_lifetime_ms and its jitter INT64_MAX", FX_NONE,    \
      POOL_OK, NULL, F_ERR, opt_lifetime_and_jitter_max(err))                                   \
    X(everything_max, "pool_new", "every count INT32_MAX, every duration INT64_MAX", FX_NONE,   \
      POOL_OK, NULL, F_ERR, opt_everything_max(err))                                            \
    X(fifo_byte, "pool_new", "pool_fifo byte 0xFF (not a canonical bool)", FX_NONE, POOL_OK,    \
      NULL, F_ERR, opt_fifo_byte(err, 0xFF))                                                    \
    X(addr_utf8, "pool_new", "addr not UTF-8", FX_NONE, INV, "addr", F_ERR,                     \
      OPTSTR(addr, "\xff\xfe:6379"))                                                            \
    X(addr_port0, "pool_new", "addr with port 0", FX_NONE, INV, "bad port \"0\"", F_ERR,       \
      OPTSTR(addr, "127.0.0.1:0"))                                                              \
    X(addr_lead_space, "pool_new", "addr with a leading space", FX_NONE, INV,                   \
      "bad host \" 127.0.0.1\"", F_ERR, OPTSTR(addr, " 127.0.0.1:6379"))                        \
    X(addr_trail_space, "pool_new", "addr with a trailing space", FX_NONE, INV,                 \
      "bad port \"6379 \"", F_ERR, OPTSTR(addr, "127.0.0.1:6379 "))                             \
    X(addr_port_plus, "pool_new", "addr with port +6379", FX_NONE, INV, "bad port \"+6379\"",   \
      F_ERR, OPTSTR(addr, "127.0.0.1:+6379"))                                                   \
    X(addr_port_space, "pool_new", "addr with a space before the port", FX_NONE, INV,           \
      "bad port \" 6379\"", F_ERR, OPTSTR(addr, "127.0.0.1: 6379"))                             \
    X(addr_port_big, "pool_new", "addr with port 65536", FX_NONE, INV, "bad port \"65536\"",    \
      F_ERR, OPTSTR(addr, "127.0.0.1:65536"))                                                   \
    X(addr_tab, "pool_new", "addr with a tab before the host", FX_NONE, INV, "bad host",        \
      F_ERR, OPTSTR(addr, "\t127.0.0.1:6379"))                                                  \
    X(addr_v6_bare, "pool_new", "an IPv6 addr without brackets", FX_NONE, INV, "[v6]:port",     \
      F_ERR, OPTSTR(addr, "::1:6379"))                                                          \
    X(addr_long, "pool_get", "a 300-byte host: refused, or a dial error with the OS error",     \
      FX_NONE, 0, NULL, 0, addr_refused_or_dial_error(g_addr_300, "lookup address"))            \
    X(addr_huge, "pool_get", "a 1 MiB addr: refused, or a dial error with the OS error",        \
      FX_NONE, 0, NULL, 0, addr_refused_or_dial_error(g_addr_1m, "lookup address"))             \
    X(addr_v6_open, "pool_new", "addr \"[::1\"", FX_NONE, INV, "addr", F_ERR,                   \
      OPTSTR(addr, "[::1"))                                                                     \
    X(addr_port_neg, "pool_new", "addr with port -1", FX_NONE, INV, "addr", F_ERR,              \
      OPTSTR(addr, "127.0.0.1:-1"))                                                             \
    X(user_utf8, "pool_new", "username not UTF-8", FX_NONE, INV, "username", F_ERR,             \
      OPTSTR(username, "\xc3\x28"))                                                             \
    X(password_utf8, "pool_new", "password not UTF-8 (and never shown)", FX_NONE, INV,          \
      "password", F_ERR | F_SECRET, OPTSTR(password, SECRET "\xff"))                            \
    X(name_utf8, "pool_new", "client_name not UTF-8", FX_NONE, INV, "client_name", F_ERR,       \
      OPTSTR(client_name, "\xed\xa0\x80"))                                                      \
    X(name_newline, "pool_new", "client_name with a newline", FX_NONE, INV, "client_name",      \
      F_ERR, OPTSTR(client_name, "a\r\nb"))                                                     \
    X(user_empty_pw, "pool_new", "username with password \"\"", FX_NONE, INV, "username", F_ERR, \
      opt_user_empty_password(err))                                                             \
    X(bad_db_get, "pool_get", "db INT32_MAX: Redis refuses SELECT", FX_NONE, POOL_ERR_HANDSHAKE, \
      "DB index is out of range", F_ERR, get_bad_db(err))                                       \
    X(unreachable_get, "pool_get", "an address nobody listens on", FX_NONE, POOL_ERR_DIAL,      \
      "127.0.0.1:1", F_ERR, get_unreachable(err))

/* ---- pool_new_url ---- */
#define BADURL(X, id, what, url, msg)                                                           \
    X(id, "pool_new_url", what, FX_NONE, INV, msg, F_ERR | F_SECRET, try_url_no_dial(url, err))

#define URL_CASES(X)                                                                            \
    X(url_null, "pool_new_url", "url NULL", FX_NONE, INV, "url", F_ERR,                         \
      pool_new_url(NULL, &(pool_t *){NULL}, err))                                               \
    X(url_out_null, "pool_new_url", "pool_out NULL", FX_NONE, INV, "pool_out", F_ERR,           \
      pool_new_url(g_url_ok, NULL, err))                                                        \
    X(url_ok, "pool_new_url", "a valid URL (control)", FX_NONE, POOL_OK, NULL, F_ERR,           \
      try_url(g_url_ok, err))                                                                   \
    X(url_8k, "pool_new_url", "a valid URL of exactly 8 KiB", FX_NONE, POOL_OK, NULL, F_ERR,    \
      try_url(g_url_8k, err))                                                                   \
    BADURL(X, url_8k1, "the same URL, 8 KiB + 1", g_url_8k1, "too long")                        \
    BADURL(X, url_1m, "a URL of 1 MiB", g_url_1m, "too long")                                   \
    BADURL(X, url_empty, "\"\"", "", "scheme")                                                  \
    BADURL(X, url_no_scheme, "host:port without a scheme", "localhost:6379", "scheme")          \
    BADURL(X, url_http, "http://", "http://localhost:6379", "scheme")                           \
    BADURL(X, url_rediss, "rediss:// with a missing CA file",                                   \
           "rediss://localhost:6379?tls_ca_file=/nonexistent/ca.pem", "tls_ca_file")             \
    BADURL(X, url_opaque, "redis: without //", "redis:", "redis://")                            \
    BADURL(X, url_port_big, "port 99999", "redis://localhost:99999", "port")                    \
    BADURL(X, url_port_alpha, "port abc", "redis://localhost:abc", "port")                      \
    BADURL(X, url_port_neg, "port -1", "redis://localhost:-1", "port")                          \
    BADURL(X, url_port0, "port 0", "redis://127.0.0.1:0", "port 0")                             \
    BADURL(X, url_port_plus, "port +6379", "redis://127.0.0.1:+6379", "port")                   \
    BADURL(X, url_port_space, "a space before the port", "redis://127.0.0.1: 6379", "space")    \
    BADURL(X, url_lead_space, "a space before the host", "redis:// 127.0.0.1:6379", "space")    \
    BADURL(X, url_host_pct_space, "%20 before the host", "redis://%20127.0.0.1:6379",           \
           "invalid host")                                                                      \
    BADURL(X, url_v6_open, "an unclosed IPv6 bracket", "redis://[::1:6379", "IPv6")             \
    BADURL(X, url_db_alpha, "db abc", "redis://localhost/abc", "database number")               \
    BADURL(X, url_db_neg, "db -1", "redis://localhost/-1", "database number")                   \
    BADURL(X, url_db_big, "db 2147483648", "redis://localhost/2147483648", "database number")   \
    BADURL(X, url_db_path, "a path of two segments", "redis://localhost/1/2", "path")           \
    BADURL(X, url_db_param, "?db=x", "redis://localhost?db=x", "database number")               \
    BADURL(X, url_unknown, "an unknown option", "redis://localhost?foo=1", "unexpected option: foo") \
    BADURL(X, url_unknowns, "many unknown options", "redis://localhost?a=1&b=2&c=3&d=4&e=5",    \
           "unexpected option")                                                                 \
    BADURL(X, url_dup, "an option twice", "redis://localhost?pool_size=1&pool_size=2",          \
           "more than once")                                                                    \
    BADURL(X, url_alias, "an option and its alias",                                             \
           "redis://localhost?idle_timeout=1s&conn_max_idle_time=2s", "alias")                  \
    BADURL(X, url_unsupported, "a go-redis client option", "redis://localhost?max_retries=3",   \
           "not supported")                                                                     \
    BADURL(X, url_size_neg, "pool_size=-1", "redis://localhost?pool_size=-1", "pool_size")      \
    BADURL(X, url_size_big, "pool_size=2147483648", "redis://localhost?pool_size=2147483648",   \
           "pool_size")                                                                         \
    BADURL(X, url_size_frac, "pool_size=1.5", "redis://localhost?pool_size=1.5", "pool_size")   \
    BADURL(X, url_min_idle, "min_idle_conns > pool_size",                                       \
           "redis://localhost?min_idle_conns=5&pool_size=2", "min_idle_conns")                  \
    BADURL(X, url_protocol, "protocol=4", "redis://localhost?protocol=4", "protocol")           \
    BADURL(X, url_fifo, "pool_fifo=maybe", "redis://localhost?pool_fifo=maybe", "pool_fifo")    \
    BADURL(X, url_name_space, "client_name with a space", "redis://localhost?client_name=a%20b", \
           "client_name")                                                                       \
    BADURL(X, url_duration_alpha, "pool_timeout=abc", "redis://localhost?pool_timeout=abc",     \
           "pool_timeout")                                                                      \
    BADURL(X, url_duration_unit, "dial_timeout=1x", "redis://localhost?dial_timeout=1x",        \
           "dial_timeout")                                                                      \
    BADURL(X, url_duration_nounit, "conn_max_lifetime=1.5",                                     \
           "redis://localhost?conn_max_lifetime=1.5", "conn_max_lifetime")                      \
    BADURL(X, url_duration_secs, "read_timeout of 2^63-1 seconds",                              \
           "redis://localhost?read_timeout=9223372036854775807", "out of range")                \
    BADURL(X, url_duration_hours, "write_timeout=99999999999h",                                 \
           "redis://localhost?write_timeout=99999999999h", "out of range")                      \
    BADURL(X, url_pct_user, "%zz in the user", "redis://us%zzer:pw@localhost", "percent")       \
    BADURL(X, url_pct_password, "%ff%fe (not UTF-8) as the password",                           \
           "redis://:%ff%fe@localhost", "percent")                                              \
    BADURL(X, url_pct_path, "%zz in the path", "redis://localhost/%zz", "percent")              \
    BADURL(X, url_pct_unix, "%ff in a unix path", "unix:///tmp/%ff.sock", "percent")            \
    BADURL(X, url_pct_host, "%zz in the host", "redis://local%zzhost:6379", "percent")          \
    BADURL(X, url_nul_name, "%00 in client_name", "redis://localhost?client_name=a%00b",        \
           "client_name")                                                                       \
    BADURL(X, url_nul_unix, "%00 in a unix path", "unix:///tmp/a%00b.sock", "NUL")              \
    BADURL(X, url_nul_user, "%00 in the user", "redis://us%00er:pw@localhost", "NUL")           \
    BADURL(X, url_nul_password, "%00 in the password",                                          \
           "redis://:" SECRET "%00x@localhost", "NUL")                                          \
    BADURL(X, url_utf8_path, "invalid UTF-8 bytes in the path", "redis://localhost/\xff", "UTF-8") \
    BADURL(X, url_utf8_user, "invalid UTF-8 bytes in the user", "redis://\xc3\x28@localhost",   \
           "UTF-8")                                                                             \
    BADURL(X, url_utf8_query, "a UTF-16 surrogate in the query",                                \
           "redis://localhost?client_name=\xed\xa0\x80", "UTF-8")                               \
    BADURL(X, url_space, "a raw space", "redis://local host", "control")                        \
    BADURL(X, url_tab, "a tab", "redis://localhost\t:6379", "control")                          \
    BADURL(X, url_del, "a DEL byte", "redis://localhost\x7f", "control")                        \
    BADURL(X, url_unix_empty, "unix:// without a path", "unix://", "unix socket path")          \
    BADURL(X, url_unix_host, "unix://tmp/redis.sock (a host)", "unix://tmp/redis.sock",         \
           "unexpected host")                                                                   \
    BADURL(X, url_secret_port, "a bad port after a password",                                   \
           "redis://user:" SECRET "@localhost:99999", "port")                                   \
    BADURL(X, url_secret_option, "an unknown option named like the password",                   \
           "redis://:" SECRET "@localhost?" SECRET "=1", "unexpected option")                   \
    BADURL(X, url_secret_value, "the password as a duration",                                   \
           "redis://:" SECRET "@localhost?pool_timeout=" SECRET, "pool_timeout")

/* ---- gets ---- */
#define GET_CASES(X)                                                                            \
    X(get_pool_null, "pool_get", "pool NULL", FX_NONE, INV, "pool", F_ERR,                      \
      pool_get(NULL, &(pool_conn_t *){NULL}, err))                                              \
    X(get_out_null, "pool_get", "conn_out NULL", FX_NONE, INV, "conn_out", F_ERR,               \
      pool_get(g_pool, NULL, err))                                                              \
    X(get_ex_pool_null, "pool_get_ex", "pool NULL", FX_NONE, INV, "pool", F_ERR,                \
      pool_get_ex(NULL, INT64_MAX, NULL, &(pool_conn_t *){NULL}, err))                          \
    X(get_ex_out_null, "pool_get_ex", "conn_out NULL, timeout 0", FX_NONE, INV, "conn_out",     \
      F_ERR, pool_get_ex(g_pool, 0, NULL, NULL, err))                                           \
    X(get_ex_out_null_min, "pool_get_ex", "conn_out NULL, timeout INT64_MIN", FX_NONE, INV,     \
      "conn_out", F_ERR, pool_get_ex(g_pool, INT64_MIN, NULL, NULL, err))                       \
    X(get_ex_out_null_max, "pool_get_ex", "conn_out NULL, timeout INT64_MAX", FX_NONE, INV,     \
      "conn_out", F_ERR, pool_get_ex(g_pool, INT64_MAX, NULL, NULL, err))                       \
    X(try_get_pool_null, "pool_try_get", "pool NULL", FX_NONE, INV, NULL, 0,                    \
      pool_try_get(NULL, &(pool_conn_t *){NULL}))                                               \
    X(try_get_out_null, "pool_try_get", "conn_out NULL", FX_NONE, INV, NULL, 0,                 \
      pool_try_get(g_pool, NULL))                                                               \
    X(new_conn_pool_null, "pool_new_conn", "pool NULL", FX_NONE, INV, "pool", F_ERR,            \
      pool_new_conn(NULL, &(pool_conn_t *){NULL}, err))                                         \
    X(new_conn_out_null, "pool_new_conn", "conn_out NULL", FX_NONE, INV, "conn_out", F_ERR,     \
      pool_new_conn(g_pool, NULL, err))                                                         \
    X(get_fired, "pool_get_ex", "a fired token, conns idle", FX_NONE, POOL_ERR_CANCELED,        \
      "cancel", F_ERR, get_fired(g_pool, INT64_MAX, err))                                       \
    X(full_get, "pool_get", "a full pool: pool_timeout_ms", FX_FULL, POOL_ERR_TIMEOUT,          \
      "connection pool timeout", F_ERR | F_COUNTS, get_on(fx->pool, err))                       \
    X(full_min, "pool_get_ex", "a full pool, timeout INT64_MIN: the pool's timeout", FX_FULL,   \
      POOL_ERR_TIMEOUT, "connection pool timeout", F_ERR | F_COUNTS,                            \
      get_ex_on(fx->pool, INT64_MIN, NULL, err, 90))                                            \
    X(full_m2, "pool_get_ex", "a full pool, timeout -2: the pool's timeout", FX_FULL,           \
      POOL_ERR_TIMEOUT, "connection pool timeout", F_ERR | F_COUNTS,                            \
      get_ex_on(fx->pool, -2, NULL, err, 90))                                                   \
    X(full_0, "pool_get_ex", "a full pool, timeout 0", FX_FULL, POOL_ERR_TIMEOUT,               \
      "connection pool timeout", F_ERR | F_COUNTS, get_ex_on(fx->pool, 0, NULL, err, 0))        \
    X(full_max_fired, "pool_get_ex", "a full pool, timeout INT64_MAX, a fired token", FX_FULL,  \
      POOL_ERR_CANCELED, "cancel", F_ERR, get_fired(fx->pool, INT64_MAX, err))                  \
    X(full_max_cancel, "pool_get_ex", "a full pool, timeout INT64_MAX, canceled 50 ms in",      \
      FX_FULL, POOL_ERR_CANCELED, "cancel", F_ERR, get_forever_until(fx, LATER_FIRE, err))      \
    X(full_max_put, "pool_get_ex", "a full pool, timeout INT64_MAX, a put 50 ms in", FX_FULL,   \
      POOL_OK, NULL, F_ERR | F_COUNTS, get_forever_until(fx, LATER_PUT, err))                   \
    X(full_max_close, "pool_get_ex", "a full pool, timeout INT64_MAX, closed 50 ms in", FX_FULL, \
      POOL_ERR_CLOSED, "client is closed", F_ERR | F_COUNTS | F_ONCE | F_CLOSES,                \
      get_forever_until(fx, LATER_CLOSE, err))                                                  \
    X(full_try_get, "pool_try_get", "a full pool", FX_FULL, POOL_ERR_WOULD_BLOCK, NULL, 0,      \
      try_get_on(fx->pool))                                                                     \
    X(full_new_conn, "pool_new_conn", "max_active_conns reached", FX_FULL, POOL_ERR_EXHAUSTED,  \
      "exhausted", F_ERR, new_conn_on(fx->pool, err))

/* ---- put, remove, close_conn ---- */
#define GIVE_CASES(X)                                                                           \
    X(put_pool_null, "pool_put", "pool NULL", FX_NONE, INV, NULL, 0, pool_put(NULL, g_conn))     \
    X(put_both_null, "pool_put", "pool and conn NULL", FX_NONE, INV, NULL, 0, pool_put(NULL, NULL)) \
    X(remove_pool_null, "pool_remove", "pool NULL", FX_NONE, INV, NULL, 0,                      \
      pool_remove(NULL, g_conn, "r"))                                                           \
    X(remove_all_null, "pool_remove", "everything NULL", FX_NONE, INV, NULL, 0,                 \
      pool_remove(NULL, NULL, NULL))                                                            \
    X(close_conn_pool_null, "pool_close_conn", "pool NULL", FX_NONE, INV, NULL, 0,              \
      pool_close_conn(NULL, g_conn))                                                            \
    X(close_conn_both_null, "pool_close_conn", "pool and conn NULL", FX_NONE, INV, NULL, 0,     \
      pool_close_conn(NULL, NULL))                                                              \
    X(put_twice, "pool_put", "put, then put again", FX_FULL, INV, NULL, F_ONCE | F_NOWATCH,     \
      give_twice(fx->pool, &fx->conn, GIVE_PUT, GIVE_PUT))                                      \
    X(remove_twice, "pool_remove", "remove, then remove again", FX_FULL, INV, NULL,             \
      F_ONCE | F_NOWATCH, give_twice(fx->pool, &fx->conn, GIVE_REMOVE, GIVE_REMOVE))            \
    X(put_after_remove, "pool_put", "remove, then put", FX_FULL, INV, NULL, F_ONCE | F_NOWATCH, \
      give_twice(fx->pool, &fx->conn, GIVE_REMOVE, GIVE_PUT))                                   \
    X(close_conn_twice, "pool_close_conn", "close_conn, then close_conn again", FX_FULL, INV,   \
      NULL, F_ONCE | F_NOWATCH, give_twice(fx->pool, &fx->conn, GIVE_CLOSE, GIVE_CLOSE))        \
    X(remove_after_put, "pool_remove", "put, then remove", FX_FULL, INV, NULL,                  \
      F_ONCE | F_NOWATCH, give_twice(fx->pool, &fx->conn, GIVE_PUT, GIVE_REMOVE))               \
    X(remove_huge_reason, "pool_remove", "a 1 MiB reason", FX_FULL, POOL_OK, NULL,              \
      F_ONCE | F_NOWATCH, give(fx->pool, &fx->conn, GIVE_REMOVE, g_long_reason))                \
    X(remove_utf8_reason, "pool_remove", "a reason that is not UTF-8", FX_FULL, POOL_OK, NULL,  \
      F_ONCE | F_NOWATCH, give(fx->pool, &fx->conn, GIVE_REMOVE, "\xff\xfe\xc3"))

/* ---- sticky and single pools ---- */
#define STICKY_CASES(X)                                                                         \
    X(sticky_new_null, "pool_sticky_new", "parent NULL", FX_NONE, INV, NULL, 0, sticky_new(NULL)) \
    X(sticky_new_out_null, "pool_sticky_new", "pool_out NULL", FX_NONE, INV, NULL, 0,           \
      pool_sticky_new(g_pool, NULL))                                                            \
    X(sticky_reset_null, "pool_sticky_reset", "NULL", FX_NONE, INV, NULL, 0,                    \
      pool_sticky_reset(NULL))                                                                  \
    X(sticky_reset_conn_pool, "pool_sticky_reset", "a pool that is not sticky", FX_NONE, INV,   \
      NULL, 0, pool_sticky_reset(g_pool))                                                       \
    X(sticky_reset_good, "pool_sticky_reset", "a sticky pool not in a bad state", FX_STICKY,    \
      POOL_OK, NULL, 0, pool_sticky_reset(fx->pool))                                            \
    X(sticky_conn_to_parent, "pool_put", "a sticky pool's conn to its parent", FX_STICKY, INV,  \
      NULL, 0, pool_put(g_pool, fx->conn))                                                      \
    X(sticky_conn_remove_parent, "pool_remove", "a sticky pool's conn to its parent", FX_STICKY, \
      INV, NULL, 0, pool_remove(g_pool, fx->conn, "r"))                                         \
    X(sticky_conn_close_parent, "pool_close_conn", "a sticky pool's conn to its parent",        \
      FX_STICKY, INV, NULL, 0, pool_close_conn(g_pool, fx->conn))                               \
    X(sticky_conn_single, "pool_single_new", "a sticky pool's conn, parent given", FX_STICKY,   \
      INV, NULL, 0, single_new(g_pool, fx->conn))                                               \
    X(parent_conn_to_sticky, "pool_put", "the parent's conn to a sticky pool", FX_STICKY, INV,  \
      NULL, 0, pool_put(fx->pool, g_conn))                                                      \
    X(other_conn_to_sticky, "pool_remove", "another pool's conn to a sticky pool", FX_STICKY,   \
      INV, NULL, 0, pool_remove(fx->pool, g_other_conn, NULL))                                  \
    X(sticky_leaks, "pool_leaks", "a sticky pool", FX_STICKY, INV, "parent", F_ERR,             \
      pool_leaks(fx->pool, NULL, 0, &(size_t){0}, err))                                           \
    X(sticky_held_get, "pool_get_ex", "a sticky pool whose conn is held, timeout 0", FX_STICKY, \
      POOL_ERR_TIMEOUT, "timeout", F_ERR | F_COUNTS, get_ex_on(fx->pool, 0, NULL, err, 0))      \
    X(sticky_held_try, "pool_try_get", "a sticky pool whose conn is held", FX_STICKY,           \
      POOL_ERR_WOULD_BLOCK, NULL, 0, try_get_on(fx->pool))                                      \
    X(sticky_remove_twice, "pool_remove", "a sticky pool's conn removed twice", FX_STICKY, INV, \
      NULL, F_ONCE | F_NOWATCH, give_twice(fx->pool, &fx->conn, GIVE_REMOVE, GIVE_REMOVE))      \
    X(sticky_huge_reason, "pool_get_ex", "after a remove with a 1 MiB reason", FX_STICKY,       \
      POOL_ERR_BAD_CONN, "bad state: rrrr", F_ERR | F_ONCE | F_NOWATCH,                         \
      sticky_removed_get(fx, g_long_reason, err))                                               \
    X(sticky_utf8_reason, "pool_get_ex", "after a remove with a reason that is not UTF-8",      \
      FX_STICKY, POOL_ERR_BAD_CONN, "bad state", F_ERR | F_ONCE | F_NOWATCH,                    \
      sticky_removed_get(fx, "\xff\xfe bad", err))                                              \
    X(sticky_multibyte_reason, "pool_get_ex", "after a remove with 300 two-byte characters",    \
      FX_STICKY, POOL_ERR_BAD_CONN, "bad state", F_ERR | F_ONCE | F_NOWATCH,                    \
      sticky_removed_get(fx, g_multibyte_reason, err))                                          \
    X(sticky_closed_get, "pool_get", "a closed sticky pool", FX_STICKY_CLOSED, POOL_ERR_CLOSED, \
      "client is closed", F_ERR, get_on(fx->pool, err))                                         \
    X(sticky_closed_reset, "pool_sticky_reset", "a closed sticky pool", FX_STICKY_CLOSED,       \
      POOL_ERR_CLOSED, NULL, 0, pool_sticky_reset(fx->pool))                                    \
    X(sticky_closed_share, "pool_sticky_new", "over a closed sticky pool", FX_STICKY_CLOSED,    \
      POOL_ERR_CLOSED, NULL, 0, sticky_new(fx->pool))                                           \
    X(sticky_closed_close, "pool_close", "a closed sticky pool", FX_STICKY_CLOSED,              \
      POOL_ERR_CLOSED, NULL, 0, pool_close(fx->pool))                                           \
    X(single_new_parent_null, "pool_single_new", "parent NULL", FX_NONE, INV, NULL, 0,          \
      single_new(NULL, g_conn))                                                                 \
    X(single_new_out_null, "pool_single_new", "pool_out NULL", FX_NONE, INV, NULL, 0,           \
      pool_single_new(g_pool, g_conn, NULL))                                                    \
    X(single_conn_to_parent, "pool_put", "a single pool's conn to its parent", FX_SINGLE, INV,  \
      NULL, 0, pool_put(g_pool, fx->conn))                                                      \
    X(single_conn_remove_parent, "pool_remove", "a single pool's conn to its parent",           \
      FX_SINGLE, INV, NULL, 0, pool_remove(g_pool, fx->conn, "r"))                              \
    X(parent_conn_to_single, "pool_put", "the parent's conn to a single pool", FX_SINGLE, INV,  \
      NULL, 0, pool_put(fx->pool, g_conn))                                                      \
    X(other_conn_to_single, "pool_close_conn", "another pool's conn to a single pool",          \
      FX_SINGLE, INV, NULL, 0, pool_close_conn(fx->pool, g_other_conn))                         \
    X(parent_conn_single_single, "pool_single_new", "a single pool and its parent's conn",      \
      FX_SINGLE, INV, NULL, 0, single_new(fx->pool, g_conn))                                    \
    X(single_reset, "pool_sticky_reset", "a single pool", FX_SINGLE, INV, NULL, 0,              \
      pool_sticky_reset(fx->pool))                                                              \
    X(single_leaks, "pool_leaks", "a single pool", FX_SINGLE, INV, "parent", F_ERR,             \
      pool_leaks(fx->pool, NULL, 0, &(size_t){0}, err))                                           \
    X(single_len, "pool_len", "a single pool: 0 as go-redis", FX_SINGLE, 0, NULL, 0,            \
      pool_len(fx->pool))                                                                       \
    X(single_idle_len, "pool_idle_len", "a single pool: 0 as go-redis", FX_SINGLE, 0, NULL, 0,  \
      pool_idle_len(fx->pool))                                                                  \
    X(single_held_get, "pool_get_ex", "a single pool whose conn is held, timeout 0", FX_SINGLE, \
      POOL_ERR_TIMEOUT, "timeout", F_ERR | F_COUNTS, get_ex_on(fx->pool, 0, NULL, err, 0))      \
    X(single_held_try, "pool_try_get", "a single pool whose conn is held", FX_SINGLE,           \
      POOL_ERR_WOULD_BLOCK, NULL, 0, try_get_on(fx->pool))                                      \
    X(single_put_twice, "pool_put", "a single pool's conn put twice", FX_SINGLE, INV, NULL,     \
      F_ONCE | F_NOWATCH, give_twice(fx->pool, &fx->conn, GIVE_PUT, GIVE_PUT))

/* ---- pool_leaks, pool_notify_fd, pool_stats, pool_len, pool_close, pool_free ---- */
#define MISC_CASES(X)                                                                           \
    X(leaks_pool_null, "pool_leaks", "pool NULL", FX_LEAKY, INV, "pool", F_ERR,                 \
      pool_leaks(NULL, (pool_leak_t[4]){{0, 0}}, 4, &(size_t){0}, err))                           \
    X(leaks_count_null, "pool_leaks", "count_out NULL", FX_LEAKY, INV, "count_out", F_ERR,      \
      pool_leaks(fx->pool, (pool_leak_t[4]){{0, 0}}, 4, NULL, err))                               \
    X(leaks_out_null, "pool_leaks", "out NULL, cap 1", FX_LEAKY, INV, "out", F_ERR,             \
      pool_leaks(fx->pool, NULL, 1, &(size_t){0}, err))                                           \
    X(leaks_out_null_huge, "pool_leaks", "out NULL, cap SIZE_MAX", FX_LEAKY, INV, "out", F_ERR, \
      pool_leaks(fx->pool, NULL, SIZE_MAX, &(size_t){0}, err))                                    \
    X(leaks_count_only, "pool_leaks", "out NULL, cap 0: counts only", FX_LEAKY, POOL_OK, NULL,  \
      F_ERR, leaks_count_only(fx, 0, err))                                                      \
    X(leaks_cap0, "pool_leaks", "a buffer with cap 0: nothing written", FX_LEAKY, POOL_OK, NULL, \
      F_ERR, leaks_count_only(fx, 1, err))                                                      \
    X(leaks_cap1, "pool_leaks", "cap 1: one entry, nothing past it", FX_LEAKY, POOL_OK, NULL,   \
      F_ERR, leaks_one(fx, err))                                                                \
    X(leaks_off, "pool_leaks", "a pool without leak detection", FX_NONE, INV,                   \
      "leak detection is off", F_ERR, pool_leaks(g_pool, NULL, 0, &(size_t){0}, err))             \
    X(notify_null, "pool_notify_fd", "NULL", FX_NONE, -1, NULL, 0, pool_notify_fd(NULL))        \
    X(notify_twice, "pool_notify_fd", "twice: the same fd", FX_NONE, 1, NULL, 0,                \
      notify_same_fd(g_pool))                                                                   \
    X(sstats_pool_null, "pool_sentinel_stats", "pool NULL", FX_NONE, INV, "pool", F_ERR,        \
      pool_sentinel_stats(NULL, &(pool_sentinel_stats_t){.struct_size = 0}, err))               \
    X(sstats_plain, "pool_sentinel_stats", "a plain pool", FX_NONE, INV, "not a sentinel pool", \
      F_ERR, pool_sentinel_stats(g_pool, &(pool_sentinel_stats_t){.struct_size = 0}, err))      \
    X(stats_pool_null, "pool_stats", "pool NULL", FX_NONE, INV, NULL, 0,                        \
      pool_stats(NULL, &(pool_stats_t){.struct_size = sizeof(pool_stats_t)}))                   \
    X(stats_out_null, "pool_stats", "stats_out NULL", FX_NONE, INV, NULL, 0,                    \
      pool_stats(g_pool, NULL))                                                                 \
    X(stats_size1, "pool_stats", "struct_size 1", FX_NONE, INV, NULL, 0, stats_sized(g_pool, 1)) \
    X(stats_size8, "pool_stats", "struct_size 8", FX_NONE, INV, NULL, 0, stats_sized(g_pool, 8)) \
    X(stats_size_big, "pool_stats", "struct_size of a later, larger version", FX_NONE, POOL_OK, \
      NULL, 0, stats_sized(g_pool, sizeof(pool_stats_t) + 64))                                  \
    X(stats_size_max, "pool_stats", "struct_size SIZE_MAX", FX_NONE, POOL_OK, NULL, 0,          \
      stats_sized(g_pool, SIZE_MAX))                                                            \
    X(len_null, "pool_len", "NULL", FX_NONE, -1, NULL, 0, pool_len(NULL))                       \
    X(idle_len_null, "pool_idle_len", "NULL", FX_NONE, -1, NULL, 0, pool_idle_len(NULL))        \
    X(close_null, "pool_close", "NULL", FX_NONE, INV, NULL, 0, pool_close(NULL))                \
    X(free_null, "pool_free", "NULL", FX_NONE, 0, NULL, 0, (pool_free(NULL), 0))               \
    SUBSCRIBER_CASES(X)

/* ---- subscribers ---- */
#define SUB_NAMES ((const char *[]){"c", NULL})
#define SUB_FN_CASES(X, id, fn)                                                                 \
    X(id##_null, #fn, "sub NULL", FX_NONE, INV, "sub", F_ERR, fn(NULL, 1, SUB_NAMES, NULL, err)) \
    X(id##_names_null, #fn, "names NULL, count 1", FX_NONE, INV, "names", F_ERR,                \
      sub_call(fn, 1, NULL, err))                                                               \
    X(id##_name1_null, #fn, "names[1] NULL", FX_NONE, INV, "names[1]", F_ERR,                   \
      sub_call(fn, 2, SUB_NAMES, err))                                                          \
    X(id##_huge, #fn, "count SIZE_MAX", FX_NONE, INV, "count", F_ERR,                           \
      sub_call(fn, SIZE_MAX, SUB_NAMES, err))
#define SUBSCRIBER_CASES(X)                                                                     \
    X(sub_new_null, "pool_subscriber_new", "pool NULL", FX_NONE, INV, "pool", F_ERR,            \
      pool_subscriber_new(NULL, &(pool_subscriber_t *){NULL}, err))                             \
    X(sub_new_out_null, "pool_subscriber_new", "sub_out NULL", FX_NONE, INV, "sub_out", F_ERR,  \
      pool_subscriber_new(g_pool, NULL, err))                                                   \
    X(sub_new_made_up, "pool_subscriber_new", "a made-up pool", FX_NONE, INV, "pool", F_ERR,    \
      pool_subscriber_new((pool_t *)(uintptr_t)0x1234, &(pool_subscriber_t *){NULL}, err))      \
    X(sub_roundtrip, "pool_subscriber_new", "made, subscribed, received, freed", FX_NONE,      \
      POOL_OK, NULL, F_ERR | F_COUNTS, sub_roundtrip(err))                              \
    X(csub_new_null, "pool_cluster_subscriber_new", "cluster NULL", FX_NONE, INV, "cluster",    \
      F_ERR, pool_cluster_subscriber_new(NULL, &(pool_subscriber_t *){NULL}, err))              \
    X(csub_new_out_null, "pool_cluster_subscriber_new", "sub_out NULL", FX_NONE, INV,           \
      "sub_out", F_ERR, pool_cluster_subscriber_new(g_cluster, NULL, err))                      \
    SUB_FN_CASES(X, sub_sub, pool_subscriber_subscribe)                                         \
    SUB_FN_CASES(X, sub_psub, pool_subscriber_psubscribe)                                       \
    SUB_FN_CASES(X, sub_ssub, pool_subscriber_ssubscribe)                                       \
    SUB_FN_CASES(X, sub_unsub, pool_subscriber_unsubscribe)                                     \
    SUB_FN_CASES(X, sub_punsub, pool_subscriber_punsubscribe)                                   \
    SUB_FN_CASES(X, sub_sunsub, pool_subscriber_sunsubscribe)                                   \
    X(sub_count0, "pool_subscriber_subscribe", "count 0", FX_NONE, INV, "count", F_ERR,         \
      sub_call(pool_subscriber_subscribe, 0, SUB_NAMES, err))                                   \
    X(sub_recv_null, "pool_subscriber_receive", "sub NULL", FX_NONE, INV, "sub", F_ERR,         \
      pool_subscriber_receive(NULL, 0, &(pool_message_t *){NULL}, err))                         \
    X(sub_recv_out_null, "pool_subscriber_receive", "msg_out NULL", FX_NONE, INV, "msg_out",    \
      F_ERR, pool_subscriber_receive(g_sub, 0, NULL, err))                                      \
    X(sub_recv_t_min, "pool_subscriber_receive", "timeout_ms INT64_MIN: waits (a message is there)", \
      FX_NONE, POOL_OK, NULL, F_ERR | F_COUNTS, sub_recv_pong(INT64_MIN, err))                  \
    X(sub_recv_t_0, "pool_subscriber_receive", "timeout_ms 0, nothing there", FX_NONE,          \
      POOL_ERR_TIMEOUT, "no message", F_ERR | F_COUNTS, sub_recv_none(0, err))                  \
    X(sub_ping_null, "pool_subscriber_ping", "sub NULL", FX_NONE, INV, "sub", F_ERR,            \
      pool_subscriber_ping(NULL, 0, err))                                                       \
    X(sub_ping_t_max, "pool_subscriber_ping", "timeout_ms INT64_MAX", FX_NONE, POOL_OK, NULL,   \
      F_ERR | F_COUNTS, pool_subscriber_ping(g_sub, INT64_MAX, err))                            \
    X(sub_ping_start_null, "pool_subscriber_ping_start", "sub NULL", FX_NONE, INV, "sub",       \
      F_ERR, pool_subscriber_ping_start(NULL, 0, err))                                          \
    X(sub_ping_finish_null, "pool_subscriber_ping_finish", "sub NULL", FX_NONE, INV, "sub",     \
      F_ERR, pool_subscriber_ping_finish(NULL, err))                                            \
    X(sub_ping_finish_none, "pool_subscriber_ping_finish", "no ping under way", FX_NONE, INV,   \
      "no subscriber ping", F_ERR, pool_subscriber_ping_finish(g_sub, err))                     \
    X(sub_ping_cancel_null, "pool_subscriber_ping_cancel", "sub NULL", FX_NONE, INV, "sub",     \
      F_ERR, pool_subscriber_ping_cancel(NULL, err))                                            \
    X(sub_ping_cancel_none, "pool_subscriber_ping_cancel", "no ping under way", FX_NONE,        \
      POOL_OK, NULL, F_ERR | F_COUNTS, pool_subscriber_ping_cancel(g_sub, err))                 \
    X(sub_fd_null, "pool_subscriber_fd", "NULL", FX_NONE, -1, NULL, 0, pool_subscriber_fd(NULL)) \
    X(sub_resubs_null, "pool_subscriber_resubscribes", "NULL", FX_NONE, 0, NULL, 0,             \
      (int64_t)pool_subscriber_resubscribes(NULL))                                              \
    X(sub_free_null, "pool_subscriber_free", "NULL", FX_NONE, 0, NULL, 0,                       \
      (pool_subscriber_free(NULL), 0))                                                          \
    X(msg_free_null, "pool_message_free", "NULL", FX_NONE, 0, NULL, 0, (pool_message_free(NULL), 0))

/* ---- Redis Cluster handles ---- */
#define CLUSTER_CASES(X)                                                                        \
    X(cl_init_null, "pool_cluster_options_init", "NULL", FX_NONE, 0, NULL, 0,                   \
      (pool_cluster_options_init(NULL), 0))                                                     \
    X(cl_init_size_null, "pool_cluster_options_init_size", "NULL", FX_NONE, INV, NULL, 0,       \
      pool_cluster_options_init_size(NULL, sizeof(pool_cluster_options_t)))                     \
    X(cl_init_size_short, "pool_cluster_options_init_size", "one byte short: nothing written",  \
      FX_NONE, INV, NULL, 0, cluster_options_init_sized(sizeof(pool_cluster_options_t) - 1))    \
    X(cl_init_size_max, "pool_cluster_options_init_size", "SIZE_MAX: sizeof written", FX_NONE,  \
      POOL_OK, NULL, 0, cluster_options_init_sized(SIZE_MAX))                                   \
    X(cl_new_null, "pool_cluster_new", "opts NULL", FX_NONE, INV, "opts", F_ERR,                \
      pool_cluster_new(NULL, &(pool_cluster_t *){NULL}, err))                                   \
    X(cl_new_out_null, "pool_cluster_new", "cluster_out NULL", FX_NONE, INV, "cluster_out",     \
      F_ERR, pool_cluster_new(&(pool_cluster_options_t){0}, NULL, err))                         \
    X(cl_new_size0, "pool_cluster_new", "struct_size 0", FX_NONE, INV, "struct_size", F_ERR,    \
      cluster_new_with(err, 0))                                                                 \
    X(cl_new_no_seed, "pool_cluster_new", "no seeds", FX_NONE, INV, "seeds", F_ERR,             \
      cluster_new_with(err, 1))                                                                 \
    X(cl_new_seed_null, "pool_cluster_new", "seeds[0] NULL", FX_NONE, INV, "seeds[0]", F_ERR,   \
      cluster_new_with(err, 2))                                                                 \
    X(cl_new_seeds_null, "pool_cluster_new", "seeds NULL, seeds_len 3", FX_NONE, INV, "seeds",  \
      F_ERR, cluster_new_with(err, 3))                                                          \
    X(cl_new_seeds_huge, "pool_cluster_new", "seeds_len SIZE_MAX", FX_NONE, INV, "seeds_len",   \
      F_ERR, cluster_new_with(err, 10))                                                         \
    X(cl_new_seed_space, "pool_cluster_new", "a seed with a leading space", FX_NONE, INV,       \
      "bad host \" 127.0.0.1\"", F_ERR, cluster_new_with(err, 11))                              \
    X(cl_new_seed_plus, "pool_cluster_new", "a seed with port +7000", FX_NONE, INV,             \
      "bad port \"+7000\"", F_ERR, cluster_new_with(err, 12))                                   \
    X(cl_url_addr_space, "pool_cluster_new_url", "addr=%20127.0.0.1:7001", FX_NONE, INV,        \
      "option addr", F_ERR, cluster_url(err, "redis://h:1?addr=%20127.0.0.1:7001"))             \
    X(cl_url_addr_plus, "pool_cluster_new_url", "addr=127.0.0.1:%2B7001", FX_NONE, INV,         \
      "bad port \"+7001\"", F_ERR, cluster_url(err, "redis://h:1?addr=127.0.0.1:%2B7001"))      \
    X(cl_url_port0, "pool_cluster_new_url", "port 0", FX_NONE, INV, "port 0", F_ERR,            \
      cluster_url(err, "redis://127.0.0.1:0"))                                                  \
    X(cl_new_redir_m1, "pool_cluster_new", "max_redirects -1", FX_NONE, INV, "max_redirects",   \
      F_ERR, cluster_new_with(err, 4))                                                          \
    X(cl_new_redir_max, "pool_cluster_new", "max_redirects INT32_MAX", FX_NONE, INV,            \
      "max_redirects", F_ERR, cluster_new_with(err, 5))                                         \
    X(cl_new_interval, "pool_cluster_new", "refresh_min_interval_ms INT64_MIN", FX_NONE, INV,   \
      "refresh_min_interval_ms", F_ERR, cluster_new_with(err, 6))                               \
    X(cl_new_dialer, "pool_cluster_new", "node options with a custom dialer", FX_NONE, INV,     \
      "dialer", F_ERR, cluster_new_with(err, 7))                                                \
    X(cl_new_db, "pool_cluster_new", "node options with db 1", FX_NONE, INV, "database 0",      \
      F_ERR, cluster_new_with(err, 8))                                                          \
    X(cl_new_size_min, "pool_cluster_new", "node pool_size INT32_MIN", FX_NONE, INV,            \
      "pool_size", F_ERR, cluster_new_with(err, 9))                                             \
    X(cl_url_null, "pool_cluster_new_url", "url NULL", FX_NONE, INV, "url", F_ERR,              \
      cluster_url(err, NULL))                                                                   \
    X(cl_url_out_null, "pool_cluster_new_url", "cluster_out NULL", FX_NONE, INV, "cluster_out", \
      F_ERR, pool_cluster_new_url("redis://h:1", NULL, err))                                    \
    X(cl_url_secret, "pool_cluster_new_url", "an unknown option next to a password", FX_NONE,   \
      INV, "bogus", F_ERR | F_SECRET, cluster_url(err, "redis://:" SECRET "@h:1?bogus=1"))      \
    X(cl_url_addr_secret, "pool_cluster_new_url", "an addr equal to the password", FX_NONE,     \
      INV, "addr", F_ERR | F_SECRET, cluster_url(err, "redis://:" SECRET "@h:1?addr=" SECRET))  \
    X(cl_url_db, "pool_cluster_new_url", "db 5", FX_NONE, INV, "database 0", F_ERR,             \
      cluster_url(err, "redis://h:1/5"))                                                        \
    X(cl_url_unix, "pool_cluster_new_url", "unix://", FX_NONE, INV, "TCP", F_ERR,               \
      cluster_url(err, "unix:///tmp/redis.sock"))                                               \
    X(cl_url_8k1, "pool_cluster_new_url", "a URL over 8 KiB", FX_NONE, INV, "too long", F_ERR,  \
      cluster_url(err, g_url_8k1))                                                              \
    X(cl_slot_null, "pool_cluster_key_slot", "key NULL, keylen 5", FX_NONE, -1, NULL, 0,        \
      pool_cluster_key_slot(NULL, 5))                                                           \
    X(cl_slot_empty, "pool_cluster_key_slot", "key NULL, keylen 0", FX_NONE, 0, NULL, 0,        \
      pool_cluster_key_slot(NULL, 0))                                                           \
    X(cl_get_null, "pool_cluster_get", "cluster NULL", FX_NONE, INV, "cluster", F_ERR,          \
      pool_cluster_get(NULL, "k", 1, -1, NULL, &(pool_conn_t *){NULL}, err))                    \
    X(cl_get_out_null, "pool_cluster_get", "conn_out NULL", FX_NONE, INV, "conn_out", F_ERR,    \
      pool_cluster_get(g_cluster, "k", 1, -1, NULL, NULL, err))                                 \
    X(cl_get_key_null, "pool_cluster_get", "key NULL, keylen 3", FX_NONE, INV, "key", F_ERR,    \
      pool_cluster_get(g_cluster, NULL, 3, -1, NULL, &(pool_conn_t *){NULL}, err))              \
    X(cl_get_down, "pool_cluster_get", "a seed that is not a cluster node", FX_NONE,            \
      POOL_ERR_CLUSTER, "cluster support disabled", F_ERR | F_COUNTS, cluster_get_down(err))    \
    X(cl_slot_big, "pool_cluster_get_slot", "slot 16384", FX_NONE, INV, "slot", F_ERR,          \
      pool_cluster_get_slot(g_cluster, 16384, -1, NULL, &(pool_conn_t *){NULL}, err))           \
    X(cl_slot_min, "pool_cluster_get_slot", "slot INT32_MIN", FX_NONE, INV, "slot", F_ERR,      \
      pool_cluster_get_slot(g_cluster, INT32_MIN, -1, NULL, &(pool_conn_t *){NULL}, err))       \
    X(cl_slot_cnull, "pool_cluster_get_slot", "cluster NULL", FX_NONE, INV, "cluster", F_ERR,   \
      pool_cluster_get_slot(NULL, 0, -1, NULL, &(pool_conn_t *){NULL}, err))                    \
    X(cl_node_null, "pool_cluster_get_node", "addr NULL", FX_NONE, INV, "addr", F_ERR,          \
      pool_cluster_get_node(g_cluster, NULL, -1, NULL, &(pool_conn_t *){NULL}, err))            \
    X(cl_node_bad, "pool_cluster_get_node", "addr without a port", FX_NONE, INV, "addr", F_ERR, \
      pool_cluster_get_node(g_cluster, "localhost", -1, NULL, &(pool_conn_t *){NULL}, err))     \
    X(cl_node_huge, "pool_cluster_get_node", "an address of 1 MiB", FX_NONE, INV, "addr", F_ERR, \
      pool_cluster_get_node(g_cluster, g_addr_1m, -1, NULL, &(pool_conn_t *){NULL}, err))       \
    X(cl_put_null, "pool_cluster_put", "NULLs", FX_NONE, INV, NULL, 0,                          \
      pool_cluster_put(NULL, NULL))                                                             \
    X(cl_put_madeup, "pool_cluster_put", "a made-up conn", FX_NONE, INV, NULL, 0,               \
      pool_cluster_put(g_cluster, CONN_AT(1)))                                                  \
    X(cl_foreign, "pool_cluster_put", "a conn of a plain pool (put, remove, conn_node)",        \
      FX_NONE, 1, NULL, 0, cluster_foreign_conn())                                              \
    X(cl_remove_null, "pool_cluster_remove", "NULLs", FX_NONE, INV, NULL, 0,                    \
      pool_cluster_remove(NULL, NULL, NULL))                                                    \
    X(cl_np_null, "pool_cluster_node_pool", "cluster NULL", FX_NONE, INV, "cluster", F_ERR,     \
      pool_cluster_node_pool(NULL, "h:1", &(pool_t *){NULL}, err))                              \
    X(cl_np_out_null, "pool_cluster_node_pool", "pool_out NULL", FX_NONE, INV, "pool_out",      \
      F_ERR, pool_cluster_node_pool(g_cluster, "h:1", NULL, err))                               \
    X(cl_np_addr, "pool_cluster_node_pool", "addr \"::\"", FX_NONE, INV, "addr", F_ERR,          \
      pool_cluster_node_pool(g_cluster, "::", &(pool_t *){NULL}, err))                          \
    X(cl_cn_null, "pool_cluster_conn_node", "conn NULL", FX_NONE, INV, NULL, 0,                 \
      pool_cluster_conn_node(NULL, (char[8]){0}, 8))                                            \
    X(cl_cn_buf_null, "pool_cluster_conn_node", "buf NULL", FX_NONE, INV, NULL, 0,              \
      pool_cluster_conn_node(g_conn, NULL, 64))                                                 \
    X(cl_cn_cap0, "pool_cluster_conn_node", "cap 0", FX_NONE, INV, NULL, 0,                     \
      pool_cluster_conn_node(g_conn, (char[8]){0}, 0))                                          \
    X(cl_sn_null, "pool_cluster_slot_node", "cluster NULL", FX_NONE, INV, NULL, 0,              \
      pool_cluster_slot_node(NULL, 0, (char[64]){0}, 64))                                       \
    X(cl_sn_madeup, "pool_cluster_slot_node", "a made-up cluster", FX_NONE, INV, NULL, 0,       \
      pool_cluster_slot_node((pool_cluster_t *)(uintptr_t)1, 0, (char[64]){0}, 64))            \
    X(cl_sn_buf_null, "pool_cluster_slot_node", "buf NULL", FX_NONE, INV, NULL, 0,              \
      pool_cluster_slot_node(g_cluster, 0, NULL, 64))                                           \
    X(cl_sn_cap0, "pool_cluster_slot_node", "cap 0", FX_NONE, INV, NULL, 0,                     \
      pool_cluster_slot_node(g_cluster, 0, (char[8]){0}, 0))                                    \
    X(cl_sn_slot_neg, "pool_cluster_slot_node", "slot -1", FX_NONE, INV, NULL, 0,               \
      pool_cluster_slot_node(g_cluster, -1, (char[64]){0}, 64))                                 \
    X(cl_sn_slot_big, "pool_cluster_slot_node", "slot 16384", FX_NONE, INV, NULL, 0,            \
      pool_cluster_slot_node(g_cluster, 16384, (char[64]){0}, 64))                              \
    X(cl_sn_unloaded, "pool_cluster_slot_node", "no slot map loaded", FX_NONE, POOL_ERR_CLUSTER, \
      NULL, 0, pool_cluster_slot_node(g_cluster, 0, (char[64]){0}, 64))                         \
    X(cl_refresh_null, "pool_cluster_refresh", "cluster NULL", FX_NONE, INV, "cluster", F_ERR,  \
      pool_cluster_refresh(NULL, -1, err))                                                      \
    X(cl_stats_null, "pool_cluster_stats", "cluster NULL", FX_NONE, INV, NULL, 0,               \
      pool_cluster_stats(NULL, NULL, &(pool_stats_t){.struct_size = sizeof(pool_stats_t)}))     \
    X(cl_stats_out_null, "pool_cluster_stats", "stats_out NULL", FX_NONE, INV, NULL, 0,         \
      pool_cluster_stats(g_cluster, NULL, NULL))                                                \
    X(cl_stats_unknown, "pool_cluster_stats", "a node without a pool", FX_NONE, INV, NULL, 0,   \
      pool_cluster_stats(g_cluster, "10.0.0.1:1",                                               \
                         &(pool_stats_t){.struct_size = sizeof(pool_stats_t)}))                 \
    X(cl_info_null, "pool_cluster_info", "cluster NULL", FX_NONE, INV, NULL, 0,                 \
      pool_cluster_info(NULL, &(pool_cluster_info_t){.struct_size = 0}))                        \
    X(cl_info_out_null, "pool_cluster_info", "info_out NULL", FX_NONE, INV, NULL, 0,            \
      pool_cluster_info(g_cluster, NULL))                                                       \
    X(cl_info_size1, "pool_cluster_info", "struct_size 1", FX_NONE, INV, NULL, 0,               \
      cluster_info_sized(1))                                                                    \
    X(cl_info_size_max, "pool_cluster_info", "struct_size SIZE_MAX", FX_NONE, POOL_OK, NULL, 0, \
      cluster_info_sized(SIZE_MAX))                                                             \
    X(cl_nodes_null, "pool_cluster_nodes", "cluster NULL", FX_NONE, INV, NULL, 0,               \
      pool_cluster_nodes(NULL, NULL, 0, &(size_t){0}))                                          \
    X(cl_nodes_count_null, "pool_cluster_nodes", "count NULL", FX_NONE, INV, NULL, 0,           \
      pool_cluster_nodes(g_cluster, NULL, 0, NULL))                                             \
    X(cl_nodes_out_null, "pool_cluster_nodes", "out NULL, cap SIZE_MAX", FX_NONE, INV, NULL, 0, \
      pool_cluster_nodes(g_cluster, NULL, SIZE_MAX, &(size_t){0}))                              \
    X(cl_close_null, "pool_cluster_close", "NULL", FX_NONE, INV, NULL, 0,                       \
      pool_cluster_close(NULL))                                                                 \
    X(cl_free_null, "pool_cluster_free", "NULL", FX_NONE, 0, NULL, 0, (pool_cluster_free(NULL), 0))

/* ---- sentinel pools ---- */
#define SENTINEL_CASES(X)                                                                       \
    X(sn_init_null, "pool_sentinel_options_init", "NULL", FX_NONE, 0, NULL, 0,                  \
      (pool_sentinel_options_init(NULL), 0))                                                    \
    X(sn_init_size_null, "pool_sentinel_options_init_size", "NULL", FX_NONE, INV, NULL, 0,      \
      pool_sentinel_options_init_size(NULL, sizeof(pool_sentinel_options_t)))                   \
    X(sn_init_size_short, "pool_sentinel_options_init_size", "one byte short of the first",     \
      FX_NONE, INV, NULL, 0, sentinel_options_init_sized(SENTINEL_OPTIONS_V1_SIZE - 1))         \
    X(sn_init_size_v1, "pool_sentinel_options_init_size", "an older header: its bytes written", \
      FX_NONE, POOL_OK, NULL, 0, sentinel_options_init_sized(SENTINEL_OPTIONS_V1_SIZE))         \
    X(sn_init_size_exact, "pool_sentinel_options_init_size", "its sizeof: all of it written",   \
      FX_NONE, POOL_OK, NULL, 0, sentinel_options_init_sized(sizeof(pool_sentinel_options_t)))  \
    X(sn_new_null, "pool_sentinel_new", "sopts NULL", FX_NONE, INV, "sopts", F_ERR,             \
      pool_sentinel_new(NULL, NULL, &(pool_t *){NULL}, err))                                    \
    X(sn_new_out_null, "pool_sentinel_new", "pool_out NULL", FX_NONE, INV, "pool_out", F_ERR,   \
      pool_sentinel_new(&(pool_sentinel_options_t){0}, NULL, NULL, err))                        \
    X(sn_size0, "pool_sentinel_new", "struct_size 0", FX_NONE, INV, "struct_size", F_ERR,       \
      sentinel_new_with(err, 0))                                                                \
    X(sn_name_null, "pool_sentinel_new", "master_name NULL", FX_NONE, INV, "master_name",       \
      F_ERR, sentinel_new_with(err, 1))                                                         \
    X(sn_no_addrs, "pool_sentinel_new", "sentinel_addrs_len 0", FX_NONE, INV,                   \
      "sentinel_addrs_len", F_ERR, sentinel_new_with(err, 2))                                   \
    X(sn_addrs_null, "pool_sentinel_new", "sentinel_addrs NULL", FX_NONE, INV, "sentinel_addrs", \
      F_ERR, sentinel_new_with(err, 3))                                                         \
    X(sn_addr0_null, "pool_sentinel_new", "sentinel_addrs[0] NULL", FX_NONE, INV,               \
      "sentinel_addrs[0]", F_ERR, sentinel_new_with(err, 4))                                    \
    X(sn_addrs_huge, "pool_sentinel_new", "sentinel_addrs_len SIZE_MAX", FX_NONE, INV,          \
      "sentinel_addrs_len", F_ERR, sentinel_new_with(err, 5))                                   \
    X(sn_poll_min, "pool_sentinel_new", "poll_interval_ms INT64_MIN", FX_NONE, INV,             \
      "poll_interval_ms", F_ERR, sentinel_new_with(err, 6))                                     \
    X(sn_node_addr, "pool_sentinel_new", "node options naming an addr", FX_NONE, INV,           \
      "node_opts.addr", F_ERR, sentinel_new_with(err, 7))                                       \
    X(sn_node_dialer, "pool_sentinel_new", "node options with a dialer", FX_NONE, INV,          \
      "node_opts.dialer", F_ERR, sentinel_new_with(err, 8))                                     \
    X(sn_node_size, "pool_sentinel_new", "node pool_size INT32_MIN", FX_NONE, INV, "pool_size",  \
      F_ERR, sentinel_new_with(err, 9))                                                         \
    X(sn_password, "pool_sentinel_new", "a sentinel_password that is not UTF-8", FX_NONE, INV,  \
      "sentinel_password", F_ERR | F_SECRET, sentinel_new_with(err, 10))                        \
    X(sn_addr_space, "pool_sentinel_new", "a sentinel address with a space before the port",   \
      FX_NONE, INV, "sentinel_addrs[0]: bad port \" 26379\"", F_ERR, sentinel_new_with(err, 11)) \
    X(sn_addr_plus, "pool_sentinel_new", "a sentinel address with port +26379", FX_NONE, INV,   \
      "sentinel_addrs[0]: bad port \"+26379\"", F_ERR, sentinel_new_with(err, 12))              \
    X(sn_addr_pool_null, "pool_sentinel_master_addr", "pool NULL", FX_NONE, INV, "pool", F_ERR, \
      pool_sentinel_master_addr(NULL, (char[64]){0}, 64, err))                                  \
    X(sn_addr_plain, "pool_sentinel_master_addr", "a pool that is not a sentinel pool",         \
      FX_NONE, INV, "not a sentinel pool", F_ERR,                                               \
      pool_sentinel_master_addr(g_pool, (char[64]){0}, 64, err))                                \
    X(sn_addr_sticky, "pool_sentinel_master_addr", "a sticky pool", FX_STICKY, INV,             \
      "not a sentinel pool", F_ERR, pool_sentinel_master_addr(fx->pool, (char[64]){0}, 64, err))

/* ---- after pool_close ---- */
#define CLOSED_CASES(X)                                                                         \
    X(closed_get, "pool_get", "a closed pool", FX_CLOSED, POOL_ERR_CLOSED, "client is closed",  \
      F_ERR, get_on(fx->pool, err))                                                             \
    X(closed_get_min, "pool_get_ex", "a closed pool, timeout INT64_MIN", FX_CLOSED,             \
      POOL_ERR_CLOSED, "client is closed", F_ERR, get_ex_on(fx->pool, INT64_MIN, NULL, err, 0)) \
    X(closed_get_max, "pool_get_ex", "a closed pool, timeout INT64_MAX", FX_CLOSED,             \
      POOL_ERR_CLOSED, "client is closed", F_ERR, get_ex_on(fx->pool, INT64_MAX, NULL, err, 0)) \
    X(closed_try_get, "pool_try_get", "a closed pool", FX_CLOSED, POOL_ERR_CLOSED, NULL, 0,     \
      try_get_on(fx->pool))                                                                     \
    X(closed_new_conn, "pool_new_conn", "a closed pool", FX_CLOSED, POOL_ERR_CLOSED,            \
      "client is closed", F_ERR, new_conn_on(fx->pool, err))                                    \
    X(closed_close, "pool_close", "a closed pool", FX_CLOSED, POOL_ERR_CLOSED, NULL, 0,         \
      pool_close(fx->pool))                                                                     \
    X(closed_sticky, "pool_sticky_new", "over a closed pool: its gets fail", FX_CLOSED,         \
      POOL_ERR_CLOSED, "client is closed", F_ERR, sticky_over_closed(fx->pool, err))            \
    X(closed_stats, "pool_stats", "a closed pool", FX_CLOSED, POOL_OK, NULL, 0,                 \
      stats_sized(fx->pool, sizeof(pool_stats_t)))                                              \
    X(closed_len, "pool_len", "a closed pool: the conn still out", FX_CLOSED, 1, NULL, 0,       \
      pool_len(fx->pool))                                                                       \
    X(closed_idle_len, "pool_idle_len", "a closed pool", FX_CLOSED, 0, NULL, 0,                 \
      pool_idle_len(fx->pool))                                                                  \
    X(closed_notify, "pool_notify_fd", "a closed pool: readable", FX_CLOSED, 1, NULL, 0,        \
      notify_readable(fx->pool))                                                                \
    X(closed_command, "pool_conn_command", "a conn checked out across the close", FX_CLOSED,    \
      POOL_OK, NULL, F_ERR, ping_cmd(fx->conn, err))                                            \
    X(closed_put, "pool_put", "a conn checked out across the close: closed", FX_CLOSED,         \
      POOL_OK, NULL, F_ONCE | F_NOWATCH, give(fx->pool, &fx->conn, GIVE_PUT, NULL))             \
    X(closed_remove, "pool_remove", "a conn checked out across the close", FX_CLOSED, POOL_OK,  \
      NULL, F_ONCE | F_NOWATCH, give(fx->pool, &fx->conn, GIVE_REMOVE, "after close"))          \
    X(closed_close_conn, "pool_close_conn", "a conn checked out across the close", FX_CLOSED,   \
      POOL_OK, NULL, F_ONCE | F_NOWATCH, give(fx->pool, &fx->conn, GIVE_CLOSE, NULL))           \
    X(closed_put_twice, "pool_put", "a conn put twice after the close", FX_CLOSED, INV, NULL,   \
      F_ONCE | F_NOWATCH, give_twice(fx->pool, &fx->conn, GIVE_PUT, GIVE_PUT))                  \
    X(closed_foreign, "pool_put", "another pool's conn to a closed pool", FX_CLOSED, INV, NULL, \
      0, pool_put(fx->pool, g_conn))

/* ---- after pool_free ---- */
#define FREED_CASES(X)                                                                          \
    X(freed_command, "pool_conn_command", "a conn of a freed pool: still usable", FX_FREED,     \
      POOL_OK, NULL, F_ERR, ping_cmd(fx->conn, err))                                            \
    X(freed_fd, "pool_conn_fd", "a conn of a freed pool", FX_FREED, 1, NULL, 0,                 \
      pool_conn_fd(fx->conn) >= 0)                                                              \
    X(freed_id, "pool_conn_id", "a conn of a freed pool", FX_FREED, 1, NULL, 0,                 \
      pool_conn_id(fx->conn) != 0)                                                              \
    X(freed_userdata, "pool_conn_userdata", "a conn of a freed pool", FX_FREED, 1, NULL, 0,     \
      pool_conn_userdata(fx->conn) == &fx->ud)                                                  \
    X(freed_set_userdata, "pool_conn_set_userdata", "a conn of a freed pool: the old is freed", \
      FX_FREED, 1, NULL, F_ONCE, freed_replace_userdata(fx))                                    \
    X(freed_put, "pool_put", "a conn of a freed pool", FX_FREED, POOL_OK, NULL, F_ONCE,         \
      give(fx->pool, &fx->conn, GIVE_PUT, NULL))                                                \
    X(freed_remove, "pool_remove", "a conn of a freed pool", FX_FREED, POOL_OK, NULL, F_ONCE,   \
      give(fx->pool, &fx->conn2, GIVE_REMOVE, "after free"))                                    \
    X(freed_close_conn, "pool_close_conn", "a pool_new_conn conn of a freed pool", FX_FREED,    \
      POOL_OK, NULL, F_ONCE, give(fx->pool, &fx->conn3, GIVE_CLOSE, NULL))                      \
    X(freed_close_pooled, "pool_close_conn", "a pooled conn of a freed pool", FX_FREED, POOL_OK, \
      NULL, F_ONCE, give(fx->pool, &fx->conn, GIVE_CLOSE, NULL))                                \
    X(freed_put_twice, "pool_put", "a conn of a freed pool put twice", FX_FREED, INV, NULL,     \
      F_ONCE, give_twice(fx->pool, &fx->conn, GIVE_PUT, GIVE_PUT))                              \
    X(freed_all, "pool_put", "every conn back: the last one releases the pool", FX_FREED, 0,    \
      NULL, F_ONCE, freed_return_all(fx))                                                       \
    X(freed_reply, "pool_reply_free", "a reply that outlived its conn and the freed pool",      \
      FX_FREED, POOL_OK, NULL, F_ERR | F_ONCE, freed_reply_outlives(fx, err))

/* ---- the runner ------------------------------------------------------------------ */

PURE_CASES(DEFINE_CASE)
CONN_CASES(DEFINE_CASE)
COMMAND_CASES(DEFINE_CASE)
NEW_CASES(DEFINE_CASE)
URL_CASES(DEFINE_CASE)
GET_CASES(DEFINE_CASE)
GIVE_CASES(DEFINE_CASE)
STICKY_CASES(DEFINE_CASE)
MISC_CASES(DEFINE_CASE)
CLUSTER_CASES(DEFINE_CASE)
SENTINEL_CASES(DEFINE_CASE)
CLOSED_CASES(DEFINE_CASE)
FREED_CASES(DEFINE_CASE)

static const hcase_t pure_cases[] = {PURE_CASES(CASE_ROW)};
static const hcase_t conn_cases[] = {CONN_CASES(CASE_ROW)};
static const hcase_t command_cases[] = {COMMAND_CASES(CASE_ROW)};
static const hcase_t new_cases[] = {NEW_CASES(CASE_ROW)};
static const hcase_t url_cases[] = {URL_CASES(CASE_ROW)};
static const hcase_t get_cases[] = {GET_CASES(CASE_ROW)};
static const hcase_t give_cases[] = {GIVE_CASES(CASE_ROW)};
static const hcase_t sticky_cases[] = {STICKY_CASES(CASE_ROW)};
static const hcase_t misc_cases[] = {MISC_CASES(CASE_ROW)};
static const hcase_t cluster_cases[] = {CLUSTER_CASES(CASE_ROW)};
static const hcase_t sentinel_cases[] = {SENTINEL_CASES(CASE_ROW)};
static const hcase_t closed_cases[] = {CLOSED_CASES(CASE_ROW)};
static const hcase_t freed_cases[] = {FREED_CASES(CASE_ROW)};

typedef struct section_def {
    const char *title;
    const hcase_t *cases;
    size_t n;
} section_def_t;

#define SECTION(title, table) {title, table, sizeof table / sizeof table[0]}

static const section_def_t sections[] = {
    SECTION("pure functions: version, status strings, options_init, cancel tokens, reply_free",
            pure_cases),
    SECTION("conn handles: NULL, made-up, stale (double put, put/remove after remove), foreign",
            conn_cases),
    SECTION("pool_conn_command: reply_out, argc 0 / negative / huge, NULL argv entries, argvlen",
            command_cases),
    SECTION("pool_new: NULLs, struct_size, negative, out-of-range and huge option values",
            new_cases),
    SECTION("pool_new_url: malformed, hostile and oversized URLs", url_cases),
    SECTION("gets: NULLs, timeouts INT64_MIN / INT64_MAX, cancel tokens, a full pool", get_cases),
    SECTION("put, remove, close_conn: NULLs, double put / remove, hostile reasons", give_cases),
    SECTION("sticky and single pools: foreign conns, double remove, hostile reasons, close",
            sticky_cases),
    SECTION("pool_leaks, pool_notify_fd, pool_stats, pool_len, pool_close, pool_free", misc_cases),
    SECTION("cluster handles: NULLs, bad options and URLs, foreign conns, no cluster to ask",
            cluster_cases),
    SECTION("sentinel pools: NULLs, bad options, pools that are not sentinel pools",
            sentinel_cases),
    SECTION("after pool_close: gets fail, conns still out come back", closed_cases),
    SECTION("after pool_free: only its own conns come back, and they do", freed_cases),
};

/* Whether `s` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != 0) {
        unsigned c = *p;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            c = (c << 6) | (p[i] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* The err_out contract for a row's first round. */
static void check_err_out(const hcase_t *c, const pool_error_t *err)
{
    if (c->want == POOL_OK) {
        if (!CHECK_EQ(err->code, ERR_UNTOUCHED))
            fprintf(stderr, "  (err_out written on success: \"%s\")\n", err->message);
        return;
    }
    if (!CHECK_ERR_FILLED(err, (pool_status_t)c->want))
        return;
    if (c->msg != NULL)
        CHECK_CONTAINS(err->message, c->msg);
    if (!CHECK(utf8_valid(err->message)))
        fprintf(stderr, "  (message is not UTF-8: \"%s\")\n", err->message);
    if ((c->flags & F_SECRET) && !CHECK(!contains_ci(err->message, SECRET)))
        fprintf(stderr, "  (message shows the password: \"%s\")\n", err->message);
}

/* The shared pools' long-lived conns are still checked out, with their userdata. */
static void check_shared_conns(void)
{
    CHECK_EQ(pool_conn_id(g_conn), g_conn_id);
    CHECK(pool_conn_userdata(g_conn) == &g_ud);
    CHECK_EQ(g_ud.freed, 0);
    CHECK_EQ(pool_conn_id(g_other_conn), g_other_conn_id);
}

/* Gives back *c if a row left it checked out. */
static void give_back(pool_t *pool, pool_conn_t **c)
{
    if (*c != NULL && pool_conn_id(*c) != 0)
        CHECK_STATUS(pool_put(pool, *c), POOL_OK, NULL);
    *c = NULL;
}

static void fx_teardown(fx_t *fx)
{
    switch (fx->kind) {
    case FX_NONE:
    case FX_DEAD_PUT:
    case FX_DEAD_REMOVED:
    case FX_DEAD_CLOSED:
        break;
    case FX_FULL:
    case FX_LEAKY:
    case FX_SINGLE:
    case FX_STICKY:
        give_back(fx->pool, &fx->conn);
        if (fx->kind == FX_STICKY) /* after a remove: the next get borrows a fresh conn */
            CHECK_STATUS(pool_sticky_reset(fx->pool), fx->closes ? POOL_ERR_CLOSED : POOL_OK,
                         NULL);
        check_get_put_works(fx->pool, fx->closes ? POOL_ERR_CLOSED : POOL_OK);
        pool_free(fx->pool);
        break;
    case FX_CLOSED:
    case FX_STICKY_CLOSED:
        give_back(fx->pool, &fx->conn);
        check_get_put_works(fx->pool, POOL_ERR_CLOSED);
        CHECK_EQ(pool_len(fx->pool), 0); /* the conn out across the close came back */
        pool_free(fx->pool);
        break;
    case FX_FREED:
        give_back(fx->pool, &fx->conn);
        give_back(fx->pool, &fx->conn2);
        give_back(fx->pool, &fx->conn3);
        CHECK_EQ(fx->ud.freed, 1); /* exactly once, however conn came back */
        CHECK_EQ(fx->ud2.freed, fx->ud2_set);
        break;
    }
}

static int64_t g_cases;

/* Functions whose result is not a pool_status_t (rows of helpers returning 0/1 count too). */
static int returns_status(const hcase_t *c)
{
    static const char *const values[] = {
        "pool_version", "pool_status_str", "pool_options_init", "pool_cancel_new",
        "pool_cancel_fire", "pool_cancel_free", "pool_reply_free", "pool_conn_fd",
        "pool_conn_id", "pool_conn_set_userdata", "pool_conn_userdata", "pool_notify_fd",
        "pool_len", "pool_idle_len", "pool_free",
    };
    if (c->flags & F_ERR)
        return 1;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        if (strcmp(c->fn, values[i]) == 0)
            return 0;
    return c->want != 0 || strstr(c->code, "(") == c->code + strlen(c->fn);
}

/* REDISPOOL_HOSTILE_VERBOSE=1: every row and the message it got, for reading them all. */
static int verbose(void)
{
    const char *v = getenv("REDISPOOL_HOSTILE_VERBOSE");
    return v != NULL && v[0] == '1';
}

static void run_case(const hcase_t *c)
{
    int failed_before = check_failures;
    fx_t fx;
    fx_setup(c->fixture, &fx);
    if (c->flags & F_CLOSES)
        fx.closes = 1;
    const pool_snapshot_t main_before = snapshot_of(g_pool);
    const pool_snapshot_t other_before = snapshot_of(g_other);
    const int watch = fx.watch && !(c->flags & F_NOWATCH);
    pool_snapshot_t fx_before;
    memset(&fx_before, 0, sizeof fx_before);
    if (watch)
        fx_before = snapshot_of(fx.pool);

    const int rounds = (c->flags & F_ONCE) ? 1 : 2;
    for (int round = 0; round < rounds; round++) {
        pool_error_t err;
        err_reset(&err);
        int64_t got = c->call(&fx, round == 0 ? &err : NULL);
        check_total++;
        if (got != c->want) {
            const int st = returns_status(c);
            check_fail(__FILE__, __LINE__,
                       "%s (err_out %s): got %" PRId64 "%s%s%s, want %" PRId64 "%s%s%s%s%s", c->fn,
                       round == 0 ? "given" : "NULL", got, st ? " (" : "",
                       st ? pool_status_str((pool_status_t)got) : "", st ? ")" : "", c->want,
                       st ? " (" : "", st ? pool_status_str((pool_status_t)c->want) : "",
                       st ? ")" : "", round == 0 && (c->flags & F_ERR) ? "; message: " : "",
                       round == 0 && (c->flags & F_ERR) ? err.message : "");
        }
        if (round == 0 && verbose())
            printf("  %-24s %-60s -> %" PRId64 "%s%s\n", c->fn, c->what, got,
                   (c->flags & F_ERR) && err.code != ERR_UNTOUCHED ? ": " : "",
                   (c->flags & F_ERR) && err.code != ERR_UNTOUCHED ? err.message : "");
        if (round == 0 && (c->flags & F_ERR))
            check_err_out(c, &err);
    }

    /* Nothing lost: the pools involved are as they were, their conns still out. */
    CHECK_UNCHANGED(g_pool, main_before);
    CHECK_UNCHANGED(g_other, other_before);
    if (watch) {
        if (c->flags & F_COUNTS)
            CHECK_NOTHING_LOST(fx.pool, fx_before);
        else
            CHECK_UNCHANGED(fx.pool, fx_before);
    }
    check_shared_conns();
    fx_teardown(&fx);
    /* ... and a normal get and put still work on the shared pools. */
    check_get_put_works(g_pool, POOL_OK);
    check_get_put_works(g_other, POOL_OK);
    g_cases++;
    if (check_failures != failed_before)
        fprintf(stderr, "  (in case %s: %s)\n  (call: %s)\n", c->fn, c->what, c->code);
}

/* The distinct functions the rows exercise, for the "covers:" line. */
static const char *covered[256];
static size_t n_covered;

static void note_covered(const char *fn)
{
    for (size_t i = 0; i < n_covered; i++)
        if (strcmp(covered[i], fn) == 0)
            return;
    if (n_covered < sizeof covered / sizeof covered[0])
        covered[n_covered++] = fn;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A string of `len` copies of `c` (len bytes plus a NUL). */
static char *filled(size_t len, char c)
{
    char *s = malloc(len + 1);
    if (s == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(s, c, len);
    s[len] = '\0';
    return s;
}

/* A valid URL of exactly `len` bytes: the server's address and a long client_name. */
static char *url_of_length(size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head, "redis://%s/0?pool_size=2&dialer_retries=1&client_name=",
                     redis.addr);
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, "address too long\n");
        exit(2);
    }
    char *s = filled(len, 'n');
    memcpy(s, head, (size_t)n);
    return s;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = redis_server_from_args(&redis, argc, argv);
    if (rc != 0)
        return rc;

    g_long_reason = filled(1 << 20, 'r');
    g_url_8k = url_of_length(POOL_MAX_URL_LEN);
    g_url_8k1 = url_of_length(POOL_MAX_URL_LEN + 1);
    g_url_1m = url_of_length(1 << 20);
    g_addr_1m = filled(1 << 20, 'a');
    memcpy(g_addr_1m + (1 << 20) - 5, ":6379", 5);
    g_addr_300 = filled(305, 'a');
    memcpy(g_addr_300 + 300, ":6379", 5);
    g_multibyte_reason = malloc(601);
    if (g_multibyte_reason == NULL)
        return 1;
    for (int i = 0; i < 300; i++)
        memcpy(g_multibyte_reason + 2 * i, "\xc3\xa9", 2);
    g_multibyte_reason[600] = '\0';
    snprintf(g_url_ok, sizeof g_url_ok, "redis://%s/0?pool_size=2&dialer_retries=1", redis.addr);

    pool_options_t o = base_options(4);
    g_pool = new_pool_or_exit(&o);
    g_other = new_pool_or_exit(&o);
    {
        char cluster_url_buf[300];
        pool_error_t cerr;
        snprintf(cluster_url_buf, sizeof cluster_url_buf, "redis://%s?dialer_retries=1",
                 redis.addr);
        if (pool_cluster_new_url(cluster_url_buf, &g_cluster, &cerr) != POOL_OK) {
            fprintf(stderr, "pool_cluster_new_url: %s\n", cerr.message);
            return 2;
        }
    }
    g_conn = must_get(g_pool);
    g_conn_id = pool_conn_id(g_conn);
    pool_conn_set_userdata(g_conn, &g_ud, count_free);
    g_other_conn = must_get(g_other);
    g_other_conn_id = pool_conn_id(g_other_conn);
    {
        pool_error_t serr;
        if (pool_subscriber_new(g_other, &g_sub, &serr) != POOL_OK) {
            fprintf(stderr, "pool_subscriber_new: %s\n", serr.message);
            return 2;
        }
    }
    /* The made-up handle next to g_conn must not be one of ours. */
    if (FLIPPED_CONN == g_other_conn) {
        fprintf(stderr, "the flipped handle is g_other_conn: the test needs another value\n");
        return 2;
    }

    for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
        section(sections[s].title);
        for (size_t i = 0; i < sections[s].n; i++) {
            note_covered(sections[s].cases[i].fn);
            run_case(&sections[s].cases[i]);
        }
        printf("  %zu cases\n", sections[s].n);
    }

    /* The long-lived conns still work and go back; their userdata is freed on close. */
    CHECK_EQ(ping_cmd(g_conn, NULL), POOL_OK);
    CHECK_EQ(ping_cmd(g_other_conn, NULL), POOL_OK);
    CHECK_STATUS(pool_put(g_pool, g_conn), POOL_OK, NULL);
    CHECK_STATUS(pool_put(g_other, g_other_conn), POOL_OK, NULL);
    CHECK_EQ(g_ud.freed, 0);
    CHECK_STATUS(pool_subscriber_ping(g_sub, scaled(5000), NULL), POOL_OK, NULL);
    pool_subscriber_free(g_sub);
    pool_cluster_free(g_cluster);
    pool_free(g_pool);
    pool_free(g_other);
    CHECK_EQ(g_ud.freed, 1);

    free(g_long_reason);
    free(g_url_8k);
    free(g_url_8k1);
    free(g_url_1m);
    free(g_addr_1m);
    free(g_addr_300);
    free(g_multibyte_reason);

    qsort(covered, n_covered, sizeof covered[0], cmp_str);
    printf("covers:");
    for (size_t i = 0; i < n_covered; i++)
        printf(" %s", covered[i]);
    printf("\n");
    printf("hostile: %" PRId64 " cases, %d checks\n", g_cases, check_total);
    return check_exit_status();
}
