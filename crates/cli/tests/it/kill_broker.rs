//! Issue 6's second fault test: the broker itself is killed with SIGKILL in the middle of a run
//! and restarted on its data. No return that User Support accepted is lost, none is handled
//! twice, and every team's state still equals the replay of its own topic.
//!
//! The broker is the test's own (`scripts/kafka.sh` with its own run directory and two free
//! ports; the jars are the shared cache's), so killing it disturbs no other test. Four
//! `returns run TEAM` processes run against it; returns go in through User Support's intake,
//! `returns publish`, which accepts each return into `<data>/user-support.db` (with the record
//! that announces it, in one transaction) before its relay publishes the outbox.
//!
//! 1. While the broker is up: three chunks of 1,000, each published before the next.
//! 2. A chunk of 20,000 is accepted and its relay starts appending (5,000 an append); as soon as
//!    the first of its records is on `returnOrders`, the broker is SIGKILLed (`kafka.sh kill`),
//!    with the teams busy and the relay in the middle of its appends. The kill must land part
//!    way through that publish: some of its records on the log, and more than the relay's batch
//!    still in the outbox. If not, the broker comes back, the publish ends, and a new chunk of
//!    20,000 tries again (at most three chunks in all).
//! 3. While the broker is down: twice 1,000 accepted with `--no-wait` (each command answers
//!    "accepted" and ends; the returns wait in the outbox) while the interrupted publish keeps
//!    retrying.
//! 4. `kafka.sh restart`: the same broker on its data; no partition of any topic ends before
//!    where it ended when the broker died (nothing it acknowledged is lost). The interrupted
//!    publish ends on its own, having published everything waiting; two more chunks of 1,000
//!    go all the way, and `returns publish -n 0` finds nothing waiting.
//! 5. Every team reaches lag 0, stops on SIGTERM, has exactly one effect for every accepted
//!    return (and none for anything else), and `returns replay` matches its store.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{PrivateBroker, Teams, TEAMS};
use returns_eventlog::{team_topic, EventLog, RETURN_ORDERS};
use returns_services::Publisher;
use serde_json::Value;

const SEED: u64 = 91;
const CHUNK: u64 = 1_000;
/// The chunk whose relay is appending when the broker dies: four appends of 5,000 (the relay's
/// batch), so the kill lands between or inside them.
const IN_FLIGHT: u64 = 20_000;
/// The relay's batch (crates/services/src/team/relay.rs): it peeks this many rows of the
/// outbox, appends them and only then clears them.
const RELAY_BATCH: u64 = 5_000;
/// How many in-flight chunks may be tried before the kill must have landed mid-publish.
const KILL_ATTEMPTS: u32 = 3;
/// The whole test, from the broker's start to the last check.
const DEADLINE: Duration = Duration::from_secs(360);

/// One `returns publish` process: its JSON summary goes to a file (it can be larger than a
/// pipe holds); killed if dropped while it runs.
struct Publish {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    label: String,
}

impl Publish {
    /// `returns publish --json -n N --from-index FROM` (and `--no-wait`: accept only).
    fn spawn(url: &str, data: &Path, logs: &Path, from: u64, n: u64, no_wait: bool) -> Self {
        let label = format!(
            "publish {from}..{}{}",
            from + n,
            if no_wait { " --no-wait" } else { "" }
        );
        let stdout = logs.join(format!("publish-{from}.json"));
        let stderr = logs.join(format!("publish-{from}.log"));
        let mut cmd = common::returns_cmd(url, data);
        cmd.args(["publish", "--json", "--seed", &SEED.to_string()])
            .args(["-n", &n.to_string(), "--from-index", &from.to_string()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if no_wait {
            cmd.arg("--no-wait");
        }
        Publish {
            child: cmd.spawn().expect("start returns publish"),
            stdout,
            stderr,
            label,
        }
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Wait for it to end (by `deadline`); it must exit 0. Its JSON summary.
    fn finish(mut self, deadline: Instant) -> Value {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs at the deadline:\n{}",
                self.label,
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(status.success(), "{} failed ({status}):\n{err}", self.label);
        let out = std::fs::read_to_string(&self.stdout).unwrap();
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("{}: not a JSON summary ({e}): {out}\n{err}", self.label))
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The returns a summary says were accepted now (not duplicates of earlier ones).
fn accepted_ids(summary: &Value) -> Vec<String> {
    summary["returns"]
        .as_array()
        .expect("a summary lists its returns")
        .iter()
        .filter(|r| r["duplicate"] == false)
        .map(|r| r["return_id"].as_str().unwrap().to_string())
        .collect()
}

/// Rows of a table of User Support's store, read-only: `accepted` (every return it accepted) or
/// `outbox` (accepted, not yet on the log); 0 before the store or the table exists.
fn count(data: &Path, table: &str) -> u64 {
    let path = data.join("user-support.db");
    if !path.exists() {
        return 0;
    }
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .unwrap_or_else(|e| panic!("counting {table} in User Support's store: {e}"))
}

/// The end offset of each partition of `topic`; retried for a moment after the broker's restart
/// (see `common::lag`).
async fn ends(log: &Arc<dyn EventLog>, topic: &str) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log.end_offsets(topic).await {
            Ok(ends) => return ends,
            Err(e) if Instant::now() < deadline => {
                eprintln!("kill_broker: end offsets of {topic}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("end offsets of {topic}: {e}"),
        }
    }
}

async fn records_on(log: &Arc<dyn EventLog>, topic: &str) -> u64 {
    ends(log, topic).await.iter().sum()
}

/// Every topic of the run: `returnOrders` and the teams' own.
fn topics() -> Vec<String> {
    std::iter::once(RETURN_ORDERS.to_string())
        .chain(TEAMS.iter().map(|t| team_topic(t)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs Kafka: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP (this test starts its own broker with scripts/kafka.sh)"
)]
async fn broker_killed_mid_run_loses_no_accepted_return_and_doubles_none() {
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    let broker = PrivateBroker::start(&dir.path().join("run"));
    let broker_up = started.elapsed();
    let url = format!("kafka://{}", broker.bootstrap());
    let log = returns_eventlog::open(&url)
        .await
        .expect("open the private broker");
    Publisher::new(Arc::clone(&log))
        .records_on_topic()
        .await
        .unwrap();

    let mut teams = Teams::start(&url, &data, &logs);
    while !TEAMS.into_iter().all(|t| teams.get(t).assigned()) {
        assert!(
            Instant::now() < deadline,
            "teams never got partitions:\n{}",
            teams.logs()
        );
        teams.assert_running();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut next = 0u64;
    let mut publish = |n: u64, no_wait: bool| {
        let p = Publish::spawn(&url, &data, &logs, next, n, no_wait);
        next += n;
        p
    };

    // 1. The broker is up: chunks go all the way.
    for _ in 0..3 {
        accepted.extend(accepted_ids(&publish(CHUNK, false).finish(deadline)));
    }

    // 2. A big chunk's relay starts appending; the broker dies under it. As soon as its first
    //    records are on the log, the ends the broker acknowledged are read and it is killed at
    //    once. The kill must land part way through the publish: some of it on the log, and more
    //    than the relay's one batch in flight still in the outbox (rows leave the outbox only
    //    after their append was acknowledged, so at most one batch of what waits there can be
    //    on the log). If it does not, the broker comes back, that publish ends, and a new chunk
    //    tries again, a bounded number of times.
    let mut attempts = 0;
    let (mut in_flight, acknowledged, on_log_at_kill, waiting_at_kill, killed_at) = loop {
        attempts += 1;
        let before = records_on(&log, RETURN_ORDERS).await;
        let mut in_flight = publish(IN_FLIGHT, false);
        while records_on(&log, RETURN_ORDERS).await == before && !in_flight.exited() {
            assert!(
                Instant::now() < deadline,
                "the in-flight chunk never reached the log"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // What the broker had acknowledged (at least) when it died.
        let mut acknowledged = Vec::new();
        for topic in topics() {
            acknowledged.push(ends(&log, &topic).await);
        }
        let killed_at = Instant::now();
        broker.kill();
        // (`topics()` starts with returnOrders.)
        let on_log_at_kill = acknowledged[0].iter().sum::<u64>() - before;
        // Read before the `--no-wait` publishes add to it; the relay clears nothing more now.
        let waiting_at_kill = count(&data, "outbox");
        if on_log_at_kill > 0 && waiting_at_kill > RELAY_BATCH {
            break (
                in_flight,
                acknowledged,
                on_log_at_kill,
                waiting_at_kill,
                killed_at,
            );
        }
        assert!(
            attempts < KILL_ATTEMPTS,
            "the broker was never killed part way through a publish of {IN_FLIGHT} in \
             {attempts} attempts; the last: {on_log_at_kill} of them on returnOrders, \
             {waiting_at_kill} in the outbox (a kill mid-publish has some on the log and more \
             than the relay's batch of {RELAY_BATCH} waiting)"
        );
        eprintln!(
            "kill_broker: attempt {attempts} killed the broker with {on_log_at_kill} on \
             returnOrders and {waiting_at_kill} waiting, not mid-publish; again"
        );
        broker.restart();
        accepted.extend(accepted_ids(&in_flight.finish(deadline)));
    };

    // 3. The broker is down: returns are still accepted, and wait in User Support's outbox.
    //    (Only with --no-wait: each of these ends at once, and the in-flight publish stays the
    //    one relay on the outbox, so it alone publishes what waits once the broker is back.)
    let mut accepted_while_down = Vec::new();
    for _ in 0..2 {
        let summary = publish(CHUNK, true).finish(deadline);
        assert_eq!(summary["published"], 0, "{summary}");
        let ids = accepted_ids(&summary);
        assert_eq!(
            ids.len() as u64,
            CHUNK,
            "accepted while the broker is down: {summary}"
        );
        accepted_while_down.extend(ids);
    }
    let waiting_while_down = count(&data, "outbox");
    assert!(
        waiting_while_down >= CHUNK * 2,
        "the returns accepted while the broker is down wait in the outbox: {waiting_while_down}"
    );
    teams.assert_running();

    // 4. The same broker again, on its data.
    let relay_interrupted = !in_flight.exited();
    let restarting = Instant::now();
    let down_for = restarting - killed_at;
    broker.restart();
    let restart_took = restarting.elapsed();
    // Nothing it had acknowledged was lost with the process: no partition ends earlier than it
    // did before the kill (see "Durability" in scripts/kafka.sh's server.properties).
    for (topic, before) in topics().iter().zip(&acknowledged) {
        let after = ends(&log, topic).await;
        assert!(
            after.len() == before.len() && after.iter().zip(before).all(|(a, b)| a >= b),
            "{topic}: the restarted broker ends at {after:?}, before the kill it had {before:?}"
        );
    }
    // The in-flight publish's relay gets through (its own rows and the ones accepted while the
    // broker was down), then returns go all the way again.
    accepted.extend(accepted_ids(&in_flight.finish(deadline)));
    accepted.extend(accepted_while_down);
    for _ in 0..2 {
        accepted.extend(accepted_ids(&publish(CHUNK, false).finish(deadline)));
    }
    let drained = publish(0, false).finish(deadline);
    assert_eq!(
        drained["waiting"], 0,
        "nothing left in User Support's outbox: {drained}"
    );

    // Every return was accepted once: the ones this test generated, no more, no fewer.
    let generated: BTreeSet<String> = returns_domain::Generator::new(SEED)
        .requests(0..next)
        .map(|r| r.return_id.to_string())
        .collect();
    assert_eq!(
        accepted, generated,
        "User Support accepted every return it was given"
    );
    assert_eq!(
        count(&data, "accepted"),
        accepted.len() as u64,
        "User Support's store holds every accepted return once"
    );

    // 5. The teams catch up; each accepted return has one effect in every team.
    common::wait_caught_up(&log, deadline, || {
        format!("{}\n--- broker ---\n{}", teams.logs(), broker.log_tail())
    })
    .await;
    let caught_up = started.elapsed();
    teams.stop_all();
    let on_return_orders = records_on(&log, RETURN_ORDERS).await;
    common::assert_one_effect_per_return(&data, &accepted);
    let reports = common::assert_replay_matches(&url, &data, accepted.len() as u64);
    drop(log);
    broker.stop();

    eprintln!(
        "kill_broker: {} returns accepted ({} while the broker was down), none lost, none \
         handled twice; broker up in {:.1} s; SIGKILL with {on_log_at_kill} of {IN_FLIGHT} on \
         returnOrders, {waiting_at_kill} waiting in the outbox (attempt {attempts}; its publish \
         still retrying when the broker came back: {relay_interrupted}); down {:.1} s with \
         {waiting_while_down} waiting; restart took {:.1} s; {} records on returnOrders \
         ({} published twice); caught up at {:.1} s; done in {:.1} s",
        accepted.len(),
        CHUNK * 2,
        broker_up.as_secs_f64(),
        down_for.as_secs_f64(),
        restart_took.as_secs_f64(),
        on_return_orders,
        on_return_orders.saturating_sub(accepted.len() as u64),
        caught_up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for r in &reports {
        eprintln!(
            "kill_broker:   replay {:<13} {} events, {} published twice, hash {}",
            r["team"].as_str().unwrap_or("?"),
            r["events"],
            r["duplicates"],
            r["live_hash"]
                .as_str()
                .and_then(|h| h.get(..12))
                .unwrap_or("?")
        );
    }
}
