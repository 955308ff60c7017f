//! Retiring: when the target changes (a sentinel failover) every conn of the pool goes,
//! idle ones at once, checked-out and in-flight ones when they come back or land.

use super::*;
use crate::redis::resp::Reply;

impl Retire for Inner {
    fn retire_all(self: Arc<Self>) {
        self.retire_conns();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn probe_role(&self, addr: &str, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let deadline = crate::redis::deadline::bounded_instant_after(timeout);
        let sock = Dialer::from_addr(addr)?.dial_within(Some(deadline), Some(&self.in_flight))?;
        // Outside the pool: no turn, no count, an id no pooled conn will have.
        let mut conn = self.wrap(sock, false, u64::MAX);
        // Not one of the pool's conns: retires do not concern it.
        conn.set_failover_state(u64::MAX, false, None);
        let Ok(registered) = self.in_flight.register(conn.fd()) else {
            return Err(Error::Closed);
        };
        // Over TLS when the pool's conns are (`dialing::start_tls`).
        if let Some(tls) = &self.opts.tls {
            self.start_tls(&mut conn, tls, Some(deadline))?;
        }
        let res = conn
            .set_up(&self.opts.session, true, timeout, Some(deadline))
            .map_err(|e| Error::Dial {
                message: format!("redis: probe {addr}: {e}"),
                errno: None,
            })
            .and_then(|()| {
                let cap = io::Deadline::at(deadline, timeout);
                conn.command_until(&[b"ROLE"], Some(cap))
            });
        drop(registered);
        match res? {
            Reply::Array(v) => Ok(Some(match v.first() {
                Some(Reply::String(r) | Reply::Status(r)) => r.clone(),
                _ => b"?".to_vec(),
            })),
            Reply::Error(_) => Ok(None),
            other => Ok(Some(other.summary().into_bytes())),
        }
    }
}

impl ConnPool {
    /// Retires every conn the pool has now: idle conns are closed at once, conns checked
    /// out are closed when given back (put acts as remove; on a pool with a dial source
    /// they refuse commands from now on, `Error::BadConn`), and a dial in flight is
    /// discarded (and dialed again) when it lands. Conns made afterwards are pooled as
    /// usual. Used when the master changes (sentinel failover); each conn closed this way
    /// counts in `stale_conns` and in `retired_conns`.
    pub fn retire_all(&self) {
        self.inner().retire_conns();
    }

    /// Conns closed by `retire_all` so far (idle ones at once, others when they came back).
    pub fn retired_conns(&self) -> u64 {
        self.inner().retired.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// See `ConnPool::retire_all`. Runs on user threads and on the sentinel watcher thread.
    pub(super) fn retire_conns(self: &Arc<Self>) {
        let idle = {
            let mut st = self.state.lock();
            let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(sig) = &self.retire_signal {
                sig.store(epoch, Ordering::Relaxed);
            }
            // Parked conns are of an older epoch now: closed and counted (`bag`).
            let parked = self.unpark_all(&mut st);
            let mut idle = std::mem::take(&mut st.idle);
            self.count_retired(idle.len());
            // User data is freed on a user thread, never on a library thread.
            for conn in &mut idle {
                if let Some(ud) = conn.take_userdata_box() {
                    st.deferred_userdata.push(ud);
                }
            }
            self.refill(&mut st);
            (idle, parked)
        };
        drop(idle);
    }

    pub(super) fn count_retired(&self, n: usize) {
        let n = n as u64;
        self.retired.fetch_add(n, Ordering::Relaxed);
        self.counters.stale.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether a conn dialed for this pool belongs to the current epoch (call under `state`
    /// for a definitive answer).
    #[inline]
    pub(super) fn is_current(&self, conn: &Conn) -> bool {
        conn.epoch() == self.epoch.load(Ordering::Relaxed)
    }
}
