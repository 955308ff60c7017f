//! What a subscriber receives: one frame of its conn's stream, decoded (RESP2 arrays and
//! RESP3 pushes alike), or an event of its own (resubscribed after a lost conn).

use crate::redis::resp::Reply;

/// What a `Message` is. The numbers are the C ABI's `POOL_MSG_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Kind {
    /// A message published to a channel subscribed to (`message`).
    Message = 1,
    /// A message published to a channel matching a pattern (`pmessage`).
    PMessage = 2,
    /// A message published to a shard channel (`smessage`).
    SMessage = 3,
    /// SUBSCRIBE confirmed for one channel; `count` = subscriptions on that conn.
    Subscribe = 4,
    PSubscribe = 5,
    SSubscribe = 6,
    Unsubscribe = 7,
    PUnsubscribe = 8,
    SUnsubscribe = 9,
    /// A PING's answer (the user's own PING: `Subscriber::ping` consumes its own).
    Pong = 10,
    /// The conn was lost (or the server restarted) and a new one took over every
    /// subscription: messages published meanwhile were missed. `count` = resubscriptions so
    /// far; `payload` = why the old conn was lost.
    Resubscribed = 11,
    /// Any other push (a RESP3 client-tracking `invalidate`, ...): the whole frame in `reply`.
    Push = 12,
    /// An error reply in the stream (a refused SUBSCRIBE, MOVED for an SSUBSCRIBE):
    /// the text in `payload`.
    Error = 13,
}

/// One thing received.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub channel: Option<Vec<u8>>,
    pub pattern: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Subscribe kinds: the subscriptions left on the conn; Resubscribed: resubscriptions
    /// so far; otherwise 0.
    pub count: i64,
    /// Push (and any frame not understood otherwise): the frame itself.
    pub reply: Option<Reply>,
}

impl Message {
    pub(crate) fn event(kind: Kind, count: i64, payload: Option<Vec<u8>>) -> Message {
        Message {
            kind,
            channel: None,
            pattern: None,
            payload,
            count,
            reply: None,
        }
    }
}

fn bytes(r: &Reply) -> Option<Vec<u8>> {
    match r {
        Reply::String(b) | Reply::Status(b) => Some(b.clone()),
        Reply::Verb { text, .. } => Some(text.clone()),
        Reply::Integer(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

/// `bytes`, moving the text out of the reply instead of copying it.
fn take_bytes(r: &mut Reply) -> Option<Vec<u8>> {
    match r {
        Reply::String(b) | Reply::Status(b) => Some(std::mem::take(b)),
        Reply::Verb { text, .. } => Some(std::mem::take(text)),
        Reply::Integer(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

/// Decodes one frame of a subscriber's stream.
pub fn decode(frame: Reply) -> Message {
    let kind = match &frame {
        Reply::Array(v) | Reply::Push(v) => v.first().and_then(|n| match n {
            Reply::String(b) | Reply::Status(b) => Some(b.as_slice()),
            _ => None,
        }),
        // A PING's answer outside subscribe mode (+PONG), or in RESP3 (bulk payload).
        Reply::Status(s) => {
            let payload = if s.eq_ignore_ascii_case(b"PONG") {
                Vec::new()
            } else {
                s.clone()
            };
            return Message::event(Kind::Pong, 0, Some(payload));
        }
        Reply::String(_) => return Message::event(Kind::Pong, 0, bytes(&frame)),
        Reply::Error(e) => return Message::event(Kind::Error, 0, Some(e.clone())),
        _ => return other(frame),
    };
    let len = match &frame {
        Reply::Array(v) | Reply::Push(v) => v.len(),
        _ => 0,
    };
    let kind = match (kind.map(|k| k.to_ascii_lowercase()).as_deref(), len) {
        (Some(b"message"), 3) => Kind::Message,
        (Some(b"smessage"), 3) => Kind::SMessage,
        (Some(b"pmessage"), 4) => Kind::PMessage,
        (Some(b"subscribe"), 3) => Kind::Subscribe,
        (Some(b"psubscribe"), 3) => Kind::PSubscribe,
        (Some(b"ssubscribe"), 3) => Kind::SSubscribe,
        (Some(b"unsubscribe"), 3) => Kind::Unsubscribe,
        (Some(b"punsubscribe"), 3) => Kind::PUnsubscribe,
        (Some(b"sunsubscribe"), 3) => Kind::SUnsubscribe,
        (Some(b"pong"), 2) => Kind::Pong,
        _ => return other(frame),
    };
    let (Reply::Array(mut items) | Reply::Push(mut items)) = frame else {
        unreachable!("only arrays and pushes get here")
    };
    let mut m = Message::event(kind, 0, None);
    match kind {
        Kind::Message | Kind::SMessage => {
            m.channel = take_bytes(&mut items[1]);
            m.payload = take_bytes(&mut items[2]);
        }
        Kind::PMessage => {
            m.pattern = take_bytes(&mut items[1]);
            m.channel = take_bytes(&mut items[2]);
            m.payload = take_bytes(&mut items[3]);
        }
        Kind::Pong => m.payload = take_bytes(&mut items[1]),
        _ => {
            m.channel = take_bytes(&mut items[1]);
            if let Reply::Integer(n) = items[2] {
                m.count = n;
            }
        }
    }
    m
}

fn other(frame: Reply) -> Message {
    let mut m = Message::event(Kind::Push, 0, None);
    m.reply = Some(frame);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Reply {
        Reply::String(x.as_bytes().to_vec())
    }

    #[test]
    fn decodes_resp2_and_resp3_frames() {
        for wrap in [Reply::Array as fn(Vec<Reply>) -> Reply, Reply::Push] {
            let m = decode(wrap(vec![s("message"), s("ch"), s("hi")]));
            assert_eq!(m.kind, Kind::Message);
            assert_eq!(m.channel.as_deref(), Some(&b"ch"[..]));
            assert_eq!(m.payload.as_deref(), Some(&b"hi"[..]));
            let m = decode(wrap(vec![s("pmessage"), s("c*"), s("ch"), s("hi")]));
            assert_eq!(m.kind, Kind::PMessage);
            assert_eq!(m.pattern.as_deref(), Some(&b"c*"[..]));
            assert_eq!(m.channel.as_deref(), Some(&b"ch"[..]));
            let m = decode(wrap(vec![s("ssubscribe"), s("ch"), Reply::Integer(2)]));
            assert_eq!((m.kind, m.count), (Kind::SSubscribe, 2));
            let m = decode(wrap(vec![s("unsubscribe"), Reply::Nil, Reply::Integer(0)]));
            assert_eq!((m.kind, m.channel), (Kind::Unsubscribe, None));
            let m = decode(wrap(vec![s("invalidate"), Reply::Array(vec![s("k")])]));
            assert_eq!(m.kind, Kind::Push);
            assert!(m.reply.is_some());
        }
        assert_eq!(decode(Reply::Status(b"PONG".to_vec())).kind, Kind::Pong);
        let m = decode(Reply::Array(vec![s("pong"), s("x")]));
        assert_eq!((m.kind, m.payload), (Kind::Pong, Some(b"x".to_vec())));
        assert_eq!(
            decode(Reply::Error(b"MOVED 1 h:1".to_vec())).kind,
            Kind::Error
        );
        assert_eq!(decode(Reply::Integer(3)).kind, Kind::Push);
    }
}
