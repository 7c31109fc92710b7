//! `returns dlq redrive` as a user runs it: the real binary against a log where the five teams
//! (run in this test's process, on the same log and data directory) dead-lettered two records
//! that this build still cannot read, a line typed into a console producer (no headers, so its
//! id is derived from its place) and a `RefundRequest.v9`.
//!
//! It shows the command's contract: a dry run moves nothing; `--team` takes only that team's
//! dead letters; a record put back keeps its event id; every team that still cannot read it
//! dead-letters it again, with its reason, once; and what was put back is never put back
//! again. (Records that a fix makes readable are decided once by the teams that had
//! dead-lettered them: `crates/services/tests/it/dead_letters.rs` and `poison.rs`.)

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use returns_domain::Generator;
use returns_eventlog::envelope::{self, Envelope};
use returns_eventlog::{dead_letter_topic, team_group, EventLog, OutRecord, Record, RETURN_ORDERS};
use returns_services::{spawn_team, Publisher, TeamMetrics, TeamName};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);
const GOOD: u64 = 20;

fn returns(url: &str, data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_returns"))
        .env_remove("RETURNS_LOG")
        .env_remove("RETURNS_DATA")
        .args(["--log", url, "--data"])
        .arg(data)
        .args(args)
        .output()
        .expect("run returns");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn redrive_json(url: &str, data: &Path, args: &[&str]) -> Value {
    let mut all = vec!["dlq", "redrive", "--json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = returns(url, data, &all);
    assert!(ok, "dlq redrive failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn dead_letters_of(team: TeamName) -> String {
    dead_letter_topic(RETURN_ORDERS, &team_group(team.as_str()))
}

async fn count(log: &Arc<dyn EventLog>, topic: &str) -> u64 {
    log.end_offsets(topic).await.map_or(0, |e| e.iter().sum())
}

async fn read_all(log: &Arc<dyn EventLog>, topic: &str) -> Vec<Record> {
    let mut out = Vec::new();
    log.for_each_record(topic, &mut |r| out.push(r))
        .await
        .unwrap();
    out
}

/// Run all five teams until each has read all of `returnOrders` and published `letters` dead
/// letters, then stop them cleanly.
async fn run_teams(log: &Arc<dyn EventLog>, data: &Path, letters: u64) {
    let stop = CancellationToken::new();
    let tasks: Vec<_> = TeamName::EVERY
        .into_iter()
        .map(|team| {
            let metrics = Arc::new(TeamMetrics::new(team.as_str()));
            let task = spawn_team(team, Arc::clone(log), data.into(), metrics, stop.clone());
            (team, task)
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    for team in TeamName::EVERY {
        loop {
            let lag = log.lag(&team_group(team.as_str()), RETURN_ORDERS).await;
            let dead = count(log, &dead_letters_of(team)).await;
            if lag.as_ref().is_ok_and(|&l| l == 0) && dead >= letters {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{team}: lag {lag:?}, {dead} of {letters} dead letters"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.cancel();
    for (team, task) in tasks {
        task.await
            .unwrap()
            .unwrap_or_else(|e| panic!("{team}: {e}"));
    }
}

fn put_back(report: &Value, team: &str) -> (u64, u64) {
    let t = &report["teams"][team];
    (
        t["put_back"].as_u64().unwrap_or_else(|| panic!("{report}")),
        t["repeats"].as_u64().unwrap(),
    )
}

async fn scenario(url: &str, data: &Path) {
    let log = returns_eventlog::open(url).await.unwrap();
    let requests: Vec<_> = Generator::new(9).requests(0..GOOD).collect();
    Publisher::new(Arc::clone(&log))
        .publish(&requests)
        .await
        .unwrap();
    let console = OutRecord {
        key: "console".into(),
        headers: vec![],
        payload: b"refund my order please".to_vec(),
    };
    let v9 = OutRecord {
        key: "v9".into(),
        headers: Envelope::new("returns.RefundRequest.v9", "/future").to_headers(),
        payload: b"{}".to_vec(),
    };
    let at = log.append(RETURN_ORDERS, vec![console, v9]).await.unwrap();
    let console_id = envelope::derived_id(RETURN_ORDERS, at[0].partition, at[0].offset);
    run_teams(&log, data, 2).await;
    let published = count(&log, RETURN_ORDERS).await;

    // A dry run counts, and moves nothing: twice the same answer, nothing appended.
    for _ in 0..2 {
        let dry = redrive_json(url, data, &["--dry-run"]);
        assert_eq!(dry["dry_run"], true);
        for team in TeamName::EVERY {
            assert_eq!(put_back(&dry, team.as_str()), (2, 0), "{dry}");
        }
        assert_eq!(dry["appended"], 2, "one record per event: {dry}");
    }
    assert_eq!(count(&log, RETURN_ORDERS).await, published);
    let (ok, table, stderr) = returns(url, data, &["dlq", "redrive", "--dry-run"]);
    assert!(ok, "{stderr}");
    for needle in [
        "to put back",
        "malformed 1, unknown_version 1",
        "dry run: 2 record(s)",
    ] {
        assert!(table.contains(needle), "no {needle} in:\n{table}");
    }

    // Sales's dead letters go back, under their ids; the other teams' stay where they are.
    let sales = redrive_json(url, data, &["--team", "sales"]);
    assert_eq!(sales["teams"].as_object().unwrap().len(), 1, "{sales}");
    assert_eq!(put_back(&sales, "sales"), (2, 0));
    assert_eq!(sales["appended"], 2);
    assert_eq!(count(&log, RETURN_ORDERS).await, published + 2);
    let back: Vec<Record> = read_all(&log, RETURN_ORDERS)
        .await
        .into_iter()
        .filter(|r| r.header("dlq_redriven_from").is_some())
        .collect();
    assert_eq!(back.len(), 2);
    let console_back = back
        .iter()
        .find(|r| r.key.as_deref() == Some("console"))
        .unwrap();
    assert_eq!(console_back.header(envelope::ID), Some(console_id.as_str()));
    assert_eq!(
        console_back.header(envelope::TYPE),
        None,
        "still read as v1"
    );
    assert!(back
        .iter()
        .all(|r| r.headers.iter().all(|(k, _)| !k.starts_with("dlt_"))));

    // `dlq list` says which were put back: Sales' two, no other team's.
    let (ok, stdout, stderr) = returns(url, data, &["dlq", "list", "--json"]);
    assert!(ok, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    for letter in listed.as_array().unwrap() {
        let sales = letter["topic"] == dead_letters_of(TeamName::Sales).as_str();
        assert_eq!(letter["redriven"], sales, "{letter}");
    }
    let (ok, table, _) = returns(url, data, &["dlq", "list", "--team", "sales"]);
    assert!(ok && table.contains("2 of them put back"), "{table}");

    // Every team still cannot read them: each dead-letters both again, once, under their ids.
    run_teams(&log, data, 4).await;
    for team in TeamName::EVERY {
        let letters = read_all(&log, &dead_letters_of(team)).await;
        assert_eq!(letters.len(), 4, "{team}");
        let again: Vec<&Record> = letters
            .iter()
            .filter(|l| l.header("dlq_redriven_from").is_some())
            .collect();
        assert_eq!(again.len(), 2, "{team}");
        let console_again = again
            .iter()
            .find(|l| l.key.as_deref() == Some("console"))
            .unwrap();
        assert_eq!(
            console_again.header("dlt_original_event_id"),
            Some(console_id.as_str())
        );
        assert_eq!(console_again.header("dlt_error_kind"), Some("malformed"));
        assert!(again
            .iter()
            .any(|l| l.header("dlt_error_kind") == Some("unknown_version")));
    }

    // Every team's dead letters: Sales has only the two written since its redrive.
    let all = redrive_json(url, data, &[]);
    assert_eq!(put_back(&all, "sales"), (2, 2), "{all}");
    for team in ["inventory", "manufacturing", "accounting", "quality"] {
        assert_eq!(put_back(&all, team), (4, 2), "{team}: {all}");
    }
    assert_eq!(all["appended"], 2);
    // Run again at once: everything was put back already.
    let twice = redrive_json(url, data, &[]);
    for team in TeamName::EVERY {
        assert_eq!(put_back(&twice, team.as_str()), (0, 0), "{twice}");
    }
    assert_eq!(twice["appended"], 0);
    assert_eq!(count(&log, RETURN_ORDERS).await, published + 4);

    let (ok, _, stderr) = returns(url, data, &["dlq", "redrive", "--team", "shipping"]);
    assert!(!ok);
    assert!(stderr.contains("unknown team `shipping`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}", data.join("log.db").display());
    scenario(&url, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run bash scripts/test.sh"
)]
async fn dlq_redrive_on_kafka() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP");
    let namespace = format!("dlq-{}", uuid::Uuid::new_v4().simple());
    let url = format!("kafka://{bootstrap}?namespace={namespace}");
    let dir = tempfile::tempdir().unwrap();
    scenario(&url, dir.path()).await;
}
