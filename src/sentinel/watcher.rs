//! The watcher threads of a sentinel pool (all named "redispool-sentinel"):
//!
//! - one listener per configured sentinel (`listen`): subscribes to the failover events
//!   (`EVENT_CHANNELS`) on its sentinel, reconnecting after a bounded backoff. Whichever
//!   sentinel leads a failover publishes its first signs (`+selected-slave`,
//!   `+failover-state-send-slaveof-noone`), so every one is listened to: the first sign
//!   pauses the pool (`SentinelState::begin_failover`).
//! - the resolver (`resolve`): while the pool is paused, probes the node being promoted
//!   (named by the events, or by the sentinels when asked) with `ROLE` every
//!   `RESOLVE_TICK`, and ends the pause as soon as one answers as master. Otherwise it asks
//!   the sentinels for the master every poll interval (and at once when a subscription
//!   came back up), so a failover whose events were missed is still noticed.
//!
//! They stop within a tick once the pool is closed or gone. They never print, and fork()
//! does not copy them: the child's pool starts its own on first use (`ConnPool::after_fork`).

use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::{EVENT_CHANNELS, SentinelConn, SentinelState};
use crate::pool::Retire;
use crate::redis::deadline::{bounded_instant_after, instant_after};

/// How long one blocking read of a subscription lasts: the bound on noticing a closed pool.
const TICK: Duration = Duration::from_millis(100);
/// How often a paused pool probes the node being promoted.
const RESOLVE_TICK: Duration = Duration::from_millis(10);
/// How often a paused pool asks the sentinels which node they promote.
const ASK_EVERY: Duration = Duration::from_millis(100);
/// Bounds a poll of the sentinels between failovers.
const POLL_BUDGET: Duration = Duration::from_secs(1);
/// Bounds one ROLE probe (connect, set-up, ROLE).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

fn stopped(pool: &Weak<dyn Retire>) -> bool {
    pool.upgrade().is_none_or(|p| p.is_closed())
}

/// Sleeps `d` in ticks, returning early (true) once the pool is closed or gone.
fn sleep_unless_stopped(pool: &Weak<dyn Retire>, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if stopped(pool) {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        thread::sleep(left.min(TICK));
    }
}

/// The listener of sentinel `idx`.
pub(super) fn listen(state: Arc<SentinelState>, pool: Weak<dyn Retire>, idx: usize) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if stopped(&pool) {
            return;
        }
        let subscribed = {
            let addr = &state.cfg.addrs[idx];
            let until = bounded_instant_after(state.cfg.timeout);
            SentinelConn::connect(addr, &state.cfg, until)
                .and_then(|mut c| c.subscribe(EVENT_CHANNELS, until).map(|()| c))
        };
        if let Ok(mut sub) = subscribed {
            backoff = BACKOFF_MIN;
            // A switch may have happened while no subscription was up.
            state.request_poll();
            loop {
                if stopped(&pool) {
                    return;
                }
                match sub.next_message(TICK) {
                    Ok(Some((channel, payload))) => state.on_event(idx, &channel, &payload),
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
        if sleep_unless_stopped(&pool, backoff) {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The resolver: ends failovers, and polls the sentinels between them.
pub(super) fn resolve(state: Arc<SentinelState>, pool: Weak<dyn Retire>) {
    let cfg = Arc::clone(&state.cfg);
    let mut next_poll = instant_after(cfg.poll_interval);
    let mut next_ask = Instant::now();
    loop {
        if stopped(&pool) {
            return;
        }
        let Some(f) = state.failover() else {
            let due = next_poll.is_some_and(|t| Instant::now() >= t);
            if state.take_poll_request() || due {
                // Bounded short of the sentinel timeout: a pause begun meanwhile waits for
                // this thread.
                if let Ok(addr) = state.query_master(cfg.timeout.min(POLL_BUDGET)) {
                    state.note_polled(&addr);
                }
                next_poll = instant_after(cfg.poll_interval);
            }
            if state.failover().is_none() {
                state.wait_changed(TICK);
            }
            continue;
        };
        // (address, named by the sentinels as the master)
        let mut candidates: Vec<(String, bool)> =
            f.candidate.iter().map(|c| (c.clone(), false)).collect();
        if Instant::now() >= next_ask {
            next_ask = Instant::now() + ASK_EVERY;
            if let Ok(addr) = state.query_master(PROBE_TIMEOUT) {
                match candidates.iter_mut().find(|(c, _)| *c == addr) {
                    Some(c) => c.1 = true,
                    None => candidates.push((addr, true)),
                }
            }
        }
        // The old master itself, when it may be kept (it was only unreachable, the
        // failover was aborted, or no new master came): the sentinels may be out of reach.
        if let Some(old) = &f.old {
            if SentinelState::may_resume_on(&f, old) && !candidates.iter().any(|(c, _)| c == old) {
                candidates.push((old.clone(), false));
            }
        }
        for (c, reported) in candidates {
            if !SentinelState::may_resume_on(&f, &c) {
                continue;
            }
            let Some(p) = pool.upgrade() else {
                return;
            };
            let ready = match p.probe_role(&c, PROBE_TIMEOUT) {
                Ok(Some(role)) => role == b"master",
                // A node that refuses ROLE cannot say: the sentinels' word is taken (they
                // name the new master once it is promoted).
                Ok(None) => reported,
                Err(_) => false,
            };
            if ready {
                state.resume(f.since, &c);
                break;
            }
        }
        if state.failover().is_some() {
            state.wait_changed(RESOLVE_TICK);
        }
    }
}
