//! The watcher thread of a sentinel pool ("redispool-sentinel"): subscribes to
//! `+switch-master` on one sentinel (the next one on any error, after a bounded backoff),
//! asks that same sentinel for the master every poll interval (and at once after each
//! (re)subscribe, or when a conn saw READONLY), and moves the pool to the new master.
//!
//! Asking the sentinel it listens to, not any sentinel, keeps what the watcher learns in
//! that sentinel's order: a lagging sentinel cannot switch the pool back to the old master.
//!
//! It stops within one tick once the pool is closed or gone. It never prints, and fork()
//! does not copy it: the child's pool starts its own on first use (`ConnPool::after_fork`).

use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::{SentinelConn, SentinelState, parse_switch_master};
use crate::pool::Retire;
use crate::redis::deadline::{bounded_instant_after, instant_after};

/// How long one blocking read of the subscription lasts: the bound on noticing a closed
/// pool, a READONLY hint or a due poll.
const TICK: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const CHANNEL: &str = "+switch-master";

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

pub(super) fn run(state: Arc<SentinelState>, pool: Weak<dyn Retire>) {
    let n = state.cfg.addrs.len();
    let mut idx = state.preferred();
    let mut backoff = BACKOFF_MIN;
    loop {
        if stopped(&pool) {
            return;
        }
        let subscribed = {
            let addr = &state.cfg.addrs[idx];
            let until = bounded_instant_after(state.cfg.timeout);
            SentinelConn::connect(addr, &state.cfg, until)
                .and_then(|mut c| c.subscribe(CHANNEL, until).map(|()| c))
        };
        if let Ok(sub) = subscribed {
            backoff = BACKOFF_MIN;
            listen(&state, &pool, sub, idx);
        }
        idx = (idx + 1) % n;
        if sleep_unless_stopped(&pool, backoff) {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Listens on one subscription until it fails or the pool stops.
fn listen(state: &SentinelState, pool: &Weak<dyn Retire>, mut sub: SentinelConn, idx: usize) {
    let cfg = &state.cfg;
    let addr = &cfg.addrs[idx];
    let mut query: Option<SentinelConn> = None;
    // Poll at once: a switch may have happened while no subscription was up.
    let mut next_poll = Some(Instant::now());
    loop {
        if stopped(pool) {
            return;
        }
        if state.is_suspect() || next_poll.is_some_and(|t| Instant::now() >= t) {
            let until = bounded_instant_after(cfg.timeout);
            if query.is_none() {
                query = SentinelConn::connect(addr, cfg, until).ok();
            }
            match query
                .as_mut()
                .map(|q| q.get_master_addr(&cfg.master_name, until))
            {
                Some(Ok(Some(master))) => {
                    state.set_preferred(idx);
                    state.switch_to(&master);
                }
                // Unknown name or no answer: keep listening; the subscription decides
                // whether this sentinel is still usable.
                Some(Ok(None)) => {}
                Some(Err(_)) | None => query = None,
            }
            // While suspect, ask again at the next tick at the earliest.
            next_poll = instant_after(cfg.poll_interval);
        }
        match sub.next_message(TICK) {
            Ok(Some(payload)) => {
                if let Some(sw) = parse_switch_master(&payload) {
                    if sw.name == cfg.master_name {
                        state.set_preferred(idx);
                        state.switch_to(&sw.new_addr);
                    }
                }
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
}
