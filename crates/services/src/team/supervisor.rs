//! Teams run as tasks that can be stopped and started again while the rest carries on: what
//! `returns serve` does when someone takes a team offline from the dashboard.
//!
//! Offline is an outage seen from outside: the team's service stops the way it does on SIGTERM
//! (it finishes its batch and commits), its consumer group keeps its committed position, and
//! `returnOrders` keeps growing; its lag grows and nobody else notices. Online starts the same
//! service again: it reads from its committed position and catches up. Its counters
//! ([`TeamMetrics`]) carry on across the stop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use returns_eventlog::EventLog;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{spawn_team_scheduled, ServiceError, TeamFaultState, TeamMetrics, TeamName};

type Task = JoinHandle<Result<(), ServiceError>>;

/// The running teams of one process.
pub struct Supervisor {
    log: Arc<dyn EventLog>,
    data_dir: PathBuf,
    /// Held only briefly, never across an await: reading a state never waits for a change.
    slots: Mutex<BTreeMap<TeamName, Slot>>,
    /// Changes are made one at a time; a team being stopped holds it until it has stopped,
    /// even if whoever asked has gone.
    changing: Arc<tokio::sync::Mutex<()>>,
}

struct Slot {
    metrics: Arc<TeamMetrics>,
    /// Injected slowness and errors (tests); none in `serve`.
    faults: TeamFaultState,
    /// The service's stop token and task while it runs.
    running: Option<(CancellationToken, Task)>,
    /// When it was last taken offline or brought back (never: `None`).
    changed_at: Option<OffsetDateTime>,
}

/// A team's state, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamState {
    pub online: bool,
    pub changed_at: Option<OffsetDateTime>,
}

/// What [`Supervisor::set_online`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub state: TeamState,
    /// False when the team already was in the state asked for.
    pub changed: bool,
}

impl Supervisor {
    /// Start every team of `teams`, each with its counters.
    pub fn start(
        log: Arc<dyn EventLog>,
        data_dir: PathBuf,
        teams: impl IntoIterator<Item = (TeamName, Arc<TeamMetrics>)>,
    ) -> Supervisor {
        Self::start_with_faults(
            log,
            data_dir,
            teams
                .into_iter()
                .map(|(team, metrics)| (team, metrics, TeamFaultState::none())),
        )
    }

    /// [`Supervisor::start`], each team slowed down and failing as its schedule says.
    pub fn start_with_faults(
        log: Arc<dyn EventLog>,
        data_dir: PathBuf,
        teams: impl IntoIterator<Item = (TeamName, Arc<TeamMetrics>, TeamFaultState)>,
    ) -> Supervisor {
        let slots = teams
            .into_iter()
            .map(|(team, metrics, faults)| {
                let running = Some(spawn(&log, &data_dir, team, &metrics, &faults));
                (
                    team,
                    Slot {
                        metrics,
                        faults,
                        running,
                        changed_at: None,
                    },
                )
            })
            .collect();
        Supervisor {
            log,
            data_dir,
            slots: Mutex::new(slots),
            changing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<TeamName, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A team is offline as soon as it was asked to stop, while it finishes its batch.
    pub fn state(&self, team: TeamName) -> Option<TeamState> {
        self.slots().get(&team).map(Slot::state)
    }

    /// Take `team` offline (its service finishes its batch, commits and stops; this returns
    /// once it has) or bring it back (started again from its committed position). Changes are
    /// made one at a time; reading a state never waits for one.
    pub async fn set_online(&self, team: TeamName, online: bool) -> Result<Change, ServiceError> {
        let one_at_a_time = Arc::clone(&self.changing).lock_owned().await;
        let (stopping, state) = {
            let mut slots = self.slots();
            let slot = slots
                .get_mut(&team)
                .ok_or_else(|| ServiceError::UnknownTeam(team.to_string()))?;
            if slot.running.is_some() == online {
                return Ok(Change {
                    state: slot.state(),
                    changed: false,
                });
            }
            let stopping = match slot.running.take() {
                Some((stop, task)) => {
                    stop.cancel();
                    Some(task)
                }
                None => {
                    slot.running = Some(spawn(
                        &self.log,
                        &self.data_dir,
                        team,
                        &slot.metrics,
                        &slot.faults,
                    ));
                    tracing::info!(team = %team, "brought back online; catching up");
                    None
                }
            };
            slot.changed_at = Some(OffsetDateTime::now_utc());
            (stopping, slot.state())
        };
        if let Some(task) = stopping {
            // Waited for on a task of its own, holding the turn: should the caller go (a closed
            // connection, a timeout), the next change or `stop` still waits for this service to
            // end, so no second copy of a team ever runs beside it.
            let stopped = tokio::spawn(async move {
                let ended = task.await;
                drop(one_at_a_time);
                ended
            });
            let ended = stopped
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or(ServiceError::Task(team.as_str()))?;
            if let Err(e) = ended {
                // It had failed on its own before being asked to stop; it is offline now
                // either way, and the failure is the log's to show.
                tracing::warn!(team = %team, error = %e, "the team had stopped on an error");
            }
            tracing::info!(team = %team, "taken offline");
        }
        Ok(Change {
            state,
            changed: true,
        })
    }

    /// A team whose service ended although nobody stopped it (it failed), if any.
    pub fn stopped_on_its_own(&self) -> Option<TeamName> {
        self.slots()
            .iter()
            .find(|(_, slot)| matches!(&slot.running, Some((_, task)) if task.is_finished()))
            .map(|(team, _)| *team)
    }

    /// Stop every team that runs, each finishing and committing its batch; what each ended with.
    pub async fn stop(&self) -> Vec<(TeamName, Result<(), ServiceError>)> {
        let _one_at_a_time = self.changing.lock().await;
        let running: Vec<(TeamName, Task)> = self
            .slots()
            .iter_mut()
            .filter_map(|(team, slot)| {
                let (stop, task) = slot.running.take()?;
                stop.cancel();
                Some((*team, task))
            })
            .collect();
        let mut ended = Vec::new();
        for (team, task) in running {
            let result = task.await.unwrap_or(Err(ServiceError::Task(team.as_str())));
            ended.push((team, result));
        }
        ended
    }
}

impl Slot {
    fn state(&self) -> TeamState {
        TeamState {
            online: self.running.is_some(),
            changed_at: self.changed_at,
        }
    }
}

fn spawn(
    log: &Arc<dyn EventLog>,
    data_dir: &std::path::Path,
    team: TeamName,
    metrics: &Arc<TeamMetrics>,
    faults: &TeamFaultState,
) -> (CancellationToken, Task) {
    let stop = CancellationToken::new();
    let task = spawn_team_scheduled(
        team,
        Arc::clone(log),
        data_dir.to_path_buf(),
        Arc::clone(metrics),
        faults.clone(),
        stop.clone(),
    );
    (stop, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use returns_domain::Generator;
    use returns_eventlog::testkit::Wrapper;
    use returns_eventlog::{team_group, LogError, Position, Record, Subscription, RETURN_ORDERS};
    use std::collections::BTreeSet;
    use std::future::Future;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    use tokio::sync::watch;

    async fn committed(log: &Arc<dyn EventLog>, team: TeamName) -> u64 {
        log.committed(&team_group(team.as_str()), RETURN_ORDERS)
            .await
            .unwrap()
            .iter()
            .sum()
    }

    async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let started = Instant::now();
        while !done().await {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A log that watches its subscriptions: how many are open per group now and at most at
    /// once (a copy of a team runs exactly as long as its subscription is open), and, once
    /// `hold` is called, commits that wait at a gate until `release`: a batch held that way is
    /// in the service's hands, applied and not committed, for as long as the test wants.
    struct Watched {
        inner: Arc<dyn EventLog>,
        open: Arc<Mutex<BTreeMap<String, (usize, usize)>>>,
        held: Arc<AtomicBool>,
        at_gate: Arc<AtomicUsize>,
        gate: watch::Sender<bool>,
    }

    impl Watched {
        fn new(inner: Arc<dyn EventLog>) -> Arc<Watched> {
            Arc::new(Watched {
                inner,
                open: Arc::default(),
                held: Arc::default(),
                at_gate: Arc::default(),
                gate: watch::Sender::new(false),
            })
        }

        /// (open now, most open at once) for `team`'s group.
        fn subscriptions(&self, team: TeamName) -> (usize, usize) {
            let open = self.open.lock().unwrap();
            open.get(&team_group(team.as_str()))
                .copied()
                .unwrap_or((0, 0))
        }

        fn hold(&self) {
            self.held.store(true, Ordering::SeqCst);
        }

        fn release(&self) {
            self.held.store(false, Ordering::SeqCst);
            self.gate.send_replace(true);
        }

        fn at_gate(&self) -> usize {
            self.at_gate.load(Ordering::SeqCst)
        }
    }

    struct WatchedSubscription {
        inner: Box<dyn Subscription>,
        group: String,
        open: Arc<Mutex<BTreeMap<String, (usize, usize)>>>,
        held: Arc<AtomicBool>,
        at_gate: Arc<AtomicUsize>,
        gate: watch::Receiver<bool>,
    }

    #[async_trait]
    impl Subscription for WatchedSubscription {
        async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, LogError> {
            self.inner.poll(max, timeout).await
        }

        async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
            if self.held.load(Ordering::SeqCst) {
                self.at_gate.fetch_add(1, Ordering::SeqCst);
                let opened = self.gate.wait_for(|open| *open).await.map(|_| ());
                self.at_gate.fetch_sub(1, Ordering::SeqCst);
                opened.expect("the test keeps the gate");
            }
            self.inner.commit(positions).await
        }
    }

    impl Drop for WatchedSubscription {
        fn drop(&mut self) {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.get_mut(&self.group).expect("counted when opened").0 -= 1;
        }
    }

    #[async_trait]
    impl Wrapper for Watched {
        fn inner(&self) -> &Arc<dyn EventLog> {
            &self.inner
        }

        async fn subscribe(
            &self,
            group: &str,
            topics: &[&str],
        ) -> Result<Box<dyn Subscription>, LogError> {
            let inner = self.inner.subscribe(group, topics).await?;
            {
                let mut open = self.open.lock().unwrap();
                let (now, most) = open.entry(group.to_string()).or_default();
                *now += 1;
                *most = (*most).max(*now);
            }
            Ok(Box::new(WatchedSubscription {
                inner,
                group: group.to_string(),
                open: Arc::clone(&self.open),
                held: Arc::clone(&self.held),
                at_gate: Arc::clone(&self.at_gate),
                gate: self.gate.subscribe(),
            }))
        }
    }

    /// Poll `fut` once: its output if it is ready at once.
    async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = fut => Some(out),
            () = std::future::ready(()) => None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offline_team_falls_behind_alone_and_catches_up_when_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let log = returns_eventlog::open(&url).await.unwrap();
        let watched = Watched::new(Arc::clone(&log));
        let publisher = crate::Publisher::new(Arc::clone(&log));
        let generator = Generator::new(7);
        let teams = [TeamName::Sales, TeamName::Manufacturing];
        let supervisor = Supervisor::start(
            Arc::clone(&watched) as Arc<dyn EventLog>,
            dir.path().to_path_buf(),
            teams.map(|t| (t, Arc::new(TeamMetrics::new(t.as_str())))),
        );
        let first: Vec<_> = generator.requests(0..20).collect();
        publisher.publish(&first).await.unwrap();
        for team in teams {
            wait_for("both teams to read the first 20", async || {
                committed(&log, team).await == 20
            })
            .await;
        }

        let change = supervisor
            .set_online(TeamName::Manufacturing, false)
            .await
            .unwrap();
        assert!(change.changed && !change.state.online);
        assert!(change.state.changed_at.is_some());
        // Offline means stopped: once the change returned, no copy of the team reads.
        assert_eq!(
            watched.subscriptions(TeamName::Manufacturing),
            (0, 1),
            "(subscriptions open, most at once)"
        );
        let again = supervisor
            .set_online(TeamName::Manufacturing, false)
            .await
            .unwrap();
        assert!(!again.changed, "a second offline changes nothing");

        let more: Vec<_> = generator.requests(20..50).collect();
        publisher.publish(&more).await.unwrap();
        // Sales handling the 30 new returns is the sign that they were there to be read:
        // Manufacturing, offline, read none of them.
        wait_for("sales to read all 50", async || {
            committed(&log, TeamName::Sales).await == 50
        })
        .await;
        assert_eq!(
            committed(&log, TeamName::Manufacturing).await,
            20,
            "an offline team reads nothing"
        );
        assert_eq!(watched.subscriptions(TeamName::Manufacturing).0, 0);
        assert_eq!(supervisor.stopped_on_its_own(), None);

        let back = supervisor
            .set_online(TeamName::Manufacturing, true)
            .await
            .unwrap();
        assert!(back.changed && back.state.online);
        wait_for("manufacturing to catch up", async || {
            committed(&log, TeamName::Manufacturing).await == 50
        })
        .await;
        let ended = supervisor.stop().await;
        assert_eq!(ended.len(), 2);
        assert!(ended.iter().all(|(_, r)| r.is_ok()), "{ended:?}");
        for team in teams {
            assert_eq!(watched.subscriptions(team), (0, 1), "{team}");
        }
        assert!(matches!(
            supervisor.set_online(TeamName::Quality, true).await,
            Err(ServiceError::UnknownTeam(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_on_a_stop_leaves_no_second_copy_running() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let log = returns_eventlog::open(&url).await.unwrap();
        let watched = Watched::new(Arc::clone(&log));
        let publisher = crate::Publisher::new(Arc::clone(&log));
        let generator = Generator::new(8);
        let metrics = Arc::new(TeamMetrics::new(TeamName::Sales.as_str()));
        let supervisor = Supervisor::start(
            Arc::clone(&watched) as Arc<dyn EventLog>,
            dir.path().to_path_buf(),
            [(TeamName::Sales, Arc::clone(&metrics))],
        );
        let first: Vec<_> = generator.requests(0..100).collect();
        publisher.publish(&first).await.unwrap();
        wait_for("the first batch", async || {
            committed(&log, TeamName::Sales).await == 100
        })
        .await;
        // The next batch stays in the team's hands (applied, its commit held at the gate) until
        // the test lets it go: a stop asked for meanwhile waits for it.
        watched.hold();
        let more: Vec<_> = generator.requests(100..200).collect();
        publisher.publish(&more).await.unwrap();
        wait_for("the second batch in hand", async || watched.at_gate() == 1).await;

        // Asked offline mid-batch by a caller that gives up once the stop has begun (the team
        // shows offline) and before it has ended (a closed connection).
        let mut stopping = Box::pin(supervisor.set_online(TeamName::Sales, false));
        wait_for("the stop to begin", async || {
            if let Some(done) = poll_once(&mut stopping).await {
                panic!("the stop ended with the batch still in hand: {done:?}");
            }
            supervisor.state(TeamName::Sales).is_some_and(|s| !s.online)
        })
        .await;
        drop(stopping);
        assert_eq!(watched.at_gate(), 1, "the old copy is still in its batch");
        assert_eq!(watched.subscriptions(TeamName::Sales).0, 1);

        // At once online again (another tab): that waits for the old copy to end.
        let mut online = Box::pin(supervisor.set_online(TeamName::Sales, true));
        assert!(
            poll_once(&mut online).await.is_none(),
            "online again while the old copy was still in its batch"
        );
        watched.release();
        let back = tokio::time::timeout(Duration::from_secs(30), online)
            .await
            .expect("online once the old copy ended")
            .unwrap();
        assert!(back.changed && back.state.online);
        wait_for("the new copy to read the rest", async || {
            committed(&log, TeamName::Sales).await == 200
        })
        .await;

        let ended = supervisor.stop().await;
        assert!(ended.iter().all(|(_, r)| r.is_ok()), "{ended:?}");
        // Never two copies at once, and none once stop returned.
        assert_eq!(
            watched.subscriptions(TeamName::Sales),
            (0, 1),
            "(subscriptions open, most at once)"
        );
        let effects = crate::open_store_view(TeamName::Sales, dir.path())
            .unwrap()
            .effects_per_return()
            .unwrap();
        let ids: BTreeSet<String> = first
            .iter()
            .chain(&more)
            .map(|r| r.return_id.to_string())
            .collect();
        assert_eq!(effects.keys().cloned().collect::<BTreeSet<_>>(), ids);
        assert!(effects.values().all(|&n| n == 1), "no return handled twice");
    }
}
