use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use returns_eventlog::EventLog;

#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Directory for the teams' stores (and the embedded log, unless --log says otherwise).
    /// Default: returns-data, or returns-data/kafka-CLUSTER_ID for a Kafka log, so stores built
    /// from one cluster are never mixed with another's.
    #[arg(long, global = true, env = "RETURNS_DATA")]
    pub data: Option<PathBuf>,
    /// The event log: sqlite://DIR/log.db (default: sqlite://<data>/log.db) or
    /// kafka://HOST:PORT[?partitions=N&namespace=NS&<librdkafka setting>=VALUE...].
    #[arg(long, global = true, env = "RETURNS_LOG")]
    pub log: Option<String>,
}

const DEFAULT_DATA: &str = "returns-data";

impl Global {
    pub fn log_url(&self) -> String {
        self.log
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_root().join("log.db").display()))
    }

    /// `--data`, or `returns-data` without it.
    pub fn data_root(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(|| DEFAULT_DATA.into())
    }

    /// Where the teams keep their stores, for this log.
    pub fn data_dir(&self, log: &dyn EventLog) -> PathBuf {
        match (&self.data, log.instance()) {
            (None, Some(instance)) => self.data_root().join(instance),
            _ => self.data_root(),
        }
    }

    pub async fn open_log(&self) -> anyhow::Result<Arc<dyn EventLog>> {
        let url = self.log_url();
        returns_eventlog::open(&url)
            .await
            .with_context(|| format!("cannot open the event log {url}"))
    }
}
