package redispool

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// Goroutines blocked in Get wait in Go (a channel of the pool's queue), not
// in a cgo call: 200 of them on an exhausted pool hold no OS thread each, and
// they are served in arrival order as conns come back, one wake-up each.
func TestGetWaitersQueueInGo(t *testing.T) {
	for _, name := range []string{"Get", "GetPolled"} {
		t.Run(name, func(t *testing.T) {
			p := newTestPool(t, "pool_size=1&pool_timeout=30s&overtake_window=0")
			get := p.Get
			if name == "GetPolled" {
				get = p.GetPolled
			}
			held := mustGet(t, p)
			start := osThreads(t)

			var mu sync.Mutex
			var order []int
			var failures []error
			var wg sync.WaitGroup
			for i := 0; i < waiters; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					cn, err := get(context.Background())
					if err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
						return
					}
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
					if err := p.Put(cn); err != nil {
						t.Error(err)
					}
				}(i)
				// One at a time, so that the arrival order is known.
				waitFor(t, prompt, fmt.Sprintf("waiter %d to queue", i), func() bool {
					return p.Stats().Waiting == uint32(i+1)
				})
			}
			// Stats counts a waiter as it queues, a moment before it parks.
			waitFor(t, prompt, fmt.Sprintf("%d goroutines parked in %s's select", waiters, name), func() bool {
				return goroutinesWaitingIn(name, "select") == waiters
			})
			peak, inCgo := osThreads(t), goroutinesInCgo()
			tries0 := p.q.reactorTries.Load()
			if err := p.Put(held); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			tries := p.q.reactorTries.Load() - tries0
			t.Logf("OS threads: %d before, %d with %d goroutines in %s; %d pool_try_get calls to serve them",
				start, peak, waiters, name, tries)
			if len(failures) != 0 {
				t.Fatalf("failures: %v", failures)
			}
			for k, i := range order {
				if k != i {
					t.Fatalf("served out of arrival order: %v", order)
				}
			}
			// A waiter blocked in pool_get_ex holds a thread (+~200 before the
			// queue); the thread count itself is only logged, as it also grows
			// when a loaded machine stalls a short call.
			if inCgo > waiters/4 {
				t.Errorf("%d of %d waiting goroutines in a cgo call: waits hold threads", inCgo, waiters)
			}
			// Each conn put back is taken once (plus the miss that re-arms the
			// fd): waking every waiter would cost ~waiters²/2 tries.
			if tries > 3*waiters+10 {
				t.Errorf("%d pool_try_get calls to serve %d waiters one conn at a time: waiters woke for nothing", tries, waiters)
			}
			s := p.Stats()
			if s.Waiting != 0 || s.PendingRequests != 0 || s.WaitCount < waiters {
				t.Errorf("stats after the waits: %+v", s)
			}
		})
	}
}

// A Get that gives up (ctx) while the reactor hands it a conn loses nothing:
// the conn goes to the next waiter or back to the pool.
func TestGetGiveUpLosesNoConn(t *testing.T) {
	p := newTestPool(t, "pool_size=2&pool_timeout=30s")
	for round := 0; round < 50; round++ {
		a, b := mustGet(t, p), mustGet(t, p)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			cn, err := p.Get(ctx)
			if err == nil {
				err = p.Put(cn)
			}
			done <- err
		}()
		waitFor(t, prompt, "a waiting Get", func() bool { return p.Stats().Waiting == 1 })
		// Race the cancel against a conn coming back.
		go cancel()
		if err := p.Put(a); err != nil {
			t.Fatal(err)
		}
		<-done
		if err := p.Put(b); err != nil {
			t.Fatal(err)
		}
		waitFor(t, prompt, "both conns idle", func() bool { return p.IdleLen() == 2 })
	}
}

// A Get that waits in the queue allocates nothing either: the waiter, its
// channel and its timer are reused, and so is the reactor's start.
func TestWaitedGetAllocatesNothing(t *testing.T) {
	p := newTestPool(t, "pool_size=1&pool_timeout=30s")
	ctx := context.Background()
	held := mustGet(t, p)
	if _, err := held.Do(ctx, "PING"); err != nil { // the conn's state, kept for its life
		t.Fatal(err)
	}
	give := make(chan *Conn)
	given := make(chan error)
	go func() {
		for cn := range give {
			// Put back once the Get below waits (bounded by the test's timeout).
			for p.q.n.Load() != 1 {
				runtime.Gosched()
			}
			given <- p.Put(cn)
		}
	}()
	defer close(give)
	var failed error
	round := func() {
		give <- held
		cn, err := p.Get(ctx)
		if perr := <-given; perr != nil && failed == nil {
			failed = perr
		}
		if err != nil {
			if failed == nil {
				failed = err
			}
			return
		}
		if _, err := cn.Do(ctx, "PING"); err != nil && failed == nil {
			failed = err
		}
		held = cn
	}
	round()
	allocs := testing.AllocsPerRun(200, round)
	if failed != nil {
		t.Fatal(failed)
	}
	if s := p.Stats(); s.WaitCount < 200 {
		t.Fatalf("only %d Gets waited", s.WaitCount)
	}
	if allocs != 0 {
		t.Errorf("a waited Get + Do + Put: %v allocations, want 0", allocs)
	}
	_ = p.Put(held)
}
