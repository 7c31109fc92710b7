//! The running side of the event-sourced model.
//!
//! - [`Publisher`]: User Support appends `RefundRequest`s to `returnOrders`.
//! - [`TeamService`]: one team as a consumer group of `returnOrders`. For each batch it applies
//!   the team's pure rule inside one transaction of the team's own store ([`TeamStore`]): the
//!   effect, the ids of the events handled, and the team's outgoing events (its outbox). Only
//!   then does it commit its position in the log.
//! - [`relay`]: moves a team's outbox to the team's own topic, its audit trail.
//!
//! Invariants: a redelivered event never produces a second effect (dedup by event id in the
//! same transaction as the effect); an outgoing event is created once, with its id, inside that
//! transaction, so a relay that dies half-way publishes the same event again, never a new one;
//! a record that cannot be read is dead-lettered, and the records around it go on.

pub mod analytics;
pub mod audit;
pub mod data_dir;
pub mod dead_letters;
mod error;
pub mod faults;
pub mod intake;
pub mod metrics;
pub mod pipeline;
pub mod projection;
mod publisher;
pub mod relay;
pub mod replay;
pub mod retry;
pub mod schedule;
pub mod status;
pub mod store;
pub mod supervisor;
mod team_service;
mod teams;

pub use error::ServiceError;
pub use faults::{CrashPoint, Faults};
pub use intake::{open_log_when_reachable, Acceptance, IntakeStore};
pub use metrics::TeamMetrics;
pub use pipeline::Pipeline;
pub use projection::{Projection, ProjectionRunner, ViewStore};
pub use publisher::Publisher;
pub use retry::RetryPolicy;
pub use schedule::{FaultPlan, RunClock, TeamFaultState};
pub use store::TeamStore;
pub use supervisor::Supervisor;
pub use team_service::{TeamConfig, TeamService};
pub use teams::{open_store_view, spawn_team, spawn_team_scheduled, StoreView, TeamName};
