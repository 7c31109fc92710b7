//! Schema evolution end to end: `returnOrders` holds `RefundRequest` v1 and v2 records side by
//! side (old clients and User Support today), a headerless v1 JSON line (as Kafka's console
//! producer writes it) and one record of a version this build does not know (v3). Every team
//! handles every readable request exactly once, sets the v3 record aside in its dead-letter topic
//! naming the versions it reads, and decides from what each version says: Manufacturing orders
//! the disassembly for the right defect whichever version carried it, and Quality counts when
//! the defect was noticed where v2 says it, `unknown` where v1 could not.
//!
//! Run on the embedded SQLite log and on a real Kafka broker (`RETURNS_KAFKA_BOOTSTRAP`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use returns_domain::{
    Accounting, Generator, Inventory, Manufacturing, ManufacturingEvent, Noticed, Quality,
    QualityEvent, RefundRequest, ReturnReason, Sales, Team,
};
use returns_eventlog::conformance::unique;
use returns_eventlog::envelope::Envelope;
use returns_eventlog::wire::{self, v1::RefundRequestV1, v2::RefundRequestV2};
use returns_eventlog::{
    dead_letter_topic, team_group, team_topic, EventLog, OutRecord, Record, RETURN_ORDERS,
};
use returns_services::team::store::TeamStore;
use returns_services::TeamService;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(90);
const V3_KEY: &str = "from-a-newer-client";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sent {
    V1,
    V2,
    Headerless,
}

/// A good request as it went on the log, and as the teams must read it.
struct Good {
    sent: Sent,
    reads_as: RefundRequest,
}

/// What a v1 record can say about `req`: the defect, nothing of when or how.
fn as_v1_reads(req: &RefundRequest) -> RefundRequest {
    RefundRequest {
        reason: ReturnReason::defect_only(req.reason.defect.clone()),
        ..req.clone()
    }
}

fn v1_record(req: &RefundRequest, headers: bool) -> OutRecord {
    let headers = if headers {
        Envelope::new("returns.RefundRequest.v1", wire::USER_SUPPORT_SOURCE)
            .correlated(req.return_id.to_string())
            .to_headers()
    } else {
        Vec::new()
    };
    OutRecord {
        key: req.return_id.to_string(),
        headers,
        payload: serde_json::to_vec(&RefundRequestV1::from(req)).expect("a DTO serializes"),
    }
}

/// A record from a client newer than this build: v3, with a field v2 does not have.
fn v3_record(req: &RefundRequest) -> OutRecord {
    let mut payload = serde_json::to_value(RefundRequestV2::from(req)).expect("a DTO");
    payload["channel"] = "mobile-app".into();
    OutRecord {
        key: V3_KEY.to_string(),
        headers: Envelope::new("returns.RefundRequest.v3", wire::USER_SUPPORT_SOURCE)
            .correlated(req.return_id.to_string())
            .to_headers(),
        payload: serde_json::to_vec(&payload).expect("JSON"),
    }
}

/// v2 and v1 records alternating, the headerless line and the v3 record in the middle.
fn mixed_log(count: u64) -> (Vec<OutRecord>, BTreeMap<String, Good>, OutRecord) {
    let generator = Generator::new(23);
    let mut records = Vec::new();
    let mut good = BTreeMap::new();
    for (i, req) in generator.requests(0..count).enumerate() {
        let (record, sent, reads_as) = if i % 2 == 0 {
            let envelope = wire::refund_request_envelope(&req);
            (
                wire::encode_refund_request(&req, &envelope),
                Sent::V2,
                req.clone(),
            )
        } else {
            (v1_record(&req, true), Sent::V1, as_v1_reads(&req))
        };
        records.push(record);
        good.insert(req.return_id.to_string(), Good { sent, reads_as });
        if i as u64 == count / 2 {
            let line = generator.request(count);
            records.push(v1_record(&line, false));
            good.insert(
                line.return_id.to_string(),
                Good {
                    sent: Sent::Headerless,
                    reads_as: as_v1_reads(&line),
                },
            );
        }
    }
    let v3 = v3_record(&generator.request(count + 1));
    records.insert(records.len() / 3, v3.clone());
    (records, good, v3)
}

async fn run_to_end<T: Team>(log: &Arc<dyn EventLog>, data: &Path) {
    let stop = CancellationToken::new();
    let task =
        tokio::spawn(TeamService::<T>::new(Arc::clone(log), data.to_path_buf()).run(stop.clone()));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let lag = log
            .lag(&team_group(T::NAME), RETURN_ORDERS)
            .await
            .expect("lag");
        if lag == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} still {lag} behind on {RETURN_ORDERS} at the deadline",
            T::NAME
        );
        assert!(!task.is_finished(), "{} stopped early", T::NAME);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await
        .expect("no panic")
        .unwrap_or_else(|e| panic!("{} stops cleanly: {e}", T::NAME));
}

async fn read_all(log: &Arc<dyn EventLog>, topic: &str) -> Vec<Record> {
    let mut out = Vec::new();
    log.for_each_record(topic, &mut |r| out.push(r))
        .await
        .expect("read a topic");
    out
}

/// The team's events on its own topic, by return (each return exactly once).
async fn events<T: Team>(log: &Arc<dyn EventLog>) -> HashMap<String, T::Event> {
    let mut by_return = HashMap::new();
    for record in read_all(log, &team_topic(T::NAME)).await {
        let (envelope, event) = wire::decode_team_event::<T>(&record).expect("a team event");
        let return_id = envelope.correlation_id.expect("correlated with its return");
        assert!(
            by_return.insert(return_id.clone(), event).is_none(),
            "{}: two events for {return_id}",
            T::NAME
        );
    }
    by_return
}

/// One effect per good return, none for the v3 record, which is dead-lettered as an unknown
/// version naming the versions this build reads.
async fn check_team<T: Team>(
    log: &Arc<dyn EventLog>,
    data: &Path,
    good: &BTreeMap<String, Good>,
    v3: &OutRecord,
) {
    let effects = TeamStore::<T>::open(data)
        .expect("open the store")
        .effects_per_return()
        .expect("effects");
    let expected: HashMap<String, u64> = good.keys().map(|id| (id.clone(), 1)).collect();
    assert_eq!(effects, expected, "{}: one effect per good return", T::NAME);
    assert_eq!(
        events::<T>(log).await.len(),
        good.len(),
        "{}: one event per good return on its topic",
        T::NAME
    );

    let letters = read_all(log, &dead_letter_topic(RETURN_ORDERS, &team_group(T::NAME))).await;
    assert_eq!(letters.len(), 1, "{}: only the v3 record", T::NAME);
    let letter = &letters[0];
    assert_eq!(letter.key.as_deref(), Some(V3_KEY), "{}", T::NAME);
    assert_eq!(
        letter.payload,
        v3.payload,
        "{}: the original bytes",
        T::NAME
    );
    assert_eq!(
        letter.header("dlt_error_kind"),
        Some("unknown_version"),
        "{}",
        T::NAME
    );
    let error = letter.header("dlt_error").unwrap_or_default();
    assert!(
        error.contains("returns.RefundRequest version 3") && error.contains("versions [1, 2]"),
        "{}: {error}",
        T::NAME
    );
}

async fn mixed_versions_are_read_side_by_side(url: &str, data: &Path) {
    let log = returns_eventlog::open(url).await.expect("open the log");
    let (records, good, v3) = mixed_log(40);
    log.append(RETURN_ORDERS, records).await.expect("append");

    run_to_end::<Sales>(&log, data).await;
    run_to_end::<Inventory>(&log, data).await;
    run_to_end::<Manufacturing>(&log, data).await;
    run_to_end::<Accounting>(&log, data).await;
    run_to_end::<Quality>(&log, data).await;

    check_team::<Sales>(&log, data, &good, &v3).await;
    check_team::<Inventory>(&log, data, &good, &v3).await;
    check_team::<Manufacturing>(&log, data, &good, &v3).await;
    check_team::<Accounting>(&log, data, &good, &v3).await;
    check_team::<Quality>(&log, data, &good, &v3).await;

    // Manufacturing orders the disassembly for the defect each version carried.
    let mut ordered: BTreeMap<Sent, usize> = BTreeMap::new();
    for (return_id, event) in events::<Manufacturing>(&log).await {
        if let ManufacturingEvent::DisassemblyOrdered { defect, .. } = event {
            let g = &good[&return_id];
            assert_eq!(
                defect, g.reads_as.reason.defect,
                "{return_id} ({:?})",
                g.sent
            );
            *ordered.entry(g.sent).or_default() += 1;
        }
    }
    let from = |sent| ordered.get(&sent).copied().unwrap_or(0);
    assert!(
        from(Sent::V1) > 0 && from(Sent::V2) > 0,
        "disassemblies ordered from both versions: {ordered:?}"
    );

    // Quality counts when the defect was noticed: what v2 says, `unknown` for v1.
    let mut known_from_v2 = 0;
    for (return_id, event) in events::<Quality>(&log).await {
        if let QualityEvent::DefectRecorded {
            noticed, defect, ..
        } = event
        {
            let g = &good[&return_id];
            assert_eq!(
                noticed, g.reads_as.reason.noticed,
                "{return_id} ({:?})",
                g.sent
            );
            assert_eq!(defect, g.reads_as.reason.defect, "{return_id}");
            if g.sent != Sent::V2 {
                assert_eq!(noticed, Noticed::Unknown, "{return_id} ({:?})", g.sent);
            } else if noticed != Noticed::Unknown {
                known_from_v2 += 1;
            }
        }
    }
    assert!(known_from_v2 > 0, "some v2 requests say when");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_side_by_side_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?partitions=3",
        dir.path().join("log.db").display()
    );
    mixed_versions_are_read_side_by_side(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
async fn v1_and_v2_side_by_side_on_kafka() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP")
        .expect("RETURNS_KAFKA_BOOTSTRAP names the broker (bash scripts/test.sh sets it)");
    let url = format!(
        "kafka://{bootstrap}?namespace={}&partitions=3",
        unique("versions")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    mixed_versions_are_read_side_by_side(&url, dir.path()).await;
}
