//! A stop request finishes the batch in hand, commits it, empties the outbox and returns Ok; a
//! restart resumes with no gap and no duplicate.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{event_ids_per_return, small_batches, Env};
use returns_domain::{Manufacturing, Team};
use returns_eventlog::{team_group, team_topic, RETURN_ORDERS};
use returns_services::relay::Outbox;
use returns_services::store::{store_path, TeamStore};
use returns_services::{TeamMetrics, TeamService};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_mid_stream_then_resume() {
    let env = Env::new().await;
    env.publish(9, 0..600).await;
    let metrics = Arc::new(TeamMetrics::new(Manufacturing::NAME));
    let stop = CancellationToken::new();
    let service = TeamService::<Manufacturing>::new(Arc::clone(&env.log), env.data())
        .with_metrics(Arc::clone(&metrics))
        .with_config(small_batches());
    let task = tokio::spawn(service.run(stop.clone()));
    // Stop once some, not all, of the work is done.
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    while metrics.processed() < 100 {
        assert!(tokio::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    task.await
        .unwrap()
        .expect("a stop request ends the service with Ok");

    let handled = metrics.processed();
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
    assert_eq!(
        env.read_all(&team_topic(Manufacturing::NAME)).await.len() as u64,
        handled
    );

    let rest = env
        .run_to_end::<Manufacturing>(small_batches())
        .await
        .snapshot();
    assert_eq!(rest.duplicates_skipped, 0, "no gap and no overlap");
    assert_eq!(handled + rest.processed, 600);
    let store = TeamStore::<Manufacturing>::open(&env.data()).unwrap();
    assert!(store
        .effects_per_return()
        .unwrap()
        .values()
        .all(|n| *n == 1));
    let per_return = event_ids_per_return(&env.read_all(&team_topic(Manufacturing::NAME)).await);
    assert_eq!(per_return.len(), 600);
}
