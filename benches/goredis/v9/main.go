// The go-redis v9 baseline of the bench suite (benches/suite/goredis.rs). The suite
// fetches the current github.com/redis/go-redis/v9 from the Go module proxy at run time
// (never committed), copies the module into a temporary directory and builds this file
// (with ../getput.go and ../hist.go) as a package inside it, so it can import the module's internal/pool.
// Two modes, one process per run:
//
//	redispoolbench getput ADDR POOL_SIZE GOROUTINES MILLIS [timed]
//
// Get+Put on go-redis v9's own connection pool (internal/pool.ConnPool, with the options
// redis.NewClient gives it by default), on loopback TCP conns, from GOROUTINES
// goroutines. It dials POOL_SIZE conns first (all checked out at once, then put back) so
// the run only reuses them, then prints
//
//	ns_per_op N [mean N p50 N p99 N max N]
//
// as the v5 driver does (wall time per Get+Put over all goroutines; with "timed", a
// second run times every Get, in nanoseconds).
//
//	redispoolbench ping ADDR GOROUTINES MILLIS
//
// Round trips through the go-redis v9 client: redis.NewClient with PoolSize =
// GOROUTINES, each goroutine calling client.Ping(ctx) for MILLIS ms after a warm-up that
// dials every conn; prints "ops_per_sec N".
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/internal/pool"
	"github.com/redis/go-redis/v9/internal/proto"
)

// A batch of Get+Put pairs on p, every Get timed into h when h is not nil; returns
// how many.
func getPutBatch(p *pool.ConnPool) func(h *hist) uint64 {
	ctx := context.Background()
	return func(h *hist) uint64 {
		for j := 0; j < batch; j++ {
			var t0 time.Time
			if h != nil {
				t0 = time.Now()
			}
			cn, err := p.Get(ctx)
			if err != nil {
				fail("get", err)
			}
			if h != nil {
				h.record(uint64(time.Since(t0)))
			}
			p.Put(ctx, cn)
		}
		return batch
	}
}

func getput(addr string, size, goroutines int, dur time.Duration, timed bool) {
	// The options redis.NewClient passes to its pool by default (options.go init),
	// except PoolTimeout, raised from 4 s (ReadTimeout + 1 s) so that a loaded machine
	// never times a get out.
	p := pool.NewConnPool(&pool.Options{
		// The suite's loopback acceptor answers every new conn with +PONG (redispool's
		// dialer PINGs it, as redis.Client's handshake would talk to Redis): read it,
		// or v9's health check finds unread bytes on the idle conn and drops it.
		Dialer: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			pong := make([]byte, 7)
			if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
				c.Close()
				return nil, err
			}
			if _, err := io.ReadFull(c, pong); err != nil || string(pong) != "+PONG\r\n" {
				c.Close()
				return nil, fmt.Errorf("set-up PING: %q %v", pong, err)
			}
			return c, nil
		},
		PoolSize:           int32(size),
		MaxConcurrentDials: size,
		PoolTimeout:        30 * time.Second,
		DialTimeout:        5 * time.Second,
		DialerRetries:      5,
		DialerRetryTimeout: 100 * time.Millisecond,
		ReadBufferSize:     proto.DefaultBufferSize,
		WriteBufferSize:    proto.DefaultBufferSize,
		ConnMaxIdleTime:    30 * time.Minute,
	})
	defer p.Close()
	ctx := context.Background()
	held := make([]*pool.Conn, size)
	for i := range held {
		cn, err := p.Get(ctx)
		if err != nil {
			fail("dial", err)
		}
		// What the client's initConn does after its handshake (redis.go): CREATED ->
		// INITIALIZING -> IDLE, then IN_USE for the command; Put releases IN_USE -> IDLE.
		sm := cn.GetStateMachine()
		if _, err := sm.TryTransition([]pool.ConnState{pool.StateCreated}, pool.StateInitializing); err != nil {
			fail("init", err)
		}
		if _, err := sm.TryTransition([]pool.ConnState{pool.StateInitializing}, pool.StateIdle); err != nil {
			fail("init", err)
		}
		if _, err := sm.TryTransition([]pool.ConnState{pool.StateIdle}, pool.StateInUse); err != nil {
			fail("init", err)
		}
		held[i] = cn
	}
	for _, cn := range held {
		p.Put(ctx, cn)
	}
	getPutReport(getPutBatch(p), p.Len, size, goroutines, dur, timed)
}

func ping(addr string, goroutines int, dur time.Duration) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: goroutines, PoolTimeout: 30 * time.Second})
	defer c.Close()
	// Warm-up: every goroutine's conn dialed and set up (HELLO etc.) before timing.
	var wg sync.WaitGroup
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if err := c.Ping(ctx).Err(); err != nil {
					fail("ping", err)
				}
			}
		}()
	}
	wg.Wait()
	wall, ops, _ := runLoop(func(*hist) uint64 {
		if err := c.Ping(ctx).Err(); err != nil {
			fail("ping", err)
		}
		return 1
	}, goroutines, dur, false)
	secs := float64(wall) / 1e9
	if secs <= 0 {
		secs = 1e-9
	}
	fmt.Printf("ops_per_sec %.1f\n", float64(ops)/secs)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, "bad argument:", s)
		os.Exit(2)
	}
	return n
}

func main() {
	a := os.Args[1:]
	switch {
	case len(a) >= 5 && a[0] == "getput":
		size, goroutines := atoi(a[2]), atoi(a[3])
		if size < 1 || goroutines < 1 {
			fmt.Fprintln(os.Stderr, "bad arguments:", a)
			os.Exit(2)
		}
		timed := len(a) > 5 && a[5] == "timed"
		getput(a[1], size, goroutines, time.Duration(atoi(a[4]))*time.Millisecond, timed)
	case len(a) == 4 && a[0] == "ping":
		goroutines := atoi(a[2])
		if goroutines < 1 {
			fmt.Fprintln(os.Stderr, "bad arguments:", a)
			os.Exit(2)
		}
		ping(a[1], goroutines, time.Duration(atoi(a[3]))*time.Millisecond)
	default:
		fmt.Fprintln(os.Stderr, "usage: redispoolbench getput ADDR POOL_SIZE GOROUTINES MILLIS [timed]\n"+
			"       redispoolbench ping ADDR GOROUTINES MILLIS")
		os.Exit(2)
	}
}
