//! Helpers shared by the services' end-to-end tests: every test gets its own log file and data
//! directory, and waits by polling with a deadline.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use returns_domain::{Generator, Team};
use returns_eventlog::sqlite::SqliteLog;
use returns_eventlog::{team_group, EventLog, Record, RETURN_ORDERS};
use returns_services::{Faults, Publisher, ServiceError, TeamConfig, TeamMetrics, TeamService};
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub log: Arc<dyn EventLog>,
}

impl Env {
    pub async fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = SqliteLog::open(&dir.path().join("log.db"), 3)
            .await
            .expect("open log");
        Env {
            dir,
            log: Arc::new(log),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub async fn publish(&self, seed: u64, range: std::ops::Range<u64>) {
        let requests: Vec<_> = Generator::new(seed).requests(range).collect();
        Publisher::new(Arc::clone(&self.log))
            .publish(&requests)
            .await
            .expect("publish");
    }

    /// Run team `T` until it has committed everything on `returnOrders`, then stop it cleanly.
    pub async fn run_to_end<T: Team>(&self, config: TeamConfig) -> Arc<TeamMetrics> {
        let metrics = Arc::new(TeamMetrics::new(T::NAME));
        let stop = CancellationToken::new();
        let service = TeamService::<T>::new(Arc::clone(&self.log), self.data())
            .with_metrics(Arc::clone(&metrics))
            .with_config(config);
        let task = tokio::spawn(service.run(stop.clone()));
        self.wait_caught_up(T::NAME).await;
        stop.cancel();
        task.await.expect("no panic").expect("clean stop");
        metrics
    }

    /// Run team `T` with a crash injected; it must die with that crash.
    pub async fn run_until_crash<T: Team>(
        &self,
        faults: Faults,
        config: TeamConfig,
    ) -> ServiceError {
        let service = TeamService::<T>::new(Arc::clone(&self.log), self.data())
            .with_faults(faults)
            .with_config(config);
        let result = tokio::time::timeout(DEADLINE, service.run(CancellationToken::new()))
            .await
            .expect("the injected crash happened before the deadline");
        result.expect_err("the service was told to crash")
    }

    pub async fn wait_caught_up(&self, team: &str) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let lag = self
                .log
                .lag(&team_group(team), RETURN_ORDERS)
                .await
                .expect("lag");
            if lag == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{team} still {lag} behind at the deadline"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every record of a topic, all partitions.
    pub async fn read_all(&self, topic: &str) -> Vec<Record> {
        let mut out = Vec::new();
        self.log
            .for_each_record(topic, &mut |r| out.push(r))
            .await
            .expect("read topic");
        out
    }
}

/// The team topic's records grouped by return (correlation id) -> distinct event ids.
pub fn event_ids_per_return(
    records: &[Record],
) -> HashMap<String, std::collections::BTreeSet<String>> {
    let mut out: HashMap<String, std::collections::BTreeSet<String>> = HashMap::new();
    for r in records {
        out.entry(
            r.header("ce_correlationid")
                .expect("correlated")
                .to_string(),
        )
        .or_default()
        .insert(r.header("ce_id").expect("id").to_string());
    }
    out
}

pub fn small_batches() -> TeamConfig {
    TeamConfig {
        batch_max: 40,
        poll_timeout: Duration::from_millis(50),
    }
}
