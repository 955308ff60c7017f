package redispool

/*
#cgo pkg-config: redispool
#include <redispool.h>
*/
import "C"

import (
	"context"
	"errors"
)

// Code is a status code of the C library (pool_status_t). Values never change.
type Code int32

// The status codes of the C library; see the POOL_ERR_* constants in redispool.h.
const (
	CodeOK         Code = C.POOL_OK              // success
	CodeClosed     Code = C.POOL_ERR_CLOSED      // the pool was closed
	CodeExhausted  Code = C.POOL_ERR_EXHAUSTED   // max_active_conns reached
	CodeTimeout    Code = C.POOL_ERR_TIMEOUT     // no conn within the pool timeout
	CodeDial       Code = C.POOL_ERR_DIAL        // dialing failed
	CodeInvalidArg Code = C.POOL_ERR_INVALID_ARG // bad option, foreign or stale conn, double put
	CodeWouldBlock Code = C.POOL_ERR_WOULD_BLOCK // TryGet found no idle conn
	CodeCanceled   Code = C.POOL_ERR_CANCELED    // the wait was canceled (the context is done)
	CodeBadConn    Code = C.POOL_ERR_BAD_CONN    // a conn in a bad state
	CodeHandshake  Code = C.POOL_ERR_HANDSHAKE   // Redis refused AUTH / SELECT / HELLO / SETNAME
	CodeIO         Code = C.POOL_ERR_IO          // a command failed mid-way (timeout, EOF, OS error)
	CodeProtocol   Code = C.POOL_ERR_PROTOCOL    // malformed RESP from the server
	CodeInternal   Code = C.POOL_ERR_INTERNAL    // a bug inside the library
	CodeCluster    Code = C.POOL_ERR_CLUSTER     // no node could give the slot map, or no master serves the slot
	CodeTLS        Code = C.POOL_ERR_TLS         // the TLS handshake of a new conn failed
)

// codes lists every status code with its C name and sentinel, in the
// header's order. A test parses redispool.h and checks that this table holds
// exactly the header's POOL_OK / POOL_ERR_* codes, so a new code cannot be
// forgotten here.
var codes = []struct {
	name     string
	code     Code
	sentinel *Error // nil for CodeOK
}{
	{"POOL_OK", CodeOK, nil},
	{"POOL_ERR_CLOSED", CodeClosed, ErrClosed},
	{"POOL_ERR_EXHAUSTED", CodeExhausted, ErrPoolExhausted},
	{"POOL_ERR_TIMEOUT", CodeTimeout, ErrPoolTimeout},
	{"POOL_ERR_DIAL", CodeDial, ErrDial},
	{"POOL_ERR_INVALID_ARG", CodeInvalidArg, ErrInvalidArg},
	{"POOL_ERR_WOULD_BLOCK", CodeWouldBlock, ErrWouldBlock},
	{"POOL_ERR_CANCELED", CodeCanceled, ErrCanceled},
	{"POOL_ERR_BAD_CONN", CodeBadConn, ErrBadConn},
	{"POOL_ERR_HANDSHAKE", CodeHandshake, ErrHandshake},
	{"POOL_ERR_IO", CodeIO, ErrIO},
	{"POOL_ERR_PROTOCOL", CodeProtocol, ErrProtocol},
	{"POOL_ERR_INTERNAL", CodeInternal, ErrInternal},
	{"POOL_ERR_CLUSTER", CodeCluster, ErrCluster},
	{"POOL_ERR_TLS", CodeTLS, ErrTLS},
}

// String returns the library's static description of the code, e.g.
// "redis: connection pool timeout".
func (c Code) String() string {
	return C.GoString(C.pool_status_str(C.pool_status_t(c)))
}

// Error is an error reported by the library: its status Code and the message
// the library gave (which, for a pool timeout, describes the pool's state).
//
// errors.Is(err, sentinel) compares codes, so an *Error with a detailed
// message matches the sentinel of its code (ErrPoolTimeout, ErrClosed, …). An
// *Error for a Get ended by its context wraps the context's error, so it also
// matches context.Canceled or context.DeadlineExceeded.
type Error struct {
	// Code is the library's status code.
	Code Code
	// Msg is the human-readable message.
	Msg string
	// err is the wrapped cause (the context's error), or nil.
	err error
}

// Error returns the message.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the wrapped cause: the context's error for a Get ended by
// its context, nil otherwise.
func (e *Error) Unwrap() error { return e.err }

// Is reports whether target is an *Error with the same Code, which makes
// every *Error match the sentinel of its code under errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Timeout reports whether the error is a timeout: a pool timeout, or a Get
// ended by its context's deadline. It makes *Error satisfy net.Error's
// Timeout method.
func (e *Error) Timeout() bool {
	return e.Code == CodeTimeout || errors.Is(e.err, context.DeadlineExceeded)
}

func sentinel(c Code) *Error { return &Error{Code: c, Msg: c.String()} }

// The sentinels to compare errors with, using errors.Is. Their messages are
// go-redis's where go-redis has the same error.
var (
	// ErrClosed is go-redis's ErrClosed, "redis: client is closed": the pool
	// was closed (also the result of a second Close).
	ErrClosed = sentinel(CodeClosed)
	// ErrPoolExhausted is go-redis's ErrPoolExhausted, "redis: connection pool
	// exhausted": max_active_conns conns exist already.
	ErrPoolExhausted = sentinel(CodeExhausted)
	// ErrPoolTimeout is go-redis's ErrPoolTimeout, "redis: connection pool
	// timeout": no conn within the pool timeout.
	ErrPoolTimeout = sentinel(CodeTimeout)
	// ErrDial means dialing a new conn failed; the message names the address
	// and the OS error.
	ErrDial = sentinel(CodeDial)
	// ErrInvalidArg means a bad option or URL, or a Conn that is not checked
	// out from this pool (a double Put, a Put after Remove, a foreign Conn).
	ErrInvalidArg = sentinel(CodeInvalidArg)
	// ErrWouldBlock is returned by TryGet when no idle conn is ready.
	ErrWouldBlock = sentinel(CodeWouldBlock)
	// ErrCanceled matches a Get ended by its context (which also matches
	// context.Canceled or context.DeadlineExceeded).
	ErrCanceled = sentinel(CodeCanceled)
	// ErrBadConn is go-redis's BadConnError: a command on a conn already
	// marked bad.
	ErrBadConn = sentinel(CodeBadConn)
	// ErrHandshake means Redis refused AUTH, SELECT, HELLO or CLIENT SETNAME
	// on a new conn; the message carries the server's text.
	ErrHandshake = sentinel(CodeHandshake)
	// ErrIO means a command failed mid-way (timeout, EOF, OS error); the conn
	// is then bad and Put removes it.
	ErrIO = sentinel(CodeIO)
	// ErrProtocol means the server sent malformed RESP; the conn is then bad.
	ErrProtocol = sentinel(CodeProtocol)
	// ErrInternal means a bug inside the library; the pool involved is closed.
	ErrInternal = sentinel(CodeInternal)
	// ErrCluster means a Redis Cluster cannot serve the request: no node
	// could give the slot map, or no master serves the slot.
	ErrCluster = sentinel(CodeCluster)
	// ErrTLS means the TLS handshake of a new conn failed: the server's
	// certificate was refused (unknown CA, wrong host name, expired), the
	// server refused ours, or it does not speak TLS. The message says which.
	ErrTLS = sentinel(CodeTLS)
)

// errorFrom turns a failed status and the pool_error_t the library filled
// into an *Error.
func errorFrom(st C.pool_status_t, cerr *C.pool_error_t) *Error {
	msg := ""
	if cerr != nil {
		msg = C.GoString(&cerr.message[0])
	}
	return errorWithMessage(st, msg)
}

// errorWithMessage is the *Error for a failed status and the library's
// message (the code's description when the message is empty).
func errorWithMessage(st C.pool_status_t, msg string) *Error {
	if msg == "" {
		msg = Code(st).String()
	}
	return &Error{Code: Code(st), Msg: msg}
}

// statusError is errorFrom for calls without a pool_error_t: the message is
// what the call was plus the code's description.
func statusError(st C.pool_status_t, what string) *Error {
	return &Error{Code: Code(st), Msg: "redispool: " + what + ": " + Code(st).String()}
}

// contextError is the error of a Get ended by its context: it matches
// ErrCanceled and, through Unwrap, ctxErr.
func contextError(ctxErr error) *Error {
	return &Error{Code: CodeCanceled, Msg: "redispool: get: " + ctxErr.Error(), err: ctxErr}
}

// RedisError is an error reply from Redis ("ERR unknown command …",
// "WRONGTYPE …"). The command itself went through and the conn stays good.
type RedisError string

// Error returns the server's text.
func (e RedisError) Error() string { return string(e) }

// Nil is the error Conn.Do returns for a nil reply (a missing key), as
// go-redis's redis.Nil. Compare with errors.Is(err, redispool.Nil) or ==.
const Nil = RedisError("redis: nil")
