//! The pool core, driven through its Rust API with socketpair dialers: each dial makes a
//! `UnixStream::pair`, hands one end to the pool and keeps the other (the "server" side) so a
//! test can close it, write unexpected bytes, or slow down and fail dials.
//! Behaviours ported from go-redis `internal/pool/pool_test.go`.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::peers::{Peers, eventually, options, peer_sees_eof, pool};
use redispool::pool::{CancelToken, Conn, ConnPool, Dialer, Error, Wait};

#[test]
fn get_put_hits_and_misses() {
    let (p, peers) = pool(4);
    let c = p.get().unwrap();
    assert_eq!(c.id(), 1);
    let s = p.stats();
    assert_eq!(
        (s.hits, s.misses, s.total_conns, s.idle_conns),
        (0, 1, 1, 0)
    );
    p.put(c).unwrap();
    let c = p.get().unwrap();
    assert_eq!(c.id(), 1, "the idle conn is reused");
    let s = p.stats();
    assert_eq!(
        (s.hits, s.misses, s.total_conns, s.idle_conns),
        (1, 1, 1, 0)
    );
    assert_eq!(s.pending_requests, 0);
    p.put(c).unwrap();
    assert_eq!((p.len(), p.idle_len()), (1, 1));
    assert_eq!(peers.dials(), 1);
    p.close().unwrap();
}

#[test]
fn lifo_by_default_fifo_on_request() {
    for fifo in [false, true] {
        let peers = Arc::new(Peers::default());
        let mut o = options(&peers, 4);
        o.pool_fifo = fifo;
        let p = ConnPool::new(o).unwrap();
        let a = p.get().unwrap();
        let b = p.get().unwrap();
        let (ida, idb) = (a.id(), b.id());
        p.put(a).unwrap();
        p.put(b).unwrap();
        let c = p.get().unwrap();
        assert_eq!(c.id(), if fifo { ida } else { idb }, "fifo={fifo}");
        p.put(c).unwrap();
        p.close().unwrap();
    }
}

#[test]
fn waiter_gets_turn_and_wait_is_counted() {
    let (p, _peers) = pool(1);
    let c = p.get().unwrap();
    let id = c.id();
    let p2 = p.clone();
    let t = thread::spawn(move || p2.get().map(|c| c.id()));
    eventually("the get is queued", || p.stats().waiting == 1);
    thread::sleep(Duration::from_millis(20));
    p.put(c).unwrap();
    assert_eq!(
        t.join().unwrap().unwrap(),
        id,
        "the put conn goes to the waiter"
    );
    let s = p.stats();
    assert_eq!(s.wait_count, 1);
    assert!(s.wait_duration_ns >= 15_000_000, "{}", s.wait_duration_ns);
    assert_eq!(s.timeouts, 0);
}

#[test]
fn timeout_when_no_turn_is_free() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 1);
    o.pool_timeout = Wait::For(Duration::from_millis(100));
    let p = ConnPool::new(o).unwrap();
    let c = p.get().unwrap();
    let start = Instant::now();
    let err = p.get().unwrap_err();
    let took = start.elapsed();
    let Error::Timeout(msg) = &err else {
        panic!("expected a timeout, got {err:?}")
    };
    assert!(took >= Duration::from_millis(95), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        msg.starts_with("redis: connection pool timeout after"),
        "{msg}"
    );
    assert!(msg.contains("1/1 conns in use, 0 idle"), "{msg}");
    assert!(msg.contains("last dial error: none"), "{msg}");
    let s = p.stats();
    assert_eq!((s.timeouts, s.wait_count, s.pending_requests), (1, 0, 0));
    // A zero wait fails at once.
    let err = p.get_with(Wait::NoWait, None).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)));
    assert_eq!(p.stats().timeouts, 2);
    p.put(c).unwrap();
    let c = p.get().unwrap();
    p.put(c).unwrap();
}

#[test]
fn removal_unblocks_a_waiter() {
    let (p, peers) = pool(1);
    let c = p.get().unwrap();
    let p2 = p.clone();
    let t = thread::spawn(move || p2.get().map(|c| c.id()));
    eventually("queued", || p.stats().waiting == 1);
    p.remove(c, Some("test")).unwrap();
    assert!(peer_sees_eof(&peers.end(0)));
    let id = t.join().unwrap().unwrap();
    assert_eq!(id, 2, "the waiter got the freed turn and dialed");
    let s = p.stats();
    assert_eq!((s.removed_conns, s.total_conns), (1, 1));
}

/// Waiters come out in arrival order: in strict order each put hands the conn to the
/// oldest; with an overtake window each put leaves it idle and wakes the oldest, and nobody
/// else competes here, so the order is the same.
#[test]
fn waiters_are_served_in_arrival_order() {
    for window in [None, Some(Duration::from_secs(60))] {
        let peers = Arc::new(Peers::default());
        let mut o = options(&peers, 1);
        o.overtake_window = window;
        let p = ConnPool::new(o).unwrap();
        let c = p.get().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..6 {
            let (p2, order) = (p.clone(), order.clone());
            threads.push(thread::spawn(move || {
                let c = p2.get().unwrap();
                order.lock().unwrap().push(i);
                p2.put(c).unwrap();
            }));
            eventually("queued in order", || p.stats().waiting == i + 1);
        }
        p.put(c).unwrap();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5], "{window:?}");
        assert_eq!(p.len(), 1, "one conn served everybody");
        let s = p.stats();
        assert_eq!((s.idle_conns, s.waiting, s.wait_count), (1, 0, 6));
    }
}

/// A put while a get waits: in strict order (no window) the conn goes to the waiter, so a
/// get that does not wait finds nothing; within a window the conn stays idle for a moment
/// and that get may take it; past the window (the waiter has waited longer) it goes to the
/// waiter again. The waiter holds what it gets until told, so an ask cannot come after it.
#[test]
fn overtake_window_lets_a_get_ahead_only_within_the_window() {
    fn round(p: &ConnPool, held: Conn, wait_first: Duration) -> (bool, Conn) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p2 = p.clone();
        let t = thread::spawn(move || {
            let c = p2.get().unwrap();
            rx.recv().unwrap();
            p2.put(c).unwrap();
        });
        eventually("queued", || p.stats().waiting == 1);
        thread::sleep(wait_first);
        p.put(held).unwrap();
        let asked = p.get_with(Wait::NoWait, None);
        let overtook = asked.is_ok();
        match asked {
            Ok(c) => p.put(c).unwrap(),
            Err(e) => assert!(matches!(e, Error::Timeout(_)), "{e:?}"),
        }
        tx.send(()).unwrap();
        t.join().unwrap();
        (overtook, p.get().unwrap())
    }
    for (window, wait_first, want) in [
        (None, Duration::ZERO, "never"),
        (Some(Duration::from_secs(60)), Duration::ZERO, "mostly"),
        (
            Some(Duration::from_millis(50)),
            Duration::from_millis(200),
            "never",
        ),
    ] {
        let peers = Arc::new(Peers::default());
        let mut o = options(&peers, 1);
        o.overtake_window = window;
        let p = ConnPool::new(o).unwrap();
        let mut held = p.get().unwrap();
        let mut overtakes = 0;
        for _ in 0..8 {
            let (overtook, c) = round(&p, held, wait_first);
            overtakes += usize::from(overtook);
            held = c;
        }
        match want {
            "never" => assert_eq!(overtakes, 0, "window {window:?}"),
            // The woken waiter may run first now and then on a busy machine.
            _ => assert!(overtakes >= 1, "window {window:?}: no get overtook"),
        }
        p.put(held).unwrap();
        let s = p.stats();
        assert_eq!((s.total_conns, s.idle_conns, s.waiting), (1, 1, 0));
        assert_eq!(peers.dials(), 1, "one conn served every round");
    }
}

/// Two conns go idle at once while two gets wait: each put wakes one waiter (one per free
/// conn, no more), or the first woken waiter, having taken its conn, wakes the next for
/// the other. Both end up holding a conn although nobody puts again.
#[test]
fn overtake_window_wakes_the_next_waiter_while_conns_are_idle() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 2);
    o.overtake_window = Some(Duration::from_secs(60));
    o.pool_timeout = Wait::For(Duration::from_secs(20));
    let p = ConnPool::new(o).unwrap();
    let (a, b) = (p.get().unwrap(), p.get().unwrap());
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let release = Arc::new(Barrier::new(3));
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            let (p2, got_tx, release) = (p.clone(), got_tx.clone(), release.clone());
            let t = thread::spawn(move || {
                let c = p2.get();
                got_tx
                    .send(c.as_ref().map(Conn::id).map_err(|e| format!("{e:?}")))
                    .unwrap();
                release.wait();
                if let Ok(c) = c {
                    p2.put(c).unwrap();
                }
            });
            eventually("queued", || p.stats().waiting == i + 1);
            t
        })
        .collect();
    p.put(a).unwrap();
    p.put(b).unwrap();
    let mut ids: Vec<u64> = (0..2)
        .map(|_| got_rx.recv().unwrap().expect("each waiter gets a conn"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
    release.wait();
    for t in waiters {
        t.join().unwrap();
    }
    let s = p.stats();
    assert_eq!((s.total_conns, s.idle_conns, s.timeouts), (2, 2, 0));
}

/// Within a window, gets that give up (short timeouts) while conns go idle and woken
/// waiters race the others for them: nothing is lost. At the end every conn is idle,
/// nobody waits, and exactly pool_size gets succeed at once.
#[test]
fn overtake_window_under_load_with_timeouts_loses_no_turn() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 2);
    o.overtake_window = Some(Duration::from_millis(1));
    o.pool_timeout = Wait::For(Duration::from_millis(2));
    let p = ConnPool::new(o).unwrap();
    let barrier = Arc::new(Barrier::new(12));
    let threads: Vec<_> = (0..12)
        .map(|t| {
            let (p, barrier) = (p.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let (mut ok, mut timeouts) = (0u64, 0u64);
                for i in 0..1500u64 {
                    match p.get() {
                        Ok(c) => {
                            ok += 1;
                            if (i + t) % 5 == 0 {
                                thread::yield_now();
                            }
                            p.put(c).unwrap();
                        }
                        Err(Error::Timeout(_)) => timeouts += 1,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                (ok, timeouts)
            })
        })
        .collect();
    let (mut ok, mut timeouts) = (0, 0);
    for t in threads {
        let (o, to) = t.join().unwrap();
        ok += o;
        timeouts += to;
    }
    assert_eq!(ok + timeouts, 12 * 1500);
    let s = p.stats();
    assert_eq!(s.timeouts, timeouts);
    assert_eq!(
        (s.total_conns, s.idle_conns, s.waiting, s.pending_requests),
        (2, 2, 0, 0)
    );
    let a = p.get_with(Wait::NoWait, None).unwrap();
    let b = p.get_with(Wait::NoWait, None).unwrap();
    assert_ne!(a.id(), b.id());
    assert!(matches!(
        p.get_with(Wait::NoWait, None),
        Err(Error::Timeout(_))
    ));
    p.put(a).unwrap();
    p.put(b).unwrap();
    assert_eq!(peers.dials(), 2);
}

#[test]
fn stale_conns_are_dropped_on_get() {
    let (p, peers) = pool(4);
    // Peer closed: EOF on peek.
    let c = p.get().unwrap();
    p.put(c).unwrap();
    drop(peers.ends.lock().unwrap().remove(0));
    let c = p.get().unwrap();
    assert_eq!(c.id(), 2, "the closed conn was replaced");
    assert_eq!(p.stats().stale_conns, 1);
    // Unexpected bytes: a reply nobody read.
    p.put(c).unwrap();
    peers.end(0).write_all(b"+PONG\r\n").unwrap();
    let c = p.get().unwrap();
    assert_eq!(c.id(), 3);
    let s = p.stats();
    assert_eq!((s.stale_conns, s.misses, s.hits), (2, 3, 0));
    p.put(c).unwrap();
}

#[test]
fn health_check_bypass_skips_the_peek_only_within_its_window() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 4);
    o.health_check_bypass = Some(Duration::from_millis(300));
    let p = ConnPool::new(o).unwrap();
    let c = p.get().unwrap();
    p.put(c).unwrap();
    // A new conn is peeked at its first get even inside the window: a reply more than its
    // set-up asked for may have arrived after the set-up's own check.
    peers.end(0).write_all(b"+PONG\r\n").unwrap();
    let c = p.get().unwrap();
    assert_eq!(c.id(), 2, "the new conn with unread bytes was replaced");
    assert_eq!(p.stats().stale_conns, 1);
    p.put(c).unwrap();
    let c = p.get().unwrap();
    assert_eq!(
        c.id(),
        2,
        "nothing unread: the new conn passed its first peek"
    );
    p.put(c).unwrap();
    // Given back a moment ago and peeked before: handed out again without the peek, even
    // though the peer wrote bytes nobody asked for (that is the trade the option makes).
    peers.end(1).write_all(b"+PONG\r\n").unwrap();
    let c = p.get().unwrap();
    assert_eq!(c.id(), 2);
    assert_eq!(p.stats().stale_conns, 1);
    p.put(c).unwrap();
    // Past the window the peek runs again and finds the unread bytes.
    std::thread::sleep(Duration::from_millis(400));
    let c = p.get().unwrap();
    assert_eq!(c.id(), 3, "the conn with unread bytes was replaced");
    assert_eq!(p.stats().stale_conns, 2);
    p.put(c).unwrap();
    let mut c = p.get().unwrap();
    assert_eq!(c.id(), 3, "its first peek passed");
    // Inside the window, a conn whose fd was lent out for raw I/O is peeked anyway: that
    // I/O may have left a reply unread (the conn's own commands never do).
    let _fd = c.lend_fd();
    p.put(c).unwrap();
    peers.end(2).write_all(b"+PONG\r\n").unwrap();
    let mut c = p.get().unwrap();
    assert_eq!(c.id(), 4, "the lent conn with unread bytes was replaced");
    assert_eq!(p.stats().stale_conns, 3);
    // Once that peek passed, the bypass applies to it again until the fd is lent again.
    let _fd = c.lend_fd();
    p.put(c).unwrap();
    let c = p.get().unwrap();
    assert_eq!(c.id(), 4, "nothing unread: the lent conn passed its peek");
    p.put(c).unwrap();
    peers.end(3).write_all(b"+PONG\r\n").unwrap();
    let c = p.get().unwrap();
    assert_eq!(
        c.id(),
        4,
        "peek passed last time, so the bypass skips it now"
    );
    assert_eq!(p.stats().stale_conns, 3);
    p.put(c).unwrap();
}

/// The PING of `ping_after_idle` answered with one reply more: the PONG is not enough,
/// the conn is out of step and is replaced, never handed out.
#[test]
fn a_pong_with_an_extra_reply_behind_it_fails_the_ping_check() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 2);
    o.ping_after_idle = Some(Duration::from_millis(50));
    o.read_timeout = Some(Duration::from_secs(5));
    let p = ConnPool::new(o).unwrap();
    let c = p.get().unwrap();
    p.put(c).unwrap();
    // Its first health check (a peek: it is new) passes; not idle long enough to ping.
    let c = p.get().unwrap();
    assert_eq!(c.id(), 1);
    p.put(c).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut end = peers.end(0);
    let peer = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(&mut end, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"*1\r\n$4\r\nPING\r\n");
        end.write_all(b"+PONG\r\n+EXTRA\r\n").unwrap();
        end
    });
    let c = p.get().unwrap();
    let _end = peer.join().unwrap();
    assert_eq!(c.id(), 2, "the conn out of step was replaced");
    assert_eq!(c.broken_reason(), None);
    assert_eq!(p.stats().stale_conns, 1);
    p.put(c).unwrap();
}

#[test]
fn lifetime_and_idle_time_make_conns_stale() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 4);
    o.conn_max_lifetime = Some(Duration::from_millis(50));
    let p = ConnPool::new(o).unwrap();
    let c = p.get().unwrap();
    p.put(c).unwrap();
    thread::sleep(Duration::from_millis(80));
    let c = p.get().unwrap();
    assert_eq!((c.id(), p.stats().stale_conns), (2, 1));
    p.put(c).unwrap();

    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 4);
    o.conn_max_idle_time = Some(Duration::from_millis(50));
    let p = ConnPool::new(o).unwrap();
    let c = p.get().unwrap();
    p.put(c).unwrap();
    let c = p.get().unwrap();
    assert_eq!(c.id(), 1, "used a moment ago: still fresh");
    p.put(c).unwrap();
    thread::sleep(Duration::from_millis(80));
    let c = p.get().unwrap();
    assert_eq!((c.id(), p.stats().stale_conns), (2, 1));
}

#[test]
fn lifetime_jitter_spreads_expiry() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 64);
    o.conn_max_lifetime = Some(Duration::from_millis(400));
    o.conn_max_lifetime_jitter = Duration::from_millis(300);
    let p = ConnPool::new(o).unwrap();
    let conns: Vec<Conn> = (0..64).map(|_| p.get().unwrap()).collect();
    for c in conns {
        p.put(c).unwrap();
    }
    // Expiries lie in [100ms, 700ms): at 400ms some but not all have expired.
    thread::sleep(Duration::from_millis(400));
    let conns: Vec<Conn> = (0..64).map(|_| p.get().unwrap()).collect();
    let stale = p.stats().stale_conns;
    assert!(stale > 0 && stale < 64, "stale={stale}");
    drop(conns);
}

#[test]
fn min_idle_conns_are_kept_filled() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 10);
    o.min_idle_conns = 5;
    let p = ConnPool::new(o).unwrap();
    eventually("prewarmed", || p.len() == 5 && p.idle_len() == 5);
    let c = p.get().unwrap();
    assert_eq!(p.stats().hits, 1);
    eventually("refilled after get", || p.idle_len() == 5 && p.len() == 6);
    p.remove(c, None).unwrap();
    eventually("refilled after remove", || {
        p.idle_len() == 5 && p.len() == 5
    });
    // Never beyond pool_size.
    let conns: Vec<Conn> = (0..10).map(|_| p.get().unwrap()).collect();
    thread::sleep(Duration::from_millis(50));
    assert_eq!(p.len(), 10);
    assert_eq!(p.stats().dials_in_progress, 0);
    for c in conns {
        p.put(c).unwrap();
    }
    assert_eq!((p.len(), p.idle_len()), (10, 10));
}

#[test]
fn max_idle_conns_closes_the_surplus_on_put() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 4);
    o.max_idle_conns = 1;
    let p = ConnPool::new(o).unwrap();
    let a = p.get().unwrap();
    let b = p.get().unwrap();
    p.put(a).unwrap();
    p.put(b).unwrap();
    assert_eq!((p.len(), p.idle_len()), (1, 1));
    assert_eq!(p.stats().evicted_conns, 1);
    assert!(peer_sees_eof(&peers.end(1)));
}

#[test]
fn max_active_conns_fails_at_once() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 5);
    o.max_active_conns = 2;
    let p = ConnPool::new(o).unwrap();
    let a = p.get().unwrap();
    let b = p.get().unwrap();
    let start = Instant::now();
    let err = p.get().unwrap_err();
    assert!(matches!(err, Error::Exhausted(_)), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        err.to_string()
            .starts_with("redis: connection pool exhausted")
    );
    // new_conn obeys it too.
    assert!(matches!(p.new_conn(), Err(Error::Exhausted(_))));
    p.put(a).unwrap();
    let a = p.get().unwrap();
    assert_eq!(p.stats().misses, 3, "the failed get counted its miss");
    p.put(a).unwrap();
    p.put(b).unwrap();
    // Nothing leaked: both turns and more are free.
    let conns: Vec<Conn> = (0..2)
        .map(|_| p.get_with(Wait::NoWait, None).unwrap())
        .collect();
    drop(conns);
}

#[test]
fn new_conn_lives_outside_turns_and_counts_in_len() {
    let (p, _peers) = pool(1);
    let held = p.get().unwrap();
    let extra = p.new_conn().unwrap();
    assert!(!extra.is_pooled());
    assert_eq!(p.len(), 2);
    p.close_conn(extra).unwrap();
    assert_eq!(p.len(), 1);
    // A new_conn conn that is put is closed, never pooled, and frees no turn.
    let extra = p.new_conn().unwrap();
    p.put(extra).unwrap();
    assert_eq!((p.len(), p.idle_len()), (1, 0));
    assert!(matches!(
        p.get_with(Wait::NoWait, None),
        Err(Error::Timeout(_))
    ));
    p.put(held).unwrap();
}

#[test]
fn foreign_conn_is_rejected_and_nothing_changes() {
    let (a, _pa) = pool(2);
    let (b, _pb) = pool(2);
    let c = a.get().unwrap();
    let before = (a.stats(), b.stats());
    let rejected = b.put(c).unwrap_err();
    assert!(matches!(rejected.error, Error::InvalidArg(_)));
    assert_eq!((a.stats(), b.stats()), before);
    let rejected = b.remove(rejected.conn, None).unwrap_err();
    a.put(rejected.conn).unwrap();
    assert_eq!((a.len(), a.idle_len(), b.len()), (1, 1, 0));
}

#[test]
fn slow_dial_wait_is_bounded_and_the_dial_is_not_wasted() {
    let peers = Arc::new(Peers::default());
    peers.delay_ms.store(2000, Ordering::SeqCst);
    let mut o = options(&peers, 2);
    o.pool_timeout = Wait::For(Duration::from_millis(100));
    let p = ConnPool::new(o).unwrap();
    let start = Instant::now();
    let err = p.get().unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(
        err.to_string().contains("waiting for a new connection"),
        "{err}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "bounded by pool_timeout: {took:?}"
    );
    // The abandoned dial lands in the idle list, and the next get uses it.
    eventually("abandoned dial kept", || p.idle_len() == 1);
    peers.delay_ms.store(0, Ordering::SeqCst);
    let c = p.get().unwrap();
    assert_eq!(c.id(), 1);
    assert_eq!(peers.dials(), 1);
    p.put(c).unwrap();
}

#[test]
fn abandoned_dial_goes_to_the_oldest_waiter() {
    let peers = Arc::new(Peers::default());
    peers.delay_ms.store(2000, Ordering::SeqCst);
    let mut o = options(&peers, 1);
    o.pool_timeout = Wait::For(Duration::from_secs(5));
    let p = ConnPool::new(o).unwrap();
    let cancel = CancelToken::new();
    let (p1, c1) = (p.clone(), cancel.clone());
    let first = thread::spawn(move || p1.get_with(Wait::For(Duration::from_secs(5)), Some(&c1)));
    eventually("dialing", || p.stats().dials_in_progress == 1);
    let p2 = p.clone();
    let second = thread::spawn(move || p2.get().map(|c| c.id()));
    eventually("second queued", || p.stats().waiting == 1);
    let start = Instant::now();
    cancel.fire();
    assert!(matches!(first.join().unwrap(), Err(Error::Canceled)));
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "canceled before the dial ended"
    );
    assert_eq!(
        second.join().unwrap().unwrap(),
        1,
        "the dial went to the waiter"
    );
    assert_eq!(peers.dials(), 1);
}

#[test]
fn cancel_wakes_a_waiter_and_leaves_no_turn() {
    let (p, _peers) = pool(1);
    let held = p.get().unwrap();
    let cancel = CancelToken::new();
    let (p2, c2) = (p.clone(), cancel.clone());
    let t = thread::spawn(move || {
        let r = p2.get_with(Wait::Forever, Some(&c2));
        (r.map(|c| c.id()), Instant::now())
    });
    eventually("queued", || p.stats().waiting == 1);
    let fired = Instant::now();
    cancel.fire();
    let (r, woke) = t.join().unwrap();
    assert!(matches!(r, Err(Error::Canceled)), "{r:?}");
    assert!(woke.duration_since(fired) < Duration::from_secs(2));
    assert_eq!(p.stats().waiting, 0);
    // A fired token fails at once.
    assert!(matches!(
        p.get_with(Wait::Forever, Some(&cancel)),
        Err(Error::Canceled)
    ));
    p.put(held).unwrap();
    let c = p.get_with(Wait::NoWait, None).unwrap();
    p.put(c).unwrap();
}

#[test]
fn failing_dials_fail_fast_then_recover_through_the_probe() {
    let peers = Arc::new(Peers::default());
    peers.fail.store(true, Ordering::SeqCst);
    let mut o = options(&peers, 2);
    o.dial_probe_interval = Duration::from_millis(20);
    let p = ConnPool::new(o).unwrap();
    for _ in 0..2 {
        let err = p.get().unwrap_err();
        assert!(matches!(err, Error::Dial { .. }), "{err:?}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
    // Saturated: the next misses fail at once with the last dial error, no new dial.
    let dials = peers.dials();
    let err = p.get().unwrap_err();
    assert!(matches!(err, Error::Dial { .. }));
    let s = p.stats();
    assert!(s.dial_errors >= 2);
    // Only the background probe dials meanwhile.
    eventually("probe is dialing", || peers.dials() > dials);
    peers.fail.store(false, Ordering::SeqCst);
    eventually("probe succeeded", || p.idle_len() == 1);
    let c = p.get().unwrap();
    let c2 = p.get().unwrap();
    p.put(c).unwrap();
    p.put(c2).unwrap();
}

#[test]
fn a_successful_dial_resets_the_failure_count() {
    let peers = Arc::new(Peers::default());
    let p = ConnPool::new(options(&peers, 3)).unwrap();
    peers.fail.store(true, Ordering::SeqCst);
    assert!(p.get().is_err());
    assert!(p.get().is_err());
    peers.fail.store(false, Ordering::SeqCst);
    let c = p.get().unwrap();
    peers.fail.store(true, Ordering::SeqCst);
    assert!(p.get().is_err());
    // Four failures, but not three in a row: no fast-fail, the dial is really tried (and
    // with two in a row no probe runs to disturb the count).
    let dials = peers.dials();
    assert!(p.get().is_err());
    assert_eq!(peers.dials(), dials + 1);
    p.put(c).unwrap();
}

#[test]
fn dial_retries_with_backoff() {
    let peers = Arc::new(Peers::default());
    peers.fail.store(true, Ordering::SeqCst);
    let mut o = options(&peers, 4);
    o.dialer_retries = 3;
    o.dialer_retry_backoff = Duration::from_millis(50);
    let p = ConnPool::new(o).unwrap();
    let start = Instant::now();
    let err = p.get().unwrap_err();
    assert_eq!(peers.dials(), 3);
    assert!(start.elapsed() >= Duration::from_millis(95));
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

#[test]
fn close_wakes_waiters_and_closes_idle_conns() {
    let (p, peers) = pool(1);
    let c = p.get().unwrap();
    let idle_pool_conn = {
        let (q, qp) = pool(1);
        let x = q.get().unwrap();
        q.put(x).unwrap();
        q.close().unwrap();
        qp.end(0)
    };
    assert!(peer_sees_eof(&idle_pool_conn), "close closes idle conns");
    let p2 = p.clone();
    let t = thread::spawn(move || p2.get());
    eventually("queued", || p.stats().waiting == 1);
    p.close().unwrap();
    assert!(matches!(t.join().unwrap(), Err(Error::Closed)));
    assert!(matches!(p.close(), Err(Error::Closed)), "second close");
    assert!(matches!(p.get(), Err(Error::Closed)));
    assert!(matches!(p.try_get(), Err(Error::Closed)));
    // A conn returned after close is closed.
    p.put(c).unwrap();
    assert!(peer_sees_eof(&peers.end(0)));
    assert_eq!(p.len(), 0);
}

#[test]
fn close_while_dials_are_in_flight() {
    let peers = Arc::new(Peers::default());
    peers.delay_ms.store(2000, Ordering::SeqCst);
    let p = ConnPool::new(options(&peers, 4)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p2 = p.clone();
            thread::spawn(move || p2.get())
        })
        .collect();
    eventually("dials in flight", || p.stats().dials_in_progress == 4);
    let start = Instant::now();
    p.close().unwrap();
    for t in threads {
        assert!(matches!(t.join().unwrap(), Err(Error::Closed)));
    }
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "woken at once"
    );
    // The dials finish later and their conns are closed, never pooled.
    eventually("dials done", || p.stats().dials_in_progress == 0);
    assert_eq!(p.len(), 0);
    for i in 0..peers.count() {
        assert!(peer_sees_eof(&peers.end(i)));
    }
}

#[test]
fn try_get_never_waits_or_dials_on_the_caller() {
    let (p, peers) = pool(2);
    // A slow dialer: a miss must not wait for it.
    peers.delay_ms.store(300, Ordering::SeqCst);
    let t = Instant::now();
    assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    // The miss started one dial in the background; its conn lands in the idle list.
    eventually("background dial", || p.idle_len() == 1);
    assert_eq!(peers.dials(), 1);
    assert_eq!(p.stats().misses, 1);
    peers.delay_ms.store(0, Ordering::SeqCst);
    let c = p.try_get().unwrap();
    assert_eq!(p.stats().hits, 1);
    // One checked out, room for one more: the next miss dials one more, never beyond.
    assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
    eventually("second dial", || p.idle_len() == 1);
    let c2 = p.try_get().unwrap();
    assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
    assert_eq!(p.stats().dials_in_progress, 0, "pool_size reached: no dial");
    assert_eq!(peers.dials(), 2);
    p.put(c).unwrap();
    p.put(c2).unwrap();
    assert_eq!(p.len(), 2);
}

#[test]
fn notify_fd_is_level_triggered_and_drained_by_a_miss() {
    // Strict order: a put while a get waits hands the conn to it (with the default overtake
    // window it would go idle, and signal, while the waiter has waited under 1 ms).
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 1);
    o.overtake_window = None;
    let p = ConnPool::new(o).unwrap();
    let fd = p.notify_fd().unwrap();
    assert_eq!(p.notify_fd().unwrap(), fd, "one fd per pool");
    // New fd: readable, so a loop tries at least once.
    assert!(readable(fd));
    assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
    // The miss's background dial brings a conn: readable again.
    eventually("dialed conn signals", || readable(fd));
    let c = p.try_get().unwrap();
    // Still readable (level), until a miss drains it.
    assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
    assert!(!readable(fd), "a miss drains the fd");
    p.put(c).unwrap();
    assert!(readable(fd), "a put signals");
    // A waiter served by the put does not signal: nothing for try_get.
    let c = p.try_get().unwrap();
    assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
    let p2 = p.clone();
    let waiter = std::thread::spawn(move || p2.get_with(Wait::Forever, None));
    eventually("waiter queued", || p.stats().waiting == 1);
    p.put(c).unwrap();
    let c = waiter.join().unwrap().unwrap();
    assert!(!readable(fd), "the conn went to the waiter");
    p.remove(c, None).unwrap();
    assert!(readable(fd), "a freed turn signals");
    assert!(matches!(p.try_get(), Err(Error::WouldBlock)));
    p.close().unwrap();
    assert!(readable(fd), "close signals");
    assert!(matches!(p.try_get(), Err(Error::Closed)));
}

fn readable(fd: std::os::fd::RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}

#[test]
fn leak_detection_lists_conns_held_too_long() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 4);
    o.leak_detection_threshold = Some(Duration::from_millis(100));
    let p = ConnPool::new(o).unwrap();
    let held = p.get().unwrap();
    let quick = p.get().unwrap();
    p.put(quick).unwrap();
    assert_eq!(p.leaks().unwrap(), vec![]);
    assert_eq!(p.stats().leak_suspects, 0);
    eventually("held past the threshold", || p.stats().leak_suspects == 1);
    let other = p.new_conn().unwrap();
    let list = p.leaks().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0, held.id());
    assert!(list[0].1 > Duration::from_millis(100));
    eventually("new_conn conn too", || p.leaks().unwrap().len() == 2);
    let list = p.leaks().unwrap();
    assert_eq!(list[0].0, held.id(), "longest held first");
    assert_eq!(list[1].0, other.id());
    assert_eq!(p.stats().late_returns, 0);
    p.put(held).unwrap();
    p.close_conn(other).unwrap();
    let s = p.stats();
    assert_eq!((s.leak_suspects, s.late_returns), (0, 2));
    assert_eq!(p.leaks().unwrap(), vec![]);
    // Off by default.
    let (q, _peers) = pool(1);
    assert_eq!(q.leaks(), None);
}

#[test]
fn reaper_closes_idle_conns_without_any_get() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 4);
    o.conn_max_idle_time = Some(Duration::from_millis(100));
    o.reaper_interval = Some(Duration::from_millis(20));
    o.min_idle_conns = 1;
    let p = ConnPool::new(o).unwrap();
    eventually("prewarmed", || p.idle_len() == 1);
    let conns: Vec<Conn> = (0..3).map(|_| p.get().unwrap()).collect();
    for c in conns {
        p.put(c).unwrap();
    }
    assert!(p.idle_len() >= 3);
    // All of them go idle-stale; the reaper closes them and refills min_idle_conns.
    eventually("reaped", || p.stats().stale_conns >= 3);
    eventually("min idle kept", || p.idle_len() >= 1 && p.len() <= 2);
    p.close().unwrap();
}

/// go-redis "race" test: get/put/remove from 20 threads; afterwards nothing leaked.
#[test]
fn get_put_remove_race_from_20_threads() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 8);
    o.min_idle_conns = 2;
    o.pool_timeout = Wait::For(Duration::from_secs(30));
    let p = ConnPool::new(o).unwrap();
    let barrier = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let (p, barrier) = (p.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for i in 0..300 {
                    let c = p.get().unwrap();
                    if (i + t) % 7 == 0 {
                        p.remove(c, Some("race")).unwrap();
                    } else {
                        p.put(c).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    eventually("quiet", || p.stats().dials_in_progress == 0);
    let s = p.stats();
    assert_eq!(s.total_conns, s.idle_conns, "nothing checked out");
    assert!(s.total_conns <= 8);
    assert_eq!(s.pending_requests, 0);
    assert_eq!(s.hits + s.misses, 6000);
    // No turn leaked: pool_size conns at once. (Refill dials for min_idle_conns hold turns
    // while they run, as in go-redis, so a get may wait for one of them to finish.)
    let all: Vec<Conn> = (0..8)
        .map(|_| p.get_with(Wait::For(Duration::from_secs(5)), None).unwrap())
        .collect();
    let mut ids: Vec<u64> = all.iter().map(|c| c.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "no conn handed out twice");
    assert!(matches!(
        p.get_with(Wait::NoWait, None),
        Err(Error::Timeout(_))
    ));
    drop(all);
}

#[test]
fn invalid_options_name_the_field() {
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 2);
    o.min_idle_conns = 3;
    let err = ConnPool::new(o).err().unwrap();
    assert!(err.to_string().contains("min_idle_conns"), "{err}");
    let mut o = options(&peers, 0);
    o.pool_size = 0;
    assert!(
        ConnPool::new(o)
            .err()
            .unwrap()
            .to_string()
            .contains("pool_size")
    );
    assert!(Dialer::from_addr("nohostport").is_err());
    assert!(Dialer::from_addr("::1:6379").is_err());
    assert!(Dialer::from_addr("[::1]:6379").is_ok());
    assert!(Dialer::from_addr("unix:relative").is_err());
    assert!(Dialer::from_addr("/tmp/redis.sock").is_ok());
}

/// RESP3 pushes (client tracking invalidations, pub/sub messages) may arrive at any time,
/// also just before or right behind a command's reply: they are never taken for its reply
/// and do not put the conn out of step. The subscribe family's replies are pushes, and
/// are returned. A reply nobody asked for still marks the conn bad.
#[test]
fn resp3_pushes_around_a_reply_are_not_its_reply() {
    use redispool::redis::resp::Reply;
    use std::io::Read;

    const INVALIDATE: &[u8] = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";
    // Pushes exist in RESP3 only (on a RESP2 conn one is a protocol error): the peer
    // answers the HELLO 3 of the set-up first.
    let peers = Arc::new(Peers::default());
    let mut o = options(&peers, 1);
    o.session.protocol = 3;
    let pool = ConnPool::new(o).unwrap();
    let hello = {
        let peers = peers.clone();
        thread::spawn(move || {
            eventually("the pool dials", || peers.count() == 1);
            let mut end = peers.end(0);
            let mut buf = [0u8; 256];
            assert!(
                end.read(&mut buf).unwrap() > 0,
                "the HELLO reached the peer"
            );
            end.write_all(b"%1\r\n$5\r\nproto\r\n:3\r\n").unwrap();
        })
    };
    let mut conn = pool.get().unwrap();
    hello.join().unwrap();
    let end = peers.end(0);

    // The peer answers each command with `parts`, one write each, 20 ms apart (so the
    // reply usually comes in a read of its own after the push).
    let answer = |parts: Vec<Vec<u8>>| {
        let mut end = end.try_clone().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 256];
            let n = end.read(&mut buf).unwrap();
            assert!(n > 0, "the command reached the peer");
            for p in parts {
                end.write_all(&p).unwrap();
                thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // A push already waiting when a new conn sends its first command, or a conn whose fd
    // was lent out sends one (both look for bytes nobody asked for first): a push is no
    // such reply, the command runs.
    for lend in [false, true] {
        if lend {
            let _fd = conn.lend_fd();
        }
        (&end).write_all(INVALIDATE).unwrap();
        let t = answer(vec![b"+PONG\r\n".to_vec()]);
        assert_eq!(
            conn.command(&[b"PING"]).unwrap(),
            Reply::Status(b"PONG".to_vec()),
            "a push waiting before the command (fd lent: {lend})"
        );
        t.join().unwrap();
        assert_eq!(conn.broken_reason(), None);
    }

    let t = answer(vec![
        INVALIDATE.to_vec(),
        INVALIDATE.to_vec(),
        b"+PONG\r\n".to_vec(),
    ]);
    assert_eq!(
        conn.command(&[b"PING"]).unwrap(),
        Reply::Status(b"PONG".to_vec()),
        "two pushes before the reply are skipped"
    );
    t.join().unwrap();
    assert_eq!(conn.broken_reason(), None);

    let mut same_write = b"$1\r\nv\r\n".to_vec();
    same_write.extend_from_slice(INVALIDATE);
    let t = answer(vec![same_write]);
    assert_eq!(
        conn.command(&[b"GET", b"k"]).unwrap(),
        Reply::String(b"v".to_vec()),
        "a push in the same read right behind the reply"
    );
    t.join().unwrap();
    assert_eq!(
        conn.broken_reason(),
        None,
        "the push behind it is skipped too"
    );

    let t = answer(vec![b"$2\r\nhi\r\n".to_vec()]);
    assert_eq!(
        conn.command(&[b"ECHO", b"hi"]).unwrap(),
        Reply::String(b"hi".to_vec()),
        "the next command reads its own reply: nothing shifted"
    );
    t.join().unwrap();

    let subscribed = b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n".to_vec();
    let t = answer(vec![subscribed]);
    match conn.command(&[b"subscribe", b"ch"]).unwrap() {
        Reply::Push(items) => assert_eq!(items.len(), 3, "{items:?}"),
        other => panic!("SUBSCRIBE's reply is its push, got {other:?}"),
    }
    t.join().unwrap();
    assert_eq!(conn.broken_reason(), None);

    let t = answer(vec![b"+PONG\r\n+EXTRA\r\n".to_vec()]);
    assert_eq!(
        conn.command(&[b"PING"]).unwrap(),
        Reply::Status(b"PONG".to_vec())
    );
    t.join().unwrap();
    assert_eq!(
        conn.broken_reason(),
        Some("unexpected bytes after a reply"),
        "a second reply nobody asked for puts the conn out of step"
    );
    pool.remove(conn, None).unwrap();
}
