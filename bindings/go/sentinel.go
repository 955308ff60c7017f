package redispool

/*
#cgo pkg-config: redispool
#include <stdlib.h>
#include <redispool.h>
*/
import "C"

import (
	"context"
	"runtime"
	"strconv"
	"time"
	"unsafe"
)

// SentinelOptions says where the sentinels are and which master they watch,
// for NewSentinelPool (pool_sentinel_options_t).
type SentinelOptions struct {
	// MasterName is the name the sentinels monitor the master under
	// ("sentinel monitor <name> …"). Required.
	MasterName string
	// SentinelAddrs are the sentinels, "host:port" or "[v6]:port", asked in
	// order (the first that answers is asked first next time). At least one.
	SentinelAddrs []string
	// SentinelUsername is the ACL user for AUTH on sentinel conns (needs
	// SentinelPassword); "" = the default user.
	SentinelUsername string
	// SentinelPassword is the sentinels' requirepass; "" = no AUTH. The
	// master's own password is Options.Password.
	SentinelPassword string
	// PollInterval is how often the pool asks the sentinels for the master
	// besides listening for their failover events. 0 = 1s; negative = only
	// listen.
	PollInterval time.Duration
	// SentinelTLS reaches the sentinels over TLS, with the TLS* settings of the
	// node Options (whose TLS field switches TLS to the master on its own).
	SentinelTLS bool
}

// NewSentinelPool makes a Pool for the master the sentinels report for
// sopts.MasterName, which follows failovers: new conns go to the address the
// sentinels give (each checked with ROLE to be a master), and when the master
// changes every conn to the old one is retired (idle ones closed at once,
// checked-out ones closed on Put) before a Get can reach the new one. node
// configures the master conns as for NewWithOptions; its Addr must be empty.
// The sentinels are first asked by the first Get, so this never waits.
// Invalid options give an error matching ErrInvalidArg that names the field.
// The Pool is an ordinary Pool; Close also stops its watchers.
func NewSentinelPool(sopts SentinelOptions, node Options) (*Pool, error) {
	c, err := node.toC()
	if err != nil {
		return nil, err
	}
	defer c.free()
	var so C.pool_sentinel_options_t
	C.pool_sentinel_options_init(&so)
	set := func(dst **C.char, field, s string) {
		if err == nil {
			*dst, err = c.cString(field, s)
		}
	}
	set(&so.master_name, "MasterName", sopts.MasterName)
	set(&so.sentinel_username, "SentinelUsername", sopts.SentinelUsername)
	set(&so.sentinel_password, "SentinelPassword", sopts.SentinelPassword)
	if err != nil {
		return nil, err
	}
	if n := len(sopts.SentinelAddrs); n > 0 {
		// The address array lives in C memory: C may not keep pointers to Go memory.
		addrs := (**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		if addrs == nil {
			return nil, &Error{Code: CodeInternal, Msg: "redispool: out of memory"}
		}
		defer C.free(unsafe.Pointer(addrs))
		arr := unsafe.Slice(addrs, n)
		for i, a := range sopts.SentinelAddrs {
			if a == "" {
				return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: SentinelAddrs[" + strconv.Itoa(i) + "] is empty"}
			}
			if arr[i], err = c.cString("SentinelAddrs", a); err != nil {
				return nil, err
			}
		}
		so.sentinel_addrs = addrs
		so.sentinel_addrs_len = C.size_t(n)
	}
	setMillis(&so.poll_interval_ms, sopts.PollInterval, 0)
	so.sentinel_tls = C.bool(sopts.SentinelTLS)

	var p *C.pool_t
	var cerr C.pool_error_t
	if st := C.pool_sentinel_new(&so, &c.opts, &p, &cerr); st != C.POOL_OK {
		return nil, errorFrom(st, &cerr)
	}
	return newPool(p, poolTimeoutFromMillis(int64(c.opts.pool_timeout_ms)),
		time.Duration(c.opts.overtake_window_ms)*time.Millisecond), nil
}

// SentinelMasterAddr returns the address ("ip:port") of the master a pool
// from NewSentinelPool dials now. When none is known yet it asks the
// sentinels first, waiting at most the dial timeout: an error matching
// ErrDial naming each sentinel's failure when none answers. An error matching
// ErrInvalidArg for a pool that is not a sentinel pool.
func (p *Pool) SentinelMasterAddr() (string, error) {
	var buf [C.POOL_SENTINEL_ADDR_LEN]C.char
	var cerr C.pool_error_t
	st := C.pool_sentinel_master_addr(p.p, &buf[0], C.size_t(len(buf)), &cerr)
	runtime.KeepAlive(p)
	if st != C.POOL_OK {
		return "", errorFrom(st, &cerr)
	}
	return C.GoString(&buf[0]), nil
}

// SentinelStats holds a sentinel pool's failover figures
// (pool_sentinel_stats_t). The counters only increase; InFailover is a gauge.
type SentinelStats struct {
	Failovers     uint64        // failovers seen (the pool stopped handing out conns to its master)
	FailoverWaits uint64        // dials that waited for a failover to end
	Switches      uint64        // failovers that ended on another master
	ConnsRetired  uint64        // conns closed because a failover retired them (also in Stats.StaleConns)
	LongestPause  time.Duration // the longest time the pool handed out no conn for a failover (ms precision)
	InFailover    bool          // a failover is under way (gets wait)
}

// SentinelStats returns the failover figures of a pool from
// NewSentinelPool; it never waits. An error matching ErrInvalidArg for a pool
// that is not a sentinel pool.
func (p *Pool) SentinelStats() (SentinelStats, error) {
	var s C.pool_sentinel_stats_t
	s.struct_size = C.sizeof_pool_sentinel_stats_t
	var cerr C.pool_error_t
	st := C.pool_sentinel_stats(p.p, &s, &cerr)
	runtime.KeepAlive(p)
	if st != C.POOL_OK {
		return SentinelStats{}, errorFrom(st, &cerr)
	}
	return SentinelStats{
		Failovers:     uint64(s.failovers),
		FailoverWaits: uint64(s.failover_waits),
		Switches:      uint64(s.switches),
		ConnsRetired:  uint64(s.conns_retired),
		LongestPause:  time.Duration(s.longest_pause_ms) * time.Millisecond,
		InFailover:    s.in_failover != 0,
	}, nil
}

// WaitReplicas runs WAIT numReplicas timeout on cn (as
// pool_conn_wait_replicas): it waits until the writes sent on cn so far
// reached at least numReplicas replicas, or timeout (at least 1ms) passed,
// and returns how many replicas have them. For a write that must survive a
// failover: a write the master acknowledged but no replica received is lost
// when a replica is promoted.
//
// Fewer replicas in time: the count that did, with an error matching
// ErrPoolTimeout (the writes stay applied on the master; a failover may lose
// them). A server that refuses WAIT (a replica): ErrIO, and the conn stays
// good. ErrInvalidArg for numReplicas < 0 or timeout < 1ms. The reply is
// awaited timeout plus one second. As Do, the reply is waited for in Go's
// netpoller (no OS thread is held); when ctx is done first, ctx's error is
// returned at once (an error matching ErrCanceled and ctx.Err()) and the conn
// is left mid-command: Put removes it.
func (cn *Conn) WaitReplicas(ctx context.Context, numReplicas int, timeout time.Duration) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cs := cn.state()
	if cs == nil {
		var acked C.int
		var cerr C.pool_error_t
		st := C.pool_conn_wait_replicas(cn.h, C.int(numReplicas), C.int64_t(ceilMillis(timeout)), &acked, &cerr)
		if st != C.POOL_OK {
			return int(acked), errorFrom(st, &cerr)
		}
		return int(acked), nil
	}
	if numReplicas < 0 {
		return 0, &Error{Code: CodeInvalidArg, Msg: "redispool: WaitReplicas: numReplicas " + strconv.Itoa(numReplicas) + " (must be >= 0)"}
	}
	ms := ceilMillis(timeout)
	if ms < 1 {
		return 0, &Error{Code: CodeInvalidArg, Msg: "redispool: WaitReplicas: timeout " + timeout.String() + " (must be >= 1ms)"}
	}
	v, err := cs.doCtx(ctx, cn.h, "WaitReplicas", ms+1000,
		[]string{"WAIT", strconv.Itoa(numReplicas), strconv.FormatInt(ms, 10)})
	if err != nil {
		if re, ok := err.(RedisError); ok {
			// As the library: a refusal is an I/O error; the conn stays good.
			return 0, &Error{Code: CodeIO, Msg: "redis: WAIT refused: " + string(re)}
		}
		return 0, err
	}
	k, ok := v.(int64)
	if !ok {
		return 0, &Error{Code: CodeProtocol, Msg: "redis: WAIT: unexpected reply"}
	}
	if k < 0 {
		k = 0
	}
	if k < int64(numReplicas) {
		return int(k), &Error{Code: CodeTimeout, Msg: "redis: WAIT: the writes reached " + strconv.FormatInt(k, 10) +
			" of the " + strconv.Itoa(numReplicas) + " replicas asked for within " + strconv.FormatInt(ms, 10) +
			" ms (they are applied on the master, but a failover may lose them)"}
	}
	return int(k), nil
}
