// PING from goroutines through the Go binding (bindings/go) and through go-redis v9's
// client, one mode per process, for benches/gobinding/run.sh (which fetches go-redis v9
// from the Go module proxy at run time: it is never committed).
//
//	gobinding MODE ADDR POOL_SIZE GOROUTINES MILLIS
//
// MODE: goredis (client.Ping on a client with PoolSize = POOL_SIZE), get (Pool.Get +
// Conn.Do("PING") + Pool.Put) or polled (Pool.GetPolled + Do + Put). Prints
//
//	ns_per_op N threads N allocs_per_op N
//
// ns_per_op: wall time of the timed part / ops, times GOROUTINES (the time one goroutine
// waits per PING); threads: the most OS threads seen while it ran; allocs_per_op: Go heap
// allocations per PING (runtime.MemStats.Mallocs).
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	redispool "github.com/redispool/redispool-go"
)

func threads() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Threads:") {
			n, _ := strconv.Atoi(strings.TrimSpace(l[len("Threads:"):]))
			return n
		}
	}
	return 0
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: gobinding MODE ADDR POOL_SIZE GOROUTINES MILLIS")
		os.Exit(2)
	}
	mode, addr := os.Args[1], os.Args[2]
	size, _ := strconv.Atoi(os.Args[3])
	gs, _ := strconv.Atoi(os.Args[4])
	ms, _ := strconv.Atoi(os.Args[5])
	ctx := context.Background()

	var ping func() error
	switch mode {
	case "goredis":
		c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: size, MinIdleConns: size})
		ping = func() error { return c.Ping(ctx).Err() }
	case "get", "polled":
		p, err := redispool.New(fmt.Sprintf("redis://%s/?pool_size=%d&pool_timeout=30s", addr, size))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		get := p.Get
		if mode == "polled" {
			get = p.GetPolled
		}
		ping = func() error {
			cn, err := get(ctx)
			if err != nil {
				return err
			}
			_, err = cn.Do(ctx, "PING")
			p.Put(cn)
			return err
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(2)
	}
	// Warm-up: every conn dialed.
	var wg sync.WaitGroup
	for i := 0; i < gs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if err := ping(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()

	var ops int64
	var stop int32
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := 0; i < gs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for atomic.LoadInt32(&stop) == 0 {
				if err := ping(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				n++
			}
			atomic.AddInt64(&ops, n)
		}()
	}
	maxThreads := 0
	for end := start.Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
		if t := threads(); t > maxThreads {
			maxThreads = t
		}
		time.Sleep(10 * time.Millisecond)
	}
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	took := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	fmt.Printf("ns_per_op %.0f threads %d allocs_per_op %.2f\n",
		float64(took.Nanoseconds())*float64(gs)/float64(ops), maxThreads,
		float64(after.Mallocs-before.Mallocs)/float64(ops))
}
