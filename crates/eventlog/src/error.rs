use std::path::PathBuf;

/// Why the event log could not do what was asked. All of these are failures to read or write,
/// never business rejections.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log URL `{url}` is not valid: {reason} (expected sqlite://DIR/log.db)")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot open the event log at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the directory {path} for the event log: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("event log storage failed: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error("partition {partition} of topic `{topic}` does not exist")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("consumer group `{group}` has a newer member; this subscription is fenced off (generation {generation})")]
    Fenced { group: String, generation: i64 },
    #[error("the event log has shut down")]
    Closed,
}

impl LogError {
    /// A transient failure: retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            LogError::Storage(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}
