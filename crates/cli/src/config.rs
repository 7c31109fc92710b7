use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use returns_eventlog::EventLog;

#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Directory for the teams' stores (and the embedded log, unless --log says otherwise).
    #[arg(
        long,
        global = true,
        env = "RETURNS_DATA",
        default_value = "returns-data"
    )]
    pub data: PathBuf,
    /// The event log: sqlite://DIR/log.db (default: sqlite://<data>/log.db).
    #[arg(long, global = true, env = "RETURNS_LOG")]
    pub log: Option<String>,
}

impl Global {
    pub fn log_url(&self) -> String {
        self.log
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data.join("log.db").display()))
    }

    pub async fn open_log(&self) -> anyhow::Result<Arc<dyn EventLog>> {
        let url = self.log_url();
        returns_eventlog::open(&url)
            .await
            .with_context(|| format!("cannot open the event log {url}"))
    }
}
