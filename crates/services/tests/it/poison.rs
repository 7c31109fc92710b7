//! The poison test: 1,000 records that cannot be read, at random places among 10,000 good ones,
//! while all five teams run. Every team dead-letters each of the 1,000 with its reason and its
//! original place, handles each of the 10,000 exactly once, and reaches the end of
//! `returnOrders` (lag 0) before a deadline: one bad record never stalls a team.
//!
//! Then the dead letters are put back (`returns dlq redrive`). This build reads every record it
//! read before the same way, so the fix is a corrected record: 125 of the bad records are good
//! requests published under a misspelt `ce_type`, and the replay puts them back under the right
//! type. Before it, upstream corrects 25 of them itself (same event id, right type): every team
//! decides those, and skips their replayed copies as duplicates. The other 100 are decided once
//! by every team; the 875 records still unreadable are dead-lettered once more, each with its
//! reason, under its original id. A dry run afterwards finds only those 875 left to put back.
//!
//! The same scenario runs on the embedded log and on the real broker.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use returns_domain::{Generator, RefundRequest};
use returns_eventlog::envelope;
use returns_eventlog::wire::{self, v2::RefundRequestV2};
use returns_eventlog::{team_group, team_topic, EventLog, OutRecord, Record, RETURN_ORDERS};
use returns_services::tools::dead_letters::{
    redrive, team_dead_letters, RedriveOptions, RedriveReport, REDRIVEN_FROM,
};
use returns_services::{open_store_view, spawn_team, ServiceError, TeamMetrics, TeamName};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const GOOD: u64 = 10_000;
const BAD: usize = 1_000;
/// Shapes of bad record, used in turn; the last two are the unknown types.
const SHAPES: usize = 8;
/// Bad records of the misspelt-type shape (a good request under a wrong `ce_type`).
const FIXABLE: u64 = (BAD / SHAPES) as u64;
/// Of those, corrected upstream before the replay.
const CORRECTED_UPSTREAM: u64 = 25;
const STILL_BAD: u64 = BAD as u64 - FIXABLE;
const DEADLINE: Duration = Duration::from_secs(120);
const MISSPELT: &str = "returns.RefundReqest.v2";
const SEED: u64 = 61;

/// A bad record and the `dlt_error_kind` it must be dead-lettered with.
struct Bad {
    record: OutRecord,
    kind: &'static str,
}

fn with_type(mut record: OutRecord, event_type: &str) -> OutRecord {
    for (k, v) in &mut record.headers {
        if k == envelope::TYPE {
            *v = event_type.to_string();
        }
    }
    record
}

fn published(req: &RefundRequest) -> OutRecord {
    wire::encode_refund_request(req, &wire::refund_request_envelope(req))
}

/// The `i`-th request of the bad-record generator as v2 JSON, changed by `edit`, under v2
/// headers.
fn edited(i: u64, edit: impl FnOnce(&mut serde_json::Value)) -> OutRecord {
    let req = Generator::new(SEED + 1).request(i);
    let mut json = serde_json::to_value(RefundRequestV2::from(&req)).unwrap();
    edit(&mut json);
    OutRecord {
        payload: serde_json::to_vec(&json).unwrap(),
        ..published(&req)
    }
}

/// Bad record `i`, of shape `i % SHAPES`.
fn bad(i: usize) -> Bad {
    let n = i as u64;
    let (record, kind) = match i % SHAPES {
        0 => (
            OutRecord {
                key: format!("console-{i}"),
                headers: vec![],
                payload: format!("please refund order {i}").into_bytes(),
            },
            "malformed",
        ),
        1 => (
            OutRecord {
                payload: vec![0xff, 0xfe, b'{', (i % 251) as u8],
                ..edited(n, |_| {})
            },
            "malformed",
        ),
        2 => (
            edited(n, |j| {
                j.as_object_mut().unwrap().remove("serial");
            }),
            "malformed",
        ),
        3 => (
            edited(n, |j| j["order_id"] = format!("ORDER-{i}").into()),
            "invalid_field",
        ),
        4 => (
            edited(n, |j| {
                j["refund_amount"]["minor"] = (-(i as i64) - 1).into()
            }),
            "invalid_field",
        ),
        5 => (
            with_type(edited(n, |_| {}), "returns.RefundRequest.v9"),
            "unknown_version",
        ),
        6 => (with_type(published(&fixable(i)), MISSPELT), "unknown_type"),
        _ => (
            with_type(edited(n, |_| {}), "returns.sales.OrderRefunded.v1"),
            "unknown_type",
        ),
    };
    Bad { record, kind }
}

/// The good request hidden under a misspelt type in bad record `i` (shape 6): a return of its
/// own, after the 10,000.
fn fixable(i: usize) -> RefundRequest {
    Generator::new(SEED).request(GOOD + i as u64)
}

/// 10,000 good records with the 1,000 bad ones (index into `bads`) at random places.
fn mixed(bads: &[Bad]) -> Vec<(OutRecord, Option<usize>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut all: Vec<(OutRecord, Option<usize>)> = Generator::new(SEED)
        .requests(0..GOOD)
        .map(|r| (published(&r), None))
        .collect();
    for (i, b) in bads.iter().enumerate() {
        let at = rng.random_range(0..=all.len());
        all.insert(at, (b.record.clone(), Some(i)));
    }
    all
}

/// A team running as a task, with its counters.
type Running = (
    TeamName,
    Arc<TeamMetrics>,
    JoinHandle<Result<(), ServiceError>>,
);

struct Teams {
    stop: CancellationToken,
    running: Vec<Running>,
}

impl Teams {
    fn start(log: &Arc<dyn EventLog>, data: &Path) -> Teams {
        let stop = CancellationToken::new();
        let running = TeamName::EVERY
            .into_iter()
            .map(|team| {
                let metrics = Arc::new(TeamMetrics::new(team.as_str()));
                let task = spawn_team(
                    team,
                    Arc::clone(log),
                    data.to_path_buf(),
                    Arc::clone(&metrics),
                    stop.clone(),
                );
                (team, metrics, task)
            })
            .collect();
        Teams { stop, running }
    }

    async fn stop(self) {
        self.stop.cancel();
        for (team, _, task) in self.running {
            task.await
                .expect("no panic")
                .unwrap_or_else(|e| panic!("{team}: {e}"));
        }
    }
}

async fn count(log: &Arc<dyn EventLog>, topic: &str) -> u64 {
    log.end_offsets(topic).await.map_or(0, |e| e.iter().sum())
}

/// Wait until every team has read all of `returnOrders` (lag 0) and its relay has published
/// `events` team events and `letters` dead letters. A team that stalls fails the deadline.
async fn wait_for_every_team(log: &Arc<dyn EventLog>, teams: &Teams, events: u64, letters: u64) {
    let deadline = Instant::now() + DEADLINE;
    for (team, _, task) in &teams.running {
        loop {
            let lag = log.lag(&team_group(team.as_str()), RETURN_ORDERS).await;
            let published = count(log, &team_topic(team.as_str())).await;
            let dead = count(log, &team_dead_letters(*team)).await;
            if lag.as_ref().is_ok_and(|&l| l == 0) && published >= events && dead >= letters {
                break;
            }
            assert!(!task.is_finished(), "{team} stopped");
            assert!(
                Instant::now() < deadline,
                "{team} stalled: lag {lag:?}, {published} of {events} events, {dead} of {letters} dead letters"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn read_all(log: &Arc<dyn EventLog>, topic: &str) -> Vec<Record> {
    let mut out = Vec::new();
    log.for_each_record(topic, &mut |r| out.push(r))
        .await
        .expect("read topic");
    out
}

/// Every team: one effect per return in `returns` and no other, one event per return on its
/// topic, and the counters of this run.
async fn check_handled_once(
    log: &Arc<dyn EventLog>,
    data: &Path,
    teams: &Teams,
    returns: &HashSet<String>,
    want: (u64, u64, u64),
) {
    for (team, metrics, _) in &teams.running {
        let store = open_store_view(*team, data).unwrap();
        let effects = store.effects_per_return().unwrap();
        assert_eq!(effects.len(), returns.len(), "{team}");
        assert!(
            effects.values().all(|&n| n == 1),
            "{team}: a return handled twice"
        );
        assert!(effects.keys().all(|r| returns.contains(r)), "{team}");
        let events = read_all(log, &team_topic(team.as_str())).await;
        let per_return = common::event_ids_per_return(&events);
        assert_eq!(per_return.len(), returns.len(), "{team}");
        assert!(per_return.values().all(|ids| ids.len() == 1), "{team}");
        let s = metrics.snapshot();
        let got = (s.processed, s.dead_lettered, s.duplicates_skipped);
        assert_eq!(got, want, "{team}: (processed, dead-lettered, duplicates)");
    }
}

async fn poison(log: Arc<dyn EventLog>, data: &Path) {
    let bads: Vec<Bad> = (0..BAD).map(bad).collect();
    let records = mixed(&bads);
    let teams = Teams::start(&log, data);

    // Publish while the teams run, in pages as User Support would.
    let started = Instant::now();
    let mut kind_at: HashMap<(u32, u64), usize> = HashMap::new();
    for page in records.chunks(2_000) {
        let at = log
            .append(RETURN_ORDERS, page.iter().map(|(r, _)| r.clone()).collect())
            .await
            .unwrap();
        for (pos, (_, bad)) in at.iter().zip(page) {
            if let Some(i) = bad {
                kind_at.insert((pos.partition, pos.offset), *i);
            }
        }
    }
    wait_for_every_team(&log, &teams, GOOD, BAD as u64).await;
    let handled_in = started.elapsed();

    let mut returns: HashSet<String> = Generator::new(SEED)
        .requests(0..GOOD)
        .map(|r| r.return_id.to_string())
        .collect();
    check_handled_once(
        &log,
        data,
        &teams,
        &returns,
        (GOOD + BAD as u64, BAD as u64, 0),
    )
    .await;
    // Every bad record dead-lettered by every team, at its place, with its reason and bytes.
    let mut kind_of_id: HashMap<String, &str> = HashMap::new();
    for team in TeamName::EVERY {
        let letters = read_all(&log, &team_dead_letters(team)).await;
        assert_eq!(letters.len(), BAD, "{team}");
        let mut seen = HashSet::new();
        for l in &letters {
            let h = |k: &str| l.header(k).unwrap_or_else(|| panic!("{team}: no {k}"));
            let place = (
                h("dlt_original_partition").parse().unwrap(),
                h("dlt_original_offset").parse().unwrap(),
            );
            let i = *kind_at.get(&place).unwrap_or_else(|| {
                panic!("{team}: a dead letter at {place:?}, where no bad record was")
            });
            assert!(seen.insert(i), "{team}: bad record {i} dead-lettered twice");
            assert_eq!(h("dlt_error_kind"), bads[i].kind, "{team}: bad record {i}");
            assert!(!h("dlt_error").is_empty());
            assert_eq!(h("dlt_original_topic"), RETURN_ORDERS);
            assert_eq!(h("dlt_group"), team_group(team.as_str()));
            assert_eq!(
                l.payload, bads[i].record.payload,
                "{team}: the bytes are kept"
            );
            kind_of_id.insert(h("dlt_original_event_id").to_string(), bads[i].kind);
        }
    }
    assert_eq!(kind_of_id.len(), BAD, "one event id per bad record");

    // Upstream corrects 25 of the misspelt records itself: same id, right type.
    let fixable_ids: Vec<usize> = (0..BAD).filter(|i| i % SHAPES == 6).collect();
    let corrected: Vec<OutRecord> = fixable_ids[..CORRECTED_UPSTREAM as usize]
        .iter()
        .map(|&i| with_type(bads[i].record.clone(), wire::REFUND_REQUEST_TYPE))
        .collect();
    log.append(RETURN_ORDERS, corrected).await.unwrap();
    wait_for_every_team(&log, &teams, GOOD + CORRECTED_UPSTREAM, BAD as u64).await;

    // The replay, with the fix: a misspelt type is put back as the type it meant.
    let fix = |letter: &Record, record: &mut OutRecord| {
        if letter.header(envelope::TYPE) == Some(MISSPELT) {
            *record = with_type(record.clone(), wire::REFUND_REQUEST_TYPE);
        }
    };
    let replay_started = Instant::now();
    let options = RedriveOptions {
        teams: &TeamName::EVERY,
        dry_run: false,
        fix: Some(&fix),
    };
    let report = redrive(&log, options, &CancellationToken::new())
        .await
        .unwrap();
    let put_back_in = replay_started.elapsed();
    assert_report(&report, BAD as u64, 0);
    wait_for_every_team(&log, &teams, GOOD + FIXABLE, BAD as u64 + STILL_BAD).await;
    let replayed_in = replay_started.elapsed();

    returns.extend(
        fixable_ids
            .iter()
            .map(|&i| fixable(i).return_id.to_string()),
    );
    // Decided or dead-lettered; the 25 skipped copies are duplicates, not counted here.
    let processed = GOOD + BAD as u64 + FIXABLE + STILL_BAD;
    check_handled_once(
        &log,
        data,
        &teams,
        &returns,
        (processed, BAD as u64 + STILL_BAD, CORRECTED_UPSTREAM),
    )
    .await;
    // The still unreadable ones dead-lettered again, once, with the same reason and id.
    let fixed_ids: HashSet<String> = fixable_ids
        .iter()
        .map(|&i| {
            bads[i]
                .record
                .headers
                .iter()
                .find(|(k, _)| k == envelope::ID)
                .unwrap()
                .1
                .clone()
        })
        .collect();
    for team in TeamName::EVERY {
        let letters = read_all(&log, &team_dead_letters(team)).await;
        let again: Vec<&Record> = letters
            .iter()
            .filter(|l| l.header(REDRIVEN_FROM).is_some())
            .collect();
        assert_eq!(again.len() as u64, STILL_BAD, "{team}");
        let mut ids = HashSet::new();
        for l in again {
            let id = l.header("dlt_original_event_id").unwrap();
            assert!(ids.insert(id), "{team}: {id} dead-lettered again twice");
            assert_eq!(
                l.header("dlt_error_kind"),
                kind_of_id.get(id).copied(),
                "{team}"
            );
            assert!(!fixed_ids.contains(id), "{team}: {id} was fixed");
        }
    }

    // A second replay would put back only what was dead-lettered since the first.
    let dry = RedriveOptions {
        dry_run: true,
        fix: None,
        ..options
    };
    let pending = redrive(&log, dry, &CancellationToken::new()).await.unwrap();
    assert_report(&pending, STILL_BAD, STILL_BAD);
    teams.stop().await;
    eprintln!(
        "poison on {}: {GOOD} good + {BAD} bad handled by 5 teams in {handled_in:.2?}; \
         replay put back {BAD} in {put_back_in:.2?}, handled by every team in {replayed_in:.2?}",
        log.describe()
    );
}

/// Every team had `letters` dead letters put back (`repeats` of them put back before); one
/// record appended per event.
fn assert_report(report: &RedriveReport, letters: u64, repeats: u64) {
    assert_eq!(report.teams.len(), 5, "{report:?}");
    for (team, t) in &report.teams {
        assert_eq!(
            (t.put_back, t.repeats, t.unusable),
            (letters, repeats, 0),
            "{team}"
        );
        assert_eq!(t.by_kind.values().sum::<u64>(), letters, "{team}");
    }
    assert_eq!(report.appended, letters);
    assert!(!report.interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = returns_eventlog::sqlite::SqliteLog::open(&dir.path().join("log.db"), 3)
        .await
        .unwrap();
    poison(Arc::new(log), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run bash scripts/test.sh"
)]
async fn poison_on_kafka() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP");
    let namespace = format!("poison-{}", uuid::Uuid::new_v4().simple());
    let log = returns_eventlog::open(&format!("kafka://{bootstrap}?namespace={namespace}"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    poison(log, dir.path()).await;
}

/// A record as the log hands it out.
fn on_log(out: &OutRecord, offset: u64) -> Record {
    Record {
        topic: RETURN_ORDERS.into(),
        partition: 0,
        offset,
        key: Some(out.key.clone()),
        timestamp_ms: 0,
        headers: out.headers.clone(),
        payload: out.payload.clone(),
    }
}

/// The test's premise: each shape fails with its kind, and a misspelt one, retyped, reads.
#[test]
fn every_shape_of_bad_record_is_unreadable_with_its_kind() {
    for i in 0..SHAPES {
        let b = bad(i);
        let (_, decoded) = wire::decode_refund_request(&on_log(&b.record, i as u64));
        assert_eq!(
            decoded.map_err(|e| e.kind()).unwrap_err(),
            b.kind,
            "shape {i}"
        );
    }
    let fixed = with_type(bad(6).record, wire::REFUND_REQUEST_TYPE);
    assert!(wire::decode_refund_request(&on_log(&fixed, 0)).1.is_ok());
}
