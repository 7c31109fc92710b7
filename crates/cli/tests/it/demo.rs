//! `returns demo` end to end, as a user runs it: the real binary on a fresh data directory.

use std::path::Path;
use std::process::Command;

use returns_domain::{Accounting, Inventory, Manufacturing, Sales, Team};
use returns_services::team::store::TeamStore;
use serde_json::Value;

fn returns(dir: &Path, args: &[&str]) -> (bool, String, String) {
    output(
        Command::new(env!("CARGO_BIN_EXE_returns"))
            .args(args)
            .env("RETURNS_DATA", dir.join("data"))
            .env_remove("RETURNS_LOG"),
    )
}

/// `returns ARGS` run from `cwd`, with neither --data nor --log from the environment.
fn run_in(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    output(
        Command::new(env!("CARGO_BIN_EXE_returns"))
            .args(args)
            .current_dir(cwd)
            .env_remove("RETURNS_DATA")
            .env_remove("RETURNS_LOG"),
    )
}

fn output(command: &mut Command) -> (bool, String, String) {
    let out = command.output().expect("run returns");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn demo_json(dir: &Path, n: u64) -> Value {
    let (ok, stdout, stderr) = returns(
        dir,
        &["demo", "--returns", &n.to_string(), "--seed", "7", "--json"],
    );
    assert!(ok, "demo failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn effects<T: Team>(dir: &Path) -> Vec<u64> {
    let store = TeamStore::<T>::open(&dir.join("data")).unwrap();
    store.effects_per_return().unwrap().into_values().collect()
}

#[test]
fn demo_reports_every_team_and_a_second_run_continues_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo_json(dir.path(), 500);
    assert_eq!(first["returns"], 500);
    assert_eq!(first["first_index"], 0);
    assert!(first["log"].as_str().unwrap().starts_with("sqlite://"));
    assert!(first["returns_per_sec"].as_f64().unwrap() > 0.0);
    assert!(
        first["latency_ms"]["p99"].as_f64().unwrap()
            >= first["latency_ms"]["p50"].as_f64().unwrap()
    );
    for team in ["sales", "inventory", "manufacturing", "accounting"] {
        let t = &first["teams"][team];
        assert_eq!(t["processed"], 500, "{team}: {t}");
        assert_eq!(t["lag"], 0, "{team}");
        assert_eq!(t["duplicates_skipped"], 0, "{team}");
        let effects: u64 = t["effects"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(effects, 500, "{team}: one effect per return");
    }
    // 2% of generated returns repeat an earlier order: Sales rejects them by name.
    let rejected = first["teams"]["sales"]["rejection_reasons"]["OrderAlreadyRefunded"]
        .as_u64()
        .unwrap_or(0);
    assert!(rejected > 0, "{}", first["teams"]["sales"]);

    // Again on the same data: new returns, old ones not applied twice.
    let second = demo_json(dir.path(), 300);
    assert_eq!(second["first_index"], 500);
    for team in ["sales", "inventory", "manufacturing", "accounting"] {
        assert_eq!(second["teams"][team]["processed"], 300, "{team}");
        assert_eq!(second["teams"][team]["duplicates_skipped"], 0, "{team}");
    }
    for counts in [
        effects::<Sales>(dir.path()),
        effects::<Inventory>(dir.path()),
        effects::<Manufacturing>(dir.path()),
        effects::<Accounting>(dir.path()),
    ] {
        assert_eq!(counts.len(), 800);
        assert!(counts.iter().all(|n| *n == 1));
    }
}

#[test]
fn demo_prints_a_table_per_team() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = returns(dir.path(), &["demo", "--returns", "200"]);
    assert!(ok, "{stderr}");
    for needle in [
        "sales",
        "inventory",
        "manufacturing",
        "accounting",
        "order_refunded",
        "returns/s",
        "p99",
    ] {
        assert!(stdout.contains(needle), "missing {needle} in:\n{stdout}");
    }
}

#[test]
fn bad_lines_published_raw_are_dead_lettered_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "This is the first message\n{\"order_id\": \"SO-1\"}\n",
    )
    .unwrap();
    let (ok, _, stderr) = returns(
        dir.path(),
        &["publish", "--file", file.to_str().unwrap(), "--raw"],
    );
    assert!(ok, "{stderr}");
    let report = demo_json(dir.path(), 50);
    assert_eq!(report["teams"]["sales"]["dead_lettered"], 2);
    assert_eq!(report["teams"]["sales"]["processed"], 52);
    let (ok, stdout, stderr) = returns(dir.path(), &["dlq", "list", "--team", "sales", "--json"]);
    assert!(ok, "{stderr}");
    let letters: Value = serde_json::from_str(&stdout).unwrap();
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 2);
    assert!(
        letters.iter().all(|l| l["error_kind"] == "malformed"),
        "{letters:?}"
    );
    assert!(letters
        .iter()
        .any(|l| l["error"].as_str().unwrap().contains("order_id")
            || l["error"].as_str().unwrap().contains("missing field")));
}

/// Logs written to a pipe (or a file) carry no colour codes: only a terminal gets them.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = output(
        Command::new(env!("CARGO_BIN_EXE_returns"))
            .args(["demo", "--returns", "3"])
            .env("RETURNS_DATA", dir.path().join("data"))
            .env_remove("RETURNS_LOG")
            .env_remove("NO_COLOR")
            .env("RETURNS_TRACE", "info"),
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("INFO"), "no log line: {stderr}");
    assert!(!stderr.contains("\x1b["), "colour codes in: {stderr:?}");
}

/// A broker that does not answer: the error names its cause once (the libraries' messages say
/// their cause, and rdkafka's error returns it as its source too).
#[test]
fn an_unreachable_broker_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = returns(
        dir.path(),
        &[
            "status",
            "00000000-0000-4000-8000-000000000000",
            "--log",
            "kafka://127.0.0.1:1",
        ],
    );
    assert!(!ok);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    assert!(
        line.contains("cannot open the event log kafka://127.0.0.1:1"),
        "{line}"
    );
    assert!(line.contains("is the broker up?"), "{line}");
    let cause = "Broker transport failure";
    assert_eq!(line.matches(cause).count(), 1, "{line}");
    let parts: Vec<&str> = line.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(!parts[..i].contains(part), "`{part}` twice in: {line}");
    }
}

#[test]
fn a_bad_log_url_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = returns(dir.path(), &["demo", "--log", "postgres://x"]);
    assert!(!ok);
    assert!(
        stderr.contains("unknown scheme") && stderr.contains("sqlite://"),
        "{stderr}"
    );
}

#[test]
fn a_file_of_v1_and_v2_lines_is_published_as_v2_and_a_bad_line_names_its_place() {
    use returns_eventlog::wire::{v1::RefundRequestV1, v2::RefundRequestV2};
    let dir = tempfile::tempdir().unwrap();
    let generator = returns_domain::Generator::new(5);
    let (old, new) = (generator.request(0), generator.request(1));
    let file = dir.path().join("requests.jsonl");
    let lines = [
        serde_json::to_string(&RefundRequestV1::from(&old)).unwrap(),
        serde_json::to_string(&RefundRequestV2::from(&new)).unwrap(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (ok, _, stderr) = returns(dir.path(), &["publish", "--file", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    for (req, noticed) in [(&old, "unknown"), (&new, new.reason.noticed.as_str())] {
        let (ok, stdout, stderr) =
            returns(dir.path(), &["audit", &req.return_id.to_string(), "--json"]);
        assert!(ok, "{stderr}");
        let trail: Value = serde_json::from_str(&stdout).unwrap();
        let request = &trail[0];
        assert_eq!(request["event_type"], "returns.RefundRequest.v2");
        assert_eq!(
            request["data"]["reason"]["defect"],
            req.reason.defect.as_str()
        );
        assert_eq!(request["data"]["reason"]["noticed"], noticed);
    }

    let mut bad = serde_json::to_value(RefundRequestV2::from(&new)).unwrap();
    bad["reason"]["noticed"] = "yesterday".into();
    std::fs::write(&file, format!("{}\n{bad}\n", lines[0])).unwrap();
    let (ok, _, stderr) = returns(dir.path(), &["publish", "--file", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("requests.jsonl:2: not a valid RefundRequest")
            && stderr.contains("reason.noticed"),
        "{stderr}"
    );
    std::fs::write(&file, "{\"return_id\": \"x\"}\n").unwrap();
    let (ok, _, stderr) = returns(dir.path(), &["publish", "--file", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("requests.jsonl:1") && stderr.contains("neither version 2"),
        "{stderr}"
    );
}

/// Every file in `dir` with its size and time of change: what "nothing was written" compares.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(files(&entry.path()));
        } else {
            out.push((entry.path(), meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// Two embedded logs used from one directory without --data: each keeps its stores beside it,
/// and each demo processes its own returns.
#[test]
fn two_embedded_logs_from_one_directory_each_keep_their_own_stores() {
    let dir = tempfile::tempdir().unwrap();
    for log in ["one", "two"] {
        let url = format!("sqlite://{log}/log.db");
        let (ok, stdout, stderr) = run_in(
            dir.path(),
            &["demo", "-n", "100", "--seed", "7", "--log", &url, "--json"],
        );
        assert!(ok, "{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["first_index"], 0, "{log}: a log of its own");
        for team in ["sales", "inventory", "manufacturing", "accounting"] {
            assert_eq!(report["teams"][team]["processed"], 100, "{log} {team}");
        }
        assert!(dir.path().join(log).join("sales.db").exists(), "{log}");
        assert!(dir.path().join(log).join("log-identity.json").exists());
    }
    assert!(!dir.path().join("returns-data").exists());
}

/// A data directory built from one log, given with another: refused before anything in it is
/// written, with both logs named and the way out.
#[test]
fn a_data_directory_refuses_another_log_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (one, two) = ("sqlite://one/log.db", "sqlite://two/log.db");
    let (ok, _, stderr) = run_in(
        dir.path(),
        &["demo", "-n", "30", "--data", data, "--log", one, "--json"],
    );
    assert!(ok, "{stderr}");
    let before = files(Path::new(data));
    let commands: [&[&str]; 6] = [
        &["demo", "-n", "30"],
        &["publish", "-n", "5"],
        &["run", "sales"],
        &["status", "00000000-0000-4000-8000-000000000000"],
        &["stats"],
        &["replay", "sales"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.extend(["--data", data, "--log", two]);
        let (ok, stdout, stderr) = run_in(dir.path(), &args);
        assert!(!ok, "{command:?} ran on another log's data: {stdout}");
        for needle in [one, two, "--data", "holds state built from the event log"] {
            assert!(
                stderr.contains(needle),
                "{command:?}: no {needle} in {stderr}"
            );
        }
    }
    assert_eq!(files(Path::new(data)), before, "nothing written");
    // The log it was built from still opens it.
    let (ok, stdout, stderr) = run_in(
        dir.path(),
        &["demo", "-n", "30", "--data", data, "--log", one, "--json"],
    );
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["first_index"], 30);
}

/// A log that does not answer cannot be checked: `publish` and `serve` with --data, which may
/// take returns while their log is down, refuse a directory already bound to another log rather
/// than accept returns there that would later go to that other log.
#[test]
fn a_log_that_does_not_answer_is_not_given_another_log_s_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (ok, _, stderr) = run_in(
        dir.path(),
        &[
            "demo",
            "-n",
            "10",
            "--data",
            data,
            "--log",
            "sqlite://one/log.db",
        ],
    );
    assert!(ok, "{stderr}");
    // A file where the other log's directory should be: that log cannot be opened.
    std::fs::write(dir.path().join("blocked"), "not a directory").unwrap();
    let before = files(Path::new(data));
    let (ok, stdout, stderr) = run_in(
        dir.path(),
        &[
            "publish",
            "-n",
            "3",
            "--no-wait",
            "--data",
            data,
            "--log",
            "sqlite://blocked/log.db",
        ],
    );
    assert!(!ok, "accepted into another log's directory: {stdout}");
    for needle in [
        "sqlite://one/log.db",
        "sqlite://blocked/log.db",
        "does not answer",
        "--data",
    ] {
        assert!(stderr.contains(needle), "no {needle} in {stderr}");
    }
    assert_eq!(files(Path::new(data)), before, "nothing written");
}

/// On Kafka a log is a cluster and a namespace: a data directory given with another namespace
/// is refused the same way.
#[test]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run bash scripts/test.sh"
)]
fn a_data_directory_refuses_another_kafka_namespace() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let ns = uuid::Uuid::new_v4().simple().to_string();
    let one = format!("kafka://{bootstrap}?namespace=bind-a-{ns}");
    let two = format!("kafka://{bootstrap}?namespace=bind-b-{ns}");
    let (ok, _, stderr) = run_in(
        dir.path(),
        &["demo", "-n", "20", "--data", data, "--log", &one, "--json"],
    );
    assert!(ok, "{stderr}");
    let before = files(Path::new(data));
    let (ok, _, stderr) = run_in(
        dir.path(),
        &["demo", "-n", "20", "--data", data, "--log", &two],
    );
    assert!(!ok);
    assert!(
        stderr.contains(&format!("bind-a-{ns}")) && stderr.contains(&format!("bind-b-{ns}")),
        "{stderr}"
    );
    assert_eq!(files(Path::new(data)), before, "nothing written");
}

/// `returns demo | head -0`: the reader is gone before the report. The command ends quietly
/// with the shell's SIGPIPE status (141), not with a panic message.
#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_returns"))
        .args(["demo", "--returns", "20"])
        .env("RETURNS_DATA", dir.path().join("data"))
        .env_remove("RETURNS_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run returns");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
