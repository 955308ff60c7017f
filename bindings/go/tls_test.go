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
