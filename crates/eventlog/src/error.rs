use std::path::PathBuf;

/// Why the event log could not do what was asked. All of these are failures to read or write,
/// never business rejections.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log URL `{url}` is not valid: {reason} (expected sqlite://DIR/log.db or kafka://HOST:PORT)")]
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
    #[error("Kafka {op} failed: {source}{}", kafka_hint(source))]
    Kafka {
        op: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("Kafka {op} did not finish within {seconds} s (is the broker up? `bash scripts/kafka.sh status`)")]
    Timeout { op: &'static str, seconds: u64 },
}

/// A hint for the errors a user can fix.
fn kafka_hint(e: &rdkafka::error::KafkaError) -> &'static str {
    use rdkafka::types::RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(C::AllBrokersDown | C::BrokerTransportFailure | C::Resolve | C::OperationTimedOut) => {
            " (is the broker up? `bash scripts/kafka.sh start` runs one on 127.0.0.1)"
        }
        Some(
            C::TopicAuthorizationFailed | C::GroupAuthorizationFailed | C::SaslAuthenticationFailed,
        ) => " (check the security settings passed in the kafka:// URL)",
        _ => "",
    }
}

impl LogError {
    /// A transient failure: retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            LogError::Storage(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            LogError::Kafka { source, .. } => crate::kafka::is_transient(source),
            LogError::Timeout { .. } => true,
            _ => false,
        }
    }
}
