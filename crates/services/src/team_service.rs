use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use returns_domain::Team;
use returns_eventlog::{
    positions_after, team_group, EventLog, Position, Record, Subscription, RETURN_ORDERS,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::faults::{CrashPoint, Faults};
use crate::metrics::TeamMetrics;
use crate::relay::{Outbox, Relay};
use crate::store::{now_us, store_path, BatchReport, Input, TeamStore};
use crate::{ServiceError, TeamFaultState};

#[derive(Debug, Clone)]
pub struct TeamConfig {
    /// Most records handled in one transaction.
    pub batch_max: usize,
    /// How long one poll waits for records before checking for shutdown again.
    pub poll_timeout: Duration,
}

impl Default for TeamConfig {
    fn default() -> Self {
        TeamConfig {
            batch_max: 5_000,
            poll_timeout: Duration::from_millis(200),
        }
    }
}

/// One team, subscribed to `returnOrders` as its own consumer group.
pub struct TeamService<T: Team> {
    log: Arc<dyn EventLog>,
    data_dir: PathBuf,
    metrics: Arc<TeamMetrics>,
    config: TeamConfig,
    faults: Faults,
    /// Scheduled slowness and errors (`returns compare`); none by default.
    schedule: TeamFaultState,
    team: PhantomData<fn() -> T>,
}

/// Aborts the relay task if the service dies without a clean stop (as a crash would).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T: Team> TeamService<T> {
    pub fn new(log: Arc<dyn EventLog>, data_dir: PathBuf) -> Self {
        TeamService {
            log,
            data_dir,
            metrics: Arc::new(TeamMetrics::new(T::NAME)),
            config: TeamConfig::default(),
            faults: Faults::none(),
            schedule: TeamFaultState::none(),
            team: PhantomData,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<TeamMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Make every batch slower by the schedule's latency and fail (then retry) it at the
    /// schedule's error rate. Outages are not handled here: the caller stops the service.
    pub fn with_schedule(mut self, schedule: TeamFaultState) -> Self {
        self.schedule = schedule;
        self
    }

    pub fn with_config(mut self, config: TeamConfig) -> Self {
        self.config = config;
        self
    }

    /// Handle `returnOrders` until `shutdown`; then finish the batch in hand, commit it, empty
    /// the outbox, and return.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let dir = self.data_dir.clone();
        let mut store = tokio::task::spawn_blocking(move || TeamStore::<T>::open(&dir))
            .await
            .map_err(|_| ServiceError::Task(T::NAME))??;
        let wake = Arc::new(Notify::new());
        let relay_stop = CancellationToken::new();
        let relay = Relay {
            log: Arc::clone(&self.log),
            outbox: Outbox::open(T::NAME, store_path(&self.data_dir, T::NAME))?,
            wake: Arc::clone(&wake),
            metrics: Arc::clone(&self.metrics),
            faults: self.faults.clone(),
        };
        let mut relay_task = tokio::spawn(relay.run(relay_stop.clone()));
        let _abort_relay = AbortOnDrop(relay_task.abort_handle());

        let mut sub = self
            .log
            .subscribe(&team_group(T::NAME), &[RETURN_ORDERS])
            .await?;
        tracing::info!(team = T::NAME, "subscribed to {RETURN_ORDERS}");
        loop {
            let records = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // The relay only ends on its own when it failed: the team stops with its error.
                relayed = &mut relay_task => {
                    relayed.map_err(|_| ServiceError::Task(T::NAME))??;
                    return Err(ServiceError::Task(T::NAME));
                }
                polled = sub.poll(self.config.batch_max, self.config.poll_timeout) => polled?,
            };
            if records.is_empty() {
                continue;
            }
            store = self
                .handle_batch(store, sub.as_mut(), records, &wake)
                .await?;
        }
        relay_stop.cancel();
        relay_task
            .await
            .map_err(|_| ServiceError::Task(T::NAME))??;
        tracing::info!(team = T::NAME, "stopped cleanly");
        Ok(())
    }

    async fn handle_batch(
        &self,
        mut store: TeamStore<T>,
        sub: &mut dyn Subscription,
        records: Vec<Record>,
        wake: &Notify,
    ) -> Result<TeamStore<T>, ServiceError> {
        let positions = positions_after(&records);
        self.faults.check(CrashPoint::BeforeTransaction)?;
        let latency = self.schedule.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let faults = self.faults.clone();
        let schedule = self.schedule.clone();
        // Decoding and the store are blocking work: both run off the async workers.
        let (store, report) = tokio::task::spawn_blocking(move || {
            let inputs: Vec<Input> = records.into_iter().map(Input::decode).collect();
            let report = apply_with_retry(&mut store, &inputs, &faults, &schedule);
            (store, report)
        })
        .await
        .map_err(|_| ServiceError::Task(T::NAME))?;
        let report = report?;
        self.metrics.record_batch(&report, now_us());
        wake.notify_one();
        self.faults.check(CrashPoint::AfterTransaction)?;
        commit_with_retry(sub, &positions).await?;
        self.faults.check(CrashPoint::AfterCommit)?;
        Ok(store)
    }
}

/// Apply a batch, trying again while the store is busy (another connection holds its lock).
fn apply_with_retry<T: Team>(
    store: &mut TeamStore<T>,
    inputs: &[Input],
    faults: &crate::Faults,
    schedule: &TeamFaultState,
) -> Result<BatchReport, ServiceError> {
    let mut backoff = Duration::from_millis(20);
    loop {
        if schedule.fails_now() {
            tracing::warn!(team = T::NAME, "scheduled error; retrying the batch");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        }
        match store.apply(inputs, faults) {
            Err(e) if e.is_transient() => {
                tracing::warn!(team = T::NAME, error = %e, "store busy; retrying the batch");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Commit positions, trying again a few times while the log is busy.
async fn commit_with_retry(
    sub: &mut dyn Subscription,
    positions: &[Position],
) -> Result<(), ServiceError> {
    let mut backoff = Duration::from_millis(20);
    let mut attempt = 1;
    loop {
        match sub.commit(positions).await {
            Err(e) if e.is_transient() && attempt < 10 => {
                tracing::warn!(error = %e, attempt, "commit failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                attempt += 1;
            }
            other => return Ok(other?),
        }
    }
}
