package redispool

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestPoolStatsShape checks PoolStats against go-redis v9's redis.PoolStats
// fields that metrics adapters read: same names, same types.
func TestPoolStatsShape(t *testing.T) {
	goRedis := []struct {
		name string
		kind reflect.Kind
	}{
		{"Hits", reflect.Uint32},
		{"Misses", reflect.Uint32},
		{"Timeouts", reflect.Uint32},
		{"WaitCount", reflect.Uint32},
		{"Unusable", reflect.Uint32},
		{"WaitDurationNs", reflect.Int64},
		{"TotalConns", reflect.Uint32},
		{"IdleConns", reflect.Uint32},
		{"StaleConns", reflect.Uint32},
		{"PendingRequests", reflect.Uint32},
	}
	typ := reflect.TypeOf(PoolStats{})
	for _, f := range goRedis {
		got, ok := typ.FieldByName(f.name)
		if !ok {
			t.Errorf("PoolStats has no %s", f.name)
		} else if got.Type.Kind() != f.kind {
			t.Errorf("PoolStats.%s is %s, go-redis has %s", f.name, got.Type, f.kind)
		}
	}
	// The method has go-redis's signature: func() *PoolStats.
	var _ interface{ PoolStats() *PoolStats } = (*Pool)(nil)
}

// TestPoolStatsValues checks that PoolStats reports what the pool did: hits,
// misses, a wait and its duration, a timeout, conns.
func TestPoolStatsValues(t *testing.T) {
	// The timed-out Get below runs out the pool's own pool_timeout: a ctx deadline
	// would race its cancel token against the C timeout (a get canceled first is
	// not a timeout in the stats).
	p := newTestPool(t, "pool_size=1&pool_timeout=3s")
	ctx := context.Background()

	cn := mustGet(t, p) // a miss: dials
	var cn2 *Conn
	got := make(chan error, 1)
	go func() {
		var err error
		cn2, err = p.Get(ctx) // waits for cn: a hit after a wait
		got <- err
	}()
	waitFor(t, 10*time.Second, "a waiting Get", func() bool { return p.Stats().Waiting == 1 })
	if err := p.Put(cn); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(ctx); !errors.Is(err, ErrPoolTimeout) { // the only conn is out
		t.Fatalf("a Get with every conn out: %v, want ErrPoolTimeout", err)
	}
	s := p.PoolStats()
	full := p.Stats()
	if s.Misses != 1 || s.Hits != 1 || s.WaitCount != 1 || s.Timeouts != 1 {
		t.Errorf("misses %d hits %d waits %d timeouts %d, want 1 1 1 1 (Stats %+v)",
			s.Misses, s.Hits, s.WaitCount, s.Timeouts, full)
	}
	if s.WaitDurationNs <= 0 || s.WaitDurationNs != int64(full.WaitDuration) {
		t.Errorf("WaitDurationNs %d, Stats.WaitDuration %v", s.WaitDurationNs, full.WaitDuration)
	}
	if s.TotalConns != 1 || s.IdleConns != 0 || s.StaleConns != 0 || s.PendingRequests != 0 || s.Unusable != 0 {
		t.Errorf("got %+v", *s)
	}
	if err := p.Put(cn2); err != nil {
		t.Fatal(err)
	}
	if s := p.PoolStats(); s.IdleConns != 1 || s.TotalConns != 1 {
		t.Errorf("after Put: %+v", *s)
	}
}

// TestGetPutAllocs checks that a Get served by an idle conn and its Put
// allocate only the *Conn: the pool_error_t and the conn out-pointer stay on
// the C side (they escaped to the Go heap before, 3 allocations in all).
func TestGetPutAllocs(t *testing.T) {
	p := newTestPool(t, "pool_size=1")
	ctx := context.Background()
	if err := p.Put(mustGet(t, p)); err != nil {
		t.Fatal(err)
	}
	var failed error
	allocs := testing.AllocsPerRun(1000, func() {
		cn, err := p.Get(ctx)
		if err == nil {
			err = p.Put(cn)
		}
		if err != nil && failed == nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	t.Logf("%.1f allocations per Get+Put", allocs)
	if allocs > 1 {
		t.Errorf("%.1f allocations per Get+Put, want at most 1 (the *Conn)", allocs)
	}
}

// BenchmarkGetPut measures a Get served by an idle conn and its Put:
// go test -run '^$' -bench GetPut -benchmem
func BenchmarkGetPut(b *testing.B) {
	p, err := New("redis://" + redisAddr + "/?pool_size=1")
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		cn, err := p.Get(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Put(cn); err != nil {
			b.Fatal(err)
		}
	}
}
