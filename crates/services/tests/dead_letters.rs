//! Records on `returnOrders` that are not valid refund requests are set aside with a reason; the
//! good records around them are all handled.

mod common;

use common::{small_batches, Env};
use returns_domain::{Accounting, Generator, Manufacturing, Sales, Team};
use returns_eventlog::envelope::Envelope;
use returns_eventlog::{dead_letter_topic, team_group, wire, OutRecord, Position, RETURN_ORDERS};
use returns_services::store::TeamStore;

fn raw(key: &str, headers: Vec<(String, String)>, payload: &[u8]) -> OutRecord {
    OutRecord {
        key: key.into(),
        headers,
        payload: payload.to_vec(),
    }
}

/// Bad records of every kind, each with the error kind it must be dead-lettered with.
fn bad_records() -> Vec<(OutRecord, &'static str)> {
    let good = Generator::new(1).request(999_999);
    let good_json = serde_json::to_value(wire::v1::RefundRequestV1::from(&good)).unwrap();
    let mut missing = good_json.clone();
    missing.as_object_mut().unwrap().remove("order_id");
    let mut bad_order = good_json.clone();
    bad_order["order_id"] = "ORDER-1".into();
    let mut negative = good_json.clone();
    negative["refund_amount"]["minor"] = (-5).into();
    let v99 = Envelope::new("returns.RefundRequest.v99", "/future-client").to_headers();
    vec![
        (raw("b1", vec![], b"This is the first message"), "malformed"),
        (
            raw("b2", vec![], &serde_json::to_vec(&missing).unwrap()),
            "malformed",
        ),
        (
            raw("b3", vec![], &serde_json::to_vec(&bad_order).unwrap()),
            "invalid_field",
        ),
        (
            raw("b4", vec![], &serde_json::to_vec(&negative).unwrap()),
            "invalid_field",
        ),
        (
            raw("b5", v99, &serde_json::to_vec(&good_json).unwrap()),
            "unknown_version",
        ),
        (raw("b6", vec![], b"\xff\xfe not utf-8"), "malformed"),
    ]
}

async fn check_team<T: Team>(
    env: &Env,
    good: u64,
    bad: &[(OutRecord, &'static str)],
    at: &[Position],
) {
    let metrics = env.run_to_end::<T>(small_batches()).await;
    let snap = metrics.snapshot();
    assert_eq!(
        snap.dead_lettered,
        bad.len() as u64,
        "{}: {snap:?}",
        T::NAME
    );
    assert_eq!(snap.processed, good + bad.len() as u64);

    let store = TeamStore::<T>::open(&env.data()).unwrap();
    assert_eq!(
        store.effects_per_return().unwrap().len() as u64,
        good,
        "{}: every good return handled",
        T::NAME
    );

    let letters = env
        .read_all(&dead_letter_topic(RETURN_ORDERS, &team_group(T::NAME)))
        .await;
    assert_eq!(letters.len(), bad.len(), "{}", T::NAME);
    for ((record, kind), pos) in bad.iter().zip(at) {
        let letter = letters
            .iter()
            .find(|l| l.key.as_deref() == Some(record.key.as_str()))
            .unwrap_or_else(|| panic!("{}: no dead letter for {}", T::NAME, record.key));
        assert_eq!(
            letter.header("dlt_error_kind"),
            Some(*kind),
            "{}",
            record.key
        );
        assert!(!letter.header("dlt_error").unwrap_or("").is_empty());
        assert_eq!(letter.header("dlt_original_topic"), Some(RETURN_ORDERS));
        assert_eq!(
            letter.header("dlt_original_partition"),
            Some(pos.partition.to_string().as_str())
        );
        assert_eq!(
            letter.header("dlt_original_offset"),
            Some(pos.offset.to_string().as_str())
        );
        assert_eq!(
            letter.payload, record.payload,
            "the original bytes are kept"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_dead_lettered_and_the_good_ones_around_them_handled() {
    let env = Env::new().await;
    let bad = bad_records();
    env.publish(3, 0..150).await;
    let at = env
        .log
        .append(RETURN_ORDERS, bad.iter().map(|(r, _)| r.clone()).collect())
        .await
        .unwrap();
    env.publish(3, 150..300).await;

    check_team::<Sales>(&env, 300, &bad, &at).await;
    check_team::<Manufacturing>(&env, 300, &bad, &at).await;
    check_team::<Accounting>(&env, 300, &bad, &at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_bad_record_is_dead_lettered_once() {
    let env = Env::new().await;
    let bad = bad_records();
    env.log
        .append(RETURN_ORDERS, bad.iter().map(|(r, _)| r.clone()).collect())
        .await
        .unwrap();
    env.run_to_end::<Sales>(small_batches()).await;
    // Rewind the group by hand: a new member that never saw the commit (as after a lost commit).
    let mut sub = env
        .log
        .subscribe(&team_group(Sales::NAME), &[RETURN_ORDERS])
        .await
        .unwrap();
    let rewind: Vec<_> = (0..3)
        .map(|p| returns_eventlog::Position {
            topic: RETURN_ORDERS.into(),
            partition: p,
            offset: 0,
        })
        .collect();
    sub.commit(&rewind).await.unwrap();
    drop(sub);
    let again = env.run_to_end::<Sales>(small_batches()).await.snapshot();
    assert_eq!(again.dead_lettered, 0);
    assert_eq!(again.duplicates_skipped, bad.len() as u64);
    let letters = env
        .read_all(&dead_letter_topic(RETURN_ORDERS, &team_group(Sales::NAME)))
        .await;
    assert_eq!(letters.len(), bad.len());
}
