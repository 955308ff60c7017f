package redispool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Get/GetPolled + Do + Put on a warm conn allocate nothing: the *Conn, the
// error detail and the argument block are the conn's own, kept for its life,
// and PING's PONG is an interned value.
func TestGetDoPutAllocateNothing(t *testing.T) {
	p := newTestPool(t, "pool_size=4")
	ctx := context.Background()
	for name, get := range map[string]func(context.Context) (*Conn, error){
		"Get":       p.Get,
		"GetPolled": p.GetPolled,
	} {
		round := func() {
			cn, err := get(ctx)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			v, err := cn.Do(ctx, "PING")
			if err != nil || v != "PONG" {
				t.Fatalf("%s: Do(PING) = %v, %v", name, v, err)
			}
			if err := p.Put(cn); err != nil {
				t.Fatalf("%s: Put: %v", name, err)
			}
		}
		round() // warm: the conn's state is made on its first command
		if allocs := testing.AllocsPerRun(500, round); allocs != 0 {
			t.Errorf("%s + Do(PING) + Put: %v allocations per run, want 0", name, allocs)
		}
	}
	// A longer command with arguments reuses the same block.
	cn, _ := p.GetPolled(ctx)
	if v, err := cn.Do(ctx, "SET", "nb:alloc", strings.Repeat("x", 4096)); err != nil || v != "OK" {
		t.Fatalf("SET = %v, %v", v, err)
	}
	set := func() {
		if _, err := cn.Do(ctx, "SET", "nb:alloc", "small"); err != nil {
			t.Fatal(err)
		}
	}
	if allocs := testing.AllocsPerRun(200, set); allocs != 0 {
		t.Errorf("Do(SET) on a warm conn: %v allocations per run, want 0", allocs)
	}
	_ = p.Put(cn)
}

// Goroutines waiting for a conn (Get, GetPolled: in the pool's queue) and for
// replies (Do: in the netpoller) wait in Go, not in cgo calls, though 128 of
// 256 goroutines at a time wait for a reply that takes 100 ms and 128 for a
// conn (blocking cgo calls would hold a thread each): asserted by sampling the
// goroutines inside cgo calls; the OS thread counts are logged (they also
// grow when a busy machine stalls a short cgo call and sysmon starts a thread).
func TestThreadsFlatAsGoroutinesGrow(t *testing.T) {
	for _, name := range []string{"Get", "GetPolled"} {
		t.Run(name, func(t *testing.T) { threadsFlat(t, name) })
	}
}

func threadsFlat(t *testing.T, name string) {
	p := newTestPool(t, "pool_size=128&pool_timeout=30s")
	ctx := context.Background()
	get := p.Get
	if name == "GetPolled" {
		get = p.GetPolled
	}
	run := func(goroutines int) (maxThreads, maxInCgo int, done int64) {
		var wg sync.WaitGroup
		var ops int64
		var failed atomic.Value
		stop := make(chan struct{})
		for i := 0; i < goroutines; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					cn, err := get(ctx)
					if err != nil {
						failed.Store(err)
						return
					}
					// BLPOP on an empty list answers nil after 100 ms.
					if _, err := cn.Do(ctx, "BLPOP", "nb:threads:empty", "0.1"); !errors.Is(err, Nil) {
						failed.Store(err)
					}
					_ = p.Put(cn)
					atomic.AddInt64(&ops, 1)
				}
			}()
		}
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if n := osThreads(t); n > maxThreads {
				maxThreads = n
			}
			if n := goroutinesInCgo(); n > maxInCgo {
				maxInCgo = n
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if err := failed.Load(); err != nil {
			t.Fatalf("%d goroutines: %v", goroutines, err)
		}
		return maxThreads, maxInCgo, atomic.LoadInt64(&ops)
	}
	// All 128 conns dialed first: the library's dial threads are not the waits'.
	var warm []*Conn
	for i := 0; i < 128; i++ {
		warm = append(warm, mustGet(t, p))
	}
	for _, cn := range warm {
		_ = p.Put(cn)
	}
	few, _, opsFew := run(8)
	many, inCgo, opsMany := run(256)
	t.Logf("OS threads: %d with 8 goroutines (%d ops), %d with 256 goroutines (%d ops, at most %d in a cgo call at once)",
		few, opsFew, many, opsMany, inCgo)
	if opsMany == 0 {
		t.Fatal("no command completed with 256 goroutines")
	}
	// 128 commands waiting at once would be 128 goroutines in blocking cgo
	// calls, each holding a thread.
	if inCgo > 32 {
		t.Errorf("256 goroutines: %d of them seen in a cgo call at once: waits hold threads", inCgo)
	}
}

// A reply that does not come within the command's timeout: the wait in the
// netpoller ends at the library's deadline, with ErrIO, and the conn is bad.
func TestDoTimeoutInTheNetpoller(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	ctx := context.Background()
	cn, err := p.GetPolled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = cn.DoTimeout(ctx, 200*time.Millisecond, "BLPOP", "nb:timeout:empty", "10")
	took := time.Since(start)
	if !errors.Is(err, ErrIO) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("DoTimeout(200ms, BLPOP 10) = %v, want an ErrIO timeout", err)
	}
	if took > 8*time.Second {
		t.Fatalf("the timeout took %v", took)
	}
	if _, err := cn.Do(ctx, "PING"); !errors.Is(err, ErrBadConn) {
		t.Fatalf("Do after a timeout = %v, want ErrBadConn", err)
	}
	id := cn.ID()
	_ = p.Put(cn)
	cn2, err := p.GetPolled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cn2.ID() == id {
		t.Fatal("a conn that timed out mid-command was pooled")
	}
	if v, err := cn2.Do(ctx, "PING"); v != "PONG" || err != nil {
		t.Fatalf("PING = %v, %v", v, err)
	}
	_ = p.Put(cn2)
}

// waitsHoldNoThread runs n goroutines at once, each through wait (a command
// whose reply takes about 300 ms), and fails the test when more than n/4 of
// them were seen waiting inside a cgo call at once (a blocking call holds one
// OS thread each for the whole wait; the non-blocking path is only ever in
// short cgo calls). The OS thread counts before and at the peak are logged:
// they also grow when a loaded machine stalls a short call long enough for
// Go's sysmon to start a thread, so they are not what is asserted.
func waitsHoldNoThread(t *testing.T, n int, what string, wait func(i int) error) {
	t.Helper()
	before := osThreads(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := wait(i); err != nil {
				errs <- err
			}
		}(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	peak, inCgo := before, 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(10 * time.Millisecond):
		}
		if th := osThreads(t); th > peak {
			peak = th
		}
		if c := goroutinesInCgo(); c > inCgo {
			inCgo = c
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d %s waiting: at most %d in a cgo call at once; OS threads %d before, at most %d", n, what, inCgo, before, peak)
	if inCgo > n/4 {
		t.Errorf("%d %s waiting: %d of them seen in a cgo call at once: waits hold threads", n, what, inCgo)
	}
}

// Pipeline and TxPipeline wait for their replies in the netpoller: 64 of them
// waiting at once (a BLPOP that answers nil after 300 ms) hold no thread each.
func TestPipelineWaitsInTheNetpoller(t *testing.T) {
	const n = 64
	p := newTestPool(t, "pool_size=64&pool_timeout=30s")
	ctx := context.Background()
	var conns []*Conn
	for i := 0; i < n; i++ {
		conns = append(conns, mustGet(t, p))
	}
	waitsHoldNoThread(t, n, "pipelines", func(i int) error {
		cn := conns[i]
		if i%2 == 0 {
			r, err := cn.Pipeline(ctx, [][]string{{"BLPOP", "nb:pipe:empty", "0.3"}, {"PING"}})
			if err != nil || len(r) != 2 || r[0] != nil || r[1] != "PONG" {
				return fmt.Errorf("Pipeline = %v, %v", r, err)
			}
			return nil
		}
		r, err := cn.TxPipeline(ctx, [][]string{{"PING"}})
		if err != nil || len(r) != 1 || r[0] != "PONG" {
			return fmt.Errorf("TxPipeline = %v, %v", r, err)
		}
		// Then a plain pipeline whose reply takes as long.
		_, err = cn.Pipeline(ctx, [][]string{{"BLPOP", "nb:pipe:empty", "0.3"}})
		return err
	})
	for _, cn := range conns {
		_ = p.Put(cn)
	}
}

// A conn's userdata is a cgo.Handle, a small integer. Held in a pointer-typed
// Go variable (an unsafe.Pointer, or a C struct field of type void *) it made
// the runtime throw "invalid pointer found on stack" when a goroutine's stack
// was copied with it live: TestClusterGetWaitsInGo crashed once in ten runs,
// the waiter's stack growing in the queue's bookkeeping after the reactor had
// handed it a conn. The window is a few instructions wide, so this checks the
// rule itself: every Go value and C result field that carries the userdata is
// an integer (uintptr, or C's uintptr_t).
func TestConnUserdataIsNeverAPointer(t *testing.T) {
	isUintptr := func(what string, typ reflect.Type) {
		t.Helper()
		switch typ.Kind() {
		case reflect.Uintptr, reflect.Uint64, reflect.Uint: // C.uintptr_t is a C.ulong
		default:
			t.Errorf("%s is a %v: a cgo.Handle must never be held in a pointer-typed variable", what, typ)
		}
	}
	isUintptr("stateOf's argument", reflect.TypeOf(stateOf).In(0))
	isUintptr("rpConnStateFree's argument", reflect.TypeOf(rpConnStateFree).In(0))
	isUintptr("rawTryGet's userdata", reflect.TypeOf(rawTryGet).Out(2))
	isUintptr("(*Pool).conn's userdata", reflect.TypeOf((*Pool).conn).In(2))
	isUintptr("(*Pool).tryGetResult's userdata", reflect.TypeOf((*Pool).tryGetResult).In(3))
	isUintptr("(*Cluster).conn's userdata", reflect.TypeOf((*Cluster).conn).In(2))
	isUintptr("(*Pool).waitHandle's userdata", reflect.TypeOf((*Pool).waitHandle).Out(1))
	if f, ok := reflect.TypeOf(getResult{}).FieldByName("ud"); !ok {
		t.Error("getResult has no ud field")
	} else {
		isUintptr("getResult.ud", f.Type)
	}
	// The C result structs (not visible from a test file) in the preambles.
	for _, file := range []string{"redispool.go", "cluster.go", "nonblocking.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			if strings.Contains(line, "void *ud;") || strings.Contains(line, "void rpConnStateFree(void") {
				t.Errorf("%s:%d: %q: the userdata crosses into Go as a pointer", file, i+1, strings.TrimSpace(line))
			}
		}
	}
}
