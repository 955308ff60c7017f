/*
 * abi_sticky.c - sticky pools (pool_sticky_new, pool_sticky_reset) and single-conn
 * pools (pool_single_new) through the C ABI, against a real redis-server.
 *
 *   ./abi_sticky HOST:PORT
 *
 * Checks, through the public header only, talking RESP over pool_conn_fd():
 *  - a sticky pool borrows one conn from its parent on the first get and hands
 *    out that same conn (same handle id, same Redis CLIENT ID) ever after;
 *  - MULTI/EXEC sessions from two threads on one sticky pool never share the
 *    conn at once, while a third thread hammers the parent;
 *  - a held sticky conn makes gets wait: timeout, cancel token, try_get;
 *  - pool_remove -> POOL_ERR_BAD_CONN until pool_sticky_reset, which removes
 *    the conn from the parent and lets the next get borrow a new one;
 *  - close/free give the conn back to the parent (put when healthy, remove
 *    when bad, later when checked out), and sticky-over-sticky handles share;
 *  - a single-conn pool wraps the conn it consumes, and gives it back on close;
 *  - misuse (foreign conns, double put, wrong pool kinds, NULLs) changes nothing,
 *    and a child pool may outlive its parent's pool_free.
 *
 * Prints one line per failed check (file:line) on stderr; exits 0 only if every
 * check passed. Run by tests/c_abi.rs (also under valgrind).
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "check.h"

static redis_server_t redis; /* argv[1] */

/* ---- pools ----------------------------------------------------------------- */

/* A connection pool on the test's Redis; `pool_timeout_ms` is already scaled. */
static pool_t *new_pool(int32_t pool_size, int64_t pool_timeout_ms)
{
    pool_options_t o = redis_pool_options(&redis, pool_size, pool_timeout_ms);
    return new_pool_or_exit(&o);
}

/* The usual parent: nothing here should wait long; a leaked turn fails a check. */
static pool_t *new_parent(void)
{
    return new_pool(4, scaled(2000));
}

static pool_t *new_sticky(pool_t *parent)
{
    pool_t *sticky = NULL;
    if (!CHECK_STATUS(pool_sticky_new(parent, &sticky), POOL_OK, NULL) || !CHECK(sticky != NULL)) {
        fprintf(stderr, "cannot create a sticky pool: giving up\n");
        check_exit_status();
        exit(1);
    }
    return sticky;
}

/*
 * A get that must fail with `want` (pool_get for GET_PLAIN, else pool_get_ex with that
 * timeout): no conn, err_out filled. The error, for further checks of its message.
 */
#define CHECK_GET_FAILS(pool, timeout_ms, want) \
    check_get_fails((pool), (timeout_ms), (want), __FILE__, __LINE__)

static pool_error_t check_get_fails(pool_t *pool, int64_t timeout_ms, pool_status_t want,
                                    const char *file, int line)
{
    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    pool_status_t rc = timeout_ms == GET_PLAIN ? pool_get(pool, &conn, &err)
                                                : pool_get_ex(pool, timeout_ms, NULL, &conn, &err);
    check_status(rc, want, &err, file, line, "get");
    check_total++;
    if (conn != NULL) {
        check_fail(file, line, "a failed get handed out a conn");
        pool_put(pool, conn);
    }
    check_err_filled(&err, want, file, line);
    return err;
}

#define CHECK_MESSAGE(err, want) check_message(&(err), (want), __FILE__, __LINE__)

static int check_message(const pool_error_t *err, const char *want, const char *file, int line)
{
    check_total++;
    if (strcmp(err->message, want) != 0) {
        check_fail(file, line, "message \"%s\", want \"%s\"", err->message, want);
        return 0;
    }
    return 1;
}

/* ---- 1. sticky basics ---------------------------------------------------------- */

/* One of several threads making the very first gets on a sticky pool at once. */
typedef struct first_getter {
    pthread_t thread;
    pool_t *sticky;
    pthread_barrier_t *start;
    pool_status_t rc;
    uint64_t id;
    long long client;
    pool_error_t err;
} first_getter_t;

static void *first_getter_main(void *arg)
{
    first_getter_t *f = arg;
    pool_conn_t *c = NULL;
    err_reset(&f->err);
    pthread_barrier_wait(f->start);
    f->rc = pool_get_ex(f->sticky, scaled(10000), NULL, &c, &f->err);
    if (f->rc == POOL_OK) {
        f->id = pool_conn_id(c);
        f->client = client_id_of(c);
        f->rc = pool_put(f->sticky, c);
    }
    return NULL;
}

#define FIRST_GETTERS 8

/* Concurrent first gets borrow one conn between them, not one each. */
static void check_concurrent_first_gets(void)
{
    pool_t *parent = new_parent();
    pool_t *sticky = new_sticky(parent);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, FIRST_GETTERS);
    first_getter_t f[FIRST_GETTERS];
    memset(f, 0, sizeof f);
    for (int i = 0; i < FIRST_GETTERS; i++) {
        f[i].sticky = sticky;
        f[i].start = &start;
        start_thread(&f[i].thread, first_getter_main, &f[i]);
    }
    for (int i = 0; i < FIRST_GETTERS; i++)
        pthread_join(f[i].thread, NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < FIRST_GETTERS; i++) {
        CHECK_STATUS(f[i].rc, POOL_OK, &f[i].err);
        CHECK_EQ(f[i].id, f[0].id);
        CHECK_EQ(f[i].client, f[0].client);
    }
    CHECK(f[0].client > 0);
    CHECK_EQ(pool_len(parent), 1);
    pool_stats_t ps = stats_of(parent);
    CHECK_EQ(ps.misses + ps.hits, 1);
    CHECK_EQ(ps.dials, 1);
    CHECK_EQ(pool_len(sticky), 1);
    CHECK_EQ(pool_idle_len(sticky), 1);
    pool_free(sticky);
    CHECK_EQ(pool_idle_len(parent), 1);
    pool_free(parent);
}

/* pool_new_conn / pool_close_conn on a sticky pool go to the parent. */
static void check_new_conn_passes_to_parent(void)
{
    pool_t *parent = new_parent();
    pool_t *sticky = new_sticky(parent);
    pool_conn_t *extra = NULL;
    pool_error_t err;
    err_reset(&err);
    if (CHECK_STATUS(pool_new_conn(sticky, &extra, &err), POOL_OK, &err) && CHECK(extra != NULL)) {
        CHECK(ping_ok(extra));
        CHECK_EQ(pool_len(parent), 1);
        CHECK_EQ(pool_len(sticky), 0); /* not the sticky conn */
        CHECK_STATUS(pool_close_conn(sticky, extra), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 0);
    }
    /* The sticky conn itself given to pool_close_conn: a remove, so gets fail as bad. */
    pool_conn_t *c = get_conn(sticky);
    if (c != NULL) {
        CHECK_EQ(pool_len(parent), 1);
        CHECK_STATUS(pool_close_conn(sticky, c), POOL_OK, NULL);
        CHECK_GET_FAILS(sticky, 0, POOL_ERR_BAD_CONN);
        CHECK_STATUS(pool_sticky_reset(sticky), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 0);
    }
    pool_free(sticky);
    pool_free(parent);
}

static void test_sticky_basics(void)
{
    section("sticky: the first get borrows from the parent, later gets return that conn");
    pool_t *parent = new_parent();
    pool_t *sticky = new_sticky(parent);
    CHECK_EQ(pool_len(sticky), 0);
    CHECK_EQ(pool_idle_len(sticky), 0);
    CHECK_EQ(pool_len(parent), 0);
    CHECK_EQ(stats_of(parent).misses, 0);

    pool_conn_t *c = get_conn(sticky);
    if (c == NULL)
        goto out;
    const uint64_t id = pool_conn_id(c);
    const long long client = client_id_of(c);
    CHECK_NE(id, 0);
    CHECK(client > 0);
    pool_stats_t ps = stats_of(parent);
    CHECK_EQ(ps.misses, 1);
    CHECK_EQ(ps.hits, 0);
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 0);
    CHECK_EQ(pool_len(sticky), 1);
    CHECK_EQ(pool_idle_len(sticky), 0);
    CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
    CHECK_EQ(pool_len(sticky), 1);
    CHECK_EQ(pool_idle_len(sticky), 1);
    /* Still checked out from the parent while the sticky pool holds it. */
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 0);

    pool_snapshot_t before = snapshot_of(parent);
    for (int i = 0; i < 5; i++) {
        c = get_conn(sticky);
        if (c == NULL)
            break;
        CHECK_EQ(pool_conn_id(c), id);
        CHECK_EQ(client_id_of(c), client);
        CHECK_EQ(pool_len(sticky), 1);
        CHECK_EQ(pool_idle_len(sticky), 0);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
        CHECK_EQ(pool_idle_len(sticky), 1);
    }
    /* pool_try_get and pool_get_ex without waiting have it at once while it is idle. */
    c = NULL;
    if (CHECK_STATUS(pool_try_get(sticky, &c), POOL_OK, NULL) && CHECK(c != NULL)) {
        CHECK_EQ(pool_conn_id(c), id);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
    }
    c = NULL;
    pool_error_t err;
    err_reset(&err);
    if (CHECK_STATUS(pool_get_ex(sticky, 0, NULL, &c, &err), POOL_OK, &err) && CHECK(c != NULL)) {
        CHECK_EQ(pool_conn_id(c), id);
        CHECK_EQ(client_id_of(c), client);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
    }
    /* None of those gets went to the parent. */
    CHECK_UNCHANGED(parent, before);
out:
    pool_free(sticky);
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 1);
    pool_free(parent);

    check_concurrent_first_gets();
    check_new_conn_passes_to_parent();
}

/* ---- 2. MULTI/EXEC from two threads ------------------------------------------ */

#define TX_ROUNDS 200

/* The key every INCR goes to; per process, so runs sharing a server do not mix. */
static char tx_counter[64];

typedef struct tx_worker {
    pthread_t thread;
    pool_t *pool;
    long long sticky_client; /* the CLIENT ID every sticky get must show (parent: must not) */
    atomic_int *stop;        /* parent worker: stop when set (after a few rounds) */
    int rounds;
    int failures;
    char first_failure[256];
} tx_worker_t;

/* Threads holding the sticky conn right now: never more than one. */
static atomic_int tx_inside;

static void tx_fail(tx_worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tx_fail(tx_worker_t *w, const char *fmt, ...)
{
    if (w->failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->first_failure, sizeof w->first_failure, fmt, ap);
        va_end(ap);
    }
}

/* Expects a status reply `want` (e.g. "OK", "QUEUED"). */
static int tx_expect_status(tx_worker_t *w, resp_reply_t *r, const char *cmd, const char *want)
{
    char d[256];
    int ok = r != NULL && r->type == '+' && strcmp(r->str, want) == 0;
    if (!ok)
        tx_fail(w, "round %d: %s answered %s, want +%s", w->rounds, cmd, resp_str(r, d, sizeof d),
                want);
    resp_free(r);
    return ok;
}

/* One session on the sticky conn: CLIENT ID, MULTI, INCR, INCR, EXEC. */
static int tx_session(tx_worker_t *w, int fd)
{
    char d[256];
    resp_reply_t *r = RESP_COMMAND(fd, "CLIENT", "ID");
    if (r == NULL || r->type != ':' || r->integer != w->sticky_client) {
        tx_fail(w, "round %d: CLIENT ID %s, want the sticky conn's %lld", w->rounds,
                resp_str(r, d, sizeof d), w->sticky_client);
        resp_free(r);
        return 0;
    }
    resp_free(r);
    if (!tx_expect_status(w, RESP_COMMAND(fd, "MULTI"), "MULTI", "OK") ||
        !tx_expect_status(w, RESP_COMMAND(fd, "INCR", tx_counter), "INCR", "QUEUED") ||
        !tx_expect_status(w, RESP_COMMAND(fd, "INCR", tx_counter), "INCR", "QUEUED"))
        return 0;
    r = RESP_COMMAND(fd, "EXEC");
    int ok = r != NULL && r->type == '*' && !r->nil && r->elements == 2 &&
             r->element[0]->type == ':' && r->element[1]->type == ':';
    if (!ok) {
        tx_fail(w, "round %d: EXEC answered %s, want two integers", w->rounds,
                resp_str(r, d, sizeof d));
    } else if (r->element[0]->integer + 1 != r->element[1]->integer) {
        tx_fail(w, "round %d: EXEC gave %" PRId64 " and %" PRId64 ", not consecutive", w->rounds,
                r->element[0]->integer, r->element[1]->integer);
        ok = 0;
    }
    resp_free(r);
    return ok;
}

static void *tx_sticky_main(void *arg)
{
    tx_worker_t *w = arg;
    while (w->rounds < TX_ROUNDS) {
        pool_conn_t *c = NULL;
        pool_error_t err;
        err_reset(&err);
        pool_status_t rc = pool_get(w->pool, &c, &err);
        if (rc != POOL_OK) {
            tx_fail(w, "round %d: pool_get: %d (%s) %s", w->rounds, (int)rc, pool_status_str(rc),
                    err.message);
            break;
        }
        if (atomic_fetch_add(&tx_inside, 1) != 0)
            tx_fail(w, "round %d: another thread holds the sticky conn too", w->rounds);
        int ok = tx_session(w, pool_conn_fd(c));
        atomic_fetch_sub(&tx_inside, 1);
        if (!ok) {
            /* The conn's protocol state is unknown now: do not let the other thread use it. */
            pool_remove(w->pool, c, "abi_sticky: session failed");
            break;
        }
        rc = pool_put(w->pool, c);
        if (rc != POOL_OK) {
            tx_fail(w, "round %d: pool_put: %d (%s)", w->rounds, (int)rc, pool_status_str(rc));
            break;
        }
        w->rounds++;
    }
    return NULL;
}

/* Plain INCRs through the parent, on its other conns, until told to stop. */
static void *tx_parent_main(void *arg)
{
    tx_worker_t *w = arg;
    char d[256];
    while ((!atomic_load(w->stop) || w->rounds < 10) && w->rounds < 1000000) {
        pool_conn_t *c = NULL;
        pool_error_t err;
        err_reset(&err);
        pool_status_t rc = pool_get(w->pool, &c, &err);
        if (rc != POOL_OK) {
            tx_fail(w, "round %d: parent pool_get: %d (%s) %s", w->rounds, (int)rc,
                    pool_status_str(rc), err.message);
            break;
        }
        int fd = pool_conn_fd(c);
        resp_reply_t *r = RESP_COMMAND(fd, "CLIENT", "ID");
        int ok = r != NULL && r->type == ':' && r->integer != w->sticky_client;
        if (!ok)
            tx_fail(w, "round %d: the parent handed out CLIENT ID %s (the sticky conn is %lld)",
                    w->rounds, resp_str(r, d, sizeof d), w->sticky_client);
        resp_free(r);
        if (ok) {
            r = RESP_COMMAND(fd, "INCR", tx_counter);
            ok = r != NULL && r->type == ':';
            if (!ok)
                tx_fail(w, "round %d: INCR answered %s", w->rounds, resp_str(r, d, sizeof d));
            resp_free(r);
        }
        if (!ok) {
            pool_remove(w->pool, c, "abi_sticky: command failed");
            break;
        }
        pool_put(w->pool, c);
        w->rounds++;
    }
    return NULL;
}

static void check_worker(const tx_worker_t *w, const char *name)
{
    if (!CHECK_EQ(w->failures, 0))
        fprintf(stderr, "  (%s: %d failures, first: %s)\n", name, w->failures, w->first_failure);
}

static void test_sticky_transactions(void)
{
    section("sticky: MULTI/EXEC from two threads never interleave, parent busy meanwhile");
    pool_t *parent = new_pool(4, scaled(10000));
    pool_t *sticky = new_sticky(parent);
    pool_conn_t *c = get_conn(sticky);
    if (c == NULL) {
        pool_free(sticky);
        pool_free(parent);
        return;
    }
    const uint64_t id = pool_conn_id(c);
    const long long client = client_id_of(c);
    CHECK(client > 0);
    snprintf(tx_counter, sizeof tx_counter, "abi_sticky:counter:%ld", (long)getpid());
    resp_reply_t *r = RESP_COMMAND(pool_conn_fd(c), "DEL", tx_counter);
    CHECK(r != NULL && r->type == ':');
    resp_free(r);
    CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);

    atomic_int stop;
    atomic_init(&stop, 0);
    atomic_init(&tx_inside, 0);
    tx_worker_t workers[2], pw;
    memset(workers, 0, sizeof workers);
    memset(&pw, 0, sizeof pw);
    for (int i = 0; i < 2; i++) {
        workers[i].pool = sticky;
        workers[i].sticky_client = client;
        start_thread(&workers[i].thread, tx_sticky_main, &workers[i]);
    }
    pw.pool = parent;
    pw.sticky_client = client;
    pw.stop = &stop;
    start_thread(&pw.thread, tx_parent_main, &pw);
    for (int i = 0; i < 2; i++)
        pthread_join(workers[i].thread, NULL);
    atomic_store(&stop, 1);
    pthread_join(pw.thread, NULL);

    check_worker(&workers[0], "sticky thread 1");
    check_worker(&workers[1], "sticky thread 2");
    check_worker(&pw, "parent thread");
    CHECK_EQ(workers[0].rounds, TX_ROUNDS);
    CHECK_EQ(workers[1].rounds, TX_ROUNDS);
    CHECK(pw.rounds >= 10);
    CHECK_EQ(atomic_load(&tx_inside), 0);

    /* Every INCR counted once: 2 per session, plus the parent thread's. */
    c = get_conn(sticky);
    if (c != NULL) {
        CHECK_EQ(pool_conn_id(c), id);
        CHECK_EQ(client_id_of(c), client);
        r = RESP_COMMAND(pool_conn_fd(c), "GET", tx_counter);
        if (CHECK(r != NULL && r->type == '$' && !r->nil))
            CHECK_EQ(strtoll(r->str, NULL, 10),
                     2 * (workers[0].rounds + workers[1].rounds) + pw.rounds);
        resp_free(r);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
    }
    /* The sticky conn plus the parent thread's one. */
    CHECK_EQ(pool_len(parent), 2);
    CHECK_EQ(pool_idle_len(parent), 1);
    pool_free(sticky);
    CHECK_EQ(pool_idle_len(parent), 2);
    pool_free(parent);
}

/* ---- 3. waiting for a held sticky conn ------------------------------------------- */

/* The first get of a sticky pool borrows under the get's own rules: try_get never waits
   (its miss starts a dial in the parent's background), and a wait for the parent obeys
   pool_get_ex's timeout and cancel token. */
static void check_borrow_rules(void)
{
    pool_t *parent = new_pool(1, scaled(2000));
    pool_t *sticky = new_sticky(parent);
    pool_conn_t *c = NULL;

    /* Nothing idle in the parent: try_get would block at once. The miss started one dial
       in the parent's background, whose conn lands in the parent's idle list. */
    CHECK_STATUS(pool_try_get(sticky, &c), POOL_ERR_WOULD_BLOCK, NULL);
    CHECK(c == NULL);
    CHECK_EQ(pool_len(sticky), 0);
    CHECK_EVENTUALLY(pool_idle_len(parent) == 1, scaled(5000));
    CHECK_EQ(pool_len(sticky), 0);

    /* The parent's only turn taken: the borrow waits, and times out on the get's timeout. */
    pool_conn_t *held = get_conn(parent);
    if (held == NULL)
        goto out;
    const uint64_t held_id = pool_conn_id(held);
    int64_t t0 = now_ms();
    CHECK_GET_FAILS(sticky, 100, POOL_ERR_TIMEOUT);
    int64_t elapsed = now_ms() - t0;
    if (!CHECK(elapsed >= 100) || !CHECK(elapsed < 100 + scaled(1000)))
        fprintf(stderr, "  (timed out after %" PRId64 " ms)\n", elapsed);
    CHECK_EQ(pool_len(sticky), 0);

    /* ... and ends when its token fires. */
    pool_cancel_t *cancel = pool_cancel_new();
    if (CHECK(cancel != NULL)) {
        getter_t g;
        getter_start(&g, sticky, scaled(10000), cancel);
        CHECK_EVENTUALLY(waiting_of(parent) == 1, 5000);
        int64_t fired = now_ms();
        pool_cancel_fire(cancel);
        getter_join(&g);
        CHECK_STATUS(g.rc, POOL_ERR_CANCELED, &g.err);
        CHECK(g.conn == NULL);
        CHECK(g.done_ms - fired < scaled(500));
        CHECK_EQ(waiting_of(parent), 0);
        pool_cancel_free(cancel);
    }
    CHECK_EQ(pool_len(sticky), 0);

    /* Once the parent has an idle conn, try_get borrows it without waiting. */
    CHECK_STATUS(pool_put(parent, held), POOL_OK, NULL);
    c = NULL;
    if (CHECK_STATUS(pool_try_get(sticky, &c), POOL_OK, NULL) && CHECK(c != NULL)) {
        CHECK_EQ(pool_conn_id(c), held_id);
        CHECK(ping_ok(c));
        CHECK_EQ(pool_len(sticky), 1);
        CHECK_EQ(pool_idle_len(parent), 0);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
    }
out:
    pool_free(sticky);
    CHECK_EQ(pool_idle_len(parent), pool_len(parent));
    pool_free(parent);
}

static void test_sticky_waits(void)
{
    section("sticky: while the conn is held gets time out, cancel, would block");
    pool_t *parent = new_parent();
    pool_t *sticky = new_sticky(parent);
    pool_conn_t *c = get_conn(sticky);
    if (c == NULL)
        goto out;
    const uint64_t id = pool_conn_id(c);

    /* A timeout, after the whole timeout, saying why. */
    int64_t t0 = now_ms();
    pool_error_t err = CHECK_GET_FAILS(sticky, 100, POOL_ERR_TIMEOUT);
    int64_t elapsed = now_ms() - t0;
    CHECK_CONTAINS(err.message, "redis: connection pool timeout");
    if (!CHECK(elapsed >= 100) || !CHECK(elapsed < 100 + scaled(1000)))
        fprintf(stderr, "  (timed out after %" PRId64 " ms)\n", elapsed);
    /* Timeout 0: no wait at all. */
    t0 = now_ms();
    CHECK_GET_FAILS(sticky, 0, POOL_ERR_TIMEOUT);
    CHECK(now_ms() - t0 < scaled(500));
    pool_conn_t *c2 = NULL;
    CHECK_STATUS(pool_try_get(sticky, &c2), POOL_ERR_WOULD_BLOCK, NULL);
    CHECK(c2 == NULL);

    /* A cancel token fired from another thread ends a waiting get promptly. */
    pool_cancel_t *cancel = pool_cancel_new();
    if (CHECK(cancel != NULL)) {
        getter_t g;
        getter_start(&g, sticky, scaled(10000), cancel);
        CHECK_EVENTUALLY(waiting_of(sticky) == 1, 5000);
        CHECK(!getter_done(&g));
        int64_t fired = now_ms();
        pool_cancel_fire(cancel);
        getter_join(&g);
        CHECK_STATUS(g.rc, POOL_ERR_CANCELED, &g.err);
        CHECK_ERR_FILLED(&g.err, POOL_ERR_CANCELED);
        if (!CHECK(g.conn == NULL))
            pool_put(sticky, g.conn);
        if (!CHECK(g.done_ms - fired < scaled(500)))
            fprintf(stderr, "  (returned %" PRId64 " ms after the fire)\n", g.done_ms - fired);
        CHECK_EQ(waiting_of(sticky), 0);
        pool_cancel_free(cancel);
    }

    /* A waiter gets the conn as soon as the holder puts it. */
    getter_t g;
    getter_start(&g, sticky, scaled(10000), NULL);
    CHECK_EVENTUALLY(waiting_of(sticky) == 1, 5000);
    CHECK(!getter_done(&g));
    int64_t t_put = now_ms();
    CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
    getter_join(&g);
    c = NULL;
    if (CHECK_STATUS(g.rc, POOL_OK, &g.err) && CHECK(g.conn != NULL)) {
        CHECK_EQ(pool_conn_id(g.conn), id);
        CHECK(ping_ok(g.conn));
        CHECK(g.done_ms - t_put < scaled(1000));
        CHECK_STATUS(pool_put(sticky, g.conn), POOL_OK, NULL);
    }

    /* Nothing left behind: the conn is there at once, and the parent never saw a second get. */
    c = NULL;
    err_reset(&err);
    if (CHECK_STATUS(pool_get_ex(sticky, 0, NULL, &c, &err), POOL_OK, &err)) {
        CHECK_EQ(pool_conn_id(c), id);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
    }
    CHECK_EQ(waiting_of(sticky), 0);
    pool_stats_t ps = stats_of(parent);
    CHECK_EQ(ps.misses + ps.hits, 1);
    CHECK_EQ(ps.timeouts, 0);
    CHECK_EQ(pool_len(parent), 1);
out:
    pool_free(sticky);
    pool_free(parent);

    check_borrow_rules();
}

/* ---- 4. bad conn and reset --------------------------------------------------------- */

static void test_sticky_bad_conn(void)
{
    section("sticky: pool_remove -> POOL_ERR_BAD_CONN until pool_sticky_reset");
    static const char want[] = "redis: Conn is in a bad state: read timeout";
    int admin = redis_connect(&redis);
    if (!CHECK(admin >= 0))
        return;
    pool_t *parent = new_parent();
    pool_t *sticky = new_sticky(parent);
    pool_conn_t *c = get_conn(sticky);
    if (c == NULL)
        goto out;
    const uint64_t id1 = pool_conn_id(c);
    const long long client1 = client_id_of(c);
    CHECK(client1 > 0);
    const pool_stats_t before = stats_of(parent);

    /* A get waiting behind the holder is told at once. */
    getter_t g;
    getter_start(&g, sticky, scaled(10000), NULL);
    CHECK_EVENTUALLY(waiting_of(sticky) == 1, 5000);
    int64_t t_remove = now_ms();
    CHECK_STATUS(pool_remove(sticky, c, "read timeout"), POOL_OK, NULL);
    getter_join(&g);
    CHECK_STATUS(g.rc, POOL_ERR_BAD_CONN, &g.err);
    CHECK(g.conn == NULL);
    CHECK_MESSAGE(g.err, want);
    CHECK(g.done_ms - t_remove < scaled(1000));

    /* Every later get fails the same way, waiting or not. */
    pool_error_t err = CHECK_GET_FAILS(sticky, GET_PLAIN, POOL_ERR_BAD_CONN);
    CHECK_MESSAGE(err, want);
    err = CHECK_GET_FAILS(sticky, 0, POOL_ERR_BAD_CONN);
    CHECK_MESSAGE(err, want);
    err = CHECK_GET_FAILS(sticky, scaled(1000), POOL_ERR_BAD_CONN);
    CHECK_MESSAGE(err, want);
    pool_conn_t *c2 = NULL;
    CHECK_STATUS(pool_try_get(sticky, &c2), POOL_ERR_BAD_CONN, NULL);
    CHECK(c2 == NULL);

    /* The bad conn is still the parent's (checked out, open) until the reset. */
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 0);
    CHECK_EQ(stats_of(parent).removed_conns, before.removed_conns);
    CHECK_EQ(client_exists(admin, client1), 1);
    CHECK_EQ(pool_len(sticky), 1);

    CHECK_STATUS(pool_sticky_reset(sticky), POOL_OK, NULL);
    CHECK_EQ(pool_len(parent), 0);
    CHECK_EQ(pool_idle_len(parent), 0);
    CHECK_EQ(stats_of(parent).removed_conns, before.removed_conns + 1);
    CHECK_EVENTUALLY(client_exists(admin, client1) == 0, 5000);
    CHECK_EQ(pool_len(sticky), 0);
    CHECK_EQ(pool_idle_len(sticky), 0);

    /* The next get borrows a new conn. */
    c = get_conn(sticky);
    if (c != NULL) {
        CHECK_NE(pool_conn_id(c), id1);
        long long client2 = client_id_of(c);
        CHECK(client2 > 0);
        CHECK_NE(client2, client1);
        CHECK(ping_ok(c));
        CHECK_EQ(pool_len(parent), 1);
        CHECK_EQ(stats_of(parent).misses, before.misses + 1);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
    }

    /* A reset with nothing bad does nothing. */
    pool_snapshot_t snap = snapshot_of(parent);
    CHECK_STATUS(pool_sticky_reset(sticky), POOL_OK, NULL);
    CHECK_UNCHANGED(parent, snap);
    CHECK_EQ(pool_len(sticky), 1);
    CHECK_EQ(pool_idle_len(sticky), 1);

    /* Closing now gives the healthy conn back. */
    CHECK_STATUS(pool_close(sticky), POOL_OK, NULL);
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 1);

    /* A remove without a reason makes the conn bad all the same (the header promises
       POOL_ERR_BAD_CONN after any pool_remove); freeing the pool then removes it. */
    pool_t *s2 = new_sticky(parent);
    c = get_conn(s2);
    if (c != NULL) {
        long long client3 = client_id_of(c);
        CHECK_STATUS(pool_remove(s2, c, NULL), POOL_OK, NULL);
        err = CHECK_GET_FAILS(s2, 0, POOL_ERR_BAD_CONN);
        CHECK_CONTAINS(err.message, "redis: Conn is in a bad state");
        CHECK_EQ(pool_len(parent), 1);
        pool_free(s2);
        CHECK_EQ(pool_len(parent), 0);
        CHECK_EVENTUALLY(client_exists(admin, client3) == 0, 5000);
    } else {
        pool_free(s2);
    }
out:
    pool_free(sticky);
    pool_free(parent);
    close(admin);
}

/* ---- 5. close and free ----------------------------------------------------------- */

static void test_sticky_close(void)
{
    section("sticky: close and free give the conn back to the parent");
    int admin = redis_connect(&redis);
    if (!CHECK(admin >= 0))
        return;
    pool_t *parent = new_parent();
    pool_error_t err;

    /* Healthy and idle at close: put back into the parent's idle list at once. */
    pool_t *s = new_sticky(parent);
    pool_conn_t *c = get_conn(s);
    if (c == NULL)
        goto out;
    const uint64_t id = pool_conn_id(c);
    const long long client = client_id_of(c);
    CHECK_STATUS(pool_put(s, c), POOL_OK, NULL);
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 0);
    CHECK_STATUS(pool_close(s), POOL_OK, NULL);
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 1);
    CHECK_EQ(client_exists(admin, client), 1);
    CHECK_EQ(pool_len(s), 0);
    CHECK_EQ(pool_idle_len(s), 0);
    err = CHECK_GET_FAILS(s, GET_PLAIN, POOL_ERR_CLOSED);
    CHECK_MESSAGE(err, "redis: client is closed");
    CHECK_GET_FAILS(s, 0, POOL_ERR_CLOSED);
    c = NULL;
    CHECK_STATUS(pool_try_get(s, &c), POOL_ERR_CLOSED, NULL);
    CHECK(c == NULL);
    CHECK_STATUS(pool_close(s), POOL_ERR_CLOSED, NULL);
    CHECK_STATUS(pool_sticky_reset(s), POOL_ERR_CLOSED, NULL);
    pool_t *s2 = NULL;
    CHECK_STATUS(pool_sticky_new(s, &s2), POOL_ERR_CLOSED, NULL);
    CHECK(s2 == NULL);
    pool_free(s);
    CHECK_EQ(pool_idle_len(parent), 1);
    /* It went back healthy: the parent hands it out and it answers. */
    c = get_conn(parent);
    if (c == NULL)
        goto out;
    CHECK_EQ(pool_conn_id(c), id);
    CHECK_EQ(client_id_of(c), client);
    CHECK(ping_ok(c));
    CHECK_STATUS(pool_put(parent, c), POOL_OK, NULL);

    /* Checked out at close: goes back when it is put. */
    s = new_sticky(parent);
    c = get_conn(s);
    if (c != NULL) {
        CHECK_EQ(pool_conn_id(c), id); /* the parent's idle conn */
        CHECK_STATUS(pool_close(s), POOL_OK, NULL);
        CHECK_EQ(pool_idle_len(parent), 0);
        CHECK(ping_ok(c));
        CHECK_GET_FAILS(s, 0, POOL_ERR_CLOSED);
        CHECK_STATUS(pool_put(s, c), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 1);
        CHECK_EQ(pool_idle_len(parent), 1);
        CHECK_STATUS(pool_put(s, c), POOL_ERR_INVALID_ARG, NULL);
        CHECK_EQ(pool_idle_len(parent), 1);
    }
    pool_free(s);

    /* Close wakes a waiter with POOL_ERR_CLOSED; the held conn still goes back on put. */
    s = new_sticky(parent);
    c = get_conn(s);
    if (c != NULL) {
        getter_t g;
        getter_start(&g, s, scaled(10000), NULL);
        CHECK_EVENTUALLY(waiting_of(s) == 1, 5000);
        int64_t t_close = now_ms();
        CHECK_STATUS(pool_close(s), POOL_OK, NULL);
        getter_join(&g);
        CHECK_STATUS(g.rc, POOL_ERR_CLOSED, &g.err);
        CHECK(g.conn == NULL);
        CHECK(g.done_ms - t_close < scaled(1000));
        CHECK_EQ(pool_idle_len(parent), 0);
        CHECK_STATUS(pool_put(s, c), POOL_OK, NULL);
        CHECK_EQ(pool_idle_len(parent), 1);
    }
    pool_free(s);

    /* Bad at close: removed from the parent, which closes it. */
    s = new_sticky(parent);
    c = get_conn(s);
    if (c != NULL) {
        long long bad_client = client_id_of(c);
        uint64_t removed = stats_of(parent).removed_conns;
        CHECK_STATUS(pool_remove(s, c, "protocol error"), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 1);
        CHECK_STATUS(pool_close(s), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 0);
        CHECK_EQ(pool_idle_len(parent), 0);
        CHECK_EQ(stats_of(parent).removed_conns, removed + 1);
        CHECK_EVENTUALLY(client_exists(admin, bad_client) == 0, 5000);
    }
    pool_free(s);

    /* Bad at pool_free (no close): the same. */
    s = new_sticky(parent);
    c = get_conn(s);
    if (c != NULL) {
        long long bad_client = client_id_of(c);
        CHECK_STATUS(pool_remove(s, c, "bad"), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 1);
        pool_free(s);
        CHECK_EQ(pool_len(parent), 0);
        CHECK_EVENTUALLY(client_exists(admin, bad_client) == 0, 5000);
    } else {
        pool_free(s);
    }

    /* Healthy and idle at pool_free (no close): put back. */
    s = new_sticky(parent);
    c = get_conn(s);
    if (c != NULL) {
        long long healthy_client = client_id_of(c);
        CHECK_STATUS(pool_put(s, c), POOL_OK, NULL);
        CHECK_EQ(pool_idle_len(parent), 0);
        pool_free(s);
        CHECK_EQ(pool_len(parent), 1);
        CHECK_EQ(pool_idle_len(parent), 1);
        CHECK_EQ(client_exists(admin, healthy_client), 1);
    } else {
        pool_free(s);
    }

    /* Checked out at pool_free: put through the freed handle, it goes back. */
    s = new_sticky(parent);
    c = get_conn(s);
    if (c != NULL) {
        pool_free(s);
        CHECK_EQ(pool_idle_len(parent), 0);
        CHECK(ping_ok(c));
        CHECK_STATUS(pool_put(s, c), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 1);
        CHECK_EQ(pool_idle_len(parent), 1);
    } else {
        pool_free(s);
    }

    /* Removed after close: removed from the parent too. */
    s = new_sticky(parent);
    c = get_conn(s);
    if (c != NULL) {
        CHECK_STATUS(pool_close(s), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 1);
        CHECK_STATUS(pool_remove(s, c, "late"), POOL_OK, NULL);
        CHECK_EQ(pool_len(parent), 0);
    }
    pool_free(s);
out:
    pool_free(parent);
    close(admin);
}

/* ---- 6. sticky over sticky ----------------------------------------------------------- */

static void test_sticky_shared(void)
{
    section("sticky over sticky shares one pool");
    pool_t *parent = new_parent();
    pool_t *a = new_sticky(parent);
    pool_t *b = NULL;
    if (!CHECK_STATUS(pool_sticky_new(a, &b), POOL_OK, NULL) || !CHECK(b != NULL)) {
        pool_free(a);
        pool_free(parent);
        return;
    }
    CHECK(a != b);

    pool_conn_t *c = get_conn(a);
    if (c == NULL)
        goto out;
    const uint64_t id = pool_conn_id(c);
    const long long client = client_id_of(c);
    CHECK_EQ(pool_len(b), 1);
    CHECK_EQ(pool_idle_len(b), 0);
    /* Got from one handle, put through the other. */
    CHECK_STATUS(pool_put(b, c), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(a), 1);
    CHECK_EQ(pool_idle_len(b), 1);
    c = get_conn(b);
    if (c == NULL)
        goto out;
    CHECK_EQ(pool_conn_id(c), id);
    CHECK_EQ(client_id_of(c), client);
    pool_conn_t *c2 = NULL;
    CHECK_STATUS(pool_try_get(a, &c2), POOL_ERR_WOULD_BLOCK, NULL); /* one conn for both */
    CHECK_STATUS(pool_put(a, c), POOL_OK, NULL);
    pool_stats_t ps = stats_of(parent);
    CHECK_EQ(ps.misses + ps.hits, 1);
    CHECK_EQ(pool_len(parent), 1);

    /* Closing one handle keeps the other working. */
    CHECK_STATUS(pool_close(a), POOL_OK, NULL);
    CHECK_GET_FAILS(a, 0, POOL_ERR_CLOSED);
    CHECK_EQ(pool_idle_len(parent), 0);
    c = get_conn(b);
    if (c != NULL) {
        CHECK_EQ(pool_conn_id(c), id);
        CHECK(ping_ok(c));
        CHECK_STATUS(pool_put(b, c), POOL_OK, NULL);
    }
    CHECK_EQ(pool_idle_len(parent), 0);
    /* Closing the last one gives the conn back. */
    CHECK_STATUS(pool_close(b), POOL_OK, NULL);
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 1);
    CHECK_STATUS(pool_close(b), POOL_ERR_CLOSED, NULL);
    CHECK_STATUS(pool_close(a), POOL_ERR_CLOSED, NULL);
    pool_free(a);
    pool_free(b);
    CHECK_EQ(pool_idle_len(parent), 1);

    /* Handles freed without close: the pool closes with the last one. */
    a = new_sticky(parent);
    b = NULL;
    if (CHECK_STATUS(pool_sticky_new(a, &b), POOL_OK, NULL)) {
        c = get_conn(b);
        if (c != NULL) {
            CHECK_EQ(pool_conn_id(c), id);
            CHECK_STATUS(pool_put(a, c), POOL_OK, NULL);
        }
        pool_free(a);
        a = NULL;
        c = get_conn(b);
        if (c != NULL) {
            CHECK_EQ(pool_conn_id(c), id);
            CHECK_STATUS(pool_put(b, c), POOL_OK, NULL);
        }
        CHECK_EQ(pool_idle_len(parent), 0);
        pool_free(b);
        b = NULL;
        CHECK_EQ(pool_len(parent), 1);
        CHECK_EQ(pool_idle_len(parent), 1);
    }
out:
    pool_free(a);
    pool_free(b);
    pool_free(parent);
}

/* ---- 7. single-conn pool ------------------------------------------------------------ */

/* A single pool over a fresh conn of `parent`; its conn's id and client in the out-params. */
static pool_t *new_single(pool_t *parent, uint64_t *id, long long *client)
{
    pool_conn_t *c = get_conn(parent);
    if (c == NULL)
        return NULL;
    *id = pool_conn_id(c);
    *client = client_id_of(c);
    pool_t *single = NULL;
    if (!CHECK_STATUS(pool_single_new(parent, c, &single), POOL_OK, NULL) ||
        !CHECK(single != NULL)) {
        pool_put(parent, c);
        return NULL;
    }
    return single;
}

static void test_single(void)
{
    section("single pool: wraps the conn it consumes, gives it back on close");
    int admin = redis_connect(&redis);
    if (!CHECK(admin >= 0))
        return;
    pool_t *parent = new_parent();
    pool_error_t err;

    pool_conn_t *conn = get_conn(parent);
    if (conn == NULL)
        goto out;
    const uint64_t id = pool_conn_id(conn);
    const long long client = client_id_of(conn);
    CHECK(client > 0);
    pool_t *single = NULL;
    if (!CHECK_STATUS(pool_single_new(parent, conn, &single), POOL_OK, NULL) ||
        !CHECK(single != NULL)) {
        pool_put(parent, conn);
        goto out;
    }
    /* Consumed: the caller's handle is dead. */
    CHECK_STATUS(pool_put(parent, conn), POOL_ERR_INVALID_ARG, NULL);
    CHECK_EQ(pool_conn_id(conn), 0);
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 0);
    CHECK_EQ(pool_len(single), 0);
    CHECK_EQ(pool_idle_len(single), 0);

    pool_conn_t *c = get_conn(single);
    if (c == NULL)
        goto out_single;
    CHECK_EQ(pool_conn_id(c), id);
    CHECK_EQ(client_id_of(c), client);
    CHECK_EQ(pool_len(single), 0);
    CHECK_EQ(pool_idle_len(single), 0);
    CHECK_STATUS(pool_put(single, c), POOL_OK, NULL);
    CHECK_EQ(pool_len(single), 0);
    CHECK_EQ(pool_idle_len(single), 0);
    c = get_conn(single);
    if (c == NULL)
        goto out_single;
    CHECK_EQ(pool_conn_id(c), id);
    CHECK_EQ(client_id_of(c), client);

    /* Held: a second get waits, then times out. */
    int64_t t0 = now_ms();
    err = CHECK_GET_FAILS(single, 50, POOL_ERR_TIMEOUT);
    int64_t elapsed = now_ms() - t0;
    CHECK_CONTAINS(err.message, "redis: connection pool timeout");
    if (!CHECK(elapsed >= 50) || !CHECK(elapsed < 50 + scaled(1000)))
        fprintf(stderr, "  (timed out after %" PRId64 " ms)\n", elapsed);
    pool_conn_t *c2 = NULL;
    CHECK_STATUS(pool_try_get(single, &c2), POOL_ERR_WOULD_BLOCK, NULL);
    CHECK(c2 == NULL);
    /* ... and gets it when the holder puts it. */
    getter_t g;
    getter_start(&g, single, scaled(10000), NULL);
    CHECK_EVENTUALLY(waiting_of(single) == 1, 5000);
    CHECK_STATUS(pool_put(single, c), POOL_OK, NULL);
    getter_join(&g);
    if (CHECK_STATUS(g.rc, POOL_OK, &g.err) && CHECK(g.conn != NULL)) {
        CHECK_EQ(pool_conn_id(g.conn), id);
        CHECK_STATUS(pool_put(single, g.conn), POOL_OK, NULL);
    }
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 0);

    /* Close gives the conn back to the parent without closing it. */
    CHECK_STATUS(pool_close(single), POOL_OK, NULL);
    CHECK_EQ(pool_len(parent), 1);
    CHECK_EQ(pool_idle_len(parent), 1);
    err = CHECK_GET_FAILS(single, GET_PLAIN, POOL_ERR_CLOSED);
    CHECK_MESSAGE(err, "redis: client is closed");
    CHECK_STATUS(pool_try_get(single, &c2), POOL_ERR_CLOSED, NULL);
    CHECK_STATUS(pool_close(single), POOL_ERR_CLOSED, NULL);
    CHECK_EQ(pool_len(single), 0);
    CHECK_EQ(pool_idle_len(single), 0);
    pool_free(single);
    single = NULL;
    CHECK_EQ(client_exists(admin, client), 1);
    c = get_conn(parent);
    if (c != NULL) {
        CHECK_EQ(pool_conn_id(c), id);
        CHECK_EQ(client_id_of(c), client);
        CHECK(ping_ok(c));
        CHECK_STATUS(pool_put(parent, c), POOL_OK, NULL);
    }

    /* pool_remove with a reason: gets fail with BAD_CONN carrying it; the parent closes it. */
    uint64_t sid;
    long long sclient;
    single = new_single(parent, &sid, &sclient);
    if (single == NULL)
        goto out;
    CHECK_EQ(sid, id);
    c = get_conn(single);
    if (c != NULL) {
        int32_t len = pool_len(parent);
        uint64_t removed = stats_of(parent).removed_conns;
        CHECK_STATUS(pool_remove(single, c, "auth failed"), POOL_OK, NULL);
        err = CHECK_GET_FAILS(single, GET_PLAIN, POOL_ERR_BAD_CONN);
        CHECK_CONTAINS(err.message, "auth failed");
        CHECK_MESSAGE(err, "redis: Conn is in a bad state: auth failed");
        CHECK_GET_FAILS(single, 0, POOL_ERR_BAD_CONN);
        CHECK_STATUS(pool_try_get(single, &c2), POOL_ERR_BAD_CONN, NULL);
        CHECK_EQ(pool_len(parent), len - 1);
        CHECK_EQ(pool_idle_len(parent), 0);
        CHECK_EQ(stats_of(parent).removed_conns, removed + 1);
        CHECK_EVENTUALLY(client_exists(admin, sclient) == 0, 5000);
        pool_snapshot_t snap = snapshot_of(parent);
        pool_close(single); /* nothing left to give back */
        CHECK_UNCHANGED(parent, snap);
    }
    pool_free(single);

    /* pool_remove with a NULL reason: gets fail with POOL_ERR_CLOSED. */
    single = new_single(parent, &sid, &sclient);
    if (single == NULL)
        goto out;
    c = get_conn(single);
    if (c != NULL) {
        int32_t len = pool_len(parent);
        CHECK_STATUS(pool_remove(single, c, NULL), POOL_OK, NULL);
        err = CHECK_GET_FAILS(single, GET_PLAIN, POOL_ERR_CLOSED);
        CHECK_MESSAGE(err, "redis: client is closed");
        CHECK_STATUS(pool_try_get(single, &c2), POOL_ERR_CLOSED, NULL);
        CHECK_EQ(pool_len(parent), len - 1);
        CHECK_EVENTUALLY(client_exists(admin, sclient) == 0, 5000);
    }
    pool_snapshot_t snap = snapshot_of(parent);
    pool_free(single);
    CHECK_UNCHANGED(parent, snap);

    /* Closed while checked out: the conn goes back when it is put. */
    single = new_single(parent, &sid, &sclient);
    if (single == NULL)
        goto out;
    c = get_conn(single);
    if (c != NULL) {
        int32_t idle = pool_idle_len(parent);
        CHECK_STATUS(pool_close(single), POOL_OK, NULL);
        CHECK_EQ(pool_idle_len(parent), idle);
        CHECK(ping_ok(c));
        CHECK_STATUS(pool_put(single, c), POOL_OK, NULL);
        CHECK_EQ(pool_idle_len(parent), idle + 1);
        CHECK_EQ(client_exists(admin, sclient), 1);
    }
    pool_free(single);

    /* Freed without close: the conn goes back too. */
    single = new_single(parent, &sid, &sclient);
    if (single == NULL)
        goto out;
    int32_t idle = pool_idle_len(parent);
    pool_free(single);
    single = NULL;
    CHECK_EQ(pool_idle_len(parent), idle + 1);
    CHECK_EQ(client_exists(admin, sclient), 1);
    CHECK_EQ(pool_len(parent), pool_idle_len(parent));

out_single:
    pool_free(single);
out:
    pool_free(parent);
    close(admin);
}

/* ---- 8. misuse -------------------------------------------------------------------- */

static void test_misuse(void)
{
    section("misuse: foreign conns, double put, wrong pools and NULLs change nothing");
    int admin = redis_connect(&redis);
    if (!CHECK(admin >= 0))
        return;
    pool_t *parent = new_parent();
    pool_t *other = new_parent();
    pool_t *sticky = new_sticky(parent);
    pool_t *out = NULL;

    pool_conn_t *sc = get_conn(sticky);
    pool_conn_t *pc = get_conn(parent);
    if (sc == NULL || pc == NULL)
        goto done;
    const uint64_t sid = pool_conn_id(sc), pid = pool_conn_id(pc);
    pool_snapshot_t ps = snapshot_of(parent), os = snapshot_of(other);

    /* A parent's conn given to the sticky pool. */
    CHECK_STATUS(pool_put(sticky, pc), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_remove(sticky, pc, "not yours"), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_close_conn(sticky, pc), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(parent, ps);
    CHECK_EQ(pool_len(sticky), 1);
    CHECK_EQ(pool_idle_len(sticky), 0);
    CHECK_EQ(pool_conn_id(pc), pid);
    CHECK(ping_ok(pc));
    /* The sticky pool's conn given to the parent, or to another pool. */
    CHECK_STATUS(pool_put(parent, sc), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_remove(parent, sc, "not yours"), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_close_conn(parent, sc), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_put(other, sc), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_put(other, pc), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(parent, ps);
    CHECK_UNCHANGED(other, os);
    CHECK_EQ(pool_len(sticky), 1);
    CHECK_EQ(pool_idle_len(sticky), 0);
    CHECK_EQ(pool_conn_id(sc), sid);
    CHECK(ping_ok(sc));
    /* Both still go back where they came from. */
    CHECK_STATUS(pool_put(parent, pc), POOL_OK, NULL);
    CHECK_STATUS(pool_put(sticky, sc), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(parent), 1);
    CHECK_EQ(pool_idle_len(sticky), 1);

    /* Double put and remove after put on the sticky pool. */
    ps = snapshot_of(parent);
    CHECK_STATUS(pool_put(sticky, sc), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_remove(sticky, sc, "late"), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(parent, ps);
    CHECK_EQ(pool_len(sticky), 1);
    CHECK_EQ(pool_idle_len(sticky), 1);
    sc = NULL;
    pool_error_t err;
    err_reset(&err);
    if (CHECK_STATUS(pool_get_ex(sticky, 0, NULL, &sc, &err), POOL_OK, &err)) { /* not bad */
        CHECK_EQ(pool_conn_id(sc), sid);
        CHECK(ping_ok(sc));
    }

    /* pool_sticky_reset on what is not a sticky pool. */
    CHECK_STATUS(pool_sticky_reset(NULL), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_sticky_reset(parent), POOL_ERR_INVALID_ARG, NULL);
    CHECK_UNCHANGED(parent, ps);

    /* pool_single_new: NULLs, a conn of another pool; the conn is not consumed. */
    pc = get_conn(parent);
    if (pc == NULL)
        goto done;
    ps = snapshot_of(parent);
    os = snapshot_of(other);
    const uint64_t pid2 = pool_conn_id(pc);
    CHECK_STATUS(pool_single_new(NULL, pc, &out), POOL_ERR_INVALID_ARG, NULL);
    CHECK(out == NULL);
    CHECK_STATUS(pool_single_new(parent, NULL, &out), POOL_ERR_INVALID_ARG, NULL);
    CHECK(out == NULL);
    CHECK_STATUS(pool_single_new(parent, pc, NULL), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_single_new(other, pc, &out), POOL_ERR_INVALID_ARG, NULL);
    CHECK(out == NULL);
    CHECK_STATUS(pool_single_new(sticky, pc, &out), POOL_ERR_INVALID_ARG, NULL);
    CHECK(out == NULL);
    if (sc != NULL) {
        CHECK_STATUS(pool_single_new(parent, sc, &out), POOL_ERR_INVALID_ARG, NULL);
        CHECK(out == NULL);
        CHECK_EQ(pool_conn_id(sc), sid);
        CHECK_STATUS(pool_put(sticky, sc), POOL_OK, NULL);
    }
    CHECK_UNCHANGED(parent, ps);
    CHECK_UNCHANGED(other, os);
    CHECK_EQ(pool_conn_id(pc), pid2);
    CHECK(ping_ok(pc));
    CHECK_STATUS(pool_put(parent, pc), POOL_OK, NULL);
    /* A dead handle. */
    ps = snapshot_of(parent);
    CHECK_STATUS(pool_single_new(parent, pc, &out), POOL_ERR_INVALID_ARG, NULL);
    CHECK(out == NULL);
    CHECK_UNCHANGED(parent, ps);

    /* pool_sticky_reset on a single pool. */
    uint64_t single_id;
    long long single_client;
    pool_t *single = new_single(parent, &single_id, &single_client);
    if (single != NULL) {
        CHECK_STATUS(pool_sticky_reset(single), POOL_ERR_INVALID_ARG, NULL);
        pool_free(single);
        CHECK_EQ(pool_idle_len(parent), 1);
    }

    /* pool_sticky_new with NULLs. */
    CHECK_STATUS(pool_sticky_new(NULL, &out), POOL_ERR_INVALID_ARG, NULL);
    CHECK(out == NULL);
    CHECK_STATUS(pool_sticky_new(parent, NULL), POOL_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(pool_sticky_new(sticky, NULL), POOL_ERR_INVALID_ARG, NULL);

done:
    pool_free(sticky);
    pool_free(other);
    pool_free(parent);

    /* The parent freed while a sticky child holds its conn: the child keeps working,
       and its close then simply closes the conn. */
    parent = new_parent();
    sticky = new_sticky(parent);
    pool_conn_t *c = get_conn(sticky);
    if (c != NULL) {
        long long client = client_id_of(c);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
        pool_free(parent);
        parent = NULL;
        c = get_conn(sticky);
        if (c != NULL) {
            CHECK(ping_ok(c));
            CHECK_EQ(client_id_of(c), client);
            CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
        }
        CHECK_EQ(client_exists(admin, client), 1);
        CHECK_STATUS(pool_close(sticky), POOL_OK, NULL);
        CHECK_EVENTUALLY(client_exists(admin, client) == 0, 5000);
    }
    pool_free(sticky);
    pool_free(parent);

    /* A sticky pool whose parent was freed before its first get cannot borrow. */
    parent = new_parent();
    sticky = new_sticky(parent);
    pool_free(parent);
    CHECK_GET_FAILS(sticky, GET_PLAIN, POOL_ERR_CLOSED);
    CHECK_EQ(pool_len(sticky), 0);
    pool_free(sticky);

    /* Both freed while the conn is checked out: putting it closes it. */
    parent = new_parent();
    sticky = new_sticky(parent);
    c = get_conn(sticky);
    if (c != NULL) {
        long long client = client_id_of(c);
        pool_free(parent);
        pool_free(sticky);
        CHECK(ping_ok(c));
        CHECK_EQ(client_exists(admin, client), 1);
        CHECK_STATUS(pool_put(sticky, c), POOL_OK, NULL);
        CHECK_EVENTUALLY(client_exists(admin, client) == 0, 5000);
    } else {
        pool_free(parent);
        pool_free(sticky);
    }

    /* A single pool outliving its parent: its close closes the conn. */
    parent = new_parent();
    uint64_t id;
    long long client;
    pool_t *orphan = new_single(parent, &id, &client);
    pool_free(parent);
    if (orphan != NULL) {
        c = get_conn(orphan);
        if (c != NULL) {
            CHECK_EQ(pool_conn_id(c), id);
            CHECK(ping_ok(c));
            CHECK_STATUS(pool_put(orphan, c), POOL_OK, NULL);
        }
        CHECK_EQ(client_exists(admin, client), 1);
        pool_free(orphan);
        CHECK_EVENTUALLY(client_exists(admin, client) == 0, 5000);
    }
    close(admin);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = redis_server_from_args(&redis, argc, argv);
    if (rc != 0)
        return rc;

    test_sticky_basics();
    test_sticky_transactions();
    test_sticky_waits();
    test_sticky_bad_conn();
    test_sticky_close();
    test_sticky_shared();
    test_single();
    test_misuse();
    return check_exit_status();
}
