//! Name resolution bounded by a dial's deadline.
//!
//! `getaddrinfo` blocks and cannot be cancelled, so a name is resolved on a resolver thread
//! and the dial stops waiting at its deadline (or when its pool closes); the lookup itself
//! then finishes, unobserved, on that thread. The resolver threads are shared by every pool
//! and there are at most `MAX_RESOLVERS` of them, so a slow resolver cannot make threads pile
//! up: further lookups queue (at most `MAX_QUEUED`, then they fail at once) and a lookup
//! whose dial gave up while it was queued is skipped. A literal IP address ("10.0.0.1:6379",
//! "[::1]:6379", the common case) needs no lookup and no thread.
//!
//! The locks and condvars are std's (futex-based), not parking_lot's: a thread parked in
//! parking_lot's process-wide table at fork() corrupts it in the child.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::fork;
use super::in_flight::InFlight;

/// Resolver threads running at most, across all pools.
const MAX_RESOLVERS: usize = 4;
/// Lookups waiting for a resolver thread at most; beyond, a dial fails at once.
const MAX_QUEUED: usize = 1024;
/// A dial waiting for a lookup looks at its pool's closed flag at least this often.
const CLOSE_CHECK: Duration = Duration::from_millis(50);

type Lookup = io::Result<Vec<SocketAddr>>;

/// Resolves names ending in ".test" (RFC 6761: never resolvable) instead of
/// `getaddrinfo`, for tests that need a slow or failing resolver.
pub type TestResolver = dyn Fn(&str) -> Lookup + Send + Sync;

static TEST_RESOLVER: Mutex<Option<Arc<TestResolver>>> = Mutex::new(None);

/// Installs (or, with None, removes) the resolver of ".test" names. For tests only.
#[doc(hidden)]
pub fn set_test_resolver(f: Option<Arc<TestResolver>>) {
    *lock(&TEST_RESOLVER) = f;
}

/// One lookup's result, shared by the dial waiting for it and the resolver thread.
#[derive(Default)]
struct Slot {
    result: Mutex<Option<Lookup>>,
    done: Condvar,
}

struct Job {
    addr: String,
    slot: Arc<Slot>,
}

/// The resolver threads of one process: a forked child makes its own (the parent's
/// threads do not exist there, and their lock may have been held at fork time).
#[derive(Default)]
struct Resolvers {
    generation: u64,
    st: Mutex<ResolverState>,
}

#[derive(Default)]
struct ResolverState {
    queue: VecDeque<Job>,
    /// Resolver threads alive; each takes queued jobs until none is left.
    threads: usize,
}

fn resolvers() -> &'static Resolvers {
    static CURRENT: AtomicPtr<Resolvers> = AtomicPtr::new(std::ptr::null_mut());
    let generation = fork::generation();
    let cur = CURRENT.load(Ordering::Acquire);
    // SAFETY: a published `Resolvers` is never freed (a replaced one is abandoned).
    if let Some(r) = unsafe { cur.as_ref() } {
        if r.generation == generation {
            return r;
        }
    }
    let fresh = Box::into_raw(Box::new(Resolvers {
        generation,
        ..Resolvers::default()
    }));
    match CURRENT.compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            if !cur.is_null() {
                // SAFETY: `cur` came from `Box::into_raw` and is no longer published; in
                // this (forked) process no thread uses it. Kept, untouched, not freed.
                fork::abandon(unsafe { Box::from_raw(cur) });
            }
            // SAFETY: just published; never freed.
            unsafe { &*fresh }
        }
        Err(now) => {
            // SAFETY: `fresh` was never published.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: as above, a published `Resolvers` is never freed.
            unsafe { &*now }
        }
    }
}

/// The addresses of "host:port" ("[v6]:port"): parsed when the host is a literal IP
/// address, else looked up on a resolver thread. Gives up at `deadline` and when
/// `in_flight` closes (None and None: looked up on this thread).
pub(crate) fn resolve(
    addr: &str,
    deadline: Option<Instant>,
    in_flight: Option<&InFlight>,
) -> Lookup {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if deadline.is_none() && in_flight.is_none() {
        return lookup(addr);
    }
    let slot = Arc::new(Slot::default());
    submit(Job {
        addr: addr.to_string(),
        slot: Arc::clone(&slot),
    })?;
    let mut result = lock(&slot.result);
    loop {
        if let Some(r) = result.take() {
            return r;
        }
        if in_flight.is_some_and(InFlight::is_closed) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the pool closed during name resolution",
            ));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "dial timeout during name resolution",
            ));
        }
        let mut until = now + CLOSE_CHECK;
        if let Some(d) = deadline {
            until = until.min(d);
        }
        if in_flight.is_none() {
            until = deadline.unwrap_or(until);
        }
        let wait = until.saturating_duration_since(Instant::now());
        result = slot
            .done
            .wait_timeout(result, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// A panic while a lock was held (a test resolver's) leaves nothing half-done here.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lookup(addr: &str) -> Lookup {
    if let Some((host, _)) = addr.rsplit_once(':') {
        if host.ends_with(".test") {
            let hook = lock(&TEST_RESOLVER).clone();
            if let Some(f) = hook {
                return f(addr);
            }
        }
    }
    Ok(addr.to_socket_addrs()?.collect())
}

fn submit(job: Job) -> io::Result<()> {
    let r: &'static Resolvers = resolvers();
    let mut st = lock(&r.st);
    if st.queue.len() >= MAX_QUEUED {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{MAX_QUEUED} name lookups already wait for the resolver threads"),
        ));
    }
    st.queue.push_back(job);
    if st.threads < MAX_RESOLVERS {
        let spawned = thread::Builder::new()
            .name("redispool-resolve".into())
            .spawn(move || resolver_loop(r));
        match spawned {
            Ok(_) => st.threads += 1,
            // Another resolver thread will take the job.
            Err(_) if st.threads > 0 => {}
            Err(e) => {
                st.queue.pop_back();
                return Err(io::Error::other(format!(
                    "cannot start a resolver thread: {e}"
                )));
            }
        }
    }
    Ok(())
}

fn resolver_loop(r: &'static Resolvers) {
    loop {
        let job = {
            let mut st = lock(&r.st);
            match st.queue.pop_front() {
                Some(job) => job,
                // No lingering: a thread alive at fork() leaves its memory unreachable in
                // the child.
                None => {
                    st.threads -= 1;
                    return;
                }
            }
        };
        // The dial gave up while the job was queued: nobody wants the answer.
        if Arc::strong_count(&job.slot) == 1 {
            continue;
        }
        let res = lookup(&job.addr);
        *lock(&job.slot.result) = Some(res);
        job.slot.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_address_needs_no_lookup() {
        let t = Some(Instant::now());
        assert_eq!(
            resolve("127.0.0.1:7", t, None).unwrap(),
            vec!["127.0.0.1:7".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:7", t, None).unwrap(),
            vec!["[::1]:7".parse().unwrap()]
        );
    }
}
