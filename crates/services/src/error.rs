use std::path::PathBuf;

use returns_eventlog::LogError;

use crate::faults::CrashPoint;

/// Why a service stopped or an operation failed. Business rejections are never errors: they are
/// events in the team's log.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the {team} store at {path} failed: {source}")]
    Store {
        team: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the data directory {dir} holds state built from the event log {} (identity {}), not from \
         {} (identity {}) (hint: give this log a data directory of its own with --data DIR, or \
         delete {dir} to start over from this log)",
        bound.log, bound.identity, this.log, this.identity, dir = dir.display()
    )]
    OtherLog {
        dir: PathBuf,
        bound: Box<crate::data_dir::Bound>,
        this: Box<crate::data_dir::Bound>,
    },
    #[error(
        "the view file {path} was written by a newer build (layout {found}; this build knows {known}) (hint: run the newer build, or delete the file and this build rebuilds it from the log)"
    )]
    NewerLayout {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("no {team} store at {path} (hint: run `returns demo` or `returns run {team}` with the same --data and --log first)")]
    NoStore { team: &'static str, path: PathBuf },
    #[error(
        "unknown team `{0}` (expected sales, inventory, manufacturing, accounting or quality)"
    )]
    UnknownTeam(String),
    /// A crash injected by a test at a named point: the service stops as abruptly as a killed
    /// process would, without committing or draining anything.
    #[error("injected crash at {0:?}")]
    InjectedCrash(CrashPoint),
    #[error("a background task of the {0} team failed to finish")]
    Task(&'static str),
}

impl ServiceError {
    /// A failure that may pass if the same work is tried again later.
    pub fn is_transient(&self) -> bool {
        match self {
            ServiceError::Log(e) => e.is_transient(),
            ServiceError::Store { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}
