use std::path::PathBuf;
use std::sync::Arc;

use returns_eventlog::{EventLog, LogError, LogUrl};

#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Directory for the teams' stores (and the embedded log, unless --log says otherwise).
    /// It belongs to the first log it is used with; another log is refused. Default: the
    /// directory of a sqlite:// --log, returns-data/kafka-CLUSTER_ID for a Kafka log, else
    /// returns-data.
    #[arg(long, global = true, env = "RETURNS_DATA")]
    pub data: Option<PathBuf>,
    /// The event log: sqlite://DIR/log.db (default: sqlite://<data>/log.db) or
    /// kafka://HOST:PORT[?partitions=N&namespace=NS&<librdkafka setting>=VALUE...].
    /// (`--help` does not show the environment's value: it may hold a password.)
    #[arg(long, global = true, env = "RETURNS_LOG", hide_env_values = true)]
    pub log: Option<String>,
}

const DEFAULT_DATA: &str = "returns-data";

impl Global {
    pub fn log_url(&self) -> String {
        self.log
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_root().join("log.db").display()))
    }

    /// `--data`; without it the directory of an embedded log named by `--log` (its stores sit
    /// beside it), or `returns-data`.
    pub fn data_root(&self) -> PathBuf {
        if let Some(data) = &self.data {
            return data.clone();
        }
        match self.log.as_deref().map(LogUrl::parse) {
            Some(Ok(LogUrl::Sqlite { path, .. })) => match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            },
            _ => DEFAULT_DATA.into(),
        }
    }

    /// Where the stores are for this log: the data directory, bound to the log
    /// ([`returns_services::data_dir::bind`]) before any store in it is opened. A directory
    /// already bound to another log is an error that names both.
    pub fn data_dir(&self, log: &dyn EventLog) -> anyhow::Result<PathBuf> {
        let dir = match (&self.data, log.instance()) {
            (None, Some(instance)) => self.data_root().join(instance),
            _ => self.data_root(),
        };
        returns_services::data_dir::bind(&dir, log)?;
        Ok(dir)
    }

    /// Where the stores go, when that is known without reaching the log: with `--data`, or for
    /// a log inside the data directory. `None` for a Kafka log without `--data`, whose stores
    /// are named by the cluster's id, which only the cluster can tell.
    pub fn data_dir_without_log(&self) -> Option<PathBuf> {
        match (&self.data, LogUrl::parse(&self.log_url())) {
            (None, Ok(LogUrl::Kafka(_))) => None,
            _ => Some(self.data_root()),
        }
    }

    /// The log's URL for messages, before the log is open: secret settings show as `***`.
    pub fn describe_log(&self) -> String {
        let url = self.log_url();
        match LogUrl::parse(&url) {
            Ok(LogUrl::Kafka(config)) => config.describe(),
            Ok(LogUrl::Sqlite { .. }) => url,
            Err(_) => redact_query(&url),
        }
    }

    /// The log URL, checked, or an error that names it without its secrets.
    pub fn check_log_url(&self) -> anyhow::Result<String> {
        let url = self.log_url();
        match LogUrl::parse(&url) {
            Ok(_) => Ok(url),
            Err(e) => Err(self.log_error(e)),
        }
    }

    /// A log error as the user sees it: an invalid URL is named without its secrets.
    pub fn log_error(&self, e: LogError) -> anyhow::Error {
        match e {
            LogError::InvalidUrl { reason, .. } => anyhow::anyhow!(
                "event log URL `{}` is not valid: {reason} (expected sqlite://DIR/log.db or kafka://HOST:PORT)",
                self.describe_log()
            ),
            other => anyhow::Error::new(other)
                .context(format!("cannot open the event log {}", self.describe_log())),
        }
    }

    pub async fn open_log(&self) -> anyhow::Result<Arc<dyn EventLog>> {
        returns_eventlog::open(&self.check_log_url()?)
            .await
            .map_err(|e| self.log_error(e))
    }
}

/// A URL that does not parse, with the value of every query parameter but the few known to be
/// harmless replaced by `***`: whatever it holds, a password is not printed.
fn redact_query(url: &str) -> String {
    const SHOWN: [&str; 4] = ["partitions", "replication", "namespace", "config"];
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if SHOWN.contains(&key) => format!("{key}={value}"),
            Some((key, _)) => format!("{key}=***"),
            None => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(log: &str) -> Global {
        Global {
            data: None,
            log: Some(log.to_string()),
        }
    }

    #[test]
    fn a_log_url_is_described_without_its_secrets() {
        let valid = global("kafka://127.0.0.1:9092?sasl.password=hunter2-hunter2&namespace=t");
        assert!(
            !valid.describe_log().contains("hunter2"),
            "{}",
            valid.describe_log()
        );
        let invalid = global("kafka://127.0.0.1:9092?sasl.password=hunter2-hunter2&partitions=0");
        let shown = invalid.describe_log();
        assert!(
            !shown.contains("hunter2") && shown.contains("partitions=0"),
            "{shown}"
        );
        let e = format!("{:#}", invalid.check_log_url().unwrap_err());
        assert!(!e.contains("hunter2") && e.contains("partitions"), "{e}");
    }

    #[test]
    fn the_data_dir_is_known_without_the_log_except_for_kafka_without_data() {
        assert_eq!(
            global("sqlite://x/log.db").data_dir_without_log(),
            Some(PathBuf::from("x"))
        );
        assert_eq!(
            global("kafka://127.0.0.1:9092").data_dir_without_log(),
            None
        );
        let with_data = Global {
            data: Some("d".into()),
            log: Some("kafka://127.0.0.1:9092".into()),
        };
        assert_eq!(with_data.data_dir_without_log(), Some(PathBuf::from("d")));
    }

    #[test]
    fn an_embedded_log_named_by_log_keeps_its_stores_beside_it() {
        assert_eq!(
            global("sqlite://one/log.db").data_root(),
            PathBuf::from("one")
        );
        assert_eq!(global("sqlite://log.db").data_root(), PathBuf::from("."));
        let default = Global {
            data: None,
            log: None,
        };
        assert_eq!(default.data_root(), PathBuf::from(DEFAULT_DATA));
        assert_eq!(default.log_url(), "sqlite://returns-data/log.db");
        let with_data = Global {
            data: Some("d".into()),
            log: Some("sqlite://one/log.db".into()),
        };
        assert_eq!(with_data.data_root(), PathBuf::from("d"));
    }
}
