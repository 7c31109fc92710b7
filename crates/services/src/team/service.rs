use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use returns_domain::Team;
use returns_eventlog::{
    positions_after, team_group, EventLog, Position, Record, Subscription, RETURN_ORDERS,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::faults::{CrashPoint, Faults};
use crate::metrics::TeamMetrics;
use crate::retry::{pause, retry, retry_blocking, Backoff, Retrier, RetryPolicy, Until};
use crate::team::relay::{Outbox, Relay};
use crate::team::store::{now_us, store_path, BatchReport, Input, TeamStore};
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
    retry: RetryPolicy,
    team: PhantomData<fn() -> T>,
}

/// How long a stopping team waits for its relay to empty the outbox.
const RELAY_GRACE: Duration = Duration::from_secs(10);

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
            retry: RetryPolicy::default(),
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

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn spawn_relay(
        &self,
        wake: &Arc<Notify>,
        stop: &CancellationToken,
    ) -> Result<(JoinHandle<Result<(), ServiceError>>, AbortOnDrop), ServiceError> {
        let relay = Relay {
            log: Arc::clone(&self.log),
            outbox: Outbox::open(T::NAME, store_path(&self.data_dir, T::NAME))?,
            wake: Arc::clone(wake),
            metrics: Arc::clone(&self.metrics),
            faults: self.faults.clone(),
        };
        let task = tokio::spawn(relay.run(stop.clone()));
        let abort = AbortOnDrop(task.abort_handle());
        Ok((task, abort))
    }

    /// Handle `returnOrders` until `shutdown`; then finish the batch in hand, commit it, empty
    /// the outbox, and return. Transient failures are waited out (see [`RetryPolicy`]).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let dir = self.data_dir.clone();
        let busy = self.retry.store_busy_timeout;
        let mut store = tokio::task::spawn_blocking(move || {
            let store = TeamStore::<T>::open(&dir)?;
            store.set_busy_timeout(busy)?;
            Ok::<_, ServiceError>(store)
        })
        .await
        .map_err(|_| ServiceError::Task(T::NAME))??;
        let wake = Arc::new(Notify::new());
        let relay_stop = CancellationToken::new();
        let (mut relay_task, mut _abort_relay) = self.spawn_relay(&wake, &relay_stop)?;

        let group = team_group(T::NAME);
        let subscribed = retry(
            &self.retry,
            &Until::Stopped(shutdown.clone()),
            "subscribing",
            || self.log.subscribe(&group, &[RETURN_ORDERS]),
        )
        .await;
        let mut sub = match subscribed {
            Ok(sub) => Some(sub),
            Err(e) if e.is_transient() => None,
            Err(e) => return Err(e.into()),
        };
        tracing::info!(team = T::NAME, "subscribed to {RETURN_ORDERS}");
        // Polls reset the poll backoff; a relay that keeps failing has its own.
        let mut backoff = Backoff::new(&self.retry);
        let mut relay_backoff = Backoff::new(&self.retry);
        while let Some(sub) = sub.as_mut() {
            let records = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // The relay only ends on its own when it failed. A transient failure (its store
                // busy past the timeout) restarts it: its rows are still in the outbox.
                relayed = &mut relay_task => {
                    let e = match relayed {
                        Ok(Err(e)) if e.is_transient() => e,
                        Ok(Err(e)) => return Err(e),
                        Ok(Ok(())) | Err(_) => return Err(ServiceError::Task(T::NAME)),
                    };
                    tracing::warn!(team = T::NAME, error = %e, "relay failed; restarting it");
                    pause(relay_backoff.next_pause(), &shutdown).await;
                    (relay_task, _abort_relay) = self.spawn_relay(&wake, &relay_stop)?;
                    continue;
                }
                polled = sub.poll(self.config.batch_max, self.config.poll_timeout) => match polled {
                    Ok(records) => records,
                    Err(e) if e.is_transient() => {
                        tracing::warn!(team = T::NAME, error = %e, "poll failed; retrying");
                        pause(backoff.next_pause(), &shutdown).await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            backoff = Backoff::new(&self.retry);
            if records.is_empty() {
                continue;
            }
            store = self
                .handle_batch(store, sub.as_mut(), records, &wake, &shutdown)
                .await?;
        }
        // The relay empties the outbox before it stops, unless the log will not take it: an
        // append to a broker that is down waits for its delivery timeout (a minute on Kafka).
        // Its rows stay in the outbox, durable, for the next start (the teams drop a repeat by
        // event id), so a stop does not wait for them longer than RELAY_GRACE.
        relay_stop.cancel();
        match tokio::time::timeout(RELAY_GRACE, &mut relay_task).await {
            Ok(ended) => match ended.map_err(|_| ServiceError::Task(T::NAME))? {
                Ok(()) => tracing::info!(team = T::NAME, "stopped cleanly"),
                Err(e) if e.is_transient() => tracing::warn!(
                    team = T::NAME,
                    error = %e,
                    "stopped; the log did not take the last outgoing events, which stay in the outbox for the next start"
                ),
                Err(e) => return Err(e),
            },
            Err(_) => {
                relay_task.abort();
                tracing::warn!(
                    team = T::NAME,
                    grace = ?RELAY_GRACE,
                    "stopped; the log did not take the last outgoing events in time, which stay in the outbox for the next start"
                );
            }
        }
        Ok(())
    }

    async fn handle_batch(
        &self,
        mut store: TeamStore<T>,
        sub: &mut dyn Subscription,
        records: Vec<Record>,
        wake: &Notify,
        shutdown: &CancellationToken,
    ) -> Result<TeamStore<T>, ServiceError> {
        let positions = positions_after(&records);
        self.faults.check(CrashPoint::BeforeTransaction)?;
        let latency = self.schedule.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let faults = self.faults.clone();
        let schedule = self.schedule.clone();
        let retry = self.retry.clone();
        let stop = shutdown.clone();
        // Decoding and the store are blocking work: both run off the async workers.
        let (store, report) = tokio::task::spawn_blocking(move || {
            let inputs: Vec<Input> = records.into_iter().map(Input::decode).collect();
            let report = apply_with_retry(&mut store, &inputs, &faults, &schedule, &retry, &stop);
            (store, report)
        })
        .await
        .map_err(|_| ServiceError::Task(T::NAME))?;
        let report = report?;
        self.metrics.record_batch(&report, now_us());
        wake.notify_one();
        self.faults.check(CrashPoint::AfterTransaction)?;
        commit_with_retry(sub, &positions, &self.retry, shutdown).await?;
        self.faults.check(CrashPoint::AfterCommit)?;
        Ok(store)
    }
}

/// Apply a batch, trying again while the store is busy (another connection holds its lock), for
/// as long as it is: a busy store is never a reason to dead-letter or to stop. On shutdown the
/// waiting ends with the busy error; nothing of the batch was applied or committed, so the next
/// start reads it again.
fn apply_with_retry<T: Team>(
    store: &mut TeamStore<T>,
    inputs: &[Input],
    faults: &crate::Faults,
    schedule: &TeamFaultState,
    retry: &RetryPolicy,
    shutdown: &CancellationToken,
) -> Result<BatchReport, ServiceError> {
    let mut scheduled = Backoff::new(retry);
    while schedule.fails_now() {
        tracing::warn!(team = T::NAME, "scheduled error; retrying the batch");
        std::thread::sleep(scheduled.next_pause());
    }
    retry_blocking(
        retry,
        &Until::Stopped(shutdown.clone()),
        "applying a batch (the store is busy)",
        || store.apply(inputs, faults),
    )
}

/// Commit positions, trying again for as long as the log fails transiently (a broker down or
/// moving its coordinator). The batch's effects are already durable, so giving up would only
/// stop the team for nothing: an operator would have to restart it, and it would read the
/// batch again just to skip it. On shutdown the waiting ends with the error, which is just as
/// safe: the uncommitted records come back to the next member and are skipped as duplicates.
async fn commit_with_retry(
    sub: &mut dyn Subscription,
    positions: &[Position],
    retry: &RetryPolicy,
    shutdown: &CancellationToken,
) -> Result<(), ServiceError> {
    let until = Until::Stopped(shutdown.clone());
    let mut retrier = Retrier::new(retry, &until, "commit");
    loop {
        match sub.commit(positions).await {
            Err(e) => retrier.wait_out(e).await?,
            Ok(()) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use async_trait::async_trait;
    use returns_domain::Sales;
    use returns_eventlog::LogError;

    use super::*;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            store_busy_timeout: Duration::from_millis(10),
        }
    }

    /// A subscription whose commits fail with `error` the first `failures` times.
    struct FailingCommits {
        failures: u32,
        attempts: Arc<AtomicU32>,
        error: fn() -> LogError,
    }

    #[async_trait]
    impl Subscription for FailingCommits {
        async fn poll(&mut self, _: usize, _: Duration) -> Result<Vec<Record>, LogError> {
            Ok(Vec::new())
        }

        async fn commit(&mut self, _: &[Position]) -> Result<(), LogError> {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if attempt <= self.failures {
                return Err((self.error)());
            }
            Ok(())
        }
    }

    fn broker_down() -> LogError {
        LogError::Timeout {
            op: "commit",
            seconds: 0,
        }
    }

    fn fenced() -> LogError {
        LogError::Fenced {
            group: "returns.sales".into(),
            generation: 2,
        }
    }

    fn failing(failures: u32, error: fn() -> LogError) -> (FailingCommits, Arc<AtomicU32>) {
        let attempts = Arc::new(AtomicU32::new(0));
        let sub = FailingCommits {
            failures,
            attempts: Arc::clone(&attempts),
            error,
        };
        (sub, attempts)
    }

    /// The team used to give up after 10 tries, and stop: a broker away longer than that is
    /// waited out now.
    #[tokio::test]
    async fn a_commit_is_retried_for_as_long_as_the_log_is_unavailable() {
        let (mut sub, attempts) = failing(25, broker_down);
        commit_with_retry(&mut sub, &[], &quick(), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 26);
    }

    #[tokio::test]
    async fn a_permanent_commit_error_is_not_retried() {
        let (mut sub, attempts) = failing(1, fenced);
        let err = commit_with_retry(&mut sub, &[], &quick(), &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Log(LogError::Fenced { .. })),
            "{err}"
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    /// Shutdown ends the waiting with the error; the batch is durable and comes back as
    /// duplicates to the next member.
    #[tokio::test]
    async fn shutdown_ends_the_wait_for_a_commit() {
        let (mut sub, attempts) = failing(u32::MAX, broker_down);
        let stop = CancellationToken::new();
        let slow = RetryPolicy {
            first_backoff: Duration::from_secs(60),
            ..quick()
        };
        let stopper = stop.clone();
        tokio::spawn(async move { stopper.cancel() });
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            commit_with_retry(&mut sub, &[], &slow, &stop),
        )
        .await
        .expect("shutdown ended the wait")
        .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(attempts.load(Ordering::SeqCst) <= 2);
    }

    /// A store locked by another connection for longer than the busy timeout: the batch fails
    /// as busy, is tried again, and applies once the lock is gone.
    #[test]
    fn a_batch_waits_for_a_locked_store_then_applies() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TeamStore::<Sales>::open(dir.path()).unwrap();
        store.set_busy_timeout(quick().store_busy_timeout).unwrap();
        let req = returns_domain::Generator::new(1).request(0);
        let record = returns_eventlog::wire::encode_refund_request(
            &req,
            &returns_eventlog::wire::refund_request_envelope(&req),
        );
        let input = Input::decode(Record {
            topic: RETURN_ORDERS.into(),
            partition: 0,
            offset: 0,
            key: Some(record.key),
            timestamp_ms: 0,
            headers: record.headers,
            payload: record.payload,
        });

        let lock = rusqlite::Connection::open(store.path()).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let held = Duration::from_millis(300);
        let holder = std::thread::spawn(move || {
            std::thread::sleep(held);
            lock.execute_batch("COMMIT").unwrap();
        });
        let start = Instant::now();
        let report = apply_with_retry(
            &mut store,
            &[input],
            &Faults::none(),
            &TeamFaultState::none(),
            &quick(),
            &CancellationToken::new(),
        )
        .unwrap();
        assert!(start.elapsed() >= held);
        assert_eq!((report.decided.len(), report.dead_lettered), (1, 0));
        holder.join().unwrap();
    }

    /// On shutdown a store that stays locked ends the wait with the busy error.
    #[test]
    fn shutdown_ends_the_wait_for_a_locked_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TeamStore::<Sales>::open(dir.path()).unwrap();
        store.set_busy_timeout(quick().store_busy_timeout).unwrap();
        let lock = rusqlite::Connection::open(store.path()).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        let err = apply_with_retry(
            &mut store,
            &[],
            &Faults::none(),
            &TeamFaultState::none(),
            &quick(),
            &stop,
        )
        .unwrap_err();
        assert!(err.is_transient(), "{err}");
    }
}
