/*
 * basic.c - the smallest complete use of redispool.
 *
 *   ./basic [URL | HOST:PORT]
 *
 * Creates a pool from a Redis URL, borrows a connection, runs PING, SET, GET
 * and INCR on it with pool_conn_command, gives it back, and shows in the pool's
 * statistics that the second borrow reuses the same connection instead of
 * dialing a new one.
 *
 * The URL is go-redis's format, e.g. redis://:password@127.0.0.1:6379/0?pool_size=4
 * (a bare HOST:PORT is taken as redis://HOST:PORT). It defaults to Redis's usual
 * address; the tests always pass the address of the throwaway server they started.
 *
 * Build and run it against a throwaway redis-server: ./scripts/example.sh
 * (docs/install.md explains linking your own programs).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redispool.h"

/*
 * Runs one command on conn and prints its reply. Returns the reply (the caller
 * frees it with pool_reply_free), or NULL when the command could not complete:
 * then the conn is out of step with the server, and pool_put will remove it
 * rather than pool it.
 */
static pool_reply_t *run(pool_conn_t *conn, int argc, const char *const *argv)
{
    pool_reply_t *reply = NULL;
    pool_error_t err;
    /* argvlen NULL: the arguments are NUL-terminated strings. Pass lengths for binary data. */
    if (pool_conn_command(conn, argc, argv, NULL, &reply, &err) != POOL_OK) {
        fprintf(stderr, "%s: %s (%s)\n", argv[0], err.message, pool_status_str(err.code));
        return NULL;
    }
    switch (reply->type) {
    case POOL_REPLY_STATUS:
    case POOL_REPLY_STRING:
        printf("%s\n", reply->str);
        break;
    case POOL_REPLY_INTEGER:
        printf("(integer) %" PRId64 "\n", reply->integer);
        break;
    case POOL_REPLY_NIL:
        printf("(nil)\n");
        break;
    case POOL_REPLY_ERROR:
        /* A Redis error (e.g. WRONGTYPE): the call itself worked, the conn stays good. */
        printf("(error) %s\n", reply->str);
        break;
    default:
        printf("(reply of type %d)\n", (int)reply->type);
    }
    return reply;
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
 * Borrows a connection, runs PING and, when `counter` is set, SET/GET/INCR on
 * it, and gives it back. Stores the connection's id in *id_out. Returns 0 on
 * success.
 */
static int use_once(pool_t *pool, int counter, uint64_t *id_out)
{
    pool_conn_t *conn = NULL;
    pool_error_t err;

    /* Waits up to pool_timeout_ms for a free slot; dials when no idle conn exists. */
    if (pool_get(pool, &conn, &err) != POOL_OK) {
        fprintf(stderr, "pool_get: %s (%s)\n", err.message, pool_status_str(err.code));
        return -1;
    }
    *id_out = pool_conn_id(conn);

    int ok = 1;
    const char *ping[] = {"PING"};
    pool_reply_t *r = run(conn, 1, ping);
    ok = r != NULL && r->type == POOL_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    pool_reply_free(r);

    if (ok && counter) {
        const char *set[] = {"SET", "basic:greeting", "hello from redispool"};
        const char *get[] = {"GET", "basic:greeting"};
        const char *incr[] = {"INCR", "basic:runs"};
        r = run(conn, 3, set);
        ok = r != NULL && r->type == POOL_REPLY_STATUS;
        pool_reply_free(r);
        r = ok ? run(conn, 2, get) : NULL;
        ok = r != NULL && r->type == POOL_REPLY_STRING;
        pool_reply_free(r);
        r = ok ? run(conn, 2, incr) : NULL;
        ok = r != NULL && r->type == POOL_REPLY_INTEGER && r->integer >= 1;
        pool_reply_free(r);
    }

    /* pool_put consumes conn: it is idle in the pool again, ready for reuse
     * (a conn a command failed on is removed instead). */
    pool_status_t rc = pool_put(pool, conn);
    if (rc != POOL_OK) {
        fprintf(stderr, "pool_put: %s\n", pool_status_str(rc));
        return -1;
    }
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *arg = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
    char url[1024];
    int status = EXIT_FAILURE;

    /* A bare HOST:PORT becomes a URL; options ride in the query string. */
    snprintf(url, sizeof url, "%s%s%spool_size=4&pool_timeout=1s",
             strstr(arg, "://") ? "" : "redis://", arg, strchr(arg, '?') ? "&" : "?");

    pool_t *pool = NULL;
    pool_error_t err;
    if (pool_new_url(url, &pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_new_url: %s (%s)\n", err.message, pool_status_str(err.code));
        return EXIT_FAILURE;
    }

    /* First borrow: the pool is empty, so it dials (a miss). */
    uint64_t first_id = 0;
    pool_stats_t before;
    if (use_once(pool, 1, &first_id) != 0 ||
        print_stats(pool, "after first put", &before) != 0)
        goto out;

    /* Second borrow: the idle connection is reused (a hit), no new dial. */
    uint64_t second_id = 0;
    pool_stats_t after;
    if (use_once(pool, 0, &second_id) != 0 ||
        print_stats(pool, "after second put", &after) != 0)
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
