//! A data directory belongs to one event log.
//!
//! Every store in a data directory (each team's, User Support's intake and outbox, the views,
//! replays) is state built from one log: positions in it, event ids read from it. Opened with
//! another log, the same stores would see none of their positions and decide nothing, or
//! decide again what they already did. So a directory records the identity of the log it was
//! first used with ([`EventLog::identity`]), in `log-identity.json`, and [`bind`] refuses to
//! hand it to any other log. Commands bind it as soon as the log answers, before they open a
//! store in it; only `serve` and `publish` with `--data` may accept returns into User Support's
//! store while the log is down, and then bind it when the log answers, before anything is sent.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use returns_eventlog::EventLog;
use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// The file in a data directory that names its log.
pub const IDENTITY_FILE: &str = "log-identity.json";

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    /// The log's identity: what decides.
    pub identity: String,
    /// The log as it was described when the directory was bound (no secrets), for messages.
    pub log: String,
}

/// Binds `dir` to `log` on first use, and checks that it is `log`'s on every later one. Call it
/// after the log answers and before opening any store in `dir`.
pub fn bind(dir: &Path, log: &dyn EventLog) -> Result<(), ServiceError> {
    let this = Bound {
        identity: log.identity(),
        log: log.describe(),
    };
    let file = dir.join(IDENTITY_FILE);
    let bound = match read(&file)? {
        Some(bound) => bound,
        None => {
            create(dir, &file, &this)?;
            // Another process may have bound it first: what the file holds now decides.
            read(&file)?.ok_or_else(|| io(&file, ErrorKind::NotFound.into()))?
        }
    };
    if bound.identity == this.identity {
        Ok(())
    } else {
        Err(ServiceError::OtherLog {
            dir: dir.to_path_buf(),
            bound: Box::new(bound),
            this: Box::new(this),
        })
    }
}

/// The log a directory is bound to, if any.
pub fn bound_to(dir: &Path) -> Result<Option<Bound>, ServiceError> {
    read(&dir.join(IDENTITY_FILE))
}

fn read(file: &Path) -> Result<Option<Bound>, ServiceError> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io(file, std::io::Error::new(ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(file, e)),
    }
}

/// Writes the file whole or not at all: a temporary file, then a hard link under the final
/// name, which fails if the name exists (two processes binding at once: the first one wins).
fn create(dir: &Path, file: &Path, bound: &Bound) -> Result<(), ServiceError> {
    std::fs::create_dir_all(dir).map_err(|source| ServiceError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(
        ".{IDENTITY_FILE}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let written = write_synced(&tmp, bound).and_then(|()| match std::fs::hard_link(&tmp, file) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    });
    let _ = std::fs::remove_file(&tmp);
    written.map_err(|e| io(file, e))
}

fn write_synced(path: &Path, bound: &Bound) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(&serde_json::to_vec_pretty(bound).expect("a Bound serializes"))?;
    f.sync_all()
}

fn io(path: &Path, source: std::io::Error) -> ServiceError {
    ServiceError::DataDir {
        path: PathBuf::from(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn sqlite(path: &Path) -> Arc<dyn EventLog> {
        returns_eventlog::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_directory_is_bound_to_the_first_log_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let one = sqlite(&dir.path().join("one/log.db")).await;
        let two = sqlite(&dir.path().join("two/log.db")).await;

        bind(&data, one.as_ref()).unwrap();
        bind(&data, one.as_ref()).unwrap();
        let bound = bound_to(&data).unwrap().unwrap();
        assert_eq!(bound.identity, one.identity());

        let e = bind(&data, two.as_ref()).unwrap_err();
        let shown = e.to_string();
        assert!(matches!(e, ServiceError::OtherLog { .. }), "{shown}");
        assert!(shown.contains(&one.describe()), "{shown}");
        assert!(shown.contains(&two.describe()), "{shown}");
        assert!(shown.contains("--data"), "{shown}");
        assert_eq!(bound_to(&data).unwrap().unwrap(), bound, "unchanged");
    }

    #[tokio::test]
    async fn the_same_log_file_reopened_is_the_same_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        bind(dir.path(), sqlite(&path).await.as_ref()).unwrap();
        bind(dir.path(), sqlite(&path).await.as_ref()).unwrap();
    }
}
