// The timed loop of the go-redis drivers (v5/main.go, v9/main.go), the same for both:
// each driver hands it a batch of its own pool's Get+Put pairs (v9 also its pings). The suite copies this
// file (with hist.go) next to either driver before it builds it; the two are built in
// separate trees (v5 in GOPATH mode, v9 inside its module), so a file copied into both
// is what they can share.
package main

import (
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Get+Put pairs per call of a driver's batch: the loop's indirect call and stop check
// are paid once per batch.
const batch = 16

func fail(what string, err error) {
	fmt.Fprintln(os.Stderr, what+":", err)
	os.Exit(1)
}

// spans records the first start and the last end of the goroutines of one run.
type spans struct {
	base        time.Time
	first, last int64
}

func (s *spans) began() {
	t := int64(time.Since(s.base))
	for {
		old := atomic.LoadInt64(&s.first)
		if t >= old || atomic.CompareAndSwapInt64(&s.first, old, t) {
			return
		}
	}
}

func (s *spans) ended() {
	t := int64(time.Since(s.base))
	for {
		old := atomic.LoadInt64(&s.last)
		if t <= old || atomic.CompareAndSwapInt64(&s.last, old, t) {
			return
		}
	}
}

// runLoop runs `goroutines` goroutines calling step for dur; step does some operations
// (with a histogram, each timed into it) and returns how many. It returns the wall time
// in ns (first goroutine's start to last goroutine's end), the operations of all
// goroutines, and the merged histogram of a timed run.
func runLoop(step func(h *hist) uint64, goroutines int, dur time.Duration, timed bool) (int64, uint64, *hist) {
	var stop int32
	var total uint64
	var wg sync.WaitGroup
	var mu sync.Mutex
	merged := &hist{}
	sp := &spans{base: time.Now(), first: math.MaxInt64}
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
			sp.began()
			var n uint64
			for atomic.LoadInt32(&stop) == 0 {
				n += step(h)
			}
			sp.ended()
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
	return sp.last - sp.first, atomic.LoadUint64(&total), merged
}

// runGetPut is runLoop over getPutBatch (`batch` Get+Put pairs, every Get timed into a
// histogram when there is one): the wall time per pair over all goroutines, and the
// merged histogram of a timed run.
func runGetPut(getPutBatch func(h *hist) uint64, goroutines int, dur time.Duration, timed bool) (float64, *hist) {
	wall, ops, merged := runLoop(getPutBatch, goroutines, dur, timed)
	if ops == 0 {
		ops = 1
	}
	return float64(wall) / float64(ops), merged
}

// getPutReport does the run of a warmed-up pool of `size` conns and prints its line,
//
//	ns_per_op N [mean N p50 N p99 N max N]
//
// with "timed", a second run times every Get (nanoseconds). It fails when the pool
// dialed during the runs (poolLen is no longer size).
func getPutReport(getPutBatch func(h *hist) uint64, poolLen func() int, size, goroutines int, dur time.Duration, timed bool) {
	ns, _ := runGetPut(getPutBatch, goroutines, dur, false)
	line := fmt.Sprintf("ns_per_op %.1f", ns)
	if timed {
		_, h := runGetPut(getPutBatch, goroutines, dur, true)
		mean := 0.0
		if h.n > 0 {
			mean = float64(h.sum) / float64(h.n)
		}
		line += fmt.Sprintf(" mean %.0f p50 %d p99 %d max %d", mean, h.quantile(0.50),
			h.quantile(0.99), h.maxVal)
	}
	if n := poolLen(); n != size {
		fmt.Fprintf(os.Stderr, "the pool dialed during the run: %d conns, want %d\n", n, size)
		os.Exit(1)
	}
	fmt.Println(line)
}
