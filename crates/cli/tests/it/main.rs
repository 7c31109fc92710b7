//! The `returns` binary's integration tests: one test binary, one module per scenario, each
//! driving the real binary (`CARGO_BIN_EXE_returns`) on its own temporary data directory and, on
//! Kafka, its own namespace. The modules' tests run in parallel threads of this one process, so
//! none of them changes process-wide state (environment, current directory): what a spawned
//! `returns` needs is set on its `Command`.
//!
//! `common` holds what several modules share: team processes, a private broker, a sandbox.

mod audit_replay;
mod common;
mod compare;
mod dashboard;
mod demo;
mod dlq_redrive;
mod intake;
mod kafka_processes;
mod kill_broker;
mod kill_teams;
mod late_subscriber;
mod serve_api;
mod versions;
mod views;
