/*
 * abi_events.c - the pool as seen by event loops, cancellers, leak hunters and
 * forking servers, through the C ABI against a real redis-server.
 *
 *   ./abi_events HOST:PORT      (REDISPOOL_SLOW=N multiplies every time bound by N
 *                                and runs fewer rounds)
 *
 * Checks:
 *  - pool_notify_fd: one non-blocking, close-on-exec eventfd per pool, readable at
 *    first, made unreadable by a pool_try_get miss, readable again when a conn comes
 *    back (put, the background dial that miss started) and on close; pool_try_get
 *    never overtakes a get blocked for a turn;
 *  - the wake-up latency from a pool_put on one thread to a successful pool_try_get
 *    on a thread parked in epoll_wait on the notify fd (printed, loosely bounded);
 *  - pool_get_ex cancelled while waiting for a turn or for a slow dial: prompt, no turn
 *    left behind, the abandoned dial ends up idle and is used by the next get;
 *  - leak detection (leak_detection_threshold_ms / ?leak_detection_threshold=):
 *    pool_leaks, the leak_suspects and late_returns stats, and misuse;
 *  - fork(): parent and child never share a conn (SET/GET rounds in both at once
 *    would read each other's replies otherwise), a conn checked out across the fork
 *    is refused in the child and keeps working in the parent, forking while another
 *    thread is busy in the pool never deadlocks the child, sticky and single pools
 *    in the child.
 *
 * Prints one line per failed check (file:line) on stderr; exits 0 only if every
 * check passed. A forked child reports its own failures on stderr and exits 1;
 * the parent checks every child's exit status. Run by tests/c_abi.rs (also under
 * valgrind).
 */
#define _GNU_SOURCE

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"


static redis_server_t redis; /* argv[1] */

/* REDISPOOL_SLOW runs (valgrind) do fewer rounds: `normal`, or `slow` when slowed down. */
static int rounds(int normal, int slow)
{
    return slow_factor() > 1 ? slow : normal;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- fds ---------------------------------------------------------------------- */

/* 1 if `fd` polls readable right now, 0 if not, -1 on a poll error. */
static int fd_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    int r;
    do {
        r = poll(&p, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    return r == 1 && (p.revents & POLLIN) != 0;
}

/* Waits (at most `timeout_ms`, scaled) until `fd` is readable: 1, or 0 on timeout/error. */
static int wait_readable(int fd, int64_t timeout_ms)
{
    const int64_t deadline = now_ms() + scaled(timeout_ms);
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0)
            left = 0;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        return r == 1 && (p.revents & POLLIN) != 0;
    }
}

/* ---- commands through pool_conn_command (thread-safe: no check counters) -------- */

static int reply_is(const pool_reply_t *r, int32_t type, const char *want)
{
    return r != NULL && r->type == type && r->str != NULL && r->len == strlen(want) &&
           memcmp(r->str, want, r->len) == 0;
}

/* A one-line description of a command's outcome, for failure messages. */
static void describe_outcome(pool_status_t st, const pool_error_t *err, const pool_reply_t *r,
                             char *buf, size_t len)
{
    if (st != POOL_OK)
        snprintf(buf, len, "status %d (%s): %s", (int)st, pool_status_str(st), err->message);
    else if (r == NULL)
        snprintf(buf, len, "POOL_OK without a reply");
    else if (r->type == POOL_REPLY_INTEGER)
        snprintf(buf, len, "integer %" PRId64, r->integer);
    else if (r->str != NULL)
        snprintf(buf, len, "type %d \"%.*s\"", (int)r->type, (int)(r->len < 200 ? r->len : 200),
                 r->str);
    else
        snprintf(buf, len, "type %d", (int)r->type);
}

static pool_status_t command(pool_conn_t *conn, pool_reply_t **reply, pool_error_t *err,
                             int argc, const char *const *argv)
{
    *reply = NULL;
    err_reset(err);
    return pool_conn_command(conn, argc, argv, NULL, reply, err);
}

#define COMMAND(conn, reply, err, ...)                                                      \
    command((conn), (reply), (err),                                                         \
            (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)),             \
            (const char *const[]){__VA_ARGS__})

/* PING answers PONG. */
static int cmd_ping(pool_conn_t *conn)
{
    pool_reply_t *r;
    pool_error_t err;
    pool_status_t st = COMMAND(conn, &r, &err, "PING");
    int ok = st == POOL_OK && reply_is(r, POOL_REPLY_STATUS, "PONG");
    pool_reply_free(r);
    return ok;
}

/* The conn's Redis CLIENT ID, or -1. */
static long long cmd_client_id(pool_conn_t *conn)
{
    pool_reply_t *r;
    pool_error_t err;
    pool_status_t st = COMMAND(conn, &r, &err, "CLIENT", "ID");
    long long id = st == POOL_OK && r != NULL && r->type == POOL_REPLY_INTEGER ? r->integer : -1;
    pool_reply_free(r);
    return id;
}

/*
 * SET key val, then GET key must answer exactly val: two processes (or threads)
 * sharing one socket would read each other's replies here. 1 on success; else 0
 * and `why` says what came back.
 */
static int set_get(pool_conn_t *conn, const char *key, const char *val, char *why, size_t len)
{
    pool_reply_t *r;
    pool_error_t err;
    pool_status_t st = COMMAND(conn, &r, &err, "SET", key, val);
    if (st != POOL_OK || !reply_is(r, POOL_REPLY_STATUS, "OK")) {
        char d[320];
        describe_outcome(st, &err, r, d, sizeof d);
        snprintf(why, len, "SET %s: %s", key, d);
        pool_reply_free(r);
        return 0;
    }
    pool_reply_free(r);
    st = COMMAND(conn, &r, &err, "GET", key);
    if (st != POOL_OK || !reply_is(r, POOL_REPLY_STRING, val)) {
        char d[320];
        describe_outcome(st, &err, r, d, sizeof d);
        snprintf(why, len, "GET %s: want \"%s\", got %s", key, val, d);
        pool_reply_free(r);
        return 0;
    }
    pool_reply_free(r);
    return 1;
}

/* One round: pool_get, SET/GET a value unique to this process and round, pool_put. */
static int kv_round(pool_t *pool, const char *prefix, int i, char *why, size_t len)
{
    char key[96], val[128];
    snprintf(key, sizeof key, "%s:key:%d", prefix, i);
    snprintf(val, sizeof val, "%s-pid%d-round%d-%" PRId64, prefix, (int)getpid(), i, now_ns());
    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    pool_status_t st = pool_get(pool, &conn, &err);
    if (st != POOL_OK) {
        snprintf(why, len, "pool_get: %s: %s", pool_status_str(st), err.message);
        return 0;
    }
    int ok = set_get(conn, key, val, why, len);
    st = pool_put(pool, conn);
    if (ok && st != POOL_OK) {
        snprintf(why, len, "pool_put: %s", pool_status_str(st));
        ok = 0;
    }
    return ok;
}

/* Runs `n` kv rounds on this thread; the number that failed (each reported on stderr). */
static int kv_rounds(pool_t *pool, const char *prefix, int n)
{
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char why[512];
        if (!kv_round(pool, prefix, i, why, sizeof why)) {
            if (failed++ < 5)
                fprintf(stderr, "  (pid %d, %s round %d: %s)\n", (int)getpid(), prefix, i, why);
        }
    }
    return failed;
}

/* kv rounds on their own thread. */
typedef struct kv_thread {
    pthread_t thread;
    pool_t *pool;
    char prefix[64];
    int n;
    int failed;
} kv_thread_t;

static void *kv_thread_main(void *arg)
{
    kv_thread_t *t = arg;
    t->failed = kv_rounds(t->pool, t->prefix, t->n);
    return NULL;
}

/* ---- a dialer that sleeps, then connects to the real server ---------------------- */

typedef struct slow_dialer {
    int64_t delay_ms;
    atomic_int calls;
    atomic_int in_progress;
    atomic_llong finished_ns; /* when the last dial returned its fd */
} slow_dialer_t;

/* One per scenario, for the whole program: a dial may outlive its pool. */
static slow_dialer_t dial_notify;
static slow_dialer_t dial_cancel;

static int slow_dial(void *userdata, int64_t timeout_ms, int *fd_out)
{
    (void)timeout_ms;
    slow_dialer_t *d = userdata;
    atomic_fetch_add(&d->calls, 1);
    atomic_fetch_add(&d->in_progress, 1);
    sleep_ms(d->delay_ms);
    int fd = redis_connect(&redis);
    int rc = fd >= 0 ? 0 : (errno != 0 ? errno : ECONNREFUSED);
    if (fd >= 0)
        *fd_out = fd;
    atomic_store(&d->finished_ns, (long long)now_ns());
    atomic_fetch_sub(&d->in_progress, 1);
    return rc;
}

static pool_t *slow_dial_pool(slow_dialer_t *d, int64_t delay_ms, int32_t pool_size)
{
    d->delay_ms = delay_ms;
    atomic_store(&d->calls, 0);
    atomic_store(&d->in_progress, 0);
    atomic_store(&d->finished_ns, 0);
    pool_options_t o;
    pool_options_init(&o);
    o.addr = NULL;
    o.dialer = slow_dial;
    o.dialer_userdata = d;
    o.pool_size = pool_size;
    o.pool_timeout_ms = scaled(10000);
    o.dial_timeout_ms = scaled(5000);
    o.dialer_retries = 1;
    return new_pool_or_exit(&o);
}

/* pool_try_get that must find nothing. */
#define CHECK_TRY_MISSES(pool) check_try_misses((pool), __FILE__, __LINE__)

static int check_try_misses(pool_t *pool, const char *file, int line)
{
    pool_conn_t *conn = NULL;
    pool_status_t rc = pool_try_get(pool, &conn);
    int ok = check_status(rc, POOL_ERR_WOULD_BLOCK, NULL, file, line, "pool_try_get(pool, &conn)");
    if (conn != NULL) {
        check_fail(file, line, "a missing pool_try_get handed out a conn");
        pool_put(pool, conn);
        ok = 0;
    }
    return ok;
}

/* pool_try_get that must succeed: the conn, or NULL after a failed check. */
#define TRY_GET_OK(pool) try_get_ok((pool), __FILE__, __LINE__)

static pool_conn_t *try_get_ok(pool_t *pool, const char *file, int line)
{
    pool_conn_t *conn = NULL;
    pool_status_t rc = pool_try_get(pool, &conn);
    if (!check_status(rc, POOL_OK, NULL, file, line, "pool_try_get(pool, &conn)"))
        return NULL;
    check_total++;
    if (conn == NULL)
        check_fail(file, line, "pool_try_get: POOL_OK without a conn");
    return conn;
}

/* ---- 1. notify fd basics ------------------------------------------------------------ */

static void test_notify_basics(void)
{
    section("notify fd: nonblocking, cloexec, unreadable after a miss, readable on dial, put, "
            "close");
    CHECK_EQ(pool_notify_fd(NULL), -1);

    /* A dialer that takes 300 ms: the fd is observably unreadable until the dial is done. */
    const int64_t delay = scaled(300);
    pool_t *pool = slow_dial_pool(&dial_notify, delay, 1);
    const int fd = pool_notify_fd(pool);
    if (!CHECK(fd >= 0)) {
        pool_free(pool);
        return;
    }
    CHECK_EQ(pool_notify_fd(pool), fd);
    CHECK_EQ(pool_notify_fd(pool), fd);
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl != -1 && (fl & O_NONBLOCK) != 0);
    int fdfl = fcntl(fd, F_GETFD);
    CHECK(fdfl != -1 && (fdfl & FD_CLOEXEC) != 0);
    CHECK_EQ(fd_readable(fd), 1); /* starts readable: a loop tries pool_try_get once */

    /* A miss drains it and starts one background dial. */
    const int64_t t0 = now_ms();
    CHECK_TRY_MISSES(pool);
    CHECK_EQ(fd_readable(fd), 0);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.misses, 1);
    CHECK_EQ(s.dials_in_progress, 1);
    CHECK_EQ(s.dials, 0);
    /* A second miss while that dial runs starts no other dial (the only turn is taken). */
    CHECK_TRY_MISSES(pool);
    CHECK_EQ(fd_readable(fd), 0);

    /* The dial's conn lands in the idle list and makes the fd readable. */
    CHECK(wait_readable(fd, 300 + 5000));
    if (!CHECK(now_ms() - t0 >= delay / 2))
        fprintf(stderr, "  (readable %" PRId64 " ms after the miss; the dial takes %" PRId64
                        " ms)\n",
                now_ms() - t0, delay);
    CHECK_EQ(pool_idle_len(pool), 1);
    pool_conn_t *conn = TRY_GET_OK(pool);
    if (conn == NULL) {
        pool_free(pool);
        return;
    }
    const uint64_t id = pool_conn_id(conn);
    CHECK(cmd_ping(conn));
    s = stats_of(pool);
    CHECK_EQ(s.dials, 1);
    CHECK_EQ(s.hits, 1);
    CHECK_EQ(atomic_load(&dial_notify.calls), 1);

    /* The only turn is taken: a miss drains the fd and dials nothing. */
    CHECK_TRY_MISSES(pool);
    CHECK_EQ(fd_readable(fd), 0);
    CHECK_EQ(stats_of(pool).dials_in_progress, 0);

    /* pool_put makes it readable; the next pool_try_get gets that very conn. */
    CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    CHECK_EQ(fd_readable(fd), 1);
    conn = TRY_GET_OK(pool);
    if (conn != NULL)
        CHECK_EQ(pool_conn_id(conn), id);

    /* Reading the fd is harmless: the next miss and put still toggle it. */
    CHECK_TRY_MISSES(pool);
    CHECK_EQ(fd_readable(fd), 0);
    if (conn != NULL)
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    CHECK_EQ(fd_readable(fd), 1);
    uint64_t counter = 0;
    CHECK_EQ(read(fd, &counter, sizeof counter), (ssize_t)sizeof counter);
    CHECK(counter >= 1);
    conn = TRY_GET_OK(pool);
    CHECK_TRY_MISSES(pool);
    CHECK_EQ(fd_readable(fd), 0);
    if (conn != NULL)
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    CHECK_EQ(fd_readable(fd), 1);

    /* pool_close makes it readable, and pool_try_get then reports the close. */
    conn = TRY_GET_OK(pool);
    CHECK_TRY_MISSES(pool);
    CHECK_EQ(fd_readable(fd), 0);
    CHECK_STATUS(pool_close(pool), POOL_OK, NULL);
    CHECK_EQ(fd_readable(fd), 1);
    pool_conn_t *none = NULL;
    CHECK_STATUS(pool_try_get(pool, &none), POOL_ERR_CLOSED, NULL);
    CHECK(none == NULL);
    CHECK_EQ(pool_notify_fd(pool), fd); /* still the pool's fd until pool_free */
    if (conn != NULL)
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    CHECK_EQ(atomic_load(&dial_notify.calls), 1);
    pool_free(pool);

    /* The same with the library's own dialer: a miss dials, the fd says when it is done. */
    pool_options_t o = redis_pool_options(&redis, 2, scaled(5000));
    pool = new_pool_or_exit(&o);
    const int fd2 = pool_notify_fd(pool);
    CHECK(fd2 >= 0); /* (the number may be reused: the first pool's fd is closed) */
    CHECK_TRY_MISSES(pool);
    CHECK(wait_readable(fd2, 5000));
    conn = TRY_GET_OK(pool);
    if (conn != NULL) {
        CHECK(cmd_ping(conn));
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    }
    CHECK_EQ(stats_of(pool).dials, 1);
    pool_free(pool);
}

static void test_try_get_never_overtakes(void)
{
    section("notify fd: pool_try_get never overtakes a blocked pool_get");
    pool_options_t o = redis_pool_options(&redis, 1, scaled(20000));
    pool_t *pool = new_pool_or_exit(&o);
    const int fd = pool_notify_fd(pool);
    CHECK(fd >= 0);
    pool_conn_t *c1 = get_conn(pool);
    if (c1 == NULL) {
        pool_free(pool);
        return;
    }
    const uint64_t id1 = pool_conn_id(c1);

    getter_t g;
    getter_start(&g, pool, GET_PLAIN, NULL);
    CHECK_EVENTUALLY(waiting_of(pool) == 1, 5000);
    CHECK_TRY_MISSES(pool);
    CHECK(!getter_done(&g));

    /* The put hands the conn to the waiter, not to the idle list: try_get still misses. */
    CHECK_STATUS(pool_put(pool, c1), POOL_OK, NULL);
    CHECK_TRY_MISSES(pool);
    getter_join(&g);
    CHECK_STATUS(g.rc, POOL_OK, &g.err);
    if (g.conn != NULL) {
        CHECK_EQ(pool_conn_id(g.conn), id1);
        CHECK(cmd_ping(g.conn));
    }
    CHECK_TRY_MISSES(pool);
    CHECK_EQ(pool_idle_len(pool), 0);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.wait_count, 1);
    CHECK_EQ(s.dials, 1);

    /* Once the waiter gives it back, the fd is readable and try_get gets it. */
    if (g.conn != NULL)
        CHECK_STATUS(pool_put(pool, g.conn), POOL_OK, NULL);
    CHECK_EQ(fd_readable(fd), 1);
    pool_conn_t *c2 = TRY_GET_OK(pool);
    if (c2 != NULL) {
        CHECK_EQ(pool_conn_id(c2), id1);
        CHECK_STATUS(pool_put(pool, c2), POOL_OK, NULL);
    }
    pool_free(pool);
}

/* ---- 2. notify-to-get latency ------------------------------------------------------- */

enum { LAT_WORKER_GETTING, LAT_WORKER_HOLDS, LAT_MAIN_WAITING, LAT_WORKER_PUTTING };

typedef struct latency_run {
    pool_t *pool;
    int rounds;
    atomic_int phase;
    atomic_int stop;
    atomic_llong put_ns; /* taken by the worker right before its pool_put */
    int worker_failures;
    char worker_error[512];
} latency_run_t;

/* Spins (yielding, with short sleeps) until `phase` is `want` or `stop`; 0 on timeout. */
static int wait_phase(latency_run_t *run, int want, int64_t timeout_ms)
{
    const int64_t deadline = now_ms() + scaled(timeout_ms);
    for (unsigned spins = 0;; spins++) {
        if (atomic_load(&run->phase) == want)
            return 1;
        if (atomic_load(&run->stop) || now_ms() >= deadline)
            return 0;
        if (spins < 100) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}

static void *latency_worker(void *arg)
{
    latency_run_t *run = arg;
    for (int i = 0; i < run->rounds && !atomic_load(&run->stop); i++) {
        pool_conn_t *conn = NULL;
        pool_error_t err;
        err_reset(&err);
        pool_status_t rc = pool_get(run->pool, &conn, &err);
        if (rc != POOL_OK) {
            run->worker_failures++;
            snprintf(run->worker_error, sizeof run->worker_error, "round %d: pool_get: %s: %s", i,
                     pool_status_str(rc), err.message);
            atomic_store(&run->stop, 1);
            break;
        }
        atomic_store(&run->phase, LAT_WORKER_HOLDS);
        if (!wait_phase(run, LAT_MAIN_WAITING, 10000)) {
            pool_put(run->pool, conn);
            break;
        }
        atomic_store(&run->phase, LAT_WORKER_PUTTING);
        /* Give the main thread time to be parked in epoll_wait. */
        struct timespec ts = {0, 300000};
        nanosleep(&ts, NULL);
        atomic_store(&run->put_ns, (long long)now_ns());
        if (pool_put(run->pool, conn) != POOL_OK) {
            run->worker_failures++;
            snprintf(run->worker_error, sizeof run->worker_error, "round %d: pool_put failed", i);
        }
        /* No pool_get before the main thread's pool_try_get: it would take the conn back. */
        if (!wait_phase(run, LAT_WORKER_GETTING, 10000))
            break;
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_notify_latency(void)
{
    section("notify fd: put on one thread -> epoll_wait wakes -> pool_try_get, latency");
    pool_options_t o = redis_pool_options(&redis, 1, scaled(20000));
    pool_t *pool = new_pool_or_exit(&o);
    const int fd = pool_notify_fd(pool);
    const int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (!CHECK(fd >= 0) || !CHECK(epfd >= 0) ||
        !CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev), 0)) {
        if (epfd >= 0)
            close(epfd);
        pool_free(pool);
        return;
    }

    latency_run_t run;
    memset(&run, 0, sizeof run);
    run.pool = pool;
    run.rounds = rounds(200, 20);
    atomic_init(&run.phase, LAT_WORKER_GETTING);
    atomic_init(&run.stop, 0);
    atomic_init(&run.put_ns, 0);
    int64_t *lat_ns = calloc((size_t)run.rounds, sizeof *lat_ns);
    if (lat_ns == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }

    pthread_t worker;
    start_thread(&worker, latency_worker, &run);
    int done = 0, misses_bad = 0, still_readable = 0, wait_bad = 0, get_bad = 0, slow = 0;
    for (int i = 0; i < run.rounds; i++) {
        if (!wait_phase(&run, LAT_WORKER_HOLDS, 10000)) {
            check_fail(__FILE__, __LINE__, "round %d: the worker never got the conn", i);
            break;
        }
        /* The worker holds the only conn: a miss drains the fd (and dials nothing). */
        pool_conn_t *conn = NULL;
        if (pool_try_get(pool, &conn) != POOL_ERR_WOULD_BLOCK) {
            misses_bad++;
            if (conn != NULL)
                pool_put(pool, conn);
        }
        if (fd_readable(fd) != 0)
            still_readable++;
        atomic_store(&run.phase, LAT_MAIN_WAITING);
        struct epoll_event got;
        int n;
        do {
            n = epoll_wait(epfd, &got, 1, (int)scaled(2000));
        } while (n < 0 && errno == EINTR);
        if (n != 1 || got.data.fd != fd) {
            wait_bad++;
            if (wait_bad <= 3)
                fprintf(stderr, "  (round %d: epoll_wait returned %d)\n", i, n);
        }
        conn = NULL;
        pool_status_t rc = pool_try_get(pool, &conn);
        const int64_t t1 = now_ns();
        if (rc != POOL_OK || conn == NULL) {
            get_bad++;
            if (get_bad <= 3)
                fprintf(stderr, "  (round %d: pool_try_get after the wake-up: %s)\n", i,
                        pool_status_str(rc));
            /* Let the worker finish the round anyway. */
            rc = pool_get(pool, &conn, NULL);
            if (rc != POOL_OK)
                break;
        } else {
            lat_ns[done] = t1 - (int64_t)atomic_load(&run.put_ns);
            if (lat_ns[done] >= scaled(2000) * 1000000)
                slow++;
            done++;
        }
        atomic_store(&run.phase, LAT_WORKER_GETTING);
        pool_put(pool, conn);
    }
    atomic_store(&run.stop, 1);
    pthread_join(worker, NULL);

    CHECK_EQ(run.worker_failures, 0);
    if (run.worker_failures != 0)
        fprintf(stderr, "  (worker: %s)\n", run.worker_error);
    CHECK_EQ(misses_bad, 0);
    CHECK_EQ(still_readable, 0);
    CHECK_EQ(wait_bad, 0);
    CHECK_EQ(get_bad, 0);
    CHECK_EQ(slow, 0);
    CHECK_EQ(done, run.rounds);
    if (done > 0) {
        qsort(lat_ns, (size_t)done, sizeof *lat_ns, cmp_i64);
        int p99 = (done * 99) / 100;
        if (p99 >= done)
            p99 = done - 1;
        printf("notify-to-get latency: p50=%" PRId64 "us p99=%" PRId64 "us max=%" PRId64
               "us (%d rounds)\n",
               lat_ns[done / 2] / 1000, lat_ns[p99] / 1000, lat_ns[done - 1] / 1000, done);
        CHECK(lat_ns[0] >= 0);
    }
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.dials, 1); /* one conn went back and forth */
    CHECK_EQ(s.total_conns, 1);
    free(lat_ns);
    close(epfd);
    pool_free(pool);
}

/* ---- 3. cancellation ---------------------------------------------------------------- */

/* pool_get_ex on its own thread, its return time in ns. */
typedef struct ex_getter {
    pthread_t thread;
    pool_t *pool;
    int64_t timeout_ms;
    const pool_cancel_t *cancel;
    pool_status_t rc;
    pool_conn_t *conn;
    pool_error_t err;
    atomic_llong returned_ns;
} ex_getter_t;

static void *ex_getter_main(void *arg)
{
    ex_getter_t *g = arg;
    err_reset(&g->err);
    g->rc = pool_get_ex(g->pool, g->timeout_ms, g->cancel, &g->conn, &g->err);
    atomic_store(&g->returned_ns, (long long)now_ns());
    return NULL;
}

typedef struct firer {
    pthread_t thread;
    const pool_cancel_t *cancel;
    int64_t after_ms;
    atomic_llong fired_ns;
} firer_t;

static void *firer_main(void *arg)
{
    firer_t *f = arg;
    sleep_ms(f->after_ms);
    atomic_store(&f->fired_ns, (long long)now_ns());
    pool_cancel_fire(f->cancel);
    return NULL;
}

/* Runs a canceled pool_get_ex (fired `after_ms` in) and checks the outcome; latency in us. */
static int64_t canceled_get(pool_t *pool, pool_cancel_t *cancel, int wait_for_queue,
                            int64_t *returned_ns)
{
    ex_getter_t g;
    memset(&g, 0, sizeof g);
    g.pool = pool;
    g.timeout_ms = 10000;
    g.cancel = cancel;
    atomic_init(&g.returned_ns, 0);
    firer_t f;
    memset(&f, 0, sizeof f);
    f.cancel = cancel;
    f.after_ms = 50;
    atomic_init(&f.fired_ns, 0);
    start_thread(&g.thread, ex_getter_main, &g);
    /* Fire only once the get really waits: 1 = queued for a turn, 2 = its dial started. */
    if (wait_for_queue == 1)
        CHECK_EVENTUALLY(waiting_of(pool) == 1, 5000);
    else if (wait_for_queue == 2)
        CHECK_EVENTUALLY(stats_of(pool).dials_in_progress == 1, 5000);
    start_thread(&f.thread, firer_main, &f);
    pthread_join(f.thread, NULL);
    int ok;
    POLL_UNTIL(ok, atomic_load(&g.returned_ns) != 0, 10000);
    if (!CHECK(ok)) {
        fprintf(stderr, "  (pool_get_ex ignored the fired token: closing the pool)\n");
        pool_close(pool);
    }
    pthread_join(g.thread, NULL);

    const int64_t lat_us = ((int64_t)atomic_load(&g.returned_ns) - atomic_load(&f.fired_ns)) / 1000;
    CHECK_STATUS(g.rc, POOL_ERR_CANCELED, &g.err);
    CHECK_ERR_FILLED(&g.err, POOL_ERR_CANCELED);
    if (!CHECK(g.conn == NULL))
        pool_put(pool, g.conn);
    CHECK(lat_us >= 0);
    if (!CHECK(lat_us < scaled(1000) * 1000))
        fprintf(stderr, "  (returned %" PRId64 " us after the fire)\n", lat_us);
    *returned_ns = (int64_t)atomic_load(&g.returned_ns);
    return lat_us;
}

static void test_cancel(void)
{
    section("cancel while waiting for a turn: prompt, no turn left behind");
    pool_options_t o = redis_pool_options(&redis, 1, scaled(20000));
    pool_t *pool = new_pool_or_exit(&o);
    pool_cancel_t *cancel = pool_cancel_new();
    pool_conn_t *held = get_conn(pool);
    if (!CHECK(cancel != NULL) || held == NULL) {
        if (held != NULL)
            pool_put(pool, held);
        pool_cancel_free(cancel);
        pool_free(pool);
        return;
    }
    int64_t returned_ns;
    int64_t lat = canceled_get(pool, cancel, 1, &returned_ns);
    printf("cancel latency: %" PRId64 "us (waiting for a turn)\n", lat);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.waiting, 0);
    CHECK_EQ(s.pending_requests, 0);
    CHECK_EQ(s.timeouts, 0);

    /* No turn left behind: with the conn back, a no-wait get succeeds at once. */
    CHECK_STATUS(pool_put(pool, held), POOL_OK, NULL);
    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    int64_t t0 = now_ms();
    CHECK_STATUS(pool_get_ex(pool, 0, NULL, &conn, &err), POOL_OK, &err);
    CHECK(now_ms() - t0 < scaled(1000));
    s = stats_of(pool);
    CHECK_EQ(s.total_conns, 1);
    CHECK_EQ(s.dials, 1);
    if (conn != NULL) {
        CHECK(cmd_ping(conn));
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    }
    pool_cancel_free(cancel);
    pool_free(pool);

    section("cancel while waiting for a slow dial: the dial is not wasted");
    const int64_t delay = scaled(300);
    pool = slow_dial_pool(&dial_cancel, delay, 1);
    cancel = pool_cancel_new();
    if (!CHECK(cancel != NULL)) {
        pool_free(pool);
        return;
    }
    lat = canceled_get(pool, cancel, 2, &returned_ns);
    printf("cancel latency: %" PRId64 "us (waiting for a %" PRId64 " ms dial)\n", lat, delay);
    CHECK_EVENTUALLY(atomic_load(&dial_cancel.calls) == 1, 5000);

    /* The dial goes on, and its conn ends up idle. */
    CHECK_EVENTUALLY(pool_idle_len(pool) == 1, 300 + 5000);
    const int64_t finished = (int64_t)atomic_load(&dial_cancel.finished_ns);
    if (!CHECK(finished != 0 && returned_ns < finished))
        fprintf(stderr, "  (the get returned %" PRId64 " us after the dial finished)\n",
                (returned_ns - finished) / 1000);
    s = stats_of(pool);
    CHECK_EQ(s.dials, 1);
    CHECK_EQ(s.dials_in_progress, 0);
    CHECK_EQ(s.total_conns, 1);
    CHECK_EQ(s.pending_requests, 0);

    /* The next get takes it without dialing. */
    conn = get_conn(pool);
    if (conn != NULL) {
        CHECK(cmd_ping(conn));
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    }
    s = stats_of(pool);
    CHECK_EQ(s.dials, 1);
    CHECK_EQ(s.hits, 1);
    CHECK_EQ(atomic_load(&dial_cancel.calls), 1);
    pool_cancel_free(cancel);
    pool_free(pool);
    CHECK_EVENTUALLY(atomic_load(&dial_cancel.in_progress) == 0, 5000);
}

/* ---- 4. leak detection ---------------------------------------------------------------- */

#define LEAK_THRESHOLD_MS 100

/* Two conns held past the threshold are listed, counted, and counted again when back. */
static void check_leaks(pool_t *pool)
{
    pool_error_t err;
    size_t count = 99;
    pool_leak_t out[4];

    int64_t t_get = now_ms();
    pool_conn_t *c1 = get_conn(pool);
    /* Held for a moment only: not a suspect (unless this thread stalled past the threshold). */
    err_reset(&err);
    CHECK_STATUS(pool_leaks(pool, out, 4, &count, &err), POOL_OK, &err);
    const uint32_t suspects = stats_of(pool).leak_suspects;
    int64_t held_at_most = now_ms() - t_get;
    if (!CHECK((count == 0 && suspects == 0) || held_at_most >= LEAK_THRESHOLD_MS))
        fprintf(stderr, "  (count %zu, leak_suspects %" PRIu32 " after %" PRId64 " ms)\n", count,
                suspects, held_at_most);
    sleep_ms(20);
    pool_conn_t *c2 = get_conn(pool);
    if (c1 == NULL || c2 == NULL) {
        if (c1 != NULL)
            pool_put(pool, c1);
        if (c2 != NULL)
            pool_put(pool, c2);
        return;
    }
    const uint64_t id1 = pool_conn_id(c1), id2 = pool_conn_id(c2);
    CHECK_NE(id1, id2);

    sleep_ms(LEAK_THRESHOLD_MS + 60);
    memset(out, 0xA5, sizeof out);
    pool_leak_t untouched;
    memset(&untouched, 0xA5, sizeof untouched);
    count = 99;
    err_reset(&err);
    CHECK_STATUS(pool_leaks(pool, out, 4, &count, &err), POOL_OK, &err);
    CHECK_EQ(err.code, ERR_UNTOUCHED);
    if (CHECK_EQ(count, 2)) {
        CHECK_EQ(out[0].conn_id, id1); /* longest held first */
        CHECK_EQ(out[1].conn_id, id2);
        CHECK(out[0].held_ms >= LEAK_THRESHOLD_MS);
        CHECK(out[1].held_ms >= LEAK_THRESHOLD_MS);
        CHECK(out[0].held_ms >= out[1].held_ms);
        CHECK(out[0].held_ms < scaled(60000));
        CHECK(memcmp(&out[2], &untouched, sizeof untouched) == 0);
        printf("leaks: conn %" PRIu64 " held %" PRId64 " ms, conn %" PRIu64 " held %" PRId64
               " ms\n",
               out[0].conn_id, out[0].held_ms, out[1].conn_id, out[1].held_ms);
    }

    /* A smaller buffer: only `cap` entries written, the full count reported. */
    memset(out, 0xA5, sizeof out);
    count = 99;
    CHECK_STATUS(pool_leaks(pool, out, 1, &count, &err), POOL_OK, &err);
    CHECK_EQ(count, 2);
    CHECK_EQ(out[0].conn_id, id1);
    CHECK(memcmp(&out[1], &untouched, sizeof untouched) == 0);
    count = 99;
    CHECK_STATUS(pool_leaks(pool, NULL, 0, &count, &err), POOL_OK, &err);
    CHECK_EQ(count, 2);

    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.leak_suspects, 2);
    CHECK_EQ(s.late_returns, 0);

    /* Given back (put or remove): counted as late returns, no longer suspects. */
    CHECK_STATUS(pool_put(pool, c1), POOL_OK, NULL);
    s = stats_of(pool);
    CHECK_EQ(s.leak_suspects, 1);
    CHECK_EQ(s.late_returns, 1);
    CHECK_STATUS(pool_remove(pool, c2, "leaked"), POOL_OK, NULL);
    s = stats_of(pool);
    CHECK_EQ(s.leak_suspects, 0);
    CHECK_EQ(s.late_returns, 2);
    count = 99;
    CHECK_STATUS(pool_leaks(pool, out, 4, &count, &err), POOL_OK, &err);
    CHECK_EQ(count, 0);

    /* A conn given back in time is no late return (unless this thread stalled). */
    t_get = now_ms();
    pool_conn_t *c3 = get_conn(pool);
    if (c3 != NULL)
        CHECK_STATUS(pool_put(pool, c3), POOL_OK, NULL);
    held_at_most = now_ms() - t_get;
    s = stats_of(pool);
    CHECK(s.late_returns == 2 || held_at_most >= LEAK_THRESHOLD_MS);
    CHECK_EQ(s.leak_suspects, 0);
}

static void test_leaks(void)
{
    section("leak detection: pool_new with leak_detection_threshold_ms");
    pool_options_t o = redis_pool_options(&redis, 4, scaled(5000));
    o.leak_detection_threshold_ms = LEAK_THRESHOLD_MS;
    pool_t *pool = new_pool_or_exit(&o);
    check_leaks(pool);
    pool_free(pool);

    section("leak detection: pool_new_url with ?leak_detection_threshold=100ms");
    char url[512];
    snprintf(url, sizeof url, "redis://%s?pool_size=4&leak_detection_threshold=%dms", redis.addr,
             LEAK_THRESHOLD_MS);
    pool = NULL;
    pool_error_t err;
    err_reset(&err);
    if (CHECK_STATUS(pool_new_url(url, &pool, &err), POOL_OK, &err) && CHECK(pool != NULL)) {
        check_leaks(pool);
        pool_free(pool);
    }
    /* A malformed duration names the option. */
    snprintf(url, sizeof url, "redis://%s?leak_detection_threshold=soon", redis.addr);
    pool = NULL;
    err_reset(&err);
    CHECK_STATUS(pool_new_url(url, &pool, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(pool == NULL);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_INVALID_ARG))
        CHECK_CONTAINS(err.message, "leak_detection_threshold");

    section("leak detection: misuse");
    o = redis_pool_options(&redis, 2, scaled(5000));
    o.leak_detection_threshold_ms = LEAK_THRESHOLD_MS;
    pool = new_pool_or_exit(&o);
    pool_leak_t out[2];
    size_t count = 0;

    err_reset(&err);
    CHECK_STATUS(pool_leaks(NULL, out, 2, &count, &err), POOL_ERR_INVALID_ARG, &err);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_INVALID_ARG))
        CHECK_CONTAINS(err.message, "pool");
    err_reset(&err);
    CHECK_STATUS(pool_leaks(pool, out, 2, NULL, &err), POOL_ERR_INVALID_ARG, &err);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_INVALID_ARG))
        CHECK_CONTAINS(err.message, "count_out");
    err_reset(&err);
    CHECK_STATUS(pool_leaks(pool, NULL, 2, &count, &err), POOL_ERR_INVALID_ARG, &err);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_INVALID_ARG))
        CHECK_CONTAINS(err.message, "out");
    CHECK_STATUS(pool_leaks(pool, out, 2, &count, NULL), POOL_OK, NULL); /* err_out may be NULL */
    CHECK_EQ(count, 0);

    /* A sticky pool has no list of its own: ask the parent. */
    pool_t *sticky = NULL;
    if (CHECK_STATUS(pool_sticky_new(pool, &sticky), POOL_OK, NULL)) {
        err_reset(&err);
        CHECK_STATUS(pool_leaks(sticky, out, 2, &count, &err), POOL_ERR_INVALID_ARG, &err);
        CHECK_ERR_FILLED(&err, POOL_ERR_INVALID_ARG);
        pool_free(sticky);
    }
    pool_free(pool);

    /* Leak detection off (the default). */
    o = redis_pool_options(&redis, 2, scaled(5000));
    pool = new_pool_or_exit(&o);
    err_reset(&err);
    count = 99;
    CHECK_STATUS(pool_leaks(pool, out, 2, &count, &err), POOL_ERR_INVALID_ARG, &err);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_INVALID_ARG))
        CHECK_CONTAINS(err.message, "leak_detection_threshold_ms");
    pool_conn_t *conn = get_conn(pool);
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.leak_suspects, 0);
    CHECK_EQ(s.late_returns, 0);
    if (conn != NULL)
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    pool_free(pool);

    /* A negative threshold is refused, naming the field. */
    o = redis_pool_options(&redis, 2, scaled(5000));
    o.leak_detection_threshold_ms = -5;
    pool = NULL;
    err_reset(&err);
    CHECK_STATUS(pool_new(&o, &pool, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK(pool == NULL);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_INVALID_ARG))
        CHECK_CONTAINS(err.message, "leak_detection_threshold_ms");
}

/* ---- 5. fork ---------------------------------------------------------------------------- */

/* The child's alarm: a deadlock kills it with SIGALRM instead of hanging the test. */
static void child_alarm(int64_t seconds)
{
    alarm((unsigned)(seconds * slow_factor()));
}

/* First thing in a child: count only the child's own checks (it inherited the parent's). */
static void child_start(const char *name, int64_t alarm_seconds)
{
    check_failures = 0;
    check_total = 0;
    check_section = name;
    child_alarm(alarm_seconds);
}


/* In a child: its own verdict as exit status (its failures are already on stderr); see
 * check_child_exit for valgrind. */
static void child_exit(void)
{
    check_child_exit(check_failures == 0 ? 0 : 1);
}

/* fork() with stdio flushed first, so nothing buffered is written twice. */
static pid_t fork_flushed(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fork failed: %s\n", strerror(errno));
        exit(1);
    }
    return pid;
}

/* Waits (bounded) for `pid`, killing it if it is still running; checks it exited 0. */
#define CHECK_CHILD_OK(pid, timeout_ms, what) \
    check_child_ok((pid), (timeout_ms), (what), __FILE__, __LINE__)

static int check_child_ok(pid_t pid, int64_t timeout_ms, const char *what, const char *file,
                          int line)
{
    const int64_t deadline = now_ms() + scaled(timeout_ms);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            check_total++;
            check_fail(file, line, "%s: waitpid: %s", what, strerror(errno));
            return 0;
        }
        if (now_ms() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            check_total++;
            check_fail(file, line, "%s: still running after %" PRId64 " ms: killed", what,
                       scaled(timeout_ms));
            return 0;
        }
        sleep_ms(2);
    }
    check_total++;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    if (WIFEXITED(status))
        check_fail(file, line, "%s: exited with status %d", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        check_fail(file, line, "%s: killed by signal %d (%s)%s", what, WTERMSIG(status),
                   strsignal(WTERMSIG(status)),
                   WTERMSIG(status) == SIGALRM ? ": a deadlock in the child?" : "");
    else
        check_fail(file, line, "%s: status 0x%x", what, (unsigned)status);
    return 0;
}

/* What the parent knows before the fork, read by the child from its copy. */
static uint64_t parent_conn_ids[2];
static long long parent_client_ids[2];

static int is_parent_client(long long id)
{
    return id == parent_client_ids[0] || id == parent_client_ids[1];
}

static int is_parent_conn(uint64_t id)
{
    return id == parent_conn_ids[0] || id == parent_conn_ids[1];
}

/* One byte over a pipe, and waiting (bounded) for it. */
static int send_byte(int fd, char b)
{
    ssize_t n;
    do {
        n = write(fd, &b, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1;
}

static int recv_byte(int fd, char want, int64_t timeout_ms)
{
    char b = 0;
    if (!wait_readable(fd, timeout_ms))
        return 0;
    ssize_t n;
    do {
        n = read(fd, &b, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 && b == want;
}

/*
 * The child of the shared-conns case. `a` was checked out before the fork; `to_parent`
 * and `from_parent` make both processes start their rounds at the same moment, so that
 * conns shared by mistake would carry both processes' commands at once.
 */
static void fork_child(pool_t *pool, pool_conn_t *a, int to_parent, int from_parent,
                       int n_rounds, int n_thread_rounds)
{
    child_start("fork child", 30);

    /* The conn checked out across the fork is the parent's session: refused, then closed. */
    pool_reply_t *r = NULL;
    pool_error_t err;
    pool_status_t st = COMMAND(a, &r, &err, "PING");
    CHECK_STATUS(st, POOL_ERR_BAD_CONN, &err);
    if (CHECK_ERR_FILLED(&err, POOL_ERR_BAD_CONN))
        CHECK_CONTAINS(err.message, "fork");
    CHECK(r == NULL);
    pool_reply_free(r);
    CHECK_STATUS(pool_put(pool, a), POOL_OK, NULL);
    CHECK_EQ(pool_len(pool), 0); /* closed, not pooled */

    /* Fresh conns, other sessions than the parent's. */
    pool_conn_t *c1 = get_conn(pool);
    pool_conn_t *c2 = get_conn(pool);
    if (c1 == NULL || c2 == NULL)
        child_exit();
    uint64_t ids[2] = {pool_conn_id(c1), pool_conn_id(c2)};
    long long clients[2] = {cmd_client_id(c1), cmd_client_id(c2)};
    for (int i = 0; i < 2; i++) {
        CHECK(clients[i] > 0);
        CHECK(!is_parent_client(clients[i]));
        CHECK(!is_parent_conn(ids[i]));
    }
    CHECK_NE(clients[0], clients[1]);
    printf("fork child: conn ids %" PRIu64 ",%" PRIu64 " CLIENT IDs %lld,%lld (parent's: conn ids "
           "%" PRIu64 ",%" PRIu64 " CLIENT IDs %lld,%lld)\n",
           ids[0], ids[1], clients[0], clients[1], parent_conn_ids[0], parent_conn_ids[1],
           parent_client_ids[0], parent_client_ids[1]);

    /* The notify fd works in the child (a new one; the parent's copy is closed). */
    int nfd = pool_notify_fd(pool);
    if (CHECK(nfd >= 0)) {
        CHECK_TRY_MISSES(pool); /* both turns taken: drains, dials nothing */
        CHECK_EQ(fd_readable(nfd), 0);
        CHECK_STATUS(pool_put(pool, c1), POOL_OK, NULL);
        CHECK_EQ(fd_readable(nfd), 1);
        c1 = TRY_GET_OK(pool);
        if (c1 != NULL)
            CHECK_EQ(pool_conn_id(c1), ids[0]);
    }
    if (c1 != NULL)
        CHECK_STATUS(pool_put(pool, c1), POOL_OK, NULL);
    CHECK_STATUS(pool_put(pool, c2), POOL_OK, NULL);

    /* Ready; start the rounds together with the parent. */
    CHECK(send_byte(to_parent, 'r'));
    CHECK(recv_byte(from_parent, 'g', 20000));
    close(to_parent);
    close(from_parent);

    /* Rounds on one thread, then on two at once. */
    CHECK_EQ(kv_rounds(pool, "child", n_rounds), 0);
    kv_thread_t t[2];
    for (int i = 0; i < 2; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].pool = pool;
        t[i].n = n_thread_rounds;
        snprintf(t[i].prefix, sizeof t[i].prefix, "child:t%d", i);
        start_thread(&t[i].thread, kv_thread_main, &t[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i].thread, NULL);
        CHECK_EQ(t[i].failed, 0);
    }

    pool_stats_t s = stats_of(pool);
    CHECK(s.dials >= 1);
    CHECK_EQ(s.total_conns, 2);
    printf("fork child: ran %d rounds + 2x%d on threads, dials=%" PRIu64 "\n", n_rounds,
           n_thread_rounds, s.dials);
    pool_free(pool);
    child_exit();
}

static void test_fork_shared_conns(void)
{
    section("fork: parent and child never share a conn; a conn held across fork stays the "
            "parent's");
    char url[512];
    snprintf(url, sizeof url,
             "redis://%s?pool_size=2&pool_timeout=%llds&read_timeout=%llds&dialer_retries=1",
             redis.addr, (long long)(10 * slow_factor()), (long long)(2 * slow_factor()));
    pool_t *pool = NULL;
    pool_error_t err;
    err_reset(&err);
    if (!CHECK_STATUS(pool_new_url(url, &pool, &err), POOL_OK, &err))
        return;

    /* Two idle conns, each used once. */
    pool_conn_t *c[2] = {get_conn(pool), get_conn(pool)};
    if (c[0] == NULL || c[1] == NULL) {
        for (int i = 0; i < 2; i++)
            if (c[i] != NULL)
                pool_put(pool, c[i]);
        pool_free(pool);
        return;
    }
    for (int i = 0; i < 2; i++) {
        char why[512];
        parent_conn_ids[i] = pool_conn_id(c[i]);
        parent_client_ids[i] = cmd_client_id(c[i]);
        CHECK(parent_client_ids[i] > 0);
        if (!CHECK(set_get(c[i], "parent:warmup", "warm", why, sizeof why)))
            fprintf(stderr, "  (%s)\n", why);
    }
    for (int i = 0; i < 2; i++)
        CHECK_STATUS(pool_put(pool, c[i]), POOL_OK, NULL);
    CHECK_EQ(pool_idle_len(pool), 2);
    const int nfd = pool_notify_fd(pool);
    CHECK(nfd >= 0);
    const uint64_t dials_before = stats_of(pool).dials;
    CHECK_EQ(dials_before, 2);

    /* A is checked out across the fork; the other conn stays idle, inherited by the child. */
    pool_conn_t *a = get_conn(pool);
    if (a == NULL) {
        pool_free(pool);
        return;
    }
    const long long a_client = cmd_client_id(a);
    CHECK(is_parent_client(a_client));

    const int n_rounds = rounds(300, 30);
    const int n_thread_rounds = rounds(60, 8);
    int to_parent[2], to_child[2];
    if (!CHECK_EQ(pipe2(to_parent, O_CLOEXEC), 0) || !CHECK_EQ(pipe2(to_child, O_CLOEXEC), 0)) {
        pool_put(pool, a);
        pool_free(pool);
        return;
    }
    pid_t pid = fork_flushed();
    if (pid == 0) {
        close(to_parent[0]);
        close(to_child[1]);
        fork_child(pool, a, to_parent[1], to_child[0], n_rounds, n_thread_rounds);
    }
    close(to_parent[1]);
    close(to_child[0]);

    /* The child closed its copy of A by now: A still answers here (no QUIT, no shutdown). */
    CHECK(recv_byte(to_parent[0], 'r', 30000));
    CHECK(cmd_ping(a));
    CHECK_EQ(cmd_client_id(a), a_client);

    /* The same rounds here, while the child runs its own; A in use now and then. */
    CHECK(send_byte(to_child[1], 'g'));
    close(to_parent[0]);
    close(to_child[1]);
    int failed = 0, a_failed = 0;
    for (int i = 0; i < n_rounds; i++) {
        char why[512];
        if (!kv_round(pool, "parent", i, why, sizeof why) && failed++ < 5)
            fprintf(stderr, "  (parent round %d: %s)\n", i, why);
        if (i % 25 == 0 && !cmd_ping(a))
            a_failed++;
    }
    CHECK_EQ(failed, 0);
    CHECK_EQ(a_failed, 0);
    const int child_ok = CHECK_CHILD_OK(pid, 60000, "fork child");
    if (failed == 0 && child_ok)
        printf("fork: parent and child each ran %d rounds at once, no crossed replies\n", n_rounds);

    /* After the child: A and the idle conn still work, and they are the same two conns. */
    CHECK(cmd_ping(a));
    CHECK_EQ(cmd_client_id(a), a_client);
    CHECK_STATUS(pool_put(pool, a), POOL_OK, NULL);
    for (int i = 0; i < 5; i++) {
        pool_conn_t *conn = get_conn(pool);
        if (conn == NULL)
            break;
        char why[512], key[64], val[64];
        snprintf(key, sizeof key, "parent:after:%d", i);
        snprintf(val, sizeof val, "after-%d-%" PRId64, i, now_ns());
        if (!CHECK(set_get(conn, key, val, why, sizeof why)))
            fprintf(stderr, "  (%s)\n", why);
        CHECK(is_parent_conn(pool_conn_id(conn)));
        CHECK(is_parent_client(cmd_client_id(conn)));
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    }
    pool_stats_t s = stats_of(pool);
    CHECK_EQ(s.dials, dials_before);
    CHECK_EQ(s.total_conns, 2);

    /* The parent's notify fd is untouched by the child's closing its copy. */
    CHECK_EQ(pool_notify_fd(pool), nfd);
    pool_conn_t *h0 = get_conn(pool), *h1 = get_conn(pool);
    CHECK_TRY_MISSES(pool);
    CHECK_EQ(fd_readable(nfd), 0);
    if (h0 != NULL)
        CHECK_STATUS(pool_put(pool, h0), POOL_OK, NULL);
    CHECK_EQ(fd_readable(nfd), 1);
    if (h1 != NULL)
        CHECK_STATUS(pool_put(pool, h1), POOL_OK, NULL);
    pool_free(pool);
}

/* A parent thread using the pool without pause while the main thread forks. */
typedef struct busy {
    pthread_t thread;
    pool_t *pool;
    atomic_int stop;
    atomic_int rounds;
    /* Under ASan only: the forking thread asks the busy thread to stand still between
     * rounds (see FORK_PAUSES_BUSY_THREAD). */
    atomic_int pause_req;
    atomic_int paused;
    int failed;
} busy_t;

/* GCC 12's ASan allocator is not fork-safe: a child forked while another thread is inside
 * malloc can block forever on the allocator's size-class lock (seen: the child's dial
 * thread stuck in SizeClassAllocator64::GetFromAllocator). glibc's malloc, which the plain
 * and valgrind runs use, resets its locks in the child. So under ASan the busy thread is
 * paused between rounds (outside the library, holding nothing) for each fork; the plain and
 * valgrind runs fork while it is really mid-operation. */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_PAUSES_BUSY_THREAD 1
#else
#define FORK_PAUSES_BUSY_THREAD 0
#endif

static void *busy_main(void *arg)
{
    busy_t *b = arg;
    int i = 0;
    while (!atomic_load(&b->stop)) {
        if (atomic_load(&b->pause_req)) {
            atomic_store(&b->paused, 1);
            while (atomic_load(&b->pause_req) && !atomic_load(&b->stop))
                sleep_ms(1);
            atomic_store(&b->paused, 0);
            continue;
        }
        char why[512];
        if (!kv_round(b->pool, "busy", i % 50, why, sizeof why) && b->failed++ < 5)
            fprintf(stderr, "  (busy thread, round %d: %s)\n", i, why);
        i++;
        atomic_store(&b->rounds, i);
    }
    return NULL;
}

static void test_fork_while_busy(void)
{
    section("fork: another thread busy in the pool while forking, 5 times");
    pool_options_t o = redis_pool_options(&redis, 2, scaled(10000));
    pool_t *pool = new_pool_or_exit(&o);
    busy_t b;
    memset(&b, 0, sizeof b);
    b.pool = pool;
    atomic_init(&b.stop, 0);
    atomic_init(&b.rounds, 0);
    atomic_init(&b.pause_req, 0);
    atomic_init(&b.paused, 0);
    start_thread(&b.thread, busy_main, &b);
    CHECK_EVENTUALLY(atomic_load(&b.rounds) >= 3, 5000);

    unsigned seed = (unsigned)now_ns() ^ (unsigned)getpid();
    printf("fork while busy: seed %u\n", seed);
    int ok_children = 0;
    for (int k = 0; k < 5; k++) {
        sleep_ms(1 + rand_r(&seed) % 25);
        if (FORK_PAUSES_BUSY_THREAD) {
            atomic_store(&b.pause_req, 1);
            CHECK_EVENTUALLY(atomic_load(&b.paused), 5000);
        }
        pid_t pid = fork_flushed();
        if (FORK_PAUSES_BUSY_THREAD && pid != 0)
            atomic_store(&b.pause_req, 0);
        if (pid == 0) {
            child_start("fork while busy: child", 20);
            char prefix[32];
            snprintf(prefix, sizeof prefix, "forkb%d", k);
            CHECK_EQ(kv_rounds(pool, prefix, 3), 0);
            pool_free(pool);
            child_exit();
        }
        char what[64];
        snprintf(what, sizeof what, "child %d forked while busy", k);
        ok_children += CHECK_CHILD_OK(pid, 40000, what);
    }
    atomic_store(&b.stop, 1);
    pthread_join(b.thread, NULL);
    CHECK_EQ(b.failed, 0);
    CHECK(atomic_load(&b.rounds) > 0);
    printf("fork while busy: %d of 5 children exited 0, the busy thread ran %d rounds\n",
           ok_children, atomic_load(&b.rounds));
    pool_free(pool);
}

static void test_fork_sticky_single(void)
{
    section("fork: sticky pools borrow a new conn in the child, single pools refuse");
    pool_options_t o = redis_pool_options(&redis, 3, scaled(10000));
    pool_t *base = new_pool_or_exit(&o);
    pool_t *sticky = NULL, *single = NULL;
    if (!CHECK_STATUS(pool_sticky_new(base, &sticky), POOL_OK, NULL)) {
        pool_free(base);
        return;
    }
    pool_conn_t *sc = get_conn(sticky);
    pool_conn_t *bc = get_conn(base);
    if (sc == NULL || bc == NULL ||
        !CHECK_STATUS(pool_single_new(base, bc, &single), POOL_OK, NULL)) {
        if (sc != NULL)
            pool_put(sticky, sc);
        if (bc != NULL)
            pool_put(base, bc);
        pool_free(sticky);
        pool_free(base);
        return;
    }
    const long long x = cmd_client_id(sc);
    CHECK(x > 0);
    CHECK_STATUS(pool_put(sticky, sc), POOL_OK, NULL);
    pool_conn_t *gc = get_conn(single);
    long long y = -1;
    if (gc != NULL) {
        y = cmd_client_id(gc);
        CHECK(y > 0);
        CHECK_STATUS(pool_put(single, gc), POOL_OK, NULL);
    }

    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_start("fork sticky/single: child", 20);
        pool_conn_t *conn = get_conn(sticky);
        if (conn != NULL) {
            long long id = cmd_client_id(conn);
            CHECK(id > 0);
            CHECK_NE(id, x);
            CHECK_NE(id, y);
            char why[512];
            if (!CHECK(set_get(conn, "child:sticky", "sticky-child", why, sizeof why)))
                fprintf(stderr, "  (%s)\n", why);
            printf("fork child: sticky conn CLIENT ID %lld (parent's %lld)\n", id, x);
            CHECK_STATUS(pool_put(sticky, conn), POOL_OK, NULL);
            /* The same conn again: sticky in the child too. */
            conn = get_conn(sticky);
            if (conn != NULL) {
                CHECK_EQ(cmd_client_id(conn), id);
                CHECK_STATUS(pool_put(sticky, conn), POOL_OK, NULL);
            }
        }
        conn = NULL;
        pool_error_t err;
        err_reset(&err);
        CHECK_STATUS(pool_get(single, &conn, &err), POOL_ERR_BAD_CONN, &err);
        CHECK(conn == NULL);
        if (CHECK_ERR_FILLED(&err, POOL_ERR_BAD_CONN))
            CHECK_CONTAINS(err.message, "fork");
        pool_free(single);
        pool_free(sticky);
        pool_free(base);
        child_exit();
    }
    CHECK_CHILD_OK(pid, 40000, "sticky/single fork child");

    /* The parent's sticky and single conns are untouched. */
    pool_conn_t *conn = get_conn(sticky);
    if (conn != NULL) {
        CHECK_EQ(cmd_client_id(conn), x);
        CHECK(cmd_ping(conn));
        CHECK_STATUS(pool_put(sticky, conn), POOL_OK, NULL);
    }
    conn = get_conn(single);
    if (conn != NULL) {
        CHECK_EQ(cmd_client_id(conn), y);
        CHECK(cmd_ping(conn));
        CHECK_STATUS(pool_put(single, conn), POOL_OK, NULL);
    }
    CHECK_EQ(stats_of(base).dials, 2);
    pool_free(single);
    pool_free(sticky);
    pool_free(base);
}

int main(int argc, char **argv)
{
    int rc = redis_server_from_args(&redis, argc, argv);
    if (rc != 0)
        return rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("REDISPOOL_SLOW=%" PRId64 "\n", slow_factor());

    test_notify_basics();
    test_try_get_never_overtakes();
    test_notify_latency();
    test_cancel();
    test_leaks();
    test_fork_shared_conns();
    test_fork_while_busy();
    test_fork_sticky_single();

    CHECK_EVENTUALLY(atomic_load(&dial_notify.in_progress) == 0, 5000);
    return check_exit_status();
}
