//! A real Redis Cluster on loopback for integration tests: `ClusterHarness::start(3, 1)` runs
//! three masters with one replica each (`redis-server --cluster-enabled yes` plus
//! `redis-cli --cluster create`) and returns once every node agrees on the topology. It can
//! move a slot between masters step by step (so a test can run load during the ASK window)
//! and kill a master and wait for its replica's failover. Everything is killed, and the
//! temporary directory removed, on drop; each test starts its own cluster.
//!
//! Waiting is always by polling the nodes against a deadline, never by a fixed sleep.

use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    REDIS_READY_TIMEOUT, RUN_TIMEOUT, c_tests_dir, describe, ping_and_pid, run_command,
    spawn_redis, unique_name,
};

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;
/// The cluster bus listens on the client port plus this.
const BUS_PORT_OFFSET: u16 = 10000;
/// Highest client port whose bus port still fits in 16 bits.
const MAX_CLIENT_PORT: u16 = u16::MAX - BUS_PORT_OFFSET;
/// `--cluster-node-timeout`, in milliseconds.
const NODE_TIMEOUT_MS: &str = "1000";
/// Bound for the cluster to settle after creation, a slot migration or a failover.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for a killed master's replica to take over and the cluster to settle again.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Delay between two polls of the nodes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Socket timeouts of the harness's own connections (MIGRATE itself uses 5 s).
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Fresh port pairs tried per node when redis-server cannot bind.
const NODE_START_ATTEMPTS: u32 = 5;
/// Keys moved per MIGRATE by `migrate_slot` and `Migration::finish`.
pub const DEFAULT_MIGRATE_BATCH: usize = 100;

// ---------------------------------------------------------------------------
// Key slots
// ---------------------------------------------------------------------------

/// The hash slot of `key`, as Redis Cluster computes it: CRC16/XMODEM of the key (or of its
/// `{hashtag}`: the bytes between the first `{` and the first `}` after it, when non-empty)
/// modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16_xmodem(hashed) % SLOTS
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection), Redis's `crc16`.
pub fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A hash tag such as `"{1234}"` that puts every key containing it (as its first `{...}`) in
/// `slot`: `format!("{}:user", hashtag_for_slot(s))` lands in slot `s`.
pub fn hashtag_for_slot(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut n: u64 = 0;
        while missing > 0 {
            let slot = usize::from(crc16_xmodem(n.to_string().as_bytes()) % SLOTS);
            if tags[slot].is_empty() {
                tags[slot] = format!("{{{n}}}");
                missing -= 1;
            }
            n += 1;
        }
        tags
    });
    &tags[usize::from(slot % SLOTS)]
}

/// A key named `"{tag}:<name>"` in `slot`.
pub fn key_in_slot(slot: u16, name: &str) -> String {
    format!("{}:{name}", hashtag_for_slot(slot))
}

// ---------------------------------------------------------------------------
// RESP
// ---------------------------------------------------------------------------

/// A parsed RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, without the `+`.
    Status(String),
    /// `-ERR ...`, without the `-`.
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// A null bulk string or null array.
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text, like `Admin::query`: a status, integer or bulk string as is, an
    /// error with its leading `-`, nil as `(nil)`, and an array's elements one per line.
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.clone(),
            Reply::Error(e) => format!("-{e}"),
            Reply::Int(n) => n.to_string(),
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Reply::Nil => "(nil)".to_string(),
            Reply::Array(items) => items.iter().map(Reply::text).collect::<Vec<_>>().join("\n"),
        }
    }

    /// The elements of an array reply (panics on anything else).
    pub fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(items) => items,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    /// The bytes of a bulk or status reply (panics on anything else).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Reply::Bulk(b) => b,
            Reply::Status(s) => s.as_bytes(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    /// An integer reply (panics on anything else).
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// Whether this is an error reply starting with `prefix`, e.g. `is_error("MOVED")`.
    pub fn is_error(&self, prefix: &str) -> bool {
        matches!(self, Reply::Error(e) if e.starts_with(prefix))
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    req
}

fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("truncated reply line {:?}", String::from_utf8_lossy(&line)),
        ));
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let bad = |what: &str| io::Error::other(format!("bad {what} in reply line {body:?}"));
    match line[0] {
        b'+' => Ok(Reply::Status(body)),
        b'-' => Ok(Reply::Error(body)),
        b':' => body.parse().map(Reply::Int).map_err(|_| bad("integer")),
        b'$' => {
            let len: i64 = body.parse().map_err(|_| bad("bulk length"))?;
            if len < 0 {
                return Ok(Reply::Nil);
            }
            let mut data = vec![0; len as usize + 2];
            reader.read_exact(&mut data)?;
            data.truncate(len as usize);
            Ok(Reply::Bulk(data))
        }
        b'*' => {
            let len: i64 = body.parse().map_err(|_| bad("array length"))?;
            if len < 0 {
                return Ok(Reply::Nil);
            }
            (0..len)
                .map(|_| read_reply(reader))
                .collect::<Result<_, _>>()
                .map(Reply::Array)
        }
        _ => Err(bad("type")),
    }
}

/// Sends `commands` on one fresh connection to `addr` (pipelined) and reads their replies.
pub fn pipeline_bytes(addr: &str, commands: &[&[&[u8]]]) -> io::Result<Vec<Reply>> {
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::other(format!("bad address {addr:?}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut req = Vec::new();
    for cmd in commands {
        req.extend(encode(cmd));
    }
    stream.write_all(&req)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let replies = commands
        .iter()
        .map(|_| read_reply(&mut reader))
        .collect::<io::Result<Vec<_>>>();
    let _ = stream.shutdown(Shutdown::Both);
    replies
}

fn as_bytes<'a>(args: &[&'a str]) -> Vec<&'a [u8]> {
    args.iter().map(|a| a.as_bytes()).collect()
}

// ---------------------------------------------------------------------------
// Topology
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Master,
    Replica,
}

/// One node as a `CLUSTER NODES` line describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// `"127.0.0.1:PORT"`.
    pub addr: String,
    /// The 40-character node id.
    pub id: String,
    pub role: Role,
    /// The id of the master a replica replicates (`None` for masters).
    pub master_id: Option<String>,
    /// The slot ranges a master serves, inclusive (empty for replicas).
    pub slots: Vec<(u16, u16)>,
    /// Slots being migrated or imported, as `CLUSTER NODES` shows them on the node itself,
    /// e.g. `"[42->-<target id>]"` or `"[42-<-<source id>]"`.
    pub open_slots: Vec<String>,
    /// `CLUSTER NODES` flags other than `myself`/`master`/`slave`, e.g. `fail`, `fail?`.
    pub flags: Vec<String>,
    /// False once the harness killed its process.
    pub alive: bool,
}

impl ClusterNode {
    /// Whether this node serves `slot`.
    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(lo, hi)| lo <= slot && slot <= hi)
    }

    fn slot_count(&self) -> usize {
        self.slots
            .iter()
            .map(|&(lo, hi)| usize::from(hi - lo) + 1)
            .sum()
    }
}

/// One redis-server process of the cluster.
struct NodeProc {
    port: u16,
    /// The TLS port of a node of a TLS cluster (`ClusterHarness::start_tls`).
    tls_port: Option<u16>,
    /// Filled once the cluster is created (ids never change afterwards).
    id: String,
    log: PathBuf,
    child: Mutex<Child>,
    killed: AtomicBool,
}

impl NodeProc {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn alive(&self) -> bool {
        !self.killed.load(Ordering::SeqCst)
    }

    fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        self.killed.store(true, Ordering::SeqCst);
    }
}

/// Client and bus ports handed to clusters in this process and not yet released, so that
/// clusters of tests running in parallel never pick each other's ports.
static RESERVED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn reserved_ports() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    RESERVED_PORTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client port `p <= 55535` such that both `p` and its bus port `p + 10000` were free a
/// moment ago and are reserved in this process; never 6379.
fn reserve_port_pair() -> u16 {
    for _ in 0..10_000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if !(1024..=MAX_CLIENT_PORT).contains(&port) || port == 6379 {
            continue;
        }
        let bus = port + BUS_PORT_OFFSET;
        let mut reserved = reserved_ports();
        if reserved.contains(&port) || reserved.contains(&bus) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", bus)).is_err() {
            continue;
        }
        reserved.insert(port);
        reserved.insert(bus);
        return port;
    }
    panic!("found no free port p <= {MAX_CLIENT_PORT} with p + {BUS_PORT_OFFSET} free too");
}

fn release_port_pair(port: u16) {
    let mut reserved = reserved_ports();
    reserved.remove(&port);
    reserved.remove(&(port + BUS_PORT_OFFSET));
}

/// Polls until the redis-server `child` answers PING on `port` as itself.
fn wait_node_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + REDIS_READY_TIMEOUT;
    let mut last_error = String::from("no attempt made");
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("redis-server exited early with {status}"));
        }
        match ping_and_pid(port, None) {
            Ok(pid) if pid == child.id() => return Ok(()),
            Ok(pid) => last_error = format!("port answered by another redis (pid {pid})"),
            Err(e) => last_error = e.to_string(),
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "not ready after {REDIS_READY_TIMEOUT:?}; last error: {last_error}"
    ))
}

/// Starts one cluster-enabled redis-server with its files under `dir`, retrying on fresh
/// ports when it cannot bind.
fn start_node(dir: &Path, logs: &Path, tls: bool) -> NodeProc {
    let program = env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
    let mut failures = Vec::new();
    for _ in 0..NODE_START_ATTEMPTS {
        let port = reserve_port_pair();
        let tls_port = tls.then(|| {
            loop {
                let p = super::free_port();
                if !reserved_ports().contains(&p) && p != port + BUS_PORT_OFFSET {
                    break p;
                }
            }
        });
        let node_dir = dir.join(port.to_string());
        fs::create_dir_all(&node_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", node_dir.display()));
        let config_file = dir.join(format!("nodes-{port}.conf"));
        let log = logs.join(unique_name(&format!("cluster-{port}")) + ".log");
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            config_file.to_str().expect("UTF-8 temp path"),
            "--cluster-node-timeout",
            NODE_TIMEOUT_MS,
            // Let a replica fail over however long its link has been down (a loaded box).
            "--cluster-replica-validity-factor",
            "0",
            // Replicas sync at once instead of after the 5 s default delay.
            "--repl-diskless-sync-delay",
            "0",
            "--dir",
            node_dir.to_str().expect("UTF-8 temp path"),
        ];
        let certs = super::tls::certs();
        let (tls_port_arg, cert, key, ca) = (
            tls_port.map(|p| p.to_string()).unwrap_or_default(),
            certs.path("server.pem"),
            certs.path("server.key"),
            certs.path("ca.pem"),
        );
        let mut args: Vec<&str> = args.to_vec();
        if tls {
            // Plain client port kept (the harness administers over it); the cluster bus
            // and replication speak TLS.
            args.extend_from_slice(&[
                "--tls-port",
                &tls_port_arg,
                "--tls-cluster",
                "yes",
                "--tls-replication",
                "yes",
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
            ]);
        }
        let mut child = spawn_redis(&program, port, &log, &args);
        match wait_node_ready(&mut child, port) {
            Ok(()) => {
                return NodeProc {
                    port,
                    tls_port,
                    id: String::new(),
                    log,
                    child: Mutex::new(child),
                    killed: AtomicBool::new(false),
                };
            }
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                failures.push(format!(
                    "port {port}: {why}\n--- {} ---\n{}",
                    log.display(),
                    fs::read_to_string(&log).unwrap_or_default()
                ));
                let _ = fs::remove_file(&log);
                let _ = fs::remove_file(&config_file);
                release_port_pair(port);
            }
        }
    }
    panic!(
        "cluster redis-server did not start after {NODE_START_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// A running Redis Cluster on 127.0.0.1, torn down on drop.
pub struct ClusterHarness {
    nodes: Vec<NodeProc>,
    dir: PathBuf,
}

impl ClusterHarness {
    /// Starts `masters` (at least 3) masters with `replicas_per_master` replicas each, and
    /// returns once every node reports `cluster_state:ok`, all agree on the topology and slot
    /// ownership, and every replica's link to its master is up.
    pub fn start(masters: usize, replicas_per_master: usize) -> ClusterHarness {
        ClusterHarness::start_with(masters, replicas_per_master, false)
    }

    /// `start`, each node also listening for TLS (`--tls-port`, with `--tls-cluster yes`
    /// and `--tls-replication yes`), certificates from `super::tls`.
    pub fn start_tls(masters: usize, replicas_per_master: usize) -> ClusterHarness {
        ClusterHarness::start_with(masters, replicas_per_master, true)
    }

    /// `"127.0.0.1:TLS_PORT"` of every live master of a TLS cluster, in start order.
    pub fn tls_seed_addrs(&self) -> Vec<String> {
        self.seed_addrs()
            .iter()
            .map(|a| {
                let p = self.proc(a).tls_port.expect("a TLS cluster (start_tls)");
                format!("127.0.0.1:{p}")
            })
            .collect()
    }

    fn start_with(masters: usize, replicas_per_master: usize, tls: bool) -> ClusterHarness {
        assert!(
            masters >= 3,
            "redis-cli --cluster create needs at least 3 masters"
        );
        let dir = env::temp_dir().join(unique_name("redispool-cluster"));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let logs = c_tests_dir().join("redis-logs");
        fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("create {}: {e}", logs.display()));

        let mut harness = ClusterHarness {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..masters * (1 + replicas_per_master) {
            let node = start_node(&harness.dir, &logs, tls);
            harness.nodes.push(node);
        }

        let cli = env::var_os("REDIS_CLI").unwrap_or_else(|| "redis-cli".into());
        let mut cmd = Command::new(&cli);
        cmd.args(["--cluster", "create"])
            .args(harness.nodes.iter().map(NodeProc::addr))
            .args(["--cluster-replicas", &replicas_per_master.to_string()])
            .arg("--cluster-yes");
        let output = run_command(&mut cmd, RUN_TIMEOUT);
        if !output.status.success() {
            panic!(
                "{cmd:?} failed\n{}\n{}",
                describe(&output),
                harness.describe()
            );
        }

        for node in &mut harness.nodes {
            let reply = pipeline_bytes(&node.addr(), &[&[b"CLUSTER", b"MYID"]])
                .unwrap_or_else(|e| panic!("CLUSTER MYID on {}: {e}", node.addr()));
            node.id = reply[0].text();
            assert_eq!(node.id.len(), 40, "CLUSTER MYID on {}", node.addr());
        }

        harness.wait_settled_where(SETTLE_TIMEOUT, "cluster creation", |nodes| {
            let live_masters: Vec<&ClusterNode> = nodes
                .iter()
                .filter(|n| n.role == Role::Master && n.slot_count() > 0)
                .collect();
            if live_masters.len() != masters {
                return Err(format!(
                    "{} masters serve slots, expected {masters}",
                    live_masters.len()
                ));
            }
            for m in live_masters {
                let replicas = nodes
                    .iter()
                    .filter(|n| n.master_id.as_deref() == Some(m.id.as_str()))
                    .count();
                if replicas != replicas_per_master {
                    return Err(format!(
                        "master {} has {replicas} replicas, expected {replicas_per_master}",
                        m.addr
                    ));
                }
            }
            Ok(())
        });
        harness
    }

    /// `"127.0.0.1:PORT"` of every live master, in start order: seeds for a cluster client.
    pub fn seed_addrs(&self) -> Vec<String> {
        self.nodes()
            .into_iter()
            .filter(|n| n.alive && n.role == Role::Master)
            .map(|n| n.addr)
            .collect()
    }

    /// `"127.0.0.1:PORT"` of every node the harness started, killed ones included.
    pub fn all_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(NodeProc::addr).collect()
    }

    /// Every node (killed ones included, with `alive == false`) in start order, as the first
    /// live node's `CLUSTER NODES` currently describes them.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let first = self
            .nodes
            .iter()
            .find(|n| n.alive())
            .expect("every node of the cluster was killed");
        let text = self.command(&first.addr(), &["CLUSTER", "NODES"]);
        let mut nodes = self
            .parse_cluster_nodes(&text)
            .unwrap_or_else(|e| panic!("CLUSTER NODES of {}: {e}\n{text}", first.addr()));
        nodes.sort_by_key(|n| self.index_of_id(&n.id));
        nodes
    }

    /// The addresses of the live replicas of the master at `master_addr`.
    pub fn replicas_of(&self, master_addr: &str) -> Vec<String> {
        let id = self.node_id(master_addr);
        self.nodes()
            .into_iter()
            .filter(|n| n.alive && n.master_id.as_deref() == Some(id.as_str()))
            .map(|n| n.addr)
            .collect()
    }

    /// The address of the master serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> String {
        self.nodes()
            .into_iter()
            .find(|n| n.role == Role::Master && n.owns(slot))
            .map(|n| n.addr)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The address of the master serving `key`'s slot.
    pub fn master_of_key(&self, key: &[u8]) -> String {
        self.master_of_slot(key_slot(key))
    }

    /// The node id of the node at `addr`.
    pub fn node_id(&self, addr: &str) -> String {
        self.proc(addr).id.clone()
    }

    /// The address of the node with id `id`.
    pub fn addr_of_id(&self, id: &str) -> String {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(NodeProc::addr)
            .unwrap_or_else(|| panic!("no node with id {id}"))
    }

    /// The process id of the node at `addr` (e.g. to SIGSTOP it).
    pub fn pid(&self, addr: &str) -> u32 {
        self.proc(addr)
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .id()
    }

    /// Whether the harness has not killed the node at `addr`.
    pub fn is_alive(&self, addr: &str) -> bool {
        self.proc(addr).alive()
    }

    /// Sends one command to `addr` on a fresh connection and returns the reply as text (see
    /// [`Reply::text`]: errors keep their `-`, arrays come one element per line).
    pub fn command(&self, addr: &str, args: &[&str]) -> String {
        self.query(addr, args).text()
    }

    /// Sends one command to `addr` on a fresh connection and returns the parsed reply.
    /// Panics when the node cannot be reached.
    pub fn query(&self, addr: &str, args: &[&str]) -> Reply {
        self.try_query(addr, args)
            .unwrap_or_else(|e| panic!("{args:?} on {addr}: {e}"))
    }

    /// As [`ClusterHarness::query`], with I/O errors (a killed node, say) returned.
    pub fn try_query(&self, addr: &str, args: &[&str]) -> io::Result<Reply> {
        let mut replies = pipeline_bytes(addr, &[&as_bytes(args)])?;
        Ok(replies.remove(0))
    }

    /// Sends `commands` pipelined on one fresh connection to `addr` (e.g. `ASKING` then a
    /// command) and returns their replies.
    pub fn pipeline(&self, addr: &str, commands: &[&[&str]]) -> Vec<Reply> {
        let owned: Vec<Vec<&[u8]>> = commands.iter().map(|c| as_bytes(c)).collect();
        let borrowed: Vec<&[&[u8]]> = owned.iter().map(Vec::as_slice).collect();
        pipeline_bytes(addr, &borrowed).unwrap_or_else(|e| panic!("{commands:?} on {addr}: {e}"))
    }

    /// Waits until the cluster is settled (see [`ClusterHarness::start`]; killed nodes must
    /// be flagged `fail` everywhere, and no slot may be migrating or importing) and returns
    /// the agreed topology.
    pub fn wait_settled(&self) -> Vec<ClusterNode> {
        self.wait_settled_where(SETTLE_TIMEOUT, "wait_settled", |_| Ok(()))
    }

    /// Starts moving `slot` from its current master to the master at `to`: `CLUSTER SETSLOT
    /// IMPORTING` on the target, then `MIGRATING` on the source. Keys are moved by
    /// [`Migration::move_keys_batch`] and ownership handed over by [`Migration::finish`].
    pub fn begin_migration(&self, slot: u16, to: &str) -> Migration<'_> {
        assert!(slot < SLOTS, "slot {slot} out of range");
        let nodes = self.nodes();
        let source = nodes
            .iter()
            .find(|n| n.role == Role::Master && n.owns(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"));
        let target = nodes
            .iter()
            .find(|n| n.addr == to)
            .unwrap_or_else(|| panic!("{to} is not a node of this cluster"));
        assert!(
            target.alive && target.role == Role::Master,
            "migration target {to} is not a live master"
        );
        assert_ne!(source.addr, target.addr, "slot {slot} is already on {to}");
        let slot_arg = slot.to_string();
        let reply = self.command(
            &target.addr,
            &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &source.id],
        );
        assert_eq!(reply, "OK", "SETSLOT {slot} IMPORTING on {}", target.addr);
        let reply = self.command(
            &source.addr,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &target.id],
        );
        assert_eq!(reply, "OK", "SETSLOT {slot} MIGRATING on {}", source.addr);
        Migration {
            harness: self,
            slot,
            source: source.addr.clone(),
            source_id: source.id.clone(),
            target: target.addr.clone(),
            target_id: target.id.clone(),
            moved: 0,
        }
    }

    /// Moves `slot` and its keys to the master at `to` and waits until every node agrees.
    pub fn migrate_slot(&self, slot: u16, to: &str) {
        self.begin_migration(slot, to).finish();
    }

    /// As [`ClusterHarness::migrate_slot`], moving at most `keys_per_batch` keys per MIGRATE
    /// and calling `between_batches` after each batch that moved keys (to sleep, or to run
    /// load while the slot is half moved and clients get ASK redirects).
    pub fn migrate_slot_with(
        &self,
        slot: u16,
        to: &str,
        keys_per_batch: usize,
        mut between_batches: impl FnMut(&Migration<'_>),
    ) {
        let mut migration = self.begin_migration(slot, to);
        while migration.move_keys_batch(keys_per_batch) > 0 {
            between_batches(&migration);
        }
        migration.finish();
    }

    /// Waits until every live replica of the master at `master_addr` has processed its
    /// replication stream up to the master's current offset (`slave_repl_offset` of each
    /// replica >= `master_repl_offset` of the master), e.g. before killing the master. (A
    /// `WAIT` only counts the writes of its own connection, and `command` opens a new one
    /// per call; see `pipeline` for `SET` + `WAIT` on one connection.)
    pub fn wait_replicated(&self, master_addr: &str) {
        let offset_of = |addr: &str, field: &str| -> Option<u64> {
            let info = self.try_query(addr, &["INFO", "replication"]).ok()?.text();
            info.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
        };
        let target = offset_of(master_addr, "master_repl_offset")
            .unwrap_or_else(|| panic!("no master_repl_offset from {master_addr}"));
        let replicas = self.replicas_of(master_addr);
        let start = Instant::now();
        loop {
            let lagging: Vec<(&String, Option<u64>)> = replicas
                .iter()
                .map(|r| (r, offset_of(r, "slave_repl_offset")))
                .filter(|(_, off)| off.is_none_or(|o| o < target))
                .collect();
            if lagging.is_empty() {
                return;
            }
            if start.elapsed() >= SETTLE_TIMEOUT {
                panic!(
                    "replicas of {master_addr} did not reach offset {target} within \
                     {SETTLE_TIMEOUT:?}: {lagging:?}"
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGKILLs the master at `addr` (its port stays unused) and waits until one of its
    /// replicas has taken over its slots and the rest of the cluster is settled again.
    /// Returns the promoted replica's address.
    pub fn kill_master_and_await_failover(&self, addr: &str) -> String {
        let nodes = self.nodes();
        let victim = nodes
            .iter()
            .find(|n| n.addr == addr)
            .unwrap_or_else(|| panic!("{addr} is not a node of this cluster"));
        assert!(
            victim.alive && victim.role == Role::Master,
            "{addr} is not a live master"
        );
        let replicas: Vec<String> = nodes
            .iter()
            .filter(|n| n.alive && n.master_id.as_deref() == Some(victim.id.as_str()))
            .map(|n| n.id.clone())
            .collect();
        assert!(
            !replicas.is_empty(),
            "master {addr} has no live replica to fail over to"
        );
        let slots = victim.slots.clone();

        self.proc(addr).kill();

        let settled =
            self.wait_settled_where(FAILOVER_TIMEOUT, &format!("failover of {addr}"), |nodes| {
                let promoted = nodes
                    .iter()
                    .find(|n| replicas.contains(&n.id) && n.role == Role::Master);
                match promoted {
                    Some(p) if slots.iter().all(|&(lo, _)| p.owns(lo)) => Ok(()),
                    Some(p) => Err(format!("{} is master but lacks slots {slots:?}", p.addr)),
                    None => Err(format!("no replica of {addr} is master yet")),
                }
            });
        settled
            .into_iter()
            .find(|n| replicas.contains(&n.id) && n.role == Role::Master)
            .map(|n| n.addr)
            .expect("checked by the wait")
    }

    // -- internals ----------------------------------------------------------

    fn proc(&self, addr: &str) -> &NodeProc {
        self.nodes
            .iter()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("{addr} is not a node of this cluster"))
    }

    fn index_of_id(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or(usize::MAX)
    }

    /// Parses `CLUSTER NODES` output; every node must be one the harness started.
    fn parse_cluster_nodes(&self, text: &str) -> Result<Vec<ClusterNode>, String> {
        let mut nodes = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return Err(format!("short CLUSTER NODES line {line:?}"));
            }
            let id = fields[0].to_string();
            let proc = self
                .nodes
                .iter()
                .find(|n| n.id == id)
                .ok_or_else(|| format!("unknown node in {line:?}"))?;
            let all_flags: Vec<&str> = fields[2].split(',').collect();
            let role = if all_flags.contains(&"master") {
                Role::Master
            } else if all_flags.contains(&"slave") {
                Role::Replica
            } else {
                return Err(format!("no role in {line:?}"));
            };
            let flags = all_flags
                .iter()
                .filter(|f| !matches!(**f, "myself" | "master" | "slave" | "noflags"))
                .map(|f| f.to_string())
                .collect();
            let master_id = (fields[3] != "-").then(|| fields[3].to_string());
            let mut slots = Vec::new();
            let mut open_slots = Vec::new();
            for s in &fields[8..] {
                if s.starts_with('[') {
                    open_slots.push(s.to_string());
                    continue;
                }
                let range = match s.split_once('-') {
                    Some((lo, hi)) => lo.parse().ok().zip(hi.parse().ok()),
                    None => s.parse().ok().map(|n| (n, n)),
                };
                slots.push(range.ok_or_else(|| format!("bad slot range {s:?} in {line:?}"))?);
            }
            nodes.push(ClusterNode {
                addr: proc.addr(),
                id,
                role,
                master_id,
                slots,
                open_slots,
                flags,
                alive: proc.alive(),
            });
        }
        Ok(nodes)
    }

    /// Polls every live node until [`Self::check_settled`] and `extra` hold (or panics after
    /// `timeout` with the last reason and every node's view); returns the agreed topology.
    fn wait_settled_where(
        &self,
        timeout: Duration,
        what: &str,
        mut extra: impl FnMut(&[ClusterNode]) -> Result<(), String>,
    ) -> Vec<ClusterNode> {
        let start = Instant::now();
        loop {
            let why = match self.check_settled() {
                Ok(nodes) => match extra(&nodes) {
                    Ok(()) => return nodes,
                    Err(why) => why,
                },
                Err(why) => why,
            };
            if start.elapsed() >= timeout {
                panic!(
                    "{what}: the cluster did not settle within {timeout:?}; last problem: {why}\n{}",
                    self.describe()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// One poll of every live node: `cluster_state:ok`, the same nodes/roles/masters/slots in
    /// every node's `CLUSTER NODES`, all 16384 slots served by live masters, no open slots,
    /// no failure flags on live nodes, killed nodes flagged `fail`, and each live replica
    /// replicating its master with the link up.
    fn check_settled(&self) -> Result<Vec<ClusterNode>, String> {
        type Signature = Vec<(String, Role, Option<String>, Vec<(u16, u16)>)>;
        let mut agreed: Option<(String, Signature, Vec<ClusterNode>)> = None;
        let mut infos = Vec::new();
        for node in self.nodes.iter().filter(|n| n.alive()) {
            let addr = node.addr();
            let replies = pipeline_bytes(
                &addr,
                &[
                    &[b"CLUSTER", b"INFO"],
                    &[b"CLUSTER", b"NODES"],
                    &[b"INFO", b"replication"],
                ],
            )
            .map_err(|e| format!("{addr}: {e}"))?;
            let cluster_info = replies[0].text();
            if !cluster_info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("{addr} does not report cluster_state:ok"));
            }
            let view = self
                .parse_cluster_nodes(&replies[1].text())
                .map_err(|e| format!("{addr}: {e}"))?;
            if view.len() != self.nodes.len() {
                return Err(format!(
                    "{addr} knows {} nodes of {}",
                    view.len(),
                    self.nodes.len()
                ));
            }
            for n in &view {
                if !n.open_slots.is_empty() {
                    return Err(format!("{addr} sees open slots {:?}", n.open_slots));
                }
                let bad: Vec<&String> = n
                    .flags
                    .iter()
                    .filter(|f| matches!(f.as_str(), "fail" | "fail?" | "handshake" | "noaddr"))
                    .collect();
                if n.alive && !bad.is_empty() {
                    return Err(format!("{addr} flags live node {} {bad:?}", n.addr));
                }
                if !n.alive && !n.flags.iter().any(|f| f == "fail") {
                    return Err(format!("{addr} does not flag killed node {} fail", n.addr));
                }
            }
            let mut signature: Signature = view
                .iter()
                .map(|n| (n.id.clone(), n.role, n.master_id.clone(), n.slots.clone()))
                .collect();
            signature.sort();
            match &agreed {
                None => agreed = Some((addr.clone(), signature, view)),
                Some((first, sig, _)) if *sig != signature => {
                    return Err(format!(
                        "{addr} and {first} disagree on the topology or slot ownership"
                    ));
                }
                Some(_) => {}
            }
            infos.push((addr, replies[2].text()));
        }
        let (_, _, mut view) = agreed.ok_or("every node was killed")?;
        view.sort_by_key(|n| self.index_of_id(&n.id));

        let mut owner: Vec<Option<&str>> = vec![None; usize::from(SLOTS)];
        for n in view.iter().filter(|n| n.role == Role::Master) {
            for &(lo, hi) in &n.slots {
                if !n.alive {
                    return Err(format!("killed node {} still serves {lo}-{hi}", n.addr));
                }
                for slot in lo..=hi {
                    owner[usize::from(slot)] = Some(&n.addr);
                }
            }
        }
        if let Some(slot) = owner.iter().position(Option::is_none) {
            return Err(format!("slot {slot} is not served"));
        }

        let by_id: BTreeMap<&str, &ClusterNode> = view.iter().map(|n| (n.id.as_str(), n)).collect();
        for (addr, info) in &infos {
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(str::trim)
                    .unwrap_or("")
            };
            let me = view.iter().find(|n| &n.addr == addr).expect("own line");
            match me.role {
                Role::Master if field("role") != "master" => {
                    return Err(format!(
                        "{addr} is a master in CLUSTER NODES but role:{}",
                        field("role")
                    ));
                }
                Role::Master => {}
                Role::Replica => {
                    let master = me
                        .master_id
                        .as_deref()
                        .and_then(|id| by_id.get(id))
                        .ok_or_else(|| format!("replica {addr} has no known master"))?;
                    if field("role") != "slave"
                        || field("master_link_status") != "up"
                        || field("master_port") != master.addr.rsplit(':').next().unwrap_or("")
                    {
                        return Err(format!(
                            "replica {addr} of {}: role:{} master_port:{} master_link_status:{}",
                            master.addr,
                            field("role"),
                            field("master_port"),
                            field("master_link_status")
                        ));
                    }
                }
            }
        }
        Ok(view)
    }

    /// Every live node's `CLUSTER NODES`, and where the logs are: for panic messages.
    fn describe(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let addr = node.addr();
            let _ = writeln!(
                out,
                "--- {addr} (id {}, log {}){} ---",
                node.id,
                node.log.display(),
                if node.alive() { "" } else { " killed" }
            );
            if node.alive() {
                match pipeline_bytes(&addr, &[&[b"CLUSTER", b"NODES"]]) {
                    Ok(r) => out += &r[0].text(),
                    Err(e) => out += &format!("unreachable: {e}\n"),
                }
            }
        }
        out
    }
}

impl Drop for ClusterHarness {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill();
        }
        let _ = fs::remove_dir_all(&self.dir);
        for node in &self.nodes {
            // The logs only matter when the test using the cluster failed.
            if !thread::panicking() {
                let _ = fs::remove_file(&node.log);
            }
            release_port_pair(node.port);
        }
    }
}

// ---------------------------------------------------------------------------
// Slot migration
// ---------------------------------------------------------------------------

/// A slot being moved between masters (from [`ClusterHarness::begin_migration`]): while it
/// lives, the source answers `-ASK` for keys already moved and the target serves them after
/// `ASKING`. Call [`Migration::finish`] to complete it.
#[must_use = "a migration leaves the slot half moved until finish() is called"]
pub struct Migration<'a> {
    harness: &'a ClusterHarness,
    slot: u16,
    source: String,
    source_id: String,
    target: String,
    target_id: String,
    moved: usize,
}

impl Migration<'_> {
    /// The slot being moved.
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// The address of the master the slot is moving from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The address of the master the slot is moving to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Keys moved so far.
    pub fn moved(&self) -> usize {
        self.moved
    }

    /// Keys of the slot still on the source (`CLUSTER COUNTKEYSINSLOT`).
    pub fn keys_left(&self) -> usize {
        let slot = self.slot.to_string();
        let n = self
            .harness
            .query(&self.source, &["CLUSTER", "COUNTKEYSINSLOT", &slot])
            .int();
        usize::try_from(n).expect("non-negative count")
    }

    /// Moves up to `max_keys` keys of the slot from the source to the target with one
    /// `MIGRATE ... KEYS`; returns how many it moved (0 once the source has none left).
    pub fn move_keys_batch(&mut self, max_keys: usize) -> usize {
        assert!(max_keys > 0, "max_keys must be positive");
        let slot = self.slot.to_string();
        let count = max_keys.to_string();
        let keys = self
            .harness
            .query(&self.source, &["CLUSTER", "GETKEYSINSLOT", &slot, &count]);
        let keys: Vec<&[u8]> = keys.array().iter().map(Reply::bytes).collect();
        if keys.is_empty() {
            return 0;
        }
        let (host, port) = self.target.rsplit_once(':').expect("host:port");
        let mut args: Vec<&[u8]> = vec![
            b"MIGRATE",
            host.as_bytes(),
            port.as_bytes(),
            b"",
            b"0",
            b"5000",
            b"KEYS",
        ];
        args.extend(&keys);
        let reply = pipeline_bytes(&self.source, &[&args])
            .unwrap_or_else(|e| panic!("MIGRATE on {}: {e}", self.source))
            .remove(0);
        match &reply {
            // NOKEY: the keys were deleted (or expired) since GETKEYSINSLOT.
            Reply::Status(s) if s == "OK" || s == "NOKEY" => {}
            other => panic!(
                "MIGRATE of {} keys of slot {} from {} to {}: {other:?}",
                keys.len(),
                self.slot,
                self.source,
                self.target
            ),
        }
        self.moved += keys.len();
        keys.len()
    }

    /// Moves the remaining keys, assigns the slot to the target with `CLUSTER SETSLOT NODE`
    /// on the target, the source and every other live master, and waits until every node
    /// agrees the target serves it.
    pub fn finish(mut self) {
        while self.move_keys_batch(DEFAULT_MIGRATE_BATCH) > 0 {}
        let harness = self.harness;
        let slot = self.slot.to_string();
        let mut order = vec![self.target.clone(), self.source.clone()];
        for addr in harness.seed_addrs() {
            if !order.contains(&addr) {
                order.push(addr);
            }
        }
        for addr in &order {
            let reply = harness.command(
                addr,
                &["CLUSTER", "SETSLOT", &slot, "NODE", &self.target_id],
            );
            assert_eq!(reply, "OK", "SETSLOT {slot} NODE {} on {addr}", self.target);
        }
        let (target_id, source_id) = (self.target_id.clone(), self.source_id.clone());
        let what = format!("migration of slot {slot} to {}", self.target);
        let s = self.slot;
        harness.wait_settled_where(SETTLE_TIMEOUT, &what, |nodes| {
            let owner = nodes.iter().find(|n| n.role == Role::Master && n.owns(s));
            match owner {
                Some(o) if o.id == target_id => Ok(()),
                Some(o) if o.id == source_id => Err("the source still serves the slot".into()),
                Some(o) => Err(format!("{} serves the slot", o.addr)),
                None => Err("nobody serves the slot".into()),
            }
        });
    }
}
