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
// loop is in ../getput.go and the histogram in ../hist.go, copied next to this file by
// the suite.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"gopkg.in/redis.v5/internal/pool"
)

// A batch of Get+Put pairs on p, every Get timed into h when h is not nil; returns
// how many.
func getPutBatch(p *pool.ConnPool) func(h *hist) uint64 {
	return func(h *hist) uint64 {
		for j := 0; j < batch; j++ {
			var t0 time.Time
			if h != nil {
				t0 = time.Now()
			}
			cn, _, err := p.Get()
			if err != nil {
				fail("get", err)
			}
			if h != nil {
				h.record(uint64(time.Since(t0)))
			}
			if err := p.Put(cn); err != nil {
				fail("put", err)
			}
		}
		return batch
	}
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
			fail("dial", err)
		}
		held[i] = cn
	}
	for _, cn := range held {
		p.Put(cn)
	}

	dur := time.Duration(millis) * time.Millisecond
	getPutReport(getPutBatch(p), p.Len, size, goroutines, dur, timed)
}
