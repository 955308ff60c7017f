/*
 * libevent.c - thousands of concurrent commands on one libevent thread that never blocks.
 *
 *   ./libevent URL [REQUESTS]
 *
 * Build: cc libevent.c -lredispool $(pkg-config --libs libevent)   (Debian: libevent-dev)
 *
 * All REQUESTS requests (default 5000) are submitted at once, from a single thread
 * driven by one libevent event_base; the pool (pool_size in the URL) has far fewer
 * connections, so most requests queue for one. Each request is either one command
 * (ECHO of its own payload, checked) or, every tenth, a pipeline (INCR of a counter and
 * ECHO). Nothing in the loop ever waits outside event_base_dispatch:
 *
 *  - a connection comes from pool_try_get, which never waits, dials or resolves: on
 *    POOL_ERR_WOULD_BLOCK the request stays queued and the loop watches
 *    pool_notify_fd(pool) (level-triggered: readable while a pool_try_get may succeed;
 *    watched only while requests are queued);
 *
 *  - the command is sent with pool_conn_start (or pool_conn_start_pipeline), which
 *    writes what the socket takes and returns; the loop then waits for what `want` says
 *    (POOL_WANT_READ: EV_READ, POOL_WANT_WRITE: EV_WRITE) on pool_conn_fd(conn), for at
 *    most pool_conn_wait_ms(conn) (the command's deadline: on EV_TIMEOUT the next
 *    pool_conn_finish fails it with POOL_ERR_IO), and calls pool_conn_finish (or
 *    pool_conn_finish_pipeline): POOL_ERR_WOULD_BLOCK means wait again for the `want`
 *    it returns; POOL_OK hands over the reply. The same code serves plain and TLS
 *    (rediss://) connections: the library does the TLS, the fd only says when.
 *
 *  - the connection goes back with pool_put (a failed one is marked bad by the library,
 *    and pool_put closes it instead of pooling it).
 *
 * Prints "requests=N ok=N errors=0 ..." and exits 0 when every reply was the right one.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redispool.h"

struct request {
    int id;
    char payload[32];
    struct request *next; /* the queue of requests waiting for a connection */
};

/* One connection in use: the request it serves and its readiness event. */
struct slot {
    pool_conn_t *conn;
    struct request *req;
    int pipeline;
    struct event *ev;
    struct loop *loop;
};

struct loop {
    struct event_base *base;
    pool_t *pool;
    struct event *notify_ev;
    int notify_watched;
    struct request *head, *tail;
    int requests, ok, errors, in_flight, max_in_flight;
    long would_block, notify_wakeups, finish_calls, finish_would_block;
};

static void serve_queue(struct loop *l);

static void done(struct slot *s, int good)
{
    struct loop *l = s->loop;
    if (good)
        l->ok++;
    else
        l->errors++;
    event_free(s->ev);
    pool_put(l->pool, s->conn);
    free(s->req);
    free(s);
    l->in_flight--;
    /* A conn came back: queued requests may take it (serve_queue tries at once). */
    serve_queue(l);
}

static void wait_for(struct slot *s, int want);

/* The fd is ready for what the last call asked for (or the deadline passed): progress. */
static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct slot *s = arg;
    struct loop *l = s->loop;
    pool_error_t err;
    int want = 0;
    l->finish_calls++;
    if (!s->pipeline) {
        pool_reply_t *reply = NULL;
        pool_status_t st = pool_conn_finish(s->conn, &reply, &want, &err);
        if (st == POOL_ERR_WOULD_BLOCK) {
            l->finish_would_block++;
            wait_for(s, want);
            return;
        }
        int good = st == POOL_OK && reply->type == POOL_REPLY_STRING &&
                   reply->len == strlen(s->req->payload) &&
                   memcmp(reply->str, s->req->payload, reply->len) == 0;
        if (st != POOL_OK)
            fprintf(stderr, "request %d: %s\n", s->req->id, err.message);
        pool_reply_free(reply);
        done(s, good);
        return;
    }
    pool_reply_t *replies[2] = {NULL, NULL};
    size_t n = 0;
    pool_status_t st = pool_conn_finish_pipeline(s->conn, replies, 2, &n, &want, &err);
    if (st == POOL_ERR_WOULD_BLOCK) {
        l->finish_would_block++;
        wait_for(s, want);
        return;
    }
    int good = st == POOL_OK && n == 2 && replies[0]->type == POOL_REPLY_INTEGER &&
               replies[1]->type == POOL_REPLY_STRING &&
               replies[1]->len == strlen(s->req->payload) &&
               memcmp(replies[1]->str, s->req->payload, replies[1]->len) == 0;
    if (st != POOL_OK)
        fprintf(stderr, "request %d: %s\n", s->req->id, err.message);
    for (size_t i = 0; i < n; i++)
        pool_reply_free(replies[i]);
    done(s, good);
}

/* Waits (in the event base) for `want` on the conn's fd, at most until its deadline. */
static void wait_for(struct slot *s, int want)
{
    short events = want == POOL_WANT_WRITE ? EV_WRITE : EV_READ;
    event_assign(s->ev, s->loop->base, pool_conn_fd(s->conn), events, on_ready, s);
    int64_t ms = pool_conn_wait_ms(s->conn);
    if (ms < 0) {
        event_add(s->ev, NULL);
    } else {
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        event_add(s->ev, &tv);
    }
}

/* Starts request `r` on `conn`. */
static void start(struct loop *l, struct request *r, pool_conn_t *conn)
{
    struct slot *s = calloc(1, sizeof *s);
    s->conn = conn;
    s->req = r;
    s->loop = l;
    s->pipeline = r->id % 10 == 0;
    s->ev = event_new(l->base, -1, 0, on_ready, s);
    if (++l->in_flight > l->max_in_flight)
        l->max_in_flight = l->in_flight;
    pool_error_t err;
    int want = 0;
    pool_status_t st;
    if (!s->pipeline) {
        const char *argv[] = {"ECHO", r->payload};
        st = pool_conn_start(conn, 2, argv, NULL, -1, &want, &err);
    } else {
        static const char *incr[] = {"INCR", "libevent:pipelines"};
        const char *echo[] = {"ECHO", r->payload};
        int argcs[] = {2, 2};
        const char *const *argvs[] = {incr, echo};
        st = pool_conn_start_pipeline(conn, 2, argcs, argvs, NULL, -1, &want, &err);
    }
    if (st != POOL_OK) {
        fprintf(stderr, "request %d: start: %s\n", r->id, err.message);
        done(s, 0);
        return;
    }
    wait_for(s, want);
}

/* Gives queued requests the conns pool_try_get finds; watches the notify fd meanwhile. */
static void serve_queue(struct loop *l)
{
    while (l->head != NULL) {
        pool_conn_t *conn = NULL;
        pool_status_t st = pool_try_get(l->pool, &conn);
        if (st == POOL_ERR_WOULD_BLOCK) {
            l->would_block++;
            break;
        }
        struct request *r = l->head;
        l->head = r->next;
        if (l->head == NULL)
            l->tail = NULL;
        if (st != POOL_OK) {
            fprintf(stderr, "request %d: pool_try_get: %s\n", r->id, pool_status_str(st));
            l->errors++;
            free(r);
            continue;
        }
        start(l, r, conn);
    }
    /* Level-triggered: watched only while requests wait for a conn. */
    if (l->head != NULL && !l->notify_watched) {
        event_add(l->notify_ev, NULL);
        l->notify_watched = 1;
    } else if (l->head == NULL && l->notify_watched) {
        event_del(l->notify_ev);
        l->notify_watched = 0;
    }
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop *l = arg;
    l->notify_wakeups++;
    serve_queue(l);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [REQUESTS]\n", argv[0]);
        return 2;
    }
    struct loop l;
    memset(&l, 0, sizeof l);
    l.requests = argc > 2 ? atoi(argv[2]) : 5000;
    pool_error_t err;
    if (pool_new_url(argv[1], &l.pool, &err) != POOL_OK) {
        fprintf(stderr, "pool_new_url: %s\n", err.message);
        return 1;
    }
    l.base = event_base_new();
    int nfd = pool_notify_fd(l.pool);
    l.notify_ev = event_new(l.base, nfd, EV_READ | EV_PERSIST, on_notify, &l);
    for (int i = 0; i < l.requests; i++) {
        struct request *r = calloc(1, sizeof *r);
        r->id = i;
        snprintf(r->payload, sizeof r->payload, "request-%d", i);
        if (l.tail != NULL)
            l.tail->next = r;
        else
            l.head = r;
        l.tail = r;
    }
    serve_queue(&l);
    event_base_dispatch(l.base);
    printf("requests=%d ok=%d errors=%d max_in_flight=%d would_block=%ld notify_wakeups=%ld "
           "finish_calls=%ld finish_would_block=%ld\n",
           l.requests, l.ok, l.errors, l.max_in_flight, l.would_block, l.notify_wakeups,
           l.finish_calls, l.finish_would_block);
    event_free(l.notify_ev);
    event_base_free(l.base);
    pool_free(l.pool);
    return l.ok == l.requests && l.errors == 0 ? 0 : 1;
}
