//! The HTTP routers' integration tests: one test binary, one module per scenario, the routers
//! called in process (`oneshot`) or on a listener on port 0, each test on its own data
//! directory.

mod api;
mod hostile_input;
mod intake_endpoint;
mod team_endpoints;
