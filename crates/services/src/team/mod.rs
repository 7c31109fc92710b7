//! One team: its service ([`service`]), its own store ([`store`]), the relay that moves its
//! outbox to its own topic ([`relay`]), and the [`supervisor`] that takes teams offline and
//! back; [`TeamName`] names every team once.

pub mod relay;
pub mod service;
pub mod store;
pub mod supervisor;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use returns_domain::{Accounting, Inventory, Manufacturing, Quality, Sales, Team};
use returns_eventlog::EventLog;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{ServiceError, TeamFaultState, TeamMetrics, TeamService, TeamStore};

/// The teams that read `returnOrders`, each as its own consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TeamName {
    Sales,
    Inventory,
    Manufacturing,
    Accounting,
    /// Counts defects per model and location; acts on nothing, so it can join late.
    Quality,
}

impl TeamName {
    /// The four teams that act on a return (refund, ship, disassemble, write off): what
    /// `returns demo`, `returns compare` and the traditional model run.
    pub const ALL: [TeamName; 4] = [
        TeamName::Sales,
        TeamName::Inventory,
        TeamName::Manufacturing,
        TeamName::Accounting,
    ];

    /// Teams that only observe returns. None of the commands that run [`TeamName::ALL`] starts
    /// them; each is started on its own (`returns run quality`), whenever, and catches up from
    /// the beginning of `returnOrders`.
    pub const LATE: [TeamName; 1] = [TeamName::Quality];

    /// Every team: [`TeamName::ALL`], then [`TeamName::LATE`].
    pub const EVERY: [TeamName; 5] = [
        TeamName::Sales,
        TeamName::Inventory,
        TeamName::Manufacturing,
        TeamName::Accounting,
        TeamName::Quality,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TeamName::Sales => Sales::NAME,
            TeamName::Inventory => Inventory::NAME,
            TeamName::Manufacturing => Manufacturing::NAME,
            TeamName::Accounting => Accounting::NAME,
            TeamName::Quality => Quality::NAME,
        }
    }

    /// The names of `teams`, in their order: `TeamName::names(TeamName::ALL)` is
    /// `["sales", "inventory", "manufacturing", "accounting"]`, as a constant.
    pub const fn names<const N: usize>(teams: [TeamName; N]) -> [&'static str; N] {
        let mut names = [""; N];
        let mut i = 0;
        while i < N {
            names[i] = teams[i].as_str();
            i += 1;
        }
        names
    }

    /// Whether the team is one of [`TeamName::LATE`]: it acts on nothing, and nobody waits
    /// for its decision.
    pub fn is_late(self) -> bool {
        TeamName::LATE.contains(&self)
    }

    /// What the team makes of a return, in a few words (the dashboard's lanes).
    pub fn produces(self) -> &'static str {
        match self {
            TeamName::Sales => "order refund",
            TeamName::Inventory => "replacement shipment",
            TeamName::Manufacturing => "disassembly order",
            TeamName::Accounting => "asset disposal charge",
            TeamName::Quality => "defect rate per model & location",
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
        TeamName::EVERY
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
    spawn_team_scheduled(
        team,
        log,
        data_dir,
        metrics,
        TeamFaultState::none(),
        shutdown,
    )
}

/// Start one team's service as a task, slowed down and failing as `schedule` says.
pub fn spawn_team_scheduled(
    team: TeamName,
    log: Arc<dyn EventLog>,
    data_dir: PathBuf,
    metrics: Arc<TeamMetrics>,
    schedule: TeamFaultState,
    shutdown: CancellationToken,
) -> JoinHandle<Result<(), ServiceError>> {
    fn go<T: Team>(
        log: Arc<dyn EventLog>,
        data_dir: PathBuf,
        metrics: Arc<TeamMetrics>,
        schedule: TeamFaultState,
        shutdown: CancellationToken,
    ) -> JoinHandle<Result<(), ServiceError>> {
        tokio::spawn(
            TeamService::<T>::new(log, data_dir)
                .with_metrics(metrics)
                .with_schedule(schedule)
                .run(shutdown),
        )
    }
    let go = match team {
        TeamName::Sales => go::<Sales>,
        TeamName::Inventory => go::<Inventory>,
        TeamName::Manufacturing => go::<Manufacturing>,
        TeamName::Accounting => go::<Accounting>,
        TeamName::Quality => go::<Quality>,
    };
    go(log, data_dir, metrics, schedule, shutdown)
}

/// What a report needs from a team's store, whatever the team.
pub trait StoreView {
    /// Effects per return id.
    fn effects_per_return(&self) -> Result<HashMap<String, u64>, ServiceError>;
    /// Every state row, in key order.
    fn state_rows(&self) -> Result<Vec<(String, String)>, ServiceError>;
    /// When each return was first decided (unix ms).
    fn decided_at(&self) -> Result<HashMap<String, i64>, ServiceError>;
}

impl<T: Team> StoreView for TeamStore<T> {
    fn effects_per_return(&self) -> Result<HashMap<String, u64>, ServiceError> {
        TeamStore::effects_per_return(self)
    }
    fn state_rows(&self) -> Result<Vec<(String, String)>, ServiceError> {
        TeamStore::state_rows(self)
    }
    fn decided_at(&self) -> Result<HashMap<String, i64>, ServiceError> {
        TeamStore::decided_at(self)
    }
}

/// Open a team's store in `dir` for reading reports.
pub fn open_store_view(team: TeamName, dir: &Path) -> Result<Box<dyn StoreView>, ServiceError> {
    Ok(match team {
        TeamName::Sales => Box::new(TeamStore::<Sales>::open(dir)?),
        TeamName::Inventory => Box::new(TeamStore::<Inventory>::open(dir)?),
        TeamName::Manufacturing => Box::new(TeamStore::<Manufacturing>::open(dir)?),
        TeamName::Accounting => Box::new(TeamStore::<Accounting>::open(dir)?),
        TeamName::Quality => Box::new(TeamStore::<Quality>::open(dir)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_team_is_the_four_that_act_then_the_late_ones() {
        let joined: Vec<TeamName> = TeamName::ALL.into_iter().chain(TeamName::LATE).collect();
        assert_eq!(joined, TeamName::EVERY);
        assert!(!TeamName::ALL.contains(&TeamName::Quality));
        assert!(TeamName::Quality.is_late() && !TeamName::Sales.is_late());
        assert_eq!(
            TeamName::names(TeamName::ALL),
            ["sales", "inventory", "manufacturing", "accounting"]
        );
    }

    #[test]
    fn every_team_parses_from_its_name() {
        for team in TeamName::EVERY {
            assert_eq!(team.as_str().parse::<TeamName>().unwrap(), team);
        }
        assert_eq!("quality".parse::<TeamName>().unwrap(), TeamName::Quality);
        assert!(matches!(
            "Quality".parse::<TeamName>(),
            Err(ServiceError::UnknownTeam(name)) if name == "Quality"
        ));
    }
}
