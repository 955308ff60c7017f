package redispool

/*
#cgo pkg-config: redispool
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <redispool.h>

// rpConnStateFree is Go's (nonblocking_export.go), called through rp_ud_free,
// the conn userdata's free_fn. The userdata is a cgo.Handle, a small integer:
// Go code only ever holds it as a uintptr, never as a pointer (a pointer-typed
// Go variable holding 0x3c makes the runtime throw "invalid pointer found on
// stack" when it copies the goroutine's stack).
extern void rpConnStateFree(uintptr_t);

static void rp_ud_free(void *ud) { rpConnStateFree((uintptr_t)ud); }

static uintptr_t rp_userdata(pool_conn_t *c) { return (uintptr_t)pool_conn_userdata(c); }

// The C half of a conn's state, reused by every command on it: the error
// detail, the reply, what to wait for and the argument block. Every out-value
// of the non-blocking calls lands here, never in Go memory (a Go variable
// whose address is passed to C escapes to the heap).
typedef struct {
	pool_error_t err;
	pool_reply_t *reply;
	int want;
	int64_t wait_ms;
	char *block;
	size_t cap;
	// A pipeline's: where its replies go (NULL for one command).
	pool_reply_t **replies;
	size_t ncap;
	size_t nreplies;
} rp_cs;

static rp_cs *rp_cs_new(void) { return calloc(1, sizeof(rp_cs)); }

static void rp_cs_free(rp_cs *s) {
	if (s != NULL) {
		free(s->block);
		free(s);
	}
}

// At least n bytes of argument block; 0 when out of memory.
static int rp_cs_reserve(rp_cs *s, size_t n) {
	if (n <= s->cap)
		return 1;
	size_t c = s->cap ? s->cap : 512;
	while (c < n)
		c *= 2;
	char *b = realloc(s->block, c);
	if (b == NULL)
		return 0;
	s->block = b;
	s->cap = c;
	return 1;
}

// The block holds argc argv pointers, then argc lengths, then the bytes.
static pool_status_t rp_start(pool_conn_t *c, rp_cs *s, int argc, int64_t timeout_ms) {
	const char *const *argv = (const char *const *)s->block;
	const size_t *lens = (const size_t *)(s->block + (size_t)argc * sizeof(char *));
	pool_status_t st = pool_conn_start(c, argc, argv, lens, timeout_ms, &s->want, &s->err);
	s->wait_ms = st == POOL_OK ? pool_conn_wait_ms(c) : -1;
	return st;
}

static pool_status_t rp_start_pipeline(pool_conn_t *c, rp_cs *s, size_t n, const int *argcs,
                                       const char *const *const *argvs,
                                       const size_t *const *argvlens, pool_reply_t **replies,
                                       int64_t timeout_ms) {
	s->replies = replies;
	s->ncap = n;
	s->nreplies = 0;
	pool_status_t st = pool_conn_start_pipeline(c, n, argcs, argvs, argvlens, timeout_ms, &s->want, &s->err);
	s->wait_ms = st == POOL_OK ? pool_conn_wait_ms(c) : -1;
	return st;
}

// Progress on the started command or pipeline.
static pool_status_t rp_finish(pool_conn_t *c, rp_cs *s) {
	pool_status_t st;
	if (s->replies != NULL) {
		st = pool_conn_finish_pipeline(c, s->replies, s->ncap, &s->nreplies, &s->want, &s->err);
	} else {
		s->reply = NULL;
		st = pool_conn_finish(c, &s->reply, &s->want, &s->err);
	}
	if (st == POOL_ERR_WOULD_BLOCK)
		s->wait_ms = pool_conn_wait_ms(c);
	return st;
}

static void rp_attach(pool_conn_t *c, uintptr_t h) {
	pool_conn_set_userdata(c, (void *)h, rp_ud_free);
}
*/
import "C"

import (
	"context"
	"os"
	"runtime/cgo"
	"syscall"
	"time"
	"unsafe"
)

// connState is what the binding keeps per conn for the whole conn's life
// (the conn's userdata holds a cgo.Handle to it, released when the library
// closes the conn): a duplicate of the conn's socket registered with Go's
// netpoller, the C half (rp_cs) and the *Conn every Get of this conn returns,
// so that a Get, a Do and a Put allocate nothing once the conn is warm.
type connState struct {
	conn   Conn
	handle cgo.Handle
	c      *C.rp_cs
	f      *os.File
	rc     syscall.RawConn
	// The last finish's status; whether the file has a deadline set.
	//
	// The RawConn callback always finishes first and waits after: skipping
	// that first try (the reply is rarely there right after the start) would
	// lose a wake-up, since RawConn.Read forgets readiness seen before it.
	st       C.pool_status_t
	deadline bool
	// ctx of a wait that honours cancellation (doCtx), nil otherwise.
	ctx     context.Context
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool
}

// stateOf returns the connState a conn's userdata points to, or nil.
func stateOf(ud uintptr) *connState {
	if ud == 0 {
		return nil
	}
	cs, _ := cgo.Handle(ud).Value().(*connState)
	return cs
}

// state returns cn's connState, made on first use (nil when it cannot be:
// the blocking path is used then).
func (cn *Conn) state() *connState {
	if cn.cs != nil {
		return cn.cs
	}
	if cs := stateOf(uintptr(C.rp_userdata(cn.h))); cs != nil {
		cn.cs = cs
		return cs
	}
	fd := C.pool_conn_fd(cn.h)
	if fd < 0 {
		return nil
	}
	// A duplicate: closing the *os.File never closes the conn's socket. It
	// shares the socket's O_NONBLOCK flag, which os.NewFile needs to register
	// it with the netpoller; the library copes with either mode.
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil
	}
	if err := syscall.SetNonblock(int(dup), true); err != nil {
		syscall.Close(int(dup))
		return nil
	}
	f := os.NewFile(dup, "redispool-conn")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	c := C.rp_cs_new()
	if c == nil {
		f.Close()
		return nil
	}
	cs := &connState{c: c, f: f, rc: rc}
	cs.readFn = cs.onReadable
	cs.writeFn = cs.onWritable
	// A cluster conn's *Conn is made per Get (Cluster.conn): the state must
	// not keep the Cluster alive through its handle.
	cs.conn = Conn{h: cn.h, pool: cn.pool, cs: cs}
	cs.handle = cgo.NewHandle(cs)
	C.rp_attach(cn.h, C.uintptr_t(cs.handle))
	cn.cs = cs
	return cs
}

// release drops a kept Conn's reference to its pool p as it is given back:
// the connState is reachable from its cgo.Handle for the conn's whole life,
// and must not keep an unused Pool (and its finalizer) alive. Done before
// the put (another goroutine may get the conn the moment it is back); true
// when it dropped it, for unrelease.
func (cn *Conn) release(p *Pool) bool {
	if cn.cs != nil && cn == &cn.cs.conn && cn.pool == p {
		cn.pool = nil
		return true
	}
	return false
}

// unrelease undoes release after a put or remove that was refused.
func (cn *Conn) unrelease(p *Pool, released bool) {
	if released {
		cn.pool = p
	}
}

// free releases the state when the library closes the conn.
func (cs *connState) free() {
	cs.handle.Delete()
	cs.f.Close()
	C.rp_cs_free(cs.c)
	cs.c = nil
}

// fill copies args into the C argument block (no allocation once the block is
// large enough). False when out of memory.
func (cs *connState) fill(args []string) bool {
	n := len(args)
	ptrSize := unsafe.Sizeof((*C.char)(nil))
	lenSize := unsafe.Sizeof(C.size_t(0))
	head := uintptr(n) * (ptrSize + lenSize)
	total := head
	for _, a := range args {
		total += uintptr(len(a)) + 1
	}
	if C.rp_cs_reserve(cs.c, C.size_t(total)) == 0 {
		return false
	}
	block := unsafe.Pointer(cs.c.block)
	av := unsafe.Slice((**C.char)(block), n)
	al := unsafe.Slice((*C.size_t)(unsafe.Add(block, uintptr(n)*ptrSize)), n)
	data := unsafe.Slice((*byte)(unsafe.Add(block, head)), int(total-head))
	off := 0
	for i, a := range args {
		av[i] = (*C.char)(unsafe.Pointer(&data[off]))
		al[i] = C.size_t(len(a))
		off += copy(data[off:], a)
		data[off] = 0
		off++
	}
	return true
}

func (cs *connState) onReadable(uintptr) bool {
	cs.st = C.rp_finish(cs.conn.h, cs.c)
	return cs.st != C.POOL_ERR_WOULD_BLOCK || cs.c.want != C.POOL_WANT_READ
}

func (cs *connState) onWritable(uintptr) bool {
	cs.st = C.rp_finish(cs.conn.h, cs.c)
	return cs.st != C.POOL_ERR_WOULD_BLOCK || cs.c.want != C.POOL_WANT_WRITE
}

// wait finishes the started command, parking the goroutine in the netpoller
// (never in a cgo call) until the socket is ready for what the library asked
// for, at most until the command's deadline (pool_conn_wait_ms), after which
// the library's finish reports the timeout. Returns the final status.
func (cs *connState) wait(h *C.pool_conn_t) C.pool_status_t {
	for {
		if ms := int64(cs.c.wait_ms); ms >= 0 {
			// One millisecond more: the library rounds up, and a poll that
			// wakes just before its deadline only waits again.
			_ = cs.f.SetDeadline(time.Now().Add(time.Duration(ms+1) * time.Millisecond))
			cs.deadline = true
		} else if cs.deadline {
			_ = cs.f.SetDeadline(time.Time{})
			cs.deadline = false
		}
		// Looked at after the deadline is set: a cancellation from here on
		// moves the deadline to the past (doCtx's AfterFunc) and wakes the poll.
		if cs.ctx != nil && cs.ctx.Err() != nil {
			return C.POOL_ERR_CANCELED
		}
		var err error
		if cs.c.want == C.POOL_WANT_WRITE {
			err = cs.rc.Write(cs.writeFn)
		} else {
			err = cs.rc.Read(cs.readFn)
		}
		if err != nil {
			// The deadline passed (or the poller failed): the library decides.
			cs.st = C.rp_finish(h, cs.c)
		}
		if cs.st != C.POOL_ERR_WOULD_BLOCK {
			return cs.st
		}
		// The other interest (TLS), or the deadline not quite passed yet.
	}
}

// pipeline runs a pipeline through pool_conn_start_pipeline /
// pool_conn_finish_pipeline: replies (n entries of C memory) receives the
// replies; returns the status and how many replies were handed over.
func (cs *connState) pipeline(h *C.pool_conn_t, n int, argcs *C.int, argvs ***C.char, argvlens **C.size_t,
	replies **C.pool_reply_t, timeoutMs int64) (C.pool_status_t, int) {
	cs.conn.h = h
	st := C.rp_start_pipeline(h, cs.c, C.size_t(n), argcs, argvs, argvlens, replies, C.int64_t(timeoutMs))
	if st == C.POOL_OK {
		st = cs.wait(h)
	}
	got := int(cs.c.nreplies)
	cs.c.replies, cs.c.ncap, cs.c.nreplies = nil, 0, 0
	if st != C.POOL_OK && got == 0 {
		return st, 0
	}
	return st, got
}

// do runs one command through pool_conn_start / pool_conn_finish.
func (cs *connState) do(h *C.pool_conn_t, what string, timeoutMs int64, args []string) (interface{}, error) {
	if !cs.fill(args) {
		return nil, &Error{Code: CodeInternal, Msg: "redispool: " + what + ": out of memory"}
	}
	cs.conn.h = h
	st := C.rp_start(h, cs.c, C.int(len(args)), C.int64_t(timeoutMs))
	if st != C.POOL_OK {
		return nil, errorFrom(st, &cs.c.err)
	}
	if st = cs.wait(h); st != C.POOL_OK {
		return nil, errorFrom(st, &cs.c.err)
	}
	reply := cs.c.reply
	v := convertReply(reply)
	C.pool_reply_free(reply)
	switch v := v.(type) {
	case nilReply:
		return nil, Nil
	case RedisError:
		return nil, v
	}
	return v, nil
}

// longAgo is a deadline in the past: it wakes a poll at once.
var longAgo = time.Unix(1, 0)

// doCtx is do whose wait also ends when ctx is done, without a goroutine: an
// AfterFunc moves the file's deadline to the past, which wakes the poll. The
// command is then left unfinished (the conn is removed or drained when put,
// never handed out again as it is) and the error matches ErrCanceled and
// ctx's error.
func (cs *connState) doCtx(ctx context.Context, h *C.pool_conn_t, what string, timeoutMs int64, args []string) (interface{}, error) {
	if ctx.Done() == nil {
		return cs.do(h, what, timeoutMs, args)
	}
	fired := make(chan struct{})
	// The wait sets (or clears) the deadline before each poll.
	cs.deadline = true
	cs.ctx = ctx
	stop := context.AfterFunc(ctx, func() {
		_ = cs.f.SetDeadline(longAgo)
		close(fired)
	})
	v, err := cs.do(h, what, timeoutMs, args)
	if !stop() {
		<-fired
	}
	cs.ctx = nil
	cs.deadline = true
	if e, ok := err.(*Error); ok && e.Code == CodeCanceled && ctx.Err() != nil {
		return nil, &Error{Code: CodeCanceled, Msg: "redispool: " + what + ": " + ctx.Err().Error(), err: ctx.Err()}
	}
	return v, err
}
