/*
 * abi_cluster.c - Redis Cluster through the C ABI, against a real cluster that
 * tests/cluster.rs starts (3 masters, each with a replica).
 *
 *   abi_cluster api  <cluster-url> <masters>
 *       keys spread over every master from 16 threads, gets by key / slot / node,
 *       node pools, MOVED from a conn to the wrong node, stats, misuse.
 *   abi_cluster load <cluster-url> <threads> <tag>
 *       <threads> threads run SET + GET rounds on keys "{<tag>}:<t>:<i>" (tag "-":
 *       keys over every slot) until a "stop" line arrives on stdin; a "mark" line
 *       records the moment a fault ended. Then it prints per thread:
 *         thread <t> ok=<n> fail=<n> last_fail_after_mark_ms=<ms|-1> ok_after_last_fail=<n>
 *       and "info moved=<n> ask=<n> retries=<n> refreshes=<n>", and the first failures.
 *       The Rust side drives the fault (slot migration, a master killed) meanwhile.
 */
#define _GNU_SOURCE
#include "check.h"

#include <sys/wait.h>

/* `a op b` on integers, each evaluated once; evaluates to whether it held. */
#define CHECK_CMP(a, op, b)                                                                  \
    check_cmp((long long)(a), #op, (long long)(b), #a " " #op " " #b, __FILE__, __LINE__)
#define CHECK_STREQ(a, b) CHECK_EQ(strcmp((a), (b)), 0)

static int check_cmp(long long a, const char *op, long long b, const char *expr,
                     const char *file, int line)
{
    int ok = strcmp(op, "==") == 0   ? a == b
             : strcmp(op, "!=") == 0 ? a != b
             : strcmp(op, ">=") == 0 ? a >= b
             : strcmp(op, "<=") == 0 ? a <= b
             : strcmp(op, ">") == 0  ? a > b
                                     : a < b;
    check_total++;
    if (!ok)
        check_fail(file, line, "%s (got %lld vs %lld)", expr, a, b);
    return ok;
}

#define THREADS_API 16
#define KEYS_PER_THREAD 300

static pool_cluster_t *cluster;

/* Sends argv (NUL-terminated strings) on conn; returns the status, the reply in *out. */
static pool_status_t cmd(pool_conn_t *conn, pool_reply_t **out, int argc, const char **argv)
{
    pool_error_t err;
    return pool_conn_command(conn, argc, argv, NULL, out, &err);
}

/* A reply of type `type` whose text is `text` (NULL: any text). */
static int reply_is(const pool_reply_t *r, int type, const char *text)
{
    if (r == NULL || r->type != type)
        return 0;
    return text == NULL || (r->len == strlen(text) && memcmp(r->str, text, r->len) == 0);
}

/* ---------------------------------------------------------------- api mode */

struct spread_arg {
    int t;
    int failures;
    char first_failure[300];
};

static void note_failure(struct spread_arg *a, const char *what)
{
    if (a->failures++ == 0)
        snprintf(a->first_failure, sizeof a->first_failure, "%s", what);
}

static void *spread_thread(void *p)
{
    struct spread_arg *a = p;
    for (int i = 0; i < KEYS_PER_THREAD; i++) {
        char key[64], val[64];
        snprintf(key, sizeof key, "spread:%d:%d", a->t, i);
        snprintf(val, sizeof val, "v%d", i);
        pool_conn_t *conn;
        pool_error_t err;
        pool_status_t st = pool_cluster_get(cluster, key, strlen(key), -1, NULL, &conn, &err);
        if (st != POOL_OK) {
            note_failure(a, err.message);
            continue;
        }
        /* The conn is to the master of the key's slot: no redirect is needed. */
        const char *set[] = {"SET", key, val};
        const char *get[] = {"GET", key};
        pool_reply_t *r = NULL;
        if (cmd(conn, &r, 3, set) != POOL_OK || !reply_is(r, POOL_REPLY_STATUS, "OK"))
            note_failure(a, r && r->str ? r->str : "SET failed");
        pool_reply_free(r);
        r = NULL;
        if (cmd(conn, &r, 2, get) != POOL_OK || !reply_is(r, POOL_REPLY_STRING, val))
            note_failure(a, r && r->str ? r->str : "GET failed");
        pool_reply_free(r);
        if (pool_cluster_put(cluster, conn) != POOL_OK)
            note_failure(a, "put failed");
    }
    return NULL;
}

static int find_node(const pool_cluster_node_t *nodes, size_t n, const char *addr)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(nodes[i].addr, addr) == 0)
            return (int)i;
    return -1;
}

static void api_spread(int masters)
{
    section("cluster: keys spread over every master from 16 threads");
    pthread_t th[THREADS_API];
    struct spread_arg args[THREADS_API];
    for (int t = 0; t < THREADS_API; t++) {
        args[t] = (struct spread_arg){.t = t};
        CHECK(pthread_create(&th[t], NULL, spread_thread, &args[t]) == 0);
    }
    int failures = 0;
    for (int t = 0; t < THREADS_API; t++) {
        pthread_join(th[t], NULL);
        if (args[t].failures)
            fprintf(stderr, "thread %d: %d failures, first: %s\n", t, args[t].failures,
                    args[t].first_failure);
        failures += args[t].failures;
    }
    CHECK_CMP(failures, ==, 0);

    pool_cluster_info_t info = {.struct_size = sizeof info};
    CHECK_CMP(pool_cluster_info(cluster, &info), ==, POOL_OK);
    CHECK_CMP(info.slots_covered, ==, 16384);
    CHECK_CMP(info.masters, ==, masters);
    CHECK_CMP(info.refreshes, >=, 1);
    CHECK_CMP(info.moved, ==, 0);
    CHECK_CMP(info.ask, ==, 0);

    pool_cluster_node_t nodes[32];
    size_t count = 0;
    CHECK_CMP(pool_cluster_nodes(cluster, nodes, 32, &count), ==, POOL_OK);
    CHECK_CMP(count, >=, (size_t)masters);
    int slots = 0;
    uint64_t hits = 0, dials = 0;
    for (int i = 0; i < masters && i < (int)count; i++) {
        CHECK_CMP(nodes[i].master, ==, 1);
        slots += nodes[i].slots;
        pool_stats_t s = {.struct_size = sizeof s};
        CHECK_CMP(pool_cluster_stats(cluster, nodes[i].addr, &s), ==, POOL_OK);
        /* Every master served a share of the 4800 keys. */
        CHECK(s.hits + s.misses >= 2 * KEYS_PER_THREAD);
        CHECK_CMP(s.dials, >=, 1);
        CHECK_CMP(s.in_use_conns, ==, 0);
        hits += s.hits + s.misses;
        dials += s.dials;
        printf("master %s: %d slots, %" PRIu64 " gets, %" PRIu64 " dials\n", nodes[i].addr,
               nodes[i].slots, s.hits + s.misses, s.dials);
    }
    CHECK_CMP(slots, ==, 16384);
    pool_stats_t total = {.struct_size = sizeof total};
    CHECK_CMP(pool_cluster_stats(cluster, NULL, &total), ==, POOL_OK);
    CHECK(total.hits + total.misses >= hits);
    CHECK_CMP(total.dials, >=, dials);
    CHECK_CMP(total.in_use_conns, ==, 0);
    /* A node without a pool has no stats. */
    pool_stats_t none = {.struct_size = sizeof none};
    CHECK_CMP(pool_cluster_stats(cluster, "127.0.0.1:1", &none), ==, POOL_ERR_INVALID_ARG);
}

/* Before any get: no slot map, so no route (and no load, no wait). */
static void api_route_unloaded(void)
{
    section("cluster: pool_cluster_slot_node before the slot map is loaded");
    char addr[POOL_CLUSTER_ADDR_MAX];
    CHECK_CMP(pool_cluster_slot_node(cluster, 0, addr, sizeof addr), ==, POOL_ERR_CLUSTER);
    pool_cluster_info_t info = {.struct_size = sizeof info};
    CHECK_CMP(pool_cluster_info(cluster, &info), ==, POOL_OK);
    CHECK_CMP(info.refreshes, ==, 0);
}

/* The route a host's own scheduler uses: slot -> master (pool_cluster_slot_node) -> that
 * node's pool (pool_cluster_node_pool), whose pool_try_get hands out conns of that node. */
static void api_route(void)
{
    section("cluster: pool_cluster_slot_node routes a slot to its master's pool");
    const int32_t slots[] = {0, 5061, 12182, 16383};
    pool_error_t err;
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        char routed[POOL_CLUSTER_ADDR_MAX], got[POOL_CLUSTER_ADDR_MAX];
        if (!CHECK_CMP(pool_cluster_slot_node(cluster, slots[i], routed, sizeof routed), ==,
                       POOL_OK))
            continue;
        pool_conn_t *conn;
        if (CHECK_CMP(pool_cluster_get_slot(cluster, slots[i], -1, NULL, &conn, &err), ==,
                      POOL_OK)) {
            CHECK_CMP(pool_cluster_conn_node(conn, got, sizeof got), ==, POOL_OK);
            CHECK_STREQ(routed, got);
            CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_OK);
        }
        pool_t *node = NULL;
        if (CHECK_CMP(pool_cluster_node_pool(cluster, routed, &node, &err), ==, POOL_OK)) {
            /* The conn just put back is idle there: try_get takes it without waiting. */
            if (CHECK_CMP(pool_try_get(node, &conn), ==, POOL_OK)) {
                CHECK_CMP(pool_cluster_conn_node(conn, got, sizeof got), ==, POOL_OK);
                CHECK_STREQ(routed, got);
                CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_OK);
            }
            CHECK(pool_notify_fd(node) >= 0);
            pool_free(node);
        }
    }
    /* Bad input: out-of-range slots, no room, NULLs; nothing is written on failure. */
    char buf[POOL_CLUSTER_ADDR_MAX] = "unchanged";
    CHECK_CMP(pool_cluster_slot_node(cluster, -1, buf, sizeof buf), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_slot_node(cluster, 16384, buf, sizeof buf), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_slot_node(cluster, 0, buf, 4), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_slot_node(cluster, 0, buf, 0), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_slot_node(cluster, 0, NULL, 64), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_slot_node(NULL, 0, buf, sizeof buf), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_slot_node((pool_cluster_t *)0x1234, 0, buf, sizeof buf), ==,
              POOL_ERR_INVALID_ARG);
    CHECK_STREQ(buf, "unchanged");
}

static void api_targets(void)
{
    section("cluster: get by key, slot and node; node pools; conn node");
    char master[POOL_CLUSTER_ADDR_MAX];
    pool_conn_t *conn;
    pool_error_t err;
    const char *key = "{user1000}.following";
    CHECK_CMP(pool_cluster_key_slot(key, strlen(key)), ==,
              pool_cluster_key_slot("user1000", 8));
    CHECK_CMP(pool_cluster_key_slot("foo", 3), ==, 12182);
    CHECK_CMP(pool_cluster_key_slot("bar", 3), ==, 5061);
    CHECK_CMP(pool_cluster_key_slot(NULL, 0), ==, 0);
    CHECK_CMP(pool_cluster_key_slot(NULL, 3), ==, -1);

    /* By slot: the conn's node serves that slot (CLUSTER KEYSLOT agrees). */
    if (CHECK_CMP(pool_cluster_get_slot(cluster, 12182, -1, NULL, &conn, &err), ==, POOL_OK)) {
        CHECK_CMP(pool_cluster_conn_node(conn, master, sizeof master), ==, POOL_OK);
        const char *ks[] = {"CLUSTER", "KEYSLOT", "foo"};
        pool_reply_t *r = NULL;
        CHECK_CMP(cmd(conn, &r, 3, ks), ==, POOL_OK);
        CHECK(r && r->type == POOL_REPLY_INTEGER && r->integer == 12182);
        pool_reply_free(r);
        char small[4];
        CHECK_CMP(pool_cluster_conn_node(conn, small, sizeof small), ==, POOL_ERR_INVALID_ARG);
        CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_OK);
    }
    /* By key: the same node as by slot. */
    if (CHECK_CMP(pool_cluster_get(cluster, "foo", 3, 1000, NULL, &conn, &err), ==, POOL_OK)) {
        char addr[POOL_CLUSTER_ADDR_MAX];
        CHECK_CMP(pool_cluster_conn_node(conn, addr, sizeof addr), ==, POOL_OK);
        CHECK_STREQ(addr, master);
        CHECK_CMP(pool_cluster_remove(cluster, conn, "test"), ==, POOL_OK);
    }
    /* By node, and through the node's own pool_t. */
    if (CHECK_CMP(pool_cluster_get_node(cluster, master, -1, NULL, &conn, &err), ==, POOL_OK)) {
        char addr[POOL_CLUSTER_ADDR_MAX];
        CHECK_CMP(pool_cluster_conn_node(conn, addr, sizeof addr), ==, POOL_OK);
        CHECK_STREQ(addr, master);
        /* It goes back through the node pool as well. */
        pool_t *node = NULL;
        CHECK_CMP(pool_cluster_node_pool(cluster, master, &node, &err), ==, POOL_OK);
        CHECK_CMP(pool_put(node, conn), ==, POOL_OK);
        /* A conn from the node pool goes back through the cluster, and follows MOVED. */
        if (CHECK_CMP(pool_get(node, &conn, &err), ==, POOL_OK)) {
            CHECK_CMP(pool_cluster_conn_node(conn, addr, sizeof addr), ==, POOL_OK);
            CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_OK);
        }
        /* A sticky pool over a node pool: MULTI/EXEC on one node. */
        pool_t *sticky = NULL;
        CHECK_CMP(pool_sticky_new(node, &sticky), ==, POOL_OK);
        if (sticky && CHECK_CMP(pool_get(sticky, &conn, &err), ==, POOL_OK)) {
            const char *multi[] = {"MULTI"};
            const char *incr[] = {"INCR", "{foo}:ctr"};
            const char *exec[] = {"EXEC"};
            pool_reply_t *r = NULL;
            CHECK_CMP(cmd(conn, &r, 1, multi), ==, POOL_OK);
            pool_reply_free(r);
            CHECK_CMP(cmd(conn, &r, 2, incr), ==, POOL_OK);
            CHECK(reply_is(r, POOL_REPLY_STATUS, "QUEUED"));
            pool_reply_free(r);
            CHECK_CMP(cmd(conn, &r, 1, exec), ==, POOL_OK);
            CHECK(r && r->type == POOL_REPLY_ARRAY && r->elements == 1);
            pool_reply_free(r);
            CHECK_CMP(pool_put(sticky, conn), ==, POOL_OK);
        }
        pool_free(sticky);
        /* The cluster owns the node pool: close is refused, free drops the reference. */
        CHECK_CMP(pool_close(node), ==, POOL_ERR_INVALID_ARG);
        pool_free(node);
        CHECK_CMP(pool_cluster_get_node(cluster, master, -1, NULL, &conn, &err), ==, POOL_OK);
        CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_OK);
    }
}

static void api_moved(void)
{
    section("cluster: a command sent to the wrong node follows MOVED");
    pool_cluster_node_t nodes[32];
    size_t count = 0;
    CHECK_CMP(pool_cluster_nodes(cluster, nodes, 32, &count), ==, POOL_OK);
    pool_conn_t *owner_conn, *conn;
    pool_error_t err;
    const char *key = "moved:key";
    if (!CHECK_CMP(pool_cluster_get(cluster, key, strlen(key), -1, NULL, &owner_conn, &err), ==,
                   POOL_OK))
        return;
    char owner[POOL_CLUSTER_ADDR_MAX];
    CHECK_CMP(pool_cluster_conn_node(owner_conn, owner, sizeof owner), ==, POOL_OK);
    CHECK_CMP(pool_cluster_put(cluster, owner_conn), ==, POOL_OK);
    int owner_row = find_node(nodes, count, owner);
    CHECK(owner_row >= 0 && nodes[owner_row].master == 1);
    /* A master that does not own the key. */
    const char *other = NULL;
    for (size_t i = 0; i < count; i++)
        if (nodes[i].master && strcmp(nodes[i].addr, owner) != 0)
            other = nodes[i].addr;
    if (!CHECK(other != NULL))
        return;
    pool_cluster_info_t before = {.struct_size = sizeof before}, after = before;
    CHECK_CMP(pool_cluster_info(cluster, &before), ==, POOL_OK);
    if (!CHECK_CMP(pool_cluster_get_node(cluster, other, -1, NULL, &conn, &err), ==, POOL_OK))
        return;
    const char *set[] = {"SET", key, "here"};
    const char *get[] = {"GET", key};
    pool_reply_t *r = NULL;
    CHECK_CMP(cmd(conn, &r, 3, set), ==, POOL_OK);
    CHECK(reply_is(r, POOL_REPLY_STATUS, "OK"));
    pool_reply_free(r);
    CHECK_CMP(cmd(conn, &r, 2, get), ==, POOL_OK);
    CHECK(reply_is(r, POOL_REPLY_STRING, "here"));
    pool_reply_free(r);
    /* The conn is still the caller's, to its own node. */
    char addr[POOL_CLUSTER_ADDR_MAX];
    CHECK_CMP(pool_cluster_conn_node(conn, addr, sizeof addr), ==, POOL_OK);
    CHECK_STREQ(addr, other);
    CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_OK);
    CHECK_CMP(pool_cluster_info(cluster, &after), ==, POOL_OK);
    CHECK_CMP(after.moved, ==, before.moved + 2);
    /* A plain pool to that node sees the raw MOVED: only cluster conns follow it. */
    /* ABI_CLUSTER_TLS_CA: the cluster is reached over TLS (tests/cluster.rs api_over_tls). */
    const char *tls_ca = getenv("ABI_CLUSTER_TLS_CA");
    char url[1400];
    if (tls_ca != NULL)
        snprintf(url, sizeof url, "rediss://%s?tls_ca_file=%s", other, tls_ca);
    else
        snprintf(url, sizeof url, "redis://%s", other);
    pool_t *plain = NULL;
    if (CHECK_CMP(pool_new_url(url, &plain, &err), ==, POOL_OK) &&
        CHECK_CMP(pool_get(plain, &conn, &err), ==, POOL_OK)) {
        CHECK_CMP(cmd(conn, &r, 2, get), ==, POOL_OK);
        CHECK(r && r->type == POOL_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0);
        pool_reply_free(r);
        /* A plain pool's conn is foreign to the cluster. */
        CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_ERR_INVALID_ARG);
        CHECK_CMP(pool_put(plain, conn), ==, POOL_OK);
    }
    pool_free(plain);
    /* With max_redirects=0 nothing is followed. */
    pool_cluster_options_t o;
    pool_cluster_options_init(&o);
    const char *seeds[] = {other};
    o.seeds = seeds;
    o.seeds_len = 1;
    o.max_redirects = 0;
    pool_options_t node_opts;
    pool_options_init(&node_opts);
    if (tls_ca != NULL) {
        node_opts.tls = true;
        node_opts.tls_ca_file = tls_ca;
        o.node = &node_opts;
    }
    pool_cluster_t *c0 = NULL;
    if (CHECK_CMP(pool_cluster_new(&o, &c0, &err), ==, POOL_OK) &&
        CHECK_CMP(pool_cluster_get_node(c0, other, -1, NULL, &conn, &err), ==, POOL_OK)) {
        CHECK_CMP(cmd(conn, &r, 2, get), ==, POOL_OK);
        CHECK(r && r->type == POOL_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0);
        pool_reply_free(r);
        /* A conn of one cluster does not go back through another. */
        CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_ERR_INVALID_ARG);
        CHECK_CMP(pool_cluster_put(c0, conn), ==, POOL_OK);
    }
    pool_cluster_free(c0);
}

static void api_fork(void)
{
    section("cluster: fork() - the child uses the cluster with conns of its own");
    /* The parent holds a conn across the fork and keeps using it. */
    pool_conn_t *held;
    pool_error_t err;
    char held_key[48];
    snprintf(held_key, sizeof held_key, "fork:held:%ld", (long)getpid());
    if (!CHECK_CMP(pool_cluster_get(cluster, held_key, strlen(held_key), -1, NULL, &held, &err),
                   ==, POOL_OK))
        return;
    char held_node[POOL_CLUSTER_ADDR_MAX];
    CHECK_CMP(pool_cluster_conn_node(held, held_node, sizeof held_node), ==, POOL_OK);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: every key, on every master, through conns it dials itself. */
        int bad = 0;
        for (int i = 0; i < 200 && !bad; i++) {
            char key[32], val[32];
            snprintf(key, sizeof key, "fork:child:%d", i);
            snprintf(val, sizeof val, "c%d", i);
            pool_conn_t *conn;
            if (pool_cluster_get(cluster, key, strlen(key), 5000, NULL, &conn, &err) != POOL_OK) {
                bad = 1;
                break;
            }
            const char *set[] = {"SET", key, val};
            const char *get[] = {"GET", key};
            pool_reply_t *r = NULL;
            bad |= cmd(conn, &r, 3, set) != POOL_OK || !reply_is(r, POOL_REPLY_STATUS, "OK");
            pool_reply_free(r);
            r = NULL;
            bad |= cmd(conn, &r, 2, get) != POOL_OK || !reply_is(r, POOL_REPLY_STRING, val);
            pool_reply_free(r);
            bad |= pool_cluster_put(cluster, conn) != POOL_OK;
        }
        /* The parent's conn is not the child's to use. */
        const char *ping[] = {"PING"};
        pool_reply_t *r = NULL;
        bad |= cmd(held, &r, 1, ping) != POOL_ERR_BAD_CONN;
        pool_reply_free(r);
        _exit(bad ? 1 : 0);
    }
    if (!CHECK(pid > 0))
        return;
    /* Meanwhile the parent keeps using its conn and the cluster. */
    for (int i = 0; i < 200; i++) {
        const char *incr[] = {"INCR", held_key};
        pool_reply_t *r = NULL;
        CHECK_CMP(cmd(held, &r, 2, incr), ==, POOL_OK);
        CHECK(r != NULL && r->type == POOL_REPLY_INTEGER && r->integer == i + 1);
        pool_reply_free(r);
    }
    int status = 0;
    CHECK_CMP(waitpid(pid, &status, 0), ==, pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_CMP(pool_cluster_put(cluster, held), ==, POOL_OK);
    /* The child's writes are there. */
    pool_conn_t *conn;
    if (CHECK_CMP(pool_cluster_get(cluster, "fork:child:7", 12, -1, NULL, &conn, &err), ==,
                  POOL_OK)) {
        const char *get[] = {"GET", "fork:child:7"};
        pool_reply_t *r = NULL;
        CHECK_CMP(cmd(conn, &r, 2, get), ==, POOL_OK);
        CHECK(reply_is(r, POOL_REPLY_STRING, "c7"));
        pool_reply_free(r);
        CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_OK);
    }
}

static void api_misuse(const char *url)
{
    section("cluster: misuse and bad input");
    pool_cluster_t *c = (pool_cluster_t *)1;
    pool_error_t err;
    pool_conn_t *conn = (pool_conn_t *)1;
    CHECK_CMP(pool_cluster_new(NULL, &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(c == NULL);
    CHECK_CMP(pool_cluster_new_url(NULL, &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_new_url(url, NULL, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_new_url("redis://h:1/3", &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "database 0") != NULL);
    CHECK_CMP(pool_cluster_new_url("unix:///tmp/r.sock", &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_new_url("redis://:pw@h:1?addr=nope", &c, &err), ==,
              POOL_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "nope") != NULL);
    CHECK_CMP(pool_cluster_new_url("redis://:s3cret@h:1?bogus=1", &c, &err), ==,
              POOL_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "bogus") != NULL && strstr(err.message, "s3cret") == NULL);

    pool_cluster_options_t o;
    pool_cluster_options_init(&o);
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "seeds") != NULL);
    o.seeds_len = 2;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    const char *seeds[] = {"127.0.0.1:1", NULL};
    o.seeds = seeds;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "seeds[1]") != NULL);
    o.seeds_len = 1;
    o.max_redirects = -1;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "max_redirects") != NULL);
    o.max_redirects = 101;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    o.max_redirects = 3;
    o.refresh_min_interval_ms = -5;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    o.refresh_min_interval_ms = 100;
    pool_options_t node;
    pool_options_init(&node);
    node.db = 2;
    o.node = &node;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    node.db = 0;
    node.pool_size = -1;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "pool_size") != NULL);
    node.pool_size = 2;
    o.struct_size = 8;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "struct_size") != NULL);

    /* A cluster nobody answers for: POOL_ERR_CLUSTER naming the cause, fast. */
    pool_cluster_options_init(&o);
    o.seeds = seeds;
    o.seeds_len = 1;
    node.dialer_retries = 1;
    o.node = &node;
    CHECK_CMP(pool_cluster_new(&o, &c, &err), ==, POOL_OK);
    CHECK_CMP(pool_cluster_get(c, "k", 1, 2000, NULL, &conn, &err), ==, POOL_ERR_CLUSTER);
    CHECK(strstr(err.message, "127.0.0.1:1") != NULL);
    CHECK_CMP(pool_cluster_refresh(c, 2000, &err), ==, POOL_ERR_CLUSTER);
    pool_cluster_info_t info = {.struct_size = sizeof info};
    CHECK_CMP(pool_cluster_info(c, &info), ==, POOL_OK);
    CHECK_CMP(info.refresh_errors, >=, 2);
    CHECK_CMP(info.slots_covered, ==, 0);
    pool_cluster_free(c);

    /* NULLs and ranges on a working cluster. */
    CHECK_CMP(pool_cluster_get(NULL, "k", 1, -1, NULL, &conn, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(conn == NULL);
    CHECK_CMP(pool_cluster_get(cluster, "k", 1, -1, NULL, NULL, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_get(cluster, NULL, 1, -1, NULL, &conn, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_get_slot(cluster, 16384, -1, NULL, &conn, &err), ==,
              POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_get_slot(cluster, -1, -1, NULL, &conn, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_get_node(cluster, NULL, -1, NULL, &conn, &err), ==,
              POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_get_node(cluster, "no-port", -1, NULL, &conn, &err), ==,
              POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_put(NULL, NULL), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_put(cluster, NULL), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_put(cluster, (pool_conn_t *)0x1234), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_remove(cluster, NULL, NULL), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_refresh(NULL, -1, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_stats(NULL, NULL, NULL), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_info(cluster, NULL), ==, POOL_ERR_INVALID_ARG);
    size_t count;
    CHECK_CMP(pool_cluster_nodes(cluster, NULL, 0, &count), ==, POOL_OK);
    CHECK_CMP(count, >=, 3);
    CHECK_CMP(pool_cluster_nodes(cluster, NULL, 1, &count), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_nodes(cluster, NULL, 0, NULL), ==, POOL_ERR_INVALID_ARG);
    pool_t *np = (pool_t *)1;
    CHECK_CMP(pool_cluster_node_pool(cluster, NULL, &np, &err), ==, POOL_ERR_INVALID_ARG);
    CHECK(np == NULL);
    char buf[8];
    CHECK_CMP(pool_cluster_conn_node(NULL, buf, sizeof buf), ==, POOL_ERR_INVALID_ARG);
    CHECK_CMP(pool_cluster_close(NULL), ==, POOL_ERR_INVALID_ARG);
    pool_cluster_free(NULL);

    /* Double put; use after close; a conn put after close is closed. */
    if (CHECK_CMP(pool_cluster_get(cluster, "k", 1, -1, NULL, &conn, &err), ==, POOL_OK)) {
        pool_conn_t *late;
        CHECK_CMP(pool_cluster_get(cluster, "late", 4, -1, NULL, &late, &err), ==, POOL_OK);
        CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_OK);
        CHECK_CMP(pool_cluster_put(cluster, conn), ==, POOL_ERR_INVALID_ARG);
        CHECK_CMP(pool_cluster_close(cluster), ==, POOL_OK);
        CHECK_CMP(pool_cluster_close(cluster), ==, POOL_ERR_CLOSED);
        CHECK_CMP(pool_cluster_get(cluster, "k", 1, -1, NULL, &conn, &err), ==, POOL_ERR_CLOSED);
        CHECK_CMP(pool_cluster_node_pool(cluster, "127.0.0.1:1", &np, &err), ==, POOL_ERR_CLOSED);
        CHECK_CMP(pool_cluster_slot_node(cluster, 0, buf, sizeof buf), ==, POOL_ERR_CLOSED);
        pool_cluster_free(cluster);
        /* After free, its conns can still come back (and are closed). */
        CHECK_CMP(pool_cluster_put(cluster, late), ==, POOL_OK);
        cluster = NULL;
    }
}

/* --------------------------------------------------------------- load mode */

static atomic_int stop_flag;
static atomic_llong mark_ns = -1;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct load_arg {
    int t;
    const char *tag;
    unsigned long ok, fail, ok_after_last_fail;
    long long last_fail_ns;
    atomic_int started;
    char first_failure[300];
};

static void load_fail(struct load_arg *a, const char *what)
{
    if (a->fail++ < 1)
        snprintf(a->first_failure, sizeof a->first_failure, "%s", what);
    a->last_fail_ns = now_ns();
    a->ok_after_last_fail = 0;
}

static void *load_thread(void *p)
{
    struct load_arg *a = p;
    unsigned i = 0;
    while (!atomic_load(&stop_flag)) {
        char key[96], val[32];
        if (strcmp(a->tag, "-") == 0)
            snprintf(key, sizeof key, "load:%d:%u", a->t, i % 500);
        else
            snprintf(key, sizeof key, "{%s}:%d:%u", a->tag, a->t, i % 200);
        snprintf(val, sizeof val, "%u", i);
        i++;
        pool_conn_t *conn;
        pool_error_t err;
        pool_status_t st = pool_cluster_get(cluster, key, strlen(key), 2000, NULL, &conn, &err);
        if (st != POOL_OK) {
            char what[300];
            snprintf(what, sizeof what, "get: %s: %s", pool_status_str(st), err.message);
            load_fail(a, what);
            /* Do not spin on a dead node. */
            usleep(10000);
            continue;
        }
        const char *set[] = {"SET", key, val};
        const char *get[] = {"GET", key};
        pool_reply_t *r = NULL;
        int good = 1;
        char what[300] = "";
        st = cmd(conn, &r, 3, set);
        if (st != POOL_OK || !reply_is(r, POOL_REPLY_STATUS, "OK")) {
            snprintf(what, sizeof what, "SET %s: %s %s", key, pool_status_str(st),
                     r && r->str ? r->str : "");
            good = 0;
        }
        pool_reply_free(r);
        r = NULL;
        if (good) {
            st = cmd(conn, &r, 2, get);
            if (st != POOL_OK || !reply_is(r, POOL_REPLY_STRING, val)) {
                snprintf(what, sizeof what, "GET %s: %s %s (want %s)", key, pool_status_str(st),
                         r && r->str ? r->str : "", val);
                good = 0;
            }
            pool_reply_free(r);
        }
        if (good) {
            a->ok++;
            a->ok_after_last_fail++;
            atomic_store(&a->started, 1);
            pool_cluster_put(cluster, conn);
        } else {
            load_fail(a, what);
            if (st != POOL_OK)
                pool_cluster_remove(cluster, conn, "command failed");
            else
                pool_cluster_put(cluster, conn);
        }
    }
    return NULL;
}

static int run_load(int threads, const char *tag)
{
    struct load_arg *args = calloc((size_t)threads, sizeof *args);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    for (int t = 0; t < threads; t++) {
        args[t].t = t;
        args[t].tag = tag;
        args[t].last_fail_ns = -1;
        pthread_create(&th[t], NULL, load_thread, &args[t]);
    }
    /* Ready once every thread has succeeded at least once. */
    for (int n = 0; n < 30000; n++) {
        int ready = 1;
        for (int t = 0; t < threads; t++)
            ready &= atomic_load(&args[t].started);
        if (ready)
            break;
        usleep(1000);
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "mark", 4) == 0) {
            atomic_store(&mark_ns, now_ns());
            printf("marked\n");
            fflush(stdout);
        } else if (strncmp(line, "stop", 4) == 0) {
            break;
        }
    }
    atomic_store(&stop_flag, 1);
    long long mark = atomic_load(&mark_ns);
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        long long after = -1;
        if (mark >= 0 && args[t].last_fail_ns >= mark)
            after = (args[t].last_fail_ns - mark) / 1000000;
        printf("thread %d ok=%lu fail=%lu last_fail_after_mark_ms=%lld ok_after_last_fail=%lu\n",
               t, args[t].ok, args[t].fail, after, args[t].ok_after_last_fail);
        if (args[t].fail)
            printf("thread %d first failure: %s\n", t, args[t].first_failure);
    }
    pool_cluster_node_t nodes[32];
    size_t count = 0;
    pool_cluster_nodes(cluster, nodes, 32, &count);
    for (size_t i = 0; i < count && i < 32; i++) {
        pool_stats_t ns = {.struct_size = sizeof ns};
        if (pool_cluster_stats(cluster, nodes[i].addr, &ns) != POOL_OK)
            continue;
        printf("node %s master=%d slots=%d hits=%" PRIu64 " misses=%" PRIu64 " dials=%" PRIu64
               " dial_errors=%" PRIu64 " timeouts=%" PRIu64 " total=%u idle=%u in_use=%u"
               " waiting=%u dials_in_progress=%u pending=%u\n",
               nodes[i].addr, nodes[i].master, nodes[i].slots, ns.hits, ns.misses, ns.dials,
               ns.dial_errors, ns.timeouts, ns.total_conns, ns.idle_conns, ns.in_use_conns,
               ns.waiting, ns.dials_in_progress, ns.pending_requests);
    }
    pool_cluster_info_t info = {.struct_size = sizeof info};
    pool_cluster_info(cluster, &info);
    printf("info moved=%" PRIu64 " ask=%" PRIu64 " retries=%" PRIu64 " refreshes=%" PRIu64
           " slots_covered=%u\n",
           info.moved, info.ask, info.retries, info.refreshes, info.slots_covered);
    pool_stats_t s = {.struct_size = sizeof s};
    pool_cluster_stats(cluster, NULL, &s);
    printf("stats in_use=%u total=%u\n", s.in_use_conns, s.total_conns);
    free(args);
    free(th);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s api <url> <masters> | load <url> <threads> <tag>\n", argv[0]);
        return 2;
    }
    pool_error_t err;
    if (pool_cluster_new_url(argv[2], &cluster, &err) != POOL_OK) {
        fprintf(stderr, "pool_cluster_new_url: %s\n", err.message);
        return 1;
    }
    if (strcmp(argv[1], "load") == 0 && argc >= 5) {
        run_load(atoi(argv[3]), argv[4]);
        pool_cluster_free(cluster);
        return 0;
    }
    api_route_unloaded();
    api_spread(atoi(argv[3]));
    api_route();
    api_targets();
    api_moved();
    api_fork();
    api_misuse(argv[2]);
    pool_cluster_free(cluster);
    return check_exit_status();
}
