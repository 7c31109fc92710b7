//! The conformance suite on the embedded SQLite backend: each check gets its own log file.

use std::sync::Arc;

use returns_eventlog::conformance::unique;
use returns_eventlog::sqlite::SqliteLog;
use returns_eventlog::EventLog;

async fn open() -> Arc<dyn EventLog> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(unique("conformance"))
        .join("log.db");
    Arc::new(SqliteLog::open(&path, 3).await.expect("open log"))
}

returns_eventlog::conformance_tests!(open());
