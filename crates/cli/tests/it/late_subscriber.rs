//! A team that joins late: returns flow through the four teams (`returns demo`), and only then
//! is Quality started, as its own process (`returns run quality`), with no change to User
//! Support or to the four teams. As a new consumer group it reads `returnOrders` from the
//! beginning, and ends with exactly the state it would have had from the first return, one
//! effect and one published event per return, while the four teams' positions, effects and
//! topics stay exactly as they were. On the embedded log and on a real Kafka broker.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use returns_domain::{
    Accounting, DefectRates, Generator, Inventory, Manufacturing, ModelAtLocation, Noticed,
    Quality, RefundRequest, Sales, Team,
};
use returns_eventlog::conformance::unique;
use returns_eventlog::{team_group, team_topic, EventLog, RETURN_ORDERS};
use returns_services::team::store::TeamStore;
use serde_json::Value;

/// Returns published before Quality starts.
const RETURNS: u64 = 2_000;
const SEED: u64 = 29;
const FOUR: [&str; 4] = ["sales", "inventory", "manufacturing", "accounting"];

/// `returns ARGS --data DATA --log URL`, run to completion.
fn returns(data: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_returns"))
        .args(args)
        .arg("--data")
        .arg(data)
        .args(["--log", url])
        .env_remove("RETURNS_DATA")
        .env_remove("RETURNS_LOG")
        .output()
        .expect("run returns")
}

fn stderr(out: &Output) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&out.stderr)
}

/// `returns run quality` as its own process; killed if the test fails while it runs.
struct QualityProcess {
    child: Child,
    stderr: PathBuf,
}

impl QualityProcess {
    fn start(data: &Path, url: &str) -> Self {
        let stderr = data.join("quality.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_returns"))
            .args(["run", "quality", "--log", url, "--data"])
            .arg(data)
            .env_remove("RETURNS_DATA")
            .env_remove("RETURNS_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start returns run quality");
        QualityProcess { child, stderr }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Poll the group's lag until it is 0, failing at the deadline or if the process exits.
    async fn wait_caught_up(&mut self, log: &Arc<dyn EventLog>) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let lag = log
                .lag(&team_group("quality"), RETURN_ORDERS)
                .await
                .unwrap();
            if lag == 0 {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "quality exited ({status}) with {lag} behind:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "quality still {lag} behind after 90 s:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then wait (with a deadline) for it to commit, drain its outbox and exit.
    fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.output());
            }
            assert!(
                Instant::now() < deadline,
                "quality did not stop within 30 s of SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for QualityProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a team that never stopped would show: its position on `returnOrders`, its effects per
/// return, and the events its topic holds per return (their ids).
#[derive(Debug, PartialEq, Eq)]
struct TeamTrace {
    committed: Vec<u64>,
    effects: HashMap<String, u64>,
    events: BTreeMap<String, Vec<String>>,
}

impl TeamTrace {
    /// One effect and one event for each of `requests`, none for anything else, and a position
    /// past all of them.
    fn assert_one_per_return(&self, team: &str, requests: &[RefundRequest]) {
        let ids: BTreeSet<String> = requests.iter().map(|r| r.return_id.to_string()).collect();
        assert_eq!(
            self.committed.iter().sum::<u64>(),
            requests.len() as u64,
            "{team}: its position on {RETURN_ORDERS}"
        );
        let with_effect: BTreeSet<String> = self.effects.keys().cloned().collect();
        assert_eq!(
            with_effect
                .symmetric_difference(&ids)
                .take(5)
                .collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{team}: returns with an effect, against those published (a few that differ)"
        );
        assert!(
            self.effects.values().all(|n| *n == 1),
            "{team}: exactly one effect for every return"
        );
        let with_event: BTreeSet<String> = self.events.keys().cloned().collect();
        assert_eq!(
            with_event
                .symmetric_difference(&ids)
                .take(5)
                .collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{team}: returns with an event on {}, against those published",
            team_topic(team)
        );
        assert!(
            self.events.values().all(|e| e.len() == 1),
            "{team}: exactly one event on its topic for every return"
        );
    }
}

async fn trace(log: &Arc<dyn EventLog>, data: &Path, team: &str) -> TeamTrace {
    fn effects<T: Team>(data: &Path) -> HashMap<String, u64> {
        TeamStore::<T>::open(data)
            .unwrap()
            .effects_per_return()
            .unwrap()
    }
    let effects = match team {
        "sales" => effects::<Sales>(data),
        "inventory" => effects::<Inventory>(data),
        "manufacturing" => effects::<Manufacturing>(data),
        "accounting" => effects::<Accounting>(data),
        "quality" => effects::<Quality>(data),
        other => panic!("no team {other}"),
    };
    let events = crate::common::event_ids_per_return(log, team).await;
    TeamTrace {
        committed: log
            .committed(&team_group(team), RETURN_ORDERS)
            .await
            .unwrap(),
        effects,
        events,
    }
}

/// Quality's state had it run from the first return: the pure rule folded over every request.
fn from_the_start(requests: &[RefundRequest]) -> BTreeMap<ModelAtLocation, DefectRates> {
    let mut states = BTreeMap::new();
    for req in requests {
        let key = Quality::key(req);
        let state = states
            .entry(key.clone())
            .or_insert_with(|| Quality::initial(&key));
        let event = Quality::decide(state, req);
        Quality::evolve(state, &event);
    }
    states
}

fn stored_state(data: &Path) -> BTreeMap<ModelAtLocation, DefectRates> {
    TeamStore::<Quality>::open(data)
        .unwrap()
        .state_rows()
        .unwrap()
        .into_iter()
        .map(|(key, json)| (key.parse().unwrap(), serde_json::from_str(&json).unwrap()))
        .collect()
}

async fn quality_joins_late(url: &str, data: &Path) {
    // Returns flow through the four teams; Quality does not exist yet.
    let demo = returns(
        data,
        url,
        &[
            "demo",
            "--returns",
            &RETURNS.to_string(),
            "--seed",
            &SEED.to_string(),
            "--json",
        ],
    );
    assert!(demo.status.success(), "demo failed: {}", stderr(&demo));
    let early = returns(data, url, &["quality"]);
    assert!(!early.status.success(), "no report before Quality ever ran");
    let message = stderr(&early);
    assert!(
        message.contains("never run") && message.contains("returns run quality"),
        "{message}"
    );

    // The demo did run them through the four teams: each handled every return once.
    let requests: Vec<RefundRequest> = Generator::new(SEED).requests(0..RETURNS).collect();
    let log = returns_eventlog::open(url).await.expect("open the log");
    let mut before = BTreeMap::new();
    for team in FOUR {
        let trace = trace(&log, data, team).await;
        trace.assert_one_per_return(team, &requests);
        before.insert(team, trace);
    }
    assert_eq!(
        log.lag(&team_group("quality"), RETURN_ORDERS)
            .await
            .unwrap(),
        RETURNS,
        "a group that never read is behind by the whole topic"
    );

    // Quality joins, catches up from the beginning, and is stopped.
    let mut quality = QualityProcess::start(data, url);
    quality.wait_caught_up(&log).await;
    let (status, output) = quality.stop();
    assert!(
        status.success(),
        "quality exits 0 on SIGTERM: {status}\n{output}"
    );
    assert!(
        output.contains(&format!("stopped after {RETURNS} processed")),
        "{output}"
    );

    // Its state is the one it would have had from the first return.
    let expected = from_the_start(&requests);
    assert_eq!(stored_state(data), expected);

    // One effect per return, one event per return on its own topic.
    trace(&log, data, "quality")
        .await
        .assert_one_per_return("quality", &requests);

    // The four teams never noticed.
    for team in FOUR {
        assert_eq!(
            trace(&log, data, team).await,
            before[team],
            "{team}: committed positions, effects and topic unchanged by Quality joining"
        );
    }

    // The report says the same.
    let out = returns(data, url, &["quality", "--json"]);
    assert!(out.status.success(), "returns quality: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["lag"], 0);
    assert_eq!(report["returns"], RETURNS);
    assert_eq!(report["not_recorded"], 0);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        expected.len(),
        "one row per model at a location"
    );
    for (row, (key, rates)) in rows.iter().zip(&expected) {
        assert_eq!(row["model"], key.model.as_str());
        assert_eq!(row["location"], key.location.as_str());
        assert_eq!(row["returns"], rates.returns, "{key}");
        assert_eq!(row["noticed"], serde_json::to_value(rates.noticed).unwrap());
        assert_eq!(
            row["defects"],
            serde_json::to_value(&rates.defects).unwrap()
        );
        let (top, count) = rates.top_defects(1)[0];
        assert_eq!(row["top_defects"][0]["defect"], top.as_str(), "{key}");
        assert_eq!(row["top_defects"][0]["returns"], count, "{key}");
    }
    let on_arrival: u64 = rows
        .iter()
        .map(|r| r["noticed"]["on_arrival"].as_u64().unwrap())
        .sum();
    let expected_on_arrival = requests
        .iter()
        .filter(|r| r.reason.noticed == Noticed::OnArrival)
        .count() as u64;
    assert!(expected_on_arrival > 0);
    assert_eq!(on_arrival, expected_on_arrival, "returns faulty on arrival");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_joins_late_on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    quality_joins_late(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
async fn quality_joins_late_on_kafka() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP")
        .expect("RETURNS_KAFKA_BOOTSTRAP names the broker (bash scripts/test.sh sets it)");
    let url = format!("kafka://{bootstrap}?namespace={}", unique("late"));
    let dir = tempfile::tempdir().unwrap();
    quality_joins_late(&url, dir.path()).await;
}
