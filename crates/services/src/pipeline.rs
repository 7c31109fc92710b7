//! The event-sourced side of one process, started and stopped as one: User Support's relay
//! (its outbox to `returnOrders`), the teams (under a [`Supervisor`], so any of them can be
//! taken offline and back), and, when asked for, User Support's status view and the analytics
//! view, followed continuously. `serve`, `demo` and `compare` are this pipeline plus their own
//! input and output.
//!
//! [`Pipeline::start`] spawns every part; [`Running::stopped_on_its_own`] tells a part that
//! ended without being stopped (it failed); [`Running::stop`] stops them in the order that
//! loses nothing: the relay first, given a grace to empty the outbox (what the log does not take
//! stays there, durable, for the next start), then the teams, each finishing and committing its
//! batch, then the views.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use returns_eventlog::EventLog;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::team::relay::Relay;
use crate::user_support::intake::{IntakeStore, USER_SUPPORT};
use crate::views::analytics::Analytics;
use crate::views::projection::{Incoming, ReturnsEvent};
use crate::views::status::StatusView;
use crate::{ProjectionRunner, ServiceError, Supervisor, TeamFaultState, TeamMetrics, TeamName};

type Task = JoinHandle<Result<(), ServiceError>>;
type Tap = Box<dyn Fn(&[Incoming<ReturnsEvent>]) + Send + Sync>;

/// What to start.
pub struct Pipeline {
    log: Arc<dyn EventLog>,
    data_dir: PathBuf,
    relay: Relay,
    teams: Vec<(TeamName, Arc<TeamMetrics>, TeamFaultState)>,
    views: bool,
    status_tap: Option<Tap>,
}

/// The name [`Running::stopped_on_its_own`] gives each view.
pub const STATUS_VIEW: &str = "the status view";
pub const ANALYTICS_VIEW: &str = "the analytics view";

impl Pipeline {
    /// User Support's relay from `intake`'s outbox (`wake` it after an accept to publish at
    /// once) and no team yet.
    pub fn new(
        log: Arc<dyn EventLog>,
        data_dir: PathBuf,
        intake: &IntakeStore,
        wake: Arc<Notify>,
    ) -> Result<Self, ServiceError> {
        let relay = intake.relay(
            Arc::clone(&log),
            wake,
            Arc::new(TeamMetrics::new(USER_SUPPORT)),
        )?;
        Ok(Pipeline {
            log,
            data_dir,
            relay,
            teams: Vec::new(),
            views: false,
            status_tap: None,
        })
    }

    /// Run these teams, each with its counters.
    pub fn with_teams(self, teams: impl IntoIterator<Item = (TeamName, Arc<TeamMetrics>)>) -> Self {
        self.with_scheduled_teams(
            teams
                .into_iter()
                .map(|(team, metrics)| (team, metrics, TeamFaultState::none())),
        )
    }

    /// Run these teams, each slowed down and failing as its schedule says.
    pub fn with_scheduled_teams(
        mut self,
        teams: impl IntoIterator<Item = (TeamName, Arc<TeamMetrics>, TeamFaultState)>,
    ) -> Self {
        self.teams.extend(teams);
        self
    }

    /// Follow User Support's status view and the analytics view too.
    pub fn with_views(mut self) -> Self {
        self.views = true;
        self
    }

    /// Shows `tap` every batch the status view applies (the dashboard's live lanes).
    pub fn with_status_tap(
        mut self,
        tap: impl Fn(&[Incoming<ReturnsEvent>]) + Send + Sync + 'static,
    ) -> Self {
        self.status_tap = Some(Box::new(tap));
        self
    }

    /// Spawn every part.
    pub fn start(self) -> Running {
        let stop_relay = CancellationToken::new();
        let stop_views = CancellationToken::new();
        let relay = tokio::spawn(self.relay.run(stop_relay.clone()));
        let teams = Arc::new(Supervisor::start_with_faults(
            Arc::clone(&self.log),
            self.data_dir.clone(),
            self.teams,
        ));
        let mut views: Vec<(&'static str, Task)> = Vec::new();
        if self.views {
            let mut status =
                ProjectionRunner::<StatusView>::new(Arc::clone(&self.log), self.data_dir.clone());
            if let Some(tap) = self.status_tap {
                status = status.with_tap(tap);
            }
            views.push((STATUS_VIEW, tokio::spawn(status.run(stop_views.clone()))));
            let analytics = ProjectionRunner::<Analytics>::new(self.log, self.data_dir);
            views.push((
                ANALYTICS_VIEW,
                tokio::spawn(analytics.run(stop_views.clone())),
            ));
        }
        Running {
            relay,
            stop_relay,
            teams,
            views,
            stop_views,
        }
    }
}

/// The parts, running.
pub struct Running {
    relay: Task,
    stop_relay: CancellationToken,
    teams: Arc<Supervisor>,
    views: Vec<(&'static str, Task)>,
    stop_views: CancellationToken,
}

/// How the relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The outbox was emptied.
    Emptied,
    /// The log did not take what was left (it stays in the outbox for the next start).
    Left(ServiceError),
    /// The grace ran out while an append was under way (what was left stays in the outbox).
    OutOfTime,
}

/// What [`Running::stop`] found.
#[derive(Debug)]
pub struct Stopped {
    pub relay: RelayEnd,
    /// Each part that failed (a team, a view, or a relay that panicked), named.
    pub failures: Vec<(String, ServiceError)>,
}

impl Running {
    /// The teams, to take one offline or bring it back, or read their states.
    pub fn teams(&self) -> &Arc<Supervisor> {
        &self.teams
    }

    /// A part that ended although nobody stopped it (it failed), if any: User Support's relay,
    /// a view ([`STATUS_VIEW`], [`ANALYTICS_VIEW`]) or a team.
    pub fn stopped_on_its_own(&self) -> Option<&'static str> {
        if self.relay.is_finished() {
            return Some(USER_SUPPORT);
        }
        if let Some((name, _)) = self.views.iter().find(|(_, v)| v.is_finished()) {
            return Some(name);
        }
        self.teams.stopped_on_its_own().map(TeamName::as_str)
    }

    /// Stops the relay (it empties the outbox first, for at most `relay_grace`), then the
    /// teams (each finishes and commits its batch), then the views.
    pub async fn stop(self, relay_grace: Duration) -> Stopped {
        let mut failures = Vec::new();
        self.stop_relay.cancel();
        let mut relay = self.relay;
        let relay = match tokio::time::timeout(relay_grace, &mut relay).await {
            Ok(Ok(Ok(()))) => RelayEnd::Emptied,
            Ok(Ok(Err(e))) => RelayEnd::Left(e),
            // It panicked: what it had not sent is still in the outbox.
            Ok(Err(_)) => {
                failures.push((USER_SUPPORT.to_string(), ServiceError::Task(USER_SUPPORT)));
                RelayEnd::Left(ServiceError::Task(USER_SUPPORT))
            }
            Err(_) => {
                relay.abort();
                RelayEnd::OutOfTime
            }
        };
        for (team, ended) in self.teams.stop().await {
            if let Err(e) = ended {
                failures.push((team.to_string(), e));
            }
        }
        self.stop_views.cancel();
        for (name, view) in self.views {
            match view.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push((name.to_string(), e)),
                Err(_) => failures.push((name.to_string(), ServiceError::Task(name))),
            }
        }
        Stopped { relay, failures }
    }
}

#[cfg(test)]
mod tests {
    use returns_domain::Generator;
    use returns_eventlog::{team_group, RETURN_ORDERS};

    use super::*;
    use crate::views::projection::Projection;

    /// Accepted returns go through the relay, every team and both views; a stop leaves the
    /// outbox empty and every part stopped cleanly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_relay_the_teams_and_the_views_start_and_stop_together() {
        let dir = tempfile::tempdir().unwrap();
        let log =
            returns_eventlog::open(&format!("sqlite://{}", dir.path().join("log.db").display()))
                .await
                .unwrap();
        let mut intake = IntakeStore::open(dir.path()).unwrap();
        let wake = Arc::new(Notify::new());
        let teams: Vec<_> = TeamName::ALL
            .into_iter()
            .map(|t| (t, Arc::new(TeamMetrics::new(t.as_str()))))
            .collect();
        let running = Pipeline::new(
            Arc::clone(&log),
            dir.path().into(),
            &intake,
            Arc::clone(&wake),
        )
        .unwrap()
        .with_teams(teams.clone())
        .with_views()
        .start();
        let requests: Vec<_> = Generator::new(3).requests(0..50).collect();
        intake.accept(&requests).unwrap();
        wake.notify_one();

        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut groups: Vec<String> = TeamName::ALL
            .iter()
            .map(|t| team_group(t.as_str()))
            .collect();
        groups.push(StatusView::GROUP.to_string());
        groups.push(Analytics::GROUP.to_string());
        loop {
            let mut behind = 0;
            for group in &groups {
                behind += log.lag(group, RETURN_ORDERS).await.unwrap_or(1);
            }
            let on_log = log
                .end_offsets(RETURN_ORDERS)
                .await
                .map(|ends| ends.iter().sum::<u64>())
                .unwrap_or(0);
            if behind == 0 && on_log == 50 {
                break;
            }
            assert_eq!(running.stopped_on_its_own(), None);
            assert!(tokio::time::Instant::now() < deadline, "{behind} behind");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stopped = running.stop(Duration::from_secs(10)).await;
        assert!(matches!(stopped.relay, RelayEnd::Emptied), "{stopped:?}");
        assert!(stopped.failures.is_empty(), "{stopped:?}");
        assert_eq!(intake.waiting().unwrap(), 0);
        for (team, metrics) in &teams {
            assert_eq!(metrics.snapshot().processed, 50, "{team}");
        }
    }
}
