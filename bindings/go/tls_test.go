package redispool

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsSetup returns the TLS server's address and the directory of its test
// certificates (tests/go_binding.rs starts the server and sets both); the
// test skips without them.
func tlsSetup(t *testing.T) (addr, certDir string) {
	addr = os.Getenv("REDISPOOL_TEST_TLS_ADDR")
	certDir = os.Getenv("REDISPOOL_TEST_TLS_CERTS")
	if addr == "" || certDir == "" {
		t.Skip("REDISPOOL_TEST_TLS_ADDR / REDISPOOL_TEST_TLS_CERTS not set (tests/go_binding.rs sets them)")
	}
	return addr, certDir
}

func TestTLSPool(t *testing.T) {
	addr, certs := tlsSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ca := filepath.Join(certs, "ca.pem")

	roundTrip := func(p *Pool) {
		t.Helper()
		cn, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cn.Do(ctx, "SET", "go-tls", "over tls"); err != nil {
			t.Fatal(err)
		}
		v, err := cn.Do(ctx, "GET", "go-tls")
		if err != nil || v != "over tls" {
			t.Fatalf("GET over TLS: %v, %v", v, err)
		}
		if err := p.Put(cn); err != nil {
			t.Fatal(err)
		}
	}

	// A rediss:// URL.
	p, err := New("rediss://" + addr + "/?tls_ca_file=" + url.QueryEscape(ca))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(p)
	p.Close()

	// Options.
	p, err = NewWithOptions(Options{Addr: addr, TLS: true, TLSCAFile: ca, TLSMinVersion: 12})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(p)
	p.Close()

	// An unknown CA: ErrTLS, naming the reason.
	p, err = NewWithOptions(Options{Addr: addr, TLS: true, TLSCAFile: filepath.Join(certs, "other-ca.pem"), DialerRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(ctx); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "unknown issuer") {
		t.Fatalf("Get with an unknown CA = %v, want ErrTLS naming the unknown issuer", err)
	}
	p.Close()

	// A key that does not match its certificate: refused by NewWithOptions.
	_, err = NewWithOptions(Options{Addr: addr, TLS: true, TLSCAFile: ca,
		TLSCertFile: filepath.Join(certs, "client.pem"), TLSKeyFile: filepath.Join(certs, "server.key")})
	if !errors.Is(err, ErrInvalidArg) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("NewWithOptions with a mismatched key = %v, want ErrInvalidArg", err)
	}
}

// TestTLSSubscribe: a subscriber on a TLS pool. A message far larger than a
// TLS record and a small one, a ping, and after CLIENT KILL a new TLS session
// that carries the subscription again (MsgResubscribed, then messages flow).
func TestTLSSubscribe(t *testing.T) {
	addr, certs := tlsSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := NewWithOptions(Options{Addr: addr, TLS: true, TLSCAFile: filepath.Join(certs, "ca.pem"), PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ps, err := p.Subscribe(ctx, "go:tls:news")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ps.Close() }()
	msgs := ps.Channel(ctx)
	if m := next(t, msgs); m.Kind != MsgSubscribe || m.Channel != "go:tls:news" {
		t.Fatalf("first: %+v", m)
	}
	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Put(cn) }()
	publish := func(msg string) {
		t.Helper()
		if n, err := cn.Do(ctx, "PUBLISH", "go:tls:news", msg); err != nil || n != int64(1) {
			t.Fatalf("PUBLISH: %v, %v", n, err)
		}
	}
	big := strings.Repeat("0123456789abcdef", 12_500) // 200 kB: 13 TLS records
	publish(big)
	publish("small")
	if m := next(t, msgs); m.Kind != MsgMessage || m.Payload != big {
		t.Fatalf("big message: kind %v, %d bytes", m.Kind, len(m.Payload))
	}
	if m := next(t, msgs); m.Kind != MsgMessage || m.Payload != "small" {
		t.Fatalf("small message: %+v", m)
	}
	if err := ps.Ping(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := cn.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n != int64(1) {
		t.Fatalf("CLIENT KILL: %v, %v", n, err)
	}
	if m := next(t, msgs); m.Kind != MsgResubscribed || m.Count != 1 {
		t.Fatalf("after the kill: %+v", m)
	}
	if m := next(t, msgs); m.Kind != MsgSubscribe {
		t.Fatalf("resubscribed: %+v", m)
	}
	publish("again")
	if m := next(t, msgs); m.Kind != MsgMessage || m.Payload != "again" {
		t.Fatalf("after the kill: %+v", m)
	}
}
