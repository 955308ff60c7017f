// The go-redis v5 baseline of the bench suite (benches/suite/goredis.rs): Get+Put on go-redis's own connection pool
// (internal/pool of go-redis v5, from Debian's golang-gopkg-redis.v5-dev), on loopback TCP
// conns, from goroutines. The suite builds it in GOPATH mode inside a copy of that
// package's tree (an internal package is importable only from inside its module) and
// runs it once per cell:
//
//	redispoolbench ADDR POOL_SIZE GOROUTINES MILLIS [timed]
//
// It dials POOL_SIZE conns first (all checked out at once, then put back), so the run
// only reuses them, then runs GOROUTINES goroutines doing Get+Put for MILLIS ms and prints
//
//	ns_per_op N [mean N p50 N p99 N max N]
//
// ns_per_op is wall time (first goroutine's start to last goroutine's end) per Get+Put
// over all goroutines; with "timed", a second run times every Get (nanoseconds). The
// histogram is in ../hist.go, copied next to this file by the suite.
package main

import (
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/redis.v5/internal/pool"
)

const batch = 16

func run(p *pool.ConnPool, goroutines int, dur time.Duration, timed bool) (float64, *hist) {
	var stop int32
	var total uint64
	var wg sync.WaitGroup
	var mu sync.Mutex
	merged := &hist{}
	base := time.Now()
	first := int64(math.MaxInt64)
	var last int64
	start := make(chan struct{})
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h *hist
			if timed {
				h = &hist{}
			}
			<-start
			began := int64(time.Since(base))
			for {
				old := atomic.LoadInt64(&first)
				if began >= old || atomic.CompareAndSwapInt64(&first, old, began) {
					break
				}
			}
			var n uint64
			for atomic.LoadInt32(&stop) == 0 {
				for j := 0; j < batch; j++ {
					var t0 time.Time
					if timed {
						t0 = time.Now()
					}
					cn, _, err := p.Get()
					if err != nil {
						fmt.Fprintln(os.Stderr, "get:", err)
						os.Exit(1)
					}
					if timed {
						h.record(uint64(time.Since(t0)))
					}
					if err := p.Put(cn); err != nil {
						fmt.Fprintln(os.Stderr, "put:", err)
						os.Exit(1)
					}
				}
				n += batch
			}
			ended := int64(time.Since(base))
			for {
				old := atomic.LoadInt64(&last)
				if ended <= old || atomic.CompareAndSwapInt64(&last, old, ended) {
					break
				}
			}
			atomic.AddUint64(&total, n)
			if timed {
				mu.Lock()
				merged.merge(h)
				mu.Unlock()
			}
		}()
	}
	close(start)
	time.Sleep(dur)
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	ops := atomic.LoadUint64(&total)
	if ops == 0 {
		ops = 1
	}
	return float64(last-first) / float64(ops), merged
}

func main() {
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: redispoolbench ADDR POOL_SIZE GOROUTINES MILLIS [timed]")
		os.Exit(2)
	}
	addr := os.Args[1]
	size, err1 := strconv.Atoi(os.Args[2])
	goroutines, err2 := strconv.Atoi(os.Args[3])
	millis, err3 := strconv.Atoi(os.Args[4])
	if err1 != nil || err2 != nil || err3 != nil || size < 1 || goroutines < 1 || millis < 0 {
		fmt.Fprintln(os.Stderr, "bad arguments:", os.Args[1:])
		os.Exit(2)
	}
	timed := len(os.Args) > 5 && os.Args[5] == "timed"

	dial := func() (net.Conn, error) { return net.Dial("tcp", addr) }
	// go-redis's defaults: PoolTimeout 4 s (ReadTimeout + 1 s) is raised so that a
	// loaded machine never times a get out; no idle reaping.
	p := pool.NewConnPool(dial, size, 30*time.Second, 0, 0)
	defer p.Close()
	held := make([]*pool.Conn, size)
	for i := range held {
		cn, _, err := p.Get()
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(1)
		}
		held[i] = cn
	}
	for _, cn := range held {
		p.Put(cn)
	}

	dur := time.Duration(millis) * time.Millisecond
	ns, _ := run(p, goroutines, dur, false)
	line := fmt.Sprintf("ns_per_op %.1f", ns)
	if timed {
		_, h := run(p, goroutines, dur, true)
		mean := 0.0
		if h.n > 0 {
			mean = float64(h.sum) / float64(h.n)
		}
		line += fmt.Sprintf(" mean %.0f p50 %d p99 %d max %d", mean, h.quantile(0.50),
			h.quantile(0.99), h.maxVal)
	}
	if p.Len() != size {
		fmt.Fprintf(os.Stderr, "the pool dialed during the run: %d conns, want %d\n", p.Len(), size)
		os.Exit(1)
	}
	fmt.Println(line)
}
