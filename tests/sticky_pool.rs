//! SingleConnPool and StickyConnPool through the core's Rust API, over a ConnPool with a
//! socketpair dialer. Behaviours from go-redis `internal/pool` (pool_sticky.go,
//! pool_single.go and their tests), plus what the C API adds: thread safety, FIFO waits,
//! timeouts and cancel tokens, and the conn going back to the parent on close.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::peers::{eventually, peer_sees_eof, pool};
use redispool::pool::{CancelToken, ConnPool, Error, Pooler, SingleConnPool, StickyConnPool, Wait};

fn sticky_over(parent: &ConnPool) -> StickyConnPool {
    StickyConnPool::new(Arc::new(parent.clone()))
}

fn ms(n: u64) -> Wait {
    Wait::For(Duration::from_millis(n))
}

#[test]
fn sticky_borrows_once_and_returns_the_same_conn() {
    let (parent, peers) = pool(4);
    let sticky = sticky_over(&parent);
    assert_eq!((sticky.len(), sticky.idle_len()), (0, 0));

    let c = sticky.get_with(ms(1000), None).unwrap();
    let id = c.id();
    assert_eq!((sticky.len(), sticky.idle_len()), (1, 0));
    assert_eq!(parent.stats().misses, 1);
    sticky.put(c).unwrap();
    assert_eq!((sticky.len(), sticky.idle_len()), (1, 1));
    // The conn stays checked out from the parent while the sticky pool holds it.
    assert_eq!((parent.len(), parent.idle_len()), (1, 0));

    for _ in 0..5 {
        let c = sticky.get_with(ms(1000), None).unwrap();
        assert_eq!(c.id(), id);
        sticky.put(c).unwrap();
    }
    assert_eq!(peers.dials(), 1);
    assert_eq!(parent.stats().hits + parent.stats().misses, 1);

    sticky.close().unwrap();
    assert_eq!((parent.len(), parent.idle_len()), (1, 1));
    assert_eq!(sticky.close().unwrap_err(), Error::Closed);
    assert_eq!(sticky.get_with(ms(10), None).unwrap_err(), Error::Closed);
    assert_eq!((sticky.len(), sticky.idle_len()), (0, 0));
}

#[test]
fn concurrent_first_gets_borrow_one_conn() {
    let (parent, peers) = pool(8);
    peers.delay_ms.store(50, Ordering::SeqCst);
    let sticky = Arc::new(sticky_over(&parent));
    let barrier = Arc::new(Barrier::new(8));
    let ids = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (sticky, barrier, ids) = (sticky.clone(), barrier.clone(), ids.clone());
            thread::spawn(move || {
                barrier.wait();
                let c = sticky.get_with(ms(10_000), None).unwrap();
                ids.lock().unwrap().push(c.id());
                thread::sleep(Duration::from_millis(2));
                sticky.put(c).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let ids = ids.lock().unwrap();
    assert_eq!(ids.len(), 8);
    assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
    assert_eq!(peers.dials(), 1);
    assert_eq!(parent.len(), 1);
}

#[test]
fn a_held_conn_makes_gets_wait_in_arrival_order() {
    let (parent, _peers) = pool(4);
    let sticky = Arc::new(sticky_over(&parent));
    let c = sticky.get_with(ms(1000), None).unwrap();

    // Timeout while held, with a message that says why.
    let start = Instant::now();
    let err = sticky.get_with(ms(100), None).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(100));
    match &err {
        Error::Timeout(m) => assert!(m.contains("in use by another caller"), "{m}"),
        e => panic!("expected a timeout, got {e:?}"),
    }
    assert!(matches!(
        sticky.get_with(Wait::NoWait, None),
        Err(Error::Timeout(_))
    ));
    assert_eq!(sticky.try_get().unwrap_err(), Error::WouldBlock);

    let order = Arc::new(Mutex::new(Vec::new()));
    let queued = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for n in 0..4 {
        let (s, order, queued) = (sticky.clone(), order.clone(), queued.clone());
        handles.push(thread::spawn(move || {
            queued.fetch_add(1, Ordering::SeqCst);
            let c = s.get_with(ms(10_000), None).unwrap();
            order.lock().unwrap().push(n);
            s.put(c).unwrap();
        }));
        // Each waiter queues before the next starts.
        eventually("waiter queued", || sticky.stats().waiting as usize == n + 1);
    }
    sticky.put(c).unwrap();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(queued.load(Ordering::SeqCst), 4);
}

#[test]
fn cancel_token_ends_a_sticky_wait() {
    let (parent, _peers) = pool(2);
    let sticky = Arc::new(sticky_over(&parent));
    let c = sticky.get_with(ms(1000), None).unwrap();
    let token = CancelToken::new();
    let waiter = {
        let (sticky, token) = (sticky.clone(), token.clone());
        thread::spawn(move || {
            let start = Instant::now();
            let r = sticky.get_with(Wait::Forever, Some(&token));
            (r.map(|c| c.id()), start.elapsed())
        })
    };
    eventually("waiter queued", || sticky.stats().waiting == 1);
    token.fire();
    let (res, _) = waiter.join().unwrap();
    assert_eq!(res.unwrap_err(), Error::Canceled);
    assert_eq!(sticky.stats().waiting, 0);
    // Nothing left behind: the holder puts, and the next get has the conn at once.
    sticky.put(c).unwrap();
    let c = sticky.get_with(Wait::NoWait, None).unwrap();
    sticky.put(c).unwrap();
}

#[test]
fn remove_makes_gets_fail_with_bad_conn_until_reset() {
    let (parent, peers) = pool(2);
    let sticky = Arc::new(sticky_over(&parent));
    let c = sticky.get_with(ms(1000), None).unwrap();
    let first = c.id();
    // A waiter queued behind the holder is told at once, not left hanging.
    let waiter = {
        let sticky = sticky.clone();
        thread::spawn(move || sticky.get_with(ms(10_000), None).map(|c| c.id()))
    };
    eventually("waiter queued", || sticky.stats().waiting == 1);
    sticky.remove(c, Some("read timeout")).unwrap();
    let want = Error::BadConn("read timeout".into());
    assert_eq!(waiter.join().unwrap().unwrap_err(), want);
    assert_eq!(sticky.get_with(ms(10), None).unwrap_err(), want);
    assert_eq!(
        want.to_string(),
        "redis: Conn is in a bad state: read timeout"
    );
    assert_eq!(sticky.try_get().unwrap_err(), want);
    // The bad conn is still the parent's until reset.
    assert_eq!(parent.len(), 1);

    sticky.reset().unwrap();
    assert_eq!(parent.len(), 0);
    assert_eq!(parent.stats().removed_conns, 1);
    assert!(peer_sees_eof(&peers.end(0)));
    let c = sticky.get_with(ms(1000), None).unwrap();
    assert_ne!(c.id(), first);
    assert_eq!(peers.dials(), 2);
    sticky.put(c).unwrap();
    // A reset with nothing bad is a no-op.
    sticky.reset().unwrap();
    assert_eq!(sticky.len(), 1);
}

#[test]
fn close_gives_the_conn_back_healthy_or_bad() {
    // Healthy and idle: put back into the parent's idle list at once.
    let (parent, peers) = pool(2);
    let sticky = sticky_over(&parent);
    let c = sticky.get_with(ms(1000), None).unwrap();
    sticky.put(c).unwrap();
    sticky.close().unwrap();
    assert_eq!((parent.len(), parent.idle_len()), (1, 1));

    // Checked out at close: goes back when it is put.
    let sticky = sticky_over(&parent);
    let c = sticky.get_with(ms(1000), None).unwrap();
    sticky.close().unwrap();
    assert_eq!(parent.idle_len(), 0);
    sticky.put(c).unwrap();
    assert_eq!((parent.len(), parent.idle_len()), (1, 1));

    // Bad at close: removed from the parent, total goes down.
    let sticky = sticky_over(&parent);
    let c = sticky.get_with(ms(1000), None).unwrap();
    sticky.remove(c, Some("protocol error")).unwrap();
    assert_eq!(parent.len(), 1);
    sticky.close().unwrap();
    assert_eq!(parent.len(), 0);
    assert!(peer_sees_eof(&peers.end(0)));

    // Removed after close: removed from the parent too.
    let sticky = sticky_over(&parent);
    let c = sticky.get_with(ms(1000), None).unwrap();
    sticky.close().unwrap();
    sticky.remove(c, Some("late")).unwrap();
    assert_eq!(parent.len(), 0);
}

#[test]
fn close_wakes_waiters_with_closed() {
    let (parent, _peers) = pool(2);
    let sticky = Arc::new(sticky_over(&parent));
    let c = sticky.get_with(ms(1000), None).unwrap();
    let waiter = {
        let sticky = sticky.clone();
        thread::spawn(move || sticky.get_with(Wait::Forever, None).map(|c| c.id()))
    };
    eventually("waiter queued", || sticky.stats().waiting == 1);
    sticky.close().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap_err(), Error::Closed);
    sticky.put(c).unwrap();
    assert_eq!(parent.idle_len(), 1);
}

#[test]
fn sticky_over_sticky_is_shared_and_reference_counted() {
    let (parent, _peers) = pool(2);
    let a = sticky_over(&parent);
    let b = a.share().unwrap();
    assert!(a.same_pool(&b));
    let c = a.get_with(ms(1000), None).unwrap();
    let id = c.id();
    b.put(c).unwrap();
    a.close().unwrap();
    assert_eq!(a.get_with(ms(10), None).unwrap_err(), Error::Closed);
    // b still works: the pool closes with its last handle.
    let c = b.get_with(ms(1000), None).unwrap();
    assert_eq!(c.id(), id);
    b.put(c).unwrap();
    assert_eq!(parent.idle_len(), 0);
    b.close().unwrap();
    assert_eq!(parent.idle_len(), 1);
    assert_eq!(b.share().err(), Some(Error::Closed));
}

#[test]
fn foreign_conns_are_rejected_and_nothing_changes() {
    let (parent, _peers) = pool(4);
    let sticky = sticky_over(&parent);
    let mine = sticky.get_with(ms(1000), None).unwrap();
    let other = parent.get_with(ms(1000), None).unwrap();
    let other_id = other.id();
    let rejected = sticky.put(other).unwrap_err();
    assert!(matches!(rejected.error, Error::InvalidArg(_)));
    assert_eq!(rejected.conn.id(), other_id);
    let rejected = sticky.remove(rejected.conn, Some("x")).unwrap_err();
    parent.put(rejected.conn).unwrap();
    // The sticky conn is unaffected.
    sticky.put(mine).unwrap();
    let c = sticky.get_with(Wait::NoWait, None).unwrap();
    sticky.put(c).unwrap();
}

#[test]
fn failed_borrow_passes_the_error_and_lets_the_next_get_retry() {
    let (parent, peers) = pool(2);
    peers.fail.store(true, Ordering::SeqCst);
    let sticky = sticky_over(&parent);
    assert!(matches!(
        sticky.get_with(ms(2000), None),
        Err(Error::Dial { .. })
    ));
    assert_eq!(sticky.len(), 0);
    peers.fail.store(false, Ordering::SeqCst);
    // The parent fails fast only after pool_size failures; one failure does not block.
    let c = sticky.get_with(ms(5000), None).unwrap();
    sticky.put(c).unwrap();
    assert_eq!(sticky.len(), 1);
}

#[test]
fn single_pool_wraps_one_conn() {
    let (parent, peers) = pool(2);
    let conn = parent.get_with(ms(1000), None).unwrap();
    let id = conn.id();
    let single = Arc::new(SingleConnPool::new(Arc::new(parent.clone()), conn));
    assert_eq!((single.len(), single.idle_len()), (0, 0));
    let c = single.get_with(ms(1000), None).unwrap();
    assert_eq!(c.id(), id);
    // Held: a second get waits, then times out.
    assert!(matches!(
        single.get_with(ms(50), None),
        Err(Error::Timeout(_))
    ));
    let waiter = {
        let single = single.clone();
        thread::spawn(move || {
            let c = single.get_with(ms(10_000), None).unwrap();
            let id = c.id();
            single.put(c).unwrap();
            id
        })
    };
    eventually("waiter queued", || single.stats().waiting == 1);
    single.put(c).unwrap();
    assert_eq!(waiter.join().unwrap(), id);

    // Close does not close the conn: it goes back to the parent.
    single.close().unwrap();
    assert_eq!(single.get_with(ms(10), None).unwrap_err(), Error::Closed);
    assert_eq!((parent.len(), parent.idle_len()), (1, 1));
    let end = peers.end(0);
    end.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(
        std::io::Read::read(&mut &end, &mut b),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    ));
}

#[test]
fn single_pool_remove_with_and_without_reason() {
    let (parent, _peers) = pool(2);
    let conn = parent.get_with(ms(1000), None).unwrap();
    let single = SingleConnPool::new(Arc::new(parent.clone()), conn);
    let c = single.get_with(ms(1000), None).unwrap();
    single.remove(c, Some("auth failed")).unwrap();
    assert_eq!(
        single.get_with(ms(10), None).unwrap_err(),
        Error::BadConn("auth failed".into())
    );
    assert_eq!(parent.len(), 0);

    let conn = parent.get_with(ms(1000), None).unwrap();
    let single = SingleConnPool::new(Arc::new(parent.clone()), conn);
    let c = single.get_with(ms(1000), None).unwrap();
    single.remove(c, None).unwrap();
    assert_eq!(single.get_with(ms(10), None).unwrap_err(), Error::Closed);
    assert_eq!(single.try_get().unwrap_err(), Error::Closed);
    assert_eq!(parent.len(), 0);
    // Close after remove: nothing left to give back.
    single.close().unwrap();
    assert_eq!(parent.len(), 0);
}

#[test]
fn sticky_passes_new_conn_to_the_parent() {
    let (parent, _peers) = pool(2);
    let sticky = sticky_over(&parent);
    let extra = sticky.new_conn().unwrap();
    assert!(!extra.is_pooled());
    assert_eq!(parent.len(), 1);
    sticky.close_conn(extra).unwrap();
    assert_eq!(parent.len(), 0);
    // CloseConn of the sticky conn itself is a remove.
    let c = sticky.get_with(ms(1000), None).unwrap();
    sticky.close_conn(c).unwrap();
    assert!(matches!(
        sticky.get_with(ms(10), None),
        Err(Error::BadConn(_))
    ));
}

#[test]
fn transaction_sessions_from_many_threads_never_share_the_conn_at_once() {
    let (parent, _peers) = pool(4);
    let sticky = Arc::new(sticky_over(&parent));
    let inside = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (sticky, inside) = (sticky.clone(), inside.clone());
            thread::spawn(move || {
                for _ in 0..200 {
                    let c = sticky.get_with(ms(20_000), None).unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sticky.put(c).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(parent.len(), 1);
}
