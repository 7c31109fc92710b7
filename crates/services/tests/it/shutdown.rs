//! A stop request finishes the batch in hand, commits it, empties the outbox and returns Ok; a
//! restart resumes with no gap and no duplicate.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{event_ids_per_return, small_batches, Env};
use returns_domain::{Manufacturing, Team};
use returns_eventlog::testkit::Wrapper;
use returns_eventlog::{
    team_group, team_topic, EventLog, LogError, Position, Record, Subscription, RETURN_ORDERS,
};
use returns_services::team::relay::Outbox;
use returns_services::team::store::{store_path, TeamStore};
use returns_services::{TeamMetrics, TeamService};
use tokio_util::sync::CancellationToken;

/// A log whose subscriptions ask for the stop themselves, in the poll that hands out the
/// `after`th record: the stop lands mid-stream however fast or slow the machine is.
struct StopAfter {
    inner: Arc<dyn EventLog>,
    after: usize,
    stop: CancellationToken,
    handed_out: Arc<AtomicUsize>,
}

struct StopAfterSubscription {
    inner: Box<dyn Subscription>,
    after: usize,
    stop: CancellationToken,
    handed_out: Arc<AtomicUsize>,
}

#[async_trait]
impl Subscription for StopAfterSubscription {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, LogError> {
        let records = self.inner.poll(max, timeout).await?;
        let handed_out = self.handed_out.fetch_add(records.len(), Ordering::SeqCst) + records.len();
        if handed_out >= self.after {
            self.stop.cancel();
        }
        Ok(records)
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        self.inner.commit(positions).await
    }
}

#[async_trait]
impl Wrapper for StopAfter {
    fn inner(&self) -> &Arc<dyn EventLog> {
        &self.inner
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, LogError> {
        Ok(Box::new(StopAfterSubscription {
            inner: self.inner.subscribe(group, topics).await?,
            after: self.after,
            stop: self.stop.clone(),
            handed_out: Arc::clone(&self.handed_out),
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_mid_stream_then_resume() {
    let env = Env::new().await;
    env.publish(9, 0..600).await;
    let metrics = Arc::new(TeamMetrics::new(Manufacturing::NAME));
    let stop = CancellationToken::new();
    // The stop is asked for in the poll that hands out the 100th record (batches of 40): once
    // some, not all, of the work is in hand.
    let handed_out = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(StopAfter {
        inner: Arc::clone(&env.log),
        after: 100,
        stop: stop.clone(),
        handed_out: Arc::clone(&handed_out),
    });
    let service = TeamService::<Manufacturing>::new(log as Arc<dyn EventLog>, env.data())
        .with_metrics(Arc::clone(&metrics))
        .with_config(small_batches());
    let task = tokio::spawn(service.run(stop.clone()));
    tokio::time::timeout(common::DEADLINE, task)
        .await
        .expect("the service stops once asked")
        .unwrap()
        .expect("a stop request ends the service with Ok");

    let handled = metrics.processed();
    assert!(
        (100..600).contains(&handled),
        "stopped mid-stream: {handled} of 600 handled"
    );
    assert_eq!(
        handled,
        handed_out.load(Ordering::SeqCst) as u64,
        "the batch in hand was finished, and no other was taken"
    );
    let committed: u64 = env
        .log
        .committed(&team_group(Manufacturing::NAME), RETURN_ORDERS)
        .await
        .unwrap()
        .iter()
        .sum();
    assert_eq!(
        committed, handled,
        "everything handled was committed, nothing more"
    );
    let outbox = Outbox::open(
        Manufacturing::NAME,
        store_path(&env.data(), Manufacturing::NAME),
    )
    .unwrap();
    assert!(
        outbox.is_empty().unwrap(),
        "the outbox was emptied before exit"
    );
    // The returns handled are exactly those before the committed positions, and each has one
    // effect in the store and one event on the team's topic.
    let committed_at = env
        .log
        .committed(&team_group(Manufacturing::NAME), RETURN_ORDERS)
        .await
        .unwrap();
    let before_commit: BTreeSet<String> = env
        .read_all(RETURN_ORDERS)
        .await
        .into_iter()
        .filter(|r| r.offset < committed_at[r.partition as usize])
        .map(|r| r.key.expect("a request is keyed by its return"))
        .collect();
    assert_eq!(before_commit.len() as u64, handled);
    let effects = TeamStore::<Manufacturing>::open(&env.data())
        .unwrap()
        .effects_per_return()
        .unwrap();
    assert_eq!(
        effects.keys().cloned().collect::<BTreeSet<_>>(),
        before_commit,
        "an effect for every return handled, and for no other"
    );
    assert!(effects.values().all(|n| *n == 1), "{effects:?}");
    let on_topic = env.read_all(&team_topic(Manufacturing::NAME)).await;
    assert_eq!(on_topic.len() as u64, handled, "one record each");
    let published = event_ids_per_return(&on_topic);
    assert_eq!(
        published.keys().cloned().collect::<BTreeSet<_>>(),
        before_commit,
        "an event on the team's topic for every return handled, and for no other"
    );
    assert!(
        published.values().all(|ids| ids.len() == 1),
        "{published:?}"
    );

    let rest = env
        .run_to_end::<Manufacturing>(small_batches())
        .await
        .snapshot();
    assert_eq!(rest.duplicates_skipped, 0, "no gap and no overlap");
    assert_eq!(handled + rest.processed, 600);
    let every_return: BTreeSet<String> = env
        .read_all(RETURN_ORDERS)
        .await
        .into_iter()
        .map(|r| r.key.expect("a request is keyed by its return"))
        .collect();
    assert_eq!(every_return.len(), 600);
    let effects = TeamStore::<Manufacturing>::open(&env.data())
        .unwrap()
        .effects_per_return()
        .unwrap();
    assert_eq!(
        effects.keys().cloned().collect::<BTreeSet<_>>(),
        every_return
    );
    assert!(effects.values().all(|n| *n == 1), "{effects:?}");
    let on_topic = env.read_all(&team_topic(Manufacturing::NAME)).await;
    assert_eq!(on_topic.len(), 600, "one record each");
    let per_return = event_ids_per_return(&on_topic);
    assert_eq!(
        per_return.keys().cloned().collect::<BTreeSet<_>>(),
        every_return
    );
    assert!(per_return.values().all(|ids| ids.len() == 1));
}
