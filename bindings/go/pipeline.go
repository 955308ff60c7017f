package redispool

/*
#cgo pkg-config: redispool
#include <stdlib.h>
#include <redispool.h>
*/
import "C"

import (
	"context"
	"strconv"
	"time"
	"unsafe"
)

// timeoutMillis converts a per-call timeout for pool_conn_command_ex and
// pool_conn_pipeline: negative is the pool's read timeout (-1), 0 is none,
// and a positive duration is rounded up to whole milliseconds.
func timeoutMillis(d time.Duration) int64 {
	switch {
	case d < 0:
		return -1
	case d == 0:
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// DoTimeout is Do with this call's own read timeout in place of the pool's:
// 0 waits for the reply as long as it takes, a negative timeout is the pool's
// (exactly Do). For blocking commands: BLPOP key 5 on a pool whose
// ReadTimeout is 1s needs a timeout above 5s (say 5s plus the pool's read
// timeout, as go-redis does); its nil reply after 5s returns (nil, Nil) and
// the conn stays good. A reply that does not arrive within timeout is ErrIO
// and the conn is bad, as with Do. The write stays bounded by the pool's
// WriteTimeout.
func (cn *Conn) DoTimeout(ctx context.Context, timeout time.Duration, args ...string) (interface{}, error) {
	return cn.do(ctx, "DoTimeout", timeoutMillis(timeout), args)
}

// Pipeline sends cmds on cn in one write, then reads one reply per command,
// and returns them in order, converted as by Do but with a nil reply as nil
// and an error reply (WRONGTYPE, ...) as a RedisError value in its place: a
// Redis error reply is not an error of the pipeline, and the replies after it
// are read as usual. A transaction is a pipeline too: MULTI, the commands
// (each answered "QUEUED"), EXEC, whose reply is the []interface{} of their
// replies (nil when a WATCHed key changed).
//
// The reading of all the replies together is bounded by the pool's read
// timeout (PipelineTimeout takes one of its own). An I/O or protocol failure
// mid-way (ErrIO, ErrProtocol) marks the conn bad, and Pipeline returns the
// replies that arrived before it (the first ones) with the error. On a
// cluster conn, MOVED and ASK are returned as RedisError values in their
// places, not followed.
func (cn *Conn) Pipeline(ctx context.Context, cmds [][]string) ([]interface{}, error) {
	return cn.pipeline(ctx, "Pipeline", -1, cmds)
}

// PipelineTimeout is Pipeline with its own timeout for reading all the
// replies, counted from the start of the call: 0 is none, negative the
// pool's read timeout (exactly Pipeline).
func (cn *Conn) PipelineTimeout(ctx context.Context, timeout time.Duration, cmds [][]string) ([]interface{}, error) {
	return cn.pipeline(ctx, "PipelineTimeout", timeoutMillis(timeout), cmds)
}

func (cn *Conn) pipeline(ctx context.Context, what string, timeoutMs int64, cmds [][]string) ([]interface{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := len(cmds)
	if n == 0 {
		return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: " + what + ": no commands"}
	}
	// One C block: argvs, argvlens, replies (pointer-sized arrays of n),
	// then every argv and argvlen, then argcs (ints), then the bytes.
	ptrSize := unsafe.Sizeof((*C.char)(nil))
	lenSize := unsafe.Sizeof(C.size_t(0))
	intSize := unsafe.Sizeof(C.int(0))
	nargs, nbytes := 0, uintptr(0)
	for i, c := range cmds {
		if len(c) == 0 {
			return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: " + what + ": empty command " + strconv.Itoa(i)}
		}
		nargs += len(c)
		for _, a := range c {
			nbytes += uintptr(len(a)) + 1
		}
	}
	head := uintptr(n)*3*ptrSize + uintptr(nargs)*(ptrSize+lenSize)
	total := head + uintptr(n)*intSize + nbytes
	block := C.malloc(C.size_t(total))
	if block == nil {
		return nil, &Error{Code: CodeInternal, Msg: "redispool: " + what + ": out of memory"}
	}
	defer C.free(block)
	argvs := unsafe.Slice((***C.char)(block), n)
	argvlens := unsafe.Slice((**C.size_t)(unsafe.Add(block, uintptr(n)*ptrSize)), n)
	replies := unsafe.Slice((**C.pool_reply_t)(unsafe.Add(block, uintptr(n)*2*ptrSize)), n)
	argvAll := unsafe.Slice((**C.char)(unsafe.Add(block, uintptr(n)*3*ptrSize)), nargs)
	lenAll := unsafe.Slice((*C.size_t)(unsafe.Add(block, uintptr(n)*3*ptrSize+uintptr(nargs)*ptrSize)), nargs)
	argcs := unsafe.Slice((*C.int)(unsafe.Add(block, head)), n)
	data := unsafe.Slice((*byte)(unsafe.Add(block, head+uintptr(n)*intSize)), int(nbytes))
	k, off := 0, 0
	for i, c := range cmds {
		argcs[i] = C.int(len(c))
		argvs[i] = &argvAll[k]
		argvlens[i] = &lenAll[k]
		replies[i] = nil
		for _, a := range c {
			argvAll[k] = (*C.char)(unsafe.Pointer(&data[off]))
			lenAll[k] = C.size_t(len(a))
			off += copy(data[off:], a)
			data[off] = 0
			off++
			k++
		}
	}

	// The replies are waited for in Go's netpoller (nonblocking.go); on a
	// cluster conn too: a pipeline's redirects are returned, never followed.
	var got C.size_t
	var cerr C.pool_error_t
	var st C.pool_status_t
	if cs := cn.state(); cs != nil {
		var k int
		st, k = cs.pipeline(cn.h, n, &argcs[0], &argvs[0], &argvlens[0], &replies[0], timeoutMs)
		got = C.size_t(k)
		cerr = cs.c.err
	} else {
		st = C.pool_conn_pipeline(cn.h, C.size_t(n), &argcs[0], &argvs[0], &argvlens[0],
			C.int64_t(timeoutMs), &replies[0], &got, &cerr)
	}
	out := make([]interface{}, 0, int(got))
	for i := 0; i < int(got) && i < n; i++ {
		if replies[i] == nil {
			out = append(out, nil)
			continue
		}
		out = append(out, convertElement(replies[i]))
	}
	for i := range replies {
		if replies[i] != nil {
			C.pool_reply_free(replies[i])
		}
	}
	if st != C.POOL_OK {
		return out, errorFrom(st, &cerr)
	}
	return out, nil
}
