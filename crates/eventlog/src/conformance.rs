//! The conformance suite: what every [`EventLog`] backend must do, written once.
//!
//! A backend's test file instantiates it with [`conformance_tests!`], giving an expression that
//! opens a log. Every check uses its own random topic and group names, so the checks can share
//! one broker and run in parallel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{EventLog, OutRecord, Record, Subscription};

/// How long a check waits for records before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Expand to one `#[tokio::test]` per check, each opening its log with `$open` (an async
/// expression yielding `Arc<dyn EventLog>`). Attributes after `$open` go on every test (for
/// example an `ignore` when the backend's server is absent).
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_tests!(@each [$(#[$attr])*] $open;
            keys_keep_their_order,
            append_returns_positions_readable_by_read,
            groups_are_independent,
            resumes_from_committed_position,
            uncommitted_records_are_redelivered,
            poll_wakes_for_new_records,
            lag_counts_what_a_group_has_not_committed,
            headers_and_payload_round_trip,
            a_commit_from_outside_the_group_is_where_it_resumes,
        );
    };
    // One check at a time: the attributes repeat once per check.
    (@each [$($attr:tt)*] $open:expr; $check:ident, $($rest:ident,)*) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $($attr)*
        async fn $check() {
            let log = $open.await;
            $crate::conformance::$check(log).await;
        }
        $crate::conformance_tests!(@each [$($attr)*] $open; $($rest,)*);
    };
    (@each [$($attr:tt)*] $open:expr;) => {};
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn rec(key: &str, body: &str) -> OutRecord {
    OutRecord {
        key: key.to_string(),
        headers: vec![("ce_id".into(), format!("{key}:{body}"))],
        payload: body.as_bytes().to_vec(),
    }
}

fn body(r: &Record) -> String {
    String::from_utf8_lossy(&r.payload).into_owned()
}

/// Poll until `n` records arrived (or fail at the deadline).
pub async fn poll_n(sub: &mut dyn Subscription, n: usize) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} records arrived within {DEADLINE:?}",
            out.len()
        );
        let batch = sub
            .poll(n - out.len(), Duration::from_millis(200))
            .await
            .expect("poll");
        out.extend(batch);
    }
    out
}

/// Poll for a while and return whatever arrived (to show that nothing more comes).
async fn poll_quiet(sub: &mut dyn Subscription, wait: Duration) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while tokio::time::Instant::now() < deadline {
        out.extend(
            sub.poll(100, Duration::from_millis(100))
                .await
                .expect("poll"),
        );
    }
    out
}

pub async fn keys_keep_their_order(log: Arc<dyn EventLog>) {
    let topic = unique("order");
    log.ensure_topic(&topic).await.unwrap();
    // Interleave 20 keys, 25 events each, appended in several batches.
    for round in 0..5 {
        let batch: Vec<_> = (0..20)
            .flat_map(|k| {
                (0..5).map(move |i| rec(&format!("k{k}"), &format!("k{k}:{}", round * 5 + i)))
            })
            .collect();
        log.append(&topic, batch).await.unwrap();
    }
    let mut sub = log.subscribe(&unique("g"), &[&topic]).await.unwrap();
    let got = poll_n(sub.as_mut(), 500).await;
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut partition_of: BTreeMap<String, u32> = BTreeMap::new();
    for r in &got {
        let key = r.key.clone().expect("key kept");
        let seq: u32 = body(r).rsplit(':').next().unwrap().parse().unwrap();
        per_key.entry(key.clone()).or_default().push(seq);
        let p = *partition_of.entry(key.clone()).or_insert(r.partition);
        assert_eq!(p, r.partition, "key {key} spread over partitions");
    }
    assert_eq!(per_key.len(), 20);
    for (key, seqs) in per_key {
        assert_eq!(seqs, (0..25).collect::<Vec<_>>(), "order of key {key}");
    }
    let used: std::collections::BTreeSet<u32> = partition_of.values().copied().collect();
    assert!(used.len() > 1, "20 keys all landed in one partition");
}

pub async fn append_returns_positions_readable_by_read(log: Arc<dyn EventLog>) {
    let topic = unique("pos");
    let positions = log
        .append(&topic, vec![rec("a", "1"), rec("b", "2"), rec("a", "3")])
        .await
        .unwrap();
    assert_eq!(positions.len(), 3);
    assert_eq!(positions[0].partition, positions[2].partition);
    assert!(
        positions[2].offset > positions[0].offset,
        "a later record of a key sits after it"
    );
    for (pos, expected) in positions.iter().zip(["1", "2", "3"]) {
        let got = log
            .read(&topic, pos.partition, pos.offset, 1)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(body(&got[0]), expected);
        assert_eq!(got[0].offset, pos.offset);
    }
    let ends = log.end_offsets(&topic).await.unwrap();
    assert_eq!(ends.iter().sum::<u64>(), 3);
}

pub async fn groups_are_independent(log: Arc<dyn EventLog>) {
    let topic = unique("groups");
    log.append(
        &topic,
        (0..30)
            .map(|i| rec(&format!("k{i}"), &i.to_string()))
            .collect(),
    )
    .await
    .unwrap();
    let (g1, g2) = (unique("g1"), unique("g2"));
    let mut a = log.subscribe(&g1, &[&topic]).await.unwrap();
    let got_a = poll_n(a.as_mut(), 30).await;
    a.commit(&crate::record::positions_after(&got_a))
        .await
        .unwrap();
    // The second group still sees everything although the first committed all of it.
    let mut b = log.subscribe(&g2, &[&topic]).await.unwrap();
    let got_b = poll_n(b.as_mut(), 30).await;
    let mut bodies_a: Vec<_> = got_a.iter().map(body).collect();
    let mut bodies_b: Vec<_> = got_b.iter().map(body).collect();
    bodies_a.sort();
    bodies_b.sort();
    assert_eq!(bodies_a, bodies_b);
    assert_eq!(log.lag(&g1, &topic).await.unwrap(), 0);
    assert_eq!(log.lag(&g2, &topic).await.unwrap(), 30);
}

pub async fn resumes_from_committed_position(log: Arc<dyn EventLog>) {
    let topic = unique("resume");
    let group = unique("g");
    log.append(
        &topic,
        (0..10).map(|i| rec("same", &i.to_string())).collect(),
    )
    .await
    .unwrap();
    {
        let mut sub = log.subscribe(&group, &[&topic]).await.unwrap();
        let got = poll_n(sub.as_mut(), 10).await;
        // Handle and commit only the first four.
        sub.commit(&crate::record::positions_after(&got[..4]))
            .await
            .unwrap();
    }
    log.append(&topic, vec![rec("same", "10")]).await.unwrap();
    let mut sub = log.subscribe(&group, &[&topic]).await.unwrap();
    let got = poll_n(sub.as_mut(), 7).await;
    let bodies: Vec<_> = got.iter().map(body).collect();
    assert_eq!(bodies, ["4", "5", "6", "7", "8", "9", "10"]);
    assert!(poll_quiet(sub.as_mut(), Duration::from_millis(300))
        .await
        .is_empty());
}

pub async fn uncommitted_records_are_redelivered(log: Arc<dyn EventLog>) {
    let topic = unique("redeliver");
    let group = unique("g");
    log.append(
        &topic,
        (0..12)
            .map(|i| rec(&format!("k{}", i % 4), &i.to_string()))
            .collect(),
    )
    .await
    .unwrap();
    let first: Vec<String> = {
        let mut sub = log.subscribe(&group, &[&topic]).await.unwrap();
        // A member that reads and dies before committing.
        poll_n(sub.as_mut(), 12).await.iter().map(body).collect()
    };
    let mut sub = log.subscribe(&group, &[&topic]).await.unwrap();
    let mut again: Vec<String> = poll_n(sub.as_mut(), 12).await.iter().map(body).collect();
    let mut first = first;
    first.sort();
    again.sort();
    assert_eq!(first, again, "everything uncommitted comes again");
}

pub async fn poll_wakes_for_new_records(log: Arc<dyn EventLog>) {
    let topic = unique("wake");
    log.ensure_topic(&topic).await.unwrap();
    let mut sub = log.subscribe(&unique("g"), &[&topic]).await.unwrap();
    assert!(sub
        .poll(10, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());
    let writer = Arc::clone(&log);
    let t = topic.clone();
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.append(&t, vec![rec("x", "late")]).await.unwrap();
    });
    let got = poll_n(sub.as_mut(), 1).await;
    assert_eq!(body(&got[0]), "late");
    append.await.unwrap();
}

pub async fn lag_counts_what_a_group_has_not_committed(log: Arc<dyn EventLog>) {
    let topic = unique("lag");
    let group = unique("g");
    log.append(
        &topic,
        (0..9)
            .map(|i| rec(&format!("k{i}"), &i.to_string()))
            .collect(),
    )
    .await
    .unwrap();
    let mut sub = log.subscribe(&group, &[&topic]).await.unwrap();
    assert_eq!(log.lag(&group, &topic).await.unwrap(), 9);
    let got = poll_n(sub.as_mut(), 9).await;
    assert_eq!(
        log.lag(&group, &topic).await.unwrap(),
        9,
        "reading is not committing"
    );
    sub.commit(&crate::record::positions_after(&got))
        .await
        .unwrap();
    assert_eq!(log.lag(&group, &topic).await.unwrap(), 0);
    let committed: u64 = log.committed(&group, &topic).await.unwrap().iter().sum();
    assert_eq!(committed, 9);
}

pub async fn headers_and_payload_round_trip(log: Arc<dyn EventLog>) {
    let topic = unique("bytes");
    let payload: Vec<u8> = (0..=255u8).collect();
    let headers = vec![
        ("ce_id".to_string(), "id-1".to_string()),
        ("ce_type".to_string(), "returns.Test.v1".to_string()),
        ("note".to_string(), "ünïcødé ✓".to_string()),
    ];
    log.append(
        &topic,
        vec![OutRecord {
            key: "k".into(),
            headers: headers.clone(),
            payload: payload.clone(),
        }],
    )
    .await
    .unwrap();
    let mut sub = log.subscribe(&unique("g"), &[&topic]).await.unwrap();
    let got = poll_n(sub.as_mut(), 1).await;
    assert_eq!(got[0].payload, payload);
    assert_eq!(got[0].key.as_deref(), Some("k"));
    for (k, v) in &headers {
        assert_eq!(got[0].header(k), Some(v.as_str()), "header {k}");
    }
    assert!(got[0].timestamp_ms > 1_600_000_000_000);
}

/// A reader with its own checkpoint shows its progress through a group it never joins: the
/// positions committed from outside are the group's, and a member joining later starts there.
pub async fn a_commit_from_outside_the_group_is_where_it_resumes(log: Arc<dyn EventLog>) {
    let topic = unique("outside");
    let group = unique("g");
    log.append(&topic, (0..6).map(|i| rec("k", &i.to_string())).collect())
        .await
        .unwrap();
    let ends = log.end_offsets(&topic).await.unwrap();
    let partition = ends
        .iter()
        .position(|&e| e == 6)
        .expect("one key, one partition") as u32;
    let at = crate::Position {
        topic: topic.clone(),
        partition,
        offset: 4,
    };
    log.commit_outside(&group, std::slice::from_ref(&at))
        .await
        .unwrap();
    assert_eq!(
        log.committed(&group, &topic).await.unwrap()[partition as usize],
        4
    );
    assert_eq!(log.lag(&group, &topic).await.unwrap(), 2);
    let mut sub = log.subscribe(&group, &[&topic]).await.unwrap();
    let got = poll_n(sub.as_mut(), 2).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["4", "5"]);
}
