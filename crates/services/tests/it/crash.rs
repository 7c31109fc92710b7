//! A team stopped abruptly at each point of its cycle, then restarted, ends with exactly one
//! effect per return and exactly one published event per return: none lost, none doubled.

use crate::common;

use common::{event_ids_per_return, small_batches, Env};
use returns_domain::{Inventory, Sales, Team};
use returns_eventlog::team_topic;
use returns_services::team::store::TeamStore;
use returns_services::{CrashPoint, Faults, ServiceError};

const RETURNS: u64 = 400;

async fn crash_then_recover<T: Team>(point: CrashPoint) {
    let env = Env::new().await;
    env.publish(11, 0..RETURNS).await;

    // Die at the third time the point is reached: two batches went through before. The relay
    // is the exception: it gathers every row waiting in the outbox into one append, so when it
    // runs behind the team, all 400 returns may leave in fewer than three appends and a third
    // would never come. It dies at its first append.
    let nth = if point == CrashPoint::RelayAfterAppend {
        1
    } else {
        3
    };
    let err = env
        .run_until_crash::<T>(Faults::crash_at(point, nth), small_batches())
        .await;
    assert!(
        matches!(err, ServiceError::InjectedCrash(p) if p == point),
        "{err}"
    );

    let metrics = env.run_to_end::<T>(small_batches()).await;

    let store = TeamStore::<T>::open(&env.data()).expect("store");
    let effects = store.effects_per_return().expect("effects");
    assert_eq!(
        effects.len() as u64,
        RETURNS,
        "{point:?}: every return has an effect"
    );
    let doubled: Vec<_> = effects.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubled.is_empty(),
        "{point:?}: returns with more than one effect: {doubled:?}"
    );

    let published = env.read_all(&team_topic(T::NAME)).await;
    let per_return = event_ids_per_return(&published);
    assert_eq!(
        per_return.len() as u64,
        RETURNS,
        "{point:?}: every return's event reached the log"
    );
    assert!(
        per_return.values().all(|ids| ids.len() == 1),
        "{point:?}: a return was published as two different events"
    );

    let snap = metrics.snapshot();
    match point {
        // The transaction committed but the position did not: the restart sees the batch again
        // and must skip it by event id.
        CrashPoint::AfterTransaction => assert!(snap.duplicates_skipped > 0, "{snap:?}"),
        // The relay appended without clearing its outbox: the same events go out again, with
        // the same ids (so the topic holds repeats, which readers drop by id).
        CrashPoint::RelayAfterAppend => assert!(published.len() as u64 > RETURNS),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_the_transaction() {
    crash_then_recover::<Sales>(CrashPoint::BeforeTransaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_inside_the_transaction() {
    crash_then_recover::<Sales>(CrashPoint::InsideTransaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_the_transaction_and_the_commit() {
    crash_then_recover::<Sales>(CrashPoint::AfterTransaction).await;
    crash_then_recover::<Inventory>(CrashPoint::AfterTransaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_commit() {
    crash_then_recover::<Inventory>(CrashPoint::AfterCommit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_in_the_relay_between_append_and_clear() {
    crash_then_recover::<Sales>(CrashPoint::RelayAfterAppend).await;
}

/// The state a team ends with after a crash and a restart equals the state of a run without
/// one: redelivery changed nothing (stock levels are counted, so a double apply would show).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_after_a_crash_equals_state_without_one() {
    let crashed = Env::new().await;
    let clean = Env::new().await;
    for env in [&crashed, &clean] {
        env.publish(5, 0..RETURNS).await;
    }
    crashed
        .run_until_crash::<Inventory>(
            Faults::crash_at(CrashPoint::AfterTransaction, 4),
            small_batches(),
        )
        .await;
    crashed.run_to_end::<Inventory>(small_batches()).await;
    clean.run_to_end::<Inventory>(small_batches()).await;
    let a = TeamStore::<Inventory>::open(&crashed.data()).unwrap();
    let b = TeamStore::<Inventory>::open(&clean.data()).unwrap();
    for model in returns_domain::catalogue::MODELS {
        let code = model.model_code();
        assert_eq!(
            a.state(&code).unwrap(),
            b.state(&code).unwrap(),
            "stock of {code}"
        );
    }
    assert_eq!(a.effects_by_kind().unwrap(), b.effects_by_kind().unwrap());
}
