package redispool

/*
#cgo pkg-config: redispool
#include <stdlib.h>
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

// ErrTxFailed is TxPipeline's error when EXEC answered nil: a key WATCHed
// before on the conn changed, and the transaction was not run (go-redis's
// TxFailedErr). It is not a failure of the conn.
var ErrTxFailed = errors.New("redispool: transaction failed (a WATCHed key changed)")

// TxPipeline runs cmds as one transaction, pipelined as go-redis's
// TxPipeline: MULTI, the commands and EXEC in one write. It returns the
// commands' replies (EXEC's array, converted as by Pipeline: an error reply
// is a RedisError value in its place). EXEC's nil (a WATCHed key changed) is
// ErrTxFailed; an EXECABORT (a command refused while queued) is its
// RedisError. I/O failures are as Pipeline's.
func (cn *Conn) TxPipeline(ctx context.Context, cmds [][]string) ([]interface{}, error) {
	if len(cmds) == 0 {
		return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: TxPipeline: no commands"}
	}
	all := make([][]string, 0, len(cmds)+2)
	all = append(all, []string{"MULTI"})
	all = append(all, cmds...)
	all = append(all, []string{"EXEC"})
	replies, err := cn.pipeline(ctx, "TxPipeline", -1, all)
	if err != nil {
		return nil, err
	}
	switch exec := replies[len(replies)-1].(type) {
	case nil:
		return nil, ErrTxFailed
	case RedisError:
		return nil, exec
	case []interface{}:
		return exec, nil
	default:
		return nil, &Error{Code: CodeProtocol, Msg: "redispool: TxPipeline: EXEC answered neither an array nor nil"}
	}
}

// Message kinds (POOL_MSG_*).
const (
	MsgMessage      = int(C.POOL_MSG_MESSAGE)
	MsgPMessage     = int(C.POOL_MSG_PMESSAGE)
	MsgSMessage     = int(C.POOL_MSG_SMESSAGE)
	MsgSubscribe    = int(C.POOL_MSG_SUBSCRIBE)
	MsgPSubscribe   = int(C.POOL_MSG_PSUBSCRIBE)
	MsgSSubscribe   = int(C.POOL_MSG_SSUBSCRIBE)
	MsgUnsubscribe  = int(C.POOL_MSG_UNSUBSCRIBE)
	MsgPUnsubscribe = int(C.POOL_MSG_PUNSUBSCRIBE)
	MsgSUnsubscribe = int(C.POOL_MSG_SUNSUBSCRIBE)
	MsgPong         = int(C.POOL_MSG_PONG)
	// MsgResubscribed: the subscriber's conn was lost and a new one carries
	// every subscription; messages published in between were missed.
	MsgResubscribed = int(C.POOL_MSG_RESUBSCRIBED)
	MsgPush         = int(C.POOL_MSG_PUSH)
	MsgError        = int(C.POOL_MSG_ERROR)
)

// Message is one message or event of a PubSub.
type Message struct {
	Kind    int // Msg*
	Channel string
	Pattern string // MsgPMessage: the pattern that matched
	Payload string
	// Subscribe kinds: subscriptions left on the conn; MsgResubscribed:
	// resubscriptions so far.
	Count int64
}

// PubSub is a subscriber on a conn of its own (pool_subscriber_t): made
// with the pool's dialer and set-up, outside the pool's turns, and
// resubscribed to everything when the conn is lost (a MsgResubscribed
// message says so). Safe for use by several goroutines.
type PubSub struct {
	mu     sync.Mutex // serialises the C calls and guards s
	s      *C.pool_subscriber_t
	closed chan struct{}
	once   sync.Once
	chMu   sync.Mutex // guards ch and done
	ch     chan *Message
	done   chan struct{} // closed when the Channel goroutine has ended
	// A duplicate of pool_subscriber_fd registered with Go's netpoller:
	// receives wait there, never in a cgo call. nil when it could not be
	// made (receives then wait in C, in slices).
	f  *os.File
	rc syscall.RawConn
	// The turn to wait on f (one waiter at a time owns its deadline).
	turn chan struct{}
	// Another duplicate of the fd for Ping, which waits there while a
	// receiver may hold turn (the Channel goroutine does for good); both
	// see every readiness. nil with f.
	pf  *os.File
	prc syscall.RawConn
	// One Ping at a time (the library has one ping under way at most).
	pingTurn chan struct{}
}

// Subscribe makes a PubSub on the pool and subscribes it to channels (none:
// subscribe later). The confirmations come as MsgSubscribe messages.
func (p *Pool) Subscribe(ctx context.Context, channels ...string) (*PubSub, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *C.pool_subscriber_t
	var cerr C.pool_error_t
	st := C.pool_subscriber_new(p.p, &s, &cerr)
	runtime.KeepAlive(p)
	if st != C.POOL_OK {
		return nil, errorFrom(st, &cerr)
	}
	ps := &PubSub{s: s, closed: make(chan struct{}), turn: make(chan struct{}, 1),
		pingTurn: make(chan struct{}, 1)}
	ps.f, ps.rc = pollFile(int(C.pool_subscriber_fd(s)), "redispool-subscriber")
	if ps.f != nil {
		ps.pf, ps.prc = pollFile(int(C.pool_subscriber_fd(s)), "redispool-subscriber-ping")
		if ps.pf == nil {
			_ = ps.f.Close()
			ps.f, ps.rc = nil, nil
		}
	}
	runtime.SetFinalizer(ps, func(ps *PubSub) { _ = ps.Close() })
	if len(channels) > 0 {
		if err := ps.Subscribe(ctx, channels...); err != nil {
			_ = ps.Close()
			return nil, err
		}
	}
	return ps, nil
}

type subFn func(s *C.pool_subscriber_t, n C.size_t, names **C.char, lens *C.size_t, e *C.pool_error_t) C.pool_status_t

func (ps *PubSub) change(ctx context.Context, fn subFn, names []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := len(names)
	var ptrs **C.char
	var lens *C.size_t
	if n > 0 {
		block := C.malloc(C.size_t(uintptr(n) * (unsafe.Sizeof((*C.char)(nil)) + unsafe.Sizeof(C.size_t(0)))))
		if block == nil {
			return &Error{Code: CodeInternal, Msg: "redispool: out of memory"}
		}
		defer C.free(block)
		ps := unsafe.Slice((**C.char)(block), n)
		ls := unsafe.Slice((*C.size_t)(unsafe.Add(block, uintptr(n)*unsafe.Sizeof((*C.char)(nil)))), n)
		for i, name := range names {
			cs := C.CString(name)
			defer C.free(unsafe.Pointer(cs))
			ps[i] = cs
			ls[i] = C.size_t(len(name))
		}
		ptrs, lens = &ps[0], &ls[0]
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.s == nil {
		return ErrClosed
	}
	var cerr C.pool_error_t
	if st := fn(ps.s, C.size_t(n), ptrs, lens, &cerr); st != C.POOL_OK {
		return errorFrom(st, &cerr)
	}
	return nil
}

func subscribeC(s *C.pool_subscriber_t, n C.size_t, p **C.char, l *C.size_t, e *C.pool_error_t) C.pool_status_t {
	return C.pool_subscriber_subscribe(s, n, p, l, e)
}
func psubscribeC(s *C.pool_subscriber_t, n C.size_t, p **C.char, l *C.size_t, e *C.pool_error_t) C.pool_status_t {
	return C.pool_subscriber_psubscribe(s, n, p, l, e)
}
func ssubscribeC(s *C.pool_subscriber_t, n C.size_t, p **C.char, l *C.size_t, e *C.pool_error_t) C.pool_status_t {
	return C.pool_subscriber_ssubscribe(s, n, p, l, e)
}
func unsubscribeC(s *C.pool_subscriber_t, n C.size_t, p **C.char, l *C.size_t, e *C.pool_error_t) C.pool_status_t {
	return C.pool_subscriber_unsubscribe(s, n, p, l, e)
}
func punsubscribeC(s *C.pool_subscriber_t, n C.size_t, p **C.char, l *C.size_t, e *C.pool_error_t) C.pool_status_t {
	return C.pool_subscriber_punsubscribe(s, n, p, l, e)
}

// Subscribe adds channels (SUBSCRIBE); the confirmations come as messages.
func (ps *PubSub) Subscribe(ctx context.Context, channels ...string) error {
	if len(channels) == 0 {
		return &Error{Code: CodeInvalidArg, Msg: "redispool: Subscribe: no channels"}
	}
	return ps.change(ctx, subscribeC, channels)
}

// PSubscribe adds patterns (PSUBSCRIBE).
func (ps *PubSub) PSubscribe(ctx context.Context, patterns ...string) error {
	if len(patterns) == 0 {
		return &Error{Code: CodeInvalidArg, Msg: "redispool: PSubscribe: no patterns"}
	}
	return ps.change(ctx, psubscribeC, patterns)
}

// SSubscribe adds shard channels (SSUBSCRIBE, Redis 7).
func (ps *PubSub) SSubscribe(ctx context.Context, channels ...string) error {
	if len(channels) == 0 {
		return &Error{Code: CodeInvalidArg, Msg: "redispool: SSubscribe: no channels"}
	}
	return ps.change(ctx, ssubscribeC, channels)
}

// Unsubscribe removes channels; none removes all.
func (ps *PubSub) Unsubscribe(ctx context.Context, channels ...string) error {
	return ps.change(ctx, unsubscribeC, channels)
}

// PUnsubscribe removes patterns; none removes all.
func (ps *PubSub) PUnsubscribe(ctx context.Context, patterns ...string) error {
	return ps.change(ctx, punsubscribeC, patterns)
}

// receiveSlice bounds one C receive when the subscriber's fd could not be
// put in the netpoller, so that a context and Close are looked at in time;
// it is also the Channel goroutine's pause after an error.
const receiveSlice = 100 * time.Millisecond

// pollFile wraps a duplicate of fd (the library keeps its own) in an
// *os.File registered with Go's netpoller; nils when it cannot.
func pollFile(fd int, name string) (*os.File, syscall.RawConn) {
	if fd < 0 {
		return nil, nil
	}
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, nil
	}
	if err := syscall.SetNonblock(int(dup), true); err != nil {
		syscall.Close(int(dup))
		return nil, nil
	}
	f := os.NewFile(dup, name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil
	}
	return f, rc
}

// ReceiveTimeout returns the next message or event, waiting at most timeout
// (negative: until ctx is done); (nil, nil) when none came in time. A lost
// conn is replaced on the way (MsgResubscribed comes first); if it cannot be
// dialed, the error is returned and the next call tries again.
//
// The wait happens in Go's netpoller on the subscriber's fd
// (pool_subscriber_fd), never in a cgo call: a waiting goroutine holds no
// OS thread, and ctx is honoured at once without a goroutine per call.
// Concurrent receivers on one PubSub wait in turn.
func (ps *PubSub) ReceiveTimeout(ctx context.Context, timeout time.Duration) (*Message, error) {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-ps.closed:
		return nil, ErrClosed
	default:
	}
	if ps.rc == nil {
		return ps.receiveSliced(ctx, deadline)
	}
	// The turn: at once when free, else waiting for it in Go.
	select {
	case ps.turn <- struct{}{}:
	default:
		var expired <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			expired = t.C
		}
		select {
		case ps.turn <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ps.closed:
			return nil, ErrClosed
		case <-expired:
			return nil, nil
		}
	}
	defer func() { <-ps.turn }()

	// The poll's deadline: timeout's or ctx's, whichever comes first.
	defer armPollDeadline(ctx, ps.f, deadline).release()
	var m *Message
	var err error
	// The callback runs first, then after each readiness. Go's netpoller is
	// edge-triggered: one receive of timeout 0 that finds nothing leaves
	// nothing behind (pool_subscriber_receive's contract: every socket read
	// until EAGAIN, no whole message buffered), so the next message is a new
	// edge and waiting right after it is safe.
	called := false
	rerr := ps.rc.Read(func(uintptr) bool {
		called = true
		if ctx.Err() != nil {
			return true
		}
		m, err = ps.receiveOnce(0)
		return m != nil || err != nil
	})
	if m != nil || err != nil {
		return m, err
	}
	select {
	case <-ps.closed:
		return nil, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !called {
		// A deadline already passed (a timeout of 0): Read polled nothing,
		// but what has already arrived is still returned.
		if m, err = ps.receiveOnce(0); m != nil || err != nil {
			return m, err
		}
	}
	if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
		return nil, &Error{Code: CodeIO, Msg: "redispool: PubSub receive: " + rerr.Error()}
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return nil, nil
	}
	// ctx's deadline passed; its Err may lag the clock by a moment.
	return nil, context.DeadlineExceeded
}

// receiveSliced is ReceiveTimeout's wait in C, in slices of receiveSlice,
// when the fd is not in the netpoller.
func (ps *PubSub) receiveSliced(ctx context.Context, deadline time.Time) (*Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-ps.closed:
			return nil, ErrClosed
		default:
		}
		slice := receiveSlice
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left < slice {
				slice = left
			}
			if slice < 0 {
				slice = 0
			}
		}
		m, err := ps.receiveOnce(slice)
		if m != nil || err != nil {
			return m, err
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return nil, nil
		}
	}
}

// Receive waits for the next message or event until ctx is done.
func (ps *PubSub) Receive(ctx context.Context) (*Message, error) {
	return ps.ReceiveTimeout(ctx, -1)
}

func (ps *PubSub) receiveOnce(d time.Duration) (*Message, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.s == nil {
		return nil, ErrClosed
	}
	var m *C.pool_message_t
	var cerr C.pool_error_t
	st := C.pool_subscriber_receive(ps.s, C.int64_t(d/time.Millisecond), &m, &cerr)
	if st == C.POOL_ERR_TIMEOUT {
		return nil, nil
	}
	if st != C.POOL_OK {
		return nil, errorFrom(st, &cerr)
	}
	defer C.pool_message_free(m)
	str := func(p *C.char, n C.size_t) string {
		if p == nil {
			return ""
		}
		return C.GoStringN(p, C.int(n))
	}
	return &Message{
		Kind:    int(m.kind),
		Channel: str(m.channel, m.channel_len),
		Pattern: str(m.pattern, m.pattern_len),
		Payload: str(m.payload, m.payload_len),
		Count:   int64(m.count),
	}, nil
}

// Ping PINGs the subscriber's conns and waits for the answers, at most
// timeout (negative: as long as it takes); a conn that does not answer in
// time is lost (the next receive resubscribes) and the error returned.
// Messages that arrive meanwhile are kept for Receive.
//
// The wait happens in Go's netpoller on the subscriber's fd
// (pool_subscriber_ping_start, then pool_subscriber_ping_finish at each
// readiness), never in a cgo call: a waiting goroutine holds no OS thread.
// When ctx is done first, the ping is given up (pool_subscriber_ping_cancel)
// and ctx's error returned; the conns are kept and the PubSub stays usable.
// Concurrent Pings on one PubSub run in turn; Receive may run meanwhile.
func (ps *PubSub) Ping(ctx context.Context, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-ps.closed:
		return ErrClosed
	default:
	}
	if ps.prc == nil {
		return ps.pingBlocking(timeout)
	}
	select {
	case ps.pingTurn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-ps.closed:
		return ErrClosed
	}
	defer func() { <-ps.pingTurn }()

	ms := timeoutMillis(timeout)
	if err := ps.pingStart(ms); err != nil {
		return err
	}
	// Taken after the start: never before the library's own deadline.
	var deadline time.Time
	if ms >= 0 {
		deadline = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	defer armPollDeadline(ctx, ps.pf, deadline).release()
	// Bounded: each round past the library's deadline waits 1 ms more, and
	// the library's deadline is never later than ours.
	for round := 0; round < 1000; round++ {
		var done bool
		var err error
		// Go's netpoller is edge-triggered: a finish that says WOULD_BLOCK
		// read every socket until EAGAIN, so the next answer is a new edge.
		rerr := ps.prc.Read(func(uintptr) bool {
			if ctx.Err() != nil {
				return true
			}
			done, err = ps.pingFinish()
			return done
		})
		if done {
			return err
		}
		select {
		case <-ps.closed:
			return ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			ps.pingCancel()
			return err
		}
		if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
			ps.pingCancel()
			return &Error{Code: CodeIO, Msg: "redispool: PubSub ping: " + rerr.Error()}
		}
		if deadline.IsZero() || time.Now().Before(deadline) {
			// ctx's deadline passed; its Err may lag the clock by a moment.
			ps.pingCancel()
			return context.DeadlineExceeded
		}
		// The library's deadline passed: its finish says so.
		if done, err = ps.pingFinish(); done {
			return err
		}
		_ = ps.pf.SetReadDeadline(time.Now().Add(time.Millisecond))
	}
	ps.pingCancel()
	return &Error{Code: CodeIO, Msg: "redispool: PubSub ping: no answer by the deadline"}
}

// pingBlocking is Ping's wait in C, when the fd is not in the netpoller.
func (ps *PubSub) pingBlocking(timeout time.Duration) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.s == nil {
		return ErrClosed
	}
	var cerr C.pool_error_t
	if st := C.pool_subscriber_ping(ps.s, C.int64_t(timeoutMillis(timeout)), &cerr); st != C.POOL_OK {
		return errorFrom(st, &cerr)
	}
	return nil
}

func (ps *PubSub) pingStart(ms int64) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.s == nil {
		return ErrClosed
	}
	var cerr C.pool_error_t
	if st := C.pool_subscriber_ping_start(ps.s, C.int64_t(ms), &cerr); st != C.POOL_OK {
		return errorFrom(st, &cerr)
	}
	return nil
}

// pingFinish: done false while answers are outstanding.
func (ps *PubSub) pingFinish() (done bool, err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.s == nil {
		return true, ErrClosed
	}
	var cerr C.pool_error_t
	switch st := C.pool_subscriber_ping_finish(ps.s, &cerr); st {
	case C.POOL_OK:
		return true, nil
	case C.POOL_ERR_WOULD_BLOCK:
		return false, nil
	default:
		return true, errorFrom(st, &cerr)
	}
}

func (ps *PubSub) pingCancel() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.s != nil {
		C.pool_subscriber_ping_cancel(ps.s, nil)
	}
}

// Resubscribes counts the lost conns replaced so far.
func (ps *PubSub) Resubscribes() uint64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return uint64(C.pool_subscriber_resubscribes(ps.s))
}

// Channel returns a channel of messages and events (MsgResubscribed
// included), fed by a goroutine until ctx is done or the PubSub is closed;
// the channel is then closed. Errors other than a closed pool are retried
// after a pause (a lost conn is dialed again). The first call's ctx counts:
// later calls return the same channel.
func (ps *PubSub) Channel(ctx context.Context) <-chan *Message {
	ps.chMu.Lock()
	defer ps.chMu.Unlock()
	if ps.ch == nil {
		ps.ch = make(chan *Message, 100)
		ps.done = make(chan struct{})
		go ps.feed(ctx, ps.ch, ps.done)
	}
	return ps.ch
}

func (ps *PubSub) feed(ctx context.Context, out chan<- *Message, done chan<- struct{}) {
	defer close(done)
	defer close(out)
	for {
		m, err := ps.ReceiveTimeout(ctx, -1)
		switch {
		case err == nil && m == nil:
			continue
		case err == nil:
			select {
			case out <- m:
			case <-ctx.Done():
				return
			case <-ps.closed:
				return
			}
		case errors.Is(err, ErrClosed) || ctx.Err() != nil:
			return
		default:
			select {
			case <-time.After(receiveSlice):
			case <-ctx.Done():
				return
			case <-ps.closed:
				return
			}
		}
	}
}

// Close stops the Channel goroutine and frees the subscriber (its conns are
// closed). A second Close returns nil.
func (ps *PubSub) Close() error {
	ps.once.Do(func() {
		close(ps.closed)
		if ps.f != nil {
			// Wakes the receivers and Ping waiting in the netpoller.
			_ = ps.f.Close()
			_ = ps.pf.Close()
		}
		ps.chMu.Lock()
		done := ps.done
		ps.chMu.Unlock()
		if done != nil {
			<-done
		}
		ps.mu.Lock()
		C.pool_subscriber_free(ps.s)
		ps.s = nil
		ps.mu.Unlock()
		runtime.SetFinalizer(ps, nil)
	})
	return nil
}

// pollWatch is armPollDeadline's hold on ctx: release it once the wait on the
// fd is over.
type pollWatch struct {
	stop  func() bool
	fired chan struct{}
}

// armPollDeadline sets f's read deadline to deadline (zero: none) or ctx's,
// whichever comes first, and moves it to the past when ctx is canceled
// (context.AfterFunc: no goroutine until then), which ends a wait on f.
func armPollDeadline(ctx context.Context, f *os.File, deadline time.Time) pollWatch {
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	_ = f.SetReadDeadline(deadline)
	if ctx.Done() == nil {
		return pollWatch{}
	}
	w := pollWatch{fired: make(chan struct{})}
	w.stop = context.AfterFunc(ctx, func() {
		_ = f.SetReadDeadline(longAgo)
		close(w.fired)
	})
	return w
}

// release undoes the AfterFunc, waiting for it if it already runs (so that
// it never touches the fd's deadline after the wait is over).
func (w pollWatch) release() {
	if w.stop != nil && !w.stop() {
		<-w.fired
	}
}
