package redispool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Cluster and Sentinel tests need deployments this package does not start:
// tests/go_binding.rs (go_cluster_and_sentinel) starts a 3-master Redis Cluster
// and a master + replica + 3 sentinels and passes them in these variables.
// Without them the tests skip; with them, anything wrong fails.
//
//	REDISPOOL_TEST_CLUSTER_SEEDS    "host:port,host:port,…" (cluster nodes)
//	REDISPOOL_TEST_SENTINELS        "host:port,host:port,…" (sentinels)
//	REDISPOOL_TEST_SENTINEL_MASTER  "name=host:port" (the master's name and address)
//	REDISPOOL_TEST_SENTINEL_REPLICA "host:port" (the master's replica)

// clusterSeeds returns the seeds of the test cluster, or skips the test.
func clusterSeeds(t *testing.T) []string {
	t.Helper()
	v := os.Getenv("REDISPOOL_TEST_CLUSTER_SEEDS")
	if v == "" {
		t.Skip("REDISPOOL_TEST_CLUSTER_SEEDS is not set (tests/go_binding.rs sets it)")
	}
	return strings.Split(v, ",")
}

func newTestCluster(t *testing.T, seeds []string) *Cluster {
	t.Helper()
	cl, err := NewCluster(ClusterOptions{
		Seeds: seeds,
		Node: Options{
			PoolSize:     4,
			DialTimeout:  5 * time.Second,
			ReadTimeout:  5 * time.Second,
			WriteTimeout: 5 * time.Second,
			PoolTimeout:  10 * time.Second,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestClusterKeysAcrossSlots sets and reads back keys spread over many slots,
// each through a conn Get chose for its key, and checks that every master
// served some, that the stats count the gets, and that Nodes lists the masters.
func TestClusterKeysAcrossSlots(t *testing.T) {
	cl := newTestCluster(t, clusterSeeds(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const keys = 300
	slots := map[int]bool{}
	nodes := map[string]int{}
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("go-cluster-key-%d", i)
		slots[KeySlot(key)] = true
		cn, err := cl.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		node, err := cn.Node()
		if err != nil {
			t.Fatalf("Node: %v", err)
		}
		nodes[node]++
		if v, err := cn.Do(ctx, "SET", key, "v"+key); err != nil || v != "OK" {
			t.Fatalf("SET %s on %s: %v %v", key, node, v, err)
		}
		if v, err := cn.Do(ctx, "GET", key); err != nil || v != "v"+key {
			t.Fatalf("GET %s on %s: %v %v", key, node, v, err)
		}
		if err := cl.Put(cn); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if len(slots) < keys*9/10 {
		t.Fatalf("only %d distinct slots for %d keys", len(slots), keys)
	}
	if len(nodes) != 3 {
		t.Fatalf("keys went to %d nodes, want the 3 masters: %v", len(nodes), nodes)
	}

	// Each key again through a conn of the slot, read back.
	for i := 0; i < keys; i += 7 {
		key := fmt.Sprintf("go-cluster-key-%d", i)
		cn, err := cl.GetSlot(ctx, KeySlot(key))
		if err != nil {
			t.Fatalf("GetSlot: %v", err)
		}
		if v, err := cn.Do(ctx, "GET", key); err != nil || v != "v"+key {
			t.Fatalf("GET %s: %v %v", key, v, err)
		}
		if err := cl.Put(cn); err != nil {
			t.Fatal(err)
		}
	}

	st := cl.Stats()
	if st.Hits+st.Misses < keys || st.TotalConns == 0 || st.IdleConns == 0 || st.InUseConns != 0 {
		t.Fatalf("cluster stats: %+v", st)
	}
	ps := cl.PoolStats()
	if uint64(ps.Hits) != st.Hits&0xffffffff || ps.TotalConns != st.TotalConns {
		t.Fatalf("PoolStats %+v does not match Stats %+v", ps, st)
	}
	info := cl.Info()
	if info.Refreshes == 0 || info.Masters != 3 || info.SlotsCovered != Slots || info.Nodes < 3 {
		t.Fatalf("cluster info: %+v", info)
	}
	masters, covered := 0, 0
	for _, n := range cl.Nodes() {
		if n.Master {
			masters++
			covered += n.Slots
			if _, ok := nodes[n.Addr]; !ok {
				t.Errorf("master %s served no key (keys went to %v)", n.Addr, nodes)
			}
			if _, err := cl.NodeStats(n.Addr); err != nil {
				t.Errorf("NodeStats(%s): %v", n.Addr, err)
			}
		}
	}
	if masters != 3 || covered != Slots {
		t.Fatalf("Nodes: %d masters covering %d slots: %+v", masters, covered, cl.Nodes())
	}
}

// TestClusterMovedFollowed sends a command for a key to a master that does
// not serve its slot: Do follows the MOVED reply and returns the right node's
// reply, and Info counts it.
func TestClusterMovedFollowed(t *testing.T) {
	cl := newTestCluster(t, clusterSeeds(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const key = "go-cluster-moved"
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	owner := ""
	{
		cn, err := cl.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if owner, err = cn.Node(); err != nil {
			t.Fatal(err)
		}
		if _, err := cn.Do(ctx, "SET", key, "moved-value"); err != nil {
			t.Fatal(err)
		}
		cl.Put(cn)
	}
	other := ""
	for _, n := range cl.Nodes() {
		if n.Master && n.Addr != owner {
			other = n.Addr
			break
		}
	}
	if other == "" {
		t.Fatalf("no master but %s in %+v", owner, cl.Nodes())
	}
	before := cl.Info().Moved
	cn, err := cl.GetNode(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Put(cn)
	v, err := cn.Do(ctx, "GET", key)
	if err != nil || v != "moved-value" {
		t.Fatalf("GET %s on %s (served by %s): %v %v", key, other, owner, v, err)
	}
	if node, _ := cn.Node(); node != other {
		t.Fatalf("the conn moved to %s, want it to stay on %s", node, other)
	}
	if after := cl.Info().Moved; after <= before {
		t.Fatalf("Info().Moved %d -> %d: MOVED not counted", before, after)
	}
}

// TestClusterErrors checks a Redis error reply through the cluster (a bad key
// type), the library's misuse errors and ErrCluster for a cluster whose seed
// does not answer.
func TestClusterErrors(t *testing.T) {
	seeds := clusterSeeds(t)
	cl := newTestCluster(t, seeds)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const key = "go-cluster-wrongtype"
	cn, err := cl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cn.Do(ctx, "SET", key, "a string"); err != nil {
		t.Fatal(err)
	}
	_, err = cn.Do(ctx, "LPUSH", key, "x")
	var rerr RedisError
	if !errors.As(err, &rerr) || !strings.HasPrefix(string(rerr), "WRONGTYPE") {
		t.Fatalf("LPUSH on a string: %v, want a WRONGTYPE RedisError", err)
	}
	// The conn stays good after an error reply.
	if v, err := cn.Do(ctx, "GET", key); err != nil || v != "a string" {
		t.Fatalf("GET after WRONGTYPE: %v %v", v, err)
	}
	if err := cl.Put(cn); err != nil {
		t.Fatal(err)
	}
	if err := cl.Put(cn); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("second Put: %v, want ErrInvalidArg", err)
	}
	if _, err := cl.GetSlot(ctx, Slots); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("GetSlot(%d): %v, want ErrInvalidArg", Slots, err)
	}
	if _, err := NewCluster(ClusterOptions{Seeds: seeds, Node: Options{DB: 1}}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("NewCluster with DB 1: %v, want ErrInvalidArg", err)
	}

	// A URL cluster works as well.
	ucl, err := NewClusterURL("redis://" + seeds[0] + "?pool_size=2&pool_timeout=10s&max_redirects=5")
	if err != nil {
		t.Fatal(err)
	}
	ucn, err := ucl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ucn.Do(ctx, "GET", key); err != nil || v != "a string" {
		t.Fatalf("GET through a URL cluster: %v %v", v, err)
	}
	if err := ucl.Remove(ucn, "test"); err != nil {
		t.Fatal(err)
	}
	if err := ucl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ucl.Get(ctx, key); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}

	// A seed that answers nothing: no slot map.
	dead, err := NewCluster(ClusterOptions{
		Seeds: []string{deadAddr(t)},
		Node:  Options{DialTimeout: time.Second, DialerRetries: 1, PoolTimeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	if _, err := dead.Get(ctx, key); !errors.Is(err, ErrCluster) {
		t.Fatalf("Get on a cluster without a live seed: %v, want ErrCluster", err)
	}
}

// TestClusterContext checks that a Get whose context is already done fails
// with the context's error, and that a Get waiting for a node's only turn
// ends at its context's deadline (not the 10s pool timeout) or at its
// cancellation, as Pool.Get does.
func TestClusterContext(t *testing.T) {
	seeds := clusterSeeds(t)
	cl, err := NewCluster(ClusterOptions{Seeds: seeds, Node: Options{PoolSize: 1, PoolTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cl.Get(done, "k"); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
		t.Fatalf("Get with a canceled context: %v", err)
	}

	const key = "go-cluster-context"
	held, err := cl.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Put(held)

	ctx, cancelDeadline := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelDeadline()
	start := time.Now()
	_, err = cl.Get(ctx, key)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrCanceled) {
		t.Fatalf("Get past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("Get past its deadline returned after %v", waited)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	start = time.Now()
	_, err = cl.GetSlot(ctx2, KeySlot(key))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("GetSlot canceled while waiting: %v, want context.Canceled", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("canceled GetSlot returned after %v", waited)
	}
}

// sentinelSetup returns the sentinels, the master's name and its address, or
// skips the test.
func sentinelSetup(t *testing.T) (sentinels []string, name, master string) {
	t.Helper()
	s := os.Getenv("REDISPOOL_TEST_SENTINELS")
	m := os.Getenv("REDISPOOL_TEST_SENTINEL_MASTER")
	if s == "" && m == "" {
		t.Skip("REDISPOOL_TEST_SENTINELS is not set (tests/go_binding.rs sets it)")
	}
	name, master, ok := strings.Cut(m, "=")
	if s == "" || !ok || name == "" || master == "" {
		t.Fatalf("REDISPOOL_TEST_SENTINELS=%q REDISPOOL_TEST_SENTINEL_MASTER=%q: want addresses and name=host:port", s, m)
	}
	return strings.Split(s, ","), name, master
}

// newSentinelPool is a sentinel pool of size conns on the deployment's master,
// closed when the test ends.
func newSentinelPool(t *testing.T, sentinels []string, name string, size int) *Pool {
	t.Helper()
	p, err := NewSentinelPool(
		SentinelOptions{MasterName: name, SentinelAddrs: sentinels},
		Options{PoolSize: size, DialTimeout: 5 * time.Second, PoolTimeout: 10 * time.Second},
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestSentinelPool checks that a sentinel pool reaches the master the
// sentinels watch (ROLE says master, the address is the master's) and that
// commands work on it; and that bad options are refused.
func TestSentinelPool(t *testing.T) {
	sentinels, name, master := sentinelSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newSentinelPool(t, sentinels, name, 4)
	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	role, err := cn.Do(ctx, "ROLE")
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := role.([]interface{}); !ok || len(r) == 0 || r[0] != "master" {
		t.Fatalf("ROLE: %v, want master", role)
	}
	const key = "go-sentinel-counter"
	first, err := cn.Do(ctx, "INCR", key)
	if err != nil {
		t.Fatal(err)
	}
	second, err := cn.Do(ctx, "INCR", key)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := first.(int64); !ok || second != f+1 {
		t.Fatalf("INCR twice: %v then %v", first, second)
	}
	if err := p.Put(cn); err != nil {
		t.Fatal(err)
	}
	addr, err := p.SentinelMasterAddr()
	if err != nil {
		t.Fatal(err)
	}
	if addr != master {
		t.Fatalf("SentinelMasterAddr %q, want %q", addr, master)
	}
	if s := p.Stats(); s.Dials == 0 || s.IdleConns != 1 {
		t.Fatalf("sentinel pool stats: %+v", s)
	}

	// An ordinary pool is not a sentinel pool.
	plain, err := New("redis://" + master)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.SentinelMasterAddr(); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("SentinelMasterAddr of a plain pool: %v, want ErrInvalidArg", err)
	}
	for _, bad := range []SentinelOptions{
		{SentinelAddrs: sentinels},
		{MasterName: name},
		{MasterName: name, SentinelAddrs: []string{""}},
	} {
		if _, err := NewSentinelPool(bad, Options{}); !errors.Is(err, ErrInvalidArg) {
			t.Fatalf("NewSentinelPool(%+v): %v, want ErrInvalidArg", bad, err)
		}
	}
	if _, err := NewSentinelPool(SentinelOptions{MasterName: name, SentinelAddrs: sentinels}, Options{Addr: master}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("NewSentinelPool with Addr: %v, want ErrInvalidArg", err)
	}
}

// TestSentinelWaitReplicas checks WaitReplicas through a sentinel pool (the
// deployment's one replica acknowledges, two never do, the replica itself
// refuses WAIT) and SentinelStats (no failover seen; not on a plain pool).
func TestSentinelWaitReplicas(t *testing.T) {
	sentinels, name, master := sentinelSetup(t)
	replica := os.Getenv("REDISPOOL_TEST_SENTINEL_REPLICA")
	if replica == "" {
		t.Fatal("REDISPOOL_TEST_SENTINEL_REPLICA is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newSentinelPool(t, sentinels, name, 2)
	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cn.Do(ctx, "SET", "go-sentinel-waited", "1"); err != nil {
		t.Fatal(err)
	}
	if n, err := cn.WaitReplicas(ctx, 1, 10*time.Second); err != nil || n != 1 {
		t.Fatalf("WaitReplicas(1): %d, %v; want 1, nil", n, err)
	}
	if n, err := cn.WaitReplicas(ctx, 2, 100*time.Millisecond); !errors.Is(err, ErrPoolTimeout) || n != 1 {
		t.Fatalf("WaitReplicas(2) with one replica: %d, %v; want 1, ErrPoolTimeout", n, err)
	}
	if _, err := cn.WaitReplicas(ctx, -1, 100*time.Millisecond); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("WaitReplicas(-1): %v, want ErrInvalidArg", err)
	}
	if v, err := cn.Do(ctx, "GET", "go-sentinel-waited"); err != nil || v != "1" {
		t.Fatalf("GET after the waits: %v, %v", v, err)
	}
	if err := p.Put(cn); err != nil {
		t.Fatal(err)
	}
	st, err := p.SentinelStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Failovers != 0 || st.Switches != 0 || st.InFailover {
		t.Fatalf("SentinelStats without a failover: %+v", st)
	}

	plain, err := New("redis://" + master)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.SentinelStats(); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("SentinelStats of a plain pool: %v, want ErrInvalidArg", err)
	}
	rp, err := New("redis://" + replica)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	rc, err := rp.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.WaitReplicas(ctx, 1, 100*time.Millisecond); !errors.Is(err, ErrIO) {
		t.Fatalf("WaitReplicas on a replica: %v, want ErrIO", err)
	}
	if v, err := rc.Do(ctx, "PING"); err != nil || v != "PONG" {
		t.Fatalf("PING after a refused WAIT: %v, %v", v, err)
	}
	rp.Put(rc)
}

// TestClusterSlotNode checks that SlotNode names the master GetSlot reaches,
// without loading the slot map itself.
func TestClusterSlotNode(t *testing.T) {
	cl := newTestCluster(t, clusterSeeds(t))
	if _, err := cl.SlotNode(0); !errors.Is(err, ErrCluster) {
		t.Fatalf("SlotNode before the map is loaded: %v, want ErrCluster", err)
	}
	if s := cl.Stats(); s.TotalConns != 0 {
		t.Fatalf("SlotNode dialed: %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, slot := range []int{0, 8000, Slots - 1} {
		cn, err := cl.GetSlot(ctx, slot)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cn.Node()
		if err != nil {
			t.Fatal(err)
		}
		cl.Put(cn)
		if got, err := cl.SlotNode(slot); err != nil || got != want {
			t.Fatalf("SlotNode(%d): %q, %v; want %q", slot, got, err, want)
		}
	}
	if _, err := cl.SlotNode(Slots); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("SlotNode(16384): %v, want ErrInvalidArg", err)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestClusterGetPutAllocs checks that a Cluster.Get served by an idle conn,
// a Do and its Put allocate nothing, as Pool.Get: the key is passed in place,
// the error struct stays on the C side, and a conn's *Conn is kept with its
// state.
func TestClusterGetPutAllocs(t *testing.T) {
	cl := newTestCluster(t, clusterSeeds(t))
	ctx := context.Background()
	const key = "go-cluster-allocs"
	cn, err := cl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cn.Do(ctx, "PING"); err != nil { // the conn's state, kept for its life
		t.Fatal(err)
	}
	if err := cl.Put(cn); err != nil {
		t.Fatal(err)
	}
	var failed error
	allocs := testing.AllocsPerRun(1000, func() {
		cn, err := cl.Get(ctx, key)
		if err == nil {
			_, err = cn.Do(ctx, "PING")
		}
		if err == nil {
			err = cl.Put(cn)
		}
		if err != nil && failed == nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	t.Logf("%.1f allocations per Cluster.Get+Do+Put", allocs)
	if allocs != 0 {
		t.Errorf("%.1f allocations per Cluster.Get+Do(PING)+Put, want 0 (the conn's *Conn is kept)", allocs)
	}
}

// A cluster conn's Do waits for its reply in the netpoller: 48 of them waiting
// at once (a BLPOP that answers nil after 300 ms) hold no thread each.
func TestClusterDoInTheNetpoller(t *testing.T) {
	const n = 48
	cl, err := NewCluster(ClusterOptions{
		Seeds: clusterSeeds(t),
		Node:  Options{PoolSize: n, PoolTimeout: 10 * time.Second, ReadTimeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	var conns []*Conn
	for i := 0; i < n; i++ {
		cn, err := cl.Get(ctx, fmt.Sprintf("go-cluster-nb-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	waitsHoldNoThread(t, n, "cluster commands", func(i int) error {
		if _, err := conns[i].Do(ctx, "BLPOP", fmt.Sprintf("go-cluster-nb-%d", i), "0.3"); !errors.Is(err, Nil) {
			return fmt.Errorf("BLPOP: %v, want Nil", err)
		}
		return nil
	})
	for _, cn := range conns {
		if err := cl.Put(cn); err != nil {
			t.Fatal(err)
		}
	}
}

// Goroutines waiting for a cluster conn (Get, GetSlot and GetNode on a node
// whose one-conn pool is taken) wait in Go, on the node's queue, and hold no
// OS thread each; the conn given back goes round all of them, and Stats shows
// them waiting.
func TestClusterGetWaitsInGo(t *testing.T) {
	const n = 48
	cl, err := NewCluster(ClusterOptions{
		Seeds: clusterSeeds(t),
		Node:  Options{PoolSize: 1, PoolTimeout: 30 * time.Second, ReadTimeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	const key = "go-cluster-waits"
	held, err := cl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	node, err := held.Node()
	if err != nil {
		t.Fatal(err)
	}
	// Give the held conn back once every waiter is queued.
	putErr := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for cl.Stats().Waiting < n {
			if time.Now().After(deadline) {
				putErr <- fmt.Errorf("waiters queued: %d, want %d", cl.Stats().Waiting, n)
				cl.Put(held)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		putErr <- cl.Put(held)
	}()
	waitsHoldNoThread(t, n, "cluster gets", func(i int) error {
		var cn *Conn
		var err error
		switch i % 3 {
		case 0:
			cn, err = cl.Get(ctx, key)
		case 1:
			cn, err = cl.GetSlot(ctx, KeySlot(key))
		default:
			cn, err = cl.GetNode(ctx, node)
		}
		if err != nil {
			return fmt.Errorf("waiter %d: %v", i, err)
		}
		if got, err := cn.Node(); err != nil || got != node {
			return fmt.Errorf("waiter %d: a conn of %q (%v), want %q", i, got, err, node)
		}
		if _, err := cn.Do(ctx, "SET", key, strconv.Itoa(i)); err != nil {
			return fmt.Errorf("waiter %d: SET: %v", i, err)
		}
		return cl.Put(cn)
	})
	if err := <-putErr; err != nil {
		t.Fatal(err)
	}
	if s := cl.Stats(); s.Waiting != 0 || s.WaitCount < n {
		t.Errorf("after the waits: Waiting %d, WaitCount %d; want 0 and at least %d", s.Waiting, s.WaitCount, n)
	}
}

// A cluster get queued in Go on a full node ends as the library's wait did:
// at the node pool's timeout (ErrPoolTimeout, counted in Stats), and with
// ErrClosed for every waiter when the Cluster is closed.
func TestClusterWaitEnds(t *testing.T) {
	const n = 6
	cl, err := NewCluster(ClusterOptions{
		Seeds: clusterSeeds(t),
		Node:  Options{PoolSize: 1, PoolTimeout: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	const key = "go-cluster-wait-ends"
	held, err := cl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	timeoutsBefore := cl.Stats().Timeouts
	if _, err := cl.Get(ctx, key); !errors.Is(err, ErrPoolTimeout) {
		t.Fatalf("Get on a full node: %v, want ErrPoolTimeout", err)
	}
	if got := cl.Stats().Timeouts - timeoutsBefore; got != 1 {
		t.Errorf("Stats().Timeouts went up by %d after one pool timeout, want 1", got)
	}

	// Waiters with no pool timeout of their own end at Close.
	cl2, err := NewCluster(ClusterOptions{
		Seeds: clusterSeeds(t),
		Node:  Options{PoolSize: 1, PoolTimeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	held2, err := cl2.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := cl2.Get(ctx, key)
			errs <- err
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for cl2.Stats().Waiting < n {
		if time.Now().After(deadline) {
			t.Fatalf("waiters queued: %d, want %d", cl2.Stats().Waiting, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cl2.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("a waiter at Close: %v, want ErrClosed", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d waiters still waiting 30s after Close", n-i)
		}
	}
	if err := cl2.Put(held2); err != nil {
		t.Errorf("Put after Close: %v", err)
	}
	if err := cl.Put(held); err != nil {
		t.Fatal(err)
	}
}

// A cluster Get that waits on its node's queue allocates nothing, as one
// served at once does: the waiter, its channel and timer are reused, the
// route (slot -> node -> queue) allocates nothing, and the conn's *Conn is
// kept with its state.
func TestClusterWaitedGetAllocs(t *testing.T) {
	cl, err := NewCluster(ClusterOptions{
		Seeds: clusterSeeds(t),
		Node:  Options{PoolSize: 1, PoolTimeout: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	const key = "go-cluster-waited-allocs"
	held, err := cl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := held.Do(ctx, "PING"); err != nil { // the conn's state, kept for its life
		t.Fatal(err)
	}
	give := make(chan *Conn)
	given := make(chan error)
	go func() {
		for cn := range give {
			// Put back once the Get below waits (bounded by the test's timeout).
			for cl.waiting.Load() != 1 {
				runtime.Gosched()
			}
			given <- cl.Put(cn)
		}
	}()
	defer close(give)
	var failed error
	round := func() {
		give <- held
		cn, err := cl.Get(ctx, key)
		if perr := <-given; perr != nil && failed == nil {
			failed = perr
		}
		if err != nil {
			if failed == nil {
				failed = err
			}
			return
		}
		held = cn
	}
	round()
	allocs := testing.AllocsPerRun(200, round)
	if failed != nil {
		t.Fatal(failed)
	}
	if err := cl.Put(held); err != nil {
		t.Fatal(err)
	}
	if s := cl.Stats(); s.WaitCount < 200 {
		t.Errorf("WaitCount %d after 201 waited Gets: they did not wait in Go", s.WaitCount)
	}
	t.Logf("%.1f allocations per waited Cluster.Get", allocs)
	if allocs != 0 {
		t.Errorf("%.1f allocations per waited Cluster.Get, want 0", allocs)
	}
}
