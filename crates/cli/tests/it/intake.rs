//! User Support never loses an accepted return: the real `returns publish` and `returns serve`
//! accept returns while the log is unreachable, keep them in User Support's outbox, and publish
//! them once the log answers; then every team handles each exactly once. On SQLite the log is
//! made unreachable by a file where its directory should be; on the real broker by a TCP
//! forwarder on loopback that the test closes and opens (the shared broker is never touched).
//! Also: `POST /returns` through `returns serve`, the token rule, graceful shutdown, and no
//! secret in the process's output even at `RETURNS_TRACE=debug`.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use returns_domain::Generator;
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_eventlog::{team_group, EventLog, RETURN_ORDERS};
use returns_services::{open_store_view, spawn_team, TeamMetrics, TeamName};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(120);
const TOKEN: &str = "intake-test-token-0123456789";

fn returns(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_returns"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("RETURNS_LOG")
        .env_remove("RETURNS_TOKEN")
        .output()
        .expect("run returns")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `returns` process whose stderr goes to a file the test reads while it runs; killed if the
/// test ends first.
struct Process {
    child: Child,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl Process {
    fn start(args: &[&str], data: &Path, env: &[(&str, &str)], name: &str) -> Process {
        let stderr = data.with_file_name(format!("{name}.stderr"));
        let stdout = data.with_file_name(format!("{name}.stdout"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_returns"));
        command
            .args(args)
            .arg("--data")
            .arg(data)
            .env_remove("RETURNS_LOG")
            .env_remove("RETURNS_TOKEN")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start returns");
        Process {
            child,
            stderr,
            stdout,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Poll `ready` until it answers, failing with what the process said at the deadline.
    fn poll<T>(&mut self, what: &str, mut ready: impl FnMut(&mut Self) -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(answer) = ready(self) {
                return answer;
            }
            assert!(Instant::now() < deadline, "{what}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll stderr until a line contains `needle`; that line.
    fn wait_for(&mut self, needle: &str) -> String {
        self.poll(&format!("never said {needle:?}"), |p| {
            if let Some(line) = p.stderr().lines().find(|l| l.contains(needle)) {
                return Some(line.to_string());
            }
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!(
                    "exited ({status}) before saying {needle:?}:\n{}",
                    p.stderr()
                );
            }
            None
        })
    }

    /// Wait for the process to exit on its own; its success.
    fn wait(&mut self) -> bool {
        self.poll("still running at the deadline", |p| {
            p.child.try_wait().unwrap().map(|status| status.success())
        })
    }

    fn terminate(&mut self) -> bool {
        self.signal("-TERM")
    }

    /// Send a signal (`-TERM`, `-INT`) and wait for the process to exit; its success.
    fn signal(&mut self, signal: &str) -> bool {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.wait()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many records wait in User Support's outbox, read from its store.
/// `returns publish --file` with a return id accepted before under another request fails,
/// naming the return, and accepts nothing of that file; the same file again stays duplicates.
#[test]
fn publish_refuses_a_return_id_accepted_before_with_another_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    let line = |i: u64, id_of: u64| {
        let mut request = RefundRequestV2::from(&Generator::new(5).request(i));
        request.return_id = Generator::new(5).request(id_of).return_id.to_string();
        serde_json::to_string(&request).unwrap()
    };
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, format!("{}\n{}\n", line(0, 0), line(1, 1))).unwrap();
    let publish = |file: &Path| {
        returns(
            &[
                "publish",
                "--json",
                "--log",
                &url,
                "--file",
                file.to_str().unwrap(),
            ],
            &data,
        )
    };
    let out = publish(&first);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let accepted = |data: &Path| -> i64 {
        rusqlite::Connection::open(data.join("user-support.db"))
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM accepted", [], |r| r.get(0)))
            .unwrap()
    };
    assert_eq!(accepted(&data), 2);

    // A new return, then return 0's id with return 2's body.
    let changed = dir.path().join("changed.jsonl");
    std::fs::write(&changed, format!("{}\n{}\n", line(3, 3), line(2, 0))).unwrap();
    let out = publish(&changed);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let id = Generator::new(5).request(0).return_id.to_string();
    assert!(
        stderr.contains(&id) && stderr.contains("different request"),
        "{stderr}"
    );
    assert_eq!(accepted(&data), 2, "nothing of the file was accepted");

    let out = publish(&first);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["duplicates"], 2, "{again}");
}

fn waiting(data: &Path) -> i64 {
    rusqlite::Connection::open(data.join("user-support.db"))
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)))
        .expect("read User Support's store")
}

/// Run the five teams in this process until each has committed all of `returnOrders`; then
/// check each has exactly one effect per return in `expected`, and nothing else.
async fn every_team_handles_each_once(url: &str, data: &Path, expected: &BTreeSet<String>) {
    let log = returns_eventlog::open(url).await.expect("open the log");
    let on_log = records_per_return(log.as_ref()).await;
    assert_eq!(
        on_log.keys().cloned().collect::<BTreeSet<_>>(),
        *expected,
        "returnOrders holds every accepted return"
    );
    let stop = CancellationToken::new();
    let tasks: Vec<_> = TeamName::EVERY
        .into_iter()
        .map(|team| {
            let metrics = Arc::new(TeamMetrics::new(team.as_str()));
            spawn_team(
                team,
                Arc::clone(&log),
                data.to_path_buf(),
                metrics,
                stop.clone(),
            )
        })
        .collect();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for team in TeamName::EVERY {
        loop {
            let lag = log
                .lag(&team_group(team.as_str()), RETURN_ORDERS)
                .await
                .unwrap();
            if lag == 0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{team}: lag {lag}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.cancel();
    for task in tasks {
        task.await.expect("no panic").expect("a clean stop");
    }
    for team in TeamName::EVERY {
        let effects = open_store_view(team, data)
            .unwrap()
            .effects_per_return()
            .unwrap();
        assert_eq!(
            effects.keys().cloned().collect::<BTreeSet<_>>(),
            *expected,
            "{team}"
        );
        assert!(effects.values().all(|n| *n == 1), "{team}: {effects:?}");
    }
}

/// Records on `returnOrders` per return (key).
async fn records_per_return(log: &dyn EventLog) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    log.for_each_record(RETURN_ORDERS, &mut |r| {
        *out.entry(r.key.clone().unwrap_or_default()).or_default() += 1;
    })
    .await
    .expect("read returnOrders");
    out
}

fn return_ids(summary: &Value) -> BTreeSet<String> {
    summary["returns"]
        .as_array()
        .expect("returns")
        .iter()
        .map(|r| r["return_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn returns_accepted_while_the_sqlite_log_is_unreachable_reach_every_team_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The log's directory is a file: the log cannot be opened until it goes.
    let blocker = dir.path().join("log");
    std::fs::write(&blocker, "not a directory").unwrap();
    let url = format!("sqlite://{}", blocker.join("log.db").display());

    let out = returns(
        &["publish", "-n", "30", "--no-wait", "--json", "--log", &url],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            &summary["accepted"],
            &summary["published"],
            &summary["waiting"]
        ),
        (&30.into(), &0.into(), &30.into()),
        "{summary}"
    );
    assert!(text(&out.stderr).contains("30 accepted return(s) wait in User Support's outbox"));
    assert_eq!(waiting(&data), 30);

    // A publisher of 10 more, which waits for the log.
    let mut publisher = Process::start(
        &["publish", "-n", "10", "--json", "--log", &url],
        &data,
        &[],
        "publish",
    );
    publisher.wait_for("is not reachable: 40 accepted return(s) wait");
    assert_eq!(waiting(&data), 40);
    std::fs::remove_file(&blocker).unwrap();
    assert!(publisher.wait(), "{}", publisher.stderr());
    let second: Value = serde_json::from_str(&publisher.stdout()).unwrap();
    assert_eq!(
        (
            &second["accepted"],
            &second["published"],
            &second["waiting"]
        ),
        (&10.into(), &40.into(), &0.into()),
        "{second}"
    );
    let mut expected = return_ids(&summary);
    expected.extend(return_ids(&second));
    assert_eq!(expected.len(), 40);

    // The same returns again are duplicates: accepted before, never published twice.
    let again = returns(
        &[
            "publish",
            "-n",
            "30",
            "--from-index",
            "0",
            "--json",
            "--log",
            &url,
        ],
        &data,
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (
            &again["accepted"],
            &again["duplicates"],
            &again["published"]
        ),
        (&0.into(), &30.into(), &0.into()),
        "{again}"
    );

    every_team_handles_each_once(&url, &data, &expected).await;
}

/// Ctrl-C while the log is down: the publisher exits 0 and its returns stay accepted, waiting
/// for the next run, which publishes them.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_the_log_is_down_leaves_the_returns_waiting_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let blocker = dir.path().join("log");
    std::fs::write(&blocker, "not a directory").unwrap();
    let url = format!("sqlite://{}", blocker.join("log.db").display());
    let mut publisher = Process::start(
        &[
            "publish",
            "-n",
            "20",
            "--from-index",
            "0",
            "--json",
            "--log",
            &url,
        ],
        &data,
        &[],
        "interrupted",
    );
    publisher.wait_for("is not reachable: 20 accepted return(s) wait");
    assert!(
        publisher.signal("-INT"),
        "exit 0 on Ctrl-C:\n{}",
        publisher.stderr()
    );
    let summary: Value = serde_json::from_str(&publisher.stdout()).unwrap();
    assert_eq!(
        (
            &summary["accepted"],
            &summary["published"],
            &summary["waiting"]
        ),
        (&20.into(), &0.into(), &20.into()),
        "{summary}"
    );
    assert!(publisher
        .stderr()
        .contains("20 accepted return(s) wait in User Support's outbox"));
    assert_eq!(waiting(&data), 20);

    std::fs::remove_file(&blocker).unwrap();
    let out = returns(&["publish", "-n", "0", "--log", &url], &data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("published 20 record(s) to returnOrders"),
        "{}",
        text(&out.stdout)
    );
    every_team_handles_each_once(&url, &data, &return_ids(&summary)).await;
}

/// A TCP forwarder on loopback to the broker, which the test opens and closes: closed, it
/// accepts and drops every connection, as a port with no broker behind it would.
struct Gate {
    port: u16,
    open: Arc<AtomicBool>,
}

impl Gate {
    fn to(upstream: String) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(false));
        let is_open = Arc::clone(&open);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !is_open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Gate { port, open }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run bash scripts/test.sh"
)]
async fn returns_accepted_while_kafka_is_unreachable_reach_every_team_once() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP");
    let namespace = returns_eventlog::conformance::unique("intake");
    let gate = Gate::to(bootstrap.clone());
    let gated = format!("kafka://127.0.0.1:{}?namespace={namespace}", gate.port);
    let direct = format!("kafka://{bootstrap}?namespace={namespace}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let mut publisher = Process::start(
        &["publish", "-n", "40", "--json", "--log", &gated],
        &data,
        &[],
        "publish",
    );
    publisher.wait_for("is not reachable: 40 accepted return(s) wait");
    assert_eq!(waiting(&data), 40, "accepted and waiting");
    // The broker comes back (the client bootstraps through the gate, then talks to the broker's
    // advertised address).
    gate.open.store(true, Ordering::SeqCst);
    assert!(publisher.wait(), "{}", publisher.stderr());
    let summary: Value = serde_json::from_str(&publisher.stdout()).unwrap();
    assert_eq!(
        (
            &summary["accepted"],
            &summary["published"],
            &summary["waiting"]
        ),
        (&40.into(), &40.into(), &0.into()),
        "{summary}"
    );
    assert_eq!(waiting(&data), 0);
    every_team_handles_each_once(&direct, &data, &return_ids(&summary)).await;
}

/// One HTTP/1.1 call on loopback; the status and the JSON body.
fn call(addr: &str, method: &str, path: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer[9..12].parse().expect("a status");
    let (_, json) = answer.split_once("\r\n\r\n").expect("a body");
    (status, serde_json::from_str(json).expect("a JSON body"))
}

fn body(i: u64) -> String {
    serde_json::to_string(&RefundRequestV2::from(&Generator::new(5).request(i))).unwrap()
}

/// Start `returns serve` on a free loopback port; the process and its address.
fn serve(data: &Path, log: &str, env: &[(&str, &str)], name: &str) -> (Process, String) {
    let mut server = Process::start(
        &["serve", "--listen", "127.0.0.1:0", "--log", log],
        data,
        env,
        name,
    );
    let line = server.wait_for("listening on http://");
    // "listening on http://127.0.0.1:PORT: POST /returns ..."
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(": ").next())
        .expect("an address")
        .to_string();
    (server, addr)
}

/// Poll until every team's store holds an effect for each return in `expected`; at the
/// deadline, fail with the end of what `server` said.
fn wait_for_effects(data: &Path, expected: &BTreeSet<String>, server: &Process) {
    let deadline = Instant::now() + DEADLINE;
    for team in TeamName::EVERY {
        loop {
            let effects = open_store_view(team, data)
                .and_then(|s| s.effects_per_return())
                .unwrap_or_default();
            if expected.iter().all(|id| effects.get(id) == Some(&1)) {
                assert_eq!(effects.len(), expected.len(), "{team}: {effects:?}");
                break;
            }
            if Instant::now() >= deadline {
                let said = server.stderr();
                let tail: Vec<&str> = said.lines().rev().take(80).collect();
                panic!(
                    "{team}: {effects:?}\nthe server said (last 80 lines, newest first):\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn posts_go_through_serve_to_every_team(log: &str, secret: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("RETURNS_TRACE", "debug"), ("RETURNS_TOKEN", TOKEN)];
    let (mut server, addr) = serve(&data, log, &env, "serve");
    let bearer = format!("Bearer {TOKEN}");

    // A token was given: on loopback too, writes need it.
    for auth in [None, Some("Bearer not-the-token-at-all-000")] {
        let (status, reply) = call(&addr, "POST", "/returns", auth, &body(0));
        assert_eq!(status, 401, "{reply}");
        assert_eq!(reply["error"]["kind"], "unauthorized");
    }
    let mut expected = BTreeSet::new();
    for i in 0..5 {
        let (status, reply) = call(&addr, "POST", "/returns", Some(&bearer), &body(i));
        assert_eq!(status, 202, "{reply}");
        assert_eq!(
            (&reply["status"], &reply["duplicate"]),
            (&"accepted".into(), &false.into())
        );
        expected.insert(reply["return_id"].as_str().unwrap().to_string());
    }
    let (status, reply) = call(&addr, "POST", "/returns", Some(&bearer), &body(3));
    assert_eq!(
        (status, &reply["duplicate"]),
        (200, &true.into()),
        "{reply}"
    );
    let (status, reply) = call(&addr, "POST", "/returns", Some(&bearer), "{\"x\":1}");
    assert_eq!(status, 422, "{reply}");
    // With a token, reads need it too (they show customers' addresses), but for the
    // dashboard's page and the health check.
    let (status, reply) = call(&addr, "GET", "/nowhere", None, "");
    assert_eq!(status, 401, "{reply}");
    let (status, reply) = call(&addr, "GET", "/nowhere", Some(&bearer), "");
    assert_eq!(status, 404, "{reply}");
    let (status, reply) = call(&addr, "GET", "/healthz", None, "");
    assert_ne!(status, 401, "the health check needs no token: {reply}");

    wait_for_effects(&data, &expected, &server);
    assert!(
        server.terminate(),
        "exit 0 on SIGTERM:\n{}",
        server.stderr()
    );
    let said = server.stderr() + &server.stdout();
    assert!(
        said.contains("every accepted return is on the log"),
        "{said}"
    );
    assert!(
        said.contains("return accepted"),
        "RETURNS_TRACE=debug took effect:\n{said}"
    );
    for secret in [Some(TOKEN), secret].into_iter().flatten() {
        assert!(!said.contains(secret), "a secret in the output:\n{said}");
    }
}

#[test]
fn serve_takes_returns_over_http_hands_them_to_every_team_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    posts_go_through_serve_to_every_team(&url, None);
}

#[test]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run bash scripts/test.sh"
)]
fn serve_on_kafka_keeps_the_token_and_the_log_urls_secrets_out_of_its_output() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP");
    let namespace = returns_eventlog::conformance::unique("serve");
    let secret = "librdkafka-secret-4242";
    // librdkafka takes the setting (and ignores it on a plaintext connection).
    let url = format!("kafka://{bootstrap}?namespace={namespace}&sasl.password={secret}");
    posts_go_through_serve_to_every_team(&url, Some(secret));
}

#[test]
fn serve_needs_a_token_off_loopback_and_none_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    // Refused before anything listens.
    let out = returns(&["serve", "--listen", "0.0.0.0:0", "--log", &url], &data);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token")
            && stderr.contains("RETURNS_TOKEN"),
        "{stderr}"
    );
    // A token too short to be one is refused, without being repeated.
    let short = Command::new(env!("CARGO_BIN_EXE_returns"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log", &url, "--data"])
        .arg(&data)
        .env("RETURNS_TOKEN", "tiny-secret")
        .output()
        .unwrap();
    assert!(!short.status.success());
    let stderr = text(&short.stderr);
    assert!(
        stderr.contains("shorter than 16") && !stderr.contains("tiny-secret"),
        "{stderr}"
    );

    // On loopback without a token, writes need none.
    let (mut server, addr) = serve(&data, &url, &[], "open");
    let (status, reply) = call(&addr, "POST", "/returns", None, &body(0));
    assert_eq!(status, 202, "{reply}");
    assert!(server.terminate(), "{}", server.stderr());
}

#[test]
fn serve_takes_returns_while_the_log_is_unreachable_and_keeps_them_over_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let blocker = dir.path().join("log");
    std::fs::write(&blocker, "not a directory").unwrap();
    let url = format!("sqlite://{}", blocker.join("log.db").display());

    let (mut server, addr) = serve(&data, &url, &[], "down");
    let mut expected = BTreeSet::new();
    for i in 0..3 {
        let (status, reply) = call(&addr, "POST", "/returns", None, &body(i));
        assert_eq!(status, 202, "{reply}");
        expected.insert(reply["return_id"].as_str().unwrap().to_string());
    }
    server.wait_for("is not reachable yet");
    assert!(server.terminate(), "{}", server.stderr());
    assert!(server
        .stderr()
        .contains("3 accepted return(s) wait in User Support's outbox"));
    assert_eq!(waiting(&data), 3);

    // The log is back; the next start publishes them and the teams handle them.
    std::fs::remove_file(&blocker).unwrap();
    let (mut server, _) = serve(&data, &url, &[], "up");
    wait_for_effects(&data, &expected, &server);
    assert!(server.terminate(), "{}", server.stderr());
    assert_eq!(waiting(&data), 0);
}

/// `--help` names the environment variables but never shows their values: the log URL may hold
/// a password and the token is one.
#[test]
fn help_never_shows_a_secret_from_the_environment() {
    for command in ["serve", "publish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_returns"))
            .args([command, "--help"])
            .env(
                "RETURNS_LOG",
                "kafka://127.0.0.1:1?sasl.password=pw-in-the-env",
            )
            .env("RETURNS_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(help.contains("RETURNS_LOG"), "{help}");
        assert!(
            !help.contains("pw-in-the-env") && !help.contains(TOKEN),
            "{help}"
        );
    }
}
