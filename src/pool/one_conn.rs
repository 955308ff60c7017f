//! One conn used by one caller at a time: the mechanics shared by `SingleConnPool` and
//! `StickyConnPool`.
//!
//! go-redis's sticky pool hands its conn around through a channel of capacity one, and its
//! single pool is not thread-safe at all. Here both keep the conn in a slot under a mutex:
//! a get takes it when it is idle and nobody is queued, otherwise it queues; a put hands it
//! straight to the oldest queued get (FIFO, no thundering herd). Waits obey the same
//! deadline and cancel-token rules as a `ConnPool` get.
//!
//! A sticky pool starts without a conn and borrows one from its parent on the first get
//! (one borrow at a time; the others queue behind it). A single pool starts holding the
//! conn it was given.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};

use super::cancel::CancelToken;
use super::conn::{Conn, SESSION_CHANGED_REASON};
use super::fork;
use super::notify::Notifier;
use super::options::Wait;
use super::pooler::{Pooler, Rejected};
use super::stats::Stats;
use super::waiter::{Grant, Outcome, Waiter, hand_to_oldest, wait_or_withdraw};
use crate::error::{Error, Result};
use crate::redis::deadline::left;

/// Identifies a conn across pools: (owning pool id, conn id).
type ConnKey = (u64, u64);

fn key(conn: &Conn) -> ConnKey {
    (conn.pool_id(), conn.id())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Single,
    Sticky,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Single => "SingleConnPool",
            Kind::Sticky => "StickyConnPool",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No conn yet (sticky before its first get, and after a reset).
    Empty,
    /// A get is borrowing the conn from the parent.
    Borrowing,
    /// The conn exists: idle in `idle` or checked out as `out`.
    Held,
}

struct State {
    phase: Phase,
    idle: Option<Conn>,
    out: Option<ConnKey>,
    /// Gets fail with this: a bad-conn error after a remove, or `Closed` (single).
    failure: Option<Error>,
    /// The reason given to the remove that set `failure`, passed on to the parent.
    failure_reason: Option<String>,
    closed: bool,
    /// The fork generation this state belongs to (see `fork`).
    generation: u64,
    /// Open handles sharing this pool (sticky over sticky).
    handles: usize,
    waiters: VecDeque<Arc<Waiter>>,
}

/// What happens to a conn leaving this pool for good.
enum Disposal {
    Put(Conn),
    Remove(Conn, Option<String>),
}

pub(crate) struct OneConn {
    kind: Kind,
    parent: Arc<dyn Pooler>,
    state: Mutex<State>,
    /// Readable while `try_get` may find the conn (`pool_notify_fd`).
    notify: Notifier,
}

impl OneConn {
    pub(crate) fn new(kind: Kind, parent: Arc<dyn Pooler>, conn: Option<Conn>) -> Self {
        let phase = if conn.is_some() {
            Phase::Held
        } else {
            Phase::Empty
        };
        OneConn {
            kind,
            parent,
            state: Mutex::new(State {
                phase,
                idle: conn,
                out: None,
                failure: None,
                failure_reason: None,
                closed: false,
                generation: fork::generation(),
                handles: 1,
                waiters: VecDeque::new(),
            }),
            notify: Notifier::default(),
        }
    }

    /// The state, locked. In a forked child, the first call forgets the parent's conn and
    /// queued gets: a sticky pool then borrows a fresh conn from its parent (which starts
    /// afresh too); a single pool has nothing to hand out any more.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock();
        let generation = fork::generation();
        if st.generation != generation {
            st.generation = generation;
            self.notify.forget();
            st.waiters.clear();
            st.out = None;
            st.phase = Phase::Empty;
            st.failure_reason = None;
            st.failure = match self.kind {
                Kind::Sticky => None,
                Kind::Single if st.closed => None,
                Kind::Single => Some(Error::BadConn(
                    "the SingleConnPool's conn was opened before fork(): the parent process owns it"
                        .into(),
                )),
            };
            // Closes this process's copy of the socket only.
            st.idle = None;
        }
        st
    }

    /// A conn checked out before fork() and given back in the child: closed, nothing else.
    fn drop_inherited(&self, conn: Conn) {
        drop(self.lock());
        drop(conn);
    }

    /// The readiness fd of `pool_notify_fd`, made on first use.
    pub(crate) fn notify_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        drop(self.lock());
        self.notify.fd()
    }

    pub(crate) fn parent(&self) -> &Arc<dyn Pooler> {
        &self.parent
    }

    /// Another handle now shares this pool; each handle closes once.
    pub(crate) fn add_handle(&self) -> Result<()> {
        let mut st = self.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        st.handles += 1;
        Ok(())
    }

    pub(crate) fn get_with(&self, wait: Wait, cancel: Option<&CancelToken>) -> Result<Conn> {
        let start = Instant::now();
        let deadline = wait.deadline_from(start);
        loop {
            if cancel.is_some_and(|c| c.is_fired()) {
                return Err(Error::Canceled);
            }
            let w = {
                let mut st = self.lock();
                self.check_usable(&st)?;
                if st.waiters.is_empty() {
                    match st.phase {
                        Phase::Empty => {
                            st.phase = Phase::Borrowing;
                            drop(st);
                            let left = remaining(wait, deadline);
                            return self.finish_borrow(self.parent.get_with(left, cancel));
                        }
                        Phase::Held if st.idle.is_some() => {
                            let conn = st.idle.take().expect("checked");
                            st.out = Some(key(&conn));
                            return Ok(conn);
                        }
                        _ => {}
                    }
                }
                if wait == Wait::NoWait {
                    return Err(self.timeout_error(&st, start));
                }
                let w = Waiter::acquire();
                st.waiters.push_back(w.clone());
                w
            };
            let grant = self.wait_for(&w, deadline, cancel, start);
            Waiter::recycle(w);
            match grant? {
                Grant::Conn(conn, _) => return Ok(conn),
                // The borrow ahead failed: try again (borrow or queue anew).
                Grant::Turn => continue,
                Grant::Failed(e) => return Err(e),
                // Not given here (no overtake window): look again, as for a turn.
                Grant::Retry => continue,
            }
        }
    }

    pub(crate) fn try_get(&self) -> Result<Conn> {
        let mut st = self.lock();
        self.check_usable(&st)?;
        if !st.waiters.is_empty() {
            self.notify.drain();
            return Err(Error::WouldBlock);
        }
        match st.phase {
            Phase::Empty => {
                st.phase = Phase::Borrowing;
                drop(st);
                self.finish_borrow(self.parent.try_get())
            }
            Phase::Held if st.idle.is_some() => {
                let conn = st.idle.take().expect("checked");
                st.out = Some(key(&conn));
                Ok(conn)
            }
            _ => {
                self.notify.drain();
                Err(Error::WouldBlock)
            }
        }
    }

    fn check_usable(&self, st: &State) -> Result<()> {
        if st.closed {
            return Err(Error::Closed);
        }
        if let Some(e) = &st.failure {
            return Err(e.clone());
        }
        Ok(())
    }

    /// Ends a borrow from the parent started by a get.
    fn finish_borrow(&self, res: Result<Conn>) -> Result<Conn> {
        let mut st = self.lock();
        match res {
            Ok(conn) if st.closed => {
                st.phase = Phase::Empty;
                drop(st);
                let _ = self.parent.put(conn);
                Err(Error::Closed)
            }
            Ok(conn) => {
                st.phase = Phase::Held;
                st.out = Some(key(&conn));
                Ok(conn)
            }
            Err(e) => {
                st.phase = Phase::Empty;
                // The next queued get borrows in its turn.
                hand_to_oldest(&mut st.waiters, Grant::Turn);
                drop(st);
                self.notify.signal();
                Err(e)
            }
        }
    }

    fn wait_for(
        &self,
        w: &Arc<Waiter>,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
        start: Instant,
    ) -> Result<Grant> {
        let (mut st, canceled) = match wait_or_withdraw(w, deadline, cancel, || self.lock()) {
            Outcome::Granted(g) => return Ok(g),
            Outcome::GaveUp { guard, canceled } => (guard, canceled),
        };
        if let Some(i) = st.waiters.iter().position(|x| Arc::ptr_eq(x, w)) {
            st.waiters.remove(i);
        }
        self.notify.signal();
        if canceled {
            Err(Error::Canceled)
        } else {
            Err(self.timeout_error(&st, start))
        }
    }

    fn timeout_error(&self, st: &State, start: Instant) -> Error {
        let holder = match st.phase {
            Phase::Borrowing => "being borrowed from the parent pool",
            _ => "in use by another caller",
        };
        Error::Timeout(format!(
            "redis: connection pool timeout after {}ms ({} conn {holder}, {} waiting)",
            start.elapsed().as_millis(),
            self.kind.name(),
            st.waiters.len(),
        ))
    }

    /// Takes `conn` back if it is the one checked out.
    fn check_out(&self, st: &mut State, conn: Conn) -> std::result::Result<Conn, Rejected> {
        if st.out == Some(key(&conn)) {
            st.out = None;
            return Ok(conn);
        }
        let why = if st.idle.as_ref().is_some_and(|c| key(c) == key(&conn)) {
            "it is already back (double put?)"
        } else {
            "it is not the conn checked out from it"
        };
        Err(Rejected {
            error: Error::invalid(format!(
                "redis: conn {} cannot go back to this {}: {why}",
                conn.id(),
                self.kind.name()
            )),
            conn,
        })
    }

    pub(crate) fn put(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        if conn.is_inherited() {
            self.drop_inherited(conn);
            return Ok(());
        }
        let mut st = self.lock();
        if !conn.is_pooled() && st.out != Some(key(&conn)) {
            // A parent's NewConn conn: the parent closes it.
            drop(st);
            return self.parent.put(conn);
        }
        if st.out == Some(key(&conn)) && conn.must_close_on_put() {
            // Out of step with the server: bad, as go-redis's close-on-put; or its session
            // is not the one the pool set up.
            let why = conn
                .broken_reason()
                .unwrap_or(SESSION_CHANGED_REASON)
                .to_owned();
            drop(st);
            return self.remove(conn, Some(&why));
        }
        let conn = self.check_out(&mut st, conn)?;
        if st.closed {
            let d = self.disposal(&mut st, conn);
            drop(st);
            self.dispose(d);
            return Ok(());
        }
        if st.failure.is_some() {
            // Only a sticky pool can get here (a single pool gives its conn up on remove).
            st.idle = Some(conn);
            return Ok(());
        }
        let k = key(&conn);
        let conn = match hand_to_oldest(&mut st.waiters, Grant::Conn(conn, false)) {
            None => {
                // The oldest waiter now holds it.
                st.out = Some(k);
                return Ok(());
            }
            Some(Grant::Conn(conn, _)) => conn,
            Some(_) => unreachable!("wake_oldest gives back what it was given"),
        };
        st.idle = Some(conn);
        drop(st);
        self.notify.signal();
        Ok(())
    }

    pub(crate) fn remove(
        &self,
        conn: Conn,
        reason: Option<&str>,
    ) -> std::result::Result<(), Rejected> {
        if conn.is_inherited() {
            self.drop_inherited(conn);
            return Ok(());
        }
        let mut st = self.lock();
        if !conn.is_pooled() && st.out != Some(key(&conn)) {
            drop(st);
            return self.parent.remove(conn, reason);
        }
        let conn = self.check_out(&mut st, conn)?;
        let reason = reason.map(str::to_owned);
        if st.closed {
            drop(st);
            self.dispose(Disposal::Remove(conn, reason));
            return Ok(());
        }
        let failure = match (self.kind, &reason) {
            (Kind::Single, None) => Error::Closed,
            (_, Some(r)) => Error::BadConn(r.clone()),
            (Kind::Sticky, None) => Error::BadConn("conn removed".into()),
        };
        for w in st.waiters.drain(..) {
            let _ = w.deliver(Grant::Failed(failure.clone()));
        }
        st.failure = Some(failure);
        st.failure_reason.clone_from(&reason);
        // A loop waiting on the fd learns of the failure from its next try_get.
        self.notify.signal();
        match self.kind {
            Kind::Sticky => {
                // Kept until reset or close hands it to the parent's remove.
                st.idle = Some(conn);
            }
            Kind::Single => {
                st.phase = Phase::Empty;
                drop(st);
                self.dispose(Disposal::Remove(conn, reason));
            }
        }
        Ok(())
    }

    /// go-redis `StickyConnPool.Reset`: after a remove, hands the bad conn to the parent's
    /// remove and starts afresh (the next get borrows a new conn).
    pub(crate) fn reset(&self) -> Result<()> {
        let mut st = self.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        if st.failure.is_none() {
            return Ok(());
        }
        let Some(conn) = st.idle.take() else {
            return Err(Error::invalid("redis: StickyConnPool does not have a Conn"));
        };
        st.failure = None;
        let reason = st.failure_reason.take();
        st.phase = Phase::Empty;
        drop(st);
        self.notify.signal();
        self.dispose(Disposal::Remove(conn, reason));
        Ok(())
    }

    /// CloseConn: this pool's own conn is removed; any other goes to the parent's CloseConn.
    pub(crate) fn close_conn(&self, conn: Conn) -> std::result::Result<(), Rejected> {
        if conn.is_inherited() {
            self.drop_inherited(conn);
            return Ok(());
        }
        let ours = self.lock().out == Some(key(&conn));
        if ours {
            self.remove(conn, Some("conn closed"))
        } else {
            self.parent.close_conn(conn)
        }
    }

    /// Closes one handle; the last one closes the pool: waiters fail with `Closed` and the
    /// conn goes back to the parent now (or when it is put, if checked out).
    pub(crate) fn close(&self) -> Result<()> {
        let mut st = self.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        st.handles -= 1;
        if st.handles > 0 {
            return Ok(());
        }
        st.closed = true;
        for w in st.waiters.drain(..) {
            let _ = w.deliver(Grant::Failed(Error::Closed));
        }
        let idle = st.idle.take();
        let d = idle.map(|c| self.disposal(&mut st, c));
        drop(st);
        self.notify.signal();
        if let Some(d) = d {
            self.dispose(d);
        }
        Ok(())
    }

    /// How a conn leaves a closed pool: a single pool never closes its conn (it goes back to
    /// the parent, or was removed already); a sticky pool removes a bad one.
    fn disposal(&self, st: &mut State, conn: Conn) -> Disposal {
        match (self.kind, &st.failure) {
            (Kind::Sticky, Some(_)) => Disposal::Remove(conn, st.failure_reason.clone()),
            _ => Disposal::Put(conn),
        }
    }

    fn dispose(&self, d: Disposal) {
        // The parent accepts its own conns; a refusal would mean a library bug, and the
        // conn is then simply closed.
        let _ = match d {
            Disposal::Put(c) => self.parent.put(c),
            Disposal::Remove(c, reason) => self.parent.remove(c, reason.as_deref()),
        };
    }

    /// go-redis: a single pool's Len is 0; a sticky pool's is 1 once it holds a conn.
    fn len_of(&self, st: &State) -> usize {
        usize::from(self.kind == Kind::Sticky && !st.closed && st.phase == Phase::Held)
    }

    fn idle_len_of(&self, st: &State) -> usize {
        usize::from(self.kind == Kind::Sticky && st.idle.is_some())
    }

    pub(crate) fn len(&self) -> usize {
        self.len_of(&self.lock())
    }

    pub(crate) fn idle_len(&self) -> usize {
        self.idle_len_of(&self.lock())
    }

    /// go-redis reports empty stats for these pools; the conn counts mirror len/idle_len.
    pub(crate) fn stats(&self) -> Stats {
        let st = self.lock();
        Stats {
            total_conns: self.len_of(&st) as u32,
            idle_conns: self.idle_len_of(&st) as u32,
            waiting: st.waiters.len().min(u32::MAX as usize) as u32,
            in_use_conns: u32::from(st.out.is_some()),
            ..Stats::default()
        }
    }
}

/// What is left of `wait` at `now`, for a borrow from the parent.
fn remaining(wait: Wait, deadline: Option<Instant>) -> Wait {
    match (wait, deadline) {
        (Wait::For(_), Some(d)) => left(d).map_or(Wait::NoWait, Wait::For),
        (w, _) => w,
    }
}
