use std::path::PathBuf;
use std::sync::Arc;

use crate::kafka::{KafkaConfig, KafkaLog};
use crate::sqlite::SqliteLog;
use crate::{EventLog, LogError};

/// Partitions per topic unless the URL says otherwise (the same default as the Kafka backend).
pub const DEFAULT_PARTITIONS: u32 = 3;

/// Where the event log lives, parsed from a URL such as `sqlite://returns-data/log.db` or
/// `sqlite:///var/lib/returns/log.db?partitions=6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogUrl {
    Sqlite { path: PathBuf, partitions: u32 },
    Kafka(KafkaConfig),
}

impl LogUrl {
    pub fn parse(url: &str) -> Result<Self, LogError> {
        let invalid = |reason: &str| LogError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("missing scheme"))?;
        if scheme == "kafka" {
            return Ok(LogUrl::Kafka(KafkaConfig::parse(rest, &invalid)?));
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut partitions = DEFAULT_PARTITIONS;
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            match pair.split_once('=') {
                Some(("partitions", n)) => {
                    partitions = n
                        .parse()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .ok_or_else(|| invalid("partitions must be a number from 1 to 1024"))?;
                }
                _ => return Err(invalid(&format!("unknown parameter `{pair}`"))),
            }
        }
        match scheme {
            "sqlite" => {
                if path.is_empty() {
                    return Err(invalid("missing file path"));
                }
                Ok(LogUrl::Sqlite {
                    path: PathBuf::from(path),
                    partitions,
                })
            }
            other => Err(invalid(&format!("unknown scheme `{other}`"))),
        }
    }
}

/// Open the event log a URL names.
pub async fn open(url: &str) -> Result<Arc<dyn EventLog>, LogError> {
    match LogUrl::parse(url)? {
        LogUrl::Sqlite { path, partitions } => {
            let log = SqliteLog::open(&path, partitions).await?;
            Ok(Arc::new(log))
        }
        LogUrl::Kafka(config) => Ok(Arc::new(KafkaLog::open(config).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relative_and_absolute_sqlite_urls() {
        assert_eq!(
            LogUrl::parse("sqlite://returns-data/log.db").unwrap(),
            LogUrl::Sqlite {
                path: "returns-data/log.db".into(),
                partitions: 3
            }
        );
        assert_eq!(
            LogUrl::parse("sqlite:///tmp/x/log.db?partitions=8").unwrap(),
            LogUrl::Sqlite {
                path: "/tmp/x/log.db".into(),
                partitions: 8
            }
        );
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for (url, needle) in [
            ("returns-data/log.db", "missing scheme"),
            ("sqlite://", "missing file path"),
            ("ftp://x", "unknown scheme"),
            ("sqlite://x.db?partitions=0", "partitions"),
            ("sqlite://x.db?color=red", "unknown parameter"),
        ] {
            let err = LogUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
