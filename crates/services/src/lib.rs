//! The running side of the event-sourced model, in folders that say what they are:
//!
//! - [`team`]: one team as a consumer group of `returnOrders` ([`TeamService`]). For each batch
//!   it applies the team's pure rule inside one transaction of the team's own store
//!   ([`TeamStore`]): the effect, the ids of the events handled, and the team's outgoing events
//!   (its outbox). Only then does it commit its position in the log. Its [`team::relay`] moves
//!   the outbox to the team's own topic, its audit trail; a [`Supervisor`] takes teams offline
//!   and back.
//! - [`user_support`]: User Support's intake (its store and outbox, [`IntakeStore`]) and the
//!   [`Publisher`] that appends `RefundRequest`s directly.
//! - [`views`]: read models built from the log alone: User Support's status view and the
//!   analytics view, fed by one runner ([`ProjectionRunner`]).
//! - [`tools`]: the audit trail of a return, rebuilding a team's state from its topic (replay),
//!   and dead letters.
//! - [`faults`]: injected crashes (tests) and scheduled outages, slowness and errors (compare).
//! - [`Pipeline`]: the relay, the teams and the views of one process, started and stopped as one.
//! - [`retry`]: the one backoff policy for transient failures; [`data_dir`]: a data directory
//!   belongs to one log.
//!
//! Invariants: a redelivered event never produces a second effect (dedup by event id in the
//! same transaction as the effect); an outgoing event is created once, with its id, inside that
//! transaction, so a relay that dies half-way publishes the same event again, never a new one;
//! a record that cannot be read is dead-lettered, and the records around it go on.

pub mod data_dir;
mod error;
pub mod faults;
pub mod metrics;
pub mod pipeline;
pub mod retry;
pub mod team;
pub mod tools;
pub mod user_support;
pub mod views;

pub use error::ServiceError;
pub use faults::schedule::{FaultPlan, RunClock, TeamFaultState};
pub use faults::{CrashPoint, Faults};
pub use metrics::TeamMetrics;
pub use pipeline::Pipeline;
pub use retry::RetryPolicy;
pub use team::service::{TeamConfig, TeamService};
pub use team::store::TeamStore;
pub use team::supervisor::Supervisor;
pub use team::{open_store_view, spawn_team, spawn_team_scheduled, StoreView, TeamName};
pub use user_support::intake::{open_log_when_reachable, Acceptance, IntakeStore};
pub use user_support::publisher::Publisher;
pub use views::projection::{Projection, ProjectionRunner, ViewStore};
