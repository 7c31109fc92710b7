//! User Support's intake: a return is accepted with its outgoing record in one transaction, and
//! the relay gets every accepted return onto `returnOrders`, each under the one event id it was
//! accepted with, however often the log fails or the relay dies.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{small_batches, Env, DEADLINE};
use returns_domain::{Generator, RefundRequest, Sales};
use returns_eventlog::testkit::Wrapper;
use returns_eventlog::{EventLog, LogError, OutRecord, Position, Record, RETURN_ORDERS};
use returns_services::user_support::intake::{intake_path, AcceptError, USER_SUPPORT};
use returns_services::{CrashPoint, Faults, IntakeStore, ServiceError, TeamMetrics, TeamStore};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn requests(range: std::ops::Range<u64>) -> Vec<RefundRequest> {
    Generator::new(11).requests(range).collect()
}

/// Rows of a table of User Support's store, read on a connection of its own.
fn rows(dir: &std::path::Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(intake_path(dir)).expect("open the store");
    let mut stmt = conn.prepare(sql).expect("prepare");
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    rows
}

/// The ce_id of each record, by return (its key).
fn ids_by_return(records: &[Record]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in records {
        out.entry(r.key.clone().expect("keyed"))
            .or_default()
            .push(r.header("ce_id").expect("an id").to_string());
    }
    out
}

#[test]
fn accepted_rows_and_outbox_rows_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = IntakeStore::open(dir.path()).unwrap();
    let batch = requests(0..5);
    // The outbox refuses the third record: the whole batch must roll back, the two returns
    // accepted before it included.
    let conn = rusqlite::Connection::open(intake_path(dir.path())).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.key = '{}'
         BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        batch[2].return_id
    ))
    .unwrap();
    let e = store.accept(&batch).expect_err("the outbox refused a row");
    assert!(
        matches!(e, AcceptError::Store(ServiceError::Store { team, .. }) if team == USER_SUPPORT),
        "{e}"
    );
    assert_eq!(
        store.accepted_count().unwrap(),
        0,
        "no return accepted alone"
    );
    assert_eq!(store.waiting().unwrap(), 0, "no record without its return");

    conn.execute_batch("DROP TRIGGER refuse").unwrap();
    let answers = store.accept(&batch).unwrap();
    assert!(answers.iter().all(|a| !a.duplicate));
    // Each accepted return has exactly one record, carrying the event id it was accepted with.
    let accepted = rows(
        dir.path(),
        "SELECT return_id || ' ' || event_id FROM accepted ORDER BY return_id",
    );
    let mut outgoing = rows(
        dir.path(),
        "SELECT outbox.key || ' ' || json_extract(h.value, '$[1]')
         FROM outbox, json_each(outbox.headers) h
         WHERE json_extract(h.value, '$[0]') = 'ce_id'",
    );
    outgoing.sort();
    assert_eq!(accepted.len(), 5);
    assert_eq!(accepted, outgoing);
}

/// A log whose first `failures` appends fail, as a broker that is down would.
struct FlakyLog {
    inner: Arc<dyn EventLog>,
    failures: AtomicU32,
    appends: AtomicU32,
}

#[async_trait]
impl Wrapper for FlakyLog {
    fn inner(&self) -> &Arc<dyn EventLog> {
        &self.inner
    }
    async fn append(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, LogError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(LogError::Timeout {
                op: "append",
                seconds: 0,
            });
        }
        self.inner.append(topic, records).await
    }
}

/// Poll until User Support's outbox is empty.
async fn wait_until_published(store: &IntakeStore) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.waiting().unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} records still waiting at the deadline",
            store.waiting().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_relay_whose_appends_fail_retries_and_publishes_each_record_once() {
    let env = Env::new().await;
    let flaky = Arc::new(FlakyLog {
        inner: Arc::clone(&env.log),
        failures: AtomicU32::new(3),
        appends: AtomicU32::new(0),
    });
    let mut store = IntakeStore::open(&env.data()).unwrap();
    let answers = store.accept(&requests(0..50)).unwrap();
    let wake = Arc::new(Notify::new());
    let metrics = Arc::new(TeamMetrics::new(USER_SUPPORT));
    let relay = store
        .relay(flaky.clone(), Arc::clone(&wake), Arc::clone(&metrics))
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));
    wait_until_published(&store).await;

    // Returns accepted while the relay runs are published too.
    let more = store.accept(&requests(50..60)).unwrap();
    wake.notify_one();
    wait_until_published(&store).await;
    stop.cancel();
    task.await.unwrap().unwrap();

    assert!(
        flaky.appends.load(Ordering::SeqCst) >= 5,
        "3 failures, then 2 appends"
    );
    assert_eq!(metrics.snapshot().relayed, 60);
    let expected: BTreeMap<String, Vec<String>> = answers
        .into_iter()
        .chain(more)
        .map(|a| (a.return_id, vec![a.event_id]))
        .collect();
    assert_eq!(ids_by_return(&env.read_all(RETURN_ORDERS).await), expected);
}

#[tokio::test]
async fn a_relay_that_dies_after_appending_republishes_the_same_ids_and_teams_apply_each_once() {
    let env = Env::new().await;
    let mut store = IntakeStore::open(&env.data()).unwrap();
    let answers = store.accept(&requests(0..30)).unwrap();
    let metrics = Arc::new(TeamMetrics::new(USER_SUPPORT));
    let mut relay = store
        .relay(
            Arc::clone(&env.log),
            Arc::new(Notify::new()),
            Arc::clone(&metrics),
        )
        .unwrap();
    relay.faults = Faults::crash_at(CrashPoint::RelayAfterAppend, 1);
    let died = tokio::time::timeout(DEADLINE, relay.run(CancellationToken::new()))
        .await
        .expect("the crash came before the deadline");
    assert!(
        matches!(died, Err(ServiceError::InjectedCrash(_))),
        "{died:?}"
    );
    assert_eq!(store.waiting().unwrap(), 30, "appended, but not cleared");

    // The next relay publishes the same records again, then clears them.
    let relay = store
        .relay(
            Arc::clone(&env.log),
            Arc::new(Notify::new()),
            Arc::clone(&metrics),
        )
        .unwrap();
    let stop = CancellationToken::new();
    stop.cancel();
    relay
        .run(stop)
        .await
        .expect("a stopping relay empties the outbox");
    assert_eq!(store.waiting().unwrap(), 0);

    let on_log = ids_by_return(&env.read_all(RETURN_ORDERS).await);
    assert_eq!(on_log.len(), 30);
    for a in &answers {
        assert_eq!(
            on_log[&a.return_id],
            [a.event_id.clone(), a.event_id.clone()]
        );
    }
    // A team reads each return twice and applies it once.
    let sales = env.run_to_end::<Sales>(small_batches()).await;
    let snapshot = sales.snapshot();
    assert_eq!((snapshot.processed, snapshot.duplicates_skipped), (30, 30));
    let effects = TeamStore::<Sales>::open(&env.data())
        .unwrap()
        .effects_per_return()
        .unwrap();
    let returns: BTreeSet<&String> = answers.iter().map(|a| &a.return_id).collect();
    assert_eq!(effects.keys().collect::<BTreeSet<_>>(), returns);
    assert!(effects.values().all(|n| *n == 1), "{effects:?}");
}
