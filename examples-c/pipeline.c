/*
 * pipeline.c - whole conversations on one pooled conn: a pipeline, a pipelined
 * transaction and a blocking command with its own timeout.
 *
 *   ./pipeline [URL | HOST:PORT]
 *
 * Borrows one connection and, on it:
 *   1. sends 100 SETs and 100 GETs in one pool_conn_pipeline call (one write,
 *      then the 200 replies) and checks every reply;
 *   2. sends MULTI, INCR, INCR, EXEC as one pipeline: three status/QUEUED
 *      replies, then EXEC's array of the two INCR results;
 *   3. runs BLPOP with a 2 s server-side timeout through pool_conn_command_ex,
 *      whose timeout (2 s + the pool's read timeout) replaces the pool's read
 *      timeout of 1 s for this call only: the nil reply after 2 s is POOL_OK
 *      and the conn stays good (plain pool_conn_command would fail with
 *      POOL_ERR_IO after 1 s and the conn would be removed on pool_put);
 * then gives it back and checks that the pool kept it. Exits 0 only if every
 * check passed.
 *
 * The tests run it against a throwaway redis-server (tests/c_examples.rs).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redispool.h"

#define PAIRS 100
#define READ_TIMEOUT_MS 1000
#define BLPOP_SECONDS 2

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "check failed: %s\n", what);
        failures++;
    }
}

static int is_status(const pool_reply_t *r, const char *s)
{
    return r != NULL && r->type == POOL_REPLY_STATUS && strcmp(r->str, s) == 0;
}

static void free_replies(pool_reply_t **replies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pool_reply_free(replies[i]);
        replies[i] = NULL;
    }
}

/* 100 SETs then 100 GETs in one pipeline; every reply checked. */
static void set_get_pipeline(pool_conn_t *conn)
{
    enum { N = 2 * PAIRS };
    static char keys[PAIRS][32], values[PAIRS][32];
    static const char *argv_store[N][3];
    const char *const *argvs[N];
    int argcs[N];
    pool_reply_t *replies[N] = {0};

    for (int i = 0; i < PAIRS; i++) {
        snprintf(keys[i], sizeof keys[i], "pipeline:key:%d", i);
        snprintf(values[i], sizeof values[i], "value-%d", i * 7);
        argv_store[i][0] = "SET";
        argv_store[i][1] = keys[i];
        argv_store[i][2] = values[i];
        argcs[i] = 3;
        argv_store[PAIRS + i][0] = "GET";
        argv_store[PAIRS + i][1] = keys[i];
        argcs[PAIRS + i] = 2;
    }
    for (int i = 0; i < N; i++)
        argvs[i] = argv_store[i];

    size_t nreplies = 0;
    pool_error_t err;
    /* argvlens NULL: NUL-terminated strings; timeout_ms -1: the pool's read timeout. */
    pool_status_t rc =
        pool_conn_pipeline(conn, N, argcs, argvs, NULL, -1, replies, &nreplies, &err);
    if (rc != POOL_OK)
        fprintf(stderr, "pool_conn_pipeline: %s (%s)\n", err.message, pool_status_str(err.code));
    check(rc == POOL_OK, "SET/GET pipeline status");
    check(nreplies == N, "SET/GET pipeline reply count");

    int sets_ok = 0, gets_ok = 0;
    for (size_t i = 0; i < nreplies && i < PAIRS; i++)
        sets_ok += is_status(replies[i], "OK");
    for (size_t i = PAIRS; i < nreplies; i++) {
        const pool_reply_t *r = replies[i];
        const char *want = values[i - PAIRS];
        gets_ok += r != NULL && r->type == POOL_REPLY_STRING && r->len == strlen(want) &&
                   memcmp(r->str, want, r->len) == 0;
    }
    check(sets_ok == PAIRS, "every SET answered OK");
    check(gets_ok == PAIRS, "every GET answered its own value");
    printf("pipeline: commands=%d replies=%zu sets_ok=%d gets_ok=%d\n", N, nreplies, sets_ok,
           gets_ok);
    free_replies(replies, nreplies);
}

/* MULTI, INCR, INCR, EXEC as one pipeline. */
static void transaction_pipeline(pool_conn_t *conn)
{
    const char *del[] = {"DEL", "pipeline:counter"};
    const char *multi[] = {"MULTI"};
    const char *incr[] = {"INCR", "pipeline:counter"};
    const char *exec[] = {"EXEC"};
    const char *const *argvs[] = {del, multi, incr, incr, exec};
    const int argcs[] = {2, 1, 2, 2, 1};
    enum { N = sizeof argcs / sizeof argcs[0] };
    pool_reply_t *replies[N] = {0};
    size_t nreplies = 0;
    pool_error_t err;

    pool_status_t rc =
        pool_conn_pipeline(conn, N, argcs, argvs, NULL, -1, replies, &nreplies, &err);
    if (rc != POOL_OK)
        fprintf(stderr, "pool_conn_pipeline: %s (%s)\n", err.message, pool_status_str(err.code));
    check(rc == POOL_OK && nreplies == N, "MULTI/EXEC pipeline status and count");
    if (rc == POOL_OK && nreplies == N) {
        check(replies[0] != NULL && replies[0]->type == POOL_REPLY_INTEGER, "DEL integer");
        check(is_status(replies[1], "OK"), "MULTI answered OK");
        check(is_status(replies[2], "QUEUED") && is_status(replies[3], "QUEUED"),
              "each INCR answered QUEUED");
        const pool_reply_t *ex = replies[4];
        int exec_ok = ex != NULL && ex->type == POOL_REPLY_ARRAY && ex->elements == 2 &&
                      ex->element[0]->type == POOL_REPLY_INTEGER &&
                      ex->element[0]->integer == 1 &&
                      ex->element[1]->type == POOL_REPLY_INTEGER &&
                      ex->element[1]->integer == 2;
        check(exec_ok, "EXEC answered [1, 2]");
        if (exec_ok)
            printf("transaction: exec=[%" PRId64 ", %" PRId64 "]\n", ex->element[0]->integer,
                   ex->element[1]->integer);
    }
    free_replies(replies, nreplies);
}

/* BLPOP that waits longer than the pool's read timeout, with the call's own timeout. */
static void blocking_pop(pool_conn_t *conn)
{
    char seconds[16];
    snprintf(seconds, sizeof seconds, "%d", BLPOP_SECONDS);
    const char *blpop[] = {"BLPOP", "pipeline:empty-list", seconds};
    /* As go-redis: the command's own wait plus the pool's read timeout. */
    int64_t timeout_ms = BLPOP_SECONDS * 1000 + READ_TIMEOUT_MS;
    pool_reply_t *reply = NULL;
    pool_error_t err;

    pool_status_t rc = pool_conn_command_ex(conn, 3, blpop, NULL, timeout_ms, &reply, &err);
    if (rc != POOL_OK)
        fprintf(stderr, "BLPOP: %s (%s)\n", err.message, pool_status_str(err.code));
    check(rc == POOL_OK, "BLPOP status");
    /* Nothing was pushed: the server answers nil once its timeout is over. */
    check(reply != NULL && reply->type == POOL_REPLY_NIL, "BLPOP answered nil");
    printf("blpop: status=%s reply=%s timeout_ms=%" PRId64 " read_timeout_ms=%d\n",
           pool_status_str(rc), reply != NULL && reply->type == POOL_REPLY_NIL ? "nil" : "other",
           timeout_ms, READ_TIMEOUT_MS);
    pool_reply_free(reply);

    /* The conn is still good: an ordinary command works on it. */
    const char *ping[] = {"PING"};
    reply = NULL;
    rc = pool_conn_command(conn, 1, ping, NULL, &reply, &err);
    check(rc == POOL_OK && is_status(reply, "PONG"), "PING after BLPOP");
    pool_reply_free(reply);
}

int main(int argc, char **argv)
{
    const char *arg = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
    char url[1024];

    snprintf(url, sizeof url, "%s%s%spool_size=2&pool_timeout=1s&read_timeout=%dms",
             strstr(arg, "://") ? "" : "redis://", arg, strchr(arg, '?') ? "&" : "?",
             READ_TIMEOUT_MS);

    pool_t *pool = NULL;
    pool_error_t err;
    if (pool_new_url(url, &pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_new_url: %s (%s)\n", err.message, pool_status_str(err.code));
        return EXIT_FAILURE;
    }

    pool_conn_t *conn = NULL;
    if (pool_get(pool, &conn, &err) != POOL_OK) {
        fprintf(stderr, "pool_get: %s (%s)\n", err.message, pool_status_str(err.code));
        failures++;
    } else {
        set_get_pipeline(conn);
        transaction_pipeline(conn);
        blocking_pop(conn);
        check(pool_put(pool, conn) == POOL_OK, "pool_put");

        /* A conn that every call left good is idle in the pool again, not removed. */
        pool_stats_t st;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        check(pool_stats(pool, &st) == POOL_OK, "pool_stats");
        check(st.idle_conns == 1 && st.total_conns == 1, "the conn went back to the pool");
        printf("after put: total_conns=%" PRIu32 " idle_conns=%" PRIu32 "\n", st.total_conns,
               st.idle_conns);
    }

    check(pool_close(pool) == POOL_OK, "pool_close");
    pool_free(pool);
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return EXIT_FAILURE;
    }
    printf("OK\n");
    return EXIT_SUCCESS;
}
