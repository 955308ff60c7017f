//! Clean hand-back (issue 20): a conn whose commands changed the session the pool set up
//! (subscribe mode, MULTI, WATCH, SELECT of another db) is pooled when given back and
//! restored (RESET, then the pool's set-up) by the get that takes it, counted in
//! `reset_conns`: the next user gets the same conn in a clean session, with no new dial. A
//! conn used for plain commands (or whose transaction / SELECT was undone) is pooled as
//! before, with nothing counted. CLIENT REPLY SKIP (no reply: its command times out) leaves
//! the conn broken, which is closed. `restore_costs_less_than_a_new_dial` measures the two.

mod common;

use std::time::Duration;

use common::RedisServer;
use redispool::pool::{Conn, ConnPool, Dialer, Options, Pooler, StickyConnPool, Wait};
use redispool::redis::resp::Reply;

fn pool(server: &RedisServer, protocol: u8) -> ConnPool {
    let mut o = Options::new(Dialer::from_addr(&server.addr()).unwrap());
    o.pool_size = 1;
    o.pool_timeout = Wait::For(Duration::from_secs(5));
    // CLIENT REPLY SKIP has no reply: its command ends at the read timeout.
    o.read_timeout = Some(Duration::from_millis(300));
    o.session.protocol = protocol;
    ConnPool::new(o).unwrap()
}

fn cmd(c: &mut Conn, args: &[&str]) -> Result<Reply, redispool::pool::Error> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.command(&a)
}

fn text(r: &Reply) -> String {
    match r {
        Reply::Status(b) | Reply::String(b) | Reply::Error(b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        Reply::Verb { text, .. } => String::from_utf8_lossy(text).into_owned(),
        other => format!("{other:?}"),
    }
}

/// The next user's view: PING answers PONG (not a message, not QUEUED), the session is
/// on db 0, replies are on, and no transaction or WATCH is pending.
fn assert_clean(c: &mut Conn, server: &RedisServer) {
    let pong = cmd(c, &["PING"]).unwrap();
    assert_eq!(
        text(&pong),
        "PONG",
        "PING on the next user's conn: {pong:?}"
    );
    let info = text(&cmd(c, &["CLIENT", "INFO"]).unwrap());
    assert!(info.contains(" db=0 "), "CLIENT INFO: {info}");
    assert!(info.contains(" multi=-1 "), "CLIENT INFO: {info}");
    assert!(info.contains(" sub=0 "), "CLIENT INFO: {info}");
    // A key WATCHed by the previous user and changed since would abort this transaction.
    server.command(&[], &["SET", "handback:watched", "changed"]);
    assert_eq!(text(&cmd(c, &["MULTI"]).unwrap()), "OK");
    assert_eq!(text(&cmd(c, &["INCR", "handback:n"]).unwrap()), "QUEUED");
    let exec = cmd(c, &["EXEC"]).unwrap();
    assert!(matches!(exec, Reply::Array(_)), "EXEC: {exec:?}");
}

/// get, run `steps`, put, get again: the same conn, restored (counted once), no new dial.
fn check_reset(protocol: u8, steps: &[&[&str]]) {
    let server = RedisServer::start();
    let p = pool(&server, protocol);
    let mut c = p.get().unwrap();
    let first = c.id();
    for args in steps {
        let _ = cmd(&mut c, args);
    }
    assert!(c.session_changed(), "{steps:?}");
    p.put(c).unwrap();
    // Messages published to it meanwhile are drained by the restore, never handed on.
    server.command(&[], &["PUBLISH", "handback:ch", "m"]);
    let mut c = p.get().unwrap();
    assert_eq!(
        c.id(),
        first,
        "{steps:?}: the conn was not restored but replaced"
    );
    assert!(!c.session_changed(), "{steps:?}");
    assert_clean(&mut c, &server);
    p.put(c).unwrap();
    let s = p.stats();
    assert_eq!(s.reset_conns, 1, "{steps:?}: {s:?}");
    assert_eq!(s.dials, 1, "{steps:?}: {s:?}");
    assert_eq!(s.stale_conns, 0, "{steps:?}: {s:?}");
}

/// A CLIENT REPLY SKIP times out (no reply): the conn is broken, and closed on put.
fn check_closed(protocol: u8, steps: &[&[&str]]) {
    let server = RedisServer::start();
    let p = pool(&server, protocol);
    let mut c = p.get().unwrap();
    let first = c.id();
    for args in steps {
        let _ = cmd(&mut c, args);
    }
    p.put(c).unwrap();
    let mut c = p.get().unwrap();
    assert_ne!(
        c.id(),
        first,
        "{steps:?}: the broken conn was handed out again"
    );
    assert_clean(&mut c, &server);
    p.put(c).unwrap();
    assert_eq!(p.stats().dials, 2);
}

/// get, run `steps`, put, get again: the same conn, no new dial, nothing counted.
fn check_pooled(protocol: u8, steps: &[&[&str]]) {
    let server = RedisServer::start();
    let p = pool(&server, protocol);
    let mut c = p.get().unwrap();
    let first = c.id();
    for args in steps {
        let r = cmd(&mut c, args).unwrap();
        assert!(!matches!(r, Reply::Error(_)), "{args:?}: {r:?}");
    }
    p.put(c).unwrap();
    let mut c = p.get().unwrap();
    assert_eq!(c.id(), first, "{steps:?}: a clean conn was not pooled");
    assert_clean(&mut c, &server);
    p.put(c).unwrap();
    let s = p.stats();
    assert_eq!(s.reset_conns, 0, "{steps:?}: {s:?}");
    assert_eq!(s.dials, 1, "{steps:?}: {s:?}");
}

#[test]
fn subscribe_mode_is_restored_before_it_is_handed_back() {
    for protocol in [2, 3] {
        check_reset(protocol, &[&["SUBSCRIBE", "handback:ch"]]);
        check_reset(protocol, &[&["psubscribe", "handback:*"]]);
    }
}

#[test]
fn open_transaction_is_restored_before_it_is_handed_back() {
    check_reset(2, &[&["MULTI"], &["SET", "handback:k", "v"]]);
    check_reset(3, &[&["multi"]]);
}

#[test]
fn watched_keys_are_restored_before_they_are_handed_back() {
    check_reset(2, &[&["WATCH", "handback:watched"]]);
}

#[test]
fn another_db_is_restored_before_it_is_handed_back() {
    check_reset(2, &[&["SELECT", "3"]]);
}

/// Client tracking left on would send the next user invalidations it never asked for.
#[test]
fn client_tracking_is_restored_before_it_is_handed_back() {
    check_reset(3, &[&["CLIENT", "TRACKING", "ON"], &["GET", "handback:k"]]);
    check_reset(2, &[&["CLIENT", "TRACKING", "ON", "BCAST"]]);
}

#[test]
fn client_reply_skip_is_not_handed_back() {
    check_closed(2, &[&["CLIENT", "REPLY", "SKIP"]]);
}

#[test]
fn plain_and_undone_conns_are_pooled() {
    check_pooled(2, &[&["SET", "handback:k", "v"], &["GET", "handback:k"]]);
    check_pooled(3, &[&["PING"], &["HSET", "handback:h", "f", "1"]]);
    check_pooled(2, &[&["MULTI"], &["INCR", "handback:n"], &["EXEC"]]);
    check_pooled(2, &[&["WATCH", "handback:w"], &["UNWATCH"]]);
    check_pooled(2, &[&["MULTI"], &["DISCARD"]]);
    check_pooled(2, &[&["SELECT", "3"], &["SELECT", "0"]]);
}

#[test]
fn sticky_pool_closes_a_changed_conn() {
    let server = RedisServer::start();
    let p = std::sync::Arc::new(pool(&server, 2));
    let sticky = StickyConnPool::new(p.clone());
    let wait = Wait::For(Duration::from_secs(5));
    let mut c = sticky.get_with(wait, None).unwrap();
    let first = c.id();
    cmd(&mut c, &["MULTI"]).unwrap();
    sticky.put(c).unwrap();
    // As for a broken conn (go-redis's sticky pool): the sticky pool fails and says why,
    // and its close hands the conn to the parent's remove.
    let err = sticky.get_with(wait, None).unwrap_err();
    assert!(err.to_string().contains("changed the session"), "{err}");
    sticky.close().unwrap();
    assert_eq!(p.stats().reset_conns, 1);
    let mut c = p.get().unwrap();
    assert_ne!(c.id(), first, "the parent handed out the conn inside MULTI");
    assert_clean(&mut c, &server);
    p.put(c).unwrap();
}

/// Commands sent in a pipeline are tracked as `command` tracks them: a pipeline that
/// leaves a MULTI open is restored before it is handed back; MULTI ... EXEC in one
/// pipeline is handed back as it is.
#[test]
fn pipelined_session_changes_are_tracked() {
    let server = RedisServer::start();
    let p = pool(&server, 2);
    for (cmds, dirty) in [
        (&[&["MULTI"][..], &["SET", "handback:p", "1"]][..], true),
        (
            &[&["MULTI"][..], &["SET", "handback:p", "1"], &["EXEC"]][..],
            false,
        ),
    ] {
        let mut c = p.get().unwrap();
        let first = c.id();
        let args: Vec<Vec<&[u8]>> = cmds
            .iter()
            .map(|a| a.iter().map(|s| s.as_bytes()).collect())
            .collect();
        let refs: Vec<&[&[u8]]> = args.iter().map(Vec::as_slice).collect();
        let mut replies = 0;
        c.pipeline(&refs, None, &mut |_| replies += 1).unwrap();
        assert_eq!(replies, cmds.len());
        p.put(c).unwrap();
        let mut c = p.get().unwrap();
        assert_eq!(c.id(), first, "{cmds:?}");
        assert_clean(&mut c, &server);
        p.put(c).unwrap();
        assert_eq!(p.stats().reset_conns, 1, "{cmds:?} (dirty: {dirty})");
    }
    assert_eq!(p.stats().dials, 1);
}

/// A pool with a set-up (db 2, a client name, RESP3): the restore runs it again, so the
/// next user is in db 2 under that name, not in RESET's db 0.
#[test]
fn restore_runs_the_pools_set_up_again() {
    let server = RedisServer::start();
    let mut o = Options::new(Dialer::from_addr(&server.addr()).unwrap());
    o.pool_size = 1;
    o.session.protocol = 3;
    o.session.db = 2;
    o.session.client_name = Some("handback-restored".into());
    let p = ConnPool::new(o).unwrap();
    let mut c = p.get().unwrap();
    cmd(&mut c, &["SELECT", "5"]).unwrap();
    cmd(&mut c, &["SUBSCRIBE", "handback:ch"]).unwrap();
    p.put(c).unwrap();
    server.command(&[], &["PUBLISH", "handback:ch", "m"]);
    let mut c = p.get().unwrap();
    let info = text(&cmd(&mut c, &["CLIENT", "INFO"]).unwrap());
    assert!(info.contains(" db=2 "), "{info}");
    assert!(info.contains(" name=handback-restored "), "{info}");
    assert!(info.contains(" resp=3"), "{info}");
    assert!(info.contains(" sub=0 "), "{info}");
    assert!(matches!(cmd(&mut c, &["HELLO"]).unwrap(), Reply::Map(_)));
    p.put(c).unwrap();
    assert_eq!(p.stats().reset_conns, 1);
}

/// The choice between restoring a changed conn and closing it (a new dial for the next
/// get): both timed here, in the same run, against the same server (printed, not
/// asserted: timings are never asserted). `get` + `SELECT 3` + `put` in a loop, with the
/// restore (pool as it is) and with `remove` instead of `put` (what closing costs).
#[test]
fn restore_costs_less_than_a_new_dial() {
    let server = RedisServer::start();
    let p = pool(&server, 2);
    const N: u32 = 300;
    let time = |remove: bool| {
        let start = std::time::Instant::now();
        for _ in 0..N {
            let mut c = p.get().unwrap();
            cmd(&mut c, &["SELECT", "3"]).unwrap();
            if remove {
                p.remove(c, None).unwrap();
            } else {
                p.put(c).unwrap();
            }
        }
        start.elapsed() / N
    };
    let restore = time(false);
    let dial = time(true);
    let s = p.stats();
    eprintln!("get + SELECT 3 + hand-back: restore {restore:?}/cycle, close + dial {dial:?}/cycle");
    // N - 1 restores, then one more for the first remove loop get, then N removed changed.
    assert_eq!(s.reset_conns, 2 * u64::from(N), "{s:?}");
    assert_eq!(s.dials, u64::from(N), "{s:?}");
}

/// pool_try_get never waits for a reply: a changed conn it meets is closed (counted in
/// reset_conns and stale_conns), not restored, and the next get dials.
#[test]
fn try_get_closes_a_changed_conn_instead_of_waiting() {
    let server = RedisServer::start();
    let p = pool(&server, 2);
    let mut c = p.get().unwrap();
    let first = c.id();
    cmd(&mut c, &["SELECT", "3"]).unwrap();
    p.put(c).unwrap();
    assert!(matches!(
        p.try_get(),
        Err(redispool::pool::Error::WouldBlock)
    ));
    let s = p.stats();
    assert_eq!((s.reset_conns, s.stale_conns), (1, 1), "{s:?}");
    let mut c = p.get().unwrap();
    assert_ne!(c.id(), first);
    assert_clean(&mut c, &server);
    p.put(c).unwrap();
}
