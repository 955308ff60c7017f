package redispool

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
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
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, &Error{Code: CodeInternal, Msg: "redispool: get: notify fd: " + err.Error()}
	}
	if !deadline.IsZero() {
		if err := f.SetReadDeadline(deadline); err != nil {
			return nil, &Error{Code: CodeInternal, Msg: "redispool: get: notify fd: " + err.Error()}
		}
	}

	// ctx.Done() ends the wait by moving the fd's deadline into the past.
	var stop, exited chan struct{}
	if done := ctx.Done(); done != nil {
		stop, exited = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(exited)
			select {
			case <-done:
				_ = f.SetReadDeadline(time.Unix(1, 0))
			case <-stop:
			}
		}()
	}

	waitErr := rc.Read(func(uintptr) bool {
		cn, err = p.TryGet()
		// WouldBlock made the fd unreadable: wait until the pool makes it readable.
		return err == nil || !errors.Is(err, ErrWouldBlock)
	})
	if stop != nil {
		close(stop)
		<-exited
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
