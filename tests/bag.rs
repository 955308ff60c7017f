//! The per-thread parking slots (`src/pool/conn_pool/bag.rs`): a put while no get waits
//! parks the conn in the putting thread's slot, and that thread's next get claims it.
//! These tests hold the pool's obligations for parked conns: other threads steal them
//! instead of timing out, no waiter is stranded while a conn sits parked, and stats,
//! close, the reaper and `retire_all` see them. Socketpair dialers (`common::peers`).

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

mod common;

use common::peers::{Peers, eventually, options, peer_sees_eof, pool};
use redispool::pool::{ConnPool, Error, Wait};

/// Gets and gives back one conn on a new thread, which then ends: the conn stays parked
/// in that thread's slot. Returns its id.
fn park_on_other_thread(p: &ConnPool) -> u64 {
    let p = p.clone();
    thread::spawn(move || {
        let c = p.get().unwrap();
        let id = c.id();
        p.put(c).unwrap();
        id
    })
    .join()
    .unwrap()
}

#[test]
fn a_conn_parked_by_another_thread_is_stolen_not_waited_for() {
    let (p, peers) = pool(1);
    let id = park_on_other_thread(&p);
    // The parked conn holds the pool's only turn: without stealing this get times out.
    let c = p
        .get_with(Wait::For(Duration::from_secs(2)), None)
        .expect("the parked conn is stolen");
    assert_eq!(c.id(), id);
    assert_eq!(peers.dials(), 1, "no second dial");
    p.put(c).unwrap();
    // Also when the get takes a free turn first and finds the idle list empty.
    let (p2, peers2) = pool(2);
    let id2 = park_on_other_thread(&p2);
    let c = p2.get().unwrap();
    assert_eq!(c.id(), id2, "stolen before dialing");
    assert_eq!(peers2.dials(), 1);
    p2.put(c).unwrap();
    p.close().unwrap();
    p2.close().unwrap();
}

#[test]
fn try_get_takes_a_parked_conn() {
    let (p, peers) = pool(1);
    let id = park_on_other_thread(&p);
    let c = p.try_get().expect("the parked conn");
    assert_eq!(c.id(), id);
    assert_eq!(peers.dials(), 1);
    p.put(c).unwrap();
    p.close().unwrap();
}

#[test]
fn a_waiting_get_is_given_the_conn_a_put_would_park() {
    // The waiter queues first; the put then sees it and hands the conn over.
    let (p, _peers) = pool(1);
    for _ in 0..50 {
        let c = p.get().unwrap();
        let p2 = p.clone();
        let waiter = thread::spawn(move || {
            p2.get_with(Wait::For(Duration::from_secs(10)), None)
                .map(|c| p2.put(c))
        });
        eventually("the get waits", || p.stats().waiting == 1);
        p.put(c).unwrap();
        waiter.join().unwrap().expect("not stranded").unwrap();
    }
    p.close().unwrap();
}

/// Threads take turns on a small pool: every put races a get of another thread (park vs
/// announce-and-scan, and with an overtake window a waiter woken to retry that finds the
/// turns held by parked conns). A stranded waiter times out.
fn race(size: usize, threads: usize, rounds: usize, overtake: Option<Duration>) {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, size);
    o.overtake_window = overtake;
    let p = ConnPool::new(o).unwrap();
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let p = p.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                for i in 0..rounds {
                    let c = p
                        .get_with(Wait::For(Duration::from_secs(10)), None)
                        .unwrap_or_else(|e| panic!("get {i}: {e}"));
                    p.put(c).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = p.stats();
    assert!(s.total_conns as usize <= size);
    assert_eq!((s.idle_conns, s.in_use_conns), (s.total_conns, 0));
    assert_eq!(s.timeouts, 0);
    p.close().unwrap();
}

#[test]
fn racing_gets_and_puts_never_strand_a_waiter_in_strict_order() {
    race(1, 3, 5000, None);
    race(2, 8, 20_000, None);
}

#[test]
fn racing_gets_and_puts_never_strand_a_waiter_with_overtaking() {
    race(1, 3, 5000, Some(Duration::from_millis(5)));
    race(2, 8, 20_000, Some(Duration::from_millis(5)));
}

#[test]
fn stats_and_lengths_count_parked_conns_as_idle() {
    let (p, _peers) = pool(4);
    let (to_main, from_thread) = mpsc::channel();
    let (to_thread, from_main) = mpsc::channel::<()>();
    let p2 = p.clone();
    let t = thread::spawn(move || {
        let c = p2.get().unwrap();
        p2.put(c).unwrap();
        to_main.send(()).unwrap();
        from_main.recv().unwrap();
        // Its own parked conn: a hit.
        let c = p2.get().unwrap();
        p2.put(c).unwrap();
    });
    from_thread.recv().unwrap();
    let s = p.stats();
    assert_eq!(
        (
            s.total_conns,
            s.idle_conns,
            s.in_use_conns,
            s.hits,
            s.misses
        ),
        (1, 1, 0, 0, 1)
    );
    assert_eq!((p.len(), p.idle_len()), (1, 1));
    to_thread.send(()).unwrap();
    t.join().unwrap();
    let s = p.stats();
    assert_eq!(
        (
            s.total_conns,
            s.idle_conns,
            s.in_use_conns,
            s.hits,
            s.misses
        ),
        (1, 1, 0, 1, 1)
    );
    p.close().unwrap();
}

#[test]
fn close_closes_parked_conns() {
    let (p, peers) = pool(2);
    park_on_other_thread(&p);
    p.close().unwrap();
    assert!(peer_sees_eof(&peers.end(0)), "the parked conn is closed");
    assert_eq!(p.stats().total_conns, 0);
}

#[test]
fn the_reaper_closes_parked_conns_past_their_idle_time() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 2);
    o.conn_max_idle_time = Some(Duration::from_millis(30));
    o.reaper_interval = Some(Duration::from_millis(10));
    let p = ConnPool::new(o).unwrap();
    park_on_other_thread(&p);
    eventually("the parked conn is reaped", || p.stats().total_conns == 0);
    assert!(peer_sees_eof(&peers.end(0)));
    assert_eq!(p.stats().stale_conns, 1);
    p.close().unwrap();
}

#[test]
fn retire_all_closes_parked_conns_at_once() {
    let (p, peers) = pool(2);
    park_on_other_thread(&p);
    p.retire_all();
    assert_eq!(p.retired_conns(), 1, "retired at once, not when claimed");
    assert!(peer_sees_eof(&peers.end(0)));
    let s = p.stats();
    assert_eq!((s.total_conns, s.idle_conns), (0, 0));
    // The turn it held is free again: a get dials a new conn.
    let c = p.get().unwrap();
    assert_eq!(peers.dials(), 2);
    p.put(c).unwrap();
    p.close().unwrap();
}

fn readable(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}

#[test]
fn notify_fd_users_see_conns_on_the_idle_list() {
    // `pool_notify_fd` is readable while `try_get` may find a conn: once it was asked
    // for, parked conns move to the idle list and puts stop parking (a parked conn would
    // not make the fd readable, and an event loop would never look).
    let (p, _peers) = pool(1);
    park_on_other_thread(&p);
    let fd = p.notify_fd().unwrap();
    assert!(readable(fd), "a conn is idle");
    assert_eq!(p.idle_len(), 1);
    let c = p.try_get().unwrap();
    assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
    assert!(!readable(fd), "nothing to get");
    p.put(c).unwrap();
    assert!(readable(fd), "the conn given back is there to get");
    p.close().unwrap();
}

#[test]
fn a_waiter_woken_to_retry_is_not_stranded_by_conns_parked_meanwhile() {
    // With overtaking, a put while a get waits leaves the conn idle and wakes the waiter
    // to look (it leaves the queue for that moment). Gets and puts of this thread that
    // run before it looks take the conn and park it, holding the only turn: the waiter
    // must find it (steal it) rather than queue again behind a parked conn.
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 1);
    o.overtake_window = Some(Duration::from_secs(60));
    let p = ConnPool::new(o).unwrap();
    for i in 0..100 {
        let c = p.get().unwrap();
        let p2 = p.clone();
        let waiter = thread::spawn(move || {
            p2.get_with(Wait::For(Duration::from_secs(3)), None)
                .map(|c| p2.put(c).unwrap())
        });
        eventually("the get waits", || p.stats().waiting == 1);
        p.put(c).unwrap();
        for _ in 0..3 {
            let c = p.get().unwrap();
            p.put(c).unwrap();
        }
        waiter
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("round {i}: the waiter was stranded: {e}"));
    }
    p.close().unwrap();
}
