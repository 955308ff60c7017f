// Package redispool is the Go binding of redispool, a Redis connection pool with
// go-redis pool semantics written in Rust and shipped as a C library
// (libredispool.so / libredispool.a, header redispool.h).
//
// The package uses cgo and finds the library through pkg-config: install
// redispool (which installs redispool.pc), or point PKG_CONFIG_PATH at a
// directory holding a redispool.pc for a build tree. CGO_ENABLED=1 is
// required. It depends on the Go standard library only and needs Go 1.21 or
// later. The module is not on a module proxy: README.md shows how to depend on
// a checkout (go work use, or a replace directive).
//
// A Pool hands out Conns: Get waits (in arrival order) for a free turn, at most
// the pool timeout or until the context is done, whichever comes first; Put
// gives a Conn back, Remove closes it. Errors compare with errors.Is against
// ErrClosed, ErrPoolExhausted, ErrPoolTimeout and the other sentinels; a Get
// ended by its context matches context.Canceled or context.DeadlineExceeded.
//
//	pool, err := redispool.New("redis://127.0.0.1:6379/0?pool_size=10&pool_timeout=2s")
//	if err != nil {
//		return err
//	}
//	defer pool.Close()
//
//	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
//	defer cancel()
//	cn, err := pool.Get(ctx)
//	if errors.Is(err, redispool.ErrPoolTimeout) || errors.Is(err, context.DeadlineExceeded) {
//		return err // overloaded: no conn in time
//	} else if err != nil {
//		return err
//	}
//	defer pool.Put(cn)
//	n, err := cn.Do(ctx, "INCR", "visits") // int64(…)
//
// # Threads
//
// No call of a Pool's conns waits inside cgo. A goroutine waiting for a conn
// (Get, GetPolled) queues in Go, in arrival order; one reactor goroutine per
// pool waits on the pool's notify fd in Go's netpoller and hands each conn
// that comes back to the oldest waiter, so a waiting goroutine holds no OS
// thread and a conn put back wakes one goroutine. Conn.Do, DoTimeout,
// Pipeline and TxPipeline start the command (pool_conn_start,
// pool_conn_start_pipeline) and wait for the reply in the netpoller, on pool
// and cluster conns alike (a cluster redirect is followed by the blocking
// call, holding a thread for that command only). Cluster.Get, GetSlot and
// GetNode wait the same way, on the queue of the node the slot routes to
// (pool_cluster_slot_node, pool_cluster_node_pool); only the first gets,
// which load the slot map, wait in the library (holding a thread, with a
// helper goroutine that fires a cancel token on ctx.Done()).
//
// # Conns and commands
//
// A Conn is used by one goroutine at a time, from Get until Put or Remove.
// Conn.Do sends one command and returns its reply converted to Go values
// (string, int64, float64, bool, []interface{}, map[interface{}]interface{},
// *big.Int, nil, or RedisError inside arrays); a nil reply gives the error Nil,
// a Redis error reply the error RedisError. Conn.FD gives the socket for your
// own I/O.
//
// # Cluster and Sentinel
//
// NewClusterURL (go-redis's ParseClusterURL format) and NewCluster make a
// Cluster: a slot map and one pool per node. Cluster.Get(ctx, key) returns a
// conn to the master of the key's hash slot (GetSlot and GetNode choose
// directly); give it back with Cluster.Put or Cluster.Remove. Conn.Do on it
// follows MOVED and ASK redirects. Errors are those of Pool.Get, plus
// ErrCluster when no node gives a slot map or no master serves the slot.
// Cluster.Stats and Cluster.PoolStats add up the node pools; Cluster.Info
// counts refreshes and redirects; Cluster.Nodes lists the nodes.
//
//	cl, err := redispool.NewClusterURL("redis://10.0.0.1:7000?addr=10.0.0.2:7000")
//	cn, err := cl.Get(ctx, "user:{42}")
//	v, err := cn.Do(ctx, "GET", "user:{42}")
//	cl.Put(cn)
//
// NewSentinelPool returns an ordinary *Pool for the master Redis Sentinel
// names, which follows failovers (no Get after a switch hands out a conn to
// the old master); Pool.SentinelMasterAddr reports the master it dials.
//
// # Stats
//
// Pool.PoolStats returns go-redis v9's PoolStats fields (uint32 counters,
// WaitDurationNs), so metrics adapters written for go-redis fit; Pool.Stats
// has every counter of the library's pool_stats_t.
package redispool
