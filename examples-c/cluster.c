/*
 * cluster.c - a Redis Cluster from several threads through one pool_cluster_t.
 *
 *   cc -std=c11 -pthread cluster.c -o cluster $(pkg-config --cflags --libs redispool)
 *   ./cluster 'redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002' [threads]
 *
 * Each thread gets a conn for a key (pool_cluster_get hashes the key to its slot and
 * picks that slot's master), runs SET and GET on it, and gives it back. A key written
 * with a {hash tag} lands with every other key of the same tag, so a MULTI/EXEC over
 * them runs on one node. Commands that meet MOVED or ASK (a slot being resharded) are
 * followed by the library. At the end the program prints each master's share.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redispool.h"

#define KEYS_PER_THREAD 1000

static pool_cluster_t *cluster;

static int run(pool_conn_t *conn, int argc, const char **argv, pool_reply_t **reply)
{
    pool_error_t err;
    pool_status_t st = pool_conn_command(conn, argc, argv, NULL, reply, &err);
    if (st != POOL_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], err.message);
        return -1;
    }
    if ((*reply)->type == POOL_REPLY_ERROR) {
        fprintf(stderr, "%s: %s\n", argv[0], (*reply)->str);
        return -1;
    }
    return 0;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    long failures = 0;
    for (int i = 0; i < KEYS_PER_THREAD; i++) {
        char key[64], value[32];
        snprintf(key, sizeof key, "example:%d:%d", id, i);
        snprintf(value, sizeof value, "%d", i);

        pool_conn_t *conn;
        pool_error_t err;
        pool_status_t st = pool_cluster_get(cluster, key, strlen(key), -1, NULL, &conn, &err);
        if (st != POOL_OK) {
            fprintf(stderr, "get %s: %s: %s\n", key, pool_status_str(st), err.message);
            failures++;
            continue;
        }
        const char *set[] = {"SET", key, value};
        const char *get[] = {"GET", key};
        pool_reply_t *reply = NULL;
        int bad = run(conn, 3, set, &reply) != 0;
        pool_reply_free(reply);
        reply = NULL;
        if (!bad) {
            bad = run(conn, 2, get, &reply) != 0 || strcmp(reply->str, value) != 0;
            pool_reply_free(reply);
        }
        failures += bad;
        /* A conn whose command failed mid-way is removed by put anyway. */
        pool_cluster_put(cluster, conn);
    }
    return (void *)(intptr_t)failures;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <cluster-url> [threads]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 8;
    if (threads < 1 || threads > 256)
        threads = 8;

    pool_error_t err;
    if (pool_cluster_new_url(argv[1], &cluster, &err) != POOL_OK) {
        fprintf(stderr, "pool_cluster_new_url: %s\n", err.message);
        return 1;
    }
    pthread_t th[256];
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    long failures = 0;
    for (int t = 0; t < threads; t++) {
        void *r;
        pthread_join(th[t], &r);
        failures += (long)(intptr_t)r;
    }

    /* Each master's share, from its pool's stats. */
    pool_cluster_node_t nodes[64];
    size_t count = 0;
    pool_cluster_nodes(cluster, nodes, 64, &count);
    for (size_t i = 0; i < count && i < 64; i++) {
        if (!nodes[i].master)
            continue;
        pool_stats_t s = {.struct_size = sizeof s};
        if (pool_cluster_stats(cluster, nodes[i].addr, &s) == POOL_OK)
            printf("master %s: %d slots, %" PRIu64 " gets, %u conns\n", nodes[i].addr,
                   nodes[i].slots, s.hits + s.misses, s.total_conns);
    }
    pool_cluster_info_t info = {.struct_size = sizeof info};
    pool_cluster_info(cluster, &info);
    printf("%d threads x %d keys: %ld failures; slot map loaded %" PRIu64
           " time(s), %u of 16384 slots covered\n",
           threads, KEYS_PER_THREAD, failures, info.refreshes, info.slots_covered);
    pool_cluster_free(cluster);
    return failures == 0 ? 0 : 1;
}
