//! The conformance suite on a real Kafka broker, named by `RETURNS_KAFKA_BOOTSTRAP`
//! (`bash scripts/test.sh` starts one and sets it). Without it, every test here is ignored with
//! the reason shown by `cargo test`.

use std::sync::Arc;

use returns_eventlog::kafka::{KafkaConfig, KafkaLog};
use returns_eventlog::EventLog;

async fn open() -> Arc<dyn EventLog> {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP")
        .expect("RETURNS_KAFKA_BOOTSTRAP names the broker (bash scripts/test.sh sets it)");
    let log = KafkaLog::open(KafkaConfig::new(bootstrap))
        .await
        .expect("the Kafka broker named by RETURNS_KAFKA_BOOTSTRAP answers");
    Arc::new(log)
}

returns_eventlog::conformance_tests!(
    open(),
    #[cfg_attr(
        not(kafka_broker),
        ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
    )]
);
