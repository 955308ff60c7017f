package redispool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	redispool "github.com/redispool/redispool-go"
)

// Get a conn with a request's context, run a command, give the conn back.
func ExamplePool_Get() {
	pool, err := redispool.New("redis://127.0.0.1:6379/0?pool_size=10&pool_timeout=2s")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	cn, err := pool.Get(ctx)
	switch {
	case errors.Is(err, redispool.ErrPoolTimeout), errors.Is(err, context.DeadlineExceeded):
		log.Print("overloaded: no conn in time: ", err)
		return
	case err != nil:
		log.Fatal(err)
	}
	defer pool.Put(cn)

	visits, err := cn.Do(ctx, "INCR", "visits")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("visits:", visits.(int64))

	if _, err := cn.Do(ctx, "GET", "no-such-key"); err == redispool.Nil {
		fmt.Println("no-such-key is not set")
	}
}

// Options instead of a URL.
func ExampleNewWithOptions() {
	pool, err := redispool.NewWithOptions(redispool.Options{
		Addr:         "127.0.0.1:6379",
		PoolSize:     20,
		MinIdleConns: 2,
		PoolTimeout:  time.Second,
		ReadTimeout:  -1, // no read timeout (e.g. for blocking commands)
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st := pool.Stats()
	fmt.Println(st.TotalConns, st.IdleConns)
}

// GetPolled never dials on the calling goroutine: a miss starts a dial on a
// library thread, and the goroutine waits in the pool's queue meanwhile.
func ExamplePool_GetPolled() {
	pool, err := redispool.New("redis://127.0.0.1:6379?pool_size=4")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	cn, err := pool.GetPolled(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	pool.Put(cn)
}

// A conn to the master serving a key of a Redis Cluster; the command follows
// MOVED / ASK. (Not run by go test: it needs a cluster at these addresses.)
func ExampleCluster_Get() {
	cl, err := redispool.NewClusterURL("redis://127.0.0.1:7000?addr=127.0.0.1:7001&pool_size=10")
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	cn, err := cl.Get(ctx, "user:{42}:visits")
	if errors.Is(err, redispool.ErrCluster) {
		log.Print("no slot map or no master for the slot: ", err)
		return
	} else if err != nil {
		log.Fatal(err)
	}
	defer cl.Put(cn)
	n, err := cn.Do(ctx, "INCR", "user:{42}:visits")
	if err != nil {
		log.Fatal(err)
	}
	node, _ := cn.Node()
	fmt.Println(n, "from", node, "slot", redispool.KeySlot("user:{42}:visits"))
}

// A pool for the master Redis Sentinel names; it follows failovers.
// (Not run by go test: it needs sentinels at these addresses.)
func ExampleNewSentinelPool() {
	pool, err := redispool.NewSentinelPool(
		redispool.SentinelOptions{
			MasterName:    "mymaster",
			SentinelAddrs: []string{"127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381"},
		},
		redispool.Options{PoolSize: 10, PoolTimeout: 2 * time.Second},
	)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	cn, err := pool.Get(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Put(cn)
	role, err := cn.Do(context.Background(), "ROLE")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(role.([]interface{})[0]) // master
}
