/*
 * abi_dialer.c - timing and fault behaviour of the pool through the C ABI, with
 * a custom pool_dial_fn and no Redis at all.
 *
 *   ./abi_dialer            (REDISPOOL_SLOW=N multiplies every time bound by N)
 *
 * The dial function makes a socketpair(AF_UNIX, SOCK_STREAM): one end goes to
 * the pool, the other ("the peer", what a server would hold) stays in a table
 * here so a check can close it or write into it. Each scenario has its own
 * dialer object (the dial function's userdata), which can be told to sleep
 * before answering or to fail with an errno.
 *
 * Checks: a slow dial times a get out on pool_timeout_ms and still ends up
 * idle; failing dials report the OS error, and after pool_size of them gets
 * fail fast until a dial works again; a conn whose peer closed or wrote
 * unexpected bytes is dropped as stale on the next get; a cancel token stops a
 * waiting get promptly without leaking its turn; pool_put / pool_remove hand a
 * turn to a blocked waiter; pool_close wakes waiters with POOL_ERR_CLOSED.
 *
 * Prints one line per failed check (file:line) on stderr; exits 0 only if every
 * check passed. Run by tests/c_abi.rs (also under valgrind).
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

/* ---- the socketpair dialer -------------------------------------------------- */

#define MAX_ENDS 64
#define DIAL_TIMEOUT_MS 4000 /* the pools' dial_timeout_ms; the dialer sees it */

typedef struct dialer {
    const char *name;
    pthread_mutex_t mu;
    /* Set by the test (under mu): */
    int64_t delay_ms; /* sleep this long before answering */
    int fail_errno;   /* non-zero: fail with it (after the delay) */
    int abort_sleep;  /* teardown: stop sleeping, fail at once */
    /* Kept by the dial function (under mu): */
    int calls;
    int in_progress;
    int bad_timeouts; /* calls whose timeout_ms was not in (0, DIAL_TIMEOUT_MS] */
    int ends;         /* entries used in ours[]/peers[] */
    int ours[MAX_ENDS];
    int peers[MAX_ENDS]; /* -1 once closed */
} dialer_t;

#define DIALER_INIT(n) {n, PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, {0}, {0}}

/* One dialer per scenario: a dial still running after its pool is gone only ever
   touches its own scenario's object, which lives for the whole program. */
static dialer_t d_slow = DIALER_INIT("slow dial");
static dialer_t d_fail = DIALER_INIT("failing dial");
static dialer_t d_retry = DIALER_INIT("retries");
static dialer_t d_fast_fail = DIALER_INIT("fast fail");
static dialer_t d_peer_close = DIALER_INIT("peer closes");
static dialer_t d_unread = DIALER_INIT("unread bytes");
static dialer_t d_cancel_turn = DIALER_INIT("cancel turn wait");
static dialer_t d_cancel_dial = DIALER_INIT("cancel dial wait");
static dialer_t d_handoff = DIALER_INIT("put/remove hand-off");
static dialer_t d_close_wait = DIALER_INIT("close wakes waiters");
static dialer_t d_silent = DIALER_INIT("silent peer during set-up");
static dialer_t d_userdata_free = DIALER_INIT("dialer_userdata_free");

static dialer_t *const all_dialers[] = {
    &d_slow,    &d_fail,        &d_retry,       &d_fast_fail, &d_peer_close,
    &d_unread,  &d_cancel_turn, &d_cancel_dial, &d_handoff,   &d_close_wait,
    &d_silent,
    &d_userdata_free,
};

static atomic_int dial_bad_userdata; /* dial calls with a userdata we never passed */

static int is_known_dialer(const void *p)
{
    for (size_t i = 0; i < sizeof all_dialers / sizeof all_dialers[0]; i++)
        if (p == all_dialers[i])
            return 1;
    return 0;
}

static int socketpair_dial(void *userdata, int64_t timeout_ms, int *fd_out)
{
    if (!is_known_dialer(userdata) || fd_out == NULL) {
        atomic_fetch_add(&dial_bad_userdata, 1);
        return EINVAL;
    }
    dialer_t *d = userdata;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->in_progress++;
    if (timeout_ms <= 0 || timeout_ms > DIAL_TIMEOUT_MS)
        d->bad_timeouts++;
    const int64_t delay = d->delay_ms;
    const int fail = d->fail_errno;
    pthread_mutex_unlock(&d->mu);

    /* The slow part: in 5 ms steps so a teardown can cut it short. */
    const int64_t until = now_ms() + delay;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        int aborted = d->abort_sleep;
        pthread_mutex_unlock(&d->mu);
        if (aborted || now_ms() >= until)
            break;
        sleep_ms(5);
    }

    int rc = fail;
    pthread_mutex_lock(&d->mu);
    if (d->abort_sleep) {
        rc = ECONNREFUSED;
    } else if (rc == 0) {
        int sv[2];
        if (d->ends >= MAX_ENDS) {
            rc = EMFILE;
        } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            rc = errno;
        } else {
            d->ours[d->ends] = sv[0];
            d->peers[d->ends] = sv[1];
            d->ends++;
            *fd_out = sv[0];
        }
    }
    d->in_progress--;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static void dialer_set(dialer_t *d, int64_t delay_ms, int fail_errno)
{
    pthread_mutex_lock(&d->mu);
    d->delay_ms = delay_ms;
    d->fail_errno = fail_errno;
    pthread_mutex_unlock(&d->mu);
}

static int dialer_calls(dialer_t *d)
{
    pthread_mutex_lock(&d->mu);
    int n = d->calls;
    pthread_mutex_unlock(&d->mu);
    return n;
}

static int dialer_in_progress(dialer_t *d)
{
    pthread_mutex_lock(&d->mu);
    int n = d->in_progress;
    pthread_mutex_unlock(&d->mu);
    return n;
}

/* The peer end of a checked-out conn's socket (the newest dial that gave out that fd). */
static int peer_of(dialer_t *d, const pool_conn_t *conn)
{
    int fd = pool_conn_fd(conn);
    int peer = -1;
    pthread_mutex_lock(&d->mu);
    for (int i = d->ends - 1; i >= 0 && fd >= 0; i--) {
        if (d->ours[i] == fd) {
            peer = d->peers[i];
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (!CHECK(peer >= 0))
        fprintf(stderr, "  (no peer for fd %d)\n", fd);
    return peer;
}

static void close_peer(dialer_t *d, int peer)
{
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->ends; i++) {
        if (d->peers[i] == peer) {
            close(peer);
            d->peers[i] = -1;
        }
    }
    pthread_mutex_unlock(&d->mu);
}

/* A conn's socket really reaches its peer: bytes written on one side arrive on the other. */
static int conn_reaches_peer(dialer_t *d, const pool_conn_t *conn)
{
    int peer = peer_of(d, conn);
    int fd = pool_conn_fd(conn);
    if (peer < 0 || fd < 0)
        return 0;
    char buf[8];
    if (send(fd, "ping", 4, MSG_NOSIGNAL) != 4)
        return 0;
    ssize_t n = recv(peer, buf, sizeof buf, MSG_DONTWAIT);
    return n == 4 && memcmp(buf, "ping", 4) == 0;
}

/* ---- pools ------------------------------------------------------------------ */

static pool_options_t dialer_options(dialer_t *d, int32_t pool_size, int64_t pool_timeout_ms)
{
    pool_options_t o;
    pool_options_init(&o);
    o.addr = NULL;
    o.dialer = socketpair_dial;
    o.dialer_userdata = d;
    o.pool_size = pool_size;
    o.pool_timeout_ms = pool_timeout_ms;
    o.dial_timeout_ms = DIAL_TIMEOUT_MS;
    o.dialer_retries = 1;
    o.dialer_retry_backoff_ms = 0;
    return o;
}

static pool_t *new_pool(dialer_t *d, int32_t pool_size, int64_t pool_timeout_ms)
{
    pool_options_t o = dialer_options(d, pool_size, pool_timeout_ms);
    return new_pool_or_exit(&o);
}

/* Frees the pool, waits (bounded) until no dial runs in `d`, closes the peers. */
static void finish(pool_t *pool, dialer_t *d)
{
    pool_free(pool);
    pthread_mutex_lock(&d->mu);
    d->abort_sleep = 1;
    pthread_mutex_unlock(&d->mu);
    CHECK_EVENTUALLY(dialer_in_progress(d) == 0, 5000);
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->ends; i++) {
        if (d->peers[i] >= 0) {
            close(d->peers[i]);
            d->peers[i] = -1;
        }
    }
    if (!CHECK_EQ(d->bad_timeouts, 0))
        fprintf(stderr, "  (dialer %s saw timeout_ms outside (0, %d])\n", d->name,
                DIAL_TIMEOUT_MS);
    pthread_mutex_unlock(&d->mu);
}

/* ---- cancel tokens and turns ------------------------------------------------ */

/* Fires a cancel token after a delay, from its own thread. */
typedef struct firer {
    pthread_t thread;
    const pool_cancel_t *cancel;
    int64_t after_ms;
    int64_t fired_ms;
} firer_t;

static void *firer_main(void *arg)
{
    firer_t *f = arg;
    sleep_ms(f->after_ms); /* the stimulus: "fired 50 ms into the wait" */
    f->fired_ms = now_ms();
    pool_cancel_fire(f->cancel);
    return NULL;
}

/* All pool_size conns can be had with timeout 0 (no turn leaked), and not one more. */
static void check_all_turns_free(pool_t *pool, int32_t pool_size)
{
    pool_conn_t *held[16] = {NULL};
    pool_error_t err;
    for (int32_t i = 0; i < pool_size && i < 16; i++) {
        err_reset(&err);
        if (!CHECK_STATUS(pool_get_ex(pool, 0, NULL, &held[i], &err), POOL_OK, &err))
            fprintf(stderr, "  (conn %d of %d)\n", (int)i + 1, (int)pool_size);
    }
    pool_conn_t *extra = NULL;
    err_reset(&err);
    CHECK_STATUS(pool_get_ex(pool, 0, NULL, &extra, &err), POOL_ERR_TIMEOUT, &err);
    if (extra != NULL)
        pool_put(pool, extra);
    for (int32_t i = 0; i < pool_size && i < 16; i++)
        if (held[i] != NULL)
            CHECK_STATUS(pool_put(pool, held[i]), POOL_OK, NULL);
}

/* ---- scenarios ---------------------------------------------------------------- */

static void test_slow_dial_times_out_then_idles(void)
{
    section("slow dial: pool_timeout_ms=100 times out, the dial ends up idle");
    dialer_t *d = &d_slow;
    const int64_t delay = scaled(1500);
    dialer_set(d, delay, 0);
    pool_t *pool = new_pool(d, 2, 100);

    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    int64_t t0 = now_ms();
    pool_status_t rc = pool_get(pool, &conn, &err);
    int64_t elapsed = now_ms() - t0;
    CHECK_STATUS(rc, POOL_ERR_TIMEOUT, &err);
    CHECK(conn == NULL);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_TIMEOUT))
        CHECK_CONTAINS(err.message, "timeout");
    if (!CHECK(elapsed < scaled(1000)) || !CHECK(elapsed >= 90))
        fprintf(stderr, "  (the get took %" PRId64 " ms; the dial takes %" PRId64 " ms)\n",
                elapsed, delay);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.timeouts, 1);
    CHECK_EQ(s.pending_requests, 0);

    /* The dial was not wasted: it finishes on its own and its conn is idle. */
    CHECK_EVENTUALLY(pool_idle_len(pool) == 1, 1500 + 5000);
    s = stats_of(pool);
    CHECK_EQ(s.dials, 1);
    CHECK_EQ(s.misses, 1);
    CHECK_EQ(s.total_conns, 1);
    CHECK_EQ(s.idle_conns, 1);
    CHECK_EQ(s.dials_in_progress, 0);
    CHECK_EQ(pool_len(pool), 1);

    /* ... and the next get takes it without dialing. */
    dialer_set(d, 0, 0);
    conn = get_conn(pool);
    if (conn != NULL) {
        CHECK_EQ(pool_conn_id(conn), 1);
        CHECK(conn_reaches_peer(d, conn));
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    }
    CHECK_EQ(dialer_calls(d), 1);
    CHECK_EQ(stats_of(pool).hits, 1);
    finish(pool, d);
}

static void test_failing_dial(void)
{
    section("failing dial: POOL_ERR_DIAL carrying the OS error");
    dialer_t *d = &d_fail;
    dialer_set(d, 0, ECONNREFUSED);
    pool_t *pool = new_pool(d, 3, scaled(5000));

    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    CHECK_STATUS(pool_get(pool, &conn, &err), POOL_ERR_DIAL, &err);
    CHECK(conn == NULL);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_DIAL))
        CHECK_CONTAINS(err.message, "refused");
    CHECK_EQ(dialer_calls(d), 1);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.dial_errors, 1);
    CHECK_EQ(s.total_conns, 0);
    CHECK_EQ(s.pending_requests, 0);
    CHECK_EQ(pool_len(pool), 0);

    /* A failed dial gives its turn back: a working dial gets all pool_size conns. */
    dialer_set(d, 0, 0);
    check_all_turns_free(pool, 3);
    finish(pool, d);

    section("dialer_retries: attempts per dial");
    d = &d_retry;
    dialer_set(d, 0, ECONNREFUSED);
    pool_options_t o = dialer_options(d, 3, scaled(5000));
    o.dialer_retries = 3;
    o.dialer_retry_backoff_ms = 1;
    pool = new_pool_or_exit(&o);
    err_reset(&err);
    CHECK_STATUS(pool_get(pool, &conn, &err), POOL_ERR_DIAL, &err);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_DIAL))
        CHECK_CONTAINS(err.message, "refused");
    CHECK_EQ(dialer_calls(d), 3);
    CHECK_EQ(stats_of(pool).dial_errors, 1);
    finish(pool, d);
}

static void test_fast_fail_after_pool_size_failures(void)
{
    section("after pool_size failed dials, gets fail fast until a dial works");
    dialer_t *d = &d_fast_fail;
    const int32_t size = 3;
    const int64_t delay = scaled(600);
    dialer_set(d, delay, ECONNREFUSED);
    pool_t *pool = new_pool(d, size, scaled(10000));

    pool_error_t err;
    pool_conn_t *conn = NULL;
    for (int32_t i = 0; i < size; i++) {
        err_reset(&err);
        int64_t t0 = now_ms();
        CHECK_STATUS(pool_get(pool, &conn, &err), POOL_ERR_DIAL, &err);
        int64_t elapsed = now_ms() - t0;
        /* Each of these really dialed (and so waited for the slow dial). */
        if (!CHECK(elapsed >= delay - 20))
            fprintf(stderr, "  (failure %d took %" PRId64 " ms, the dial %" PRId64 " ms)\n",
                    (int)i + 1, elapsed, delay);
    }
    /* (The background probe may have dialed once more by now.) */
    CHECK(dialer_calls(d) >= size);

    err_reset(&err);
    int64_t t0 = now_ms();
    CHECK_STATUS(pool_get(pool, &conn, &err), POOL_ERR_DIAL, &err);
    int64_t elapsed = now_ms() - t0;
    if (CHECK_ERR_FILLED(&err, POOL_ERR_DIAL))
        CHECK_CONTAINS(err.message, "refused");
    if (!CHECK(elapsed < delay / 2))
        fprintf(stderr, "  (the fast failure took %" PRId64 " ms; a dial takes %" PRId64 " ms)\n",
                elapsed, delay);
    CHECK(stats_of(pool).dial_errors >= (uint64_t)size);

    /* Once dials work again, gets work again (bounded wait for the recovery). */
    dialer_set(d, 0, 0);
    int recovered = 0;
    int64_t deadline = now_ms() + scaled(10000);
    while (!recovered && now_ms() < deadline) {
        conn = NULL;
        err_reset(&err);
        pool_status_t rc = pool_get_ex(pool, 0, NULL, &conn, &err);
        if (rc == POOL_OK) {
            recovered = 1;
            CHECK(conn_reaches_peer(d, conn));
            CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
        } else {
            if (!CHECK_STATUS(rc, POOL_ERR_DIAL, &err))
                break;
            sleep_ms(20);
        }
    }
    CHECK(recovered);
    finish(pool, d);
}

/* A conn goes back idle; `spoil` damages it from the peer's side; the next get drops it. */
static void check_stale_on_get(dialer_t *d, void (*spoil)(dialer_t *d, int peer))
{
    pool_t *pool = new_pool(d, 2, scaled(5000));
    pool_conn_t *c1 = get_conn(pool);
    if (c1 == NULL) {
        finish(pool, d);
        return;
    }
    const uint64_t id1 = pool_conn_id(c1);
    const int peer = peer_of(d, c1);
    userdata_t ud = {0};
    pool_conn_set_userdata(c1, &ud, count_free);
    CHECK_STATUS(pool_put(pool, c1), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(pool), 1);
    CHECK_EQ(stats_of(pool).stale_conns, 0);

    spoil(d, peer);

    pool_conn_t *c2 = get_conn(pool);
    if (c2 != NULL) {
        CHECK_NE(pool_conn_id(c2), id1);
        CHECK(conn_reaches_peer(d, c2));
        pool_stats_t s = stats_of(pool);
        CHECK_EQ(s.stale_conns, 1);
        CHECK_EQ(s.total_conns, 1);
        CHECK_EQ(s.dials, 2);
        CHECK_EQ(ud.freed, 1); /* the stale conn was closed, its userdata freed */
        CHECK_STATUS(pool_put(pool, c2), POOL_OK, NULL);
    }
    CHECK_EQ(dialer_calls(d), 2);
    CHECK_EQ(pool_len(pool), 1);
    finish(pool, d);
    CHECK_EQ(ud.freed, 1);
}

static void spoil_close(dialer_t *d, int peer)
{
    close_peer(d, peer);
}

static void spoil_write(dialer_t *d, int peer)
{
    (void)d;
    CHECK_EQ(send(peer, "+PONG\r\n", 7, MSG_NOSIGNAL), 7);
}

static void test_stale_conns(void)
{
    section("peer closed an idle conn: next get drops it as stale");
    check_stale_on_get(&d_peer_close, spoil_close);
    section("unexpected bytes on an idle conn: next get drops it as stale");
    check_stale_on_get(&d_unread, spoil_write);
}

/* pool_get_ex with `cancel` fired 50 ms in returns POOL_ERR_CANCELED promptly. */
static void check_canceled_get(pool_t *pool)
{
    pool_cancel_t *cancel = pool_cancel_new();
    if (!CHECK(cancel != NULL))
        return;
    firer_t f = {0};
    f.cancel = cancel;
    f.after_ms = 50;
    start_thread(&f.thread, firer_main, &f);
    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    pool_status_t rc = pool_get_ex(pool, -1, cancel, &conn, &err);
    int64_t returned = now_ms();
    pthread_join(f.thread, NULL);

    CHECK_STATUS(rc, POOL_ERR_CANCELED, &err);
    if (!CHECK(conn == NULL))
        pool_put(pool, conn); /* keep the later checks meaningful */
    CHECK_ERR_FILLED(&err, POOL_ERR_CANCELED);
    if (!CHECK(returned >= f.fired_ms) || !CHECK(returned - f.fired_ms < scaled(500)))
        fprintf(stderr, "  (returned %" PRId64 " ms after the fire)\n", returned - f.fired_ms);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.waiting, 0);
    CHECK_EQ(s.pending_requests, 0);
    CHECK_EQ(s.timeouts, 0);

    /* A fired token stays fired: a later get with it is canceled at once. */
    err_reset(&err);
    CHECK_STATUS(pool_get_ex(pool, -1, cancel, &conn, &err), POOL_ERR_CANCELED, &err);
    CHECK(conn == NULL);
    pool_cancel_free(cancel);
}

static void test_cancel(void)
{
    section("cancel while waiting for a turn");
    dialer_t *d = &d_cancel_turn;
    const int32_t size = 2;
    pool_t *pool = new_pool(d, size, scaled(10000));
    pool_conn_t *held[2] = {get_conn(pool), get_conn(pool)};
    check_canceled_get(pool);
    for (int i = 0; i < size; i++)
        if (held[i] != NULL)
            CHECK_STATUS(pool_put(pool, held[i]), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(pool), size);
    check_all_turns_free(pool, size);
    CHECK_EQ(dialer_calls(d), size);
    finish(pool, d);

    section("cancel while waiting for a slow dial");
    d = &d_cancel_dial;
    const int64_t delay = scaled(1000);
    dialer_set(d, delay, 0);
    pool = new_pool(d, size, scaled(10000));
    int64_t t0 = now_ms();
    check_canceled_get(pool);
    CHECK(now_ms() - t0 < delay); /* returned before the dial finished */
    /* The dial still completes, and its conn is idle rather than holding a turn. */
    CHECK_EVENTUALLY(pool_idle_len(pool) == 1 && stats_of(pool).dials_in_progress == 0,
                     1000 + 5000);
    dialer_set(d, 0, 0);
    check_all_turns_free(pool, size);
    CHECK_EQ(dialer_calls(d), size);
    finish(pool, d);
}

static void test_handoff_to_waiter(void)
{
    section("pool_size 1: pool_put and pool_remove unblock a waiter");
    dialer_t *d = &d_handoff;
    pool_t *pool = new_pool(d, 1, scaled(20000));
    pool_conn_t *c1 = get_conn(pool);
    if (c1 == NULL) {
        finish(pool, d);
        return;
    }
    const uint64_t id1 = pool_conn_id(c1);

    /* put: the waiter gets this very conn, without a dial. */
    getter_t g;
    getter_start(&g, pool, GET_PLAIN, NULL);
    CHECK_EVENTUALLY(waiting_of(pool) == 1, 5000);
    CHECK(!getter_done(&g));
    int64_t t_put = now_ms();
    CHECK_STATUS(pool_put(pool, c1), POOL_OK, NULL);
    getter_join(&g);
    CHECK_STATUS(g.rc, POOL_OK, &g.err);
    CHECK_EQ(pool_conn_id(g.conn), id1);
    CHECK(g.done_ms - t_put < scaled(1000));
    CHECK_EQ(dialer_calls(d), 1);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.wait_count, 1);
    CHECK_EQ(s.hits, 1);
    c1 = g.conn;

    /* remove: the waiter gets the freed turn and dials a new conn. */
    getter_start(&g, pool, GET_PLAIN, NULL);
    CHECK_EVENTUALLY(waiting_of(pool) == 1, 5000);
    CHECK(!getter_done(&g));
    int64_t t_remove = now_ms();
    CHECK_STATUS(pool_remove(pool, c1, "broken"), POOL_OK, NULL);
    getter_join(&g);
    CHECK_STATUS(g.rc, POOL_OK, &g.err);
    if (g.conn != NULL) {
        CHECK(pool_conn_id(g.conn) != 0);
        CHECK_NE(pool_conn_id(g.conn), id1);
        CHECK(conn_reaches_peer(d, g.conn));
        CHECK_STATUS(pool_put(pool, g.conn), POOL_OK, NULL);
    }
    CHECK(g.done_ms - t_remove < scaled(1000));
    CHECK_EQ(dialer_calls(d), 2);
    s = stats_of(pool);
    CHECK_EQ(s.removed_conns, 1);
    CHECK_EQ(s.total_conns, 1);
    CHECK_EQ(s.waiting, 0);
    finish(pool, d);
}

static void test_close_wakes_waiters(void)
{
    section("pool_close wakes a thread waiting for a turn");
    dialer_t *d = &d_close_wait;
    pool_t *pool = new_pool(d, 1, scaled(20000));
    pool_conn_t *c1 = get_conn(pool);
    if (c1 == NULL) {
        finish(pool, d);
        return;
    }
    getter_t g;
    getter_start(&g, pool, GET_PLAIN, NULL);
    CHECK_EVENTUALLY(waiting_of(pool) == 1, 5000);
    CHECK(!getter_done(&g));
    int64_t t_close = now_ms();
    CHECK_STATUS(pool_close(pool), POOL_OK, NULL);
    getter_join(&g);
    CHECK_STATUS(g.rc, POOL_ERR_CLOSED, &g.err);
    CHECK(g.conn == NULL);
    if (CHECK_ERR_FILLED(&g.err, POOL_ERR_CLOSED))
        CHECK(strcmp(g.err.message, "redis: client is closed") == 0);
    CHECK(g.done_ms - t_close < scaled(1000));
    /* The conn held across the close is closed when it comes back. */
    int peer = peer_of(d, c1);
    CHECK_STATUS(pool_put(pool, c1), POOL_OK, NULL);
    CHECK_EQ(pool_len(pool), 0);
    if (peer >= 0) {
        char b;
        CHECK_EQ(recv(peer, &b, 1, MSG_DONTWAIT), 0); /* EOF: the pool closed its end */
    }
    finish(pool, d);

    section("pool_close wakes a thread waiting for its dial");
    /* The same dialer, now slow: the waiter is inside its own dial when the pool closes. */
    pthread_mutex_lock(&d->mu);
    d->abort_sleep = 0;
    pthread_mutex_unlock(&d->mu);
    const int64_t delay = scaled(2000);
    dialer_set(d, delay, 0);
    const int calls_before = dialer_calls(d);
    pool = new_pool(d, 2, scaled(20000));
    getter_start(&g, pool, GET_PLAIN, NULL);
    CHECK_EVENTUALLY(dialer_in_progress(d) == 1, 5000);
    CHECK(!getter_done(&g));
    t_close = now_ms();
    CHECK_STATUS(pool_close(pool), POOL_OK, NULL);
    getter_join(&g);
    CHECK_STATUS(g.rc, POOL_ERR_CLOSED, &g.err);
    CHECK(g.conn == NULL);
    if (!CHECK(g.done_ms - t_close < delay / 2))
        fprintf(stderr, "  (woke %" PRId64 " ms after the close; the dial takes %" PRId64 " ms)\n",
                g.done_ms - t_close, delay);
    CHECK_EQ(dialer_calls(d), calls_before + 1);
    finish(pool, d);
}

/* Whether the peer sees EOF: the pool closed (or shut down) its end. Drains what the
   pool wrote first. */
static int peer_sees_eof(int peer)
{
    char buf[256];
    for (;;) {
        ssize_t n = recv(peer, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return 1;
        if (n < 0)
            return 0;
    }
}

static int newest_peer(dialer_t *d)
{
    pthread_mutex_lock(&d->mu);
    int peer = d->ends > 0 ? d->peers[d->ends - 1] : -1;
    pthread_mutex_unlock(&d->mu);
    return peer;
}

/* A peer that never answers the session set-up (CLIENT SETNAME): with read_timeout_ms 0
   the dial is still bounded by dial_timeout_ms, and closing the pool ends the dial at
   once rather than when its time is up. */
static void test_silent_peer_during_set_up(void)
{
    section("silent peer during set-up: dial_timeout_ms bounds it with read_timeout_ms 0");
    dialer_t *d = &d_silent;
    const int64_t dial_timeout = scaled(300);
    pool_options_t o = dialer_options(d, 1, -1);
    o.client_name = "abi-dialer";
    o.read_timeout_ms = 0;
    o.write_timeout_ms = 0;
    o.dial_timeout_ms = dial_timeout;
    o.dialer_retries = 2;
    pool_t *pool = new_pool_or_exit(&o);
    getter_t g;
    int64_t t0 = now_ms();
    getter_start(&g, pool, GET_PLAIN, NULL);
    CHECK_EVENTUALLY(getter_done(&g), 3000);
    if (!getter_done(&g))
        pool_close(pool); /* releases the getter (before the fix: it waited forever) */
    getter_join(&g);
    CHECK_STATUS(g.rc, POOL_ERR_DIAL, &g.err);
    if (CHECK_ERR_FILLED(&g.err, POOL_ERR_DIAL) && !CHECK(strstr(g.err.message, "timeout")))
        fprintf(stderr, "  (message: %s)\n", g.err.message);
    CHECK(g.done_ms - t0 >= 2 * dial_timeout - 20);
    CHECK(g.done_ms - t0 < 2 * dial_timeout + scaled(1000));
    CHECK(dialer_calls(d) >= 2); /* then the fast-fail probe may dial again */
    finish(pool, d);

    section("silent peer during set-up: pool_close ends the dial at once");
    pthread_mutex_lock(&d->mu);
    d->abort_sleep = 0;
    pthread_mutex_unlock(&d->mu);
    o.dial_timeout_ms = DIAL_TIMEOUT_MS;
    o.dialer_retries = 1;
    pool = new_pool_or_exit(&o);
    const int calls_before = dialer_calls(d);
    getter_start(&g, pool, GET_PLAIN, NULL);
    CHECK_EVENTUALLY(dialer_calls(d) == calls_before + 1 && dialer_in_progress(d) == 0, 5000);
    int peer = newest_peer(d);
    CHECK(!getter_done(&g));
    int64_t t_close = now_ms();
    CHECK_STATUS(pool_close(pool), POOL_OK, NULL);
    getter_join(&g);
    CHECK_STATUS(g.rc, POOL_ERR_CLOSED, &g.err);
    CHECK(g.done_ms - t_close < scaled(1000));
    /* The dial's socket is shut down at once, not left to a set-up that never ends. */
    if (CHECK(peer >= 0))
        CHECK_EVENTUALLY(peer_sees_eof(peer), 1000);
    finish(pool, d);
}

/* ---- dialer_userdata_free ---------------------------------------------------- */

static atomic_int ud_frees;        /* calls of userdata_free */
static atomic_int ud_bad;          /* ... with another pointer, or while a dial ran */
static atomic_int ud_dials_at_free; /* dial calls made before the last free */

static void userdata_free(void *p)
{
    dialer_t *d = &d_userdata_free;
    if (p != d || dialer_in_progress(d) != 0)
        atomic_fetch_add(&ud_bad, 1);
    atomic_store(&ud_dials_at_free, dialer_calls(d));
    atomic_fetch_add(&ud_frees, 1);
}

/* The free callback of dialer_userdata runs exactly once per pool, once the pool is gone:
 * after pool_free, the last conn back and the last dial returned (one still running when
 * pool_free returns included). Never for a pool_new that failed, nor for a struct_size
 * that predates the field. */
static void test_dialer_userdata_free(void)
{
    section("dialer_userdata_free: called once per pool, after its last dial returned");
    dialer_t *d = &d_userdata_free;
    pool_options_t o = dialer_options(d, 2, scaled(5000));
    o.dialer_userdata_free = userdata_free;

    /* pool_new fails: the userdata stays the caller's. */
    pool_options_t bad = o;
    bad.pool_size = -1;
    pool_t *pool = NULL;
    CHECK_STATUS(pool_new(&bad, &pool, NULL), POOL_ERR_INVALID_ARG, NULL);
    /* An older struct_size: the field is not read. No dial ever ran: no library thread
       holds the pool, so pool_free drops it at once. */
    pool_options_t old = o;
    old.struct_size = offsetof(pool_options_t, dialer_userdata_free);
    pool = new_pool_or_exit(&old);
    pool_free(pool);
    CHECK_EQ(atomic_load(&ud_frees), 0);

    /* No dial: called by pool_free itself. */
    pool = new_pool_or_exit(&o);
    pool_free(pool);
    CHECK_EQ(atomic_load(&ud_frees), 1);

    /* A conn out keeps the pool (and the userdata) until it is back. */
    pool = new_pool_or_exit(&o);
    pool_conn_t *c = get_conn(pool);
    pool_free(pool);
    if (c != NULL) {
        CHECK_EQ(dialer_in_progress(d), 0);
        CHECK_EQ(atomic_load(&ud_frees), 1);
        CHECK_STATUS(pool_put(pool, c), POOL_OK, NULL);
    }
    CHECK_EVENTUALLY(atomic_load(&ud_frees) == 2, 5000);

    /* A dial still running when pool_free returns: called once it has returned. */
    dialer_set(d, scaled(60000), 0);
    pool = new_pool_or_exit(&o);
    CHECK_STATUS(pool_try_get(pool, &c), POOL_ERR_WOULD_BLOCK, NULL); /* starts a dial */
    CHECK_EVENTUALLY(dialer_in_progress(d) == 1, 5000);
    pool_free(pool);
    CHECK_EQ(dialer_in_progress(d), 1);
    CHECK_EQ(atomic_load(&ud_frees), 2);
    const int calls = dialer_calls(d);
    finish(pool, d); /* ends the dial (abort_sleep) and waits for it */
    CHECK_EVENTUALLY(atomic_load(&ud_frees) == 3, 5000);
    CHECK_EQ(atomic_load(&ud_dials_at_free), calls);
    CHECK_EQ(atomic_load(&ud_bad), 0);
    /* Exactly once each: nothing is left that could call it again. */
    CHECK_EQ(atomic_load(&ud_frees), 3);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("REDISPOOL_SLOW=%" PRId64 "\n", slow_factor());

    test_slow_dial_times_out_then_idles();
    test_failing_dial();
    test_fast_fail_after_pool_size_failures();
    test_stale_conns();
    test_cancel();
    test_handoff_to_waiter();
    test_close_wakes_waiters();
    test_silent_peer_during_set_up();
    test_dialer_userdata_free();

    CHECK_EQ(atomic_load(&dial_bad_userdata), 0);
    return check_exit_status();
}
