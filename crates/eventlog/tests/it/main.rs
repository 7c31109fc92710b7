//! The event log's integration tests: one test binary, one module per scenario: the
//! conformance suite on each backend, and the wire format's golden files and JSON Schemas (the
//! golden files are in `tests/golden/`).

mod kafka_conformance;
mod schemas;
mod sqlite_conformance;
mod wire_golden;
