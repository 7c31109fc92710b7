//! Records on `returnOrders` that are not valid refund requests are set aside with a reason; the
//! good records around them are all handled.

use crate::common;

use common::{small_batches, Env};
use returns_domain::{Accounting, Generator, Manufacturing, Sales, Team};
use returns_eventlog::envelope::Envelope;
use returns_eventlog::{dead_letter_topic, team_group, wire, OutRecord, Position, RETURN_ORDERS};
use returns_services::team::store::TeamStore;

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

/// Run Sales, then Manufacturing, to the end; each must have (processed, dead-lettered,
/// duplicates skipped) as given.
async fn assert_both_teams(env: &Env, want: (u64, u64, u64)) {
    for snap in [
        env.run_to_end::<Sales>(small_batches()).await.snapshot(),
        env.run_to_end::<Manufacturing>(small_batches())
            .await
            .snapshot(),
    ] {
        let got = (snap.processed, snap.dead_lettered, snap.duplicates_skipped);
        assert_eq!(got, want, "{snap:?}");
    }
}

/// Dead letters put back on `returnOrders` (`returns dlq redrive`), on the embedded log.
///
/// The fix here is a corrected upstream record: one request was published under a misspelt
/// `ce_type` (unknown_type) with a good v2 payload, and the replay puts it back under the right
/// type. A line typed into a console producer (no headers, not JSON) stays unreadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_put_back_are_decided_once_and_the_still_unreadable_dead_lettered_again() {
    use returns_eventlog::envelope;
    use returns_services::tools::dead_letters::{redrive, RedriveOptions, REDRIVEN_FROM};
    use returns_services::TeamName;
    use tokio_util::sync::CancellationToken;

    let env = Env::new().await;
    let fixable = Generator::new(3).request(1_000);
    let mut mislabelled =
        wire::encode_refund_request(&fixable, &wire::refund_request_envelope(&fixable));
    let fixable_id = mislabelled
        .headers
        .iter()
        .find(|(k, _)| k == envelope::ID)
        .unwrap()
        .1
        .clone();
    for (k, v) in &mut mislabelled.headers {
        if k == envelope::TYPE {
            *v = "returns.RefundReqest.v2".into();
        }
    }
    env.publish(3, 0..50).await;
    let at = env
        .log
        .append(
            RETURN_ORDERS,
            vec![mislabelled, raw("console", vec![], b"refund please")],
        )
        .await
        .unwrap();
    env.publish(3, 50..100).await;
    let console_id = envelope::derived_id(RETURN_ORDERS, at[1].partition, at[1].offset);
    assert_both_teams(&env, (102, 2, 0)).await;

    let fix = |letter: &returns_eventlog::Record, record: &mut OutRecord| {
        if letter.header("dlt_error_kind") == Some("unknown_type") {
            for (k, v) in &mut record.headers {
                if k == envelope::TYPE {
                    *v = wire::REFUND_REQUEST_TYPE.into();
                }
            }
        }
    };
    let put_back = |teams: &'static [TeamName], dry_run: bool| {
        let log = std::sync::Arc::clone(&env.log);
        async move {
            let options = RedriveOptions {
                teams,
                dry_run,
                fix: Some(&fix),
            };
            redrive(&log, options, &CancellationToken::new())
                .await
                .unwrap()
        }
    };
    let sales_dlt = dead_letter_topic(RETURN_ORDERS, &team_group(Sales::NAME));
    let sales_letters = || env.read_all(&sales_dlt);

    // Sales's two dead letters go back; both teams had dead-lettered both records.
    let report = put_back(&[TeamName::Sales], false).await;
    assert_eq!(report.teams["sales"].put_back, 2, "{report:?}");
    assert_eq!(report.appended, 2);
    // The fixed record decided, the console line dead-lettered again.
    assert_both_teams(&env, (2, 1, 0)).await;
    let effects = TeamStore::<Sales>::open(&env.data())
        .unwrap()
        .effects_per_return()
        .unwrap();
    assert_eq!(effects.len(), 101);
    assert_eq!(effects[&fixable.return_id.to_string()], 1);
    let letters = sales_letters().await;
    assert_eq!(letters.len(), 3);
    let again = letters
        .iter()
        .find(|l| l.header(REDRIVEN_FROM).is_some())
        .unwrap();
    assert_eq!(
        again.header("dlt_original_event_id"),
        Some(console_id.as_str()),
        "the derived id is kept"
    );
    assert_eq!(again.header("dlt_error_kind"), Some("malformed"));
    assert_eq!(again.payload, b"refund please");

    // Manufacturing's dead letters go back too: its letter of the fixed record (now decided
    // everywhere) is skipped by both teams; the console line is dead-lettered once more.
    let report = put_back(&[TeamName::Manufacturing], false).await;
    assert_eq!(report.teams["manufacturing"].put_back, 3, "{report:?}");
    assert_eq!(report.appended, 2, "one record per event");
    assert_both_teams(&env, (1, 1, 1)).await;
    let letters = sales_letters().await;
    assert_eq!(letters.len(), 4);
    assert_eq!(
        letters
            .iter()
            .filter(|l| l.header("dlt_original_event_id") == Some(fixable_id.as_str()))
            .count(),
        1,
        "the fixed record is never dead-lettered again"
    );

    // What was put back is not put back again: only the dead letters written since each team's
    // last replay are left (Sales: one after each round; Manufacturing: one after its own).
    let report = put_back(&[TeamName::Sales, TeamName::Manufacturing], true).await;
    for (team, left) in [("sales", 2), ("manufacturing", 1)] {
        let t = &report.teams[team];
        assert_eq!((t.put_back, t.repeats), (left, left), "{team}: {report:?}");
    }
    assert_eq!(report.appended, 1);
    let ends = env.log.end_offsets(RETURN_ORDERS).await.unwrap();
    assert_eq!(
        ends.iter().sum::<u64>(),
        102 + 2 + 2,
        "a dry run appends nothing"
    );
}
