/*
 * abi_sentinel.c - pool_sentinel_new and pool_sentinel_master_addr against a real Redis
 * Sentinel deployment (a master, a replica, three sentinels, started by tests/sentinel.rs).
 *
 *   abi_sentinel inputs   <master-addr> <sentinel1> <sentinel2> <sentinel3>
 *   abi_sentinel failover <master-addr> <sentinel1> <sentinel2> <sentinel3>
 *
 * "inputs": every bad input of the two functions (clear code, message naming the field,
 * nothing created), and an ordinary pool_t over the sentinels' master (get, commands, put,
 * stats, sticky pool, close).
 *
 * "failover": THREADS threads loop get + RPUSH + put while the program sends
 * `SENTINEL FAILOVER mymaster`. It checks that every thread succeeds again on the new master
 * within FAILOVER_BOUND_MS, that pool_sentinel_master_addr reports the new master, that no
 * get begun after the pool reported the new master was handed a conn to the old master (each
 * conn's peer is read with getpeername), that the old master takes no write once every
 * thread moved (its RPUSH calls stop, and none was ever rejected as READONLY), and that every
 * write the new master acknowledged is there at the end.
 */
#ifndef _GNU_SOURCE /* tests/sentinel.rs defines it on the command line */
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include "check.h"


#define MASTER_NAME "mymaster"
#define THREADS 12
#define FAILOVER_BOUND_MS 30000
/* Acknowledged-by-the-new-master writes remembered per thread (the test stops earlier). */
#define MAX_ACKED 200000

static const char *g_sentinels[3];
static char g_master[POOL_SENTINEL_ADDR_LEN];

static pool_sentinel_options_t sentinel_opts(void)
{
    pool_sentinel_options_t so;
    pool_sentinel_options_init(&so);
    so.master_name = MASTER_NAME;
    so.sentinel_addrs = g_sentinels;
    so.sentinel_addrs_len = 3;
    return so;
}

static pool_options_t node_opts(void)
{
    pool_options_t o;
    pool_options_init(&o);
    o.pool_size = 8;
    o.dial_timeout_ms = scaled(2000);
    o.read_timeout_ms = scaled(3000);
    o.write_timeout_ms = scaled(3000);
    o.pool_timeout_ms = scaled(10000);
    return o;
}

/* One command, NULL on any failure (the status in *st when st is not NULL). */
static pool_reply_t *cmdv(pool_conn_t *conn, pool_status_t *st, int argc, const char **argv)
{
    pool_reply_t *r = NULL;
    pool_error_t err;
    pool_status_t rc = pool_conn_command(conn, argc, argv, NULL, &r, &err);
    if (st != NULL)
        *st = rc;
    return rc == POOL_OK ? r : NULL;
}

/* A plain pool to one address (a sentinel or a data node), for admin commands. */
static pool_t *plain_pool(const char *addr)
{
    pool_options_t o;
    pool_options_init(&o);
    o.addr = addr;
    o.pool_size = 2;
    o.dial_timeout_ms = scaled(2000);
    pool_t *p = NULL;
    pool_error_t err;
    if (!CHECK_STATUS(pool_new(&o, &p, &err), POOL_OK, &err))
        return NULL;
    return p;
}

/* One admin command on `addr`; the reply (caller frees) or NULL. */
static pool_reply_t *admin(const char *addr, int argc, const char **argv)
{
    pool_t *p = plain_pool(addr);
    if (p == NULL)
        return NULL;
    pool_conn_t *c = NULL;
    pool_reply_t *r = NULL;
    if (pool_get(p, &c, NULL) == POOL_OK) {
        r = cmdv(c, NULL, argc, argv);
        pool_put(p, c);
    }
    pool_free(p);
    return r;
}

/* `INFO <section>` field of `addr` into out (empty when missing). */
static void info_field(const char *addr, const char *section, const char *field, char *out,
                       size_t cap)
{
    const char *argv[] = {"INFO", section};
    out[0] = '\0';
    pool_reply_t *r = admin(addr, 2, argv);
    if (r == NULL || r->type != POOL_REPLY_STRING) {
        pool_reply_free(r);
        return;
    }
    size_t flen = strlen(field);
    for (const char *line = r->str; line != NULL && *line != '\0';) {
        const char *eol = strstr(line, "\r\n");
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        if (len > flen && strncmp(line, field, flen) == 0 && line[flen] == ':') {
            size_t n = len - flen - 1 < cap - 1 ? len - flen - 1 : cap - 1;
            memcpy(out, line + flen + 1, n);
            out[n] = '\0';
            break;
        }
        line = eol != NULL ? eol + 2 : NULL;
    }
    pool_reply_free(r);
}

/* `key=value` inside a commandstats line such as "calls=5,usec=1,...,rejected_calls=0". */
static long long stat_value(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", key);
    const char *p = strstr(line, pat);
    if (p == NULL)
        return 0;
    if (p != line && p[-1] != ',') {
        /* "calls=" also matches inside "rejected_calls=": find the field that starts it. */
        const char *q = line;
        p = NULL;
        while ((q = strstr(q, pat)) != NULL) {
            if (q == line || q[-1] == ',') {
                p = q;
                break;
            }
            q++;
        }
        if (p == NULL)
            return 0;
    }
    return strtoll(p + strlen(pat), NULL, 10);
}

/* RPUSH calls and rejected calls the server at `addr` counted. */
static void rpush_stats(const char *addr, long long *calls, long long *rejected)
{
    char line[512];
    info_field(addr, "commandstats", "cmdstat_rpush", line, sizeof line);
    *calls = stat_value(line, "calls");
    *rejected = stat_value(line, "rejected_calls");
}

static int peer_port(pool_conn_t *conn)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getpeername(pool_conn_fd(conn), (struct sockaddr *)&sa, &len) != 0 ||
        sa.sin_family != AF_INET)
        return -1;
    return ntohs(sa.sin_port);
}

static int port_of(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    return colon != NULL ? atoi(colon + 1) : -1;
}

/* Threads of this process named "redispool-senti" (the watcher's name, cut to 15 bytes). */
static int watcher_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) != NULL && strncmp(comm, "redispool-senti", 15) == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* In a forked child: the pool forgets the parent's conns and watcher, dials its own conn to
   the master and starts its own watcher. Exit status 0 when all of that held. */
static int child_uses_pool(pool_t *pool, int parent_conn_id)
{
    pool_conn_t *c = NULL;
    if (pool_get(pool, &c, NULL) != POOL_OK)
        return 10;
    if (peer_port(c) != port_of(g_master))
        return 11;
    if ((int)pool_conn_id(c) == parent_conn_id)
        return 12;
    const char *set[] = {"SET", "sentinel:child", "1"};
    pool_reply_t *r = cmdv(c, NULL, 3, set);
    int ok = r != NULL && r->type == POOL_REPLY_STATUS;
    pool_reply_free(r);
    pool_put(pool, c);
    if (!ok)
        return 13;
    /* The child's own watchers: a listener per sentinel and the resolver. */
    int watching;
    POLL_UNTIL(watching, watcher_threads() == 3 + 1, 5000);
    return watching ? 0 : 14;
}



/* ---- inputs ------------------------------------------------------------------------ */

#define EXPECT_NEW_FAILS(sopts, nopts, field)                                                 \
    do {                                                                                      \
        pool_t *p_ = (pool_t *)&p_;                                                           \
        pool_error_t e_;                                                                      \
        memset(&e_, 0, sizeof e_);                                                            \
        CHECK_STATUS(pool_sentinel_new((sopts), (nopts), &p_, &e_), POOL_ERR_INVALID_ARG,    \
                     &e_);                                                                    \
        CHECK_ERR_FILLED(&e_, POOL_ERR_INVALID_ARG);                                          \
        CHECK_CONTAINS(e_.message, (field));                                                  \
        CHECK(p_ == NULL);                                                                    \
        if (p_ != NULL && p_ != (pool_t *)&p_)                                                \
            pool_free(p_);                                                                    \
    } while (0)

static void inputs(void)
{
    section("sentinel options: init, NULLs, struct_size, every bad field named");
    pool_sentinel_options_init(NULL);
    pool_sentinel_options_t so = sentinel_opts();
    CHECK_EQ(so.struct_size, sizeof(pool_sentinel_options_t));
    CHECK_EQ(so.poll_interval_ms, 1000);
    pool_sentinel_options_t fresh;
    memset(&fresh, 0xAB, sizeof fresh);
    pool_sentinel_options_init(&fresh);
    CHECK(fresh.master_name == NULL && fresh.sentinel_addrs == NULL &&
          fresh.sentinel_addrs_len == 0 && fresh.sentinel_username == NULL &&
          fresh.sentinel_password == NULL);

    pool_error_t err;
    CHECK_STATUS(pool_sentinel_new(&so, NULL, NULL, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "pool_out");
    CHECK_STATUS(pool_sentinel_new(&so, NULL, NULL, NULL), POOL_ERR_INVALID_ARG, NULL);
    EXPECT_NEW_FAILS(NULL, NULL, "sopts");

    pool_sentinel_options_t bad = so;
    bad.struct_size = 0;
    EXPECT_NEW_FAILS(&bad, NULL, "struct_size");
    bad.struct_size = sizeof(size_t) + sizeof(void *);
    EXPECT_NEW_FAILS(&bad, NULL, "struct_size");

    bad = so;
    bad.master_name = NULL;
    EXPECT_NEW_FAILS(&bad, NULL, "master_name");
    bad.master_name = "";
    EXPECT_NEW_FAILS(&bad, NULL, "master_name");
    bad.master_name = "my master";
    EXPECT_NEW_FAILS(&bad, NULL, "master_name");
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    bad.master_name = long_name;
    EXPECT_NEW_FAILS(&bad, NULL, "master_name");
    bad.master_name = "bad\xff";
    EXPECT_NEW_FAILS(&bad, NULL, "master_name");

    bad = so;
    bad.sentinel_addrs = NULL;
    EXPECT_NEW_FAILS(&bad, NULL, "sentinel_addrs");
    bad = so;
    bad.sentinel_addrs_len = 0;
    EXPECT_NEW_FAILS(&bad, NULL, "sentinel_addrs_len");
    bad.sentinel_addrs_len = 65;
    EXPECT_NEW_FAILS(&bad, NULL, "sentinel_addrs_len");
    bad.sentinel_addrs_len = (size_t)-1;
    EXPECT_NEW_FAILS(&bad, NULL, "sentinel_addrs_len");

    const char *with_null[] = {g_sentinels[0], NULL};
    bad = so;
    bad.sentinel_addrs = with_null;
    bad.sentinel_addrs_len = 2;
    EXPECT_NEW_FAILS(&bad, NULL, "sentinel_addrs[1]");
    const char *empty[] = {""};
    bad.sentinel_addrs = empty;
    bad.sentinel_addrs_len = 1;
    EXPECT_NEW_FAILS(&bad, NULL, "sentinel_addrs[0]");
    const char *malformed[][1] = {{"nocolon"}, {"127.0.0.1:99999"}, {"::1:26379"},
                                  {":26379"},  {"unix:relative"},  {"127.0.0.1:port"}};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        bad.sentinel_addrs = malformed[i];
        EXPECT_NEW_FAILS(&bad, NULL, "sentinel_addrs[0]");
    }

    bad = so;
    bad.sentinel_username = "alice";
    EXPECT_NEW_FAILS(&bad, NULL, "sentinel_username");
    bad = so;
    bad.poll_interval_ms = -1;
    EXPECT_NEW_FAILS(&bad, NULL, "poll_interval_ms");

    pool_options_t no = node_opts();
    no.addr = g_master;
    EXPECT_NEW_FAILS(&so, &no, "node_opts.addr");
    no = node_opts();
    no.pool_size = -1;
    EXPECT_NEW_FAILS(&so, &no, "pool_size");
    no = node_opts();
    no.protocol = 4;
    EXPECT_NEW_FAILS(&so, &no, "protocol");
    no = node_opts();
    no.struct_size = 3;
    EXPECT_NEW_FAILS(&so, &no, "struct_size");

    section("sentinel pool: an ordinary pool_t on the master the sentinels name");
    pool_t *pool = NULL;
    so = sentinel_opts();
    if (!CHECK_STATUS(pool_sentinel_new(&so, NULL, &pool, &err), POOL_OK, &err))
        return;
    char addr[POOL_SENTINEL_ADDR_LEN];
    CHECK_STATUS(pool_sentinel_master_addr(pool, addr, sizeof addr, &err), POOL_OK, &err);
    CHECK(strcmp(addr, g_master) == 0);
    /* A larger struct_size (a newer header) is fine: the unknown tail is ignored. */
    pool_t *pool2 = NULL;
    struct {
        pool_sentinel_options_t so;
        char tail[64];
    } newer;
    memset(&newer, 0x5A, sizeof newer);
    newer.so = sentinel_opts();
    newer.so.struct_size = sizeof newer;
    pool_options_t nopts = node_opts();
    if (CHECK_STATUS(pool_sentinel_new(&newer.so, &nopts, &pool2, &err), POOL_OK, &err))
        pool_free(pool2);

    pool_conn_t *conn = NULL;
    if (CHECK_STATUS(pool_get(pool, &conn, &err), POOL_OK, &err)) {
        CHECK_EQ(peer_port(conn), port_of(g_master));
        const char *set[] = {"SET", "sentinel:key", "v1"};
        pool_reply_t *r = cmdv(conn, NULL, 3, set);
        CHECK(r != NULL && r->type == POOL_REPLY_STATUS);
        pool_reply_free(r);
        const char *role[] = {"ROLE"};
        r = cmdv(conn, NULL, 1, role);
        CHECK(r != NULL && r->type == POOL_REPLY_ARRAY && r->elements >= 1 &&
              strcmp(r->element[0]->str, "master") == 0);
        pool_reply_free(r);
        /* WAIT: the SET reached the replica; two replicas cannot confirm it. */
        int acked = -1;
        CHECK_STATUS(pool_conn_wait_replicas(conn, 1, 5000, &acked, &err), POOL_OK, &err);
        CHECK_EQ(acked, 1);
        acked = -1;
        CHECK_STATUS(pool_conn_wait_replicas(conn, 2, 50, &acked, &err), POOL_ERR_TIMEOUT, &err);
        CHECK_EQ(acked, 1);
        CHECK_CONTAINS(err.message, "reached 1 of the 2 replicas");
        CHECK_STATUS(pool_conn_wait_replicas(conn, 1, 5000, NULL, NULL), POOL_OK, NULL);
        CHECK_STATUS(pool_conn_wait_replicas(conn, -1, 50, &acked, &err), POOL_ERR_INVALID_ARG,
                     &err);
        CHECK_CONTAINS(err.message, "numreplicas");
        CHECK_STATUS(pool_conn_wait_replicas(conn, 1, 0, &acked, &err), POOL_ERR_INVALID_ARG,
                     &err);
        CHECK_CONTAINS(err.message, "timeout_ms");
        CHECK_STATUS(pool_conn_wait_replicas(NULL, 1, 50, &acked, &err), POOL_ERR_INVALID_ARG,
                     &err);
        /* An ordinary error reply leaves the conn good. */
        const char *bad_cmd[] = {"INCR", "sentinel:key"};
        r = cmdv(conn, NULL, 2, bad_cmd);
        CHECK(r != NULL && r->type == POOL_REPLY_ERROR);
        pool_reply_free(r);
        CHECK_STATUS(pool_put(pool, conn), POOL_OK, NULL);
    }
    CHECK_EQ(pool_idle_len(pool), 1);
    pool_stats_t st = stats_of(pool);
    CHECK_EQ(st.dials, 1);
    CHECK_EQ(st.removed_conns, 0);

    pool_t *sticky = NULL;
    if (CHECK_STATUS(pool_sticky_new(pool, &sticky), POOL_OK, NULL)) {
        pool_conn_t *sc = NULL;
        if (CHECK_STATUS(pool_get(sticky, &sc, &err), POOL_OK, &err)) {
            const char *get[] = {"GET", "sentinel:key"};
            pool_reply_t *r = cmdv(sc, NULL, 2, get);
            CHECK(r != NULL && r->type == POOL_REPLY_STRING && strcmp(r->str, "v1") == 0);
            pool_reply_free(r);
            CHECK_STATUS(pool_put(sticky, sc), POOL_OK, NULL);
        }
        pool_free(sticky);
    }

    section("sentinel pool: fork, the child dials its own conns and starts its own watcher");
    {
        int watchers = -1;
        POLL_UNTIL(watchers, watcher_threads() >= 1, 5000);
        CHECK(watchers);
        pool_conn_t *held = NULL;
        int held_id = -1;
        if (CHECK_STATUS(pool_get(pool, &held, &err), POOL_OK, &err))
            held_id = (int)pool_conn_id(held);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0)
            check_child_exit(child_uses_pool(pool, held_id));
        int status = 0;
        if (CHECK(pid > 0) && CHECK(waitpid(pid, &status, 0) == pid)) {
            CHECK(WIFEXITED(status));
            CHECK_EQ(WEXITSTATUS(status), 0);
        }
        if (held != NULL)
            CHECK_STATUS(pool_put(pool, held), POOL_OK, NULL);
        /* The parent's pool is untouched. */
        pool_conn_t *c = NULL;
        if (CHECK_STATUS(pool_get(pool, &c, &err), POOL_OK, &err)) {
            CHECK_EQ(peer_port(c), port_of(g_master));
            CHECK_STATUS(pool_put(pool, c), POOL_OK, NULL);
        }
    }

    {
        /* No failover yet; bad arguments named. */
        pool_sentinel_stats_t fs;
        memset(&fs, 0xAB, sizeof fs);
        fs.struct_size = 0;
        if (CHECK_STATUS(pool_sentinel_stats(pool, &fs, &err), POOL_OK, &err)) {
            CHECK_EQ(fs.struct_size, sizeof fs);
            CHECK_EQ(fs.failovers, 0);
            CHECK_EQ(fs.switches, 0);
            CHECK_EQ(fs.in_failover, 0);
        }
        CHECK_STATUS(pool_sentinel_stats(pool, NULL, &err), POOL_ERR_INVALID_ARG, &err);
        CHECK_CONTAINS(err.message, "stats_out");
        CHECK_STATUS(pool_sentinel_stats(NULL, &fs, &err), POOL_ERR_INVALID_ARG, &err);
        fs.struct_size = 8;
        CHECK_STATUS(pool_sentinel_stats(pool, &fs, &err), POOL_ERR_INVALID_ARG, &err);
        CHECK_CONTAINS(err.message, "pool_sentinel_stats_t");
    }

    section("pool_sentinel_master_addr: NULLs, small buffers, plain pools");
    CHECK_STATUS(pool_sentinel_master_addr(NULL, addr, sizeof addr, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK_CONTAINS(err.message, "pool");
    CHECK_STATUS(pool_sentinel_master_addr(pool, NULL, sizeof addr, &err), POOL_ERR_INVALID_ARG,
                 &err);
    CHECK_CONTAINS(err.message, "buf");
    CHECK_STATUS(pool_sentinel_master_addr(pool, addr, 0, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "cap");
    memset(addr, 'x', sizeof addr);
    CHECK_STATUS(pool_sentinel_master_addr(pool, addr, 5, &err), POOL_ERR_INVALID_ARG, &err);
    CHECK_CONTAINS(err.message, "cap");
    CHECK_EQ(addr[0], '\0');
    CHECK_EQ(addr[5], 'x');
    size_t need = strlen(g_master) + 1;
    CHECK_STATUS(pool_sentinel_master_addr(pool, addr, need - 1, NULL), POOL_ERR_INVALID_ARG,
                 NULL);
    CHECK_STATUS(pool_sentinel_master_addr(pool, addr, need, NULL), POOL_OK, NULL);
    CHECK(strcmp(addr, g_master) == 0);
    pool_t *plain = plain_pool(g_master);
    if (plain != NULL) {
        CHECK_STATUS(pool_sentinel_master_addr(plain, addr, sizeof addr, &err),
                     POOL_ERR_INVALID_ARG, &err);
        CHECK_CONTAINS(err.message, "not a sentinel pool");
        pool_t *over = NULL;
        if (CHECK_STATUS(pool_sticky_new(pool, &over), POOL_OK, NULL)) {
            CHECK_STATUS(pool_sentinel_master_addr(over, addr, sizeof addr, &err),
                         POOL_ERR_INVALID_ARG, &err);
            pool_free(over);
        }
        pool_free(plain);
    }

    section("sentinel failures: unknown master, no sentinel up, sentinel AUTH refused");
    {
        pool_sentinel_options_t u = sentinel_opts();
        u.master_name = "nosuchmaster";
        pool_options_t o = node_opts();
        o.dialer_retries = 1;
        pool_t *p = NULL;
        if (CHECK_STATUS(pool_sentinel_new(&u, &o, &p, &err), POOL_OK, &err)) {
            pool_conn_t *c = NULL;
            CHECK_STATUS(pool_get(p, &c, &err), POOL_ERR_DIAL, &err);
            CHECK_CONTAINS(err.message, "does not know master");
            CHECK_CONTAINS(err.message, "nosuchmaster");
            CHECK_STATUS(pool_sentinel_master_addr(p, addr, sizeof addr, &err), POOL_ERR_DIAL,
                         &err);
            CHECK_CONTAINS(err.message, "nosuchmaster");
            pool_free(p);
        }
    }
    {
        /* Ports nobody listens on: a listener bound and closed. */
        const char *dead[] = {"127.0.0.1:1", "127.0.0.1:2"};
        pool_sentinel_options_t d = sentinel_opts();
        d.sentinel_addrs = dead;
        d.sentinel_addrs_len = 2;
        pool_options_t o = node_opts();
        o.dialer_retries = 1;
        pool_t *p = NULL;
        if (CHECK_STATUS(pool_sentinel_new(&d, &o, &p, &err), POOL_OK, &err)) {
            pool_conn_t *c = NULL;
            int64_t t0 = now_ms();
            CHECK_STATUS(pool_get(p, &c, &err), POOL_ERR_DIAL, &err);
            CHECK(now_ms() - t0 < scaled(5000));
            CHECK_CONTAINS(err.message, "no sentinel gave the address");
            CHECK_CONTAINS(err.message, "127.0.0.1:2");
            pool_free(p);
        }
    }
    {
        pool_sentinel_options_t a = sentinel_opts();
        a.sentinel_password = "not-the-password";
        pool_options_t o = node_opts();
        o.dialer_retries = 1;
        pool_t *p = NULL;
        if (CHECK_STATUS(pool_sentinel_new(&a, &o, &p, &err), POOL_OK, &err)) {
            pool_conn_t *c = NULL;
            CHECK_STATUS(pool_get(p, &c, &err), POOL_ERR_DIAL, &err);
            CHECK_CONTAINS(err.message, "AUTH");
            CHECK(strstr(err.message, "not-the-password") == NULL);
            pool_free(p);
        }
    }

    section("sentinel pool: close and free");
    CHECK_STATUS(pool_close(pool), POOL_OK, NULL);
    CHECK_STATUS(pool_get(pool, &conn, &err), POOL_ERR_CLOSED, &err);
    CHECK_STATUS(pool_sentinel_master_addr(pool, addr, sizeof addr, &err), POOL_OK, &err);
    CHECK(strcmp(addr, g_master) == 0);
    CHECK_STATUS(pool_close(pool), POOL_ERR_CLOSED, NULL);
    pool_free(pool);
}

/* ---- failover under load --------------------------------------------------------------- */

typedef struct worker {
    pthread_t tid;
    int index;
    pool_t *pool;
    long long next_value;
    long long ok_total;
    long long errors;
    long long readonly_replies;
    /* Gets begun after the pool reported the new master that got a conn to the old one. */
    long long stale_handouts;
    /* When this thread first succeeded on the new master (0 = not yet). */
    _Atomic int64_t first_new_ok_ms;
    _Atomic long long ok_count;
    long long *acked_new; /* values the new master acknowledged, in order */
    size_t n_acked_new;
    char last_error[300];
} worker_t;

static atomic_int g_stop;
static int g_old_port;
static _Atomic int g_new_port; /* 0 until the pool reports the new master */

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char key[32];
    snprintf(key, sizeof key, "log:%d", w->index);
    while (!atomic_load(&g_stop)) {
        char view[POOL_SENTINEL_ADDR_LEN];
        int switched = 0;
        if (pool_sentinel_master_addr(w->pool, view, sizeof view, NULL) == POOL_OK)
            switched = port_of(view) != g_old_port;
        pool_conn_t *conn = NULL;
        pool_error_t err;
        pool_status_t rc = pool_get(w->pool, &conn, &err);
        if (rc != POOL_OK) {
            w->errors++;
            snprintf(w->last_error, sizeof w->last_error, "get: %s", err.message);
            sleep_ms(5);
            continue;
        }
        int peer = peer_port(conn);
        if (switched && peer == g_old_port)
            w->stale_handouts++;
        char value[32];
        long long v = w->next_value++;
        snprintf(value, sizeof value, "%lld", v);
        const char *argv[] = {"RPUSH", key, value};
        pool_reply_t *r = NULL;
        rc = pool_conn_command(conn, 3, argv, NULL, &r, &err);
        if (rc != POOL_OK) {
            w->errors++;
            snprintf(w->last_error, sizeof w->last_error, "command: %s", err.message);
        } else if (r->type == POOL_REPLY_INTEGER) {
            w->ok_total++;
            atomic_fetch_add(&w->ok_count, 1);
            int new_port = atomic_load(&g_new_port);
            if (new_port != 0 && peer == new_port) {
                if (atomic_load(&w->first_new_ok_ms) == 0)
                    atomic_store(&w->first_new_ok_ms, now_ms());
                if (w->n_acked_new < MAX_ACKED)
                    w->acked_new[w->n_acked_new++] = v;
            }
        } else {
            w->errors++;
            if (r->type == POOL_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0)
                w->readonly_replies++;
            snprintf(w->last_error, sizeof w->last_error, "reply: %s",
                     r->str != NULL ? r->str : "?");
        }
        pool_reply_free(r);
        /* A conn that failed or got READONLY is bad: put removes it. */
        pool_put(w->pool, conn);
    }
    return NULL;
}

static worker_t g_workers[THREADS];

static int all_wrote(long long n)
{
    for (int i = 0; i < THREADS; i++)
        if (atomic_load(&g_workers[i].ok_count) < n)
            return 0;
    return 1;
}

static int all_on_new_master(void)
{
    for (int i = 0; i < THREADS; i++)
        if (atomic_load(&g_workers[i].first_new_ok_ms) == 0)
            return 0;
    return 1;
}

static long long total_ok(void)
{
    long long n = 0;
    for (int i = 0; i < THREADS; i++)
        n += atomic_load(&g_workers[i].ok_count);
    return n;
}

static int has_role(const char *addr, const char *want)
{
    char role[32];
    info_field(addr, "replication", "role", role, sizeof role);
    return strcmp(role, want) == 0;
}

/* Every value in acked (ascending) appears, in order, in the list reply. */
static int acked_all_present(const worker_t *w, const pool_reply_t *list)
{
    size_t j = 0;
    for (size_t i = 0; i < list->elements && j < w->n_acked_new; i++) {
        if (strtoll(list->element[i]->str, NULL, 10) == w->acked_new[j])
            j++;
    }
    return j == w->n_acked_new;
}

static void failover(void)
{
    section("failover under load: SENTINEL FAILOVER while threads write");
    pool_sentinel_options_t so = sentinel_opts();
    so.poll_interval_ms = 500;
    pool_options_t no = node_opts();
    pool_t *pool = NULL;
    pool_error_t err;
    if (!CHECK_STATUS(pool_sentinel_new(&so, &no, &pool, &err), POOL_OK, &err))
        return;
    char old_addr[POOL_SENTINEL_ADDR_LEN];
    if (!CHECK_STATUS(pool_sentinel_master_addr(pool, old_addr, sizeof old_addr, &err), POOL_OK,
                      &err) ||
        !CHECK(strcmp(old_addr, g_master) == 0)) {
        pool_free(pool);
        return;
    }
    g_old_port = port_of(old_addr);

    worker_t *workers = g_workers;
    for (int i = 0; i < THREADS; i++) {
        workers[i].index = i;
        workers[i].pool = pool;
        workers[i].acked_new = calloc(MAX_ACKED, sizeof(long long));
        pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
    }
    /* Load first: every thread has written to the old master. */
    int ok;
    POLL_UNTIL(ok, all_wrote(20), 20000);
    CHECK(ok);

    /* SENTINEL FAILOVER on the first sentinel; -NOGOODSLAVE or -INPROG mean "not yet". */
    const char *fo[] = {"SENTINEL", "FAILOVER", MASTER_NAME};
    int64_t t_failover = 0;
    char last_reply[256] = "";
    int64_t deadline = now_ms() + scaled(FAILOVER_BOUND_MS);
    while (now_ms() < deadline) {
        pool_reply_t *r = admin(g_sentinels[0], 3, fo);
        if (r != NULL && r->type == POOL_REPLY_STATUS) {
            t_failover = now_ms();
            pool_reply_free(r);
            break;
        }
        snprintf(last_reply, sizeof last_reply, "%s", r != NULL && r->str ? r->str : "(none)");
        pool_reply_free(r);
        sleep_ms(200);
    }
    if (!CHECK(t_failover != 0))
        fprintf(stderr, "SENTINEL FAILOVER kept failing: %s\n", last_reply);
    printf("failover: SENTINEL FAILOVER accepted\n");

    /* The pool reports the new master (every conn to the old one retired first). */
    char new_addr[POOL_SENTINEL_ADDR_LEN] = "";
    POLL_UNTIL(ok,
               pool_sentinel_master_addr(pool, new_addr, sizeof new_addr, NULL) == POOL_OK &&
                   strcmp(new_addr, old_addr) != 0,
               FAILOVER_BOUND_MS);
    CHECK(ok);
    int64_t t_switch = now_ms();
    atomic_store(&g_new_port, port_of(new_addr));
    printf("failover: pool switched from %s to %s %" PRId64 " ms after SENTINEL FAILOVER\n",
           old_addr, new_addr, t_switch - t_failover);

    /* Every thread succeeds again, on the new master, within the failover bound. */
    POLL_UNTIL(ok, all_on_new_master(), FAILOVER_BOUND_MS);
    CHECK(ok);
    int64_t worst = 0;
    for (int i = 0; i < THREADS; i++) {
        int64_t t = atomic_load(&workers[i].first_new_ok_ms);
        if (CHECK(t != 0) && t - t_failover > worst)
            worst = t - t_failover;
    }
    CHECK(worst <= scaled(FAILOVER_BOUND_MS));
    printf("failover: every thread wrote to the new master within %" PRId64
           " ms of SENTINEL FAILOVER\n",
           worst);

    /* From here no thread holds a conn to the old master: it must take no more writes, also
       once the sentinels made it a replica (a write would then be rejected as READONLY). */
    long long calls_after_move, rejected;
    rpush_stats(old_addr, &calls_after_move, &rejected);
    POLL_UNTIL(ok, has_role(old_addr, "slave"), FAILOVER_BOUND_MS);
    CHECK(ok);
    /* More load with the old master demoted. */
    long long before_more = total_ok();
    POLL_UNTIL(ok, total_ok() >= before_more + 200, 20000);
    CHECK(ok);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(workers[i].tid, NULL);

    section("failover: no write reached the old master after the switch; none lost on the new");
    long long calls_end, rejected_end;
    rpush_stats(old_addr, &calls_end, &rejected_end);
    CHECK_EQ(calls_end, calls_after_move);
    CHECK_EQ(rejected_end, 0);
    long long new_calls, new_rejected;
    rpush_stats(new_addr, &new_calls, &new_rejected);
    CHECK(new_calls > 0);
    CHECK_EQ(new_rejected, 0);
    long long stale = 0, readonly = 0, errors = 0, total = 0;
    for (int i = 0; i < THREADS; i++) {
        stale += workers[i].stale_handouts;
        readonly += workers[i].readonly_replies;
        errors += workers[i].errors;
        total += workers[i].ok_total;
        if (workers[i].errors > 0)
            printf("thread %d: %lld errors, last: %s\n", i, workers[i].errors,
                   workers[i].last_error);
    }
    CHECK_EQ(stale, 0);
    CHECK_EQ(readonly, 0);
    printf("failover: %lld writes acknowledged, %lld errors\n", total, errors);

    /* Every write the new master acknowledged is in its list. */
    for (int i = 0; i < THREADS; i++) {
        char key[32];
        snprintf(key, sizeof key, "log:%d", i);
        const char *lr[] = {"LRANGE", key, "0", "-1"};
        pool_reply_t *r = admin(new_addr, 4, lr);
        if (CHECK(r != NULL && r->type == POOL_REPLY_ARRAY)) {
            CHECK(workers[i].n_acked_new > 0);
            CHECK(acked_all_present(&workers[i], r));
        }
        pool_reply_free(r);
        free(workers[i].acked_new);
    }

    char addr[POOL_SENTINEL_ADDR_LEN];
    CHECK_STATUS(pool_sentinel_master_addr(pool, addr, sizeof addr, &err), POOL_OK, &err);
    CHECK(strcmp(addr, new_addr) == 0);
    const char *q[] = {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME};
    pool_reply_t *r = admin(g_sentinels[1], 3, q);
    if (CHECK(r != NULL && r->type == POOL_REPLY_ARRAY && r->elements == 2))
        CHECK_EQ(atoi(r->element[1]->str), port_of(new_addr));
    pool_reply_free(r);

    /* The conns to the old master were retired: counted as stale, none left. */
    pool_stats_t st = stats_of(pool);
    CHECK(st.stale_conns >= 1);
    pool_conn_t *conn = NULL;
    int moved = 1;
    for (int i = 0; i < 8; i++) {
        if (pool_get(pool, &conn, &err) != POOL_OK)
            break;
        moved &= peer_port(conn) == port_of(new_addr);
        pool_put(pool, conn);
    }
    CHECK(moved);
    char sbuf[512];
    printf("failover: stats %s\n", stats_str(&st, sbuf, sizeof sbuf));
    /* The failover figures: one failover seen, ended on the new master. */
    pool_sentinel_stats_t fs;
    fs.struct_size = sizeof fs;
    if (CHECK_STATUS(pool_sentinel_stats(pool, &fs, &err), POOL_OK, &err)) {
        CHECK_EQ(fs.struct_size, sizeof fs);
        CHECK(fs.failovers >= 1);
        CHECK(fs.switches >= 1);
        CHECK(fs.conns_retired >= 1);
        CHECK_EQ(fs.in_failover, 0);
        printf("failover: %llu failovers, %llu dials waited, %llu conns retired, longest pause "
               "%llu ms\n",
               (unsigned long long)fs.failovers, (unsigned long long)fs.failover_waits,
               (unsigned long long)fs.conns_retired, (unsigned long long)fs.longest_pause_ms);
    }
    pool_free(pool);
}

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[1], "inputs") != 0 && strcmp(argv[1], "failover") != 0)) {
        fprintf(stderr, "usage: %s inputs|failover <master> <sentinel1> <sentinel2> <sentinel3>\n",
                argv[0]);
        return 2;
    }
    snprintf(g_master, sizeof g_master, "%s", argv[2]);
    g_sentinels[0] = argv[3];
    g_sentinels[1] = argv[4];
    g_sentinels[2] = argv[5];
    if (strcmp(argv[1], "inputs") == 0)
        inputs();
    else
        failover();
    return check_exit_status();
}
