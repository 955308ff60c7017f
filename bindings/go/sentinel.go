package redispool

/*
#cgo pkg-config: redispool
#include <stdlib.h>
#include <redispool.h>
*/
import "C"

import (
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
