//! The event log: the one thing the teams share.
//!
//! - [`EventLog`] and [`Subscription`] are the contract every backend keeps: append a batch of
//!   records to a topic (a record's key picks its partition, so one key stays in order), read a
//!   topic as a consumer group starting from the group's committed position, and commit a new
//!   position once the effects of what was read are durable. Whatever a group read but did not
//!   commit is delivered again to the group's next subscriber.
//! - [`envelope`] maps the CloudEvents 1.0 attributes (id, type, source, time, correlation and
//!   causation ids) onto record headers, the same way for every backend.
//! - [`wire`] is the only module that decides bytes: versioned event types, encode and decode.
//! - Backends: [`sqlite`] (the embedded default, `sqlite://DIR/log.db`) and [`kafka`]
//!   (`kafka://HOST:PORT`, on librdkafka).
//! - [`conformance`] (feature `testkit`) is the test suite every backend must pass, and
//!   [`testkit::Wrapper`] a log that wraps another and meddles with a few calls.

pub mod envelope;
mod error;
pub mod kafka;
mod log;
pub mod record;
pub mod sqlite;
mod url;
pub mod wire;

#[cfg(feature = "testkit")]
pub mod conformance;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::LogError;
pub use log::{EventLog, Subscription};
pub use record::{positions_after, OutRecord, Position, Record, TopicPartition};
pub use url::{open, LogUrl};

/// The topic User Support publishes every `RefundRequest` to (named in the original brief).
pub const RETURN_ORDERS: &str = "returnOrders";

/// The topic a team publishes its own events to: its audit trail.
pub fn team_topic(team: &str) -> String {
    format!("returns.{team}.events")
}

/// The consumer group a team reads `returnOrders` with.
pub fn team_group(team: &str) -> String {
    format!("returns.{team}")
}

/// The dead-letter topic of one consumer group reading one topic.
pub fn dead_letter_topic(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.dlt")
}
