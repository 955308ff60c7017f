package redispool

/*
#cgo pkg-config: redispool
#include <stdlib.h>
#include <redispool.h>
*/
import "C"

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"unsafe"
)

// Do sends one command on cn and returns its reply as Go values:
//
//	bulk and simple strings, verbatim strings   string
//	integers                                    int64
//	doubles (RESP3)                             float64
//	booleans (RESP3)                            bool
//	big numbers (RESP3)                         *big.Int
//	arrays, sets and pushes                     []interface{}
//	maps (RESP3)                                map[interface{}]interface{}
//	nil inside an aggregate                     nil
//	an error reply inside an aggregate          RedisError
//
// A nil reply returns (nil, Nil) and an error reply (nil, RedisError), as
// go-redis; the conn stays good. Arguments are binary safe.
//
// ctx is checked before the command is sent; the write and the read are
// bounded by the pool's write and read timeouts (not by ctx). A failure
// mid-way (ErrIO, ErrProtocol) marks the conn bad: later commands on it fail
// with ErrBadConn and Put removes it instead of pooling it.
func (cn *Conn) Do(ctx context.Context, args ...string) (interface{}, error) {
	return cn.do(ctx, "Do", -1, args)
}

// do is Do and DoTimeout: timeoutMs < 0 is the pool's read timeout.
func (cn *Conn) do(ctx context.Context, what string, timeoutMs int64, args []string) (interface{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: " + what + ": no command"}
	}
	// The reply is waited for in Go's netpoller (nonblocking.go). On a cluster
	// conn, a redirect (MOVED, ASK) or a retry (TRYAGAIN, CLUSTERDOWN) reply
	// was not executed: the blocking call below sends the command again and
	// follows it through the library (slot map update, ASKING, the other
	// node's pool), holding the thread for that rare case only.
	if cs := cn.state(); cs != nil {
		v, err := cs.do(cn.h, what, timeoutMs, args)
		if cn.cluster == nil || !isRedirect(err) {
			return v, err
		}
	}
	block, argv, argvlen := argBlock(args)
	if block == nil {
		return nil, &Error{Code: CodeInternal, Msg: "redispool: " + what + ": out of memory"}
	}
	defer C.free(block)

	var reply *C.pool_reply_t
	var cerr C.pool_error_t
	var st C.pool_status_t
	if timeoutMs < 0 {
		st = C.pool_conn_command(cn.h, C.int(len(args)), argv, argvlen, &reply, &cerr)
	} else {
		st = C.pool_conn_command_ex(cn.h, C.int(len(args)), argv, argvlen, C.int64_t(timeoutMs), &reply, &cerr)
	}
	if st != C.POOL_OK {
		return nil, errorFrom(st, &cerr)
	}
	defer C.pool_reply_free(reply)
	v := convertReply(reply)
	switch v := v.(type) {
	case nilReply:
		return nil, Nil
	case RedisError:
		return nil, v
	}
	return v, nil
}

// argBlock copies args into one C block holding argv, argvlen and the
// argument bytes (NUL-terminated), so C never sees Go memory. The caller
// frees block with C.free; block is nil when out of memory.
func argBlock(args []string) (block unsafe.Pointer, argv **C.char, argvlen *C.size_t) {
	n := len(args)
	ptrSize := unsafe.Sizeof((*C.char)(nil))
	lenSize := unsafe.Sizeof(C.size_t(0))
	total := uintptr(n) * (ptrSize + lenSize)
	for _, a := range args {
		total += uintptr(len(a)) + 1
	}
	block = C.malloc(C.size_t(total))
	if block == nil {
		return nil, nil, nil
	}
	av := unsafe.Slice((**C.char)(block), n)
	al := unsafe.Slice((*C.size_t)(unsafe.Add(block, uintptr(n)*ptrSize)), n)
	data := unsafe.Slice((*byte)(unsafe.Add(block, uintptr(n)*(ptrSize+lenSize))), int(total-uintptr(n)*(ptrSize+lenSize)))
	off := 0
	for i, a := range args {
		av[i] = (*C.char)(unsafe.Pointer(&data[off]))
		al[i] = C.size_t(len(a))
		off += copy(data[off:], a)
		data[off] = 0
		off++
	}
	return block, &av[0], &al[0]
}

// nilReply marks a nil reply at the top level (inside aggregates it is nil).
type nilReply struct{}

// convertReply copies a reply tree out of C memory.
func convertReply(r *C.pool_reply_t) interface{} {
	switch r._type {
	case C.POOL_REPLY_STATUS:
		// The usual status replies without a copy: PING, SET and the like
		// then allocate nothing.
		if v := knownStatus(r); v != nil {
			return v
		}
		return replyString(r)
	case C.POOL_REPLY_STRING, C.POOL_REPLY_VERB:
		return replyString(r)
	case C.POOL_REPLY_ERROR:
		return RedisError(replyString(r))
	case C.POOL_REPLY_INTEGER:
		return int64(r.integer)
	case C.POOL_REPLY_NIL:
		return nilReply{}
	case C.POOL_REPLY_DOUBLE:
		return float64(r.dval)
	case C.POOL_REPLY_BOOL:
		return r.integer != 0
	case C.POOL_REPLY_BIGNUM:
		s := replyString(r)
		if b, ok := new(big.Int).SetString(s, 10); ok {
			return b
		}
		return s
	case C.POOL_REPLY_MAP:
		elems := replyElements(r)
		m := make(map[interface{}]interface{}, len(elems)/2)
		for i := 0; i+1 < len(elems); i += 2 {
			m[mapKey(convertElement(elems[i]))] = convertElement(elems[i+1])
		}
		return m
	case C.POOL_REPLY_ARRAY, C.POOL_REPLY_SET, C.POOL_REPLY_PUSH:
		elems := replyElements(r)
		out := make([]interface{}, len(elems))
		for i, e := range elems {
			out[i] = convertElement(e)
		}
		return out
	}
	return fmt.Errorf("redispool: unknown reply type %d", int(r._type))
}

// convertElement is convertReply for an element of an aggregate: nil is nil.
func convertElement(r *C.pool_reply_t) interface{} {
	v := convertReply(r)
	if _, ok := v.(nilReply); ok {
		return nil
	}
	return v
}

// mapKey makes v usable as a map key: aggregates (which are not comparable)
// become their fmt.Sprint text.
func mapKey(v interface{}) interface{} {
	switch v.(type) {
	case []interface{}, map[interface{}]interface{}:
		return fmt.Sprint(v)
	}
	return v
}

// Status replies common enough to be returned without allocating.
var (
	statusOK     interface{} = "OK"
	statusPONG   interface{} = "PONG"
	statusQUEUED interface{} = "QUEUED"
)

// knownStatus is the interned value of a common status reply, or nil.
func knownStatus(r *C.pool_reply_t) interface{} {
	if r.str == nil || r.len > 6 {
		return nil
	}
	switch string(unsafe.Slice((*byte)(unsafe.Pointer(r.str)), int(r.len))) {
	case "OK":
		return statusOK
	case "PONG":
		return statusPONG
	case "QUEUED":
		return statusQUEUED
	}
	return nil
}

func replyString(r *C.pool_reply_t) string {
	if r.str == nil || r.len == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(r.str)), int(r.len)))
}

func replyElements(r *C.pool_reply_t) []*C.pool_reply_t {
	if r.element == nil || r.elements == 0 {
		return nil
	}
	return unsafe.Slice((**C.pool_reply_t)(unsafe.Pointer(r.element)), int(r.elements))
}

// isRedirect tells the error replies the library's cluster command follows.
func isRedirect(err error) bool {
	e, ok := err.(RedisError)
	if !ok {
		return false
	}
	for _, p := range []string{"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN"} {
		if strings.HasPrefix(string(e), p) {
			return true
		}
	}
	return false
}
