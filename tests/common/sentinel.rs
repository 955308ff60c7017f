//! A Redis Sentinel deployment on loopback for the tests: a master, a replica and three
//! sentinels (`redis-server <conf> --sentinel`), all on free ports, killed on drop. Setting
//! up waits until every sentinel knows the replica and the other sentinels, so a
//! `SENTINEL FAILOVER` can succeed.

use std::fs;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use redispool::redis::io;
use redispool::redis::resp::{Parser, Reply};

use super::{RedisServer, c_tests_dir, free_port};

pub const MASTER_NAME: &str = "mymaster";
/// How long the deployment may take to settle (sentinels discover each other through hello
/// messages every 2 s).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: u32 = 5;

/// One command on a fresh connection to `addr` ("127.0.0.1:port"), its whole reply.
pub fn query(addr: &str, args: &[&str]) -> std::io::Result<Reply> {
    let stream = TcpStream::connect(addr)?;
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let mut parser = Parser::new();
    let mut out = Vec::new();
    let t = Some(Duration::from_secs(10));
    io::command(
        &mut io::Stream::Plain(stream.as_raw_fd()),
        &mut parser,
        &mut out,
        &args,
        t,
        t,
    )
    .map_err(|e| std::io::Error::other(e.to_string()))
}

/// A reply's text (bulk or status string, error with its text, integer as decimal).
pub fn text(r: &Reply) -> String {
    match r {
        Reply::String(b) | Reply::Status(b) | Reply::Error(b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        Reply::Integer(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// `INFO <section>` of `addr` as "field" -> value lookups.
pub fn info_field(addr: &str, section: &str, field: &str) -> Option<String> {
    let body = text(&query(addr, &["INFO", section]).ok()?);
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// The entries of a `SENTINEL REPLICAS` / `SENTINEL SENTINELS` reply, each a flat
/// field/value list, as (field, value) pairs.
fn entries(r: &Reply) -> Vec<Vec<(String, String)>> {
    let Reply::Array(items) = r else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| match e {
            Reply::Array(kv) | Reply::Map(kv) => Some(
                kv.chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (text(&c[0]), text(&c[1])))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn field<'a>(entry: &'a [(String, String)], name: &str) -> &'a str {
    entry
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

pub struct Sentinel {
    pub port: u16,
    /// Its TLS port, in a TLS deployment.
    pub tls_port: Option<u16>,
    child: Child,
    log: PathBuf,
}

impl Sentinel {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = fs::remove_file(&self.log);
        }
    }
}

/// The deployment. Fields drop in order: sentinels first (so they do not react to the
/// servers going away), then the servers.
pub struct Deployment {
    pub sentinels: Vec<Sentinel>,
    pub master: RedisServer,
    pub replica: RedisServer,
    /// A TLS deployment (`start_tls`): the master's and the replica's TLS ports, which
    /// replication and the sentinels use (the sentinels themselves listen in plain).
    pub master_tls_port: Option<u16>,
    pub replica_tls_port: Option<u16>,
    dir: PathBuf,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.sentinels.clear();
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn unique_dir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = c_tests_dir().join(format!(
        "sentinel.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn start_sentinel(
    dir: &std::path::Path,
    i: usize,
    master_port: u16,
    down_after_ms: u32,
    tls: bool,
) -> Sentinel {
    let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
    let mut failures = Vec::new();
    for attempt in 0..START_ATTEMPTS {
        let port = free_port();
        let tls_port = tls.then(free_port);
        let conf = dir.join(format!("sentinel-{i}-{attempt}.conf"));
        let log = dir.join(format!("sentinel-{i}-{attempt}.log"));
        let body = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile {log}\ndir {dir}\n\
             sentinel resolve-hostnames no\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
             sentinel failover-timeout {MASTER_NAME} 5000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n{tls}",
            log = log.display(),
            dir = dir.display(),
            tls = if tls {
                let c = super::tls::certs();
                format!(
                    "tls-port {}\ntls-replication yes\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients no\n",
                    tls_port.unwrap_or_default(),
                    c.path("server.pem"),
                    c.path("server.key"),
                    c.path("ca.pem")
                )
            } else {
                String::new()
            },
        );
        fs::write(&conf, body).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let child = Command::new(&program)
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server --sentinel: {e}"));
        let mut s = Sentinel {
            port,
            tls_port,
            child,
            log,
        };
        let end = Instant::now() + Duration::from_secs(10);
        let mut last;
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                last = format!("exited early with {status}");
                break;
            }
            // Only our own sentinel counts: its run_id is unknown, but a plain redis on the
            // port would not know our master.
            match query(
                &s.addr(),
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
            ) {
                Ok(Reply::Array(_)) => return s,
                Ok(r) => last = format!("answered {r:?}"),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= end {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        failures.push(format!(
            "port {port}: {last}\n{}",
            fs::read_to_string(&s.log).unwrap_or_default()
        ));
    }
    panic!("sentinel {i} did not start:\n{}", failures.join("\n"));
}

impl Deployment {
    /// Master, replica, 3 sentinels; returns once the sentinels know each other and the
    /// replica and the replica's link is up.
    pub fn start() -> Deployment {
        Self::start_with_down_after(1000)
    }

    /// `start`, the sentinels judging the master down after `down_after_ms`.
    pub fn start_with_down_after(down_after_ms: u32) -> Deployment {
        // Replication writes the RDB it receives into the working dir: keep it in ours.
        let dir = unique_dir();
        let dir_arg = dir.to_str().expect("UTF-8 path").to_string();
        let master = RedisServer::start_with(&["--dir", &dir_arg]);
        let mport = master.port.to_string();
        let replica =
            RedisServer::start_with(&["--dir", &dir_arg, "--replicaof", "127.0.0.1", &mport]);
        let sentinels = (0..3)
            .map(|i| start_sentinel(&dir, i, master.port, down_after_ms, false))
            .collect();
        let d = Deployment {
            sentinels,
            master,
            replica,
            master_tls_port: None,
            replica_tls_port: None,
            dir,
        };
        d.await_settled();
        d
    }

    /// `start`, with the master and the replica listening for TLS too, replicating over
    /// TLS, and the sentinels watching them over TLS (`tls-replication yes`): the master
    /// address the sentinels report is its TLS port. The sentinels listen in plain.
    pub fn start_tls() -> Deployment {
        let dir = unique_dir();
        let dir_arg = dir.to_str().expect("UTF-8 path").to_string();
        let master = super::tls::TlsServer::start_with("server", false, &["--dir", &dir_arg]);
        let mport = master.tls_port.to_string();
        let replica = super::tls::TlsServer::start_with(
            "server",
            false,
            &[
                "--dir",
                &dir_arg,
                "--replicaof",
                "127.0.0.1",
                &mport,
                "--tls-replication",
                "yes",
            ],
        );
        let sentinels = (0..3)
            .map(|i| start_sentinel(&dir, i, master.tls_port, 1000, true))
            .collect();
        let d = Deployment {
            sentinels,
            master_tls_port: Some(master.tls_port),
            replica_tls_port: Some(replica.tls_port),
            master: master.server,
            replica: replica.server,
            dir,
        };
        d.await_settled();
        d
    }

    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(Sentinel::addr).collect()
    }

    /// The sentinels' TLS addresses, in a TLS deployment (`start_tls`).
    pub fn sentinel_tls_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.tls_port.expect("a TLS deployment")))
            .collect()
    }

    /// Polls `cond` every 50 ms until it holds; panics with `what` and the sentinels' logs
    /// after `limit`.
    pub fn await_cond(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + limit;
        while !cond() {
            if Instant::now() >= end {
                panic!("{what}: not within {limit:?}\n{}", self.logs());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn await_settled(&self) {
        let replica_port = self
            .replica_tls_port
            .unwrap_or(self.replica.port)
            .to_string();
        let n = self.sentinels.len();
        self.await_cond(
            "replica link up and every sentinel knowing the replica and the other sentinels",
            SETTLE_TIMEOUT,
            || {
                info_field(&self.replica.addr(), "replication", "master_link_status").as_deref()
                    == Some("up")
                    && self.sentinels.iter().all(|s| {
                        let replicas = query(&s.addr(), &["SENTINEL", "REPLICAS", MASTER_NAME])
                            .map(|r| entries(&r))
                            .unwrap_or_default();
                        let peers = query(&s.addr(), &["SENTINEL", "SENTINELS", MASTER_NAME])
                            .map(|r| entries(&r))
                            .unwrap_or_default();
                        replicas.iter().any(|e| {
                            field(e, "port") == replica_port
                                && field(e, "flags") == "slave"
                                && field(e, "master-link-status") == "ok"
                        }) && peers.len() == n - 1
                    })
            },
        );
    }

    /// The master address one sentinel reports.
    pub fn reported_master(&self, sentinel: usize) -> Option<String> {
        match query(
            &self.sentinels[sentinel].addr(),
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
        ) {
            Ok(Reply::Array(v)) if v.len() == 2 => Some(format!("{}:{}", text(&v[0]), text(&v[1]))),
            _ => None,
        }
    }

    /// The sentinels' logs, for failure messages.
    pub fn logs(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| {
                format!(
                    "--- sentinel {} ---\n{}",
                    s.port,
                    fs::read_to_string(&s.log).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
