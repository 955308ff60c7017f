/*
 * sentinel.c - a pool that follows the master Redis Sentinel reports.
 *
 *   cc -std=c11 -pthread sentinel.c -o sentinel $(pkg-config --cflags --libs redispool)
 *   ./sentinel mymaster 127.0.0.1:26379 127.0.0.1:26380 127.0.0.1:26381
 *
 * pool_sentinel_new makes an ordinary pool_t: gets dial whatever master the sentinels
 * name (checked with ROLE), and after a failover every conn to the old master is retired.
 * Four threads INCR one counter through it; the program prints the master and the count.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redispool.h"

#define THREADS 4
#define INCRS_PER_THREAD 500

static pool_t *pool;

static void *worker(void *arg)
{
    (void)arg;
    long failures = 0;
    for (int i = 0; i < INCRS_PER_THREAD; i++) {
        pool_conn_t *conn;
        pool_error_t err;
        pool_status_t st = pool_get(pool, &conn, &err);
        if (st != POOL_OK) {
            fprintf(stderr, "get: %s: %s\n", pool_status_str(st), err.message);
            failures++;
            continue;
        }
        const char *argv[] = {"INCR", "example:sentinel:counter"};
        pool_reply_t *reply = NULL;
        st = pool_conn_command(conn, 2, argv, NULL, &reply, &err);
        if (st != POOL_OK || reply->type != POOL_REPLY_INTEGER) {
            fprintf(stderr, "INCR: %s\n", st != POOL_OK ? err.message : reply->str);
            failures++;
        }
        pool_reply_free(reply);
        /* A conn whose command failed mid-way (or hit READONLY) is removed by put. */
        pool_put(pool, conn);
    }
    return (void *)(intptr_t)failures;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s <master-name> <sentinel host:port>...\n", argv[0]);
        return 2;
    }
    pool_sentinel_options_t so;
    pool_sentinel_options_init(&so);
    so.master_name = argv[1];
    so.sentinel_addrs = (const char *const *)&argv[2];
    so.sentinel_addrs_len = (size_t)(argc - 2);

    pool_options_t o; /* the master conns: everything but addr and dialer */
    pool_options_init(&o);
    o.pool_size = THREADS;

    pool_error_t err;
    if (pool_sentinel_new(&so, &o, &pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_sentinel_new: %s\n", err.message);
        return 1;
    }
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, worker, NULL);
    long failures = 0;
    for (int t = 0; t < THREADS; t++) {
        void *r;
        pthread_join(th[t], &r);
        failures += (long)(intptr_t)r;
    }

    char master[POOL_SENTINEL_ADDR_LEN];
    if (pool_sentinel_master_addr(pool, master, sizeof master, &err) != POOL_OK) {
        fprintf(stderr, "pool_sentinel_master_addr: %s\n", err.message);
        failures++;
    } else {
        printf("master %s\n", master);
    }
    pool_conn_t *conn;
    if (pool_get(pool, &conn, &err) == POOL_OK) {
        const char *get[] = {"GET", "example:sentinel:counter"};
        pool_reply_t *reply = NULL;
        if (pool_conn_command(conn, 2, get, NULL, &reply, &err) == POOL_OK &&
            reply->type == POOL_REPLY_STRING)
            printf("counter %s\n", reply->str);
        pool_reply_free(reply);
        pool_put(pool, conn);
    }
    pool_stats_t s = {.struct_size = sizeof s};
    pool_stats(pool, &s);
    printf("%d threads x %d INCR: %ld failures, %" PRIu64 " dials\n", THREADS, INCRS_PER_THREAD,
           failures, s.dials);
    pool_free(pool);
    return failures == 0 ? 0 : 1;
}
