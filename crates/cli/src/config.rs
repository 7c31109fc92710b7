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
        self.log.clone().unwrap_or_else(|| {
            let data = self.data.clone().unwrap_or_else(|| DEFAULT_DATA.into());
            format!("sqlite://{}", data.join("log.db").display())
        })
    }

    /// Where the teams keep their stores, for this log.
    pub fn data_dir(&self, log: &dyn EventLog) -> PathBuf {
        match (&self.data, log.instance()) {
            (Some(dir), _) => dir.clone(),
            (None, Some(instance)) => PathBuf::from(DEFAULT_DATA).join(instance),
            (None, None) => PathBuf::from(DEFAULT_DATA),
        }
    }

    pub async fn open_log(&self) -> anyhow::Result<Arc<dyn EventLog>> {
        let url = self.log_url();
        returns_eventlog::open(&url)
            .await
            .with_context(|| format!("cannot open the event log {url}"))
    }
}
