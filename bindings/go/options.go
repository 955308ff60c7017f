package redispool

/*
#cgo pkg-config: redispool
#include <stdlib.h>
#include <redispool.h>
*/
import "C"

import (
	"net/url"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Options configures a pool made by NewWithOptions. The zero value of every
// field keeps the library's default (see pool_options_t in redispool.h); a
// negative duration disables that timeout or feature, as in go-redis.
type Options struct {
	// Addr is "host:port", "[v6]:port", or a unix socket path ("/…" or
	// "unix:/…"). Required.
	Addr string
	// Username is the Redis ACL user for AUTH (needs Password); "" = default user.
	Username string
	// Password makes every new conn authenticate; "" = no AUTH.
	Password string
	// ClientName is sent with CLIENT SETNAME on every new conn; "" = none.
	ClientName string
	// DB is selected with SELECT on every new conn when non-zero.
	DB int
	// Protocol is 2 (default) or 3 (every new conn sends HELLO 3, RESP3 replies).
	Protocol int

	// PoolFIFO makes the idle list FIFO instead of LIFO.
	PoolFIFO bool
	// PoolSize is the number of turns: conns checked out plus dials in
	// flight. 0 = 10 per CPU.
	PoolSize int
	// MinIdleConns idle conns are kept ready by background dials.
	MinIdleConns int
	// MaxIdleConns bounds the idle list; a surplus conn is closed on Put. 0 = unlimited.
	MaxIdleConns int
	// MaxActiveConns bounds the number of conns; reaching it makes Get fail at
	// once with ErrPoolExhausted. 0 = unlimited.
	MaxActiveConns int
	// MaxConcurrentDials bounds the dials running at once. 0 = PoolSize.
	MaxConcurrentDials int

	// DialTimeout bounds one dial attempt. 0 = 5s; negative = none.
	DialTimeout time.Duration
	// DialerRetries is the number of attempts per dial. 0 = 5.
	DialerRetries int
	// DialerRetryBackoff is the pause between dial attempts. 0 = 100ms; negative = none.
	DialerRetryBackoff time.Duration
	// PoolTimeout bounds a Get's wait for a conn. 0 = 6s; negative = wait until
	// the context is done.
	PoolTimeout time.Duration
	// ReadTimeout bounds one reply read by Conn.Do. 0 = 5s; negative = none.
	ReadTimeout time.Duration
	// WriteTimeout bounds one command write by Conn.Do. 0 = 5s; negative = none.
	WriteTimeout time.Duration
	// ConnMaxIdleTime makes idle conns older than this stale. 0 = 30 min;
	// negative = never.
	ConnMaxIdleTime time.Duration
	// ConnMaxLifetime makes conns older than this stale. 0 or negative = never.
	ConnMaxLifetime time.Duration
	// ConnMaxLifetimeJitter spreads lifetime expiries over ± this much.
	ConnMaxLifetimeJitter time.Duration
	// ReaperInterval runs a background reaper this often. 0 or negative = off.
	ReaperInterval time.Duration
	// PingAfterIdle makes Get PING a conn idle at least this long before
	// handing it out. 0 or negative = never.
	PingAfterIdle time.Duration
	// LeakDetectionThreshold counts conns checked out longer than this in
	// Stats.LeakSuspects and Stats.LateReturns. 0 or negative = off.
	LeakDetectionThreshold time.Duration
	// HealthCheckBypass skips Get's socket peek for a conn given back less than
	// this long ago. 0 or negative = off (default): Get peeks a conn unless the
	// pool's health sweep vouches for it (see docs/performance.md).
	HealthCheckBypass time.Duration
	// OvertakeWindow lets a Get take a free conn ahead of queued Gets while the
	// oldest has waited less than this (no context switch; Go's sync.Mutex does
	// the same for 1ms, but a hand-off between threads costs far more than one
	// between goroutines). 0 = the default, 5ms; negative = strict first come,
	// first served.
	OvertakeWindow time.Duration
	// MaxReplyBytes caps the string data of one reply (bytes, the whole reply
	// counted); a reply past it fails with CodeProtocol and the conn is closed.
	// 0 = the default, 512 MiB.
	MaxReplyBytes int64
	// MaxReplyElements caps the elements of one reply, nested ones included.
	// 0 = the default, 16777216.
	MaxReplyElements int64

	// TLS makes every conn speak TLS (a rediss:// URL sets it). The TLS*
	// files are read, and checked, by NewWithOptions. See docs/tls.md.
	TLS bool
	// TLSCAFile is a PEM file of the CAs that sign the server's certificate;
	// "" (and no TLSCADir) = the system trust store.
	TLSCAFile string `c:"tls_ca_file"`
	// TLSCADir is a directory of PEM CA certificates.
	TLSCADir string `c:"tls_ca_dir"`
	// TLSCertFile and TLSKeyFile are the client certificate and its key
	// (PEM) for mutual TLS.
	TLSCertFile string `c:"tls_cert_file"`
	TLSKeyFile  string `c:"tls_key_file"`
	// TLSServerName is the name the server's certificate must be valid for
	// (and the SNI); "" = the host of Addr.
	TLSServerName string `c:"tls_server_name"`
	// TLSMinVersion is 12 (TLS 1.2, default) or 13.
	TLSMinVersion int `c:"tls_min_version"`
	// TLSInsecureSkipVerify accepts any server certificate, unverified:
	// anyone on the path can pose as the server. Tests only.
	TLSInsecureSkipVerify bool `c:"tls_insecure_skip_verify"`
}

// ceilMillis converts a positive duration to whole milliseconds, rounding up
// so that a short duration never becomes 0 (which means "none" or "no wait").
func ceilMillis(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// setMillis stores d in *dst: untouched (library default) for 0, `disabled`
// for a negative d.
func setMillis(dst *C.int64_t, d time.Duration, disabled int64) {
	switch {
	case d > 0:
		*dst = C.int64_t(ceilMillis(d))
	case d < 0:
		*dst = C.int64_t(disabled)
	}
}

// cOptions is a pool_options_t with the C strings it points to.
type cOptions struct {
	opts    C.pool_options_t
	strings []*C.char
}

func (c *cOptions) free() {
	for _, s := range c.strings {
		C.free(unsafe.Pointer(s))
	}
	c.strings = nil
}

// cString copies s to C memory owned by c; empty strings stay NULL.
func (c *cOptions) cString(field, s string) (*C.char, error) {
	if s == "" {
		return nil, nil
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: " + field + " contains a NUL byte"}
	}
	p := C.CString(s)
	c.strings = append(c.strings, p)
	return p, nil
}

// toC builds the pool_options_t; the caller frees the result.
func (o *Options) toC() (*cOptions, error) {
	c := &cOptions{}
	C.pool_options_init(&c.opts)
	ok := false
	defer func() {
		if !ok {
			c.free()
		}
	}()
	var err error
	set := func(dst **C.char, field, s string) {
		if err == nil {
			*dst, err = c.cString(field, s)
		}
	}
	set(&c.opts.addr, "Addr", o.Addr)
	set(&c.opts.username, "Username", o.Username)
	set(&c.opts.password, "Password", o.Password)
	set(&c.opts.client_name, "ClientName", o.ClientName)
	// The TLS settings also serve SentinelOptions.SentinelTLS, with TLS off here.
	c.opts.tls = C.bool(o.TLS)
	set(&c.opts.tls_ca_file, "TLSCAFile", o.TLSCAFile)
	set(&c.opts.tls_ca_dir, "TLSCADir", o.TLSCADir)
	set(&c.opts.tls_cert_file, "TLSCertFile", o.TLSCertFile)
	set(&c.opts.tls_key_file, "TLSKeyFile", o.TLSKeyFile)
	set(&c.opts.tls_server_name, "TLSServerName", o.TLSServerName)
	c.opts.tls_min_version = C.int32_t(o.TLSMinVersion)
	c.opts.tls_insecure_skip_verify = C.bool(o.TLSInsecureSkipVerify)
	if err != nil {
		return nil, err
	}
	ints := []struct {
		dst *C.int32_t
		v   int
	}{
		{&c.opts.db, o.DB},
		{&c.opts.protocol, o.Protocol},
		{&c.opts.pool_size, o.PoolSize},
		{&c.opts.min_idle_conns, o.MinIdleConns},
		{&c.opts.max_idle_conns, o.MaxIdleConns},
		{&c.opts.max_active_conns, o.MaxActiveConns},
		{&c.opts.max_concurrent_dials, o.MaxConcurrentDials},
		{&c.opts.dialer_retries, o.DialerRetries},
	}
	for _, f := range ints {
		if f.v != 0 {
			if int(int32(f.v)) != f.v {
				return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: option out of range: " + strconv.Itoa(f.v)}
			}
			*f.dst = C.int32_t(f.v)
		}
	}
	c.opts.pool_fifo = C.bool(o.PoolFIFO)
	setMillis(&c.opts.dial_timeout_ms, o.DialTimeout, 0)
	setMillis(&c.opts.dialer_retry_backoff_ms, o.DialerRetryBackoff, 0)
	setMillis(&c.opts.pool_timeout_ms, o.PoolTimeout, -1)
	setMillis(&c.opts.read_timeout_ms, o.ReadTimeout, -1)
	setMillis(&c.opts.write_timeout_ms, o.WriteTimeout, -1)
	setMillis(&c.opts.conn_max_idle_time_ms, o.ConnMaxIdleTime, -1)
	setMillis(&c.opts.conn_max_lifetime_ms, o.ConnMaxLifetime, 0)
	setMillis(&c.opts.conn_max_lifetime_jitter_ms, o.ConnMaxLifetimeJitter, 0)
	setMillis(&c.opts.reaper_interval_ms, o.ReaperInterval, 0)
	setMillis(&c.opts.ping_after_idle_ms, o.PingAfterIdle, 0)
	setMillis(&c.opts.leak_detection_threshold_ms, o.LeakDetectionThreshold, 0)
	setMillis(&c.opts.health_check_bypass_ms, o.HealthCheckBypass, 0)
	setMillis(&c.opts.overtake_window_ms, o.OvertakeWindow, 0)
	c.opts.max_reply_bytes = C.int64_t(o.MaxReplyBytes)
	c.opts.max_reply_elements = C.int64_t(o.MaxReplyElements)
	ok = true
	return c, nil
}

// poolTimeout describes a pool's own pool timeout, as far as the binding knows it.
type poolTimeout struct {
	known   bool
	forever bool          // -1: wait forever
	d       time.Duration // >= 0 when known and not forever
}

func poolTimeoutFromMillis(ms int64) poolTimeout {
	if ms < 0 {
		return poolTimeout{known: true, forever: true}
	}
	return poolTimeout{known: true, d: time.Duration(ms) * time.Millisecond}
}

// defaultPoolTimeout is pool_options_init's pool_timeout_ms.
func defaultPoolTimeout() poolTimeout {
	var o C.pool_options_t
	C.pool_options_init(&o)
	return poolTimeoutFromMillis(int64(o.pool_timeout_ms))
}

// urlPoolTimeout reads the pool_timeout option of a go-redis URL that the
// library accepted, with the library's rules (integer seconds or a Go
// duration, rounded up to milliseconds; <= 0 = wait forever). Anything it
// cannot read for sure gives an unknown timeout, and Get then relies on the
// context alone to end its wait early, which is equally correct.
func urlPoolTimeout(raw string) poolTimeout {
	u, err := url.Parse(raw)
	if err != nil {
		return poolTimeout{}
	}
	vals, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return poolTimeout{}
	}
	v, ok := vals["pool_timeout"]
	switch {
	case !ok:
		return defaultPoolTimeout()
	case len(v) != 1:
		return poolTimeout{}
	}
	if secs, err := strconv.ParseInt(v[0], 10, 64); err == nil {
		switch {
		case secs <= 0:
			return poolTimeout{known: true, forever: true}
		case secs > int64(time.Duration(1<<62)/time.Second):
			return poolTimeout{}
		}
		return poolTimeout{known: true, d: time.Duration(secs) * time.Second}
	}
	d, err := time.ParseDuration(v[0])
	switch {
	case err != nil:
		return poolTimeout{}
	case d <= 0:
		return poolTimeout{known: true, forever: true}
	}
	return poolTimeoutFromMillis(ceilMillis(d))
}

// urlOvertakeWindow reads the overtake_window option of a go-redis URL that
// the library accepted (integer seconds or a Go duration; 0 = strict arrival
// order), or pool_options_init's default when it is absent or unreadable.
func urlOvertakeWindow(raw string) time.Duration {
	var o C.pool_options_t
	C.pool_options_init(&o)
	def := time.Duration(o.overtake_window_ms) * time.Millisecond
	u, err := url.Parse(raw)
	if err != nil {
		return def
	}
	vals, err := url.ParseQuery(u.RawQuery)
	if err != nil || len(vals["overtake_window"]) != 1 {
		return def
	}
	v := vals["overtake_window"][0]
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 && secs < 1<<30 {
		return time.Duration(secs) * time.Second
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d
	}
	return def
}
