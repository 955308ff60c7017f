//! Dialing: the dial jobs a get or the min-idle refill hands to the dial threads, one
//! dial attempt (connect, session set-up, the dial source's check), and retries.

use super::*;

pub(super) struct DialJob {
    /// The get that started the dial, if it still waits for it.
    pub(super) initiator: Option<Arc<Waiter>>,
    /// Started to keep `min_idle_conns` filled.
    pub(super) refill: bool,
}

pub(super) fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, nanos)
}

impl Inner {
    /// The miss path: hand the turn to a dial job and wait for its conn.
    pub(super) fn dial_for_get(
        self: &Arc<Self>,
        start: Instant,
        deadline: Option<Instant>,
        wait: Wait,
        cancel: Option<&CancelToken>,
    ) -> Result<Conn> {
        let w = Arc::new(Waiter::new());
        {
            let mut st = self.state.lock();
            if st.closed {
                st.turns_used -= 1;
                return Err(Error::Closed);
            }
            if let Err(e) = self.check_active_limit(&st) {
                self.release_turn(&mut st);
                return Err(e);
            }
            if st.dial_failures >= self.opts.pool_size {
                if let Some(e) = st.last_dial_error.clone() {
                    self.release_turn(&mut st);
                    return Err(e);
                }
            }
            st.dials_pending += 1;
            st.dial_waiters.push(w.clone());
            st.dial_queue.push_back(DialJob {
                initiator: Some(w.clone()),
                refill: false,
            });
            self.wake_dial_worker(&mut st);
        }
        let dial_deadline = match wait {
            Wait::For(_) => deadline,
            Wait::Forever => None,
            // "Do not wait" is about turns; the dial itself is still awaited, bounded by
            // its own worst case.
            Wait::NoWait => self.opts.dial_timeout.and_then(|t| {
                let attempts = self.opts.dialer_retries;
                let worst = t.saturating_mul(attempts)
                    + self.opts.dialer_retry_backoff.saturating_mul(attempts - 1);
                start.checked_add(worst)
            }),
        };
        match self.wait_for(
            &w,
            dial_deadline,
            cancel,
            start,
            " waiting for a new connection",
        )? {
            Grant::Conn(conn, _) => Ok(conn),
            Grant::Failed(e) => Err(e),
            Grant::Turn => {
                // Dial waiters are only ever given conns or errors.
                let mut st = self.state.lock();
                self.release_turn(&mut st);
                Err(Error::Internal("dial waiter was given a bare turn".into()))
            }
            Grant::Retry => Err(Error::Internal("dial waiter was given a retry".into())),
        }
    }

    /// A `try_get` miss: when the pool has room and nothing is queued, one dial on a dial
    /// thread, whose conn goes to the idle list (or a waiter that came meanwhile).
    pub(super) fn dial_in_background(self: &Arc<Self>, st: &mut State) {
        let size = self.opts.pool_size;
        if !st.waiters.is_empty()
            || !st.idle.is_empty()
            || st.turns_used >= size
            || st.dial_failures >= size
            || self.check_active_limit(st).is_err()
        {
            return;
        }
        Counters::inc(&self.counters.misses);
        st.turns_used += 1;
        st.dials_pending += 1;
        st.dial_queue.push_back(DialJob {
            initiator: None,
            refill: false,
        });
        self.wake_dial_worker(st);
    }

    /// Keeps `min_idle_conns` filled with spare turns, never beyond `pool_size` conns.
    #[inline]
    pub(super) fn refill(self: &Arc<Self>, st: &mut State) {
        if self.opts.min_idle_conns != 0 {
            self.refill_slow(st);
        }
    }

    pub(super) fn refill_slow(self: &Arc<Self>, st: &mut State) {
        let min = self.opts.min_idle_conns;
        if st.closed || st.dial_failures >= self.opts.pool_size {
            return;
        }
        if !st.waiters.is_empty() {
            return;
        }
        // Counted, not looped: min_idle_conns may be in the millions.
        let size = self.opts.pool_size;
        let n = min
            .saturating_sub(st.idle.len() + st.refill_dials)
            .min(size.saturating_sub(st.total() + st.dials_pending))
            .min(size.saturating_sub(st.turns_used));
        if n == 0 {
            return;
        }
        st.turns_used += n;
        st.dials_pending += n;
        st.refill_dials += n;
        st.refills_queued += n;
        self.wake_dial_worker(st);
    }

    /// Jobs were queued: a new worker is started while fewer than `max_concurrent_dials`
    /// run (else a running one takes them next). One at a time: a worker that finds more
    /// jobs queued behind its own starts the next (`dial_worker`), so a large refill never
    /// starts a crowd of threads under the pool lock or in `ConnPool::new`.
    pub(super) fn wake_dial_worker(self: &Arc<Self>, st: &mut State) {
        if st.dial_workers >= self.opts.max_concurrent_dials {
            return;
        }
        st.dial_workers += 1;
        if let Err(e) = self.start_dial_worker() {
            st.dial_workers -= 1;
            if st.dial_workers == 0 {
                // No thread will ever run the queued jobs: fail them now.
                self.fail_queued_dials(st, &e);
            }
        }
    }

    pub(super) fn start_dial_worker(self: &Arc<Self>) -> std::result::Result<(), Error> {
        let inner = Arc::clone(self);
        thread::Builder::new()
            .name("redispool-dial".into())
            .spawn(move || inner.dial_worker())
            .map(|_| ())
            .map_err(|e| Error::Internal(format!("cannot start a dial thread: {e}")))
    }

    pub(super) fn fail_queued_dials(&self, st: &mut State, err: &Error) {
        while let Some(job) = st.dial_queue.pop_front() {
            let _ = self.complete_dial(st, job, Err(err.clone()));
        }
        // Refills have nobody waiting: their turns go to waiters, or back.
        let n = std::mem::take(&mut st.refills_queued);
        st.dials_pending -= n;
        st.refill_dials -= n;
        let mut left = n;
        while left > 0 && !st.closed && !st.waiters.is_empty() {
            self.release_turn(st);
            left -= 1;
        }
        st.turns_used -= left;
    }

    /// The next job: dials gets wait for first, then refills.
    pub(super) fn next_dial_job(&self, st: &mut State) -> Option<DialJob> {
        if let Some(job) = st.dial_queue.pop_front() {
            return Some(job);
        }
        if st.refills_queued == 0 {
            return None;
        }
        st.refills_queued -= 1;
        Some(DialJob {
            initiator: None,
            refill: true,
        })
    }

    /// A dial worker: runs queued dial jobs one after another and ends when none is left.
    /// It does not linger for more: a thread alive at fork() leaves its memory unreachable
    /// in the child (valgrind reports it lost there), and one start per burst of misses
    /// costs little next to the dials.
    pub(super) fn dial_worker(self: Arc<Self>) {
        loop {
            let (job, start_another) = {
                let mut st = self.state.lock();
                let Some(job) = self.next_dial_job(&mut st) else {
                    st.dial_workers -= 1;
                    return;
                };
                // More jobs behind this one: another worker takes them meanwhile.
                let more = !st.dial_queue.is_empty() || st.refills_queued > 0;
                let start_another =
                    more && !st.closed && st.dial_workers < self.opts.max_concurrent_dials;
                if start_another {
                    st.dial_workers += 1;
                }
                (job, start_another)
            };
            // Started outside the lock: thread creation takes tens of microseconds.
            if start_another && self.start_dial_worker().is_err() {
                self.state.lock().dial_workers -= 1;
            }
            let res = self.dial_conn(true);
            let surplus = {
                let mut st = self.state.lock();
                self.note_dial_result(&mut st, &res);
                self.complete_dial(&mut st, job, res)
            };
            self.notify.signal();
            drop(surplus);
        }
    }

    /// Updates the fast-fail bookkeeping after a dial.
    pub(super) fn note_dial_result(self: &Arc<Self>, st: &mut State, res: &Result<Conn>) {
        match res {
            Ok(_) => {
                st.dial_failures = 0;
                Counters::inc(&self.counters.dials);
            }
            Err(Error::Closed) => {}
            Err(e) => {
                Counters::inc(&self.counters.dial_errors);
                st.dial_failures += 1;
                st.last_dial_error = Some(e.clone());
                if st.dial_failures >= self.opts.pool_size && !st.probe_running && !st.closed {
                    self.start_probe(st);
                }
            }
        }
    }

    /// Delivers a dial's outcome: to the get that started it, else the oldest waiter, else
    /// the idle list. Returns a conn to close outside the lock.
    pub(super) fn complete_dial(
        &self,
        st: &mut State,
        job: DialJob,
        res: Result<Conn>,
    ) -> Option<Conn> {
        st.dials_pending -= 1;
        if job.refill {
            st.refill_dials -= 1;
        }
        if let Some(w) = &job.initiator {
            if let Some(i) = st.dial_waiters.iter().position(|x| Arc::ptr_eq(x, w)) {
                st.dial_waiters.swap_remove(i);
            }
        }
        let conn = match res {
            Ok(conn) => conn,
            Err(e) => {
                if let Some(w) = job.initiator {
                    let _ = w.deliver(Grant::Failed(e));
                }
                if st.closed {
                    st.turns_used -= 1;
                } else {
                    self.release_turn(st);
                }
                return None;
            }
        };
        if st.closed {
            st.turns_used -= 1;
            return Some(conn);
        }
        if !self.is_current(&conn) {
            // Retired while it was being dialed (`dial_conn` dials again when it sees this
            // first; this is the race after that check): the getter sees a dial error.
            self.count_retired(1);
            if let Some(w) = job.initiator {
                let _ = w.deliver(Grant::Failed(self.retired_dial_error()));
            }
            self.release_turn(st);
            return Some(conn);
        }
        st.checked_out += 1;
        let mut grant = Grant::Conn(conn, true);
        if let Some(w) = job.initiator {
            match w.deliver(grant) {
                Ok(()) => return None,
                Err(back) => grant = back,
            }
        }
        let Some(Grant::Conn(conn, _)) = hand_to_oldest(&mut st.waiters, grant) else {
            return None;
        };
        st.checked_out -= 1;
        st.turns_used -= 1;
        st.idle.push_back(conn);
        None
    }

    /// One dial with retries and backoff; the backoff ends early when the pool closes.
    /// Dials with `dialer_retries` attempts, `dialer_retry_backoff` apart. A refused
    /// session set-up ends the dial at once: the same settings would be refused again.
    pub(super) fn dial_conn(&self, pooled: bool) -> Result<Conn> {
        let attempts = self.opts.dialer_retries;
        let mut last = Error::Internal("no dial attempt made".into());
        for attempt in 0..attempts {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            match self.dial_once(pooled) {
                Ok(conn) if self.is_current(&conn) => return Ok(conn),
                // Retired while being dialed (the master changed): dial again at once.
                Ok(conn) => {
                    self.count_retired(1);
                    drop(conn);
                    last = self.retired_dial_error();
                    continue;
                }
                Err(e @ (Error::Handshake(_) | Error::Tls(_))) => return Err(e),
                Err(e) => last = e,
            }
            if attempt + 1 < attempts && !self.opts.dialer_retry_backoff.is_zero() {
                self.sleep_unless_closed(self.opts.dialer_retry_backoff);
            }
        }
        if let Error::Dial { message, errno } = last {
            let message = if attempts > 1 {
                format!("{message} (after {attempts} attempts)")
            } else {
                message
            };
            return Err(Error::Dial { message, errno });
        }
        Err(last)
    }

    pub(super) fn retired_dial_error(&self) -> Error {
        Error::Dial {
            message: format!(
                "redis: dial {}: the master changed while dialing (failover)",
                self.opts.dialer.target()
            ),
            errno: None,
        }
    }

    /// One attempt: connect, then the Redis session set-up (and, for a dial source, its
    /// check of the new conn: the sentinel's ROLE check). Every conn the pool ever hands out (gets, refills, the fast-fail probe,
    /// new_conn) comes from here. The conn carries the epoch read before the dialer chose
    /// its address, so a `retire_all` meanwhile makes it stale.
    pub(super) fn dial_once(&self, pooled: bool) -> Result<Conn> {
        let epoch = self.epoch.load(Ordering::Acquire);
        // One deadline for the whole attempt: resolution, connect, set-up, ROLE check.
        let deadline = instant_after(self.opts.dial_timeout);
        let sock = match catch_unwind(AssertUnwindSafe(|| {
            self.opts
                .dialer
                .dial_within(deadline, Some(&self.in_flight))
        })) {
            Ok(res) => res?,
            Err(_) => return Err(Error::Internal("the dialer panicked".into())),
        };
        let mut conn = self.wrap(sock, pooled, epoch);
        // Registered while it is set up, so that closing the pool ends the set-up at once.
        let Ok(registered) = self.in_flight.register(conn.fd()) else {
            return Err(Error::Closed);
        };
        if let Some(tls) = &self.opts.tls
            && let Err(why) = self.start_tls(&mut conn, tls, deadline)
        {
            drop(registered);
            if self.in_flight.is_closed() {
                return Err(Error::Closed);
            }
            return Err(why);
        }
        // The default dialer reaches a Redis server: check it accepted the conn. A custom
        // dialer may hand over anything, so an empty session sends nothing there.
        let ping = !matches!(self.opts.dialer, Dialer::Custom(_));
        // Without a read (or write) timeout the set-up and the ROLE check still end: by the
        // dial timeout, as the PING check of a get does (5 s without one either).
        let unbounded = self
            .opts
            .dial_timeout
            .unwrap_or(PING_CAP_WITHOUT_DIAL_TIMEOUT);
        let res = conn.set_up(&self.opts.session, ping, unbounded, deadline);
        let res = match (res, self.opts.dialer.source()) {
            (Ok(()), Some(s)) => {
                let own = match self.opts.read_timeout {
                    Some(_) => None,
                    None => io::Deadline::after(Some(unbounded)),
                };
                let dial = deadline.map(|d| io::Deadline::at(d, unbounded));
                Ok(s.check_new_conn(&mut conn, io::Deadline::earliest(own, dial)))
            }
            (res, _) => res.map(Ok),
        };
        // Out of the registry before the socket can be closed.
        drop(registered);
        if self.in_flight.is_closed() {
            return Err(Error::Closed);
        }
        match res {
            Ok(checked) => checked.map(|()| conn),
            // Full now, maybe not in a moment: a dial failure (retried, counted), not a
            // refusal of the settings.
            Err(HandshakeError::Refused { text, .. })
                if text.starts_with("ERR max number of clients") =>
            {
                Err(Error::Dial {
                    message: format!("redis: dial {}: {text}", self.opts.dialer.target()),
                    errno: None,
                })
            }
            // Out of step (a banner, an extra reply): never handed out, where every reply
            // would answer the command before; not retried, as a refusal is not.
            Err(e @ (HandshakeError::Refused { .. } | HandshakeError::OutOfStep(_))) => {
                Err(Error::Handshake(format!(
                    "{e} (on a new conn to {})",
                    self.opts.dialer.target()
                )))
            }
            // The TLS session failed after the handshake (TLS 1.3 servers refuse a client
            // certificate, or the lack of one, with their first record): not retried.
            Err(
                e @ HandshakeError::Io {
                    err: io::IoError::Tls(_),
                    ..
                },
            ) => Err(Error::Tls(format!(
                "redis: dial {}: {e} (the server refused the TLS session: a client \
                 certificate required or refused? tls_cert_file, tls_key_file)",
                self.opts.dialer.target()
            ))),
            Err(e @ HandshakeError::Io { .. }) => {
                let hint = if self.opts.tls.is_none() && looks_like_tls_port(&e) {
                    " (a TLS port? use rediss:// or set tls)"
                } else {
                    ""
                };
                Err(Error::Dial {
                    message: format!("redis: dial {}: {e}{hint}", self.opts.dialer.target()),
                    errno: None,
                })
            }
        }
    }

    /// The TLS handshake of a new conn, by the dial's deadline. The name verified is
    /// `tls_server_name`, else the host dialed: the address's host, or for a dial source
    /// (the sentinels' master) the IP the socket reached.
    pub(super) fn start_tls(
        &self,
        conn: &mut Conn,
        tls: &crate::redis::tls::TlsConfig,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let host = match &self.opts.dialer {
            Dialer::Tcp(addr) => crate::redis::addr::split_host_port(addr)
                .ok()
                .map(|(h, _)| h.to_string()),
            Dialer::Source(_) => conn
                .socket()
                .peer_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.ip().to_string()),
            Dialer::Unix(_) | Dialer::Custom(_) => None,
        };
        conn.start_tls(tls, host.as_deref(), deadline).map_err(|f| {
            let message = format!("redis: dial {}: {}", self.opts.dialer.target(), f.why);
            if f.transient {
                Error::Dial {
                    message,
                    errno: None,
                }
            } else {
                Error::Tls(message)
            }
        })
    }

    pub(super) fn wrap(&self, sock: Socket, pooled: bool, epoch: u64) -> Conn {
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let expires_at = self.opts.conn_max_lifetime.map_or(u64::MAX, |life| {
            let jitter = self.opts.conn_max_lifetime_jitter;
            let life = if jitter.is_zero() {
                life
            } else {
                // Uniform in [life - jitter, life + jitter), as go-redis PR #3666.
                let span = nanos(jitter).saturating_mul(2).max(1);
                let r = self.next_random() % span;
                (life + Duration::from_nanos(r)).saturating_sub(jitter)
            };
            clock::now_ns().saturating_add(clock::ns(life))
        });
        let mut conn = Conn::new(
            sock,
            id,
            self.id,
            expires_at,
            pooled,
            self.generation as u32,
        );
        conn.set_timeouts(self.opts.read_timeout, self.opts.write_timeout);
        conn.set_reply_limits(self.opts.reply_limits);
        let close_on_readonly =
            self.opts.close_on_readonly || matches!(self.opts.dialer, Dialer::Source(_));
        conn.set_failover_state(epoch, close_on_readonly, self.retire_signal.clone());
        // TLS conns stay out of the sweep (see `sweep`): their gets peek, TLS-aware.
        if pooled && self.opts.tls.is_none() {
            self.state.lock().sweep.register(&mut conn);
        }
        conn
    }

    pub(super) fn next_random(&self) -> u64 {
        // splitmix64 over an atomic counter: enough to spread expiries.
        let mut z = self
            .jitter_seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Sleeps `d`, or less when the pool closes (dial backoffs, the probe, the reaper).
    /// Waits on a std condvar rather than a parking_lot one (see `sleep_lock`).
    pub(super) fn sleep_unless_closed(&self, d: Duration) {
        let Some(until) = Instant::now().checked_add(d) else {
            return;
        };
        let mut guard = self
            .sleep_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !self.closed.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            guard = self
                .closed_cv
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Whether a plain set-up failed the way a TLS port answers plain text: it closes or
/// resets the connection, or sends a TLS alert record (content type 0x15).
fn looks_like_tls_port(e: &HandshakeError) -> bool {
    match e {
        HandshakeError::Io { err, .. } => match err {
            io::IoError::Eof => true,
            io::IoError::Os(os) => os.raw_os_error() == Some(libc::ECONNRESET),
            io::IoError::Protocol(crate::redis::resp::ProtocolError::UnknownType {
                byte: 0x15 | 0x16,
                ..
            }) => true,
            _ => false,
        },
        _ => false,
    }
}
