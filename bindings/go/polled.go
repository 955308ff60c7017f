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
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// GetPolled is Get without a parked OS thread: it tries TryGet and, while
// that finds nothing, waits for the pool's notify fd to become readable
// through Go's netpoller (a duplicate of the fd wrapped in an *os.File), so a
// waiting goroutine costs no thread however many wait at once. Use it in
// servers where thousands of requests may wait for a conn.
//
// It returns under the same conditions and with the same errors as Get (ctx
// done, the pool timeout, ErrClosed, …), with two differences: waiters in
// GetPolled are not queued in arrival order (every waiter wakes when a conn
// comes back and the first TryGet wins), and goroutines blocked in Get are
// always served first. Its waits do not show in Stats.Waiting or
// Stats.Timeouts. When the pool timeout cannot be known (an unusual
// pool_timeout value in the URL), only ctx bounds the wait.
func (p *Pool) GetPolled(ctx context.Context) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	cn, err := p.TryGet()
	if err == nil || !errors.Is(err, ErrWouldBlock) {
		return cn, err
	}

	// When the wait must end: ctx's deadline or the pool timeout, whichever is first.
	start := time.Now()
	var deadline time.Time
	byDeadline := false
	if p.timeout.known && !p.timeout.forever {
		deadline = start.Add(p.timeout.d)
	}
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline, byDeadline = dl, true
	}

	w, err := p.notifyWaiter()
	if err != nil {
		return nil, err
	}
	if !deadline.IsZero() {
		if err := w.f.SetReadDeadline(deadline); err != nil {
			w.discard()
			return nil, &Error{Code: CodeInternal, Msg: "redispool: get: notify fd: " + err.Error()}
		}
	}

	// ctx.Done() ends the wait by moving the fd's deadline into the past
	// (context.AfterFunc: no goroutine unless ctx is done meanwhile).
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, w.cancelFn)
	}

	w.st, w.h, w.ud = C.POOL_ERR_WOULD_BLOCK, nil, nil
	waitErr := w.rc.Read(w.tryFn)
	runtime.KeepAlive(p)
	if waitErr == nil {
		cn, err = p.tryGetResult(w.st, w.h, w.ud)
	}
	w.h, w.ud = nil, nil
	if stop != nil && !stop() {
		// The cancel ran (or is running): this waiter's deadline is not ours
		// to reset any more.
		w.discard()
	} else {
		p.releaseNotifyWaiter(w, !deadline.IsZero())
	}
	switch {
	case waitErr == nil:
		return cn, err
	case ctx.Err() != nil:
		return nil, contextError(ctx.Err())
	case errors.Is(waitErr, os.ErrDeadlineExceeded) && byDeadline:
		return nil, contextError(context.DeadlineExceeded)
	case errors.Is(waitErr, os.ErrDeadlineExceeded):
		return nil, &Error{Code: CodeTimeout, Msg: "redis: connection pool timeout after " +
			time.Since(start).Round(time.Millisecond).String() + " (GetPolled)"}
	}
	return nil, &Error{Code: CodeInternal, Msg: "redispool: get: waiting on the notify fd: " + waitErr.Error()}
}

// notifyWaiter is one duplicate of the pool's notify fd registered with the
// netpoller, used by one waiting GetPolled at a time (so each has its own
// deadline) and kept for the next: a GetPolled allocates nothing once the
// pool has as many as goroutines wait at once.
type notifyWaiter struct {
	// The pool's C handle, not the *Pool: the free list lives in the Pool,
	// and a cycle through it would keep the Pool's finalizer from running.
	pool     *C.pool_t
	f        *os.File
	rc       syscall.RawConn
	st       C.pool_status_t
	h        *C.pool_conn_t
	ud       unsafe.Pointer
	tryFn    func(uintptr) bool
	cancelFn func()
}

// notifyWaiters is a pool's free list of notifyWaiters.
type notifyWaiters struct {
	mu   sync.Mutex
	free []*notifyWaiter
}

func (w *notifyWaiter) try(uintptr) bool {
	w.st, w.h, w.ud = rawTryGet(w.pool)
	// WouldBlock made the fd unreadable: wait until the pool makes it readable.
	return w.st != C.POOL_ERR_WOULD_BLOCK
}

func (w *notifyWaiter) cancel() { _ = w.f.SetReadDeadline(time.Unix(1, 0)) }

// discard closes the waiter's duplicate fd instead of keeping it.
func (w *notifyWaiter) discard() { w.f.Close() }

// notifyWaiter takes a waiter from the free list, or makes one.
func (p *Pool) notifyWaiter() (*notifyWaiter, error) {
	p.waiters.mu.Lock()
	if n := len(p.waiters.free); n > 0 {
		w := p.waiters.free[n-1]
		p.waiters.free = p.waiters.free[:n-1]
		p.waiters.mu.Unlock()
		return w, nil
	}
	p.waiters.mu.Unlock()
	fd, err := p.NotifyFD()
	if err != nil {
		return nil, err
	}
	// A duplicate, so that closing the *os.File never closes the pool's fd. It
	// shares the eventfd and its O_NONBLOCK flag, which makes os.NewFile
	// register it with the netpoller.
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, &Error{Code: CodeInternal, Msg: "redispool: get: dup notify fd: " + errno.Error()}
	}
	f := os.NewFile(dup, "redispool-notify")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &Error{Code: CodeInternal, Msg: "redispool: get: notify fd: " + err.Error()}
	}
	w := &notifyWaiter{pool: p.p, f: f, rc: rc}
	w.tryFn = w.try
	w.cancelFn = w.cancel
	return w, nil
}

// releaseNotifyWaiter puts w back on the free list (its deadline cleared when
// one was set).
func (p *Pool) releaseNotifyWaiter(w *notifyWaiter, hadDeadline bool) {
	if hadDeadline {
		if err := w.f.SetReadDeadline(time.Time{}); err != nil {
			w.discard()
			return
		}
	}
	p.waiters.mu.Lock()
	p.waiters.free = append(p.waiters.free, w)
	p.waiters.mu.Unlock()
}

// closeNotifyWaiters closes the free list's fds (when the pool is freed).
func (p *Pool) closeNotifyWaiters() {
	p.waiters.mu.Lock()
	free := p.waiters.free
	p.waiters.free = nil
	p.waiters.mu.Unlock()
	for _, w := range free {
		w.discard()
	}
}
