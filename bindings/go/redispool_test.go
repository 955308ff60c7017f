package redispool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisAddr is the server every test talks to: REDISPOOL_TEST_REDIS_ADDR, or a
// redis-server TestMain starts on a free port (never 6379).
var redisAddr string

func TestMain(m *testing.M) {
	redisAddr = os.Getenv("REDISPOOL_TEST_REDIS_ADDR")
	stop := func() {}
	if redisAddr == "" {
		var err error
		if redisAddr, stop, err = startRedis(); err != nil {
			fmt.Fprintln(os.Stderr, "redispool tests:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// startRedis starts a persistence-free redis-server on a free loopback port
// and waits until it answers PING; stop kills it. Another process may take the
// port between the probe and redis-server's bind, so it tries a few ports.
func startRedis() (addr string, stop func(), err error) {
	program := os.Getenv("REDIS_SERVER")
	if program == "" {
		program = "redis-server"
	}
	logFile, err := os.CreateTemp("", "redispool-go-redis-*.log")
	if err != nil {
		return "", nil, err
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()

	var failures []string
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(program, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no")
		// The server dies with us even if the tests crash.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			return "", nil, fmt.Errorf("cannot start %s (or set REDISPOOL_TEST_REDIS_ADDR to a running server): %v", program, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		ready := false
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			if ping(addr) == nil {
				ready = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ready {
			return addr, stop, nil
		}
		stop()
		log, _ := os.ReadFile(logFile.Name())
		failures = append(failures, fmt.Sprintf("port %d: %s", port, strings.TrimSpace(string(log))))
	}
	return "", nil, fmt.Errorf("redis-server did not start: %s", strings.Join(failures, "; "))
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// newTestPool makes a pool on the test server with the given URL options,
// closed when the test ends.
func newTestPool(t *testing.T, query string) *Pool {
	t.Helper()
	p, err := New("redis://" + redisAddr + "/?" + query)
	if err != nil {
		t.Fatalf("New(%q): %v", query, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func mustGet(t *testing.T, p *Pool) *Conn {
	t.Helper()
	cn, err := p.Get(context.Background())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return cn
}

func do(t *testing.T, cn *Conn, args ...string) interface{} {
	t.Helper()
	v, err := cn.Do(context.Background(), args...)
	if err != nil {
		t.Fatalf("Do%q: %v", args, err)
	}
	return v
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// osThreads is this process's OS thread count ("Threads:" in /proc/self/status).
func osThreads(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("read /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest := strings.TrimPrefix(line, "Threads:"); rest != line {
			n, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil {
				t.Fatalf("bad Threads line %q", line)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// A generous bound for "returns promptly" on a loaded 2-core machine; far below
// the 30 s pool timeouts the waiting tests use.
const prompt = 5 * time.Second

func TestGetDoPut(t *testing.T) {
	p := newTestPool(t, "pool_size=4&pool_timeout=5s")
	key := "redispool-go:" + t.Name()
	cn := mustGet(t, p)
	if cn.ID() == 0 || cn.FD() < 0 {
		t.Fatalf("ID %d, FD %d for a checked-out conn", cn.ID(), cn.FD())
	}
	do(t, cn, "DEL", key, key+":list", key+":n")
	if v := do(t, cn, "SET", key, "va\x00lue"); v != "OK" {
		t.Fatalf("SET = %#v", v)
	}
	if v := do(t, cn, "GET", key); v != "va\x00lue" {
		t.Fatalf("GET = %#v", v)
	}
	if v := do(t, cn, "INCRBY", key+":n", "41"); v != int64(41) {
		t.Fatalf("INCRBY = %#v", v)
	}
	if v, err := cn.Do(context.Background(), "GET", key+":missing"); v != nil || err != Nil || !errors.Is(err, Nil) {
		t.Fatalf("GET missing = %#v, %v; want nil, Nil", v, err)
	}
	v, err := cn.Do(context.Background(), "INCR", key)
	var rerr RedisError
	if v != nil || !errors.As(err, &rerr) || !strings.HasPrefix(string(rerr), "ERR") {
		t.Fatalf("INCR on a string = %#v, %v; want a RedisError", v, err)
	}
	do(t, cn, "RPUSH", key+":list", "a", "", "c")
	got := fmt.Sprintf("%#v", do(t, cn, "LRANGE", key+":list", "0", "-1"))
	if want := fmt.Sprintf("%#v", []interface{}{"a", "", "c"}); got != want {
		t.Fatalf("LRANGE = %s, want %s", got, want)
	}
	got = fmt.Sprintf("%#v", do(t, cn, "MGET", key, key+":missing"))
	if want := fmt.Sprintf("%#v", []interface{}{"va\x00lue", nil}); got != want {
		t.Fatalf("MGET = %s, want %s", got, want)
	}
	id := cn.ID()
	if err := p.Put(cn); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if p.Len() != 1 || p.IdleLen() != 1 {
		t.Fatalf("Len %d IdleLen %d after Put, want 1 1", p.Len(), p.IdleLen())
	}

	// The idle conn is handed out again: a hit.
	cn = mustGet(t, p)
	if cn.ID() != id {
		t.Fatalf("second Get: conn %d, want the idle conn %d", cn.ID(), id)
	}
	if st := p.Stats(); st.InUseConns != 1 || st.IdleConns != 0 {
		t.Fatalf("Stats while checked out = %+v, want InUseConns 1, IdleConns 0", st)
	}
	if err := p.Put(cn); err != nil {
		t.Fatalf("Put: %v", err)
	}
	st := p.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.TotalConns != 1 || st.IdleConns != 1 || st.Dials != 1 || st.InUseConns != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if Version() == "" {
		t.Fatal("empty Version")
	}
}

func TestRESP3(t *testing.T) {
	p := newTestPool(t, "protocol=3")
	key := "redispool-go:" + t.Name()
	cn := mustGet(t, p)
	defer p.Put(cn)
	do(t, cn, "DEL", key, key+":z")
	do(t, cn, "HSET", key, "f1", "v1", "f2", "v2")
	m, ok := do(t, cn, "HGETALL", key).(map[interface{}]interface{})
	if !ok || len(m) != 2 || m["f1"] != "v1" || m["f2"] != "v2" {
		t.Fatalf("HGETALL = %#v", m)
	}
	do(t, cn, "ZADD", key+":z", "1.5", "m")
	if v := do(t, cn, "ZSCORE", key+":z", "m"); v != 1.5 {
		t.Fatalf("ZSCORE = %#v, want float64 1.5", v)
	}
}

func TestPoolTimeout(t *testing.T) {
	p := newTestPool(t, "pool_size=1&pool_timeout=100ms")
	held := mustGet(t, p)
	defer p.Put(held)

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"background", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }},
		{"cancelable", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
		// A deadline later than the pool timeout: the pool timeout wins.
		{"later deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Minute)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			cn, err := p.Get(ctx)
			elapsed := time.Since(start)
			if cn != nil || !errors.Is(err, ErrPoolTimeout) {
				t.Fatalf("Get = %v, %v; want ErrPoolTimeout", cn, err)
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) {
				t.Fatalf("%v matches another error too", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeTimeout || !strings.Contains(e.Msg, "pool timeout") || !e.Timeout() {
				t.Fatalf("error %#v", err)
			}
			if elapsed < 90*time.Millisecond || elapsed > prompt {
				t.Fatalf("timed out after %v, want about 100ms", elapsed)
			}
		})
	}
	if st := p.Stats(); st.Timeouts != 3 {
		t.Fatalf("Stats.Timeouts = %d, want 3", st.Timeouts)
	}
}

func TestExhausted(t *testing.T) {
	p := newTestPool(t, "pool_size=4&max_active_conns=1&pool_timeout=30s")
	held := mustGet(t, p)
	defer p.Put(held)
	start := time.Now()
	_, err := p.Get(context.Background())
	if !errors.Is(err, ErrPoolExhausted) || errors.Is(err, ErrPoolTimeout) {
		t.Fatalf("Get = %v, want ErrPoolExhausted", err)
	}
	if err.Error() == "" || time.Since(start) > prompt {
		t.Fatalf("Get took %v (%q), want an immediate failure", time.Since(start), err)
	}
}

func TestClosed(t *testing.T) {
	p := newTestPool(t, "pool_size=1&pool_timeout=30s")
	held := mustGet(t, p)

	// A Get waiting when the pool closes is woken with ErrClosed.
	waiter := make(chan error, 1)
	go func() {
		_, err := p.Get(context.Background())
		waiter <- err
	}()
	waitFor(t, prompt, "the Get to queue", func() bool { return p.Stats().Waiting == 1 })

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-waiter:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiting Get = %v, want ErrClosed", err)
		}
	case <-time.After(prompt):
		t.Fatal("waiting Get not woken by Close")
	}
	if _, err := p.Get(context.Background()); !errors.Is(err, ErrClosed) || err.Error() != "redis: client is closed" {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if _, err := p.TryGet(); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryGet after Close = %v, want ErrClosed", err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	// A conn checked out before Close can still be given back (it is closed).
	if err := p.Put(held); err != nil {
		t.Fatalf("Put after Close: %v", err)
	}
	if n := p.Len(); n != 0 {
		t.Fatalf("Len after Close = %d", n)
	}
}

// TestContextDeadline: a ctx deadline shorter than the pool timeout ends the
// wait at the deadline, with the error go-redis gives then.
func TestContextDeadline(t *testing.T) {
	check := func(t *testing.T, p *Pool) {
		held := mustGet(t, p)
		defer p.Put(held)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		cn, err := p.Get(ctx)
		elapsed := time.Since(start)
		if cn != nil || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrCanceled) {
			t.Fatalf("Get = %v, %v; want context.DeadlineExceeded", cn, err)
		}
		if errors.Is(err, ErrPoolTimeout) || errors.Is(err, context.Canceled) {
			t.Fatalf("%v matches another error too", err)
		}
		var e *Error
		if !errors.As(err, &e) || !e.Timeout() {
			t.Fatalf("Timeout() false for %v", err)
		}
		if elapsed < 250*time.Millisecond || elapsed > prompt {
			t.Fatalf("Get returned after %v, want about 300ms", elapsed)
		}
		t.Logf("deadline 300ms: Get returned after %v", elapsed.Round(time.Millisecond))
	}
	// The binding knows the pool timeout and passes the shorter deadline to the library.
	t.Run("url", func(t *testing.T) { check(t, newTestPool(t, "pool_size=1&pool_timeout=30s")) })
	t.Run("options", func(t *testing.T) {
		p, err := NewWithOptions(Options{Addr: redisAddr, PoolSize: 1, PoolTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		check(t, p)
	})
	// Without a known pool timeout only the cancel token ends the wait.
	t.Run("token only", func(t *testing.T) {
		p := newTestPool(t, "pool_size=1&pool_timeout=30s")
		p.timeout = poolTimeout{}
		check(t, p)
	})

	t.Run("already expired", func(t *testing.T) {
		p := newTestPool(t, "pool_size=1")
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if _, err := p.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get = %v, want context.DeadlineExceeded", err)
		}
		if st := p.Stats(); st.Misses+st.Hits+st.Timeouts != 0 {
			t.Fatalf("a done context reached the pool: %+v", st)
		}
	})
}

func TestCancel(t *testing.T) {
	p := newTestPool(t, "pool_size=1&pool_timeout=30s")
	held := mustGet(t, p)

	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		_, err := p.Get(ctx)
		result <- err
	}()
	waitFor(t, prompt, "the Get to queue", func() bool { return p.Stats().Waiting == 1 })
	start := time.Now()
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) || errors.Is(err, ErrPoolTimeout) {
			t.Fatalf("canceled Get = %v, want context.Canceled", err)
		}
		t.Logf("canceled Get returned %v after cancel()", time.Since(start).Round(time.Microsecond))
	case <-time.After(prompt):
		t.Fatal("canceled Get did not return")
	}
	if st := p.Stats(); st.Waiting != 0 || st.PendingRequests != 0 {
		t.Fatalf("a canceled Get left state behind: %+v", st)
	}

	// An already canceled context never reaches the pool.
	if _, err := p.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a canceled ctx = %v", err)
	}
	// No turn was leaked: the held conn goes back and is handed out again at once.
	if err := p.Put(held); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), prompt)
	defer cancel2()
	cn, err := p.Get(ctx2)
	if err != nil {
		t.Fatalf("Get after the cancel: %v", err)
	}
	p.Put(cn)
}

func TestMisuse(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	other := newTestPool(t, "pool_size=2")
	cn := mustGet(t, p)
	if err := other.Put(cn); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("Put into another pool = %v, want ErrInvalidArg", err)
	}
	if err := p.Put(cn); err != nil {
		t.Fatal(err)
	}
	if err := p.Put(cn); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("double Put = %v, want ErrInvalidArg", err)
	}
	if err := p.Remove(cn, "late"); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("Remove after Put = %v, want ErrInvalidArg", err)
	}
	if _, err := cn.Do(context.Background(), "PING"); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("Do after Put = %v, want ErrInvalidArg", err)
	}
	if cn.ID() != 0 || cn.FD() != -1 {
		t.Fatalf("ID %d FD %d after Put, want 0 -1", cn.ID(), cn.FD())
	}
	if err := p.Put(nil); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("Put(nil) = %v", err)
	}
	if _, err := New("rediss://" + redisAddr + "?tls_ca_file=/nonexistent/ca.pem"); !errors.Is(err, ErrInvalidArg) || !strings.Contains(err.Error(), "tls_ca_file") {
		t.Fatalf("New(rediss:// with a missing CA file) = %v, want ErrInvalidArg naming tls_ca_file", err)
	}
	if _, err := New("redis://" + redisAddr + "?pool_size=x"); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("New(bad pool_size) = %v, want ErrInvalidArg", err)
	}
	if _, err := NewWithOptions(Options{Addr: redisAddr, PoolSize: -1}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("NewWithOptions(PoolSize -1) = %v, want ErrInvalidArg", err)
	}
	if _, err := NewWithOptions(Options{}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("NewWithOptions without Addr = %v, want ErrInvalidArg", err)
	}
	if _, err := NewWithOptions(Options{Addr: redisAddr, MaxReplyElements: -1}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("NewWithOptions(MaxReplyElements -1) = %v, want ErrInvalidArg", err)
	}
}

func TestMaxReplyBytes(t *testing.T) {
	p, err := NewWithOptions(Options{Addr: redisAddr, PoolSize: 1, MaxReplyBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cn.Do(ctx, "SET", "go-test:maxreply", strings.Repeat("x", 17)); err != nil {
		t.Fatal(err)
	}
	if v, err := cn.Do(ctx, "GETRANGE", "go-test:maxreply", "0", "15"); err != nil || v != strings.Repeat("x", 16) {
		t.Fatalf("GETRANGE of 16 bytes = %v, %v", v, err)
	}
	if _, err := cn.Do(ctx, "GET", "go-test:maxreply"); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "max_reply_bytes") {
		t.Fatalf("GET of 17 bytes = %v, want ErrProtocol naming max_reply_bytes", err)
	}
	p.Put(cn)
	if n := p.Len(); n != 0 {
		t.Fatalf("Len after putting a bad conn = %d, want 0", n)
	}
}

// OvertakeWindow: with it, a Get right after a Put takes the conn ahead of a Get that
// waits in the queue (it tries the pool while the oldest waiter has waited less than the
// window, racing the queue's reactor for the conn); without it (negative: strict order),
// never (it queues behind the waiter, and the reactor hands the conn to the waiter).
// GOMAXPROCS 1 for the test: the Get right after the Put then runs before the reactor
// can (it needs the one P), as it mostly does on a busy server; with two Ps the reactor
// often wins the race, and under the race detector always.
func TestOvertakeWindow(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, window := range []time.Duration{-1, time.Minute} {
		p, err := NewWithOptions(Options{Addr: redisAddr, PoolSize: 1, OvertakeWindow: window,
			HealthCheckBypass: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		held, err := p.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		overtakes := 0
		for round := 0; round < 10; round++ {
			release := make(chan struct{})
			done := make(chan error)
			go func() {
				cn, err := p.Get(context.Background())
				if err == nil {
					<-release
					err = p.Put(cn)
				}
				done <- err
			}()
			for i := 0; p.Stats().Waiting != 1; i++ {
				if i > 5000 {
					t.Fatal("the second Get never queued")
				}
				time.Sleep(2 * time.Millisecond)
			}
			if err := p.Put(held); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			again, err := p.Get(ctx)
			cancel()
			if err == nil {
				overtakes++
				if err := p.Put(again); err != nil {
					t.Fatal(err)
				}
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if held, err = p.Get(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Put(held); err != nil {
			t.Fatal(err)
		}
		p.Close()
		t.Logf("window %v: %d of 10 Gets overtook the queued one", window, overtakes)
		if window < 0 && overtakes != 0 {
			t.Fatalf("strict order, yet %d Gets overtook", overtakes)
		}
		if window > 0 && overtakes == 0 {
			t.Fatal("with a window, no Get overtook")
		}
	}
}

func TestDialError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String() // nothing listens there once l is closed
	l.Close()
	p, err := New("redis://" + closed + "?dialer_retries=1&dial_timeout=1s&pool_timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Get(context.Background()); !errors.Is(err, ErrDial) || !strings.Contains(err.Error(), closed) {
		t.Fatalf("Get = %v, want ErrDial naming %s", err, closed)
	}
}

// TestFinalizer: a Pool dropped without Close is freed by its finalizer
// (which closes its idle conns, as the server sees), and a conn still checked
// out keeps its Pool alive until it is given back.
func TestFinalizer(t *testing.T) {
	name := fmt.Sprintf("redispool-go-finalizer-%d-%d", os.Getpid(), time.Now().UnixNano())
	const pools = 10
	var out *Conn
	for i := 0; i < pools; i++ {
		p, err := New("redis://" + redisAddr + "?pool_size=2&client_name=" + name)
		if err != nil {
			t.Fatal(err)
		}
		cn := mustGet(t, p)
		if i == 0 {
			out = cn // checked out: keeps its pool alive
		} else if err := p.Put(cn); err != nil {
			t.Fatal(err) // idle until the pool is freed
		}
	}
	admin := newTestPool(t, "pool_size=1")
	clients := func() int {
		cn := mustGet(t, admin)
		defer admin.Put(cn)
		return strings.Count(do(t, cn, "CLIENT", "LIST").(string), "name="+name+" ")
	}
	if n := clients(); n != pools {
		t.Fatalf("%d conns named %s, want %d", n, name, pools)
	}
	waitFor(t, 20*time.Second, "the dropped pools' finalizers to close their conns", func() bool {
		runtime.GC()
		return clients() == 1
	})
	if v := do(t, out, "PING"); v != "PONG" {
		t.Fatalf("PING = %#v", v)
	}
	if err := out.pool.Put(out); err != nil {
		t.Fatalf("Put on the pool kept alive by its conn: %v", err)
	}
}

func TestRemove(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	cn := mustGet(t, p)
	if p.Len() != 1 {
		t.Fatalf("Len = %d", p.Len())
	}
	if err := p.Remove(cn, "test"); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); p.Len() != 0 || st.RemovedConns != 1 {
		t.Fatalf("after Remove: Len %d, %+v", p.Len(), st)
	}
}

func TestTryGetAndNotifyFD(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	fd, err := p.NotifyFD()
	if err != nil || fd < 0 {
		t.Fatalf("NotifyFD = %d, %v", fd, err)
	}
	if fd2, _ := p.NotifyFD(); fd2 != fd {
		t.Fatalf("NotifyFD changed: %d then %d", fd, fd2)
	}
	// A miss on an empty pool starts a background dial whose conn lands in the idle list.
	if _, err := p.TryGet(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryGet on an empty pool = %v, want ErrWouldBlock", err)
	}
	waitFor(t, prompt, "the background dial", func() bool { return p.IdleLen() == 1 })
	cn, err := p.TryGet()
	if err != nil {
		t.Fatalf("TryGet with an idle conn: %v", err)
	}
	if v := do(t, cn, "PING"); v != "PONG" {
		t.Fatalf("PING = %#v", v)
	}
	p.Put(cn)
}

func TestGetPolled(t *testing.T) {
	p := newTestPool(t, "pool_size=1&pool_timeout=30s")
	held := mustGet(t, p)

	t.Run("conn comes back", func(t *testing.T) {
		type result struct {
			cn  *Conn
			err error
		}
		results := make(chan result, 1)
		go func() {
			cn, err := p.GetPolled(context.Background())
			results <- result{cn, err}
		}()
		waitFor(t, prompt, "GetPolled to wait", func() bool { return goroutinesWaitingIn("GetPolled", "select") == 1 })
		id := held.ID()
		p.Put(held)
		select {
		case r := <-results:
			if r.err != nil || r.cn.ID() != id {
				t.Fatalf("GetPolled = %v, %v; want conn %d", r.cn, r.err, id)
			}
			held = r.cn
		case <-time.After(prompt):
			t.Fatal("GetPolled did not get the conn put back")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		result := make(chan error, 1)
		go func() {
			_, err := p.GetPolled(ctx)
			result <- err
		}()
		waitFor(t, prompt, "GetPolled to wait", func() bool { return goroutinesWaitingIn("GetPolled", "select") == 1 })
		cancel()
		select {
		case err := <-result:
			if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
				t.Fatalf("GetPolled = %v, want context.Canceled", err)
			}
		case <-time.After(prompt):
			t.Fatal("canceled GetPolled did not return")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := p.GetPolled(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrPoolTimeout) {
			t.Fatalf("GetPolled = %v, want context.DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed < 150*time.Millisecond || elapsed > prompt {
			t.Fatalf("GetPolled returned after %v, want about 200ms", elapsed)
		}
	})
	t.Run("pool timeout", func(t *testing.T) {
		short := newTestPool(t, "pool_size=1&pool_timeout=100ms")
		h := mustGet(t, short)
		defer short.Put(h)
		_, err := short.GetPolled(context.Background())
		if !errors.Is(err, ErrPoolTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("GetPolled = %v, want ErrPoolTimeout", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		closing := newTestPool(t, "pool_size=1&pool_timeout=30s")
		h := mustGet(t, closing)
		result := make(chan error, 1)
		go func() {
			_, err := closing.GetPolled(context.Background())
			result <- err
		}()
		waitFor(t, prompt, "GetPolled to wait", func() bool { return goroutinesWaitingIn("GetPolled", "select") == 1 })
		closing.Close()
		select {
		case err := <-result:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("GetPolled = %v, want ErrClosed", err)
			}
		case <-time.After(prompt):
			t.Fatal("GetPolled not woken by Close")
		}
		closing.Put(h)
	})
	p.Put(held)
}

// goroutinesWaitingIn counts the goroutines in state `state` (as runtime.Stack
// prints it, e.g. "IO wait") whose stack contains function fn.
func goroutinesWaitingIn(fn, state string) int {
	count := 0
	for _, g := range goroutineStacks() {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "["+state) && strings.Contains(g, ".(*Pool)."+fn+"(") {
			count++
		}
	}
	return count
}

// goroutinesInCgo counts the goroutines inside a cgo call right now (state
// "syscall" with a cgo stub, _Cfunc_*, on top of its stack). A goroutine waiting in a cgo
// call holds an OS thread for the whole wait; one parked in the netpoller or
// on a channel holds none. Counting these is what the "holds no thread" tests
// assert: the OS thread count itself also moves when a loaded machine stalls
// a short cgo call long enough for sysmon to hand its P to a new thread.
func goroutinesInCgo() int {
	count := 0
	for _, g := range goroutineStacks() {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[syscall") && strings.Contains(g, "._Cfunc_") {
			count++
		}
	}
	return count
}

// goroutineStacks returns every goroutine's stack as runtime.Stack prints it.
func goroutineStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

const waiters = 200

// TestGetPolledManyWaiters: 200 goroutines waiting in GetPolled park no OS
// thread, so here the thread count stays far below one per waiter.
func TestGetPolledManyWaiters(t *testing.T) {
	p := newTestPool(t, "pool_size=1&pool_timeout=30s")
	held := mustGet(t, p)
	baseGoroutines := runtime.NumGoroutine()
	start := osThreads(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var got []*Conn
	var failures []error
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cn, err := p.GetPolled(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				got = append(got, cn)
			} else if !errors.Is(err, context.Canceled) {
				failures = append(failures, err)
			}
		}()
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("%d GetPolled waiting", waiters), func() bool {
		return goroutinesWaitingIn("GetPolled", "select") == waiters
	})
	peak, inCgo := osThreads(t), goroutinesInCgo()

	// One conn coming back serves exactly one waiter.
	p.Put(held)
	waitFor(t, prompt, "one GetPolled served", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	canceled := time.Now()
	cancel()
	wg.Wait()
	t.Logf("all %d GetPolled returned %v after cancel()", waiters, time.Since(canceled).Round(time.Millisecond))
	if len(failures) != 0 || len(got) != 1 {
		t.Fatalf("served %d, failures %v", len(got), failures)
	}
	p.Put(got[0])
	waitFor(t, 10*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseGoroutines
	})
	after := osThreads(t)
	t.Logf("OS threads: start %d, peak with %d GetPolled waiting %d, after %d; %d goroutines in a cgo call with them waiting",
		start, waiters, peak, after, inCgo)
	// A waiter parked in the netpoller holds no thread; a waiter blocked in
	// cgo holds one each. The thread count is only logged: the short cgo
	// calls GetPolled makes (try_get, notify fd) can get their P handed off
	// by sysmon on a loaded machine, which starts threads (CI saw +37).
	if inCgo > waiters/4 {
		t.Fatalf("%d of %d GetPolled waiters in a cgo call: waits hold threads", inCgo, waiters)
	}
}

// TestCancelManyWaiters: 200 goroutines wait in Get on an exhausted pool whose
// pool timeout is 30 s, and their contexts are canceled.
//
// Get waits in the binding's queue (a select on a channel, ctx.Done() and a
// timer), not in a cgo call, so the waiters hold no thread (the binding
// before the queue climbed by ~200: each waiter held one in pool_get_ex).
// Asserted:
//   - all 200 Gets return within a few seconds of cancel (not after the 30 s
//     pool timeout) with context.Canceled;
//   - the pool has no waiter or pending get left, and no turn is leaked;
//   - no goroutine is left behind (runtime.NumGoroutine back to its baseline:
//     the queue's reactor ends with the last waiter);
//   - no queued Get waits inside a cgo call (where it would hold a thread).
//
// The OS thread counts before, at the peak and after each wave are logged.
func TestCancelManyWaiters(t *testing.T) {
	p := newTestPool(t, "pool_size=1&pool_timeout=30s")
	held := mustGet(t, p)
	baseGoroutines := runtime.NumGoroutine()
	start := osThreads(t)

	wave := func(n int) (peak, after, inCgo int) {
		parent, cancel := context.WithCancel(context.Background())
		defer cancel()
		errs := make(chan error, waiters)
		for i := 0; i < waiters; i++ {
			go func() {
				// Each goroutine has its own context, canceled through the parent.
				ctx, cancel := context.WithCancel(parent)
				defer cancel()
				_, err := p.Get(ctx)
				errs <- err
			}()
		}
		waitFor(t, 60*time.Second, fmt.Sprintf("wave %d: %d Gets queued", n, waiters), func() bool {
			return p.Stats().Waiting == waiters
		})
		peak, inCgo = osThreads(t), goroutinesInCgo()
		// Let them wait a moment (as a request would) before canceling; not a
		// synchronisation: they are all queued already.
		time.Sleep(100 * time.Millisecond)
		canceled := time.Now()
		cancel()
		for i := 0; i < waiters; i++ {
			select {
			case err := <-errs:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("wave %d: Get = %v, want context.Canceled", n, err)
				}
			case <-time.After(time.Until(canceled.Add(prompt))):
				t.Fatalf("wave %d: only %d of %d canceled Gets returned within %v of cancel (pool timeout 30s)",
					n, i, waiters, prompt)
			}
		}
		t.Logf("wave %d: all %d Gets returned %v after cancel()", n, waiters, time.Since(canceled).Round(time.Millisecond))
		if st := p.Stats(); st.Waiting != 0 || st.PendingRequests != 0 || st.Timeouts != 0 {
			t.Fatalf("wave %d left state behind: %+v", n, st)
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("wave %d: goroutines back to %d", n, baseGoroutines), func() bool {
			return runtime.NumGoroutine() <= baseGoroutines
		})
		return peak, osThreads(t), inCgo
	}

	peak1, after1, inCgo1 := wave(1)
	peak2, after2, inCgo2 := wave(2)
	t.Logf("OS threads: start %d; wave 1 peak %d, after %d; wave 2 peak %d, after %d (GOMAXPROCS %d); in a cgo call with the waves queued: %d, %d",
		start, peak1, after1, peak2, after2, runtime.GOMAXPROCS(0), inCgo1, inCgo2)
	// A Get waiting in a cgo call holds a thread (the binding before the queue
	// climbed by ~200 threads per wave); thread counts are only logged, as a
	// loaded machine's sysmon also starts some.
	if inCgo1 > waiters/4 || inCgo2 > waiters/4 {
		t.Fatalf("%d / %d of %d queued Gets in a cgo call: waits hold threads", inCgo1, inCgo2, waiters)
	}

	// No turn was leaked: the held conn is handed out again at once.
	if err := p.Put(held); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatalf("Get after the waves: %v", err)
	}
	p.Put(cn)
}
