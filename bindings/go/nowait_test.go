package redispool

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

// maxThreadsFor samples for d the OS thread count and the goroutines inside a
// cgo call (goroutinesInCgo), and returns the maximum of each.
func maxThreadsFor(t *testing.T, d time.Duration) (threads, inCgo int) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		if n := osThreads(t); n > threads {
			threads = n
		}
		if n := goroutinesInCgo(); n > inCgo {
			inCgo = n
		}
		time.Sleep(20 * time.Millisecond)
	}
	return threads, inCgo
}

// TestReceiveWaitsInGo: 48 subscribers waiting in Receive hold no OS thread
// each (the wait is in the netpoller on pool_subscriber_fd, not in a cgo
// call), ctx cancellation ends every wait with ctx's error, and a message
// published to a waiting receiver wakes it.
func TestReceiveWaitsInGo(t *testing.T) {
	const n = 48
	p := newTestPool(t, "pool_size=4")
	ctx := context.Background()
	chName := "go:nowait:" + strconv.FormatInt(time.Now().UnixNano(), 10)
	subs := make([]*PubSub, n)
	for i := range subs {
		ps, err := p.Subscribe(ctx, chName)
		if err != nil {
			t.Fatalf("Subscribe %d: %v", i, err)
		}
		defer ps.Close()
		// The confirmation, so that the waits below have nothing to read.
		if m, err := ps.ReceiveTimeout(ctx, 10*time.Second); err != nil || m == nil || m.Kind != MsgSubscribe {
			t.Fatalf("subscriber %d: confirmation %+v, %v", i, m, err)
		}
		subs[i] = ps
	}
	base, _ := maxThreadsFor(t, 200*time.Millisecond)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, ps := range subs {
		wg.Add(1)
		go func(ps *PubSub) {
			defer wg.Done()
			m, err := ps.Receive(wctx)
			if m != nil {
				err = errors.New("a message came: " + m.Channel + " " + m.Payload)
			}
			errs <- err
		}(ps)
	}
	waiting, inCgo := maxThreadsFor(t, 800*time.Millisecond)
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Receive after cancel: %v, want context.Canceled", err)
		}
	}
	t.Logf("%d receivers waiting: at most %d in a cgo call at once; OS threads %d before, at most %d", n, inCgo, base, waiting)
	if inCgo > n/4 {
		t.Errorf("%d receivers waiting: %d of them seen in a cgo call at once: receives hold threads", n, inCgo)
	}

	// A receiver already waiting is woken by a publish.
	got := make(chan *Message, 1)
	rerr := make(chan error, 1)
	go func() {
		m, err := subs[0].ReceiveTimeout(ctx, 20*time.Second)
		got <- m
		rerr <- err
	}()
	pub := mustGet(t, p)
	defer func() { _ = p.Put(pub) }()
	for i := 0; i < 200; i++ {
		if _, err := pub.Do(ctx, "PUBLISH", chName, "hello"); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if err := <-rerr; err != nil || m == nil || m.Kind != MsgMessage || m.Payload != "hello" {
				t.Fatalf("Receive: %+v, %v; want the message", m, err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("the waiting receiver got no message")
}

// TestReceiveTimeoutAndClose: a timeout ends a wait with (nil, nil), and
// Close ends a wait in progress with ErrClosed.
func TestReceiveTimeoutAndClose(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	ctx := context.Background()
	ps, err := p.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ps.ReceiveTimeout(ctx, 50*time.Millisecond); m != nil || err != nil {
		t.Fatalf("ReceiveTimeout with nothing to read: %+v, %v", m, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ps.Receive(ctx)
		done <- err
	}()
	// Close may come before or during the wait: either way ErrClosed.
	_ = ps.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Receive during Close: %v, want ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not end the Receive")
	}
}

// TestWaitReplicasHonoursCtx: WAIT for 2 replicas (the test server has none)
// with a 5 s timeout, from 48 goroutines: the waits hold no OS thread each,
// and cancelling ctx ends them with ctx's error (ErrCanceled), not with the
// WAIT's own timeout (ErrPoolTimeout). The conns, left mid-command, are
// removed when put, and the pool serves again.
func TestWaitReplicasHonoursCtx(t *testing.T) {
	const n = 48
	p := newTestPool(t, "pool_size=64")
	ctx := context.Background()
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = mustGet(t, p)
		if _, err := conns[i].Do(ctx, "SET", "go:nowait:wait:"+strconv.Itoa(i), "1"); err != nil {
			t.Fatal(err)
		}
	}
	base, _ := maxThreadsFor(t, 200*time.Millisecond)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		n   int
		err error
	}
	results := make(chan result, n)
	start := time.Now()
	for _, cn := range conns {
		go func(cn *Conn) {
			k, err := cn.WaitReplicas(wctx, 2, 5*time.Second)
			results <- result{k, err}
		}(cn)
	}
	waiting, inCgo := maxThreadsFor(t, 500*time.Millisecond)
	cancel()
	for i := 0; i < n; i++ {
		r := <-results
		if !errors.Is(r.err, ErrCanceled) || !errors.Is(r.err, context.Canceled) || r.n != 0 {
			t.Fatalf("WaitReplicas canceled: %d, %v; want 0, ErrCanceled and context.Canceled", r.n, r.err)
		}
	}
	t.Logf("%d WaitReplicas waiting: at most %d in a cgo call at once; OS threads %d before, at most %d; all returned %v after the start",
		n, inCgo, base, waiting, time.Since(start))
	if inCgo > n/4 {
		t.Errorf("%d WaitReplicas waiting: %d of them seen in a cgo call at once: waits hold threads", n, inCgo)
	}
	for _, cn := range conns {
		_ = p.Put(cn)
	}
	// WAIT 0 answers at once; a fresh conn serves.
	cn := mustGet(t, p)
	defer func() { _ = p.Put(cn) }()
	if k, err := cn.WaitReplicas(ctx, 0, 100*time.Millisecond); err != nil || k != 0 {
		t.Fatalf("WaitReplicas(0): %d, %v", k, err)
	}
	if k, err := cn.WaitReplicas(ctx, 1, 50*time.Millisecond); !errors.Is(err, ErrPoolTimeout) || k != 0 {
		t.Fatalf("WaitReplicas(1) with no replica: %d, %v; want 0, ErrPoolTimeout", k, err)
	}
	if _, err := cn.WaitReplicas(ctx, -1, 100*time.Millisecond); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("WaitReplicas(-1): %v, want ErrInvalidArg", err)
	}
	if _, err := cn.WaitReplicas(ctx, 1, 0); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("WaitReplicas timeout 0: %v, want ErrInvalidArg", err)
	}
	if _, err := cn.Do(ctx, "PING"); err != nil {
		t.Fatalf("PING after: %v", err)
	}
}
