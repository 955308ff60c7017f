/*
 * threads.c - one pool shared by many threads.
 *
 *   ./threads [HOST:PORT [THREADS [ITERATIONS]]]
 *
 * THREADS threads (default 8) each borrow a connection ITERATIONS times
 * (default 200), PING Redis over it and give it back. The pool holds at most 4
 * connections, so threads queue for a turn: a pool_t may be used from any
 * number of threads at once, while each pool_conn_t is used by one thread at
 * a time.
 *
 * At the end the pool's statistics must add up: every get was either a hit
 * (idle conn reused) or a miss (new conn dialed), the pool never grew past its
 * size and nobody is still waiting. Exits non-zero if anything failed.
 *
 * HOST:PORT defaults to 127.0.0.1:6379; the tests always pass their own server.
 */
#define _POSIX_C_SOURCE 200809L /* send/recv/poll/pthreads under -std=c11 */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "redispool.h"

#define POOL_SIZE 4
#define REPLY_TIMEOUT_MS 5000
#define MAX_THREADS 1024

/*
 * Sends PING and reads the +PONG line, as in basic.c: poll() instead of socket
 * timeouts because the fd belongs to the pool, MSG_NOSIGNAL so a dead peer
 * gives EPIPE, not SIGPIPE. Returns 0 on success, -1 with errno-ish detail in
 * `why` on failure.
 */
static int ping(int fd, const char **why)
{
    static const char cmd[] = "*1\r\n$4\r\nPING\r\n";
    size_t len = sizeof cmd - 1;
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, cmd + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *why = "send failed";
            return -1;
        }
        sent += (size_t)n;
    }

    char reply[64];
    size_t got = 0;
    while (got < 2 || memcmp(reply + got - 2, "\r\n", 2) != 0) {
        if (got == sizeof reply) {
            *why = "reply too long";
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, REPLY_TIMEOUT_MS);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0) {
            *why = ready == 0 ? "reply timeout" : "poll failed";
            return -1;
        }
        ssize_t n = recv(fd, reply + got, sizeof reply - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *why = n == 0 ? "server closed the connection" : "recv failed";
            return -1;
        }
        got += (size_t)n;
    }
    if (got != 7 || memcmp(reply, "+PONG\r\n", 7) != 0) {
        *why = "unexpected reply";
        return -1;
    }
    return 0;
}

struct worker {
    pthread_t thread;
    pool_t *pool;       /* shared by every worker */
    long iterations;
    long failures;      /* written only by this worker, read after join */
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (long i = 0; i < w->iterations; i++) {
        pool_conn_t *conn = NULL;
        pool_error_t err;
        if (pool_get(w->pool, &conn, &err) != POOL_OK) {
            /* Print only the first few: a broken server would flood stderr. */
            if (w->failures++ < 3)
                fprintf(stderr, "pool_get: %s (%s)\n", err.message, pool_status_str(err.code));
            continue;
        }
        const char *why = NULL;
        if (ping(pool_conn_fd(conn), &why) != 0) {
            if (w->failures++ < 3)
                fprintf(stderr, "PING: %s\n", why);
            /* Unknown protocol state: close it rather than return it. */
            pool_remove(w->pool, conn, why);
            continue;
        }
        pool_status_t rc = pool_put(w->pool, conn);
        if (rc != POOL_OK && w->failures++ < 3)
            fprintf(stderr, "pool_put: %s\n", pool_status_str(rc));
    }
    return NULL;
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

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:6379";
    long nthreads = argc > 2 ? parse_count(argv[2], "THREADS", MAX_THREADS) : 8;
    long iterations = argc > 3 ? parse_count(argv[3], "ITERATIONS", 10000000) : 200;

    pool_options_t opts;
    pool_options_init(&opts);
    opts.addr = addr;
    opts.pool_size = POOL_SIZE;
    /* Generous: with more threads than connections every get may queue, and a
     * slow CI machine should not turn queueing into a timeout failure. */
    opts.pool_timeout_ms = 5000;

    pool_t *pool = NULL;
    pool_error_t err;
    if (pool_new(&opts, &pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_new: %s (%s)\n", err.message, pool_status_str(err.code));
        return EXIT_FAILURE;
    }

    static struct worker workers[MAX_THREADS];
    long started = 0;
    long failures = 0;
    for (long i = 0; i < nthreads; i++) {
        workers[i] = (struct worker){.pool = pool, .iterations = iterations};
        int rc = pthread_create(&workers[i].thread, NULL, work, &workers[i]);
        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            failures++;
            break;
        }
        started++;
    }
    for (long i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        failures += workers[i].failures;
    }
    printf("threads=%ld iterations=%ld failures=%ld\n", started, iterations, failures);

    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    pool_status_t rc = pool_stats(pool, &st);
    if (rc != POOL_OK) {
        fprintf(stderr, "pool_stats: %s\n", pool_status_str(rc));
        failures++;
    } else {
        printf("hits=%" PRIu64 " misses=%" PRIu64 " timeouts=%" PRIu64 " wait_count=%" PRIu64 "\n",
               st.hits, st.misses, st.timeouts, st.wait_count);
        printf("total_conns=%" PRIu32 " idle_conns=%" PRIu32 " pending_requests=%" PRIu32 "\n",
               st.total_conns, st.idle_conns, st.pending_requests);

        uint64_t gets = (uint64_t)nthreads * (uint64_t)iterations;
        if (st.hits + st.misses != gets) {
            fprintf(stderr, "hits + misses = %" PRIu64 ", expected %" PRIu64 " gets\n",
                    st.hits + st.misses, gets);
            failures++;
        }
        if (st.total_conns > POOL_SIZE) {
            fprintf(stderr, "total_conns %" PRIu32 " exceeds pool_size %d\n", st.total_conns,
                    POOL_SIZE);
            failures++;
        }
        if (st.pending_requests != 0) {
            fprintf(stderr, "pending_requests is %" PRIu32 " after every thread finished\n",
                    st.pending_requests);
            failures++;
        }
    }

    if (pool_close(pool) != POOL_OK) {
        fprintf(stderr, "pool_close failed\n");
        failures++;
    }
    pool_free(pool);

    if (failures != 0) {
        fprintf(stderr, "FAILED: %ld failure(s)\n", failures);
        return EXIT_FAILURE;
    }
    printf("OK\n");
    return EXIT_SUCCESS;
}
