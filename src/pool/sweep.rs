//! The health sweep: one readiness check answers for every conn of a pool at once, so a
//! get does not pay a `recv(MSG_PEEK)` of its own (go-redis's `connCheck` costs one
//! system call per get, most of an uncontended get's time).
//!
//! Each pool has one epoll set (kept under the pool lock, closed by `close`). Every pooled
//! conn joins it once, right after it is dialed
//! (`EPOLL_CTL_ADD`, level-triggered, `EPOLLIN | EPOLLRDHUP`; `EPOLLHUP` and `EPOLLERR`
//! always count), keyed by its conn id; the kernel drops it when the socket is closed, so
//! leaving costs nothing. A *sweep* is one `epoll_wait` with timeout 0, run under the pool
//! lock by a get that finds the last sweep older than `TRUST_NS`: every conn reported is
//! either
//! - idle: whatever it reports (the server closed it, an error, or bytes nobody asked for)
//!   makes it stale. It is marked suspect (`Conn::mark_suspect`) and moved to the end of
//!   the idle list the next gets pop from, which peek it (`health::check_socket`), find it
//!   stale and close it, as they would have without the sweep;
//! - not idle (checked out, being handed over, or closed meanwhile): its id goes into the
//!   sweep's suspect list. Checked-out conns are reported for their replies too (`EPOLLIN`),
//!   so the list holds more than dead conns: a get that takes one of them peeks it, and a
//!   clean peek then vouches for the conn as a sweep begun at that get's clock read would
//!   (`ConnPool` stamps it; `stamp` keeps a stamp newer than the last sweep), so such a
//!   conn costs one peek per sweep, not one per get.
//!
//! A get *stamps* the conn it takes from the idle list (and a put the conn it hands to a
//! waiting get) with the start of the last sweep, unless that sweep reported it
//! (`SweepState::stamp`, under the pool lock, no clock); outside the lock the get reads the
//! clock once: a conn stamped by a sweep that began less than `TRUST_NS` ago, and not
//! marked suspect, is handed out without a peek. Otherwise (the sweep is due) the get
//! takes the lock again, sweeps if that is still due, and stamps the conn again
//! (`SweepState::sweep_for`); a conn still not vouched for is peeked as before. At most one
//! sweep per `TRUST_NS` (2,000 a second) is paid for all the gets of the pool: a busy pool
//! pays far less than one system call per get, a pool with one get per millisecond pays
//! what it paid before.
//!
//! The guarantee: a conn the server closed, or that received bytes nobody read, at least
//! `TRUST_NS` before a get began is not handed out by that get. The sweep that vouches for
//! it began less than `TRUST_NS` before the get read the clock, so after the close (or the
//! bytes): level-triggered epoll reports what is still the case when a sweep runs, a
//! closed socket stays closed, and bytes stay until someone reads them. A conn reported
//! while it was idle carries its mark until a peek clears it; one reported while it was
//! checked out is on the suspect list of that sweep, and of every later sweep while the
//! condition lasts (level-triggered), whenever it comes back. Bytes that arrived on a
//! checked-out conn and were read by its user are no longer unread: a later sweep no
//! longer reports them. Bytes or a close newer than the sweep are not seen by the get, as
//! the peek does not see what arrives just after it: the first command on such a conn
//! fails (marking it broken) and a later sweep catches the rest. The promise (a
//! conn closed by the server at least 1 ms before a get is never handed out) therefore
//! holds with `TRUST_NS` = 0.5 ms to spare for the close to reach the socket.
//!
//! A get that finds the sweep due runs it itself, under the pool lock: one sweep at a
//! time, and no get ever sees half a sweep (its cost, a system call under the lock, comes
//! once per `TRUST_NS` at most). A pool whose epoll set could not be made, a conn that
//! could not join it, a sweep that failed or could not read every event (more ready conns
//! than the pool has), all fall back to the peek for the conns concerned.
//!
//! TLS conns stay out of the set, and every get peeks them (`health::check_socket` reads
//! and decrypts what waits): rustls may hold records it already read from the socket,
//! which epoll no longer reports.
//!
//! Forked children: a child's pool state is a new one with its own epoll set (`fork`); the
//! parent's set is never used there, and conns are never removed from it by hand, so the
//! child closing its copies of the parent's sockets changes nothing for the parent.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::conn::Conn;

/// How long a sweep answers for the conns it found clean: 0.5 ms, half the promised 1 ms.
pub(crate) const TRUST_NS: u64 = 500_000;

/// Events read per `epoll_wait` call (on the stack: 64 x 12 bytes).
const BATCH: usize = 64;

/// A pool's epoll set and what its last sweep found, kept under the pool lock (so that
/// closing the pool closes the set, and no dial can add a conn to a closed fd).
#[derive(Default)]
pub(crate) struct SweepState {
    /// None when it could not be made, or the pool is closed: every get then peeks.
    ep: Option<OwnedFd>,
    /// `clock::now_ns()` read just before the last complete sweep; 0 = none yet.
    started_ns: u64,
    /// Ids of the conns that sweep reported while they were not idle, sorted.
    suspects: Vec<u64>,
}

impl SweepState {
    /// With a new epoll set (without one if it cannot be made).
    pub(crate) fn new() -> SweepState {
        // SAFETY: plain syscall; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let ep = (fd >= 0).then(|| {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        SweepState {
            ep,
            ..SweepState::default()
        }
    }

    /// The pool closed: its epoll set goes (the caller drops it outside the lock); later
    /// conns join none.
    pub(crate) fn close(&mut self) -> Option<OwnedFd> {
        self.started_ns = 0;
        self.ep.take()
    }

    /// Adds a new pooled conn to the set, once, before anyone gets it. A conn that cannot
    /// join (no epoll set, `max_user_watches` reached) is peeked on every get.
    pub(crate) fn register(&self, conn: &mut Conn) {
        let Some(ep) = &self.ep else {
            return;
        };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: conn.id(),
        };
        // SAFETY: `ep` and the conn's fd are open; `ev` is a valid event to copy from.
        let rc =
            unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, conn.fd(), &mut ev) };
        conn.set_swept(rc == 0);
    }

    /// As a get takes `conn` from the idle list, or a put hands it to a waiting get (under
    /// the pool lock): stamps it with the start of the last sweep, unless that sweep
    /// reported it (or there is none, or the conn is not in the set), or with the time of
    /// the conn's own clean peek when that is newer than the sweep. No clock, no system
    /// call: whether the stamp is recent enough is judged outside the lock (`vouches`).
    #[inline]
    pub(crate) fn stamp(&self, conn: &mut Conn) {
        let at = if !conn.is_swept() || self.ep.is_none() {
            0
        } else if conn.swept_at() > self.started_ns {
            // A get peeked it clean after the last sweep began (`ConnPool` stamps such a
            // conn with the clock read before its peek): the peek saw whatever that sweep
            // saw, and more recently. A conn the sweep reported while checked out (a reply
            // on its way, most often) then costs one peek per sweep, not one per get.
            conn.swept_at()
        } else if self.suspects.is_empty() || self.suspects.binary_search(&conn.id()).is_err() {
            self.started_ns
        } else {
            0
        };
        conn.set_swept_at(at);
    }

    /// The start of the last sweep if it reported no conn outside the idle list (so it
    /// vouches for every conn not marked suspect); 0 otherwise. Parked conns (`bag`) are
    /// stamped with it without the pool lock.
    pub(crate) fn clean_since(&self) -> u64 {
        if self.ep.is_some() && self.suspects.is_empty() {
            self.started_ns
        } else {
            0
        }
    }

    /// Whether a sweep vouches for `conn` at `now` (precise clock): the get that took it
    /// stamped it, and that sweep began less than `TRUST_NS` ago.
    #[inline]
    pub(crate) fn vouches(conn: &Conn, now: u64) -> bool {
        let at = conn.swept_at();
        at != 0 && now.wrapping_sub(at) < TRUST_NS
    }

    /// For a get whose conn no sweep vouches for (the last one is due, or there is none):
    /// under the pool lock, sweeps if the last sweep is still due (another get may have
    /// swept meanwhile), stamps the conn again and says whether it is vouched for now.
    /// `idle` is the idle list, `fifo` whether gets pop its front, `conns` the pool's conns
    /// (a bound on the events to read).
    pub(crate) fn sweep_for(
        &mut self,
        idle: &mut VecDeque<Conn>,
        conn: &mut Conn,
        now: u64,
        fifo: bool,
        conns: usize,
    ) -> bool {
        let Some(ep) = self.ep.as_ref().map(AsRawFd::as_raw_fd) else {
            conn.set_swept_at(0);
            return false;
        };
        if self.started_ns == 0 || now.wrapping_sub(self.started_ns) >= TRUST_NS {
            sweep(ep, self, idle, now, fifo, conns);
        }
        self.stamp(conn);
        Self::vouches(conn, now)
    }
}

/// One sweep: reads every ready conn of the set. Records `now` as its start when it read
/// them all (a failed or incomplete sweep is not trusted: gets peek until the next one).
fn sweep(
    ep: libc::c_int,
    state: &mut SweepState,
    idle: &mut VecDeque<Conn>,
    now: u64,
    fifo: bool,
    conns: usize,
) {
    state.suspects.clear();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
    // Level-triggered items go back to the end of the ready list once reported, so calls
    // after the first return the rest; more ready items than the pool has conns (only
    // sockets kept open elsewhere, say by a forked child) ends the sweep incomplete.
    for _ in 0..conns / BATCH + 2 {
        let n = loop {
            // SAFETY: `events` holds BATCH entries for the kernel to write.
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), BATCH as i32, 0) };
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break n;
            }
        };
        let Ok(n) = usize::try_from(n) else {
            return;
        };
        if n > 0 {
            apply(&events[..n], state, idle, fifo);
        }
        if n < BATCH {
            state.suspects.sort_unstable();
            state.suspects.dedup();
            state.started_ns = now;
            return;
        }
    }
}

#[cold]
fn apply(
    events: &[libc::epoll_event],
    state: &mut SweepState,
    idle: &mut VecDeque<Conn>,
    fifo: bool,
) {
    let mut ids = [0u64; BATCH];
    for (id, ev) in ids.iter_mut().zip(events) {
        *id = ev.u64;
    }
    let ids = &mut ids[..events.len()];
    ids.sort_unstable();
    let mut idle_hit = [false; BATCH];
    let mut marked = false;
    for conn in idle.iter_mut() {
        if let Ok(i) = ids.binary_search(&conn.id()) {
            idle_hit[i] = true;
            conn.mark_suspect();
            marked = true;
        }
    }
    for (id, hit) in ids.iter().zip(idle_hit) {
        if !hit {
            state.suspects.push(*id);
        }
    }
    if marked {
        to_pop_end(idle, fifo);
    }
}

/// Moves the conns marked suspect to the end of the idle list gets pop from (the back, or
/// the front when `fifo`), so the next gets peek them, find them stale and close them.
fn to_pop_end(idle: &mut VecDeque<Conn>, fifo: bool) {
    if fifo {
        for i in 0..idle.len() {
            if idle[i].needs_peek()
                && let Some(conn) = idle.remove(i)
            {
                idle.push_front(conn);
            }
        }
    } else {
        for i in (0..idle.len()).rev() {
            if idle[i].needs_peek()
                && let Some(conn) = idle.remove(i)
            {
                idle.push_back(conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use socket2::Socket;

    use super::*;

    /// Conns 1..=n on socketpairs, all in `sweeper`'s set; the peers (the "server" ends).
    fn conns(sweeper: &SweepState, n: u64) -> (Vec<Conn>, Vec<UnixStream>) {
        let mut conns = Vec::new();
        let mut peers = Vec::new();
        for id in 1..=n {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let mut c = Conn::new(Socket::from(ours), id, 1, u64::MAX, true, 0);
            sweeper.register(&mut c);
            assert!(c.is_swept());
            conns.push(c);
            peers.push(theirs);
        }
        (conns, peers)
    }

    fn ids(idle: &VecDeque<Conn>) -> Vec<u64> {
        idle.iter().map(Conn::id).collect()
    }

    #[test]
    fn a_sweep_marks_idle_conns_and_moves_them_to_the_pop_end() {
        for fifo in [false, true] {
            let mut state = SweepState::new();
            assert!(state.ep.is_some());
            let (all, mut peers) = conns(&state, 6);
            let mut idle: VecDeque<Conn> = all.into_iter().collect();
            // The get's own conn (id 6) was popped: checked out during the sweep.
            let mut taken = idle.pop_back().unwrap();
            // Closed by the server: idle 2 and 4, and the checked-out 6; bytes nobody
            // asked for on idle 3.
            drop(peers.remove(5));
            drop(peers.remove(3));
            drop(peers.remove(1));
            peers[1].write_all(b"+late\r\n").unwrap();
            let now = crate::pool::clock::now_ns();
            assert!(!state.sweep_for(&mut idle, &mut taken, now, fifo, 6));
            assert_eq!(
                taken.swept_at(),
                0,
                "reported while checked out: not vouched"
            );
            assert_eq!(state.suspects, vec![6]);
            assert_eq!(state.started_ns, now);
            let order = ids(&idle);
            let (marked, clean): (Vec<u64>, Vec<u64>) = if fifo {
                (order[..3].to_vec(), order[3..].to_vec())
            } else {
                (order[2..].to_vec(), order[..2].to_vec())
            };
            let mut marked_sorted = marked.clone();
            marked_sorted.sort_unstable();
            assert_eq!(marked_sorted, vec![2, 3, 4], "fifo {fifo}: {order:?}");
            assert_eq!(clean, vec![1, 5], "fifo {fifo}: healthy order kept");
            for c in &idle {
                assert_eq!(c.needs_peek(), marked.contains(&c.id()), "conn {}", c.id());
            }
            // A healthy conn taken now is vouched for by that sweep, without a new one.
            let mut healthy = if fifo {
                idle.pop_back().unwrap()
            } else {
                idle.pop_front().unwrap()
            };
            state.stamp(&mut healthy);
            assert_eq!(healthy.swept_at(), now);
            assert!(SweepState::vouches(&healthy, now + TRUST_NS - 1));
            assert!(!SweepState::vouches(&healthy, now + TRUST_NS));
            // Closed: no set, nothing vouched for any more.
            assert!(state.close().is_some());
            assert!(!state.sweep_for(&mut idle, &mut healthy, now, fifo, 6));
            assert_eq!(healthy.swept_at(), 0);
        }
    }

    /// A conn the sweep reported while checked out (its reply on the way) is peeked by the
    /// next get; once that peek found it clean (the get stamps it with its clock, later than
    /// the sweep's start), later gets take it on that peek's word until it is `TRUST_NS`
    /// old, instead of peeking it on every get until the next sweep.
    #[test]
    fn a_clean_peek_newer_than_the_sweep_vouches_for_a_reported_conn() {
        let mut state = SweepState::new();
        let (all, mut peers) = conns(&state, 2);
        let mut idle: VecDeque<Conn> = all.into_iter().collect();
        let mut taken = idle.pop_back().unwrap();
        let mut busy = idle.pop_back().unwrap();
        // A reply on its way to the checked-out conn 1 when the sweep runs.
        peers[0].write_all(b"+PONG\r\n").unwrap();
        let now = crate::pool::clock::now_ns();
        assert!(state.sweep_for(&mut idle, &mut taken, now, false, 2));
        assert_eq!(state.suspects, vec![busy.id()]);
        // Its user reads the reply; given back, the next get takes it: not vouched.
        let mut reply = [0u8; 7];
        // SAFETY: reads into a live buffer of its length from the conn's open fd.
        let n = unsafe { libc::read(busy.fd(), reply.as_mut_ptr().cast(), reply.len()) };
        assert_eq!(n, 7);
        state.stamp(&mut busy);
        assert_eq!(busy.swept_at(), 0, "reported by the sweep: peeked");
        // That get's peek finds it clean and stamps it with its own (later) clock.
        assert!(crate::pool::health::check_socket(&mut busy).is_ok());
        let peeked_at = now + 1;
        busy.set_swept_at(peeked_at);
        // The gets after it are vouched for by that peek, not by the sweep.
        state.stamp(&mut busy);
        assert_eq!(busy.swept_at(), peeked_at);
        assert!(SweepState::vouches(&busy, peeked_at + TRUST_NS - 1));
        assert!(!SweepState::vouches(&busy, peeked_at + TRUST_NS));
        // A later sweep is newer than the peek: its word counts again.
        let later = peeked_at + TRUST_NS;
        assert!(state.sweep_for(&mut idle, &mut taken, later, false, 2));
        state.stamp(&mut busy);
        assert_eq!(busy.swept_at(), later);
    }

    #[test]
    fn a_conn_outside_the_set_is_never_vouched_for() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let mut c = Conn::new(Socket::from(ours), 1, 1, u64::MAX, true, 0);
        let mut state = SweepState::new();
        let mut idle = VecDeque::new();
        let now = crate::pool::clock::now_ns();
        assert!(!state.sweep_for(&mut idle, &mut c, now, false, 1));
        assert_eq!(c.swept_at(), 0);
        assert_ne!(state.started_ns, 0, "the sweep ran");
    }
}
