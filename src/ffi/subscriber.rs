//! `pool_subscriber_t`: Pub/Sub on conns of its own (see `crate::pubsub`).

use std::ffi::{CStr, c_char, c_int};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::castable::{msg_from_raw, msg_into_raw, sub_from_raw, sub_into_raw, sub_ref};
use super::cluster::cluster_or_fail;
use super::error::{fail, internal, invalid, pool_error_t, start_constructor, write_error};
use super::handles::{ClusterObj, PoolKind, PoolObj, pool_cluster_t, pool_t};
use super::panic::ffi_boundary;
use super::pool::Held;
use super::reply::{free_tree, into_c, pool_reply_t};
use super::status::*;
use crate::cluster::NodePool;
use crate::pool::{Conn, Error, Pooler};
use crate::pubsub::{Family, Message, PingState, Source, Subscriber};

/// A subscriber: SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE on conns of its own, and the messages
/// they bring. Opaque. Used by one thread at a time (it may move between threads), except
/// pool_subscriber_fd and pool_subscriber_resubscribes, which any thread may call.
pub struct pool_subscriber {
    _opaque: [u8; 0],
}

/// See `struct pool_subscriber`.
pub type pool_subscriber_t = pool_subscriber;

/// What a `pool_subscriber_t *` points to.
pub(crate) struct SubObj {
    inner: Mutex<Subscriber>,
    fd: c_int,
    resubscribes: std::sync::atomic::AtomicU64,
}

/// A message published to a channel subscribed to: `channel`, `payload`.
pub const POOL_MSG_MESSAGE: i32 = 1;
/// A message published to a channel matching a pattern: `pattern`, `channel`, `payload`.
pub const POOL_MSG_PMESSAGE: i32 = 2;
/// A message published to a shard channel (SPUBLISH): `channel`, `payload`.
pub const POOL_MSG_SMESSAGE: i32 = 3;
/// SUBSCRIBE confirmed for `channel`; `count` = subscriptions on that conn.
pub const POOL_MSG_SUBSCRIBE: i32 = 4;
/// PSUBSCRIBE confirmed for the pattern in `channel`; `count` as above.
pub const POOL_MSG_PSUBSCRIBE: i32 = 5;
/// SSUBSCRIBE confirmed for `channel`; `count` as above.
pub const POOL_MSG_SSUBSCRIBE: i32 = 6;
/// UNSUBSCRIBE confirmed for `channel` (NULL when there was none); `count` = left.
pub const POOL_MSG_UNSUBSCRIBE: i32 = 7;
/// PUNSUBSCRIBE confirmed; as above.
pub const POOL_MSG_PUNSUBSCRIBE: i32 = 8;
/// SUNSUBSCRIBE confirmed (also sent by the server when a shard channel's slot moves).
pub const POOL_MSG_SUNSUBSCRIBE: i32 = 9;
/// The answer to a PING you sent yourself: `payload`.
pub const POOL_MSG_PONG: i32 = 10;
/// The subscriber's conn was lost (the server closed it, restarted, or a ping failed) and a
/// new conn now carries every subscription: messages published in between were missed.
/// `count` = resubscriptions so far (pool_subscriber_resubscribes), `payload` = why the
/// old conn was lost. Comes before the new conn's subscribe confirmations.
pub const POOL_MSG_RESUBSCRIBED: i32 = 11;
/// Any other push the server sent (e.g. a RESP3 client tracking "invalidate"): the whole
/// frame in `reply`.
pub const POOL_MSG_PUSH: i32 = 12;
/// An error reply in the stream (a refused SUBSCRIBE, ...): the text in `payload`. Not a
/// MOVED for an SSUBSCRIBE: that one is followed (see pool_cluster_subscriber_new).
pub const POOL_MSG_ERROR: i32 = 13;

/// One message or event from pool_subscriber_receive. Owned by the caller: release with
/// pool_message_free. The strings are binary safe (use the lengths) and NUL-terminated
/// too; a field that does not apply to `kind` is NULL with length 0.
#[repr(C)]
pub struct pool_message {
    /// POOL_MSG_*.
    pub kind: i32,
    pub channel: *const c_char,
    pub channel_len: usize,
    /// PMESSAGE: the pattern that matched.
    pub pattern: *const c_char,
    pub pattern_len: usize,
    pub payload: *const c_char,
    pub payload_len: usize,
    /// Subscribe kinds: subscriptions left on that conn; RESUBSCRIBED: resubscriptions so
    /// far; else 0.
    pub count: i64,
    /// PUSH: the whole frame (owned by the message); else NULL.
    pub reply: *const pool_reply_t,
}

/// See `struct pool_message`.
pub type pool_message_t = pool_message;

/// The allocation behind a `pool_message_t *` (`c` first: the pointer is to it).
#[repr(C)]
pub(crate) struct MessageBox {
    c: pool_message,
    /// The channel, pattern and payload, each followed by a NUL: one allocation.
    text: Vec<u8>,
    reply: *mut pool_reply_t,
}

impl Drop for MessageBox {
    fn drop(&mut self) {
        if !self.reply.is_null() {
            // SAFETY: a root reply built by `into_c` for this message, freed once here.
            unsafe { free_tree(self.reply) };
        }
    }
}

fn message_box(m: Message) -> Option<Box<MessageBox>> {
    let reply = match m.reply {
        Some(r) => into_c(r)?,
        None => std::ptr::null_mut(),
    };
    let parts = [m.channel, m.pattern, m.payload];
    let size: usize = parts.iter().flatten().map(|p| p.len() + 1).sum();
    let mut text = Vec::new();
    if text.try_reserve_exact(size).is_err() {
        // SAFETY: built by `into_c` just above, owned here.
        unsafe { free_tree(reply) };
        return None;
    }
    let mut spans = [None; 3];
    for (span, part) in spans.iter_mut().zip(&parts) {
        if let Some(p) = part {
            *span = Some((text.len(), p.len()));
            text.extend_from_slice(p);
            text.push(0);
        }
    }
    // `text` is complete: its buffer does not move any more (moving the Vec keeps it).
    let at = |span: Option<(usize, usize)>| match span {
        Some((off, len)) => (text[off..].as_ptr().cast::<c_char>(), len),
        None => (std::ptr::null(), 0),
    };
    let (channel, channel_len) = at(spans[0]);
    let (pattern, pattern_len) = at(spans[1]);
    let (payload, payload_len) = at(spans[2]);
    Some(Box::new(MessageBox {
        c: pool_message {
            kind: m.kind as i32,
            channel,
            channel_len,
            pattern,
            pattern_len,
            payload,
            payload_len,
            count: m.count,
            reply,
        },
        text,
        reply,
    }))
}

/// A pool as a subscriber's source of conns.
struct PoolSource(Arc<PoolObj>);

impl Source for PoolSource {
    fn node_of(&self, _slot: u16) -> crate::pool::Result<String> {
        Ok(String::new())
    }
    fn open(&self, _node: &str) -> crate::pool::Result<Conn> {
        self.0.new_conn()
    }
    fn close(&self, _node: &str, conn: Conn) {
        let _ = self.0.close_conn(conn);
    }
    fn is_closed(&self) -> bool {
        match self.0.kind() {
            PoolKind::Conn(p) => p.is_closed(),
            PoolKind::Node(n) => n.pool.is_closed(),
            // Their new_conn says so (a closed sticky pool refuses it).
            PoolKind::Single(_) | PoolKind::Sticky(_) => false,
        }
    }
}

/// A cluster as a subscriber's source: shard channels go to the master of their slot,
/// the main link (SUBSCRIBE, PSUBSCRIBE) to the master of slot 0.
struct ClusterSource {
    cluster: Arc<ClusterObj>,
    /// The node of the main link's conn.
    main: Mutex<String>,
}

impl ClusterSource {
    fn addr(&self, node: &str) -> String {
        if node.is_empty() {
            self.main.lock().clone()
        } else {
            node.to_string()
        }
    }
}

impl Source for ClusterSource {
    fn node_of(&self, slot: u16) -> crate::pool::Result<String> {
        self.cluster.slot_master(slot, None)
    }
    fn open(&self, node: &str) -> crate::pool::Result<Conn> {
        let addr = if node.is_empty() {
            let a = self.cluster.slot_master(0, None)?;
            *self.main.lock() = a.clone();
            a
        } else {
            node.to_string()
        };
        self.cluster.node(&addr)?.conn_pool().new_conn()
    }
    fn close(&self, node: &str, conn: Conn) {
        match self.cluster.existing_node(&self.addr(node)) {
            Some(n) => {
                let _ = n.conn_pool().close_conn(conn);
            }
            None => drop(conn),
        }
    }
    fn is_closed(&self) -> bool {
        self.cluster.is_closed()
    }
    fn topology_changed(&self) {
        self.cluster.refresh_soon();
    }
    fn refresh_topology(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let _ = self.cluster.refresh_now(Some(deadline));
    }
    fn sharded(&self) -> bool {
        true
    }
}

fn hand_out(
    made: crate::pool::Result<Subscriber>,
    sub_out: *mut *mut pool_subscriber_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    match made {
        Ok(s) => {
            let fd = s.fd();
            let obj = SubObj {
                inner: Mutex::new(s),
                fd,
                resubscribes: 0.into(),
            };
            // SAFETY: `sub_out` was checked writable by start_constructor.
            unsafe { *sub_out = sub_into_raw(Box::new(obj)) };
            POOL_OK
        }
        Err(e) => fail(err_out, &e),
    }
}

/// A subscriber on `pool`: its conn is its own, dialed now with the pool's dialer and
/// session set-up (AUTH, HELLO, SELECT, CLIENT SETNAME), as pool_new_conn does (outside the
/// pool's turns, as go-redis's PubSub; it counts in pool_len and obeys max_active_conns),
/// and closed by pool_subscriber_free or when lost. Nothing is subscribed yet.
/// POOL_ERR_DIAL (or another pool_new_conn status) when the conn cannot be made;
/// POOL_ERR_CLOSED for a closed pool. Release with pool_subscriber_free. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_new(
    pool: *mut pool_t,
    sub_out: *mut *mut pool_subscriber_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_subscriber_new"), {
        // SAFETY: `sub_out` is NULL or writable per the header.
        if let Err(code) =
            unsafe { start_constructor(sub_out, "sub_out", pool.is_null(), "pool", err_out) }
        {
            return code;
        }
        let Some(held) = Held::new(pool) else {
            return invalid(err_out, "pool: not a live pool handle");
        };
        let source = PoolSource(held.into_owner());
        hand_out(Subscriber::new(Box::new(source)), sub_out, err_out)
    })
}

/// A subscriber on a cluster: pool_subscriber_ssubscribe sends each shard channel to the
/// master of its slot (one conn per node, made as needed), SUBSCRIBE and PSUBSCRIBE go to
/// the master of slot 0 (a cluster delivers PUBLISH to every node). A conn that is lost
/// makes the slot map refresh and its channels go where their slots are now (a
/// POOL_MSG_RESUBSCRIBED event says so); so does a slot migration, after which the old
/// master unsubscribes the slot's shard channels (the POOL_MSG_SUNSUBSCRIBE is delivered,
/// then POOL_MSG_RESUBSCRIBED, then the new master's POOL_MSG_SSUBSCRIBE). An SSUBSCRIBE
/// answered MOVED (a stale slot map) is followed: the slot map is refreshed and the
/// channel subscribed where MOVED points, with no POOL_MSG_ERROR delivered and the conn
/// and its other channels left alone (its POOL_MSG_SSUBSCRIBE then comes from the new
/// master). Otherwise as pool_subscriber_new. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_cluster_subscriber_new(
    cluster: *mut pool_cluster_t,
    sub_out: *mut *mut pool_subscriber_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_cluster_subscriber_new"), {
        // SAFETY: `sub_out` is NULL or writable per the header.
        if let Err(code) =
            unsafe { start_constructor(sub_out, "sub_out", cluster.is_null(), "cluster", err_out) }
        {
            return code;
        }
        let cluster = match cluster_or_fail(cluster, err_out) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let source = ClusterSource {
            cluster,
            main: Mutex::new(String::new()),
        };
        hand_out(Subscriber::new(Box::new(source)), sub_out, err_out)
    })
}

/// The names passed to a (un)subscribe call.
///
/// # Safety
/// As the header says for `names` and `lens`.
unsafe fn names<'a>(
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
) -> Result<Vec<&'a [u8]>, String> {
    if count > 1 << 24 {
        return Err(format!("count: {count} (at most 16777216)"));
    }
    if count > 0 && names.is_null() {
        return Err("names: NULL".into());
    }
    let mut v = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: `names` has `count` entries per the header.
        let p = unsafe { *names.add(i) };
        if p.is_null() {
            return Err(format!("names[{i}]: NULL"));
        }
        v.push(if lens.is_null() {
            // SAFETY: NUL-terminated without `lens`, per the header.
            unsafe { CStr::from_ptr(p) }.to_bytes()
        } else {
            // SAFETY: `lens` has `count` entries, names[i] readable for lens[i] bytes.
            unsafe { std::slice::from_raw_parts(p.cast::<u8>(), *lens.add(i)) }
        });
    }
    Ok(v)
}

/// The body of the six (un)subscribe functions.
#[allow(clippy::too_many_arguments)]
unsafe fn change(
    what: &'static str,
    sub: *mut pool_subscriber_t,
    subscribe: bool,
    family: Family,
    count: usize,
    list: *const *const c_char,
    lens: *const usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, what), {
        // SAFETY: `sub` is NULL or live per the header.
        let Some(obj) = (unsafe { sub_ref(sub) }) else {
            return invalid(err_out, "sub: NULL");
        };
        // SAFETY: per the header.
        let list = match unsafe { names(count, list, lens) } {
            Ok(l) => l,
            Err(m) => return invalid(err_out, &m),
        };
        if subscribe && list.is_empty() {
            return invalid(err_out, "count: 0 (name at least one channel or pattern)");
        }
        let mut s = obj.inner.lock();
        let res = if subscribe {
            s.subscribe(family, &list)
        } else {
            s.unsubscribe(family, &list)
        };
        obj.note(&s);
        match res {
            Ok(()) => POOL_OK,
            Err(e) => fail(err_out, &e),
        }
    })
}

impl SubObj {
    fn note(&self, s: &Subscriber) {
        self.resubscribes
            .store(s.resubscribes(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// SUBSCRIBE to `count` (at least 1) channels: `names[i]` of `lens[i]` bytes, or
/// NUL-terminated strings when `lens` is NULL. Sends the command and returns (bounded by
/// the pool's write_timeout_ms); the confirmations (POOL_MSG_SUBSCRIBE, one per channel)
/// and then the messages come through pool_subscriber_receive. The subscriptions are
/// remembered: a lost conn is replaced and resubscribed to all of them. If the conn was
/// lost, it is dialed again here (and a failure to do so is this call's status, the
/// subscription still remembered). POOL_ERR_CLOSED once the pool is closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_subscribe(
    sub: *mut pool_subscriber_t,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        change(
            "pool_subscriber_subscribe",
            sub,
            true,
            Family::Channel,
            count,
            names,
            lens,
            err_out,
        )
    }
}

/// PSUBSCRIBE to `count` patterns; as pool_subscriber_subscribe (POOL_MSG_PSUBSCRIBE, then
/// POOL_MSG_PMESSAGE).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_psubscribe(
    sub: *mut pool_subscriber_t,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        change(
            "pool_subscriber_psubscribe",
            sub,
            true,
            Family::Pattern,
            count,
            names,
            lens,
            err_out,
        )
    }
}

/// SSUBSCRIBE to `count` shard channels (Redis 7); as pool_subscriber_subscribe
/// (POOL_MSG_SSUBSCRIBE, then POOL_MSG_SMESSAGE). On a cluster subscriber each channel goes
/// to the master of its slot (channels of several slots are fine: one SSUBSCRIBE per slot,
/// as a cluster node refuses one naming two slots with CROSSSLOT).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_ssubscribe(
    sub: *mut pool_subscriber_t,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        change(
            "pool_subscriber_ssubscribe",
            sub,
            true,
            Family::Shard,
            count,
            names,
            lens,
            err_out,
        )
    }
}

/// UNSUBSCRIBE from `count` channels, or from all when `count` is 0 (`names` may then be
/// NULL). They are forgotten at once (a later resubscription leaves them out); the
/// confirmations come through pool_subscriber_receive. Otherwise as
/// pool_subscriber_subscribe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_unsubscribe(
    sub: *mut pool_subscriber_t,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        change(
            "pool_subscriber_unsubscribe",
            sub,
            false,
            Family::Channel,
            count,
            names,
            lens,
            err_out,
        )
    }
}

/// PUNSUBSCRIBE; as pool_subscriber_unsubscribe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_punsubscribe(
    sub: *mut pool_subscriber_t,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        change(
            "pool_subscriber_punsubscribe",
            sub,
            false,
            Family::Pattern,
            count,
            names,
            lens,
            err_out,
        )
    }
}

/// SUNSUBSCRIBE; as pool_subscriber_unsubscribe (each channel to its node).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_sunsubscribe(
    sub: *mut pool_subscriber_t,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        change(
            "pool_subscriber_sunsubscribe",
            sub,
            false,
            Family::Shard,
            count,
            names,
            lens,
            err_out,
        )
    }
}

fn timeout_of(ms: i64) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}

/// The next message or event, waiting at most `timeout_ms` (< 0: as long as it takes; 0:
/// only what has already arrived). POOL_OK with `*msg_out` set (release it with
/// pool_message_free); POOL_ERR_TIMEOUT with `*msg_out` NULL when nothing came in time
/// (nothing is lost: the subscriber is as good as before). Frames are delivered in the
/// order the server sent them, RESP2 and RESP3 alike.
///
/// POOL_ERR_TIMEOUT means nothing is left to take without waiting: each conn's socket was
/// read until EAGAIN (TLS records decrypted) and no whole message is buffered. So the next
/// message to arrive makes pool_subscriber_fd readable anew, and an edge-triggered loop
/// (epoll EPOLLET, libevent EV_ET, Go's netpoller) may wait for the next edge right after
/// it, with no extra poll.
///
/// A lost conn (EOF when the server restarts or kills the client, an I/O error, a
/// failed pool_subscriber_ping) is replaced right here: a new conn is dialed, subscribed to
/// everything, and POOL_MSG_RESUBSCRIBED is returned first (go-redis's PubSub does this).
/// If no conn can be dialed, its status is returned (POOL_ERR_DIAL, ...) and the next call
/// tries again. POOL_ERR_CLOSED once the pool (or cluster) is closed: the subscriber's
/// conns are then closed. The thread using the subscriber calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_receive(
    sub: *mut pool_subscriber_t,
    timeout_ms: i64,
    msg_out: *mut *mut pool_message_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_subscriber_receive"), {
        // SAFETY: `msg_out` is NULL or writable per the header.
        if let Err(code) =
            unsafe { start_constructor(msg_out, "msg_out", sub.is_null(), "sub", err_out) }
        {
            return code;
        }
        // SAFETY: non-NULL, live per the header.
        let Some(obj) = (unsafe { sub_ref(sub) }) else {
            return invalid(err_out, "sub: NULL");
        };
        let mut s = obj.inner.lock();
        let res = s.receive(timeout_of(timeout_ms));
        obj.note(&s);
        drop(s);
        match res {
            Ok(Some(m)) => match message_box(m) {
                Some(b) => {
                    // SAFETY: `msg_out` checked writable above.
                    unsafe { *msg_out = msg_into_raw(b) };
                    POOL_OK
                }
                None => fail(
                    err_out,
                    &Error::Protocol("redis: out of memory for a message".into()),
                ),
            },
            Ok(None) => {
                write_error(
                    err_out,
                    POOL_ERR_TIMEOUT,
                    &format!("redis: no message within {timeout_ms} ms"),
                );
                POOL_ERR_TIMEOUT
            }
            Err(e) => fail(err_out, &e),
        }
    })
}

/// Frees a message from pool_subscriber_receive (with its `reply`). NULL is fine. Any
/// thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_message_free(msg: *mut pool_message_t) {
    ffi_boundary!((), {
        if !msg.is_null() {
            // SAFETY: a message from pool_subscriber_receive, freed once per the header.
            drop(unsafe { msg_from_raw(msg) });
        }
    })
}

/// A health check: PINGs each of the subscriber's conns and waits for the answers, at most
/// `timeout_ms` (< 0: as long as it takes). Messages that arrive meanwhile are kept for
/// pool_subscriber_receive; the answers are not delivered. A conn that fails or does not
/// answer in time is treated as lost: the status is POOL_ERR_IO, and the next call
/// resubscribes on a new conn (POOL_MSG_RESUBSCRIBED). Use it on a quiet subscriber to
/// find a dead peer (a server gone without closing the socket), e.g. every minute as
/// go-redis does. POOL_ERR_CLOSED once the pool is closed. It blocks the calling thread
/// until the answers come: an event loop uses pool_subscriber_ping_start and
/// pool_subscriber_ping_finish instead (this call is the two with a wait between them, so
/// it is POOL_ERR_INVALID_ARG while such a ping is under way).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_ping(
    sub: *mut pool_subscriber_t,
    timeout_ms: i64,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_subscriber_ping"), {
        // SAFETY: NULL or live per the header.
        let Some(obj) = (unsafe { sub_ref(sub) }) else {
            return invalid(err_out, "sub: NULL");
        };
        let mut s = obj.inner.lock();
        let res = s.ping(timeout_of(timeout_ms));
        obj.note(&s);
        match res {
            Ok(()) => POOL_OK,
            Err(e) => fail(err_out, &e),
        }
    })
}

/// Starts a health check that never waits: PINGs each of the subscriber's conns (a lost one
/// is dialed again first, as pool_subscriber_receive does) and notes the deadline,
/// `timeout_ms` from now (< 0: none). End it with pool_subscriber_ping_finish (or
/// pool_subscriber_ping_cancel). POOL_OK when the PINGs went out; POOL_ERR_INVALID_ARG when
/// a ping is already under way (started and not finished or cancelled), or for NULL `sub`;
/// a conn that fails to take the PING is treated as lost and its status returned (no ping
/// is then under way). POOL_ERR_CLOSED once the pool is closed. The thread using the
/// subscriber calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_ping_start(
    sub: *mut pool_subscriber_t,
    timeout_ms: i64,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_subscriber_ping_start"), {
        // SAFETY: NULL or live per the header.
        let Some(obj) = (unsafe { sub_ref(sub) }) else {
            return invalid(err_out, "sub: NULL");
        };
        let mut s = obj.inner.lock();
        let res = s.ping_start(timeout_of(timeout_ms));
        obj.note(&s);
        match res {
            Ok(()) => POOL_OK,
            Err(e) => fail(err_out, &e),
        }
    })
}

/// Looks at the ping pool_subscriber_ping_start began, without waiting: reads what each
/// conn's socket has (messages that arrived are kept for pool_subscriber_receive; the
/// answers are not delivered), as pool_subscriber_ping does.
///
/// - POOL_ERR_WOULD_BLOCK: answers are outstanding and the deadline has not passed. Wait
///   for pool_subscriber_fd to be readable (or the deadline), then call this again. Every
///   socket was read until EAGAIN, so the next answer makes the fd readable anew: safe for
///   edge-triggered polling. The fd is also readable while a message is kept for
///   pool_subscriber_receive (take those too, or a level-triggered loop spins).
/// - POOL_OK: every conn answered; the ping is over.
/// - POOL_ERR_IO: the deadline passed with answers outstanding, or a conn failed: those
///   conns are treated as lost (the next receive resubscribes on a new conn,
///   POOL_MSG_RESUBSCRIBED); the ping is over.
/// - POOL_ERR_INVALID_ARG: no ping under way (never started, already finished or
///   cancelled), or NULL `sub`. POOL_ERR_CLOSED once the pool is closed.
///
/// The thread using the subscriber calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_ping_finish(
    sub: *mut pool_subscriber_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_subscriber_ping_finish"), {
        // SAFETY: NULL or live per the header.
        let Some(obj) = (unsafe { sub_ref(sub) }) else {
            return invalid(err_out, "sub: NULL");
        };
        let mut s = obj.inner.lock();
        let res = s.ping_finish();
        obj.note(&s);
        match res {
            Ok(PingState::Answered) => POOL_OK,
            Ok(PingState::Waiting) => {
                write_error(
                    err_out,
                    POOL_ERR_WOULD_BLOCK,
                    "redis: subscriber ping: answers outstanding",
                );
                POOL_ERR_WOULD_BLOCK
            }
            Err(e) => fail(err_out, &e),
        }
    })
}

/// Gives up the ping under way (e.g. when the caller's own deadline or cancellation comes
/// first) without waiting: its answers are dropped when they arrive, the conns are kept and
/// the subscriber stays usable (a new ping may start). POOL_OK, also when no ping is under
/// way; POOL_ERR_INVALID_ARG for NULL `sub`. The thread using the subscriber calls this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_ping_cancel(
    sub: *mut pool_subscriber_t,
    err_out: *mut pool_error_t,
) -> pool_status_t {
    ffi_boundary!(internal(err_out, "pool_subscriber_ping_cancel"), {
        // SAFETY: NULL or live per the header.
        let Some(obj) = (unsafe { sub_ref(sub) }) else {
            return invalid(err_out, "sub: NULL");
        };
        obj.inner.lock().ping_cancel();
        POOL_OK
    })
}

/// A file descriptor for event loops (an epoll set; owned by the subscriber, do not close
/// it): readable when pool_subscriber_receive has something to return without waiting (a
/// frame arrived or is buffered, a message is kept, or a conn was closed by the server and
/// the call will resubscribe). When it is readable, call pool_subscriber_receive with
/// timeout_ms 0 until it returns POOL_ERR_TIMEOUT: then the fd is not readable again until
/// something new arrives (a part of a large message does not keep it readable), and each
/// new arrival makes it readable anew, so edge-triggered polling (epoll EPOLLET) is safe
/// under the same rule: after each edge, receive with timeout_ms 0 until
/// POOL_ERR_TIMEOUT, then wait for the next edge. While a lost conn cannot be dialed
/// again (receive returned POOL_ERR_DIAL), nothing makes it readable: retry
/// pool_subscriber_receive from a timer. The same fd for the subscriber's whole life. -1
/// for NULL. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_fd(sub: *const pool_subscriber_t) -> c_int {
    ffi_boundary!(-1, {
        // SAFETY: NULL or live per the header.
        unsafe { sub_ref(sub) }.map_or(-1, |o| o.fd)
    })
}

/// How many times a lost conn was replaced and resubscribed (each is one
/// POOL_MSG_RESUBSCRIBED). 0 for NULL. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_resubscribes(sub: *const pool_subscriber_t) -> u64 {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the header.
        unsafe { sub_ref(sub) }.map_or(0, |o| {
            o.resubscribes.load(std::sync::atomic::Ordering::Relaxed)
        })
    })
}

/// Closes the subscriber's conns (given back to the pool's count) and frees it, with the
/// messages it kept. NULL is fine. No other call may be using it. Works after pool_close or
/// pool_free of its pool (the subscriber holds the pool's memory until then).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pool_subscriber_free(sub: *mut pool_subscriber_t) {
    ffi_boundary!((), {
        if !sub.is_null() {
            // SAFETY: a live subscriber, freed once per the header.
            drop(unsafe { sub_from_raw(sub) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::Kind;

    #[test]
    fn message_kinds_match_the_core() {
        let pairs = [
            (POOL_MSG_MESSAGE, Kind::Message),
            (POOL_MSG_PMESSAGE, Kind::PMessage),
            (POOL_MSG_SMESSAGE, Kind::SMessage),
            (POOL_MSG_SUBSCRIBE, Kind::Subscribe),
            (POOL_MSG_PSUBSCRIBE, Kind::PSubscribe),
            (POOL_MSG_SSUBSCRIBE, Kind::SSubscribe),
            (POOL_MSG_UNSUBSCRIBE, Kind::Unsubscribe),
            (POOL_MSG_PUNSUBSCRIBE, Kind::PUnsubscribe),
            (POOL_MSG_SUNSUBSCRIBE, Kind::SUnsubscribe),
            (POOL_MSG_PONG, Kind::Pong),
            (POOL_MSG_RESUBSCRIBED, Kind::Resubscribed),
            (POOL_MSG_PUSH, Kind::Push),
            (POOL_MSG_ERROR, Kind::Error),
        ];
        for (c, k) in pairs {
            assert_eq!(c, k as i32, "{k:?}");
        }
    }
}
