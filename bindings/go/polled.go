package redispool

/*
#cgo pkg-config: redispool
#include <redispool.h>
*/
import "C"

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// GetPolled is Get without a dial on the calling goroutine: it takes an idle
// conn (TryGet) and, while there is none, queues behind the other waiting
// Gets exactly as Get does. A miss while the pool has room starts a dial on a
// library thread, whose conn goes to the oldest waiter. So no cgo call it
// makes ever waits for the network. It returns with the errors of Get (ctx
// done, the pool timeout, ErrClosed); a dial that fails shows as the pool
// timeout (Get reports ErrDial). When the pool timeout cannot be known (an
// unusual pool_timeout value in the URL), only ctx bounds the wait.
func (p *Pool) GetPolled(ctx context.Context) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	if p.q.mayTake(p.overtake) {
		st, h, ud := rawTryGet(p.p)
		if st != C.POOL_ERR_WOULD_BLOCK {
			return p.tryGetResult(st, h, ud)
		}
	}
	return p.wait(ctx)
}

// getQueue is a pool's queue of goroutines waiting for a conn (Get and
// GetPolled), in arrival order. One goroutine, the reactor, runs while any
// wait: it alone waits on the pool's notify fd in Go's netpoller, takes each
// conn that comes back (pool_try_get, which never waits) and hands it to the
// oldest waiter over that waiter's channel. So a conn put back wakes the
// reactor and one waiter, never the whole queue, and no waiting goroutine
// holds an OS thread. The reactor ends when the queue is empty.
//
// It lives apart from the Pool (a pointer to it keeps only it alive): a
// running reactor must not keep an unused Pool from its finalizer.
type getQueue struct {
	pool *C.pool_t

	mu         sync.Mutex
	head, tail *getWaiter
	free       []*getWaiter
	reacting   bool // a reactor goroutine runs
	parked     bool // it waits on the fd (a kick makes it look at the queue again)
	closed     bool // the pool closed: every wait fails with ErrClosed

	n         atomic.Int32 // waiters queued, read by the fast paths without the lock
	headSince atomic.Int64 // when the oldest queued (monotonic ns since qEpoch), for the overtake window

	// Counted into Stats: the library does not see these waits.
	waitCount     atomic.Uint64
	waitDuration  atomic.Int64
	timeouts      atomic.Uint64
	noWaitMisses  atomic.Uint64 // pool_get_ex(0) misses, which the library counts as timeouts
	handed        atomic.Uint64 // conns the reactor handed to a waiter
	reactorTries  atomic.Uint64 // pool_try_get calls of the reactor (a test's herd counter)
	reactorStarts atomic.Uint64

	// The reactor's duplicate of the notify fd, made on first use.
	fdOnce  sync.Once
	fdErr   error
	f       *os.File
	rc      syscall.RawConn
	tryFn   func(uintptr) bool
	reactFn func()    // q.react, made once: `go q.reactFn()` would allocate a closure per start
	res     getResult // the reactor's last pool_try_get
}

// getResult is what the reactor hands a waiter: a conn, or the status that
// ends every wait (ErrClosed).
type getResult struct {
	st C.pool_status_t
	h  *C.pool_conn_t
	ud uintptr
}

// getWaiter is one waiting Get, kept on the queue's free list for the next
// (a wait allocates nothing once as many have waited at once).
type getWaiter struct {
	next, prev *getWaiter
	queued     bool
	ch         chan getResult // the reactor's one answer (buffered: it never blocks)
	timer      *time.Timer
}

var qEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(qEpoch)) }

func newGetQueue(pool *C.pool_t) *getQueue {
	q := &getQueue{pool: pool}
	q.tryFn = q.try
	q.reactFn = q.react
	return q
}

// mayTake tells a fast path whether it may take a conn now: nobody is queued,
// or the oldest has waited less than the overtake window (window <= 0:
// strict arrival order).
func (q *getQueue) mayTake(window time.Duration) bool {
	if q.n.Load() == 0 {
		return true
	}
	return window > 0 && monoNow()-q.headSince.Load() < int64(window)
}

// openFD makes the reactor's duplicate of the notify fd.
func (q *getQueue) openFD() error {
	q.fdOnce.Do(func() {
		fd, err := C.pool_notify_fd(q.pool)
		if fd < 0 {
			q.fdErr = &Error{Code: CodeInternal, Msg: "redispool: get: notify fd: " + errString(err)}
			return
		}
		// A duplicate, so that closing the *os.File never closes the pool's fd.
		// It shares the eventfd's O_NONBLOCK flag, which makes os.NewFile
		// register it with the netpoller.
		dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			q.fdErr = &Error{Code: CodeInternal, Msg: "redispool: get: dup notify fd: " + errno.Error()}
			return
		}
		f := os.NewFile(dup, "redispool-notify")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			q.fdErr = &Error{Code: CodeInternal, Msg: "redispool: get: notify fd: " + err.Error()}
			return
		}
		q.f, q.rc = f, rc
	})
	return q.fdErr
}

// closeFD closes the reactor's fd (the pool is being freed): a reactor still
// parked on it returns.
func (q *getQueue) closeFD() {
	q.fdOnce.Do(func() { q.fdErr = ErrClosed })
	if q.f != nil {
		q.f.Close()
	}
}

// push queues a waiter (q.mu held).
func (q *getQueue) push() *getWaiter {
	var w *getWaiter
	if n := len(q.free); n > 0 {
		w = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		w = &getWaiter{ch: make(chan getResult, 1)}
	}
	w.queued = true
	w.prev, w.next = q.tail, nil
	if q.tail == nil {
		q.head = w
		q.headSince.Store(monoNow())
	} else {
		q.tail.next = w
	}
	q.tail = w
	q.n.Add(1)
	return w
}

// unlink takes w off the queue (q.mu held).
func (q *getQueue) unlink(w *getWaiter) {
	if w.prev == nil {
		q.head = w.next
		if q.head != nil {
			q.headSince.Store(monoNow())
		}
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		q.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	q.n.Add(-1)
}

// recycle puts a waiter whose channel is empty back on the free list.
func (q *getQueue) recycle(w *getWaiter) {
	q.mu.Lock()
	q.free = append(q.free, w)
	q.mu.Unlock()
}

func (q *getQueue) try(uintptr) bool {
	q.reactorTries.Add(1)
	st, h, ud := rawTryGet(q.pool)
	q.res = getResult{st: st, h: h, ud: ud}
	// A miss made the fd unreadable: wait until the pool makes it readable.
	return st != C.POOL_ERR_WOULD_BLOCK
}

// react is the reactor goroutine's body.
func (q *getQueue) react() {
	for {
		q.mu.Lock()
		if q.head == nil || q.closed {
			q.reacting = false
			q.mu.Unlock()
			return
		}
		q.parked = true
		q.mu.Unlock()
		err := q.rc.Read(q.tryFn)
		q.mu.Lock()
		q.parked = false
		q.mu.Unlock()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// A kick: the queue emptied meanwhile. Look at it again.
				_ = q.f.SetReadDeadline(time.Time{})
				continue
			}
			// The fd was closed: the pool is being freed.
			q.failAll(C.POOL_ERR_CLOSED)
			return
		}
		r := q.res
		q.res = getResult{}
		if r.st != C.POOL_OK {
			// Closed, or a pool handle freed: no later try can succeed.
			q.failAll(r.st)
			return
		}
		q.mu.Lock()
		w := q.head
		if w != nil {
			q.unlink(w)
		}
		q.mu.Unlock()
		if w == nil {
			// Everyone gave up while it was taken: back it goes.
			C.pool_put(q.pool, r.h)
			continue
		}
		q.handed.Add(1)
		w.ch <- r
	}
}

// failAll ends every wait with st (ErrClosed) and every later one too.
func (q *getQueue) failAll(st C.pool_status_t) {
	q.mu.Lock()
	q.closed = true
	var ws []*getWaiter
	for w := q.head; w != nil; w = q.head {
		q.unlink(w)
		ws = append(ws, w)
	}
	q.mu.Unlock()
	for _, w := range ws {
		w.ch <- getResult{st: st}
	}
}

// kick makes a parked reactor look at the queue again (it has emptied).
func (q *getQueue) kick() { _ = q.f.SetReadDeadline(time.Unix(1, 0)) }

// wait queues the calling goroutine for a conn until ctx is done or the pool
// timeout passes. Get and GetPolled share it.
func (p *Pool) wait(ctx context.Context) (*Conn, error) {
	h, ud, err := p.waitHandle(ctx)
	if err != nil {
		return nil, err
	}
	return p.conn(h, ud), nil
}

// waitHandle is wait's queueing: the conn's handle and userdata, or the
// error. Cluster gets wait on a node pool's queue with it (cluster.go).
func (p *Pool) waitHandle(ctx context.Context) (*C.pool_conn_t, uintptr, error) {
	q := p.q
	start := time.Now()
	var deadline time.Time
	byDeadline := false
	if p.timeout.known && !p.timeout.forever {
		deadline = start.Add(p.timeout.d)
	}
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline, byDeadline = dl, true
	}
	if err := q.openFD(); err != nil {
		return nil, 0, err
	}

	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, 0, statusError(C.POOL_ERR_CLOSED, "get")
	}
	w := q.push()
	startReactor := !q.reacting
	q.reacting = true
	q.mu.Unlock()
	if startReactor {
		q.reactorStarts.Add(1)
		go q.reactFn()
	}

	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if w.timer == nil {
			w.timer = time.NewTimer(d)
		} else {
			w.timer.Reset(d)
		}
		timeout = w.timer.C
	}
	var r getResult
	var err error
	select {
	case r = <-w.ch:
	case <-ctx.Done():
		err = contextError(ctx.Err())
	case <-timeout:
		timeout = nil // fired: nothing to stop
		if byDeadline {
			err = contextError(context.DeadlineExceeded)
		} else {
			err = p.timeoutError(start)
		}
	}
	if timeout != nil && !w.timer.Stop() {
		select {
		case <-w.timer.C:
		default:
		}
	}
	if err != nil {
		q.mu.Lock()
		if w.queued {
			q.unlink(w)
			kick := q.head == nil && q.parked
			q.free = append(q.free, w)
			q.mu.Unlock()
			if kick {
				q.kick()
			}
			if !byDeadline && errors.Is(err, ErrPoolTimeout) {
				q.timeouts.Add(1)
			}
			return nil, 0, err
		}
		q.mu.Unlock()
		// The reactor took this waiter off the queue: its answer is on the
		// way. A conn goes back to the pool (and so to the next waiter).
		r = <-w.ch
		q.recycle(w)
		if r.st == C.POOL_OK {
			C.pool_put(q.pool, r.h)
		}
		if errors.Is(err, ErrPoolTimeout) {
			q.timeouts.Add(1)
		}
		return nil, 0, err
	}
	q.recycle(w)
	if r.st != C.POOL_OK {
		return nil, 0, statusError(r.st, "get")
	}
	q.waitCount.Add(1)
	q.waitDuration.Add(int64(time.Since(start)))
	return r.h, r.ud, nil
}

// timeoutError is the pool timeout's error, shaped as the library's.
func (p *Pool) timeoutError(start time.Time) error {
	s := p.Stats()
	return &Error{Code: CodeTimeout, Msg: "redis: connection pool timeout after " +
		time.Since(start).Round(time.Millisecond).String() + " (" +
		strconv.FormatUint(uint64(s.InUseConns), 10) + " conns in use, " +
		strconv.FormatUint(uint64(s.IdleConns), 10) + " idle, " +
		strconv.FormatUint(uint64(s.Waiting), 10) + " waiting)"}
}

// addStats counts the waits of the queue into s: the library sees none of
// them, and counts each Get's pool_get_ex(0) that found no turn as a timeout.
func (q *getQueue) addStats(s *Stats) {
	n := uint32(q.n.Load())
	s.Waiting += n
	s.PendingRequests += n
	s.WaitCount += q.waitCount.Load()
	s.WaitDuration += time.Duration(q.waitDuration.Load())
	s.Timeouts = s.Timeouts - q.noWaitMisses.Load() + q.timeouts.Load()
}
