/*
 * hiredis.c - hiredis on pooled connections, without rewriting hiredis code.
 *
 *   ./hiredis [HOST:PORT [THREADS [ITERATIONS]]]
 *
 * A program written for hiredis keeps its redisCommand calls and lets
 * redispool own the connections: borrow a conn, wrap its socket with
 * redisConnectFd, run commands, then redisFreeKeepFd (frees hiredis's context,
 * leaves the socket open) and give the conn back. THREADS threads (default 8)
 * do ITERATIONS (default 2000) SET + GET rounds each, every round on a conn
 * borrowed from a pool of 4, with a value unique to the thread and round: a
 * reply read by the wrong thread or one round late would show as a wrong
 * value. At the end every GET must have returned its own SET's value, every
 * get must be a hit or a miss, no conn may have been lost, and each of the
 * pool's conns must have been reused.
 *
 * The hand-back rules (docs/hiredis.md):
 *  - read every reply you asked for before giving the conn back;
 *  - redisFreeKeepFd, never redisFree (which would close the pool's socket);
 *  - after a hiredis error (c->err: I/O, EOF, protocol) the conn's state is
 *    unknown: pool_remove it instead of pool_put;
 *  - keep the pool's protocol at 2 (the default) for hiredis 0.14, which does
 *    not parse RESP3.
 *
 * Build: cc -std=c11 hiredis.c $(pkg-config --cflags --libs redispool hiredis) -pthread
 * HOST:PORT defaults to 127.0.0.1:6379; the tests pass their own server.
 */
#define _POSIX_C_SOURCE 200809L

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redispool.h"

#define POOL_SIZE 4
#define MAX_THREADS 256
/* Conn ids seen, to count how often each conn was used. */
#define MAX_CONNS 64

struct worker {
    pool_t *pool;
    pthread_t thread;
    int index;
    long iterations;
    long rounds_ok;
    long wrong_replies;
    long errors;
};

static pthread_mutex_t uses_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t conn_ids[MAX_CONNS];
static long conn_uses[MAX_CONNS];
static int conns_seen;

static void count_use(uint64_t id)
{
    pthread_mutex_lock(&uses_lock);
    int i = 0;
    while (i < conns_seen && conn_ids[i] != id)
        i++;
    if (i == conns_seen && conns_seen < MAX_CONNS) {
        conn_ids[i] = id;
        conns_seen++;
    }
    if (i < MAX_CONNS)
        conn_uses[i]++;
    pthread_mutex_unlock(&uses_lock);
}

/*
 * One round on a borrowed conn: SET key value, GET key, check the value.
 * Returns 1 if the round was right, 0 if a reply was wrong, -1 on a hiredis
 * error (then the conn must be removed, not put back).
 */
static int round_trip(redisContext *c, const char *key, const char *value)
{
    redisReply *r = redisCommand(c, "SET %s %s", key, value);
    if (r == NULL)
        return -1;
    int ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    freeReplyObject(r);

    r = redisCommand(c, "GET %s", key);
    if (r == NULL)
        return -1;
    ok = ok && r->type == REDIS_REPLY_STRING && strcmp(r->str, value) == 0;
    freeReplyObject(r);
    return ok ? 1 : 0;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    char key[64];
    char value[64];
    snprintf(key, sizeof key, "hiredis-example:%d", w->index);

    for (long i = 0; i < w->iterations; i++) {
        pool_conn_t *conn = NULL;
        pool_error_t err;
        if (pool_get(w->pool, &conn, &err) != POOL_OK) {
            fprintf(stderr, "thread %d: pool_get: %s\n", w->index, err.message);
            w->errors++;
            continue;
        }
        count_use(pool_conn_id(conn));

        /* hiredis on the pooled socket: blocking, as the pool hands it out. */
        redisContext *c = redisConnectFd(pool_conn_fd(conn));
        if (c == NULL || c->err) {
            fprintf(stderr, "thread %d: redisConnectFd: %s\n", w->index,
                    c ? c->errstr : "out of memory");
            if (c)
                redisFreeKeepFd(c);
            pool_remove(w->pool, conn, "redisConnectFd failed");
            w->errors++;
            continue;
        }

        snprintf(value, sizeof value, "thread %d round %ld", w->index, i);
        int rc = round_trip(c, key, value);
        if (rc < 0) {
            fprintf(stderr, "thread %d: hiredis: %s\n", w->index, c->errstr);
            w->errors++;
        } else if (rc == 0) {
            w->wrong_replies++;
        } else {
            w->rounds_ok++;
        }

        /* Hand-back: free hiredis's context but keep the pool's socket. */
        redisFreeKeepFd(c);
        if (rc < 0)
            pool_remove(w->pool, conn, "hiredis error");
        else
            pool_put(w->pool, conn);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:6379";
    int threads = argc > 2 ? atoi(argv[2]) : 8;
    long iterations = argc > 3 ? atol(argv[3]) : 2000;
    if (threads < 1 || threads > MAX_THREADS || iterations < 1) {
        fprintf(stderr, "usage: %s [HOST:PORT [THREADS (1-%d) [ITERATIONS]]]\n", argv[0],
                MAX_THREADS);
        return 2;
    }

    char url[512];
    snprintf(url, sizeof url, "redis://%s/0?pool_size=%d&pool_timeout=30s", addr, POOL_SIZE);
    pool_t *pool = NULL;
    pool_error_t err;
    if (pool_new_url(url, &pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_new_url: %s\n", err.message);
        return 1;
    }

    struct worker workers[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        workers[i] = (struct worker){.pool = pool, .index = i, .iterations = iterations};
        int rc = pthread_create(&workers[i].thread, NULL, work, &workers[i]);
        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    long rounds_ok = 0, wrong = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(workers[i].thread, NULL);
        rounds_ok += workers[i].rounds_ok;
        wrong += workers[i].wrong_replies;
        errors += workers[i].errors;
    }

    pool_stats_t st = {.struct_size = sizeof st};
    pool_stats(pool, &st);
    long min_uses = -1;
    for (int i = 0; i < conns_seen; i++)
        if (min_uses < 0 || conn_uses[i] < min_uses)
            min_uses = conn_uses[i];

    long gets = (long)threads * iterations;
    printf("threads=%d rounds=%ld commands=%ld ok=%ld wrong_replies=%ld errors=%ld\n", threads,
           gets, 2 * gets, rounds_ok, wrong, errors);
    printf("conns=%d min_uses_per_conn=%ld hits=%" PRIu64 " misses=%" PRIu64
           " removed=%" PRIu64 " stale=%" PRIu32 " total_conns=%" PRIu32 "\n",
           conns_seen, min_uses, st.hits, st.misses, st.removed_conns, st.stale_conns,
           st.total_conns);

    int failed = 0;
    if (rounds_ok != gets || wrong != 0 || errors != 0) {
        fprintf(stderr, "FAIL: %ld of %ld rounds right\n", rounds_ok, gets);
        failed = 1;
    }
    if (st.hits + st.misses != (uint64_t)gets || st.removed_conns != 0 || st.stale_conns != 0) {
        fprintf(stderr, "FAIL: the pool's statistics do not add up\n");
        failed = 1;
    }
    if (conns_seen < 1 || conns_seen > POOL_SIZE || min_uses < 2 ||
        st.misses != (uint64_t)conns_seen) {
        fprintf(stderr, "FAIL: conns were not all reused (%d conns, least used %ld times)\n",
                conns_seen, min_uses);
        failed = 1;
    }

    pool_close(pool);
    pool_free(pool);
    if (!failed)
        printf("OK\n");
    return failed;
}
