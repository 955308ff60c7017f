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

/// Decodes one frame of a subscriber's stream.
pub fn decode(frame: Reply) -> Message {
    let items = match &frame {
        Reply::Array(v) | Reply::Push(v) => v,
        // A PING's answer outside subscribe mode (+PONG), or in RESP3 (bulk payload).
        Reply::Status(_) | Reply::String(_) => {
            let mut m = Message::event(Kind::Pong, 0, bytes(&frame));
            if let Some(Reply::Status(s)) = Some(&frame) {
                if s.eq_ignore_ascii_case(b"PONG") {
                    m.payload = Some(Vec::new());
                }
            }
            return m;
        }
        Reply::Error(e) => return Message::event(Kind::Error, 0, Some(e.clone())),
        _ => return other(frame),
    };
    let Some(name) = items.first().and_then(bytes) else {
        return other(frame);
    };
    let name = name.to_ascii_lowercase();
    let arg = |i: usize| items.get(i).and_then(bytes);
    let count = |i: usize| match items.get(i) {
        Some(Reply::Integer(n)) => *n,
        _ => 0,
    };
    let sub = |kind: Kind| {
        let mut m = Message::event(kind, count(2), None);
        m.channel = arg(1);
        m
    };
    match (name.as_slice(), items.len()) {
        (b"message", 3) | (b"smessage", 3) => {
            let kind = if name == b"message" {
                Kind::Message
            } else {
                Kind::SMessage
            };
            let mut m = Message::event(kind, 0, arg(2));
            m.channel = arg(1);
            m
        }
        (b"pmessage", 4) => {
            let mut m = Message::event(Kind::PMessage, 0, arg(3));
            m.pattern = arg(1);
            m.channel = arg(2);
            m
        }
        (b"subscribe", 3) => sub(Kind::Subscribe),
        (b"psubscribe", 3) => sub(Kind::PSubscribe),
        (b"ssubscribe", 3) => sub(Kind::SSubscribe),
        (b"unsubscribe", 3) => sub(Kind::Unsubscribe),
        (b"punsubscribe", 3) => sub(Kind::PUnsubscribe),
        (b"sunsubscribe", 3) => sub(Kind::SUnsubscribe),
        (b"pong", 2) => Message::event(Kind::Pong, 0, arg(1)),
        _ => other(frame),
    }
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
