package redispool

/*
#cgo pkg-config: redispool
#include <stdlib.h>
#include <string.h>
#include <redispool.h>

// The hot calls take no pointer to Go memory: a Go variable whose address is
// passed to C escapes to the heap, which cost pool_get_ex's pool_error_t and
// conn out-pointer two allocations per Get. These wrappers keep both on the C
// stack and return the outcome by value; only a failure allocates (a copy of
// the message, freed by the caller).
typedef struct {
	pool_status_t status;
	pool_conn_t *conn;
	char *msg; // NULL on success or when the library gave no message; free() it
	uintptr_t ud; // the conn's userdata: the binding's per-conn state (nonblocking.go), or NULL
} rp_get_result;

static rp_get_result rp_get(pool_t *pool, int64_t timeout_ms, const pool_cancel_t *cancel) {
	rp_get_result r = {POOL_OK, NULL, NULL, 0};
	pool_error_t err;
	err.message[0] = 0;
	r.status = pool_get_ex(pool, timeout_ms, cancel, &r.conn, &err);
	if (r.status != POOL_OK && err.message[0] != 0)
		r.msg = strdup(err.message);
	if (r.status == POOL_OK)
		r.ud = (uintptr_t)pool_conn_userdata(r.conn);
	return r;
}

static rp_get_result rp_try_get(pool_t *pool) {
	rp_get_result r = {POOL_OK, NULL, NULL, 0};
	r.status = pool_try_get(pool, &r.conn);
	if (r.status == POOL_OK)
		r.ud = (uintptr_t)pool_conn_userdata(r.conn);
	return r;
}
*/
import "C"

import (
	"context"
	"runtime"
	"strings"
	"time"
	"unsafe"
)

// Version returns the version of the C library the package is linked
// against, e.g. "0.1.0".
func Version() string { return C.GoString(C.pool_version()) }

// Pool is a Redis connection pool. It is safe for concurrent use by any
// number of goroutines. Close it when done; its C memory is released when the
// Pool is garbage collected (the finalizer never blocks).
type Pool struct {
	p        *C.pool_t
	timeout  poolTimeout
	overtake time.Duration // the overtake window (<= 0: strict arrival order)
	q        *getQueue     // the goroutines waiting for a conn (polled.go)
}

// New makes a pool from a go-redis URL (redis.ParseURL format):
// redis://[[user]:password@]host[:port][/db][?option=value&…] or
// unix://[[user]:password@]/path/to/redis.sock[?db=N&…]. The options are
// pool_options_t's names without "_ms" (pool_size, min_idle_conns,
// max_active_conns, pool_timeout, dial_timeout, read_timeout, …); durations
// are Go durations ("500ms", "4s") or plain seconds. An invalid URL gives an
// error matching ErrInvalidArg that names the problem (never the password).
// New never waits for a dial.
func New(rawURL string) (*Pool, error) {
	if strings.IndexByte(rawURL, 0) >= 0 {
		return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: the URL contains a NUL byte"}
	}
	curl := C.CString(rawURL)
	defer C.free(unsafe.Pointer(curl))
	var p *C.pool_t
	var cerr C.pool_error_t
	if st := C.pool_new_url(curl, &p, &cerr); st != C.POOL_OK {
		return nil, errorFrom(st, &cerr)
	}
	return newPool(p, urlPoolTimeout(rawURL), urlOvertakeWindow(rawURL)), nil
}

// NewWithOptions makes a pool from opts. Invalid options give an error
// matching ErrInvalidArg that names the field. It never waits for a dial.
func NewWithOptions(opts Options) (*Pool, error) {
	c, err := opts.toC()
	if err != nil {
		return nil, err
	}
	defer c.free()
	var p *C.pool_t
	var cerr C.pool_error_t
	if st := C.pool_new(&c.opts, &p, &cerr); st != C.POOL_OK {
		return nil, errorFrom(st, &cerr)
	}
	return newPool(p, poolTimeoutFromMillis(int64(c.opts.pool_timeout_ms)),
		time.Duration(c.opts.overtake_window_ms)*time.Millisecond), nil
}

func newPool(p *C.pool_t, timeout poolTimeout, overtake time.Duration) *Pool {
	pool := &Pool{p: p, timeout: timeout, overtake: overtake, q: newGetQueue(p)}
	runtime.SetFinalizer(pool, (*Pool).finalize)
	return pool
}

// finalize releases the C handle. pool_free never blocks; conns still checked
// out keep a reference to the Pool, so it only runs once they are unreachable.
func (p *Pool) finalize() {
	p.q.closeFD()
	C.pool_free(p.p)
	p.p = nil
}

// Conn is a connection checked out from a Pool, used by one goroutine at a
// time until it is given back with Pool.Put or Pool.Remove.
//
// A *Conn must not be used after Put or Remove: a later Get of the same
// connection returns the same *Conn (the binding keeps one per connection,
// so that Get, Do and Put allocate nothing).
type Conn struct {
	h       *C.pool_conn_t // a checked handle, not a memory address
	pool    *Pool          // keeps the pool alive while the conn is out (nil for a cluster conn)
	cluster *Cluster       // keeps the cluster alive while the conn is out (nil for a pool conn)
	cs      *connState     // the non-blocking path's state (nonblocking.go); nil until first used
}

// conn is the *Conn for handle h, whose userdata is ud: the conn's own one
// when it has a connState, a new one otherwise.
func (p *Pool) conn(h *C.pool_conn_t, ud uintptr) *Conn {
	if cs := stateOf(ud); cs != nil {
		cs.conn.h, cs.conn.pool, cs.conn.cluster = h, p, nil
		return &cs.conn
	}
	return &Conn{h: h, pool: p}
}

// getTimeout chooses pool_get_ex's timeout for ctx: the time left until its
// deadline when that is shorter than the pool's own timeout, otherwise -1 (the
// pool timeout applies). byDeadline tells that the deadline was chosen, so
// that a POOL_ERR_TIMEOUT means the deadline passed; expired that it already
// has.
func (t poolTimeout) getTimeout(ctx context.Context) (ms int64, byDeadline, expired bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return -1, false, false
	}
	left := time.Until(dl)
	switch {
	case left <= 0:
		return 0, true, true
	case !t.known:
		// The watcher goroutine ends the wait when the deadline passes.
		return -1, false, false
	case !t.forever && left >= t.d:
		return -1, false, false
	}
	return ceilMillis(left), true, false
}

// Get returns an idle, health-checked conn, or dials a new one. When every
// turn is taken it waits, in arrival order, until a conn is free, ctx is done,
// or the pool timeout passes, whichever comes first:
//
//   - ctx done (before or during the wait): an error matching ErrCanceled and
//     ctx.Err() (context.Canceled or context.DeadlineExceeded), as go-redis;
//   - pool timeout: an error matching ErrPoolTimeout whose message describes
//     the pool ("… (2 conns in use, 0 idle, 3 waiting)");
//   - ErrClosed after Close, ErrPoolExhausted when max_active_conns conns
//     exist, ErrDial or ErrHandshake when a new conn could not be made.
//
// A free turn costs one cgo call that never waits for a turn (pool_get_ex
// with a timeout of 0; on a miss it dials on the calling goroutine, bounded
// by the dial timeout rather than by ctx). The wait for a turn happens in Go,
// never in a cgo call: the goroutine parks on a channel of the pool's queue
// (see GetPolled), so waiting goroutines hold no OS thread and ctx costs no
// helper goroutine. The queue's waits count in Stats (Waiting,
// PendingRequests, WaitCount, WaitDuration, Timeouts) as the library's own.
func (p *Pool) Get(ctx context.Context) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	if p.q.mayTake(p.overtake) {
		r := C.rp_get(p.p, 0, nil)
		runtime.KeepAlive(p)
		switch {
		case r.status == C.POOL_OK:
			return p.conn(r.conn, uintptr(r.ud)), nil
		case r.status != C.POOL_ERR_TIMEOUT:
			msg := ""
			if r.msg != nil {
				msg = C.GoString(r.msg)
			}
			C.free(unsafe.Pointer(r.msg))
			return nil, errorWithMessage(r.status, msg)
		}
		// No free turn: the library counted a timeout that Stats takes back.
		C.free(unsafe.Pointer(r.msg))
		p.q.noWaitMisses.Add(1)
	}
	return p.wait(ctx)
}

// waitGet runs one blocking get of the library (get, given the timeout in
// milliseconds and a cancel token or nil) under ctx: the timeout is ctx's
// deadline when that comes before the pool timeout t, and a helper goroutine
// fires the token when ctx is done. get returns the status, the conn and the
// library's message (malloc'd, freed here; nil on success). Errors are
// mapped as Get documents. Cluster gets use it while the slot map is not
// loaded (cluster.go).
func waitGet(ctx context.Context, t poolTimeout, get func(ms C.int64_t, tok *C.pool_cancel_t) (C.pool_status_t, *C.pool_conn_t, *C.char)) (*C.pool_conn_t, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	timeout, byDeadline, expired := t.getTimeout(ctx)
	if expired {
		return nil, contextError(context.DeadlineExceeded)
	}

	var tok *C.pool_cancel_t
	var stop, exited chan struct{}
	if done := ctx.Done(); done != nil {
		if tok = C.pool_cancel_new(); tok == nil {
			return nil, &Error{Code: CodeInternal, Msg: "redispool: get: out of memory for a cancel token"}
		}
		stop, exited = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(exited)
			select {
			case <-done:
				C.pool_cancel_fire(tok)
			case <-stop:
			}
		}()
	}

	st, h, cmsg := get(C.int64_t(timeout), tok)
	if tok != nil {
		// The watcher must be gone before the token is freed.
		close(stop)
		<-exited
		C.pool_cancel_free(tok)
	}

	if st == C.POOL_OK {
		return h, nil
	}
	msg := ""
	if cmsg != nil {
		msg = C.GoString(cmsg)
		C.free(unsafe.Pointer(cmsg))
	}
	switch {
	case st == C.POOL_ERR_CANCELED && ctx.Err() != nil:
		// Only the watcher fires the token, after ctx.Done() closed.
		return nil, contextError(ctx.Err())
	case st == C.POOL_ERR_TIMEOUT && byDeadline:
		// The wait was bounded by ctx's deadline, not by the pool timeout:
		// report what go-redis reports then. ctx.Err() may lag the clock by a moment.
		return nil, contextError(context.DeadlineExceeded)
	}
	return nil, errorWithMessage(st, msg)
}

// TryGet returns an idle conn that passes the socket health checks, or an
// error matching ErrWouldBlock at once. It never waits, dials or resolves,
// and never overtakes goroutines waiting in Get or GetPolled. A miss while
// the pool has room starts one dial in the background, whose conn lands in
// the idle list (and makes the notify fd readable). ErrClosed after Close.
func (p *Pool) TryGet() (*Conn, error) {
	if !p.q.mayTake(0) {
		return nil, errTryGetWouldBlock
	}
	st, h, ud := rawTryGet(p.p)
	runtime.KeepAlive(p)
	return p.tryGetResult(st, h, ud)
}

// rawTryGet is one pool_try_get: the status, the conn and its userdata.
func rawTryGet(pool *C.pool_t) (C.pool_status_t, *C.pool_conn_t, uintptr) {
	r := C.rp_try_get(pool)
	return r.status, r.conn, uintptr(r.ud)
}

// errTryGetWouldBlock is TryGet's miss: one value, so a miss allocates nothing.
var errTryGetWouldBlock = statusError(C.POOL_ERR_WOULD_BLOCK, "try get")

// tryGetResult is TryGet's outcome from rp_try_get's result.
func (p *Pool) tryGetResult(st C.pool_status_t, h *C.pool_conn_t, ud uintptr) (*Conn, error) {
	switch st {
	case C.POOL_OK:
		return p.conn(h, ud), nil
	case C.POOL_ERR_WOULD_BLOCK:
		return nil, errTryGetWouldBlock
	}
	return nil, statusError(st, "try get")
}

// Put gives cn back for reuse; cn must not be used afterwards. The oldest
// goroutine waiting in Get or GetPolled receives it (from the pool's reactor,
// see GetPolled). A conn a command failed on is removed
// instead of pooled; after Close the conn is simply closed. A Conn that is not
// checked out from this pool (a double Put, a Put after Remove, a conn of
// another pool) gives an error matching ErrInvalidArg and changes nothing.
// Put never blocks on I/O.
func (p *Pool) Put(cn *Conn) error {
	if cn == nil {
		return statusError(C.POOL_ERR_INVALID_ARG, "put: nil conn")
	}
	kept := cn.release(p)
	st := C.pool_put(p.p, cn.h)
	runtime.KeepAlive(p)
	if st != C.POOL_OK {
		cn.unrelease(p, kept)
		return statusError(st, "put")
	}
	return nil
}

// Remove closes cn and frees its turn (a waiting Get then dials or takes an
// idle conn); cn must not be used afterwards. reason is informational. The
// misuse rules of Put apply.
func (p *Pool) Remove(cn *Conn, reason string) error {
	if cn == nil {
		return statusError(C.POOL_ERR_INVALID_ARG, "remove: nil conn")
	}
	var creason *C.char
	if reason != "" {
		creason = C.CString(strings.ReplaceAll(reason, "\x00", " "))
		defer C.free(unsafe.Pointer(creason))
	}
	kept := cn.release(p)
	st := C.pool_remove(p.p, cn.h, creason)
	runtime.KeepAlive(p)
	if st != C.POOL_OK {
		cn.unrelease(p, kept)
		return statusError(st, "remove")
	}
	return nil
}

// Len returns the number of conns the pool owns: idle and checked out (dials
// in flight excluded).
func (p *Pool) Len() int {
	n := C.pool_len(p.p)
	runtime.KeepAlive(p)
	return int(n)
}

// IdleLen returns the number of idle conns.
func (p *Pool) IdleLen() int {
	n := C.pool_idle_len(p.p)
	runtime.KeepAlive(p)
	return int(n)
}

// Stats is a snapshot of a pool's statistics (pool_stats_t). Counters only
// increase; TotalConns, IdleConns, PendingRequests, Waiting,
// DialsInProgress, LeakSuspects and InUseConns are gauges.
type Stats struct {
	Hits            uint64        // gets served by an idle or handed-over conn
	Misses          uint64        // gets that went on to dial
	Timeouts        uint64        // gets that timed out (see Get: a ctx deadline shorter than the pool timeout counts too)
	WaitCount       uint64        // gets that waited for a turn and got one
	Unusable        uint64        // always 0, as in go-redis
	WaitDuration    time.Duration // total duration of the waits counted in WaitCount
	TotalConns      uint32        // conns the pool owns
	IdleConns       uint32        // idle conns
	StaleConns      uint32        // conns closed as stale (lifetime, idle time, failed health check)
	PendingRequests uint32        // gets in progress
	Dials           uint64        // successful dials
	DialErrors      uint64        // failed dials
	RemovedConns    uint64        // conns closed by Remove
	EvictedConns    uint64        // conns closed on Put because MaxIdleConns were idle
	Waiting         uint32        // gets queued for a turn right now
	DialsInProgress uint32        // dials queued or running right now
	LeakSuspects    uint32        // conns checked out longer than the leak detection threshold now
	InUseConns      uint32        // conns checked out right now (Get and NewConn)
	LateReturns     uint64        // conns given back after being held longer than that
	ResetConns      uint64        // conns closed on Put because their commands changed the session
}

// Stats returns a snapshot of the pool's statistics.
func (p *Pool) Stats() Stats {
	var s C.pool_stats_t
	s.struct_size = C.sizeof_pool_stats_t
	C.pool_stats(p.p, &s)
	runtime.KeepAlive(p)
	out := statsFromC(&s)
	p.q.addStats(&out)
	return out
}

// statsFromC converts a pool_stats_t.
func statsFromC(s *C.pool_stats_t) Stats {
	return Stats{
		Hits:            uint64(s.hits),
		Misses:          uint64(s.misses),
		Timeouts:        uint64(s.timeouts),
		WaitCount:       uint64(s.wait_count),
		Unusable:        uint64(s.unusable),
		WaitDuration:    time.Duration(s.wait_duration_ns),
		TotalConns:      uint32(s.total_conns),
		IdleConns:       uint32(s.idle_conns),
		StaleConns:      uint32(s.stale_conns),
		PendingRequests: uint32(s.pending_requests),
		Dials:           uint64(s.dials),
		DialErrors:      uint64(s.dial_errors),
		RemovedConns:    uint64(s.removed_conns),
		EvictedConns:    uint64(s.evicted_conns),
		Waiting:         uint32(s.waiting),
		DialsInProgress: uint32(s.dials_in_progress),
		LeakSuspects:    uint32(s.leak_suspects),
		InUseConns:      uint32(s.in_use_conns),
		LateReturns:     uint64(s.late_returns),
		ResetConns:      uint64(s.reset_conns),
	}
}

// PoolStats is a pool's statistics in the shape of go-redis v9's
// redis.PoolStats (internal/pool.Stats): the same field names and types, so
// metrics adapters written for go-redis (redisotel, redisprom, hand-written
// exporters reading stats.Hits, stats.WaitDurationNs, …) work unchanged.
// go-redis keeps its counters in uint32, and so do these: a counter past
// 2^32-1 wraps as go-redis's does (Stats has the full 64-bit values).
// go-redis's PubSubStats has no counterpart: the pool has no pub/sub conns.
type PoolStats struct {
	Hits           uint32 // gets served by an idle or handed-over conn
	Misses         uint32 // gets that found no idle conn and dialed
	Timeouts       uint32 // gets that timed out waiting for a turn
	WaitCount      uint32 // gets that waited for a turn and got one
	Unusable       uint32 // always 0, as in go-redis
	WaitDurationNs int64  // total time of the waits counted in WaitCount, in nanoseconds

	TotalConns      uint32 // conns the pool owns
	IdleConns       uint32 // idle conns
	StaleConns      uint32 // conns closed as stale (lifetime, idle time, failed health check)
	PendingRequests uint32 // gets in progress that wait for a turn or a new conn
}

// PoolStats returns a snapshot of the pool's statistics shaped like go-redis's
// Client.PoolStats (a new *PoolStats each call). Stats has every counter the
// library keeps.
func (p *Pool) PoolStats() *PoolStats { return p.Stats().poolStats() }

// poolStats is s in go-redis's shape.
func (s Stats) poolStats() *PoolStats {
	return &PoolStats{
		Hits:            uint32(s.Hits),
		Misses:          uint32(s.Misses),
		Timeouts:        uint32(s.Timeouts),
		WaitCount:       uint32(s.WaitCount),
		Unusable:        uint32(s.Unusable),
		WaitDurationNs:  int64(s.WaitDuration),
		TotalConns:      s.TotalConns,
		IdleConns:       s.IdleConns,
		StaleConns:      s.StaleConns,
		PendingRequests: s.PendingRequests,
	}
}

// Close closes the idle conns, wakes every waiting Get with ErrClosed and
// makes later Gets fail with ErrClosed. Conns still checked out are closed
// when they are put or removed. A second Close returns ErrClosed. It does not
// wait for dials in flight. The Pool's methods stay safe to call afterwards.
func (p *Pool) Close() error {
	st := C.pool_close(p.p)
	runtime.KeepAlive(p)
	// The queue's waiters now, not when the reactor sees the close.
	p.q.failAll(C.POOL_ERR_CLOSED)
	if st != C.POOL_OK {
		return statusError(st, "close")
	}
	return nil
}

// NotifyFD returns the pool's notify fd (an eventfd, non-blocking,
// close-on-exec): readable while TryGet may find a conn. It belongs to the
// pool: never close it. Most programs want GetPolled, which uses it.
func (p *Pool) NotifyFD() (int, error) {
	fd, err := C.pool_notify_fd(p.p)
	runtime.KeepAlive(p)
	if fd < 0 {
		return -1, &Error{Code: CodeInternal, Msg: "redispool: notify fd: " + errString(err)}
	}
	return int(fd), nil
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// ID returns the conn's id: unique within its pool and never reused (the
// first conn is 1). 0 once the conn has been put or removed.
func (cn *Conn) ID() uint64 { return uint64(C.pool_conn_id(cn.h)) }

// FD returns the conn's socket, for your own I/O (do not close it). -1 once
// the conn has been put or removed.
func (cn *Conn) FD() int { return int(C.pool_conn_fd(cn.h)) }
