//! `Subscriber`: pub/sub on dedicated conns, with resubscription after a lost conn.
//!
//! A subscriber's conns are its own: dialed with the pool's dialer and set-up (go-redis's
//! `PubSub` takes `NewConn`, outside the pool's turns), never handed to anyone else, and
//! closed (with the pool's `close_conn`) when lost or when the subscriber is dropped. A
//! conn in subscribe mode is of no use to other users, so it does not hold one of the
//! pool's turns forever; it still counts in the pool's `len` and obeys `max_active_conns`.
//!
//! Links: the main link carries SUBSCRIBE and PSUBSCRIBE (and SSUBSCRIBE when the source
//! has one node); on a cluster, each shard channel goes to a link to the master of its slot.
//! A lost link (EOF, I/O error, a failed ping) is closed, and the next call dials a new one,
//! subscribes it to everything the old one carried and queues a `Resubscribed` event: the
//! receiver sees the gap in the stream. Shard channels go one SSUBSCRIBE per slot (a
//! cluster node refuses CROSSSLOT ones); one answered MOVED is subscribed where MOVED
//! points, the link untouched.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::message::{Kind, Message, decode};
use crate::pool::{Conn, Error, Result};

/// Where a subscriber's conns come from: a pool (one node) or a cluster (a node per slot).
pub trait Source: Send + Sync {
    /// The node serving `slot` ("" when there is one node).
    fn node_of(&self, slot: u16) -> Result<String>;
    /// A new dedicated conn to `node` ("" = the main link's node).
    fn open(&self, node: &str) -> Result<Conn>;
    /// Gives a conn from `open(node)` back (closed).
    fn close(&self, node: &str, conn: Conn);
    /// The pool (or cluster) was closed: the subscriber is over.
    fn is_closed(&self) -> bool;
    /// A link of a node was lost or answered MOVED: the slot map may be stale.
    fn topology_changed(&self) {}
    /// The server dropped a shard channel (its slot moved): the slot map is stale, reload
    /// it now (bounded) so the channel goes where its slot is.
    fn refresh_topology(&self) {}
    /// Whether SSUBSCRIBE goes to per-slot links (cluster) rather than the main link.
    fn sharded(&self) -> bool {
        false
    }
}

/// A source that is one `ConnPool`.
impl Source for crate::pool::ConnPool {
    fn node_of(&self, _slot: u16) -> Result<String> {
        Ok(String::new())
    }
    fn open(&self, _node: &str) -> Result<Conn> {
        self.new_conn()
    }
    fn close(&self, _node: &str, conn: Conn) {
        let _ = self.close_conn(conn);
    }
    fn is_closed(&self) -> bool {
        crate::pool::ConnPool::is_closed(self)
    }
}

struct Link {
    /// "" for the main link, else the node's address.
    node: String,
    conn: Option<Conn>,
    /// Why the last conn was lost (None: never had one, or up).
    lost: Option<String>,
    /// Answers to the subscriber's own PINGs still to come on this conn (dropped when they
    /// arrive); 0 for a new conn.
    pings_owed: u32,
}

/// A health check under way: `ping_start` sent a PING on each of `links`, `ping_finish`
/// ends it.
struct PingRound {
    links: Vec<usize>,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

/// How far a ping round got (`ping_finish`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingState {
    /// Every conn answered.
    Answered,
    /// Answers are outstanding and the deadline has not passed.
    Waiting,
}

/// The subscribe family, as the index of its command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Channel,
    Pattern,
    Shard,
}

/// Shard channels in a command of their own per slot (at most `SUBSCRIBE_CHUNK` names
/// each), in slot order: a cluster node refuses SSUBSCRIBE and SUNSUBSCRIBE naming
/// channels of two slots (CROSSSLOT), even slots it serves both of.
fn per_slot<'a>(cmd: &'a [u8], names: &[&'a [u8]]) -> Vec<Vec<&'a [u8]>> {
    let mut by_slot: BTreeMap<u16, Vec<&[u8]>> = BTreeMap::new();
    for n in names {
        by_slot
            .entry(crate::cluster::slot::key_slot(n))
            .or_default()
            .push(n);
    }
    let mut cmds = Vec::with_capacity(by_slot.len());
    for chans in by_slot.values() {
        for part in chans.chunks(SUBSCRIBE_CHUNK) {
            let mut args = Vec::with_capacity(part.len() + 1);
            args.push(cmd);
            args.extend_from_slice(part);
            cmds.push(args);
        }
    }
    cmds
}

/// The slot and node of a `MOVED <slot> <host:port>` error; a node given as ":port" (Redis 7
/// when it does not know its endpoint) is on the host of `from`.
fn parse_moved(err: &[u8], from: &str) -> Option<(u16, String)> {
    match crate::cluster::topology::parse_redirect(err)? {
        crate::cluster::topology::Redirect::Moved { slot, addr } => {
            let addr = match addr.strip_prefix(':') {
                Some(port) => format!("{}:{port}", from.rsplit_once(':')?.0),
                None => addr,
            };
            Some((slot, addr))
        }
        _ => None,
    }
}

/// Names per SUBSCRIBE-family command sent by a resubscription.
const SUBSCRIBE_CHUNK: usize = 1024;

/// Subscriptions on dedicated conns. One thread at a time.
pub struct Subscriber {
    source: Box<dyn Source>,
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    /// Shard channel -> the node of its link.
    shard_channels: BTreeMap<Vec<u8>, String>,
    /// links[0] is the main link.
    links: Vec<Link>,
    queue: VecDeque<Message>,
    resubscribes: u64,
    /// The ping round under way, if any.
    ping_round: Option<PingRound>,
    /// An epoll set of every link's fd and `ready`: readable when `receive` has something.
    epoll: OwnedFd,
    /// An eventfd, readable while a message is queued or buffered.
    ready: OwnedFd,
    ready_set: bool,
    closed: bool,
}

const PING_TOKEN: &[u8] = b"redispool-subscriber-ping";

fn os_err(what: &str) -> Error {
    Error::Internal(format!("{what}: {}", std::io::Error::last_os_error()))
}

impl Subscriber {
    /// A subscriber on `source`, with its main link dialed now (a dial failure is reported
    /// here rather than at the first receive).
    pub fn new(source: Box<dyn Source>) -> Result<Subscriber> {
        // SAFETY: plain syscalls; the fds returned are owned right away.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(os_err("epoll_create1"));
        }
        // SAFETY: a new fd nobody else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: as above.
        let ready = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if ready < 0 {
            return Err(os_err("eventfd"));
        }
        // SAFETY: as above.
        let ready = unsafe { OwnedFd::from_raw_fd(ready) };
        let mut s = Subscriber {
            source,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shard_channels: BTreeMap::new(),
            links: vec![Link {
                node: String::new(),
                conn: None,
                lost: None,
                pings_owed: 0,
            }],
            queue: VecDeque::new(),
            resubscribes: 0,
            ping_round: None,
            epoll,
            ready,
            ready_set: false,
            closed: false,
        };
        s.epoll_ctl(libc::EPOLL_CTL_ADD, s.ready.as_raw_fd())?;
        let conn = s.source.open("")?;
        s.attach(0, conn)?;
        Ok(s)
    }

    /// The epoll fd: readable when `receive` has a frame or event to return without
    /// waiting (or a conn was lost: the receive then resubscribes). Safe for edge-triggered
    /// pollers: once `receive(Some(ZERO))` returns Ok(None), every socket was read until
    /// EAGAIN and no whole frame is buffered, so whatever comes next is a new readiness.
    pub fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Conns lost and replaced, each with every subscription it carried, so far.
    pub fn resubscribes(&self) -> u64 {
        self.resubscribes
    }

    fn epoll_ctl(&self, op: libc::c_int, fd: RawFd) -> Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the call; bad fds are errors.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(os_err("epoll_ctl"));
        }
        Ok(())
    }

    fn attach(&mut self, i: usize, conn: Conn) -> Result<()> {
        let fd = conn.fd();
        let node = self.links[i].node.clone();
        if let Err(e) = self.epoll_ctl(libc::EPOLL_CTL_ADD, fd) {
            self.source.close(&node, conn);
            return Err(e);
        }
        self.links[i].conn = Some(conn);
        self.links[i].pings_owed = 0;
        Ok(())
    }

    /// Closes link `i`'s conn, remembering why (it is dialed again by the next call).
    fn lose(&mut self, i: usize, why: String) {
        if let Some(conn) = self.links[i].conn.take() {
            let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, conn.fd());
            self.source.close(&self.links[i].node, conn);
        }
        self.links[i].pings_owed = 0;
        if i > 0 || self.source.sharded() {
            self.source.topology_changed();
        }
        self.links[i].lost = Some(why);
    }

    fn check_open(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.source.is_closed() {
            self.shut();
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn shut(&mut self) {
        self.closed = true;
        for i in 0..self.links.len() {
            if let Some(conn) = self.links[i].conn.take() {
                self.source.close(&self.links[i].node, conn);
            }
        }
        self.queue.clear();
    }

    /// SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE `names` (none: an error). The confirmations
    /// arrive later through `receive`. On a lost link the names are kept and subscribed
    /// by the resubscription.
    pub fn subscribe(&mut self, family: Family, names: &[&[u8]]) -> Result<()> {
        self.check_open()?;
        if names.is_empty() {
            return Err(Error::invalid("no channel or pattern given"));
        }
        let res = match family {
            Family::Channel | Family::Pattern => {
                let set = if family == Family::Channel {
                    &mut self.channels
                } else {
                    &mut self.patterns
                };
                set.extend(names.iter().map(|n| n.to_vec()));
                let cmd: &[u8] = if family == Family::Channel {
                    b"SUBSCRIBE"
                } else {
                    b"PSUBSCRIBE"
                };
                self.send_on(0, cmd, names)
            }
            Family::Shard => self.ssubscribe(names),
        };
        self.sync_ready();
        res
    }

    fn ssubscribe(&mut self, names: &[&[u8]]) -> Result<()> {
        let mut by_node: BTreeMap<String, Vec<&[u8]>> = BTreeMap::new();
        for n in names {
            let node = if self.source.sharded() {
                self.source.node_of(crate::cluster::slot::key_slot(n))?
            } else {
                String::new()
            };
            by_node.entry(node).or_default().push(n);
        }
        for (node, chans) in by_node {
            for c in &chans {
                self.shard_channels.insert(c.to_vec(), node.clone());
            }
            let i = self.link_of(&node);
            if self.links[i].conn.is_none() && self.links[i].lost.is_none() {
                // A new link: dialed now, subscribed by `reconnect` with its channels; if
                // that fails, the next call dials it again.
                if let Err(e) = self.reconnect(i, false) {
                    self.links[i].lost = Some(e.to_string());
                    return Err(e);
                }
            } else {
                self.send_on(i, b"SSUBSCRIBE", &chans)?;
            }
        }
        Ok(())
    }

    fn link_of(&mut self, node: &str) -> usize {
        if node.is_empty() {
            return 0;
        }
        if let Some(i) = self.links.iter().skip(1).position(|l| l.node == node) {
            return i + 1;
        }
        self.links.push(Link {
            node: node.to_string(),
            conn: None,
            lost: None,
            pings_owed: 0,
        });
        self.links.len() - 1
    }

    /// UNSUBSCRIBE, PUNSUBSCRIBE or SUNSUBSCRIBE `names`; none = all of that family.
    pub fn unsubscribe(&mut self, family: Family, names: &[&[u8]]) -> Result<()> {
        self.check_open()?;
        let res = match family {
            Family::Channel | Family::Pattern => {
                let (set, cmd): (_, &[u8]) = if family == Family::Channel {
                    (&mut self.channels, b"UNSUBSCRIBE")
                } else {
                    (&mut self.patterns, b"PUNSUBSCRIBE")
                };
                if names.is_empty() {
                    set.clear();
                } else {
                    for n in names {
                        set.remove(*n);
                    }
                }
                self.send_on(0, cmd, names)
            }
            Family::Shard => {
                let mut by_link: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
                let picked: Vec<Vec<u8>> = if names.is_empty() {
                    self.shard_channels.keys().cloned().collect()
                } else {
                    names.iter().map(|n| n.to_vec()).collect()
                };
                for n in picked {
                    if let Some(node) = self.shard_channels.remove(&n) {
                        let i = self.link_of(&node);
                        by_link.entry(i).or_default().push(n);
                    }
                }
                let mut res = Ok(());
                for (i, chans) in by_link {
                    let refs: Vec<&[u8]> = chans.iter().map(|c| c.as_slice()).collect();
                    if let Err(e) = self.send_on(i, b"SUNSUBSCRIBE", &refs) {
                        res = Err(e);
                    }
                }
                res
            }
        };
        self.sync_ready();
        res
    }

    /// Sends `cmd names...` on link `i` if it is up; a lost link is dialed again (and
    /// resubscribed, which covers `names`) right away.
    fn send_on(&mut self, i: usize, cmd: &[u8], names: &[&[u8]]) -> Result<()> {
        let Some(conn) = self.links[i].conn.as_mut() else {
            return self.reconnect(i, true);
        };
        let sharded = cmd == b"SSUBSCRIBE" || cmd == b"SUNSUBSCRIBE";
        let cmds = if sharded && !names.is_empty() {
            per_slot(cmd, names)
        } else {
            let mut args: Vec<&[u8]> = Vec::with_capacity(names.len() + 1);
            args.push(cmd);
            args.extend_from_slice(names);
            vec![args]
        };
        let refs: Vec<&[&[u8]]> = cmds.iter().map(|c| c.as_slice()).collect();
        match conn.send(&refs) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.lose(i, e.to_string());
                self.reconnect(i, true)
            }
        }
    }

    /// Dials link `i` again and subscribes it to everything it carries. `gap`: a conn was
    /// lost before (a `Resubscribed` event is queued); false for a link's first dial.
    fn reconnect(&mut self, i: usize, gap: bool) -> Result<()> {
        let node = self.links[i].node.clone();
        // Shard channels of this link whose slot is served by another node now.
        let mut moved: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        if i > 0 && gap {
            // The slot map may have changed: the link's channels go where their slots are
            // now (possibly another link), then this link carries what is left.
            let mine: Vec<Vec<u8>> = self
                .shard_channels
                .iter()
                .filter(|(_, n)| **n == node)
                .map(|(c, _)| c.clone())
                .collect();
            for c in mine {
                let now = self.source.node_of(crate::cluster::slot::key_slot(&c))?;
                if now != node {
                    self.shard_channels.insert(c.clone(), now.clone());
                    moved.entry(now).or_default().push(c);
                }
            }
        }
        let mut conn = self.source.open(&node)?;
        let mut cmds: Vec<Vec<&[u8]>> = Vec::new();
        if i == 0 {
            for (set, cmd) in [
                (&self.channels, &b"SUBSCRIBE"[..]),
                (&self.patterns, &b"PSUBSCRIBE"[..]),
            ] {
                let names: Vec<&[u8]> = set.iter().map(|c| c.as_slice()).collect();
                for part in names.chunks(SUBSCRIBE_CHUNK) {
                    let mut args = vec![cmd];
                    args.extend_from_slice(part);
                    cmds.push(args);
                }
            }
        }
        let shard: Vec<&[u8]> = self
            .shard_channels
            .iter()
            .filter(|(_, n)| **n == node)
            .map(|(c, _)| c.as_slice())
            .collect();
        cmds.extend(per_slot(b"SSUBSCRIBE", &shard));
        let refs: Vec<&[&[u8]]> = cmds.iter().map(|c| c.as_slice()).collect();
        if !refs.is_empty() {
            if let Err(e) = conn.send(&refs) {
                self.source.close(&node, conn);
                return Err(e);
            }
        }
        drop(cmds);
        self.attach(i, conn)?;
        let lost = self.links[i].lost.take();
        if gap {
            self.resubscribes += 1;
            let why = lost.unwrap_or_else(|| "the conn was lost".into());
            self.push(Message::event(
                Kind::Resubscribed,
                self.resubscribes as i64,
                Some(why.into_bytes()),
            ));
        }
        // Shard channels that moved to another node are subscribed there.
        for (n, chans) in moved {
            let j = self.link_of(&n);
            if self.links[j].conn.is_some() {
                let refs: Vec<&[u8]> = chans.iter().map(|c| c.as_slice()).collect();
                self.send_on(j, b"SSUBSCRIBE", &refs)?;
            } else if self.links[j].lost.is_none() {
                // A new link: `reconnect` subscribes it to its channels.
                self.reconnect(j, false)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, m: Message) {
        self.queue.push_back(m);
    }

    /// Links that were lost are dialed again (and resubscribed) now.
    fn heal(&mut self) -> Result<()> {
        for i in 0..self.links.len() {
            if self.links[i].conn.is_none() {
                let gap = self.links[i].lost.is_some();
                self.reconnect(i, gap)?;
            }
        }
        Ok(())
    }

    /// The next message or event, waiting at most `timeout` (None = as long as it takes):
    /// Ok(None) when nothing came. A lost conn is replaced (and resubscribed) on the way,
    /// and a `Resubscribed` event comes first; if no new conn can be dialed, the error is
    /// returned and the next call tries again.
    ///
    /// Ok(None) leaves nothing to take without waiting: every link's socket was read until
    /// EAGAIN (and its TLS records decrypted), and no whole frame is buffered, so the next
    /// frame to arrive makes `fd` readable anew (an edge for an edge-triggered poller).
    pub fn receive(&mut self, timeout: Option<Duration>) -> Result<Option<Message>> {
        let res = self.receive_inner(timeout);
        match res {
            // Drained (`receive_inner` waits only once `take_frame` found nothing): a part
            // of a frame in a parser waits for bytes the socket will signal.
            Ok(None) => self.set_ready(!self.queue.is_empty()),
            _ => self.sync_ready(),
        }
        res
    }

    fn receive_inner(&mut self, timeout: Option<Duration>) -> Result<Option<Message>> {
        self.check_open()?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Ok(Some(m));
            }
            self.heal()?;
            if let Some(m) = self.queue.pop_front() {
                return Ok(Some(m));
            }
            if let Some(m) = self.take_frame()? {
                return Ok(Some(m));
            }
            // A link lost on the way is dialed again by the next round, not waited on.
            if !self.queue.is_empty() || self.links.iter().any(|l| l.conn.is_none()) {
                continue;
            }
            // Every link drained: `ready` (set for what an earlier call left buffered) would
            // end the wait at once, a part of a frame comes through its socket.
            self.set_ready(false);
            if !self.wait_readable(deadline)? {
                return Ok(None);
            }
        }
    }

    /// A frame some link has now (buffered or in its socket), without waiting; a link
    /// that fails is lost (and a message says why on the next round). None: every link was
    /// read until EAGAIN and holds no whole frame (frames `filter` keeps from the user
    /// do not end a link's turn).
    fn take_frame(&mut self) -> Result<Option<Message>> {
        for i in 0..self.links.len() {
            if let Some(m) = self.next_frame_of(i) {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// The next frame for the user that link `i` has now, without waiting: its socket read
    /// until one, or until EAGAIN (None; frames `filter` keeps from the user are read past).
    /// A link that fails is lost (None).
    fn next_frame_of(&mut self, i: usize) -> Option<Message> {
        while let Some(conn) = self.links[i].conn.as_mut() {
            match conn.receive_arrived() {
                Ok(None) => return None,
                Ok(Some(frame)) => {
                    let m = decode(frame);
                    if let Some(m) = self.filter(i, m) {
                        return Some(m);
                    }
                }
                Err(e) => self.lose(i, e.to_string()),
            }
        }
        None
    }

    /// Whether a frame is for the user: answers to `ping`'s own PINGs are not, nor a MOVED
    /// for an SSUBSCRIBE (followed here: the channels go where the slot is now).
    fn filter(&mut self, i: usize, m: Message) -> Option<Message> {
        if m.kind == Kind::Pong
            && self.links[i].pings_owed > 0
            && m.payload.as_deref() == Some(PING_TOKEN)
        {
            self.links[i].pings_owed -= 1;
            return None;
        }
        if m.kind == Kind::SUnsubscribe && self.source.sharded() {
            // Not one the user asked for (those left `shard_channels` when asked): the
            // server dropped it because its slot moved to another node.
            if let Some(ch) = m
                .channel
                .as_ref()
                .filter(|c| self.shard_channels.contains_key(*c))
            {
                let ch = ch.clone();
                self.reroute(ch);
            }
        }
        if m.kind == Kind::Error
            && i > 0
            && let Some((slot, to)) = m
                .payload
                .as_deref()
                .and_then(|p| parse_moved(p, &self.links[i].node))
        {
            self.follow_moved(i, slot, to);
            return None;
        }
        Some(m)
    }

    /// Link `i`'s node answered an SSUBSCRIBE with MOVED: the slot map was stale. The
    /// channels of `slot` the link's node was to carry are subscribed where the slot is now
    /// (the refreshed map's master, or the node MOVED names if the map still says this
    /// one). Nothing was received on them yet, so there is no gap to report; the link and
    /// its other channels are untouched.
    fn follow_moved(&mut self, i: usize, slot: u16, to: String) {
        let node = self.links[i].node.clone();
        let chans: Vec<Vec<u8>> = self
            .shard_channels
            .iter()
            .filter(|(c, n)| **n == node && crate::cluster::slot::key_slot(c) == slot)
            .map(|(c, _)| c.clone())
            .collect();
        if chans.is_empty() {
            // Unsubscribed since: nothing to follow.
            return;
        }
        self.source.refresh_topology();
        let now = match self.source.node_of(slot) {
            Ok(n) if n != node => n,
            _ => to,
        };
        self.subscribe_at(chans, now);
    }

    /// Records shard channels `chans` as carried by `node`'s link and subscribes them
    /// there (a link not dialed yet is dialed; a failure leaves the link lost, for the next
    /// call to dial again and subscribe).
    fn subscribe_at(&mut self, chans: Vec<Vec<u8>>, node: String) {
        for c in &chans {
            self.shard_channels.insert(c.clone(), node.clone());
        }
        let j = self.link_of(&node);
        let res = if self.links[j].conn.is_some() {
            let refs: Vec<&[u8]> = chans.iter().map(|c| c.as_slice()).collect();
            self.send_on(j, b"SSUBSCRIBE", &refs)
        } else if self.links[j].lost.is_none() {
            self.reconnect(j, false)
        } else {
            Ok(())
        };
        if let Err(e) = res {
            self.links[j].lost.get_or_insert_with(|| e.to_string());
        }
    }

    /// Subscribes shard channel `ch` again where its slot is now (the server unsubscribed
    /// it), reporting the gap as a `Resubscribed` event. Should the slot map still be
    /// stale, the node it goes to answers MOVED and `follow_moved` takes it from there.
    fn reroute(&mut self, ch: Vec<u8>) {
        self.source.refresh_topology();
        let Ok(now) = self.source.node_of(crate::cluster::slot::key_slot(&ch)) else {
            return;
        };
        self.subscribe_at(vec![ch.clone()], now);
        self.resubscribes += 1;
        let why = format!(
            "the server unsubscribed shard channel {} (its slot moved)",
            String::from_utf8_lossy(&ch)
        );
        self.push(Message::event(
            Kind::Resubscribed,
            self.resubscribes as i64,
            Some(why.into_bytes()),
        ));
    }

    /// Waits until a link or `ready` is readable, or `deadline`; false when it passed.
    fn wait_readable(&mut self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    libc::c_int::try_from(left.as_nanos().div_ceil(1_000_000))
                        .unwrap_or(libc::c_int::MAX)
                }
            };
            let mut ev = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: one valid epoll_event to fill; maxevents 1.
            let rc = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut ev, 1, ms) };
            if rc > 0 {
                return Ok(true);
            }
            if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Err(os_err("epoll_wait"));
            }
        }
    }

    /// Makes `ready` readable while a message is queued or a frame may be buffered (in a
    /// parser, or decrypted in a TLS session: neither shows on the socket); a part of a
    /// frame counts too until a receive finds nothing (`receive` then clears it).
    fn sync_ready(&mut self) {
        let want = !self.queue.is_empty()
            || self
                .links
                .iter_mut()
                .any(|l| l.conn.as_mut().is_some_and(|c| c.has_pending_input()));
        self.set_ready(want);
    }

    /// Makes `ready` readable or not; a change to readable is a new edge on `fd`.
    fn set_ready(&mut self, want: bool) {
        if want == self.ready_set {
            return;
        }
        let fd = self.ready.as_raw_fd();
        if want {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
            unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        } else {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
            unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        }
        self.ready_set = want;
    }

    /// PINGs every link and waits (at most `timeout`) for every answer; messages that
    /// arrive meanwhile are kept for `receive`. A link that fails or does not answer in
    /// time is lost (resubscribed by the next call) and the error returned. It is
    /// `ping_start`, waits on the links' sockets, and `ping_finish`.
    pub fn ping(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.ping_start(timeout)?;
        loop {
            match self.ping_finish()? {
                PingState::Answered => return Ok(()),
                PingState::Waiting => {
                    let deadline = self.ping_round.as_ref().and_then(|r| r.deadline);
                    if let Err(e) = self.wait_ping_answers(deadline) {
                        self.ping_round = None;
                        self.sync_ready();
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Starts a ping round: PINGs every link (a lost one is dialed again first) and notes
    /// the deadline, `timeout` from now (None: none). Never waits for an answer. A round
    /// already under way is an `Error::InvalidArg`; a link that fails to take the PING is
    /// lost and the error returned (no round then).
    pub fn ping_start(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.check_open()?;
        if self.ping_round.is_some() {
            return Err(Error::invalid(
                "a subscriber ping is already under way (finish or cancel it first)",
            ));
        }
        let res = self.ping_send(timeout);
        self.sync_ready();
        res
    }

    fn ping_send(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.heal()?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut links: Vec<usize> = Vec::new();
        for i in 0..self.links.len() {
            let Some(conn) = self.links[i].conn.as_mut() else {
                continue;
            };
            match conn.send(&[&[b"PING", PING_TOKEN]]) {
                Ok(()) => {
                    self.links[i].pings_owed += 1;
                    links.push(i);
                }
                Err(e) => {
                    self.lose(i, e.to_string());
                    return Err(e);
                }
            }
        }
        self.ping_round = Some(PingRound {
            links,
            deadline,
            timeout,
        });
        Ok(())
    }

    /// Looks at the round `ping_start` began, without waiting: reads what every link's
    /// socket has (messages are kept for `receive`, the answers dropped). `Answered` ends
    /// the round; `Waiting` while answers are outstanding before the deadline. After the
    /// deadline the links that did not answer are lost and `Error::Io` returned; a link
    /// lost meanwhile gives its error. Either ends the round. No round: `InvalidArg`.
    ///
    /// On `Waiting` every socket was read until EAGAIN, so the next answer makes `fd`
    /// readable anew (an edge); `fd` stays readable while a message is kept for `receive`.
    pub fn ping_finish(&mut self) -> Result<PingState> {
        self.check_open()?;
        let Some(round) = self.ping_round.take() else {
            return Err(Error::invalid(
                "no subscriber ping under way (pool_subscriber_ping_start first)",
            ));
        };
        self.drain_links();
        let lost = round
            .links
            .iter()
            .copied()
            .find(|&i| self.links[i].conn.is_none());
        if let Some(i) = lost {
            let why = self.links[i].lost.clone().unwrap_or_default();
            self.sync_ready();
            return Err(Error::Io(format!("redis: subscriber ping: {why}")));
        }
        let waiting: Vec<usize> = round
            .links
            .iter()
            .copied()
            .filter(|&i| self.links[i].pings_owed > 0)
            .collect();
        if waiting.is_empty() {
            self.sync_ready();
            return Ok(PingState::Answered);
        }
        if round.deadline.is_some_and(|d| Instant::now() >= d) {
            let e = Error::Io(format!(
                "redis: subscriber ping: no answer within {:?}",
                round.timeout.unwrap_or_default()
            ));
            for i in waiting {
                self.lose(i, e.to_string());
            }
            self.sync_ready();
            return Err(e);
        }
        self.ping_round = Some(round);
        // Every socket is drained: only a kept message makes `fd` readable now.
        self.set_ready(!self.queue.is_empty());
        Ok(PingState::Waiting)
    }

    /// Ends the round under way (if any) without waiting: its answers are dropped when they
    /// arrive, the conns kept.
    pub fn ping_cancel(&mut self) {
        self.ping_round = None;
    }

    /// Whether a ping round is under way.
    pub fn ping_pending(&self) -> bool {
        self.ping_round.is_some()
    }

    /// Reads every link until EAGAIN (no whole frame left buffered): messages are queued
    /// for `receive`, ping answers dropped; a link that fails is lost.
    fn drain_links(&mut self) {
        for i in 0..self.links.len() {
            while let Some(m) = self.next_frame_of(i) {
                self.push(m);
            }
        }
    }

    /// Waits until a socket of a link owing a ping answer is readable, or `deadline`.
    /// The sockets were drained by `ping_finish`, so readable means new bytes.
    fn wait_ping_answers(&mut self, deadline: Option<Instant>) -> Result<()> {
        let mut fds: Vec<libc::pollfd> = self
            .links
            .iter()
            .filter(|l| l.pings_owed > 0)
            .filter_map(|l| l.conn.as_ref())
            .map(|c| libc::pollfd {
                fd: c.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if fds.is_empty() {
            return Ok(());
        }
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                libc::c_int::try_from(left.as_nanos().div_ceil(1_000_000))
                    .unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: `fds` is a valid array of its length for the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(os_err("poll"));
        }
        Ok(())
    }

    /// Closes every conn; later calls fail with `Error::Closed`.
    pub fn close(&mut self) {
        self.shut();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.shut();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::slot::key_slot;

    #[test]
    fn moved_names_its_slot_and_node_with_the_host_filled_in() {
        assert_eq!(
            parse_moved(b"MOVED 2 127.0.0.1:7001", "127.0.0.1:7000"),
            Some((2, "127.0.0.1:7001".to_string()))
        );
        assert_eq!(
            parse_moved(b"MOVED 2 :7001", "10.0.0.5:7000"),
            Some((2, "10.0.0.5:7001".to_string()))
        );
        assert_eq!(parse_moved(b"ASK 2 127.0.0.1:7001", "127.0.0.1:7000"), None);
        assert_eq!(parse_moved(b"MOVED 16384 127.0.0.1:7001", "x:1"), None);
        assert_eq!(parse_moved(b"CROSSSLOT Keys", "127.0.0.1:7000"), None);
    }

    #[test]
    fn shard_commands_name_one_slot_each() {
        let names: Vec<Vec<u8>> = (0..4500)
            .map(|i| format!("{{t{}}}c{i}", i % 3).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
        let cmds = per_slot(b"SSUBSCRIBE", &refs);
        // 1500 channels per slot: one full chunk and a rest, for each of three slots.
        assert_eq!(cmds.len(), 6);
        let mut seen = 0;
        for c in &cmds {
            assert_eq!(c[0], b"SSUBSCRIBE");
            assert!(c.len() - 1 <= SUBSCRIBE_CHUNK);
            let slot = key_slot(c[1]);
            assert!(c[1..].iter().all(|n| key_slot(n) == slot));
            seen += c.len() - 1;
        }
        assert_eq!(seen, names.len());
    }
}
