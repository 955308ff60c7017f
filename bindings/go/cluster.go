package redispool

/*
#cgo pkg-config: redispool
#include <stdlib.h>
#include <string.h>
#include <redispool.h>

// As rp_get in redispool.go: the pool_error_t and the conn out-pointer stay on
// the C stack, so a Cluster.Get allocates only its *Conn.
typedef struct {
	pool_status_t status;
	pool_conn_t *conn;
	char *msg; // NULL on success or when the library gave no message; free() it
	uintptr_t ud; // the conn's userdata: its kept state (nonblocking.go), or NULL
} rp_cluster_result;

static rp_cluster_result rp_cluster_get(pool_cluster_t *cluster, const char *key, size_t keylen,
                                        int64_t timeout_ms, const pool_cancel_t *cancel) {
	rp_cluster_result r = {POOL_OK, NULL, NULL, 0};
	pool_error_t err;
	err.message[0] = 0;
	r.status = pool_cluster_get(cluster, key, keylen, timeout_ms, cancel, &r.conn, &err);
	if (r.status != POOL_OK && err.message[0] != 0)
		r.msg = strdup(err.message);
	if (r.status == POOL_OK)
		r.ud = (uintptr_t)pool_conn_userdata(r.conn);
	return r;
}

static rp_cluster_result rp_cluster_get_slot(pool_cluster_t *cluster, int32_t slot,
                                             int64_t timeout_ms, const pool_cancel_t *cancel) {
	rp_cluster_result r = {POOL_OK, NULL, NULL, 0};
	pool_error_t err;
	err.message[0] = 0;
	r.status = pool_cluster_get_slot(cluster, slot, timeout_ms, cancel, &r.conn, &err);
	if (r.status != POOL_OK && err.message[0] != 0)
		r.msg = strdup(err.message);
	if (r.status == POOL_OK)
		r.ud = (uintptr_t)pool_conn_userdata(r.conn);
	return r;
}

static rp_cluster_result rp_cluster_get_node(pool_cluster_t *cluster, const char *addr,
                                             int64_t timeout_ms, const pool_cancel_t *cancel) {
	rp_cluster_result r = {POOL_OK, NULL, NULL, 0};
	pool_error_t err;
	err.message[0] = 0;
	r.status = pool_cluster_get_node(cluster, addr, timeout_ms, cancel, &r.conn, &err);
	if (r.status != POOL_OK && err.message[0] != 0)
		r.msg = strdup(err.message);
	if (r.status == POOL_OK)
		r.ud = (uintptr_t)pool_conn_userdata(r.conn);
	return r;
}

// The master of a slot per the current slot map (pool_cluster_slot_node),
// returned by value so that the address never lives in Go memory C writes.
typedef struct {
	pool_status_t status;
	size_t len;
	char addr[POOL_CLUSTER_ADDR_MAX];
} rp_slot_node_result;

static rp_slot_node_result rp_slot_node(const pool_cluster_t *cluster, int32_t slot) {
	rp_slot_node_result r;
	r.len = 0;
	r.addr[0] = 0;
	r.status = pool_cluster_slot_node(cluster, slot, r.addr, sizeof r.addr);
	if (r.status == POOL_OK)
		r.len = strlen(r.addr);
	return r;
}
*/
import "C"

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Slots is the number of hash slots of a Redis Cluster (0..Slots-1).
const Slots = 16384

// Cluster is a Redis Cluster client: the cluster's slot map and one
// connection pool per node, made when first needed. Get returns a conn to the
// master serving a key; commands sent on it with Conn.Do follow MOVED and ASK
// redirects (and retry TRYAGAIN / CLUSTERDOWN) up to MaxRedirects times. It is
// safe for concurrent use by any number of goroutines. Close it when done; its
// C memory is released when the Cluster is garbage collected.
type Cluster struct {
	c        *C.pool_cluster_t
	timeout  poolTimeout   // the node pools' pool timeout
	overtake time.Duration // the node pools' overtake window (<= 0: strict arrival order)

	// Gets that find a node's pool full wait in Go, on the queue of a Pool
	// made of that node's pool (pool_cluster_node_pool): one per node, made on
	// its first wait, kept (and so freed) with the Cluster.
	nodesMu sync.Mutex
	nodes   map[string]*Pool
	waiting atomic.Int32 // goroutines queued on a node's queue
	mapped  atomic.Bool  // a Get by key or slot succeeded: the slot map is loaded
}

// ClusterOptions configures a Cluster made by NewCluster. The zero value of a
// field keeps the library's default (see pool_cluster_options_t).
type ClusterOptions struct {
	// Seeds are "host:port" of cluster nodes to load the slot map from (any
	// nodes; one is enough). Node.Addr, when set, is one more seed.
	Seeds []string
	// Node configures every node's pool (PoolSize, timeouts, Password, …).
	// Its DB must be 0.
	Node Options
	// MaxRedirects is the number of MOVED / ASK redirects (and TRYAGAIN /
	// CLUSTERDOWN retries) Conn.Do follows per command. 0 = 3 (go-redis's
	// default); negative = none; at most 100.
	MaxRedirects int
	// RefreshMinInterval is the least time between two slot map refreshes
	// triggered by MOVED or a node that cannot be dialed. 0 = 100ms; negative
	// = no minimum.
	RefreshMinInterval time.Duration
}

// NewClusterURL makes a Cluster from a go-redis cluster URL
// (redis.ParseClusterURL format):
// redis://[[user]:password@]host:port[?addr=host2:port2&addr=host3:port3&…].
// The host and every addr are seeds; max_redirects and refresh_min_interval
// are the cluster's options, every other parameter a node pool option as in
// New. An invalid URL gives an error matching ErrInvalidArg (never showing the
// password). It dials nothing: the first Get loads the slot map.
func NewClusterURL(rawURL string) (*Cluster, error) {
	if strings.IndexByte(rawURL, 0) >= 0 {
		return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: the URL contains a NUL byte"}
	}
	curl := C.CString(rawURL)
	defer C.free(unsafe.Pointer(curl))
	var c *C.pool_cluster_t
	var cerr C.pool_error_t
	if st := C.pool_cluster_new_url(curl, &c, &cerr); st != C.POOL_OK {
		return nil, errorFrom(st, &cerr)
	}
	return newCluster(c, urlPoolTimeout(rawURL), urlOvertakeWindow(rawURL)), nil
}

// NewCluster makes a Cluster from opts. Invalid options give an error matching
// ErrInvalidArg that names the field. It dials nothing: the first Get loads
// the slot map.
func NewCluster(opts ClusterOptions) (*Cluster, error) {
	node, err := opts.Node.toC()
	if err != nil {
		return nil, err
	}
	defer node.free()
	var co C.pool_cluster_options_t
	C.pool_cluster_options_init(&co)
	if len(opts.Seeds) > 0 {
		// The seed array lives in C memory: C may not keep pointers to Go memory.
		seeds := (**C.char)(C.calloc(C.size_t(len(opts.Seeds)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		if seeds == nil {
			return nil, &Error{Code: CodeInternal, Msg: "redispool: out of memory"}
		}
		defer C.free(unsafe.Pointer(seeds))
		arr := unsafe.Slice(seeds, len(opts.Seeds))
		for i, s := range opts.Seeds {
			if s == "" {
				return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: Seeds[" + strconv.Itoa(i) + "] is empty"}
			}
			if arr[i], err = node.cString("Seeds", s); err != nil {
				return nil, err
			}
		}
		co.seeds = seeds
		co.seeds_len = C.size_t(len(opts.Seeds))
	}
	// The node options too: co may not point to Go memory.
	nodeOpts := (*C.pool_options_t)(C.malloc(C.sizeof_pool_options_t))
	if nodeOpts == nil {
		return nil, &Error{Code: CodeInternal, Msg: "redispool: out of memory"}
	}
	defer C.free(unsafe.Pointer(nodeOpts))
	*nodeOpts = node.opts
	co.node = nodeOpts
	switch {
	case opts.MaxRedirects > 0:
		co.max_redirects = C.int32_t(clampInt32(opts.MaxRedirects))
	case opts.MaxRedirects < 0:
		co.max_redirects = 0
	}
	setMillis(&co.refresh_min_interval_ms, opts.RefreshMinInterval, 0)

	var c *C.pool_cluster_t
	var cerr C.pool_error_t
	if st := C.pool_cluster_new(&co, &c, &cerr); st != C.POOL_OK {
		return nil, errorFrom(st, &cerr)
	}
	return newCluster(c, poolTimeoutFromMillis(int64(node.opts.pool_timeout_ms)),
		time.Duration(node.opts.overtake_window_ms)*time.Millisecond), nil
}

// clampInt32 keeps v in int32's range so the library sees an out-of-range
// value as one (and refuses it) rather than a wrapped one.
func clampInt32(v int) int32 {
	switch {
	case v > 1<<31-1:
		return 1<<31 - 1
	case v < -1<<31:
		return -1 << 31
	}
	return int32(v)
}

func newCluster(c *C.pool_cluster_t, timeout poolTimeout, overtake time.Duration) *Cluster {
	cl := &Cluster{c: c, timeout: timeout, overtake: overtake}
	runtime.SetFinalizer(cl, (*Cluster).finalize)
	return cl
}

// finalize releases the C handle; pool_cluster_free never blocks. Conns still
// checked out keep a reference to the Cluster, so it runs once they are
// unreachable.
func (cl *Cluster) finalize() {
	C.pool_cluster_free(cl.c)
	cl.c = nil
}

// conn is the *Conn for handle h, whose userdata is ud: the conn's kept one
// when it has a connState (so a warm Get allocates nothing), a new one
// otherwise.
func (cl *Cluster) conn(h *C.pool_conn_t, ud uintptr) *Conn {
	if cs := stateOf(ud); cs != nil {
		cs.conn.h, cs.conn.pool, cs.conn.cluster = h, nil, cl
		return &cs.conn
	}
	return &Conn{h: h, cluster: cl}
}

// releaseCluster drops a kept Conn's reference to its Cluster as it is
// given back (as release does for a pool); true when it did.
func (cn *Conn) releaseCluster(cl *Cluster) bool {
	if cn.cs != nil && cn == &cn.cs.conn && cn.cluster == cl {
		cn.cluster = nil
		return true
	}
	return false
}

// KeySlot returns the hash slot of key (0..Slots-1): CRC16 of the key, or of
// its hash tag (the text between the first "{" and the next "}", when not
// empty), as Redis Cluster computes it.
func KeySlot(key string) int {
	return int(C.pool_cluster_key_slot((*C.char)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key))))
}

// Get returns a conn to the master serving key's hash slot, from that node's
// pool. The first Get loads the slot map; a node that cannot be dialed makes
// the cluster refresh its map and try once more where the slot now lives. It
// waits and fails as Pool.Get does (ctx, the node pool's timeout), and with an
// error matching ErrCluster when no node gives a slot map or no master serves
// the slot. Give the conn back with Put or Remove.
//
// As Pool.Get, it waits in Go, never in a cgo call: a free turn costs one cgo
// call that does not wait for one (it may load the slot map or dial on the
// calling goroutine); when the node's pool is full, the goroutine queues on
// that node's queue (see Pool.GetPolled), fed by one reactor goroutine per
// node from the node pool's notify fd. So goroutines waiting for cluster
// conns hold no OS thread, and ctx costs no helper goroutine. A slot that
// moves to another node meanwhile still gets a conn of the node it was routed
// to, on which Do follows MOVED. While the pool is full a dial that fails
// shows as the pool timeout (as in GetPolled).
func (cl *Cluster) Get(ctx context.Context, key string) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	// The key's bytes are passed in place (C reads them during the call only).
	kp := (*C.char)(unsafe.Pointer(unsafe.StringData(key)))
	kl := C.size_t(len(key))
	slot := -1
	if cl.waiting.Load() > 0 {
		slot = int(C.pool_cluster_key_slot(kp, kl))
	}
	cn, err := cl.get(ctx, slot, true, func() *Pool {
		if slot < 0 {
			slot = int(C.pool_cluster_key_slot(kp, kl))
		}
		return cl.slotPool(slot)
	}, func(ms C.int64_t, tok *C.pool_cancel_t) C.rp_cluster_result {
		return C.rp_cluster_get(cl.c, kp, kl, ms, tok)
	})
	runtime.KeepAlive(key)
	return cn, err
}

// GetSlot is Get for hash slot slot (0..Slots-1; any other value gives an
// error matching ErrInvalidArg).
func (cl *Cluster) GetSlot(ctx context.Context, slot int) (*Conn, error) {
	if slot < 0 || slot >= Slots {
		return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: slot " + strconv.Itoa(slot) + " is not in 0..16383"}
	}
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	return cl.get(ctx, slot, true, func() *Pool { return cl.slotPool(slot) },
		func(ms C.int64_t, tok *C.pool_cancel_t) C.rp_cluster_result {
			return C.rp_cluster_get_slot(cl.c, C.int32_t(slot), ms, tok)
		})
}

// GetNode returns a conn to node addr ("host:port", master or replica, known
// to the slot map or not) from its pool, made on first use. It does not need
// the slot map. Otherwise as Get.
func (cl *Cluster) GetNode(ctx context.Context, addr string) (*Conn, error) {
	if strings.IndexByte(addr, 0) >= 0 {
		return nil, &Error{Code: CodeInvalidArg, Msg: "redispool: the address contains a NUL byte"}
	}
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	caddr := C.CString(addr)
	defer C.free(unsafe.Pointer(caddr))
	return cl.get(ctx, -1, false, func() *Pool { return cl.nodePool(addr) },
		func(ms C.int64_t, tok *C.pool_cancel_t) C.rp_cluster_result {
			return C.rp_cluster_get_node(cl.c, caddr, ms, tok)
		})
}

// get is the Get methods' common part. slot >= 0 when known before the first
// try (only then are there waiters whose order it must keep); needsMap that
// the get needs the slot map; route names the node's Pool (nil when it
// cannot: no slot map yet, no master for the slot); get runs the library's
// get with a timeout (0: no wait for a turn) and a cancel token.
func (cl *Cluster) get(ctx context.Context, slot int, needsMap bool, route func() *Pool, get func(ms C.int64_t, tok *C.pool_cancel_t) C.rp_cluster_result) (*Conn, error) {
	if needsMap && !cl.mapped.Load() {
		// The first gets load the slot map, which a get that may not wait
		// cannot: they wait in the library, as the map load does anyway.
		cn, err := cl.blockingGet(ctx, get)
		if err == nil {
			cl.mapped.Store(true)
		}
		return cn, err
	}
	var node *Pool
	if cl.waiting.Load() > 0 && (slot >= 0 || cl.hasNodes()) {
		// Goroutines wait for conns: a conn of this node goes to them first.
		if node = route(); node != nil && !node.q.mayTake(cl.overtake) {
			return cl.waitNode(ctx, node)
		}
	}
	r := get(0, nil)
	runtime.KeepAlive(cl)
	switch {
	case r.status == C.POOL_OK:
		return cl.conn(r.conn, uintptr(r.ud)), nil
	case r.status != C.POOL_ERR_TIMEOUT:
		msg := ""
		if r.msg != nil {
			msg = C.GoString(r.msg)
		}
		C.free(unsafe.Pointer(r.msg))
		return nil, errorWithMessage(r.status, msg)
	}
	// The node's pool is full (or, rarely, the slot map is being loaded by
	// another goroutine): queue in Go on the node's queue.
	C.free(unsafe.Pointer(r.msg))
	if node == nil {
		node = route()
	}
	if node == nil {
		// No route (a slot map being reloaded without this slot's master):
		// the library's own wait.
		return cl.blockingGet(ctx, get)
	}
	// The library counted that try as a timeout: Stats takes it back.
	node.q.noWaitMisses.Add(1)
	return cl.waitNode(ctx, node)
}

// blockingGet waits for a conn inside the library (waitGet).
func (cl *Cluster) blockingGet(ctx context.Context, get func(ms C.int64_t, tok *C.pool_cancel_t) C.rp_cluster_result) (*Conn, error) {
	var ud uintptr
	h, err := waitGet(ctx, cl.timeout, func(ms C.int64_t, tok *C.pool_cancel_t) (C.pool_status_t, *C.pool_conn_t, *C.char) {
		r := get(ms, tok)
		ud = uintptr(r.ud)
		return r.status, r.conn, r.msg
	})
	runtime.KeepAlive(cl)
	if err != nil {
		return nil, err
	}
	return cl.conn(h, ud), nil
}

// hasNodes tells whether any node has a queue (GetNode checks for waiters
// only then).
func (cl *Cluster) hasNodes() bool {
	cl.nodesMu.Lock()
	n := len(cl.nodes)
	cl.nodesMu.Unlock()
	return n > 0
}

// waitNode queues the calling goroutine on node's queue.
func (cl *Cluster) waitNode(ctx context.Context, node *Pool) (*Conn, error) {
	cl.waiting.Add(1)
	h, ud, err := node.waitHandle(ctx)
	cl.waiting.Add(-1)
	if err != nil {
		return nil, err
	}
	return cl.conn(h, ud), nil
}

// slotPool is the Pool of the master serving slot per the current slot map,
// or nil when there is none (the map is not loaded, no master serves it).
func (cl *Cluster) slotPool(slot int) *Pool {
	r := C.rp_slot_node(cl.c, C.int32_t(slot))
	runtime.KeepAlive(cl)
	if r.status != C.POOL_OK {
		return nil
	}
	addr := unsafe.Slice((*byte)(unsafe.Pointer(&r.addr[0])), int(r.len))
	cl.nodesMu.Lock()
	p := cl.nodes[string(addr)] // no allocation: the conversion is only a key
	cl.nodesMu.Unlock()
	if p != nil {
		return p
	}
	return cl.nodePool(string(addr))
}

// nodePool is node addr's Pool (with its queue), made on first use; nil when
// the library has no pool for it (closed, a bad address).
func (cl *Cluster) nodePool(addr string) *Pool {
	cl.nodesMu.Lock()
	defer cl.nodesMu.Unlock()
	if p := cl.nodes[addr]; p != nil {
		return p
	}
	caddr := C.CString(addr)
	defer C.free(unsafe.Pointer(caddr))
	var cp *C.pool_t
	var cerr C.pool_error_t
	st := C.pool_cluster_node_pool(cl.c, caddr, &cp, &cerr)
	runtime.KeepAlive(cl)
	if st != C.POOL_OK {
		return nil
	}
	// Its finalizer gives back this reference (pool_free) once the Cluster,
	// which holds it in nodes, is unreachable.
	p := newPool(cp, cl.timeout, cl.overtake)
	if cl.nodes == nil {
		cl.nodes = make(map[string]*Pool)
	}
	cl.nodes[addr] = p
	return p
}

// Put gives cn, from one of the Cluster's Get methods, back to its node's
// pool, with Pool.Put's rules: a conn a command failed on is removed, a conn
// not checked out from this cluster gives an error matching ErrInvalidArg,
// and after Close the conn is simply closed.
func (cl *Cluster) Put(cn *Conn) error {
	if cn == nil {
		return statusError(C.POOL_ERR_INVALID_ARG, "cluster put: nil conn")
	}
	kept := cn.releaseCluster(cl)
	st := C.pool_cluster_put(cl.c, cn.h)
	runtime.KeepAlive(cl)
	if st != C.POOL_OK {
		if kept {
			cn.cluster = cl
		}
		return statusError(st, "cluster put")
	}
	return nil
}

// Remove closes cn and frees its turn in its node's pool (Pool.Remove's
// rules). reason is informational.
func (cl *Cluster) Remove(cn *Conn, reason string) error {
	if cn == nil {
		return statusError(C.POOL_ERR_INVALID_ARG, "cluster remove: nil conn")
	}
	var creason *C.char
	if reason != "" {
		creason = C.CString(strings.ReplaceAll(reason, "\x00", " "))
		defer C.free(unsafe.Pointer(creason))
	}
	kept := cn.releaseCluster(cl)
	st := C.pool_cluster_remove(cl.c, cn.h, creason)
	runtime.KeepAlive(cl)
	if st != C.POOL_OK {
		if kept {
			cn.cluster = cl
		}
		return statusError(st, "cluster remove")
	}
	return nil
}

// Node returns the node ("host:port") cn, a conn of the cluster, is
// connected to. An error matching ErrInvalidArg for a conn that is not
// checked out or not a cluster conn.
func (cn *Conn) Node() (string, error) {
	var buf [C.POOL_CLUSTER_ADDR_MAX]C.char
	st := C.pool_cluster_conn_node(cn.h, &buf[0], C.size_t(len(buf)))
	if st != C.POOL_OK {
		return "", statusError(st, "conn node")
	}
	return C.GoString(&buf[0]), nil
}

// SlotNode returns the master ("host:port") serving hash slot slot per the
// slot map as it is now (pool_cluster_slot_node): it never loads the map,
// dials or waits. The map may change right after: a conn of the node named
// still follows MOVED / ASK. An error matching ErrCluster before a Get (or
// Refresh) loaded the map, or when no master serves the slot; ErrInvalidArg
// for a slot outside 0..16383; ErrClosed after Close.
func (cl *Cluster) SlotNode(slot int) (string, error) {
	if slot < 0 || slot >= Slots {
		return "", &Error{Code: CodeInvalidArg, Msg: "redispool: slot node: slot " + strconv.Itoa(slot) + " out of range 0..16383"}
	}
	r := C.rp_slot_node(cl.c, C.int32_t(slot))
	runtime.KeepAlive(cl)
	if r.status != C.POOL_OK {
		return "", statusError(r.status, "slot node")
	}
	return C.GoStringN(&r.addr[0], C.int(r.len)), nil
}

// Refresh reloads the slot map now, asking the known nodes and then the seeds
// until one answers. ctx's deadline bounds it (without one, the node pools'
// pool timeout does). An error matching ErrCluster when no node answered,
// ErrPoolTimeout, or ErrClosed.
func (cl *Cluster) Refresh(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return contextError(err)
	}
	ms := int64(-1)
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return contextError(context.DeadlineExceeded)
		}
		ms = ceilMillis(left)
	}
	var cerr C.pool_error_t
	st := C.pool_cluster_refresh(cl.c, C.int64_t(ms), &cerr)
	runtime.KeepAlive(cl)
	if st != C.POOL_OK {
		return errorFrom(st, &cerr)
	}
	return nil
}

// Stats returns the statistics of every node pool added up (counters and
// gauges).
func (cl *Cluster) Stats() Stats {
	var s C.pool_stats_t
	s.struct_size = C.sizeof_pool_stats_t
	C.pool_cluster_stats(cl.c, nil, &s)
	runtime.KeepAlive(cl)
	out := statsFromC(&s)
	cl.nodesMu.Lock()
	for _, p := range cl.nodes {
		p.q.addStats(&out)
	}
	cl.nodesMu.Unlock()
	return out
}

// PoolStats is Stats in the shape of go-redis's ClusterClient.PoolStats (the
// node pools' stats added up), for go-redis metrics adapters.
func (cl *Cluster) PoolStats() *PoolStats { return cl.Stats().poolStats() }

// NodeStats returns the statistics of node addr's pool; an error matching
// ErrInvalidArg when that node has no pool.
func (cl *Cluster) NodeStats(addr string) (Stats, error) {
	if strings.IndexByte(addr, 0) >= 0 {
		return Stats{}, &Error{Code: CodeInvalidArg, Msg: "redispool: the address contains a NUL byte"}
	}
	caddr := C.CString(addr)
	defer C.free(unsafe.Pointer(caddr))
	var s C.pool_stats_t
	s.struct_size = C.sizeof_pool_stats_t
	st := C.pool_cluster_stats(cl.c, caddr, &s)
	runtime.KeepAlive(cl)
	if st != C.POOL_OK {
		return Stats{}, statusError(st, "node stats "+addr)
	}
	out := statsFromC(&s)
	cl.nodesMu.Lock()
	if p := cl.nodes[addr]; p != nil {
		p.q.addStats(&out)
	}
	cl.nodesMu.Unlock()
	return out, nil
}

// ClusterInfo holds a Cluster's own counters (pool_cluster_info_t); Nodes,
// Masters and SlotsCovered are gauges.
type ClusterInfo struct {
	Refreshes     uint64 // slot map loads that succeeded
	RefreshErrors uint64 // slot map loads that found no node able to answer
	Moved         uint64 // MOVED replies followed by Conn.Do
	Ask           uint64 // ASK replies followed (with ASKING)
	Retries       uint64 // TRYAGAIN / CLUSTERDOWN replies retried
	Nodes         uint32 // nodes with a pool right now
	Masters       uint32 // masters in the slot map
	SlotsCovered  uint32 // slots with a master in the slot map (Slots when the cluster is whole)
}

// Info returns the cluster's own counters: slot map refreshes, redirects
// followed, and the nodes, masters and slots of the current map.
func (cl *Cluster) Info() ClusterInfo {
	var i C.pool_cluster_info_t
	i.struct_size = C.sizeof_pool_cluster_info_t
	C.pool_cluster_info(cl.c, &i)
	runtime.KeepAlive(cl)
	return ClusterInfo{
		Refreshes:     uint64(i.refreshes),
		RefreshErrors: uint64(i.refresh_errors),
		Moved:         uint64(i.moved),
		Ask:           uint64(i.ask),
		Retries:       uint64(i.retries),
		Nodes:         uint32(i.nodes),
		Masters:       uint32(i.masters),
		SlotsCovered:  uint32(i.slots_covered),
	}
}

// ClusterNode is one node of a Cluster, as Nodes lists it.
type ClusterNode struct {
	Addr   string // "host:port"
	Master bool   // it serves slots as a master per the slot map
	Slots  int    // the number of slots it serves
}

// Nodes lists the cluster's nodes: the masters of the slot map first, then
// replicas and other nodes with a pool, sorted by address within each group.
// Empty before the slot map was loaded (by the first Get or Refresh).
func (cl *Cluster) Nodes() []ClusterNode {
	var count C.size_t
	C.pool_cluster_nodes(cl.c, nil, 0, &count)
	for {
		n := int(count)
		if n == 0 {
			runtime.KeepAlive(cl)
			return nil
		}
		// C memory: the array holds no Go pointers but is filled by C.
		buf := (*C.pool_cluster_node_t)(C.calloc(C.size_t(n), C.sizeof_pool_cluster_node_t))
		if buf == nil {
			return nil
		}
		C.pool_cluster_nodes(cl.c, buf, C.size_t(n), &count)
		if int(count) > n { // a node pool was made meanwhile: ask again
			C.free(unsafe.Pointer(buf))
			continue
		}
		arr := unsafe.Slice(buf, int(count))
		nodes := make([]ClusterNode, len(arr))
		for i := range arr {
			nodes[i] = ClusterNode{
				Addr:   C.GoString(&arr[i].addr[0]),
				Master: arr[i].master != 0,
				Slots:  int(arr[i].slots),
			}
		}
		C.free(unsafe.Pointer(buf))
		runtime.KeepAlive(cl)
		return nodes
	}
}

// Close closes every node pool (as Pool.Close): idle conns are closed,
// waiting Gets fail with ErrClosed, and conns checked out are closed when
// given back. A second Close returns ErrClosed.
func (cl *Cluster) Close() error {
	st := C.pool_cluster_close(cl.c)
	runtime.KeepAlive(cl)
	if st != C.POOL_OK {
		return statusError(st, "cluster close")
	}
	return nil
}
