//! The services' integration tests: one test binary, one module per scenario, each on its own
//! log file and data directory; `common` holds what several modules share.

mod common;
mod crash;
mod dead_letters;
mod intake;
mod poison;
mod shutdown;
mod status_view;
mod transient;
