//! Pub/Sub: a subscriber on conns of its own, resubscribed after a lost conn.

mod message;
mod subscriber;

pub use message::{Kind, Message, decode};
pub use subscriber::{Family, PingState, Source, Subscriber};
