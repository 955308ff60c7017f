/*
 * basic.c - the smallest complete use of redispool.
 *
 *   ./basic [HOST:PORT]
 *
 * Creates a pool, borrows a connection, talks to Redis over it with plain
 * send()/recv(), gives it back, and shows in the pool's statistics that the
 * second borrow reuses the same connection instead of dialing a new one.
 *
 * HOST:PORT defaults to 127.0.0.1:6379, Redis's usual address; the tests always
 * pass the address of the throwaway server they started.
 *
 * Build and run it against a throwaway redis-server: ./scripts/example.sh
 * (README.md explains linking your own programs).
 */
#define _POSIX_C_SOURCE 200809L /* send/recv/poll under -std=c11 */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "redispool.h"

/* How long we wait for Redis to answer before calling the connection broken. */
#define REPLY_TIMEOUT_MS 5000

/*
 * Sends PING on `fd` and checks that the reply is +PONG.
 *
 * The fd still belongs to the pool, so we do not change its flags or socket
 * options (they would stick to the pooled connection); poll() gives us a
 * timeout instead. MSG_NOSIGNAL turns a write to a closed socket into EPIPE
 * rather than a SIGPIPE that would kill the program.
 *
 * Returns 0 on success, -1 (with a message on stderr) on failure.
 */
static int ping(int fd)
{
    static const char cmd[] = "*1\r\n$4\r\nPING\r\n"; /* RESP for: PING */
    size_t len = sizeof cmd - 1;
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, cmd + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "send: %s\n", strerror(errno));
            return -1;
        }
        sent += (size_t)n;
    }

    /* A simple-string reply is one line: read until its "\r\n". */
    char reply[64];
    size_t got = 0;
    while (got < 2 || memcmp(reply + got - 2, "\r\n", 2) != 0) {
        if (got == sizeof reply) {
            fprintf(stderr, "reply longer than %zu bytes\n", sizeof reply);
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, REPLY_TIMEOUT_MS);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            fprintf(stderr, "poll: %s\n", strerror(errno));
            return -1;
        }
        if (ready == 0) {
            fprintf(stderr, "no reply within %d ms\n", REPLY_TIMEOUT_MS);
            return -1;
        }
        ssize_t n = recv(fd, reply + got, sizeof reply - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "recv: %s\n", strerror(errno));
            return -1;
        }
        if (n == 0) {
            fprintf(stderr, "server closed the connection\n");
            return -1;
        }
        got += (size_t)n;
    }

    if (got != 7 || memcmp(reply, "+PONG\r\n", 7) != 0) {
        fprintf(stderr, "unexpected reply: %.*s\n", (int)got, reply);
        return -1;
    }
    return 0;
}

static int print_stats(const pool_t *pool, const char *when, pool_stats_t *st)
{
    /* struct_size says how much of the struct this program knows about, so a
     * newer library never writes past the end of an older program's copy. */
    memset(st, 0, sizeof *st);
    st->struct_size = sizeof *st;
    pool_status_t rc = pool_stats(pool, st);
    if (rc != POOL_OK) {
        fprintf(stderr, "pool_stats: %s\n", pool_status_str(rc));
        return -1;
    }
    printf("%s: hits=%" PRIu64 " misses=%" PRIu64 " total_conns=%" PRIu32 " idle_conns=%" PRIu32
           "\n",
           when, st->hits, st->misses, st->total_conns, st->idle_conns);
    return 0;
}

/*
 * Borrows a connection, PINGs over it and gives it back.
 * Stores the connection's id in *id_out. Returns 0 on success.
 */
static int ping_once(pool_t *pool, uint64_t *id_out)
{
    pool_conn_t *conn = NULL;
    pool_error_t err;

    /* Waits up to pool_timeout_ms for a free slot; dials when no idle conn exists. */
    if (pool_get(pool, &conn, &err) != POOL_OK) {
        fprintf(stderr, "pool_get: %s (%s)\n", err.message, pool_status_str(err.code));
        return -1;
    }
    *id_out = pool_conn_id(conn);

    if (ping(pool_conn_fd(conn)) != 0) {
        /* The connection may hold half a reply: never hand it out again. */
        pool_remove(pool, conn, "PING failed");
        return -1;
    }
    printf("PONG\n");

    /* pool_put consumes conn: it is idle in the pool again, ready for reuse. */
    pool_status_t rc = pool_put(pool, conn);
    if (rc != POOL_OK) {
        fprintf(stderr, "pool_put: %s\n", pool_status_str(rc));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:6379";
    int status = EXIT_FAILURE;

    /* Always start from the defaults: pool_options_init also sets struct_size,
     * which lets later library versions append fields safely. */
    pool_options_t opts;
    pool_options_init(&opts);
    opts.addr = addr; /* copied by pool_new */
    opts.pool_size = 4;
    opts.pool_timeout_ms = 1000;

    pool_t *pool = NULL;
    pool_error_t err;
    if (pool_new(&opts, &pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_new: %s (%s)\n", err.message, pool_status_str(err.code));
        return EXIT_FAILURE;
    }

    /* First borrow: the pool is empty, so it dials (a miss). */
    uint64_t first_id = 0;
    pool_stats_t before;
    if (ping_once(pool, &first_id) != 0 || print_stats(pool, "after first put", &before) != 0)
        goto out;

    /* Second borrow: the idle connection is reused (a hit), no new dial. */
    uint64_t second_id = 0;
    pool_stats_t after;
    if (ping_once(pool, &second_id) != 0 || print_stats(pool, "after second put", &after) != 0)
        goto out;

    if (after.hits != before.hits + 1 || after.misses != before.misses || second_id != first_id) {
        fprintf(stderr, "second get was not a hit on conn %" PRIu64 " (got conn %" PRIu64 ")\n",
                first_id, second_id);
        goto out;
    }
    printf("second get reused conn %" PRIu64 ": hit\n", second_id);
    status = EXIT_SUCCESS;

out:
    /* pool_close closes idle connections and wakes waiters; pool_free releases
     * the pool itself (it would also close it, but errors are clearer this way). */
    if (pool_close(pool) != POOL_OK) {
        fprintf(stderr, "pool_close failed\n");
        status = EXIT_FAILURE;
    }
    pool_free(pool);
    return status;
}
