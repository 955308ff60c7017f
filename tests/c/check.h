/*
 * check.h - the tiny test harness shared by the C ABI tests (the .c files in tests/c/).
 *
 * Every check records a failure with its file:line and keeps going, so one run
 * shows every broken behaviour; the program's exit status is 0 only when no
 * check failed (check_exit_status()).
 *
 * Timing: every time bound is a multiple of slow_factor(), read from the
 * REDISPOOL_SLOW environment variable (default 1). The valgrind runs set it so
 * that the same bounds hold on an instrumented, serialised program. Waiting for
 * a condition is always a bounded polling loop (EVENTUALLY), never a bare sleep.
 *
 * Everything here is `static inline` so a program that uses only part of it
 * still compiles cleanly with -std=c11 -Wall -Wextra -Werror -pedantic. The
 * programs define _GNU_SOURCE before including it (clock_gettime, getaddrinfo).
 */
#ifndef REDISPOOL_TEST_CHECK_H
#define REDISPOOL_TEST_CHECK_H

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "redispool.h"

static int check_failures;
static int check_total;
static const char *check_section = "(start)";

static inline void check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void check_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    check_failures++;
    fprintf(stderr, "%s:%d: FAILED [%s]: ", file, line, check_section);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* Names the group of checks that follows, in progress output and failure lines. */
static inline void section(const char *name)
{
    check_section = name;
    printf("== %s\n", name);
    fflush(stdout);
}

static inline int check_exit_status(void)
{
    if (check_failures == 0) {
        printf("OK: %d checks passed\n", check_total);
        return 0;
    }
    printf("FAILED: %d of %d checks failed (see stderr)\n", check_failures, check_total);
    return 1;
}

/* Evaluates to whether `cond` held, so a dependent check can be skipped. */
#define CHECK(cond) check_bool(!!(cond), __FILE__, __LINE__, #cond)

static inline int check_bool(int ok, const char *file, int line, const char *expr)
{
    check_total++;
    if (!ok)
        check_fail(file, line, "%s", expr);
    return ok;
}

#define CHECK_EQ(got, want) check_eq_i64((int64_t)(got), (int64_t)(want), __FILE__, __LINE__, #got, #want)

static inline int check_eq_i64(int64_t got, int64_t want, const char *file, int line,
                               const char *got_expr, const char *want_expr)
{
    check_total++;
    if (got != want) {
        check_fail(file, line, "%s == %s: got %" PRId64 ", want %" PRId64, got_expr, want_expr,
                   got, want);
        return 0;
    }
    return 1;
}

#define CHECK_NE(got, unwanted) \
    check_ne_i64((int64_t)(got), (int64_t)(unwanted), __FILE__, __LINE__, #got, #unwanted)

static inline int check_ne_i64(int64_t got, int64_t unwanted, const char *file, int line,
                               const char *got_expr, const char *unwanted_expr)
{
    check_total++;
    if (got == unwanted) {
        check_fail(file, line, "%s != %s: both are %" PRId64, got_expr, unwanted_expr, got);
        return 0;
    }
    return 1;
}

/* A status, with both codes' names and (when given) the error message on failure. */
#define CHECK_STATUS(got, want, err) check_status((got), (want), (err), __FILE__, __LINE__, #got)

static inline int check_status(pool_status_t got, pool_status_t want, const pool_error_t *err,
                               const char *file, int line, const char *expr)
{
    check_total++;
    if (got != want) {
        check_fail(file, line, "%s: got %d (%s), want %d (%s)%s%s", expr, (int)got,
                   pool_status_str(got), (int)want, pool_status_str(want),
                   err != NULL ? "; message: " : "", err != NULL ? err->message : "");
        return 0;
    }
    return 1;
}

/* The documented err_out contract of a failed call: code set, message non-empty and terminated. */
#define CHECK_ERR_FILLED(err, want) check_err_filled((err), (want), __FILE__, __LINE__)

static inline int check_err_filled(const pool_error_t *err, pool_status_t want, const char *file,
                                   int line)
{
    check_total++;
    if (err->code != want) {
        check_fail(file, line, "err_out.code: got %d (%s), want %d (%s)", (int)err->code,
                   pool_status_str(err->code), (int)want, pool_status_str(want));
        return 0;
    }
    if (memchr(err->message, '\0', sizeof err->message) == NULL) {
        check_fail(file, line, "err_out.message is not NUL-terminated");
        return 0;
    }
    if (err->message[0] == '\0') {
        check_fail(file, line, "err_out.message is empty");
        return 0;
    }
    return 1;
}

/* Case-insensitive substring test. */
static inline int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay != '\0'; hay++) {
        size_t i = 0;
        while (i < n && hay[i] != '\0' &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

#define CHECK_CONTAINS(hay, needle) check_contains((hay), (needle), __FILE__, __LINE__, #hay)

static inline int check_contains(const char *hay, const char *needle, const char *file, int line,
                                 const char *expr)
{
    check_total++;
    if (hay == NULL || !contains_ci(hay, needle)) {
        check_fail(file, line, "%s does not contain \"%s\": \"%s\"", expr, needle,
                   hay != NULL ? hay : "(null)");
        return 0;
    }
    return 1;
}

/* ---- forked children ------------------------------------------------------ */

/* valgrind.h (optional): lets a forked child count memcheck's errors before it exits. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND_H 1
#endif
#endif

/* Under valgrind: its client request when valgrind.h was found, else REDISPOOL_VALGRIND=1. */
static inline int under_valgrind(void)
{
#ifdef HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND)
        return 1;
#endif
    const char *v = getenv("REDISPOOL_VALGRIND");
    return v != NULL && strcmp(v, "1") == 0;
}

/*
 * A forked child's exit with status `rc` (0 = passed). Under valgrind a forked child
 * cannot pass memcheck's exit-time leak check: what the parent's other threads owned (a
 * busy thread's buffers, the sentinel watcher's, their parking_lot thread data) is
 * unreachable in the child, and so is the pool state the library abandons, unlocked and
 * unfreed, on the child's first call. So the child counts memcheck's errors itself
 * (invalid reads and writes are what matter after fork) and leaves through exec of
 * true/false, which skips the leak check and keeps the verdict as exit status.
 */
static inline void check_child_exit(int rc)
{
    if (under_valgrind()) {
#ifdef HAVE_VALGRIND_H
        unsigned errors = VALGRIND_COUNT_ERRORS;
        check_total++;
        if (errors != 0) {
            check_fail(__FILE__, __LINE__, "memcheck found %u errors in this child (above)",
                       errors);
            rc = 1;
        }
#endif
        fflush(stdout);
        fflush(stderr);
        const char *verdict = rc == 0 ? "true" : "false";
        execlp(verdict, verdict, (char *)NULL);
    }
    fflush(stdout);
    fflush(stderr);
    _exit(rc);
}

/* ---- time ---------------------------------------------------------------- */

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* REDISPOOL_SLOW (default 1): every time bound is multiplied by it. */
static inline int64_t slow_factor(void)
{
    static int64_t factor;
    if (factor == 0) {
        const char *s = getenv("REDISPOOL_SLOW");
        long v = s != NULL ? strtol(s, NULL, 10) : 1;
        factor = v >= 1 ? v : 1;
    }
    return factor;
}

/* `ms` scaled by REDISPOOL_SLOW. */
static inline int64_t scaled(int64_t ms)
{
    return ms * slow_factor();
}

/*
 * Polls `cond` every 2 ms until it holds or `timeout_ms` (scaled) passed; sets
 * `ok` accordingly. The bounded loop every "wait until" in these tests uses.
 */
#define POLL_UNTIL(ok, cond, timeout_ms)                                   \
    do {                                                                   \
        int64_t poll_deadline_ = now_ms() + scaled(timeout_ms);            \
        for (;;) {                                                         \
            if (cond) {                                                    \
                (ok) = 1;                                                  \
                break;                                                     \
            }                                                              \
            if (now_ms() >= poll_deadline_) {                              \
                (ok) = 0;                                                  \
                break;                                                     \
            }                                                              \
            sleep_ms(2);                                                   \
        }                                                                  \
    } while (0)

/* A check that `cond` becomes true within `timeout_ms` (scaled). */
#define CHECK_EVENTUALLY(cond, timeout_ms)                                              \
    do {                                                                                \
        int eventually_ok_;                                                             \
        POLL_UNTIL(eventually_ok_, cond, timeout_ms);                                   \
        check_total++;                                                                  \
        if (!eventually_ok_)                                                            \
            check_fail(__FILE__, __LINE__, "never became true within %" PRId64 " ms: %s", \
                       scaled(timeout_ms), #cond);                                      \
    } while (0)

/* ---- pool helpers ------------------------------------------------------- */

/* A stats snapshot with struct_size set as documented; zeroed first so it compares bytewise. */
static inline pool_stats_t stats_of(const pool_t *pool)
{
    pool_stats_t s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    pool_status_t rc = pool_stats(pool, &s);
    if (rc != POOL_OK) {
        check_fail(__FILE__, __LINE__, "pool_stats: %d (%s)", (int)rc, pool_status_str(rc));
        memset(&s, 0, sizeof s);
    }
    return s;
}

/* Formats the stats fields tests care about, for failure messages. */
static inline const char *stats_str(const pool_stats_t *s, char *buf, size_t len)
{
    snprintf(buf, len,
             "hits=%" PRIu64 " misses=%" PRIu64 " timeouts=%" PRIu64 " wait_count=%" PRIu64
             " total=%" PRIu32 " idle=%" PRIu32 " stale=%" PRIu32 " pending=%" PRIu32
             " dials=%" PRIu64 " dial_errors=%" PRIu64 " removed=%" PRIu64 " evicted=%" PRIu64
             " waiting=%" PRIu32 " dials_in_progress=%" PRIu32,
             s->hits, s->misses, s->timeouts, s->wait_count, s->total_conns, s->idle_conns,
             s->stale_conns, s->pending_requests, s->dials, s->dial_errors, s->removed_conns,
             s->evicted_conns, s->waiting, s->dials_in_progress);
    return buf;
}

/* What a misuse must leave unchanged: Len, IdleLen and every stats field. */
typedef struct pool_snapshot {
    int32_t len;
    int32_t idle_len;
    pool_stats_t stats;
} pool_snapshot_t;

static inline pool_snapshot_t snapshot_of(const pool_t *pool)
{
    pool_snapshot_t s;
    s.len = pool_len(pool);
    s.idle_len = pool_idle_len(pool);
    s.stats = stats_of(pool);
    return s;
}

#define CHECK_UNCHANGED(pool, before) check_unchanged((pool), &(before), __FILE__, __LINE__, #pool)

static inline int check_unchanged(const pool_t *pool, const pool_snapshot_t *before,
                                  const char *file, int line, const char *expr)
{
    pool_snapshot_t now = snapshot_of(pool);
    check_total++;
    if (now.len != before->len || now.idle_len != before->idle_len ||
        memcmp(&now.stats, &before->stats, sizeof now.stats) != 0) {
        char a[512], b[512];
        check_fail(file, line,
                   "%s changed:\n  before: len=%d idle_len=%d %s\n  after:  len=%d idle_len=%d %s",
                   expr, (int)before->len, (int)before->idle_len,
                   stats_str(&before->stats, a, sizeof a), (int)now.len, (int)now.idle_len,
                   stats_str(&now.stats, b, sizeof b));
        return 0;
    }
    return 1;
}

/*
 * What a call that is not misuse (a get that timed out, was canceled or was served) must
 * leave as it was: the conns and turns (Len, IdleLen and the stats gauges). Counters such
 * as hits, timeouts or wait_count may move.
 */
#define CHECK_NOTHING_LOST(pool, before) \
    check_nothing_lost((pool), &(before), __FILE__, __LINE__, #pool)

static inline int check_nothing_lost(const pool_t *pool, const pool_snapshot_t *before,
                                     const char *file, int line, const char *expr)
{
    pool_snapshot_t now = snapshot_of(pool);
    const pool_stats_t *a = &before->stats, *b = &now.stats;
    check_total++;
    if (now.len != before->len || now.idle_len != before->idle_len ||
        a->total_conns != b->total_conns || a->idle_conns != b->idle_conns ||
        a->pending_requests != b->pending_requests || a->waiting != b->waiting ||
        a->dials_in_progress != b->dials_in_progress || a->in_use_conns != b->in_use_conns ||
        a->leak_suspects != b->leak_suspects) {
        char sa[512], sb[512];
        check_fail(file, line,
                   "%s lost conns or turns:\n  before: len=%d idle_len=%d in_use=%" PRIu32
                   " %s\n  after:  len=%d idle_len=%d in_use=%" PRIu32 " %s",
                   expr, (int)before->len, (int)before->idle_len, a->in_use_conns,
                   stats_str(a, sa, sizeof sa), (int)now.len, (int)now.idle_len,
                   b->in_use_conns, stats_str(b, sb, sizeof sb));
        return 0;
    }
    return 1;
}

/* A pool_error_t that shows whether a call wrote to it (code ERR_UNTOUCHED, empty message). */
#define ERR_UNTOUCHED (-777)

static inline void err_reset(pool_error_t *err)
{
    memset(err, 0, sizeof *err);
    err->code = ERR_UNTOUCHED;
}

/* Userdata for pool_conn_set_userdata whose free_fn counts its calls. */
typedef struct userdata {
    int freed;
} userdata_t;

static inline void count_free(void *p)
{
    ((userdata_t *)p)->freed++;
}

/* pool_new that must succeed: without its pool a program cannot go on, so it stops here. */
static inline pool_t *new_pool_or_exit(const pool_options_t *o)
{
    pool_t *pool = NULL;
    pool_error_t err;
    err_reset(&err);
    if (!CHECK_STATUS(pool_new(o, &pool, &err), POOL_OK, &err) || !CHECK(pool != NULL)) {
        if (o->addr != NULL)
            fprintf(stderr, "cannot create a pool for %s: giving up\n", o->addr);
        check_exit_status();
        exit(1);
    }
    return pool;
}

/* A conn from pool_get, or NULL after a failed check. */
static inline pool_conn_t *get_conn(pool_t *pool)
{
    pool_conn_t *conn = NULL;
    pool_error_t err;
    err_reset(&err);
    if (!CHECK_STATUS(pool_get(pool, &conn, &err), POOL_OK, &err))
        return NULL;
    CHECK_EQ(err.code, ERR_UNTOUCHED); /* err_out is left untouched on success */
    CHECK(conn != NULL);
    return conn;
}

/* Threads blocked in a get of `pool` right now. */
static inline uint32_t waiting_of(const pool_t *pool)
{
    return stats_of(pool).waiting;
}

/* ---- threads ---------------------------------------------------------------- */

/* pthread_create that must succeed. */
static inline void start_thread(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    if (pthread_create(thread, NULL, fn, arg) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        exit(1);
    }
}

/* getter_t.timeout_ms for a plain pool_get. */
#define GET_PLAIN INT64_MIN

/* A get on its own thread: getter_start, then wait for it (getter_done), then getter_join. */
typedef struct getter {
    pthread_t thread;
    pool_t *pool;
    int64_t timeout_ms; /* for pool_get_ex; GET_PLAIN: pool_get */
    const pool_cancel_t *cancel;
    pool_status_t rc;
    pool_conn_t *conn;
    pool_error_t err;
    int64_t done_ms;
    atomic_int done;
} getter_t;

static inline void *getter_main(void *arg)
{
    getter_t *g = arg;
    err_reset(&g->err);
    if (g->timeout_ms == GET_PLAIN)
        g->rc = pool_get(g->pool, &g->conn, &g->err);
    else
        g->rc = pool_get_ex(g->pool, g->timeout_ms, g->cancel, &g->conn, &g->err);
    g->done_ms = now_ms();
    atomic_store(&g->done, 1);
    return NULL;
}

static inline void getter_start(getter_t *g, pool_t *pool, int64_t timeout_ms,
                                const pool_cancel_t *cancel)
{
    memset(g, 0, sizeof *g);
    g->pool = pool;
    g->timeout_ms = timeout_ms;
    g->cancel = cancel;
    atomic_init(&g->done, 0);
    start_thread(&g->thread, getter_main, g);
}

static inline int getter_done(getter_t *g)
{
    return atomic_load(&g->done);
}

/* Joins a getter; if it is still blocked (a failed check), closes the pool to release it. */
static inline void getter_join(getter_t *g)
{
    int ok;
    POLL_UNTIL(ok, getter_done(g), 10000);
    if (!ok) {
        check_fail(__FILE__, __LINE__, "getter thread still blocked: closing the pool");
        pool_close(g->pool);
    }
    pthread_join(g->thread, NULL);
}

/* ---- RESP over a conn's socket ---------------------------------------------------
 *
 * For tests that talk to Redis themselves over pool_conn_fd(): one command at a
 * time, its whole reply read back (simple strings, errors, integers, bulk
 * strings and arrays, nested). A reply never shares a read with the next one
 * because the next command is only sent after it, so the reader keeps no state
 * between calls. Every wait for the socket is bounded by scaled(5000).
 */

typedef struct resp_reply {
    char type;                   /* '+' status, '-' error, ':' integer, '$' bulk, '*' array */
    int nil;                     /* a nil bulk string or nil array ($-1 / *-1) */
    int64_t integer;             /* ':' */
    char *str;                   /* '+', '-', '$' (not nil): the payload, NUL-terminated */
    size_t len;                  /* length of str */
    size_t elements;             /* '*' (not nil) */
    struct resp_reply **element; /* '*' (not nil): `elements` replies */
} resp_reply_t;

static inline void resp_free(resp_reply_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++)
        resp_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

/* Sends argv[0..argc) as one RESP command. 0 on success, -1 on trouble. */
static inline int resp_send(int fd, int argc, const char *const *argv)
{
    size_t cap = 32;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) + 32;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    size_t len = (size_t)snprintf(buf, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        len += (size_t)snprintf(buf + len, cap - len, "$%zu\r\n", n);
        memcpy(buf + len, argv[i], n);
        len += n;
        memcpy(buf + len, "\r\n", 2);
        len += 2;
    }
    const char *p = buf;
    int rc = 0;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            (void)poll(&pfd, 1, (int)scaled(5000));
            continue;
        }
        if (n <= 0) {
            rc = -1;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    free(buf);
    return rc;
}

typedef struct resp_reader {
    int fd;
    size_t start, end;
    char buf[4096];
} resp_reader_t;

/* More bytes into the buffer (waiting at most scaled(5000)); 0 on success. */
static inline int resp_fill(resp_reader_t *rd)
{
    if (rd->start == rd->end) {
        rd->start = rd->end = 0;
    } else if (rd->end == sizeof rd->buf) {
        memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
        rd->end -= rd->start;
        rd->start = 0;
        if (rd->end == sizeof rd->buf)
            return -1; /* a header line longer than the buffer: not a reply of ours */
    }
    for (;;) {
        struct pollfd pfd = {rd->fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)scaled(5000));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = recv(rd->fd, rd->buf + rd->end, sizeof rd->buf - rd->end, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n <= 0)
            return -1;
        rd->end += (size_t)n;
        return 0;
    }
}

/* One "\r\n"-terminated line; returns its start (terminator replaced by NUL) or NULL. */
static inline char *resp_line(resp_reader_t *rd)
{
    size_t scanned = rd->start;
    for (;;) {
        for (size_t i = scanned; i + 1 < rd->end; i++) {
            if (rd->buf[i] == '\r' && rd->buf[i + 1] == '\n') {
                char *line = rd->buf + rd->start;
                rd->buf[i] = '\0';
                rd->start = i + 2;
                return line;
            }
        }
        size_t before = rd->start;
        scanned = rd->end > rd->start ? rd->end - 1 : rd->start;
        if (resp_fill(rd) != 0)
            return NULL;
        scanned -= before - rd->start; /* the fill may have moved the bytes down */
    }
}

/* The decimal integer `s` (the whole of it), or 0 with *ok cleared. */
static inline int64_t resp_int(const char *s, int *ok)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        *ok = 0;
    return (int64_t)v;
}

static inline resp_reply_t *resp_read_reply(resp_reader_t *rd, int depth)
{
    if (depth > 16)
        return NULL;
    char *line = resp_line(rd);
    if (line == NULL)
        return NULL;
    resp_reply_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->type = line[0];
    int ok = 1;
    switch (line[0]) {
    case '+':
    case '-':
        r->len = strlen(line + 1);
        r->str = malloc(r->len + 1);
        if (r->str == NULL)
            goto fail;
        memcpy(r->str, line + 1, r->len + 1);
        return r;
    case ':':
        r->integer = resp_int(line + 1, &ok);
        if (!ok)
            goto fail;
        return r;
    case '$': {
        int64_t n = resp_int(line + 1, &ok);
        if (!ok || n < -1)
            goto fail;
        if (n == -1) {
            r->nil = 1;
            return r;
        }
        r->len = (size_t)n;
        r->str = malloc(r->len + 1);
        if (r->str == NULL)
            goto fail;
        size_t got = 0, want = r->len + 2; /* the payload and its "\r\n" */
        char crlf[2] = {0, 0};
        while (got < want) {
            if (rd->start == rd->end && resp_fill(rd) != 0)
                goto fail;
            size_t take = rd->end - rd->start;
            if (take > want - got)
                take = want - got;
            for (size_t i = 0; i < take; i++, got++) {
                char ch = rd->buf[rd->start + i];
                if (got < r->len)
                    r->str[got] = ch;
                else
                    crlf[got - r->len] = ch;
            }
            rd->start += take;
        }
        r->str[r->len] = '\0';
        if (crlf[0] != '\r' || crlf[1] != '\n')
            goto fail;
        return r;
    }
    case '*': {
        int64_t n = resp_int(line + 1, &ok);
        if (!ok || n < -1 || n > 1000000)
            goto fail;
        if (n == -1) {
            r->nil = 1;
            return r;
        }
        if (n > 0) {
            r->element = calloc((size_t)n, sizeof *r->element);
            if (r->element == NULL)
                goto fail;
        }
        for (int64_t i = 0; i < n; i++) {
            r->element[i] = resp_read_reply(rd, depth + 1);
            if (r->element[i] == NULL)
                goto fail;
            r->elements++;
        }
        return r;
    }
    default:
        goto fail;
    }
fail:
    resp_free(r);
    return NULL;
}

/*
 * Sends one command and reads its whole reply: the reply (free it with
 * resp_free), or NULL on I/O trouble, a timeout or malformed RESP (bytes left
 * over after the reply count as malformed: nothing else was asked for).
 */
static inline resp_reply_t *resp_command(int fd, int argc, const char *const *argv)
{
    if (fd < 0 || resp_send(fd, argc, argv) != 0)
        return NULL;
    resp_reader_t *rd = malloc(sizeof *rd);
    if (rd == NULL)
        return NULL;
    rd->fd = fd;
    rd->start = rd->end = 0;
    resp_reply_t *r = resp_read_reply(rd, 0);
    if (r != NULL && rd->start != rd->end) {
        resp_free(r);
        r = NULL;
    }
    free(rd);
    return r;
}

/* RESP_COMMAND(fd, "SET", "k", "v"): resp_command with the arguments listed inline. */
#define RESP_COMMAND(fd, ...)                                                          \
    resp_command((fd), (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)), \
                 (const char *const[]){__VA_ARGS__})

/* A one-line description of a reply (or of NULL), for failure messages. */
static inline const char *resp_str(const resp_reply_t *r, char *buf, size_t len)
{
    if (r == NULL)
        snprintf(buf, len, "(no reply: I/O error, timeout or bad RESP)");
    else if (r->nil)
        snprintf(buf, len, "(nil %c)", r->type);
    else if (r->type == ':')
        snprintf(buf, len, ":%" PRId64, r->integer);
    else if (r->type == '*')
        snprintf(buf, len, "*%zu (array)", r->elements);
    else
        snprintf(buf, len, "%c%.*s", r->type, (int)(r->len < 200 ? r->len : 200), r->str);
    return buf;
}

/* ---- a redis-server given as HOST:PORT ------------------------------------------ */

typedef struct redis_server {
    const char *addr; /* "host:port" as given, for pool_options_t.addr */
    char host[256];
    char port[16];
} redis_server_t;

/*
 * The arguments of a program run as `PROG HOST:PORT`: HOST:PORT (split at its
 * last ':') into *s. 0, or 2 (the exit status) after a usage or bad-address
 * message on stderr.
 */
static inline int redis_server_from_args(redis_server_t *s, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
        return 2;
    }
    s->addr = argv[1];
    const char *colon = strrchr(s->addr, ':');
    if (colon == NULL || (size_t)(colon - s->addr) >= sizeof s->host ||
        strlen(colon + 1) >= sizeof s->port) {
        fprintf(stderr, "bad address %s\n", s->addr);
        return 2;
    }
    memcpy(s->host, s->addr, (size_t)(colon - s->addr));
    s->host[colon - s->addr] = '\0';
    strcpy(s->port, colon + 1);
    return 0;
}

/* A plain TCP connection to the server, outside any pool; -1 on failure. */
static inline int redis_connect(const redis_server_t *s)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(s->host, s->port, &hints, &res) != 0 || res == NULL)
        return -1;
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Options for a pool on the server: `pool_timeout_ms` (already scaled), one dial attempt. */
static inline pool_options_t redis_pool_options(const redis_server_t *s, int32_t pool_size,
                                                int64_t pool_timeout_ms)
{
    pool_options_t o;
    pool_options_init(&o);
    o.addr = s->addr;
    o.pool_size = pool_size;
    o.pool_timeout_ms = pool_timeout_ms;
    o.dialer_retries = 1;
    return o;
}

/* PING over a checked-out conn's socket answers +PONG. */
static inline int ping_ok(const pool_conn_t *conn)
{
    resp_reply_t *r = RESP_COMMAND(pool_conn_fd(conn), "PING");
    int ok = r != NULL && r->type == '+' && strcmp(r->str, "PONG") == 0;
    resp_free(r);
    return ok;
}

/* The Redis CLIENT ID of a checked-out conn, or -1. */
static inline long long client_id_of(const pool_conn_t *conn)
{
    resp_reply_t *r = RESP_COMMAND(pool_conn_fd(conn), "CLIENT", "ID");
    long long id = r != NULL && r->type == ':' ? (long long)r->integer : -1;
    resp_free(r);
    return id;
}

/* 1 if Redis still lists client `id`, 0 if not, -1 on trouble. `admin` is a raw connection. */
static inline int client_exists(int admin, long long id)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", id);
    resp_reply_t *r = RESP_COMMAND(admin, "CLIENT", "LIST", "ID", ids);
    int exists = r == NULL || r->type != '$' || r->nil ? -1 : strstr(r->str, "id=") != NULL;
    resp_free(r);
    return exists;
}

#endif /* REDISPOOL_TEST_CHECK_H */
