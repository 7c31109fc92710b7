//! The conformance suite on a real Kafka broker, named by `RETURNS_KAFKA_BOOTSTRAP`
//! (`bash scripts/test.sh` starts one and sets it). Without it, every test here is ignored with
//! the reason shown by `cargo test`.

use std::sync::Arc;

use returns_eventlog::kafka::{KafkaConfig, KafkaLog};
use returns_eventlog::EventLog;

async fn open() -> Arc<dyn EventLog> {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP")
        .expect("RETURNS_KAFKA_BOOTSTRAP names the broker (bash scripts/test.sh sets it)");
    let log = KafkaLog::open(KafkaConfig::new(bootstrap))
        .await
        .expect("the Kafka broker named by RETURNS_KAFKA_BOOTSTRAP answers");
    Arc::new(log)
}

returns_eventlog::conformance_tests!(
    open(),
    #[cfg_attr(
        not(kafka_broker),
        ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
    )]
);

/// Kafka-only: a second member joins the group mid-stream, so partitions are revoked from the
/// first one and reassigned. Each member commits what it handled after every batch; together
/// they handle every record, and the group's committed positions end at the end of the topic,
/// so a later member gets nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
async fn a_rebalance_drops_nothing_and_keeps_what_was_committed() {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use returns_eventlog::conformance::{poll_n, unique};
    use returns_eventlog::{positions_after, OutRecord, Subscription};

    let log = open().await;
    let topic = unique("rebalance");
    let group = unique("g");
    let records: Vec<OutRecord> = (0..600)
        .map(|i| OutRecord {
            key: format!("k{i}"),
            headers: vec![],
            payload: i.to_string().into_bytes(),
        })
        .collect();
    log.append(&topic, records).await.unwrap();

    let mut seen = BTreeSet::new();
    let mut deliveries = 0;
    let mut handle = |seen: &mut BTreeSet<String>, records: &[returns_eventlog::Record]| {
        deliveries += records.len();
        for r in records {
            seen.insert(String::from_utf8(r.payload.clone()).unwrap());
        }
    };
    // The first member handles a little and commits it.
    let mut a = log.subscribe(&group, &[&topic]).await.unwrap();
    let first = poll_n(a.as_mut(), 50).await;
    handle(&mut seen, &first);
    a.commit(&positions_after(&first)).await.unwrap();

    // A second member joins: the group rebalances while both keep polling and committing.
    let mut b = log.subscribe(&group, &[&topic]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut b_got_some = false;
    while seen.len() < 600 || log.lag(&group, &topic).await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "after 60 s: {} of 600 handled, lag {}",
            seen.len(),
            log.lag(&group, &topic).await.unwrap()
        );
        // The first member takes one record at a time until the second has partitions, so
        // the rebalance happens while it still has records fetched and not handed out.
        let a_max = if b_got_some { 100 } else { 1 };
        for (sub, is_b, max) in [(&mut a, false, a_max), (&mut b, true, 100)] {
            let sub: &mut Box<dyn Subscription> = sub;
            let got = sub.poll(max, Duration::from_millis(100)).await.unwrap();
            b_got_some |= is_b && !got.is_empty();
            handle(&mut seen, &got);
            sub.commit(&positions_after(&got)).await.unwrap();
        }
    }
    assert!(b_got_some, "the second member was given partitions");
    assert_eq!(
        seen.len(),
        600,
        "every record handled by one member or the other"
    );
    assert_eq!(
        deliveries, 600,
        "no record handed out twice across the rebalance"
    );
    drop((a, b));

    // Both members have left; what they committed stays: the group ends at the topic's end.
    assert_eq!(
        log.committed(&group, &topic).await.unwrap(),
        log.end_offsets(&topic).await.unwrap()
    );
}

/// Kafka-only: retention deleted the start of a partition. A read from before the first record
/// still held starts at that record, as on the embedded log, instead of jumping to the end
/// (what a fetch below the log start does by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
async fn a_read_from_below_the_first_record_still_held_starts_there() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    use returns_eventlog::conformance::unique;
    use returns_eventlog::OutRecord;

    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP");
    let mut config = KafkaConfig::new(bootstrap.clone());
    config.partitions = 1;
    let log = KafkaLog::open(config).await.unwrap();
    let topic = unique("retention");
    let records: Vec<OutRecord> = (0..20)
        .map(|i| OutRecord {
            key: format!("k{i}"),
            headers: vec![],
            payload: i.to_string().into_bytes(),
        })
        .collect();
    log.append(&topic, records).await.unwrap();

    // What retention does: everything below offset 10 goes.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let mut below = TopicPartitionList::new();
    below
        .add_partition_offset(&topic, 0, Offset::Offset(10))
        .unwrap();
    admin
        .delete_records(&below, &AdminOptions::new())
        .await
        .unwrap();

    let offsets = |records: Vec<returns_eventlog::Record>| -> Vec<u64> {
        records.iter().map(|r| r.offset).collect()
    };
    assert_eq!(
        offsets(log.read(&topic, 0, 5, 10).await.unwrap()),
        (10..20).collect::<Vec<_>>(),
        "from 5, the first ten records still held"
    );
    assert_eq!(
        offsets(log.read(&topic, 0, 0, 100).await.unwrap()),
        (10..20).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(log.read(&topic, 0, 0, 5).await.unwrap()),
        (10..15).collect::<Vec<_>>(),
        "far below the log start, still the first five held (a reader moving page by page \
         from 0 would otherwise never get past the deleted records)"
    );
}

/// Kafka: a log is a cluster and a namespace; the cluster's id is what the broker reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
async fn a_log_is_named_by_its_cluster_and_namespace() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP");
    let plain = returns_eventlog::open(&format!("kafka://{bootstrap}"))
        .await
        .unwrap();
    let again = returns_eventlog::open(&format!("kafka://{bootstrap}"))
        .await
        .unwrap();
    let spaced = returns_eventlog::open(&format!("kafka://{bootstrap}?namespace=ns1"))
        .await
        .unwrap();
    assert!(
        plain.identity().starts_with("kafka-"),
        "{}",
        plain.identity()
    );
    assert_eq!(plain.identity(), again.identity());
    assert_eq!(spaced.identity(), format!("{}-ns1", plain.identity()));
}
