use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use returns_domain::{Accounting, Inventory, Manufacturing, Sales, Team};
use returns_eventlog::EventLog;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{ServiceError, TeamMetrics, TeamService};

/// The four teams that react to a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TeamName {
    Sales,
    Inventory,
    Manufacturing,
    Accounting,
}

impl TeamName {
    pub const ALL: [TeamName; 4] = [
        TeamName::Sales,
        TeamName::Inventory,
        TeamName::Manufacturing,
        TeamName::Accounting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TeamName::Sales => Sales::NAME,
            TeamName::Inventory => Inventory::NAME,
            TeamName::Manufacturing => Manufacturing::NAME,
            TeamName::Accounting => Accounting::NAME,
        }
    }
}

impl std::fmt::Display for TeamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TeamName {
    type Err = ServiceError;

    fn from_str(s: &str) -> Result<Self, ServiceError> {
        TeamName::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ServiceError::UnknownTeam(s.to_string()))
    }
}

/// Start one team's service as a task (default batch sizes, no injected faults).
pub fn spawn_team(
    team: TeamName,
    log: Arc<dyn EventLog>,
    data_dir: PathBuf,
    metrics: Arc<TeamMetrics>,
    shutdown: CancellationToken,
) -> JoinHandle<Result<(), ServiceError>> {
    fn go<T: Team>(
        log: Arc<dyn EventLog>,
        data_dir: PathBuf,
        metrics: Arc<TeamMetrics>,
        shutdown: CancellationToken,
    ) -> JoinHandle<Result<(), ServiceError>> {
        tokio::spawn(
            TeamService::<T>::new(log, data_dir)
                .with_metrics(metrics)
                .run(shutdown),
        )
    }
    let go = match team {
        TeamName::Sales => go::<Sales>,
        TeamName::Inventory => go::<Inventory>,
        TeamName::Manufacturing => go::<Manufacturing>,
        TeamName::Accounting => go::<Accounting>,
    };
    go(log, data_dir, metrics, shutdown)
}
