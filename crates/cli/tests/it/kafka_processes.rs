//! Each team in its own OS process on a real Kafka broker (`RETURNS_KAFKA_BOOTSTRAP`, set by
//! `bash scripts/test.sh`): one team is stopped while returns are published, the other three
//! keep up, the stopped one restarts and catches up, and every team ends with exactly one
//! effect per return. A plain JSON line typed into Kafka's own console producer (the brief's
//! quickstart) is handled by all four teams too.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use returns_domain::{Accounting, Generator, Inventory, Manufacturing, Sales, Team};
use returns_eventlog::conformance::unique;
use returns_eventlog::{team_group, team_topic, EventLog, RETURN_ORDERS};
use returns_services::team::store::TeamStore;
use returns_services::Publisher;

use crate::common;
use common::{bootstrap, TeamProcess, TEAMS};

/// The README's quickstart request, exactly as a user types it into the console producer.
const QUICKSTART: &str = r#"{"return_id":"0f8e4c2a-6b1d-4e7f-9a3c-5d2b8e1f7a64","order_id":"SO-20260412","customer_id":"C-104233","model":"AURA-PHONE-12","serial":"AURA-PHONE-12-7K3M9Q2X4B","defect":"BATTERY_SWELL","item_location":"WH-AMS-01","unit_cost":{"minor":41000,"currency":"EUR"},"refund_amount":{"minor":79900,"currency":"EUR"},"ship_to":{"name":"Sanne de Vries","street":"Keizersgracht 123","city":"Amsterdam","postal_code":"1016 DK","country":"NL"},"requested_at":"2026-03-01T12:00:00Z"}"#;

async fn lag(log: &Arc<dyn EventLog>, team: &str) -> u64 {
    log.lag(&team_group(team), RETURN_ORDERS).await.unwrap()
}

/// Poll `lags` until every one is 0, or fail at the deadline naming what is behind.
async fn wait_caught_up(log: &Arc<dyn EventLog>, teams: &[&str], procs: &[&TeamProcess]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut behind = Vec::new();
        for team in teams {
            let l = lag(log, team).await;
            if l > 0 {
                behind.push(format!("{team}={l}"));
            }
        }
        if behind.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = procs
                .iter()
                .map(|p| format!("--- {} ---\n{}", p.team, p.output()))
                .collect();
            panic!("still behind after 90 s: {behind:?}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn effects<T: Team>(data: &Path) -> HashMap<String, u64> {
    TeamStore::<T>::open(data)
        .unwrap()
        .effects_per_return()
        .unwrap()
}

/// Type `line` into Kafka's own console producer, as the brief's quickstart does.
fn console_produce(topic: &str, line: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .args(["console-producer", topic])
        .env("KAFKA_BOOTSTRAP", bootstrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start Kafka's console producer");
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{line}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "console producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
async fn one_process_per_team_survives_a_team_stopping_and_catches_up() {
    let namespace = unique("procs");
    let url = format!("kafka://{}?namespace={namespace}", bootstrap());
    let log = returns_eventlog::open(&url).await.expect("open Kafka log");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let publisher = Publisher::new(Arc::clone(&log));
    publisher.records_on_topic().await.unwrap();

    let mut procs: HashMap<&str, TeamProcess> = TEAMS
        .iter()
        .map(|t| (*t, TeamProcess::start(t, &url, data, data, 1)))
        .collect();
    let generator = Generator::new(11);
    let publish = |range: std::ops::Range<u64>| {
        let publisher = publisher.clone();
        let batch: Vec<_> = generator.requests(range).collect();
        async move { publisher.publish(&batch).await.unwrap() }
    };

    // Returns flow; a third of the way in, Manufacturing's process is stopped.
    for chunk in 0..4u64 {
        publish(chunk * 500..(chunk + 1) * 500).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = procs
        .remove("manufacturing")
        .unwrap()
        .terminate(Duration::from_secs(30));
    assert!(
        stopped.success(),
        "manufacturing exits 0 on SIGTERM: {stopped}"
    );
    for chunk in 4..12u64 {
        publish(chunk * 500..(chunk + 1) * 500).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The brief's quickstart: a plain JSON line, no headers, from Kafka's own tool.
    console_produce(&format!("{namespace}.{RETURN_ORDERS}"), QUICKSTART);
    let total = 6001u64;

    // The other three keep up while Manufacturing is down.
    let running: Vec<&TeamProcess> = procs.values().collect();
    wait_caught_up(&log, &["sales", "inventory", "accounting"], &running).await;
    let behind = lag(&log, "manufacturing").await;
    assert!(
        behind >= 4001,
        "manufacturing, stopped, is behind by everything published since: {behind}"
    );

    // Manufacturing comes back and catches up.
    procs.insert(
        "manufacturing",
        TeamProcess::start("manufacturing", &url, data, data, 2),
    );
    let running: Vec<&TeamProcess> = procs.values().collect();
    wait_caught_up(&log, &TEAMS, &running).await;

    for (team, p) in procs.drain() {
        let output = p.output();
        let status = p.terminate(Duration::from_secs(30));
        assert!(
            status.success(),
            "{team} exits 0 on SIGTERM: {status}\n{output}"
        );
    }

    // Exactly one effect per return in every team, the quickstart's included, and one event
    // per return on the team's own topic: per return, not a count.
    let quickstart_id = "0f8e4c2a-6b1d-4e7f-9a3c-5d2b8e1f7a64";
    let expected: BTreeSet<String> = generator
        .requests(0..12 * 500)
        .map(|r| r.return_id.to_string())
        .chain([quickstart_id.to_string()])
        .collect();
    assert_eq!(expected.len() as u64, total);
    for (team, per_return) in [
        ("sales", effects::<Sales>(data)),
        ("inventory", effects::<Inventory>(data)),
        ("manufacturing", effects::<Manufacturing>(data)),
        ("accounting", effects::<Accounting>(data)),
    ] {
        let handled: BTreeSet<String> = per_return.keys().cloned().collect();
        assert_eq!(
            handled
                .symmetric_difference(&expected)
                .take(5)
                .collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{team}: returns with an effect, against those published (a few that differ)"
        );
        let doubled: Vec<_> = per_return.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            doubled.is_empty(),
            "{team}: returns with more than one effect: {doubled:?}"
        );
        // Every effect also reached the team's own topic, once.
        let events = common::event_ids_per_return(&log, team).await;
        let on_topic: BTreeSet<String> = events.keys().cloned().collect();
        assert_eq!(
            on_topic
                .symmetric_difference(&expected)
                .take(5)
                .collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{team}: returns with an event on {}, against those published",
            team_topic(team)
        );
        let repeated: Vec<_> = events
            .iter()
            .filter(|(_, ids)| ids.len() != 1)
            .take(5)
            .collect();
        assert!(
            repeated.is_empty(),
            "{team}: returns with more than one record on its topic: {repeated:?}"
        );
    }
}
