/*
 * event_loop.c - many concurrent requests from one thread that never blocks.
 *
 *   ./event_loop [URL | HOST:PORT] [REQUESTS] [IN_FLIGHT]
 *
 * Sends REQUESTS requests (default 2000: PINGs, every fourth a pipeline of
 * SET + GET + PING), keeping IN_FLIGHT of them (default 64) going at once, from a single thread driven by one epoll instance. The pool
 * is small (a bare HOST:PORT becomes redis://HOST:PORT?pool_size=4; a URL is
 * used as given), so most requests have to wait for a connection.
 *
 * The pattern, for an event loop:
 *
 *  - pool_get would block the thread (it waits for a free connection, and for
 *    a dial). An event loop uses pool_try_get instead: it never waits, never
 *    dials and never resolves. It returns an idle connection, or
 *    POOL_ERR_WOULD_BLOCK at once.
 *
 *  - On POOL_ERR_WOULD_BLOCK the request waits in our own FIFO queue, and the
 *    loop watches pool_notify_fd(pool). That fd is readable while a
 *    pool_try_get may find a connection: the pool makes it readable when a
 *    connection comes back (pool_put, or a background dial finished) or a slot
 *    frees up (pool_remove, a failed dial), and a pool_try_get that returns
 *    POOL_ERR_WOULD_BLOCK makes it unreadable again. We never read it.
 *
 *  - It is level-triggered: while it is readable, every epoll_wait reports it.
 *    So the loop watches it only while requests are queued (EPOLL_CTL_ADD
 *    when the queue becomes non-empty, EPOLL_CTL_DEL when it empties), and on
 *    each wake-up calls pool_try_get for queued requests until it returns
 *    POOL_ERR_WOULD_BLOCK (which re-arms the fd) or the queue is empty. A
 *    wake-up may find nothing (another thread, or another loop, took the
 *    connection first): the miss just re-arms the fd.
 *
 *  - A miss while the pool has room (fewer than pool_size connections in use
 *    or being dialed) also starts one dial on a library thread. When it
 *    finishes, the new connection goes to the idle list and the fd becomes
 *    readable. That is how the pool grows without the loop ever waiting for a
 *    TCP handshake.
 *
 *  - With a connection, the loop starts the request's command with
 *    pool_conn_start (every fourth request is a pipeline, SET + GET + PING,
 *    started with pool_conn_start_pipeline). That writes what the socket takes
 *    now and says what to wait for: POOL_WANT_WRITE (EPOLLOUT: the socket was
 *    full) or POOL_WANT_READ (EPOLLIN: the reply is on the way) on
 *    pool_conn_fd(conn). When the fd is ready, pool_conn_finish (or
 *    pool_conn_finish_pipeline) sends the rest and parses what arrived: the
 *    reply, or POOL_ERR_WOULD_BLOCK with the next interest. The library does
 *    the RESP parsing and, on a TLS conn (a rediss:// URL), the TLS: the loop
 *    never reads or writes the fd, and the same code runs plain and TLS. The
 *    fd's flags are the pool's business and never touched.
 *
 *  - Each command gets a deadline at its start (REPLY_TIMEOUT_MS). The library
 *    keeps no timer: on each tick the loop calls finish for a request whose
 *    pool_conn_wait_ms has reached 0, which fails it with POOL_ERR_IO (an i/o
 *    timeout) and marks the conn bad. Once the reply is there (or the command
 *    failed), the fd leaves the epoll set and pool_put takes the conn back: a
 *    good one is pooled, a bad one closed.
 *
 * To show that nothing blocks, a timerfd ticks every 5 ms in the same epoll
 * set, and the program reports the longest time one loop iteration spent
 * working (between epoll_wait returning and being called again) and the
 * longest single pool_try_get call. Exits non-zero unless every request was
 * served.
 */
#define _GNU_SOURCE /* epoll, timerfd */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "redispool.h"

#define DEFAULT_REQUESTS 2000
#define DEFAULT_IN_FLIGHT 64
#define MAX_IN_FLIGHT 4096
#define TICK_NS (5 * 1000 * 1000) /* the timerfd period: 5 ms */
#define QUEUE_TIMEOUT_MS 5000     /* longest wait for a conn, as a pool_timeout */
#define REPLY_TIMEOUT_MS 5000     /* each command's deadline, from its start */

/* epoll_event.data.u64 holds a request's index, or one of these. */
#define TAG_TIMER UINT64_MAX
#define TAG_NOTIFY (UINT64_MAX - 1)

#define PIPELINE_EVERY 4 /* requests 3, 7, 11, ... are a pipeline of PIPELINE_LEN */
#define PIPELINE_LEN 3   /* SET key value, GET key, PING */

enum req_state {
    REQ_FREE,    /* slot unused */
    REQ_QUEUED,  /* waiting in the queue for a conn */
    REQ_STARTED, /* command started: fd watched for what the last start/finish wanted */
};

struct request {
    enum req_state state;
    pool_conn_t *conn;
    int fd;
    uint32_t watched;  /* the epoll events the fd is in the set for (0: not in it) */
    long seq;          /* the request's number, 0 .. REQUESTS-1 */
    bool pipeline;     /* SET + GET + PING instead of one PING */
    char key[40];      /* the pipeline's key and value */
    char value[24];
    int64_t since_ns;  /* when it was queued */
};

struct loop {
    pool_t *pool;
    int epfd;
    int notify_fd;
    bool notify_watched;

    struct request *reqs; /* in_flight slots */
    long in_flight;
    long total;           /* REQUESTS */
    long started;
    long active;          /* slots not REQ_FREE */
    bool stopping;        /* a fatal error: start nothing new */

    /* FIFO of slot indices waiting for a conn: a ring of in_flight entries. */
    long *queue;
    long q_head;
    long q_len;

    /* What the summary reports. */
    long served;
    long errors;
    long max_queued;
    long in_use;
    long max_in_use;
    uint64_t notify_wakeups;
    uint64_t try_get_calls;
    uint64_t would_block;
    uint64_t timer_ticks;
    long commands;         /* served requests that were one PING */
    long pipelines;        /* served requests that were a pipeline */
    uint64_t finish_calls; /* pool_conn_finish / pool_conn_finish_pipeline calls */
    uint64_t finish_would_block;
    uint64_t want_write;   /* a start or finish asked for EPOLLOUT */
    int64_t max_try_get_ns;
    int64_t max_iteration_ns;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Only the first few errors are printed: a dead server would flood stderr. */
static void report(struct loop *lp, const char *what, const char *detail)
{
    if (lp->errors < 5)
        fprintf(stderr, "%s: %s\n", what, detail);
    else if (lp->errors == 5)
        fprintf(stderr, "(further errors not shown)\n");
}

static int epoll_set(struct loop *lp, int op, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(lp->epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev) != 0) {
        fprintf(stderr, "epoll_ctl(fd %d): %s\n", fd, strerror(errno));
        return -1;
    }
    return 0;
}

/* Watch the notify fd exactly while requests are queued (it is level-triggered). */
static void sync_notify_watch(struct loop *lp)
{
    bool want = lp->q_len > 0;
    if (want == lp->notify_watched)
        return;
    if (epoll_set(lp, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, lp->notify_fd, EPOLLIN, TAG_NOTIFY) ==
        0)
        lp->notify_watched = want;
    else
        lp->stopping = true;
}

static void enqueue(struct loop *lp, long i)
{
    lp->queue[(lp->q_head + lp->q_len) % lp->in_flight] = i;
    lp->q_len++;
    if (lp->q_len > lp->max_queued)
        lp->max_queued = lp->q_len;
    lp->reqs[i].state = REQ_QUEUED;
    lp->reqs[i].since_ns = now_ns();
    sync_notify_watch(lp);
}

static long dequeue(struct loop *lp)
{
    long i = lp->queue[lp->q_head];
    lp->q_head = (lp->q_head + 1) % lp->in_flight;
    lp->q_len--;
    sync_notify_watch(lp);
    return i;
}

/* pool_try_get, timed. Never waits: an idle conn or POOL_ERR_WOULD_BLOCK. */
static pool_status_t try_get(struct loop *lp, pool_conn_t **conn)
{
    int64_t t0 = now_ns();
    pool_status_t rc = pool_try_get(lp->pool, conn);
    int64_t took = now_ns() - t0;
    if (took > lp->max_try_get_ns)
        lp->max_try_get_ns = took;
    lp->try_get_calls++;
    if (rc == POOL_ERR_WOULD_BLOCK)
        lp->would_block++;
    return rc;
}

/* The slot is done (served or failed): free it. The caller then refills it. */
static void finish(struct loop *lp, long i, bool ok)
{
    struct request *r = &lp->reqs[i];
    if (ok && r->pipeline)
        lp->pipelines++;
    else if (ok)
        lp->commands++;
    r->state = REQ_FREE;
    r->conn = NULL;
    r->fd = -1;
    lp->active--;
    if (ok)
        lp->served++;
    else
        lp->errors++;
}

/*
 * Gives a request's conn back with pool_put. A conn whose command failed is bad (the
 * library marked it): pool_put closes it instead of pooling it, and the freed slot
 * signals the notify fd. A wrong reply is our request's failure, not the conn's.
 */
static void release(struct loop *lp, long i, const char *failure)
{
    struct request *r = &lp->reqs[i];
    /* Out of the epoll set first: the pool may close the fd, or hand it to someone else. */
    if (r->watched != 0 && epoll_ctl(lp->epfd, EPOLL_CTL_DEL, r->fd, NULL) != 0)
        fprintf(stderr, "epoll_ctl(DEL fd %d): %s\n", r->fd, strerror(errno));
    r->watched = 0;
    lp->in_use--;
    if (failure != NULL)
        report(lp, "request failed", failure);
    pool_status_t rc = pool_put(lp->pool, r->conn); /* consumes the conn */
    if (rc != POOL_OK) {
        report(lp, "pool_put", pool_status_str(rc));
        failure = "pool_put failed";
    }
    finish(lp, i, failure == NULL);
}

/* Watches the request's fd for what the library wants next (ADD, or MOD when it changed). */
static int watch(struct loop *lp, long i, int want)
{
    struct request *r = &lp->reqs[i];
    uint32_t events = want == POOL_WANT_WRITE ? EPOLLOUT : EPOLLIN;
    if (want == POOL_WANT_WRITE)
        lp->want_write++;
    if (events == r->watched)
        return 0;
    if (epoll_set(lp, r->watched != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, r->fd, events,
                  (uint64_t)i) != 0)
        return -1;
    r->watched = events;
    return 0;
}

static bool is_status(const pool_reply_t *reply, const char *text)
{
    return reply != NULL && reply->type == POOL_REPLY_STATUS && reply->str != NULL &&
           strcmp(reply->str, text) == 0;
}

/* Checks a pipeline's replies: +OK, the value just set, +PONG. NULL when right. */
static const char *check_pipeline(const struct request *r, pool_reply_t **replies)
{
    if (!is_status(replies[0], "OK"))
        return "SET: unexpected reply";
    if (replies[1] == NULL || replies[1]->type != POOL_REPLY_STRING ||
        replies[1]->len != strlen(r->value) || memcmp(replies[1]->str, r->value, replies[1]->len) != 0)
        return "GET: not the value just set";
    if (!is_status(replies[2], "PONG"))
        return "PING: unexpected reply";
    return NULL;
}

/*
 * Makes progress on the request's command without waiting: sends what is left and parses
 * what arrived. Done (reply checked, conn released), or watching the fd for what the
 * library wants next.
 */
static void on_ready(struct loop *lp, long i)
{
    struct request *r = &lp->reqs[i];
    pool_error_t err;
    int want = 0;
    pool_status_t rc;
    const char *failure = NULL;
    lp->finish_calls++;
    if (r->pipeline) {
        pool_reply_t *replies[PIPELINE_LEN] = {NULL};
        size_t n = 0;
        rc = pool_conn_finish_pipeline(r->conn, replies, PIPELINE_LEN, &n, &want, &err);
        if (rc == POOL_OK)
            failure = check_pipeline(r, replies);
        for (size_t k = 0; k < n && k < PIPELINE_LEN; k++)
            pool_reply_free(replies[k]); /* a failure hands over those read before it */
    } else {
        pool_reply_t *reply = NULL;
        rc = pool_conn_finish(r->conn, &reply, &want, &err);
        if (rc == POOL_OK && !is_status(reply, "PONG"))
            failure = "unexpected reply";
        pool_reply_free(reply);
    }
    if (rc == POOL_ERR_WOULD_BLOCK) {
        /* Not all there yet (or a wake-up with nothing new): wait for what it wants. */
        lp->finish_would_block++;
        if (watch(lp, i, want) != 0)
            lp->stopping = true; /* the tick's deadline check still ends the command */
        return;
    }
    release(lp, i, rc == POOL_OK ? failure : err.message);
}

/* A request got a conn: start its command (or pipeline), never waiting. */
static void dispatch(struct loop *lp, long i, pool_conn_t *conn)
{
    struct request *r = &lp->reqs[i];
    r->conn = conn;
    r->fd = pool_conn_fd(conn);
    r->watched = 0;
    r->state = REQ_STARTED;
    if (++lp->in_use > lp->max_in_use)
        lp->max_in_use = lp->in_use;
    pool_error_t err;
    int want = 0;
    pool_status_t rc;
    if (r->pipeline) {
        snprintf(r->key, sizeof r->key, "event_loop:%ld", i);
        snprintf(r->value, sizeof r->value, "%ld", r->seq);
        const char *set[] = {"SET", r->key, r->value};
        const char *get[] = {"GET", r->key};
        const char *ping[] = {"PING"};
        const char *const *argvs[PIPELINE_LEN] = {set, get, ping};
        const int argcs[PIPELINE_LEN] = {3, 2, 1};
        rc = pool_conn_start_pipeline(conn, PIPELINE_LEN, argcs, argvs, NULL, REPLY_TIMEOUT_MS,
                                      &want, &err);
    } else {
        const char *ping[] = {"PING"};
        rc = pool_conn_start(conn, 1, ping, NULL, REPLY_TIMEOUT_MS, &want, &err);
    }
    if (rc != POOL_OK) {
        release(lp, i, err.message);
        return;
    }
    /* Usually all of it went out (POOL_WANT_READ); the reply comes later. */
    if (watch(lp, i, want) != 0)
        lp->stopping = true;
}

/* Something other than a miss from pool_try_get (e.g. POOL_ERR_CLOSED): give up. */
static void fatal_try_get(struct loop *lp, pool_status_t rc)
{
    report(lp, "pool_try_get", pool_status_str(rc));
    lp->stopping = true;
}

/*
 * The notify fd is readable: hand conns to queued requests, oldest first, until
 * the pool has none (that miss makes the fd unreadable again, and may start a
 * dial) or nobody waits (then sync_notify_watch stops watching the fd).
 */
static void serve_queue(struct loop *lp)
{
    while (lp->q_len > 0 && !lp->stopping) {
        pool_conn_t *conn = NULL;
        pool_status_t rc = try_get(lp, &conn);
        if (rc == POOL_ERR_WOULD_BLOCK)
            return;
        if (rc != POOL_OK) {
            fatal_try_get(lp, rc);
            return;
        }
        dispatch(lp, dequeue(lp), conn);
    }
}

/* Starts new requests in free slots until IN_FLIGHT are active or all were started. */
static void start_requests(struct loop *lp)
{
    for (long i = 0; i < lp->in_flight && lp->started < lp->total && !lp->stopping; i++) {
        if (lp->reqs[i].state != REQ_FREE)
            continue;
        lp->reqs[i].seq = lp->started;
        lp->reqs[i].pipeline = lp->started % PIPELINE_EVERY == PIPELINE_EVERY - 1;
        lp->started++;
        lp->active++;
        /* Never overtake requests already queued: join the queue behind them. */
        if (lp->q_len > 0) {
            enqueue(lp, i);
            continue;
        }
        pool_conn_t *conn = NULL;
        pool_status_t rc = try_get(lp, &conn);
        if (rc == POOL_OK) {
            dispatch(lp, i, conn);
        } else if (rc == POOL_ERR_WOULD_BLOCK) {
            enqueue(lp, i); /* now the notify fd is watched: a conn will wake us */
        } else {
            fatal_try_get(lp, rc);
            finish(lp, i, false);
        }
    }
}

/*
 * Every timer tick: fail requests that waited too long (for a conn, or for
 * their reply). A request that cannot get a conn in QUEUE_TIMEOUT_MS means the
 * pool cannot dial (server down?): stop instead of waiting that long for every
 * remaining request. A started command whose deadline passed (pool_conn_wait_ms
 * 0) is ended by a finish: POOL_ERR_IO, and pool_put closes the conn.
 */
static void check_timeouts(struct loop *lp)
{
    int64_t now = now_ns();
    if (lp->q_len > 0) {
        long head = lp->queue[lp->q_head];
        if (now - lp->reqs[head].since_ns > (int64_t)QUEUE_TIMEOUT_MS * 1000000) {
            pool_stats_t st;
            memset(&st, 0, sizeof st);
            st.struct_size = sizeof st;
            pool_stats(lp->pool, &st);
            char msg[160];
            snprintf(msg, sizeof msg,
                     "no conn within %d ms (pool: %" PRIu32 " conns, %" PRIu64 " dial errors)",
                     QUEUE_TIMEOUT_MS, st.total_conns, st.dial_errors);
            report(lp, "request failed", msg);
            lp->stopping = true;
        }
    }
    for (long i = 0; i < lp->in_flight; i++) {
        struct request *r = &lp->reqs[i];
        if (r->state == REQ_STARTED && pool_conn_wait_ms(r->conn) == 0)
            on_ready(lp, i);
    }
}

/* After a fatal error: fail every request still waiting for a conn. */
static void fail_queued(struct loop *lp)
{
    while (lp->q_len > 0)
        finish(lp, dequeue(lp), false);
}

static int run_loop(struct loop *lp, int timer_fd)
{
    struct epoll_event events[64];
    start_requests(lp);
    while (lp->active > 0) {
        int n = epoll_wait(lp->epfd, events, (int)(sizeof events / sizeof events[0]), -1);
        int64_t t0 = now_ns(); /* work starts: this iteration must not block */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "epoll_wait: %s\n", strerror(errno));
            return -1;
        }
        for (int k = 0; k < n; k++) {
            uint64_t tag = events[k].data.u64;
            if (tag == TAG_TIMER) {
                uint64_t expirations = 0;
                if (read(timer_fd, &expirations, sizeof expirations) == sizeof expirations)
                    lp->timer_ticks += expirations;
                check_timeouts(lp);
            } else if (tag == TAG_NOTIFY) {
                lp->notify_wakeups++;
                serve_queue(lp);
            } else {
                /* A request's conn fd. Act on the request's state, not on the event
                 * bits: an earlier event of this batch may have changed it. */
                long i = (long)tag;
                if (lp->reqs[i].state == REQ_STARTED)
                    on_ready(lp, i);
            }
        }
        if (lp->stopping)
            fail_queued(lp);
        start_requests(lp); /* refill the slots that finished */
        int64_t took = now_ns() - t0;
        if (took > lp->max_iteration_ns)
            lp->max_iteration_ns = took;
    }
    return 0;
}

/* Parses a positive count no larger than max, or exits with a usage message. */
static long parse_count(const char *s, const char *what, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max) {
        fprintf(stderr, "%s must be a number between 1 and %ld, got \"%s\"\n", what, max, s);
        exit(EXIT_FAILURE);
    }
    return v;
}

/* The pool_size option of a URL, or 0 when it has none (the pool's default then). */
static long url_pool_size(const char *url)
{
    const char *q = strchr(url, '?');
    for (const char *p = q; p != NULL; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, "pool_size=", 10) == 0)
            return strtol(p + 11, NULL, 10);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 4) {
        fprintf(stderr, "usage: %s [URL | HOST:PORT] [REQUESTS] [IN_FLIGHT]\n", argv[0]);
        return EXIT_FAILURE;
    }
    const char *arg = argc > 1 ? argv[1] : "127.0.0.1:6379";
    long total = argc > 2 ? parse_count(argv[2], "REQUESTS", 100000000) : DEFAULT_REQUESTS;
    long in_flight = argc > 3 ? parse_count(argv[3], "IN_FLIGHT", MAX_IN_FLIGHT) : DEFAULT_IN_FLIGHT;

    /* A bare HOST:PORT becomes a URL with a small pool, so requests queue for conns. */
    char url[1024];
    if (strstr(arg, "://") != NULL)
        snprintf(url, sizeof url, "%s", arg);
    else
        snprintf(url, sizeof url, "redis://%s?pool_size=4", arg);

    int status = EXIT_FAILURE;
    struct loop lp = {.epfd = -1, .notify_fd = -1, .in_flight = in_flight, .total = total};
    int timer_fd = -1;
    pool_error_t err;

    /* Never dials here: the first pool_try_get miss starts the first dial. */
    if (pool_new_url(url, &lp.pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_new_url: %s (%s)\n", err.message, pool_status_str(err.code));
        return EXIT_FAILURE;
    }

    lp.reqs = calloc((size_t)in_flight, sizeof *lp.reqs);
    lp.queue = calloc((size_t)in_flight, sizeof *lp.queue);
    if (lp.reqs == NULL || lp.queue == NULL) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    for (long i = 0; i < in_flight; i++)
        lp.reqs[i].fd = -1;

    /* The pool's fd: owned by the pool, never closed by us, valid until pool_free. */
    lp.notify_fd = pool_notify_fd(lp.pool);
    if (lp.notify_fd < 0) {
        fprintf(stderr, "pool_notify_fd: %s\n", strerror(errno));
        goto out;
    }

    lp.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lp.epfd < 0) {
        fprintf(stderr, "epoll_create1: %s\n", strerror(errno));
        goto out;
    }

    /* The heartbeat: if the loop ever blocked, ticks would pile up unserved. */
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec tick = {.it_interval = {.tv_nsec = TICK_NS}, .it_value = {.tv_nsec = TICK_NS}};
    if (timer_fd < 0 || timerfd_settime(timer_fd, 0, &tick, NULL) != 0) {
        fprintf(stderr, "timerfd: %s\n", strerror(errno));
        goto out;
    }
    if (epoll_set(&lp, EPOLL_CTL_ADD, timer_fd, EPOLLIN, TAG_TIMER) != 0)
        goto out;

    int64_t start = now_ns();
    if (run_loop(&lp, timer_fd) != 0)
        goto out;
    int64_t elapsed_ms = (now_ns() - start) / 1000000;

    long pool_size = url_pool_size(url);
    printf("served=%ld errors=%ld\n", lp.served, lp.errors);
    printf("commands=%ld pipelines=%ld finish_calls=%" PRIu64 " finish_would_block=%" PRIu64
           " want_write=%" PRIu64 "\n",
           lp.commands, lp.pipelines, lp.finish_calls, lp.finish_would_block, lp.want_write);
    if (pool_size > 0)
        printf("pool_size=%ld max_queued=%ld max_in_use=%ld\n", pool_size, lp.max_queued,
               lp.max_in_use);
    else
        printf("pool_size=default max_queued=%ld max_in_use=%ld\n", lp.max_queued, lp.max_in_use);
    printf("notify_wakeups=%" PRIu64 " try_get_calls=%" PRIu64 " would_block=%" PRIu64 "\n",
           lp.notify_wakeups, lp.try_get_calls, lp.would_block);
    printf("max_try_get_us=%" PRId64 " max_iteration_us=%" PRId64 " timer_ticks=%" PRIu64
           " elapsed_ms=%" PRId64 "\n",
           lp.max_try_get_ns / 1000, lp.max_iteration_ns / 1000, lp.timer_ticks, elapsed_ms);

    /* struct_size first, so the library writes no more than this program knows about. */
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    pool_status_t rc = pool_stats(lp.pool, &st);
    if (rc != POOL_OK) {
        fprintf(stderr, "pool_stats: %s\n", pool_status_str(rc));
        goto out;
    }
    printf("stats: hits=%" PRIu64 " misses=%" PRIu64 " dials=%" PRIu64 " total_conns=%" PRIu32
           " idle_conns=%" PRIu32 "\n",
           st.hits, st.misses, st.dials, st.total_conns, st.idle_conns);

    if (lp.served == total && lp.errors == 0)
        status = EXIT_SUCCESS;
    else
        fprintf(stderr, "%ld of %ld requests served, %ld errors\n", lp.served, total, lp.errors);

out:
    /* Our fds: closing the epoll set also forgets every fd still registered in it. */
    if (timer_fd >= 0)
        close(timer_fd);
    if (lp.epfd >= 0)
        close(lp.epfd);
    /* Every conn is back in the pool by now (the loop ends when no request is active).
     * pool_close closes them; pool_free releases the pool and its notify fd. */
    if (pool_close(lp.pool) != POOL_OK) {
        fprintf(stderr, "pool_close failed\n");
        status = EXIT_FAILURE;
    }
    pool_free(lp.pool);
    free(lp.queue);
    free(lp.reqs);
    return status;
}
