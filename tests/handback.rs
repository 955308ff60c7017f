//! Clean hand-back (issue 20): a conn whose commands changed the session the pool set up
//! (subscribe mode, MULTI, WATCH, SELECT of another db, CLIENT REPLY SKIP) is closed when
//! given back, counted in `reset_conns`, and the next user gets a fresh, clean session; a
//! conn used for plain commands (or whose transaction / SELECT was undone) is pooled as
//! before, with no new dial.

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

/// get, run `steps`, put, get again: the conn was closed and replaced, counted once.
fn check_reset(protocol: u8, steps: &[&[&str]]) {
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
        "{steps:?}: the same conn was handed out again"
    );
    assert_clean(&mut c, &server);
    p.put(c).unwrap();
    let s = p.stats();
    assert_eq!(s.reset_conns, 1, "{steps:?}: {s:?}");
    assert_eq!(s.dials, 2, "{steps:?}: {s:?}");
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
fn subscribe_mode_is_not_handed_back() {
    for protocol in [2, 3] {
        check_reset(protocol, &[&["SUBSCRIBE", "handback:ch"]]);
        check_reset(protocol, &[&["psubscribe", "handback:*"]]);
    }
}

#[test]
fn open_transaction_is_not_handed_back() {
    check_reset(2, &[&["MULTI"], &["SET", "handback:k", "v"]]);
    check_reset(3, &[&["multi"]]);
}

#[test]
fn watched_keys_are_not_handed_back() {
    check_reset(2, &[&["WATCH", "handback:watched"]]);
}

#[test]
fn another_db_is_not_handed_back() {
    check_reset(2, &[&["SELECT", "3"]]);
}

#[test]
fn client_reply_skip_is_not_handed_back() {
    check_reset(2, &[&["CLIENT", "REPLY", "SKIP"]]);
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
/// leaves a MULTI open is not handed back; MULTI ... EXEC in one pipeline is.
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
        assert_eq!(c.id() != first, dirty, "{cmds:?}");
        assert_clean(&mut c, &server);
        p.put(c).unwrap();
    }
    assert_eq!(p.stats().reset_conns, 1);
}
