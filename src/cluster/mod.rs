//! Redis Cluster: one `ConnPool` per node, created on demand with shared options, and a
//! slot map loaded with CLUSTER SHARDS (CLUSTER SLOTS on servers without it). Plain safe
//! Rust, knowing nothing of C.
//!
//! - The slot map is refreshed when a command is redirected with MOVED, when dialing a node
//!   fails, and on demand; never more than one refresh runs at a time (a mutex), and
//!   triggered refreshes are at least `refresh_min_interval` apart.
//! - `follow` retries a command that answered MOVED / ASK (with ASKING) / TRYAGAIN /
//!   CLUSTERDOWN on the right node, at most `max_redirects` times.
//! - The node pools are generic (`NodePool`) so the C layer can wrap each in its own handle.

pub mod slot;
pub mod topology;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::pool::{CancelToken, Conn, ConnPool, Dialer, Error, Options, Result, Stats, Wait};
use crate::redis::io::Deadline;
use crate::redis::resp::Reply;
use slot::SLOTS;
use topology::{Redirect, Shard, parse_redirect, parse_shards, parse_slots};

/// What a node of the cluster is to its owner: a wrapper around the node's `ConnPool`.
pub trait NodePool: Send + Sync + 'static {
    fn conn_pool(&self) -> &ConnPool;
}

/// Makes the wrapper of a new node's pool; `addr` is "host:port".
pub type MakeNode<N> = dyn Fn(ConnPool, &str) -> Arc<N> + Send + Sync;

/// Cluster configuration.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// "host:port" of nodes to load the slot map from at first (any node of the cluster).
    pub seeds: Vec<String>,
    /// Options of every node pool; the dialer is replaced by each node's address.
    pub node: Options,
    /// Redirects (MOVED, ASK) and retries (TRYAGAIN, CLUSTERDOWN) followed per command
    /// (go-redis MaxRedirects, default 3).
    pub max_redirects: u32,
    /// The least time between two refreshes triggered by MOVED or a failed dial.
    pub refresh_min_interval: Duration,
}

impl ClusterOptions {
    pub fn new(seeds: Vec<String>, node: Options) -> Self {
        ClusterOptions {
            seeds,
            node,
            max_redirects: 3,
            refresh_min_interval: Duration::from_millis(100),
        }
    }
}

/// The most redirects a caller may ask to follow.
pub const MAX_REDIRECTS_LIMIT: u32 = 100;

const NO_NODE: u16 = u16::MAX;

/// Cluster-level counters (node pools have their own `Stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Slot map loads that succeeded.
    pub refreshes: u64,
    /// Slot map loads that found no node able to answer.
    pub refresh_errors: u64,
    /// MOVED replies followed.
    pub moved: u64,
    /// ASK replies followed.
    pub ask: u64,
    /// TRYAGAIN / CLUSTERDOWN replies retried.
    pub retries: u64,
    /// Nodes with a pool right now.
    pub nodes: u32,
    /// Masters in the slot map.
    pub masters: u32,
    /// Slots that have a master in the slot map (16384 when the cluster is whole).
    pub slots_covered: u32,
}

#[derive(Default)]
struct Counters {
    refreshes: AtomicU64,
    refresh_errors: AtomicU64,
    moved: AtomicU64,
    ask: AtomicU64,
    retries: AtomicU64,
}

/// One node as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub addr: String,
    /// Serves slots (per the slot map) as a master.
    pub master: bool,
    /// Slots it serves.
    pub slots: u32,
}

struct State<N> {
    nodes: HashMap<String, Arc<N>>,
    /// Index -> address of the masters of the slot map.
    masters: Vec<String>,
    /// Slot -> index in `masters`, or NO_NODE.
    slots: Vec<u16>,
    replicas: Vec<String>,
    loaded: bool,
}

pub struct Cluster<N: NodePool> {
    opts: ClusterOptions,
    make_node: Box<MakeNode<N>>,
    state: RwLock<State<N>>,
    /// Held while a refresh runs; the time of the last refresh attempt.
    refresh: Mutex<Option<Instant>>,
    closed: AtomicBool,
    counters: Counters,
}

/// Host of "host:port" (brackets of an IPv6 host kept).
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

fn tcp_dialer(addr: &str) -> Result<Dialer> {
    match Dialer::from_addr(addr)? {
        d @ Dialer::Tcp(_) => Ok(d),
        _ => Err(Error::invalid(format!(
            "cluster node {addr:?}: cluster nodes are reached over TCP (host:port)"
        ))),
    }
}

fn give_back(pool: &ConnPool, conn: Conn) {
    // A conn of this pool is never rejected.
    let _ = if conn.broken_reason().is_some() {
        pool.remove(conn, None)
    } else {
        pool.put(conn)
    };
}

impl<N: NodePool> Cluster<N> {
    /// Validates the options; dials nothing (the slot map loads on first use).
    pub fn new(opts: ClusterOptions, make_node: Box<MakeNode<N>>) -> Result<Self> {
        Ok(Self::with_valid_options(Self::validate(opts)?, make_node))
    }

    /// `opts` checked and completed, for `with_valid_options`.
    pub fn validate(mut opts: ClusterOptions) -> Result<ClusterOptions> {
        if opts.seeds.is_empty() {
            return Err(Error::invalid(
                "seeds: at least one cluster node address is needed",
            ));
        }
        for seed in &opts.seeds {
            tcp_dialer(seed)?;
        }
        opts.seeds.dedup();
        if opts.max_redirects > MAX_REDIRECTS_LIMIT {
            return Err(Error::invalid(format!(
                "max_redirects: {} is above the limit of {MAX_REDIRECTS_LIMIT}",
                opts.max_redirects
            )));
        }
        if matches!(opts.node.dialer, Dialer::Custom(_)) {
            return Err(Error::invalid(
                "dialer: a cluster dials its nodes by address; a custom dialer is not supported",
            ));
        }
        opts.node = Options {
            dialer: tcp_dialer(&opts.seeds[0])?,
            ..opts.node
        }
        .validate()?;
        if opts.node.session.db != 0 {
            return Err(Error::invalid("db: a cluster has only database 0"));
        }
        Ok(opts)
    }

    /// A cluster over options that passed `validate`.
    pub fn with_valid_options(opts: ClusterOptions, make_node: Box<MakeNode<N>>) -> Self {
        Cluster {
            opts,
            make_node,
            state: RwLock::new(State {
                nodes: HashMap::new(),
                masters: Vec::new(),
                slots: vec![NO_NODE; SLOTS],
                replicas: Vec::new(),
                loaded: false,
            }),
            refresh: Mutex::new(None),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Relaxed) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// The pool of node `addr` ("host:port"), created on first use.
    pub fn node(&self, addr: &str) -> Result<Arc<N>> {
        self.check_open()?;
        if let Some(n) = self.state.read().nodes.get(addr) {
            return Ok(n.clone());
        }
        let dialer = tcp_dialer(addr)?;
        let mut st = self.state.write();
        if let Some(n) = st.nodes.get(addr) {
            return Ok(n.clone());
        }
        // Checked again under the lock: close() empties the map under it.
        self.check_open()?;
        let pool = ConnPool::new(Options {
            dialer,
            ..self.opts.node.clone()
        })?;
        let node = (self.make_node)(pool, addr);
        st.nodes.insert(addr.to_string(), node.clone());
        Ok(node)
    }

    /// A known node's pool, without creating one.
    pub fn existing_node(&self, addr: &str) -> Option<Arc<N>> {
        self.state.read().nodes.get(addr).cloned()
    }

    /// The master serving `slot` per the slot map, loading the map first if needed.
    pub fn slot_master(&self, slot: u16, deadline: Option<Instant>) -> Result<String> {
        self.check_open()?;
        if usize::from(slot) >= SLOTS {
            return Err(Error::invalid(format!("slot: {slot} (must be 0..16383)")));
        }
        self.ensure_loaded(deadline)?;
        let st = self.state.read();
        match st.slots[usize::from(slot)] {
            NO_NODE => Err(Error::Cluster(format!(
                "cluster: slot {slot} is not served by any master in the slot map"
            ))),
            i => Ok(st.masters[usize::from(i)].clone()),
        }
    }

    /// The master serving `slot` per the slot map as it is now: never loads the map, never
    /// waits but for the map's lock. `Error::Cluster` before the map was loaded or when no
    /// master serves the slot.
    pub fn slot_master_now(&self, slot: u16) -> Result<String> {
        self.check_open()?;
        if usize::from(slot) >= SLOTS {
            return Err(Error::invalid(format!("slot: {slot} (must be 0..16383)")));
        }
        let st = self.state.read();
        if !st.loaded {
            return Err(Error::Cluster(
                "cluster: the slot map is not loaded yet".into(),
            ));
        }
        match st.slots[usize::from(slot)] {
            NO_NODE => Err(Error::Cluster(format!(
                "cluster: slot {slot} is not served by any master in the slot map"
            ))),
            i => Ok(st.masters[usize::from(i)].clone()),
        }
    }

    /// A conn to the master of `slot`. A node that cannot be dialed triggers a refresh,
    /// and the get is tried once more if the slot moved elsewhere.
    pub fn get_slot(
        &self,
        slot: u16,
        wait: Wait,
        cancel: Option<&CancelToken>,
    ) -> Result<(Arc<N>, Conn)> {
        let start = Instant::now();
        let deadline = wait.deadline_from(start);
        let addr = self.slot_master(slot, deadline)?;
        let node = self.node(&addr)?;
        match node.conn_pool().get_with(wait, cancel) {
            Ok(conn) => Ok((node, conn)),
            Err(e @ Error::Dial { .. }) => {
                self.refresh_soon();
                let now_addr = self.slot_master(slot, deadline)?;
                if now_addr == addr {
                    return Err(e);
                }
                let node = self.node(&now_addr)?;
                let left = match deadline {
                    Some(d) => Wait::For(d.saturating_duration_since(Instant::now())),
                    None => wait,
                };
                let conn = node.conn_pool().get_with(left, cancel)?;
                Ok((node, conn))
            }
            Err(e) => Err(e),
        }
    }

    /// A conn to node `addr`.
    pub fn get_node(
        &self,
        addr: &str,
        wait: Wait,
        cancel: Option<&CancelToken>,
    ) -> Result<(Arc<N>, Conn)> {
        let node = self.node(addr)?;
        let conn = node.conn_pool().get_with(wait, cancel)?;
        Ok((node, conn))
    }

    fn ensure_loaded(&self, deadline: Option<Instant>) -> Result<()> {
        if self.state.read().loaded {
            return Ok(());
        }
        let guard = match deadline {
            None => self.refresh.lock(),
            Some(d) => self.refresh.try_lock_until(d).ok_or_else(|| {
                Error::Timeout("cluster: timed out waiting for the slot map to load".into())
            })?,
        };
        // Another thread may have loaded it while this one waited.
        if self.state.read().loaded {
            return Ok(());
        }
        self.refresh_locked(guard, deadline)
    }

    /// Reloads the slot map now, waiting for a refresh already running to end first.
    pub fn refresh_now(&self, deadline: Option<Instant>) -> Result<()> {
        self.check_open()?;
        let guard = match deadline {
            None => self.refresh.lock(),
            Some(d) => self.refresh.try_lock_until(d).ok_or_else(|| {
                Error::Timeout("cluster: timed out waiting for a slot map refresh".into())
            })?,
        };
        self.refresh_locked(guard, deadline)
    }

    /// A refresh on this thread unless one is running or one ran less than
    /// `refresh_min_interval` ago.
    pub fn refresh_soon(&self) {
        if self.closed.load(Relaxed) {
            return;
        }
        let Some(guard) = self.refresh.try_lock() else {
            return;
        };
        if guard.is_some_and(|t| t.elapsed() < self.opts.refresh_min_interval) {
            return;
        }
        let deadline = self.opts.node.dial_timeout.map(|t| Instant::now() + t * 2);
        let _ = self.refresh_locked(guard, deadline);
    }

    /// Nodes to ask for the slot map: masters, then replicas, then seeds, each once.
    fn candidates(&self) -> Vec<String> {
        let st = self.state.read();
        let mut out: Vec<String> = Vec::new();
        // Start at a different master each time so one slow node is not always first.
        let n = st.masters.len();
        let first = if n > 0 {
            (self.counters.refreshes.load(Relaxed) + self.counters.refresh_errors.load(Relaxed))
                as usize
                % n
        } else {
            0
        };
        let rotated = st.masters[first..].iter().chain(&st.masters[..first]);
        for a in rotated.chain(&st.replicas).chain(&self.opts.seeds) {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    fn load_from(&self, addr: &str, deadline: Option<Instant>) -> Result<Vec<Shard>> {
        let node = self.node(addr)?;
        let pool = node.conn_pool();
        let left = match deadline {
            Some(d) => Wait::For(d.saturating_duration_since(Instant::now())),
            None => pool.options().pool_timeout,
        };
        let mut conn = pool.get_with(left, None)?;
        let host = host_of(addr);
        // The queries end by the refresh's deadline too, not only by the read timeout.
        let cap = deadline.map(|d| Deadline::at(d, d.saturating_duration_since(Instant::now())));
        let result = (|| {
            let reply = conn.command_until(&[b"CLUSTER", b"SHARDS"], cap)?;
            let (reply, shards) = match reply {
                Reply::Error(e) if e.to_ascii_lowercase().windows(7).any(|w| w == b"unknown") => {
                    let r = conn.command_until(&[b"CLUSTER", b"SLOTS"], cap)?;
                    let parsed = parse_slots(&r, host);
                    (r, parsed)
                }
                r => {
                    let parsed = parse_shards(&r, host, pool.options().tls.is_some());
                    (r, parsed)
                }
            };
            // Bytes behind the reply put the conn out of step (`Conn::command` marked it
            // broken): the reply read may not be this query's, so it is not used.
            if let Some(why) = conn.broken_reason() {
                return Err(Error::Cluster(format!(
                    "cluster: {addr}: the slot map query's reply: {why} (a banner or an extra reply?)"
                )));
            }
            if let Reply::Error(e) = &reply {
                return Err(Error::Cluster(format!(
                    "cluster: {addr} refused the slot map query: {}",
                    String::from_utf8_lossy(e)
                )));
            }
            shards.map_err(|e| Error::Cluster(format!("cluster: {addr}: {}", e.0)))
        })();
        give_back(pool, conn);
        result
    }

    fn refresh_locked(
        &self,
        mut guard: parking_lot::MutexGuard<'_, Option<Instant>>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        *guard = Some(Instant::now());
        let mut last_err = None;
        for addr in self.candidates() {
            if self.closed.load(Relaxed) {
                return Err(Error::Closed);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            match self.load_from(&addr, deadline) {
                Ok(shards) if !shards.is_empty() => {
                    self.install(&shards);
                    self.counters.refreshes.fetch_add(1, Relaxed);
                    return Ok(());
                }
                Ok(_) => {
                    last_err = Some(Error::Cluster(format!(
                        "cluster: {addr} reports no slots assigned"
                    )))
                }
                Err(e) => last_err = Some(e),
            }
        }
        // Closed while asking (a node's get was woken by the close): say so, as a get does.
        if self.closed.load(Relaxed) {
            return Err(Error::Closed);
        }
        self.counters.refresh_errors.fetch_add(1, Relaxed);
        let why = last_err.map_or_else(|| "no node left to ask".to_string(), |e| e.to_string());
        Err(Error::Cluster(format!(
            "cluster: could not load the slot map from any node: {why}"
        )))
    }

    /// Installs a slot map from `topology` (which caps it: at most 16384 masters, so an index
    /// always fits below NO_NODE).
    fn install(&self, shards: &[Shard]) {
        let mut masters: Vec<String> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut slots = vec![NO_NODE; SLOTS];
        let mut replicas = Vec::new();
        for shard in shards {
            let i = *index.entry(&shard.master).or_insert_with(|| {
                masters.push(shard.master.clone());
                masters.len() - 1
            });
            for &(a, b) in &shard.slots {
                for s in a..=b {
                    slots[usize::from(s)] = i as u16;
                }
            }
            replicas.extend(shard.replicas.iter().cloned());
        }
        let mut st = self.state.write();
        // Pools of nodes that left the cluster are closed (conns checked out from them are
        // closed when they come back).
        let gone: Vec<String> = st
            .nodes
            .keys()
            .filter(|a| {
                !masters.contains(a) && !replicas.contains(a) && !self.opts.seeds.contains(a)
            })
            .cloned()
            .collect();
        let mut dropped = Vec::new();
        for a in gone {
            if let Some(n) = st.nodes.remove(&a) {
                dropped.push(n);
            }
        }
        st.masters = masters;
        st.slots = slots;
        st.replicas = replicas;
        st.loaded = true;
        drop(st);
        for n in dropped {
            let _ = n.conn_pool().close();
        }
    }

    /// A MOVED reply says `slot` is served by `addr` now: the map is patched at once (a
    /// full refresh follows, rate-limited).
    fn note_moved(&self, slot: u16, addr: &str) {
        let mut st = self.state.write();
        let i = match st.masters.iter().position(|m| m == addr) {
            Some(i) => i,
            None => {
                st.masters.push(addr.to_string());
                st.masters.len() - 1
            }
        };
        if i < usize::from(NO_NODE) {
            st.slots[usize::from(slot)] = i as u16;
        }
    }

    /// Follows MOVED / ASK / TRYAGAIN / CLUSTERDOWN: `reply` is what `args` got from node
    /// `from`; returns the reply of the node that finally served the command (or the last
    /// redirect, as an error reply, after `max_redirects`). `own` is the caller's conn to
    /// `from`: a retry on that node goes over it (taking a second conn from the same pool
    /// while holding one could wait for a turn the caller itself holds); conns to other
    /// nodes are taken from and given back to their pools.
    ///
    /// `deadline` bounds the whole call (the caller's read deadline, counted from the
    /// first send): no redirect is followed once it has passed (the redirect is returned,
    /// as after `max_redirects`), each command sent again ends by it, the pause before a
    /// retry is cut to it, and a conn of another node is waited for at most until then.
    pub fn follow(
        &self,
        from: &str,
        own: &mut Conn,
        args: &[&[u8]],
        mut reply: Reply,
        deadline: Option<Deadline>,
    ) -> Result<Reply> {
        let mut at = from.to_string();
        for attempt in 0..self.opts.max_redirects {
            let Reply::Error(text) = &reply else {
                return Ok(reply);
            };
            let Some(redirect) = parse_redirect(text) else {
                return Ok(reply);
            };
            if Deadline::passed(deadline) {
                return Ok(reply);
            }
            let fill = |a: String| {
                if a.starts_with(':') {
                    format!("{}{a}", host_of(&at))
                } else {
                    a
                }
            };
            let (addr, asking) = match redirect {
                Redirect::Moved { slot, addr } => {
                    let addr = fill(addr);
                    self.counters.moved.fetch_add(1, Relaxed);
                    self.note_moved(slot, &addr);
                    self.refresh_soon();
                    (addr, false)
                }
                Redirect::Ask { addr, .. } => {
                    self.counters.ask.fetch_add(1, Relaxed);
                    (fill(addr), true)
                }
                Redirect::Retry => {
                    self.counters.retries.fetch_add(1, Relaxed);
                    let pause = Duration::from_millis(10 << attempt.min(5));
                    std::thread::sleep(deadline.map_or(pause, |d| {
                        pause.min(d.instant().saturating_duration_since(Instant::now()))
                    }));
                    if Deadline::passed(deadline) {
                        return Ok(reply);
                    }
                    if text.starts_with(b"CLUSTERDOWN") {
                        self.refresh_soon();
                    }
                    (at.clone(), false)
                }
            };
            let send = |conn: &mut Conn| {
                if asking {
                    conn.command_until(&[b"ASKING"], deadline)?;
                }
                conn.command_until(args, deadline)
            };
            if addr == from {
                reply = send(own)?;
            } else {
                let node = self.node(&addr)?;
                let pool = node.conn_pool();
                let wait = match (pool.options().pool_timeout, deadline) {
                    (Wait::NoWait, _) | (_, None) => pool.options().pool_timeout,
                    (Wait::For(t), Some(d)) => {
                        Wait::For(t.min(d.instant().saturating_duration_since(Instant::now())))
                    }
                    (Wait::Forever, Some(d)) => {
                        Wait::For(d.instant().saturating_duration_since(Instant::now()))
                    }
                };
                let mut conn = pool.get_with(wait, None)?;
                let result = send(&mut conn);
                give_back(pool, conn);
                reply = result?;
            }
            at = addr;
        }
        Ok(reply)
    }

    /// Stats of one node, or the sum over every node with a pool (None).
    pub fn stats(&self, addr: Option<&str>) -> Option<Stats> {
        let st = self.state.read();
        match addr {
            Some(a) => st.nodes.get(a).map(|n| n.conn_pool().stats()),
            None => {
                let mut total = Stats::default();
                for n in st.nodes.values() {
                    add_stats(&mut total, &n.conn_pool().stats());
                }
                Some(total)
            }
        }
    }

    pub fn cluster_stats(&self) -> ClusterStats {
        let st = self.state.read();
        let c = &self.counters;
        ClusterStats {
            refreshes: c.refreshes.load(Relaxed),
            refresh_errors: c.refresh_errors.load(Relaxed),
            moved: c.moved.load(Relaxed),
            ask: c.ask.load(Relaxed),
            retries: c.retries.load(Relaxed),
            nodes: st.nodes.len() as u32,
            masters: st.masters.len() as u32,
            slots_covered: st.slots.iter().filter(|&&i| i != NO_NODE).count() as u32,
        }
    }

    /// Every node with a pool or in the slot map, masters first, sorted by address.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let st = self.state.read();
        let mut counts = vec![0u32; st.masters.len()];
        for &i in &st.slots {
            if i != NO_NODE {
                counts[usize::from(i)] += 1;
            }
        }
        let mut out: Vec<NodeInfo> = Vec::new();
        let mut push = |addr: &str, master: bool, slots: u32| {
            if !out.iter().any(|n| n.addr == addr) {
                out.push(NodeInfo {
                    addr: addr.to_string(),
                    master,
                    slots,
                });
            }
        };
        for (i, m) in st.masters.iter().enumerate() {
            if counts[i] > 0 {
                push(m, true, counts[i]);
            }
        }
        for a in st.replicas.iter().chain(st.nodes.keys()) {
            push(a, false, 0);
        }
        out.sort_by(|a, b| b.master.cmp(&a.master).then_with(|| a.addr.cmp(&b.addr)));
        out
    }

    /// Closes every node pool; later gets fail with `Error::Closed`. A second close returns
    /// `Error::Closed`.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Relaxed) {
            return Err(Error::Closed);
        }
        let nodes: Vec<Arc<N>> = self.state.write().nodes.drain().map(|(_, n)| n).collect();
        for n in nodes {
            let _ = n.conn_pool().close();
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

fn add_stats(t: &mut Stats, s: &Stats) {
    t.hits += s.hits;
    t.misses += s.misses;
    t.timeouts += s.timeouts;
    t.wait_count += s.wait_count;
    t.unusable += s.unusable;
    t.wait_duration_ns += s.wait_duration_ns;
    t.total_conns = t.total_conns.saturating_add(s.total_conns);
    t.idle_conns = t.idle_conns.saturating_add(s.idle_conns);
    t.stale_conns = t.stale_conns.saturating_add(s.stale_conns);
    t.pending_requests = t.pending_requests.saturating_add(s.pending_requests);
    t.dials += s.dials;
    t.dial_errors += s.dial_errors;
    t.removed_conns += s.removed_conns;
    t.evicted_conns += s.evicted_conns;
    t.waiting = t.waiting.saturating_add(s.waiting);
    t.dials_in_progress = t.dials_in_progress.saturating_add(s.dials_in_progress);
    t.leak_suspects = t.leak_suspects.saturating_add(s.leak_suspects);
    t.in_use_conns = t.in_use_conns.saturating_add(s.in_use_conns);
    t.late_returns += s.late_returns;
    t.reset_conns += s.reset_conns;
}
