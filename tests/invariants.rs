//! Pool invariants under random faults, through the C ABI: 64 threads run a million mixed
//! pool operations (pool_get, pool_get_ex with short timeouts, pool_try_get, pool_put,
//! pool_remove, and ECHO commands through pool_conn_command) against an in-process fake
//! Redis reached through a `pool_dial_fn` written in Rust. The dialer fails dials (errno),
//! slows them down; the fake server closes conns, writes bytes nobody asked for, answers
//! with garbage or half a reply, refuses the session set-up, at random moments.
//!
//! Checked all along: no conn (by `pool_conn_id`, and by fd) is ever held by two threads at
//! once (a flag per id and per fd, set on get, cleared before put/remove); no command ever
//! reads a reply that is not its own on a conn no fault touched; every status is one the
//! contract allows. Checked at the end, once the faults stop: nothing is checked out or
//! waiting and `total_conns == idle_conns`; the conns the pool counts are exactly the
//! sockets the fake server still has open; `timeouts` equals the timeouts the threads saw;
//! dials cover every conn closed or kept; a get of `pool_size` conns at once succeeds (no
//! turn leaked) and one more does not (no turn invented); and once the pool is freed the
//! process has the fds it had before. A second test closes the pool in the middle of the
//! same load: every conn and fd is released.
//!
//! Each run prints its seed; `REDISPOOL_FAULT_SEED=<n>` replays the same fault decisions
//! (thread scheduling aside).

mod common;

use std::collections::{HashMap, HashSet};
use std::ffi::{c_int, c_void};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use common::capi::{CConn, CPool};
use common::procfs::{fd_listing, open_fds, poll_until};
use redispool::ffi::options::{pool_options_init, pool_options_t};
use redispool::ffi::reply::{POOL_REPLY_STATUS, POOL_REPLY_STRING};
use redispool::ffi::status::*;

/// Pool operations (get, get_ex, try_get, put, remove) to run in all.
const TOTAL_OPS: u64 = 1_000_000;
const THREADS: usize = 64;
const POOL_SIZE: usize = 16;
/// A bound on the whole run: far above what it takes (seconds), so only a hang trips it.
const RUN_LIMIT: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------------------
// Randomness: splitmix64, seeded once per run and printed so a run can be replayed
// (as far as thread scheduling allows).
// ---------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------
// The fake Redis: one epoll thread serving the server ends of socketpairs made by the
// dial callback. It speaks just enough RESP: PING, ECHO, CLIENT SETNAME.
// ---------------------------------------------------------------------------

/// Faults injected (per mille of the events they apply to) while faults are on.
mod per_mille {
    /// A dial fails at once with an errno.
    pub const DIAL_FAIL: u64 = 30;
    /// A dial takes 1-5 ms.
    pub const DIAL_SLOW: u64 = 50;
    /// The session set-up (CLIENT SETNAME) is refused as by a full server.
    pub const SETUP_REFUSED: u64 = 20;
    /// A request is answered by closing the conn.
    pub const CLOSE: u64 = 10;
    /// A reply is followed by bytes nobody asked for.
    pub const REPLY_THEN_JUNK: u64 = 10;
    /// A request is answered with bytes that are not RESP.
    pub const GARBAGE: u64 = 10;
    /// Half a reply, then silence (the client's read times out).
    pub const HALF_REPLY: u64 = 3;
}

/// Unsolicited bytes the chaos tick writes; a command that reads them as its reply sees
/// this status.
const JUNK: &[u8] = b"+JUNK\r\n";
/// The error the fake server refuses a session set-up with, as a full Redis does.
const SETUP_REFUSAL: &[u8] = b"ERR max number of clients reached";
const GARBAGE: &[u8] = b"\xff\x00 not resp\r\n";

struct End {
    sock: UnixStream,
    buf: Vec<u8>,
    /// The inode of the pool's end, which the pool side can look up with fstat.
    client_ino: u64,
}

#[derive(Default)]
struct FaultCounts {
    dials: AtomicU64,
    dial_failed: AtomicU64,
    dial_slow: AtomicU64,
    setup_refused: AtomicU64,
    closed: AtomicU64,
    junk: AtomicU64,
    garbage: AtomicU64,
    half_replies: AtomicU64,
    chaos_closed: AtomicU64,
    chaos_junk: AtomicU64,
    requests: AtomicU64,
}

impl FaultCounts {
    fn total_faults(&self) -> u64 {
        [
            &self.dial_failed,
            &self.dial_slow,
            &self.setup_refused,
            &self.closed,
            &self.junk,
            &self.garbage,
            &self.half_replies,
            &self.chaos_closed,
            &self.chaos_junk,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

struct FakeRedis {
    epoll: OwnedFd,
    ends: Mutex<HashMap<RawFd, End>>,
    /// Pool-side socket inodes of the conns whose byte stream a fault put out of step
    /// (bytes nobody asked for, half a reply, garbage): a reply that is not the command's
    /// own is possible on those, and only on those.
    tainted: Mutex<HashSet<u64>>,
    faults_on: AtomicBool,
    stop: AtomicBool,
    /// Loops of the server thread done.
    loops: AtomicU64,
    seed: AtomicU64,
    counts: FaultCounts,
}

impl FakeRedis {
    fn new(seed: u64) -> Arc<FakeRedis> {
        // SAFETY: plain syscall; the fd is checked and owned below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0, "epoll_create1: {}", io::Error::last_os_error());
        Arc::new(FakeRedis {
            // SAFETY: a fresh fd nobody else owns.
            epoll: unsafe { OwnedFd::from_raw_fd(ep) },
            ends: Mutex::new(HashMap::new()),
            tainted: Mutex::new(HashSet::new()),
            faults_on: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            loops: AtomicU64::new(0),
            seed: AtomicU64::new(seed),
            counts: FaultCounts::default(),
        })
    }

    /// A random number for the dial threads and the server thread alike.
    fn random(&self) -> u64 {
        let mut r = Rng(self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
        r.next()
    }

    fn fault(&self, per_mille: u64) -> bool {
        self.faults_on.load(Ordering::Relaxed) && self.random() % 1000 < per_mille
    }

    fn open_ends(&self) -> usize {
        self.ends.lock().unwrap().len()
    }

    /// The dial callback's body: an errno, or the client end of a new socketpair.
    fn dial(&self) -> Result<RawFd, c_int> {
        self.counts.dials.fetch_add(1, Ordering::Relaxed);
        if self.fault(per_mille::DIAL_FAIL) {
            self.counts.dial_failed.fetch_add(1, Ordering::Relaxed);
            let errnos = [libc::ECONNREFUSED, libc::ETIMEDOUT, libc::EHOSTUNREACH];
            return Err(errnos[(self.random() % 3) as usize]);
        }
        if self.fault(per_mille::DIAL_SLOW) {
            self.counts.dial_slow.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(1 + self.random() % 5));
        }
        let (client, server) = UnixStream::pair().map_err(|e| e.raw_os_error().unwrap_or(1))?;
        server
            .set_nonblocking(true)
            .map_err(|e| e.raw_os_error().unwrap_or(1))?;
        let sfd = server.as_raw_fd();
        let client_ino = inode(client.as_raw_fd()).map_err(|e| e.raw_os_error().unwrap_or(1))?;
        // Registered under the lock so the server thread never sees an event for an end
        // it does not know yet.
        let mut ends = self.ends.lock().unwrap();
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: sfd as u64,
        };
        // SAFETY: both fds are open; `ev` is a valid event.
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, sfd, &mut ev) };
        if rc != 0 {
            return Err(io::Error::last_os_error().raw_os_error().unwrap_or(1));
        }
        ends.insert(
            sfd,
            End {
                sock: server,
                buf: Vec::new(),
                client_ino,
            },
        );
        Ok(client.into_raw_fd())
    }

    /// Notes (before the bytes are written) that `end`'s stream goes out of step.
    fn taint(&self, end: &End) {
        self.tainted.lock().unwrap().insert(end.client_ino);
    }

    fn is_tainted(&self, fd: RawFd) -> bool {
        inode(fd).is_ok_and(|ino| self.tainted.lock().unwrap().contains(&ino))
    }

    /// The server thread: serves requests until `stop`, with a chaos tick in between.
    fn serve(self: Arc<Self>) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 128];
        let mut last_chaos = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            // SAFETY: `events` has room for 128 entries.
            let n =
                unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 128, 2) };
            for ev in events.iter().take(n.max(0) as usize) {
                self.on_readable(ev.u64 as RawFd);
            }
            if last_chaos.elapsed() >= Duration::from_millis(1) {
                last_chaos = Instant::now();
                self.chaos_tick();
            }
            self.loops.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Turns the faults off and returns once the server thread can no longer be in the
    /// middle of one (it has finished a loop that started after the switch). Dials check
    /// the switch themselves; their faults end with the dials in flight.
    fn stop_faults(&self) {
        self.faults_on.store(false, Ordering::SeqCst);
        let start = self.loops.load(Ordering::SeqCst);
        assert!(
            poll_until(Duration::from_secs(10), || self
                .loops
                .load(Ordering::SeqCst)
                >= start + 2),
            "the fake server thread is stuck"
        );
    }

    /// Now and then, to a random open conn (idle or checked out): close it, or write bytes
    /// nobody asked for.
    fn chaos_tick(&self) {
        if !self.faults_on.load(Ordering::Relaxed) || self.random() % 4 != 0 {
            return;
        }
        let mut ends = self.ends.lock().unwrap();
        if ends.is_empty() {
            return;
        }
        let pick = (self.random() % ends.len() as u64) as usize;
        let fd = *ends.keys().nth(pick).expect("in range");
        if self.random() % 2 == 0 {
            ends.remove(&fd);
            self.counts.chaos_closed.fetch_add(1, Ordering::Relaxed);
        } else {
            let end = ends.get(&fd).expect("present");
            self.taint(end);
            send(&end.sock, JUNK);
            self.counts.chaos_junk.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_readable(&self, fd: RawFd) {
        let mut ends = self.ends.lock().unwrap();
        let Some(end) = ends.get_mut(&fd) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        let open = loop {
            match (&end.sock).read(&mut chunk) {
                Ok(0) => break false,
                Ok(n) => end.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        let mut keep = open;
        while keep {
            let Some((args, used)) = parse_request(&end.buf) else {
                break;
            };
            end.buf.drain(..used);
            self.counts.requests.fetch_add(1, Ordering::Relaxed);
            keep = self.answer(end, &args);
        }
        if !keep {
            // The client closed it, or a fault closes it: drop our end.
            ends.remove(&fd);
        }
    }

    /// Answers one request, perhaps with a fault. Returns false to close the conn.
    fn answer(&self, end: &End, args: &[Vec<u8>]) -> bool {
        let sock = &end.sock;
        let cmd = args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        let reply: Vec<u8> = match cmd.as_slice() {
            b"PING" => b"+PONG\r\n".to_vec(),
            b"ECHO" if args.len() == 2 => {
                let mut r = format!("${}\r\n", args[1].len()).into_bytes();
                r.extend_from_slice(&args[1]);
                r.extend_from_slice(b"\r\n");
                r
            }
            b"CLIENT" => {
                if self.fault(per_mille::SETUP_REFUSED) {
                    // As a full Redis does: the error, then the conn is closed.
                    self.counts.setup_refused.fetch_add(1, Ordering::Relaxed);
                    send(sock, &[b"-", SETUP_REFUSAL, b"\r\n"].concat());
                    return false;
                } else {
                    b"+OK\r\n".to_vec()
                }
            }
            _ => b"-ERR unknown command\r\n".to_vec(),
        };
        if self.fault(per_mille::CLOSE) {
            self.counts.closed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.fault(per_mille::GARBAGE) {
            self.counts.garbage.fetch_add(1, Ordering::Relaxed);
            self.taint(end);
            return send(sock, GARBAGE);
        }
        if self.fault(per_mille::HALF_REPLY) {
            self.counts.half_replies.fetch_add(1, Ordering::Relaxed);
            self.taint(end);
            return send(sock, &reply[..reply.len() / 2]);
        }
        if !send(sock, &reply) {
            return false;
        }
        if self.fault(per_mille::REPLY_THEN_JUNK) {
            self.counts.junk.fetch_add(1, Ordering::Relaxed);
            self.taint(end);
            return send(sock, JUNK);
        }
        true
    }
}

/// The inode of an open fd.
fn inode(fd: RawFd) -> io::Result<u64> {
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` writable.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_ino)
}

/// A non-blocking send without SIGPIPE; false when the peer is gone. Replies are tiny, so
/// a full socket buffer (the client stopped reading) just drops the rest.
fn send(sock: &UnixStream, bytes: &[u8]) -> bool {
    // SAFETY: `bytes` is valid for its length; the fd is open.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    n >= 0 || io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// One RESP request (an array of bulk strings) from the front of `buf`: its arguments and
/// the bytes it used, or None while incomplete.
fn parse_request(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = buf.get(at..)?;
        let i = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..i], at + i + 2))
    }
    let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<usize>().ok();
    let (head, mut at) = line(buf, 0)?;
    let n = num(head.strip_prefix(b"*")?)?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let (h, next) = line(buf, at)?;
        let len = num(h.strip_prefix(b"$")?)?;
        let body = buf.get(next..next + len)?;
        if buf.get(next + len..next + len + 2)? != b"\r\n" {
            return None;
        }
        args.push(body.to_vec());
        at = next + len + 2;
    }
    Some((args, at))
}

/// The `pool_dial_fn`. `userdata` is a leaked `Weak<FakeRedis>` (see `dialer_userdata`):
/// the library does not wait for its dial threads (nor the fast-fail probe) on
/// pool_close/pool_free, so a dial may still run after the test dropped its server; it
/// then fails with ECONNREFUSED. Never unwinds (a panic here would abort: it is called
/// from the library's dial threads).
unsafe extern "C" fn fake_dial(
    userdata: *mut c_void,
    _timeout_ms: i64,
    fd_out: *mut c_int,
) -> c_int {
    // SAFETY: `userdata` comes from `dialer_userdata`, leaked, so valid forever.
    let weak = unsafe { &*userdata.cast::<Weak<FakeRedis>>() };
    let Some(server) = weak.upgrade() else {
        return libc::ECONNREFUSED;
    };
    match server.dial() {
        Ok(fd) => {
            // SAFETY: the library passes a writable fd_out.
            unsafe { *fd_out = fd };
            0
        }
        Err(errno) => errno,
    }
}

/// The userdata for `fake_dial`: a `Weak` to the server, leaked on purpose (a few bytes
/// per test) because a library dial thread may use it at any time.
fn dialer_userdata(server: &Arc<FakeRedis>) -> *mut c_void {
    Box::into_raw(Box::new(Arc::downgrade(server))).cast()
}

// ---------------------------------------------------------------------------
// The workers
// ---------------------------------------------------------------------------

/// Who holds what right now: a flag per conn id and per fd, set on get and cleared
/// before put/remove. Setting a flag already set means a conn went to two threads at once.
struct Holders {
    by_id: Vec<AtomicBool>,
    by_fd: Vec<AtomicBool>,
}

impl Holders {
    fn new(ids: usize, fds: usize) -> Holders {
        Holders {
            by_id: (0..ids).map(|_| AtomicBool::new(false)).collect(),
            by_fd: (0..fds).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    fn take(&self, conn: &CConn) -> Result<(), String> {
        let (id, fd) = (conn.id(), conn.fd());
        if id == 0 || fd < 0 {
            return Err(format!("a checked-out handle reports id {id} fd {fd}"));
        }
        let slot = self
            .by_id
            .get(id as usize)
            .ok_or_else(|| format!("conn id {id} beyond the {} tracked", self.by_id.len()))?;
        if slot.swap(true, Ordering::SeqCst) {
            return Err(format!("conn {id} handed to two threads at once"));
        }
        let fslot = self
            .by_fd
            .get(fd as usize)
            .ok_or_else(|| format!("fd {fd} beyond the {} tracked", self.by_fd.len()))?;
        if fslot.swap(true, Ordering::SeqCst) {
            return Err(format!("fd {fd} (conn {id}) held by two threads at once"));
        }
        Ok(())
    }

    fn give_back(&self, conn: &CConn) -> Result<(), String> {
        let (id, fd) = (conn.id(), conn.fd());
        if id == 0 || fd < 0 {
            return Err(format!("a handle still held reports id {id} fd {fd}"));
        }
        if !self.by_fd[fd as usize].swap(false, Ordering::SeqCst) {
            return Err(format!("fd {fd} of conn {id} was not marked held"));
        }
        if !self.by_id[id as usize].swap(false, Ordering::SeqCst) {
            return Err(format!("conn {id} was not marked held"));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    gets_ok: AtomicU64,
    timeouts: AtomicU64,
    would_block: AtomicU64,
    dial_errors: AtomicU64,
    handshake_errors: AtomicU64,
    puts: AtomicU64,
    removes: AtomicU64,
    commands_ok: AtomicU64,
    out_of_step: AtomicU64,
    command_failures: AtomicU64,
    /// Puts of conns a command had failed on (the pool must remove them).
    broken_puts: AtomicU64,
    /// Gets that found the pool closed.
    closed_gets: AtomicU64,
}

struct Shared {
    pool: CPool,
    server: Arc<FakeRedis>,
    /// Pool operations to run in all.
    op_limit: u64,
    /// Set just before pool_close: from then on gets may fail with POOL_ERR_CLOSED.
    closing: AtomicBool,
    holders: Holders,
    tally: Tally,
    /// The first violations seen (the test fails if any).
    violations: Mutex<Vec<String>>,
}

impl Shared {
    fn violation(&self, what: String) {
        let mut v = self.violations.lock().unwrap();
        if v.len() < 20 {
            v.push(what);
        }
    }
}

fn worker(shared: &Shared, t: usize, seed: u64, done: &AtomicBool) {
    let mut rng = Rng(seed);
    let tally = &shared.tally;
    let mut seq = 0u64;
    while !done.load(Ordering::Relaxed) {
        if tally.ops.load(Ordering::Relaxed) >= shared.op_limit {
            break;
        }
        tally.ops.fetch_add(1, Ordering::Relaxed);
        let got = match rng.below(100) {
            0..70 => shared.pool.get(-1),
            70..88 => shared.pool.get(rng.below(4) as i64),
            _ => shared.pool.try_get().map_err(|code| common::capi::Failure {
                code,
                message: String::new(),
            }),
        };
        let conn = match got {
            Ok(c) => c,
            Err(f) => {
                match f.code {
                    POOL_ERR_TIMEOUT => {
                        tally.timeouts.fetch_add(1, Ordering::Relaxed);
                        if !f.message.starts_with("redis: connection pool timeout") {
                            shared.violation(format!("unclear timeout message: {f}"));
                        }
                    }
                    POOL_ERR_WOULD_BLOCK => {
                        tally.would_block.fetch_add(1, Ordering::Relaxed);
                    }
                    // The fake dialer's errno, or a set-up cut short (dial failures); the
                    // set-up refused by the fake server (handshake).
                    POOL_ERR_DIAL => {
                        tally.dial_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    POOL_ERR_CLOSED if shared.closing.load(Ordering::SeqCst) => {
                        tally.closed_gets.fetch_add(1, Ordering::Relaxed);
                    }
                    POOL_ERR_HANDSHAKE => {
                        tally.handshake_errors.fetch_add(1, Ordering::Relaxed);
                        // The refusal, or a set-up whose replies a "+JUNK" put out of
                        // step (before its reply, or after it): refused, not handed out.
                        if !f.message.contains("max number of clients reached")
                            && !f.message.contains("(a banner or an extra reply?)")
                        {
                            shared.violation(format!(
                                "handshake error without the server's text: {f}"
                            ));
                        }
                    }
                    _ => shared.violation(format!("thread {t}: get failed unexpectedly: {f}")),
                }
                continue;
            }
        };
        tally.gets_ok.fetch_add(1, Ordering::Relaxed);
        if let Err(v) = shared.holders.take(&conn) {
            shared.violation(format!("thread {t}: {v}"));
        }
        let mut broken = false;
        if rng.below(100) < 12 {
            seq += 1;
            let token = format!("t{t}:{seq}");
            match conn.command(&[b"ECHO", token.as_bytes()]) {
                Ok(r) if r.kind == POOL_REPLY_STRING && r.text == token => {
                    tally.commands_ok.fetch_add(1, Ordering::Relaxed);
                }
                // On a conn the fake server put out of step (unsolicited bytes, half a
                // reply), a command can read bytes that are not its reply: RESP has no
                // request ids, so no client can tell. On any other conn it is a crossed
                // reply: the pool handed out a conn with someone else's reply pending.
                // Out of step, the reply read is one the server sent on this conn: a
                // status or bulk string. Never the set-up's refusal: a set-up that took an
                // unsolicited "+JUNK" for its answer is refused, not handed out.
                Ok(r) if shared.server.is_tainted(conn.fd()) => {
                    tally.out_of_step.fetch_add(1, Ordering::Relaxed);
                    if r.kind != POOL_REPLY_STATUS && r.kind != POOL_REPLY_STRING {
                        shared.violation(format!("thread {t}: odd reply {r:?} to {token}"));
                    }
                }
                Ok(r) => shared.violation(format!(
                    "thread {t}: crossed reply {r:?} to {token} on a conn no fault touched"
                )),
                Err(f) if f.code == POOL_ERR_IO || f.code == POOL_ERR_PROTOCOL => {
                    tally.command_failures.fetch_add(1, Ordering::Relaxed);
                    broken = true;
                }
                Err(f) => shared.violation(format!("thread {t}: command failed unexpectedly: {f}")),
            }
        }
        if let Err(v) = shared.holders.give_back(&conn) {
            shared.violation(format!("thread {t}: {v}"));
        }
        tally.ops.fetch_add(1, Ordering::Relaxed);
        let st = if rng.below(100) < 20 {
            tally.removes.fetch_add(1, Ordering::Relaxed);
            shared.pool.remove(conn, "invariants test")
        } else {
            tally.puts.fetch_add(1, Ordering::Relaxed);
            if broken {
                tally.broken_puts.fetch_add(1, Ordering::Relaxed);
            }
            shared.pool.put(conn)
        };
        if st != POOL_OK {
            shared.violation(format!("thread {t}: put/remove returned {st}"));
        }
    }
}

/// One test at a time: the fd counts are per process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The run's seed: `REDISPOOL_FAULT_SEED`, or the clock.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("REDISPOOL_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: seed {seed} (replay with REDISPOOL_FAULT_SEED={seed})");
    seed
}

/// A fake server with its thread, and a pool on it with every feature that runs in the
/// background or on a timer turned on: min idle refills, max idle eviction, lifetimes with
/// jitter, idle timeouts, the reaper, the session set-up (CLIENT SETNAME), dial retries.
fn set_up(seed: u64, op_limit: u64, overtake_ms: i64) -> (Arc<Shared>, thread::JoinHandle<()>) {
    let server = FakeRedis::new(seed);
    let server_thread = {
        let s = server.clone();
        thread::spawn(move || s.serve())
    };

    // SAFETY: an all-zero pool_options_t is overwritten at once by pool_options_init.
    let mut opts: pool_options_t = unsafe { std::mem::zeroed() };
    // SAFETY: a writable struct.
    unsafe { pool_options_init(&mut opts) };
    opts.dialer = Some(fake_dial);
    opts.dialer_userdata = dialer_userdata(&server);
    opts.pool_size = POOL_SIZE as i32;
    opts.min_idle_conns = 4;
    opts.max_idle_conns = 12;
    opts.pool_timeout_ms = 2000;
    opts.dial_timeout_ms = 1000;
    opts.dialer_retries = 2;
    opts.dialer_retry_backoff_ms = 1;
    opts.read_timeout_ms = 50;
    opts.write_timeout_ms = 50;
    opts.conn_max_lifetime_ms = 300;
    opts.conn_max_lifetime_jitter_ms = 100;
    opts.reaper_interval_ms = 25;
    opts.conn_max_idle_time_ms = 200;
    opts.overtake_window_ms = overtake_ms;
    let name = c"rp-invariants";
    opts.client_name = name.as_ptr();

    let shared = Arc::new(Shared {
        pool: CPool::from_options(&opts),
        server,
        op_limit,
        closing: AtomicBool::new(false),
        holders: Holders::new(4 << 20, 1 << 16),
        tally: Tally::default(),
        violations: Mutex::new(Vec::new()),
    });
    (shared, server_thread)
}

/// THREADS workers on `shared`, stopped by the op limit or `done`.
fn start_workers(
    shared: &Arc<Shared>,
    seed: u64,
    done: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    (0..THREADS)
        .map(|t| {
            let (shared, done) = (shared.clone(), done.clone());
            let seed = seed ^ (t as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
            thread::Builder::new()
                .name(format!("worker-{t}"))
                .spawn(move || worker(&shared, t, seed, &done))
                .expect("spawn worker")
        })
        .collect()
}

/// Joins the workers; one still running after RUN_LIMIT is a hang.
fn join_workers(shared: &Shared, workers: Vec<thread::JoinHandle<()>>, done: &AtomicBool) {
    let all_joined = poll_until(RUN_LIMIT, || workers.iter().all(|w| w.is_finished()));
    if !all_joined {
        done.store(true, Ordering::SeqCst);
        panic!(
            "workers still running after {RUN_LIMIT:?} ({} ops done): a hang; {}",
            shared.tally.ops.load(Ordering::SeqCst),
            shared.pool.stats_line()
        );
    }
    for w in workers {
        w.join().expect("a worker panicked");
    }
}

/// Frees the pool once no dial is in flight, waits for the fake server to see every conn
/// closed, stops it, and checks the process has the fds it had at the start.
fn tear_down(
    shared: Arc<Shared>,
    server_thread: thread::JoinHandle<()>,
    fds_before: usize,
    listing_before: &[String],
) -> usize {
    let shared = Arc::into_inner(shared).expect("workers joined");
    let pool = shared.pool;
    let server = shared.server;
    if pool.close() == POOL_OK {
        // Closed now; a dial job already running still finishes (its conn is closed).
        assert!(
            poll_until(Duration::from_secs(10), || pool.stats().dials_in_progress
                == 0),
            "dials in flight after close: {}",
            pool.stats_line()
        );
    }
    drop(pool);
    assert!(
        poll_until(Duration::from_secs(10), || server.open_ends() == 0),
        "fake server still has {} conns open after pool_free",
        server.open_ends()
    );
    server.stop.store(true, Ordering::SeqCst);
    server_thread.join().expect("server thread");
    drop(server);
    let settled = poll_until(Duration::from_secs(10), || open_fds() == fds_before);
    let fds_after = open_fds();
    assert!(
        settled,
        "fds before {fds_before}, after {fds_after}\nbefore: {listing_before:?}\nafter: {:?}",
        fd_listing()
    );
    fds_after
}

#[test]
fn a_million_mixed_operations_under_random_faults_keep_every_invariant() {
    mixed_operations_keep_every_invariant("invariants", TOTAL_OPS, 0);
}

/// The same with gets allowed to overtake the queue for 2 ms (`overtake_window_ms`): puts
/// then leave conns idle while gets wait, and woken waiters race the other gets for them.
#[test]
fn with_an_overtake_window_the_same_invariants_hold() {
    mixed_operations_keep_every_invariant("invariants, overtake window", TOTAL_OPS / 3, 2);
}

fn mixed_operations_keep_every_invariant(label: &str, total_ops: u64, overtake_ms: i64) {
    let _serial = serial();
    let seed = seed(label);
    let fds_before = open_fds();
    let listing_before = fd_listing();
    let (shared, server_thread) = set_up(seed, total_ops, overtake_ms);
    let server = shared.server.clone();

    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let workers = start_workers(&shared, seed, &done);
    join_workers(&shared, workers, &done);
    let elapsed = started.elapsed();

    let violations = shared.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );

    // The faults stop; let dials in flight (background refills) land.
    server.stop_faults();
    let pool = &shared.pool;
    assert!(
        poll_until(Duration::from_secs(10), || pool.stats().dials_in_progress
            == 0),
        "dials never finished: {}",
        pool.stats_line()
    );

    // Nothing checked out, nobody waiting, every conn idle.
    let s = pool.stats();
    let tally = &shared.tally;
    assert_eq!(
        (s.in_use_conns, s.pending_requests, s.waiting),
        (0, 0, 0),
        "{}",
        pool.stats_line()
    );
    assert_eq!(s.total_conns, s.idle_conns, "{}", pool.stats_line());
    assert_eq!(pool.len() as u32, s.total_conns);
    assert_eq!(pool.idle_len() as u32, s.idle_conns);
    // Every get that timed out was counted, and nothing else was.
    assert_eq!(
        s.timeouts,
        tally.timeouts.load(Ordering::SeqCst),
        "stats.timeouts vs timeouts seen"
    );
    // Every remove counted; puts of broken conns are removes too.
    let removes = tally.removes.load(Ordering::SeqCst);
    let broken_puts = tally.broken_puts.load(Ordering::SeqCst);
    assert!(
        s.removed_conns >= removes + broken_puts,
        "removed_conns {} < removes {removes} + broken puts {broken_puts}",
        s.removed_conns
    );
    // Every conn dialed is either still counted or was closed and counted as such (a
    // fast-fail probe's conn may be dropped uncounted when the pool is full: hence >=).
    let closed_or_kept =
        s.stale_conns as u64 + s.removed_conns + s.evicted_conns + s.total_conns as u64;
    assert!(
        s.dials >= closed_or_kept,
        "dials {} < stale {} + removed {} + evicted {} + total {}",
        s.dials,
        s.stale_conns,
        s.removed_conns,
        s.evicted_conns,
        s.total_conns
    );

    // No turn leaked: pool_size gets held at once all succeed. A stale idle conn is
    // replaced by a dial, which faults no longer spoil; a get may wait a moment for a
    // min_idle_conns refill dial, which holds a turn while it runs, but not for the pool
    // timeout (a leaked turn would make the last get time out).
    let mut held = Vec::new();
    let batch = Instant::now();
    for i in 0..POOL_SIZE {
        match pool.get(-1) {
            Ok(c) => held.push(c),
            Err(f) => panic!(
                "get {i} of {POOL_SIZE} at once failed: {f}; {}",
                pool.stats_line()
            ),
        }
    }
    let batch = batch.elapsed();
    assert!(
        batch < Duration::from_millis(1500),
        "{POOL_SIZE} gets took {batch:?}"
    );
    let mut ids: Vec<u64> = held.iter().map(CConn::id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        POOL_SIZE,
        "the same conn handed out twice: {ids:?}"
    );
    // ... and no turn invented: one more get finds none.
    match pool.get(0) {
        Err(f) if f.code == POOL_ERR_TIMEOUT => {}
        Err(f) => panic!("get beyond pool_size: {f}"),
        Ok(c) => panic!("a get beyond pool_size succeeded (conn {})", c.id()),
    }
    for c in held {
        assert_eq!(
            c.command(&[b"PING"]).map(|r| r.text),
            Ok("PONG".to_string())
        );
        assert_eq!(pool.put(c), POOL_OK);
    }
    let s = pool.stats();
    assert_eq!(s.total_conns, s.idle_conns, "{}", pool.stats_line());
    assert_eq!(s.in_use_conns, 0);
    // The conns the pool counts are the sockets really open. Every conn the pool holds has
    // just answered PING (the gets above found and dropped any conn a fault had closed or
    // put out of step), and the fake server closes its end when it sees the pool close the
    // other: so its open ends are exactly the pool's conns.
    assert!(
        poll_until(Duration::from_secs(10), || server.open_ends()
            == pool.stats().total_conns as usize),
        "fake server has {} conns open, pool counts {}",
        server.open_ends(),
        pool.stats().total_conns
    );
    let final_stats = format!(
        "{} (final {POOL_SIZE} gets in {batch:.1?})",
        pool.stats_line()
    );

    let ops = tally.ops.load(Ordering::SeqCst);
    let c = &server.counts;
    eprintln!(
        "{label}: {ops} pool operations ({} gets ok, {} puts, {} removes, {} timeouts, {} would-block, \
         {} dial errors, {} handshake errors; {} commands ok, {} out-of-step replies on faulted conns, {} command failures) \
         from {THREADS} threads in {:.1?} ({:.0} ops/s)",
        tally.gets_ok.load(Ordering::SeqCst),
        tally.puts.load(Ordering::SeqCst),
        removes,
        tally.timeouts.load(Ordering::SeqCst),
        tally.would_block.load(Ordering::SeqCst),
        tally.dial_errors.load(Ordering::SeqCst),
        tally.handshake_errors.load(Ordering::SeqCst),
        tally.commands_ok.load(Ordering::SeqCst),
        tally.out_of_step.load(Ordering::SeqCst),
        tally.command_failures.load(Ordering::SeqCst),
        elapsed,
        ops as f64 / elapsed.as_secs_f64()
    );
    eprintln!(
        "{label}: {} faults injected: {} failed dials, {} slow dials, {} refused set-ups, {} conns closed \
         on a request, {} replies followed by junk, {} garbage replies, {} half replies, {} idle/held conns \
         closed, {} unsolicited junk writes ({} dials, {} requests served)",
        c.total_faults(),
        c.dial_failed.load(Ordering::SeqCst),
        c.dial_slow.load(Ordering::SeqCst),
        c.setup_refused.load(Ordering::SeqCst),
        c.closed.load(Ordering::SeqCst),
        c.junk.load(Ordering::SeqCst),
        c.garbage.load(Ordering::SeqCst),
        c.half_replies.load(Ordering::SeqCst),
        c.chaos_closed.load(Ordering::SeqCst),
        c.chaos_junk.load(Ordering::SeqCst),
        c.dials.load(Ordering::SeqCst),
        c.requests.load(Ordering::SeqCst),
    );
    eprintln!("{label}: final {final_stats}");
    assert!(ops >= total_ops, "only {ops} operations ran");

    // Freeing the pool closes every conn; then no fd is left over.
    drop(server);
    let fds_after = tear_down(shared, server_thread, fds_before, &listing_before);
    eprintln!("{label}: fds before {fds_before}, after {fds_after}");
}

/// pool_close while the 64 threads run the same faulty mix: gets waiting or dialing and
/// every later get return POOL_ERR_CLOSED, conns given back afterwards are closed (put and
/// remove still return POOL_OK), dials in flight land nowhere, and every conn and fd is
/// released: the fake server ends up with no conn open.
#[test]
fn pool_close_under_faulty_load_loses_nothing() {
    let _serial = serial();
    let seed = seed("close under load");
    let fds_before = open_fds();
    let listing_before = fd_listing();
    let (shared, server_thread) = set_up(seed, u64::MAX, 0);
    let done = Arc::new(AtomicBool::new(false));
    let workers = start_workers(&shared, seed, &done);
    let tally = &shared.tally;
    assert!(
        poll_until(RUN_LIMIT, || tally.ops.load(Ordering::SeqCst) >= 100_000),
        "no progress: {}",
        shared.pool.stats_line()
    );
    let before_close = shared.pool.stats();
    shared.closing.store(true, Ordering::SeqCst);
    assert_eq!(shared.pool.close(), POOL_OK);
    let closed_at = Instant::now();
    // Every thread keeps calling: its gets now fail with POOL_ERR_CLOSED.
    assert!(
        poll_until(RUN_LIMIT, || tally.closed_gets.load(Ordering::SeqCst)
            >= 10 * THREADS as u64),
        "gets after close: {}",
        tally.closed_gets.load(Ordering::SeqCst)
    );
    done.store(true, Ordering::SeqCst);
    join_workers(&shared, workers, &done);
    let violations = shared.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );

    let pool = &shared.pool;
    assert!(
        poll_until(Duration::from_secs(10), || pool.stats().dials_in_progress
            == 0),
        "dials in flight after close: {}",
        pool.stats_line()
    );
    let s = pool.stats();
    assert_eq!(
        (s.total_conns, s.idle_conns, s.in_use_conns, s.waiting),
        (0, 0, 0, 0),
        "{}",
        pool.stats_line()
    );
    assert_eq!(pool.close(), POOL_ERR_CLOSED);
    assert_eq!(
        pool.get(-1).map(|c| c.id()).map_err(|f| f.code),
        Err(POOL_ERR_CLOSED)
    );
    assert!(
        poll_until(Duration::from_secs(10), || shared.server.open_ends() == 0),
        "the fake server still has {} conns open after pool_close",
        shared.server.open_ends()
    );
    let released_in = closed_at.elapsed();
    let ops = tally.ops.load(Ordering::SeqCst);
    let closed_gets = tally.closed_gets.load(Ordering::SeqCst);
    let fds_after = tear_down(shared, server_thread, fds_before, &listing_before);
    eprintln!(
        "close under load: closed after {ops} ops with {} conns open ({} in use, {} waiting, {} dialing); \
         {closed_gets} gets then failed with POOL_ERR_CLOSED; every conn closed within {released_in:.1?}; \
         fds before {fds_before}, after {fds_after}",
        before_close.total_conns,
        before_close.in_use_conns,
        before_close.waiting,
        before_close.dials_in_progress,
    );
}
