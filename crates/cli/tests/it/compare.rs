//! `returns compare` end to end: the real binary runs both models on the same returns and the
//! same faults, and the figures its `--json` prints are asserted here.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use returns_domain::Generator;
use serde_json::Value;

/// One comparison at a time: each runs two models on a fixed submission schedule, and two of
/// them at once would share the two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn compare(dir: &Path, log: Option<&str>, args: &[&str]) -> Value {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_returns"));
    cmd.arg("compare")
        .args(args)
        .arg("--json")
        .env("RETURNS_DATA", dir)
        .env_remove("RETURNS_LOG");
    if let Some(log) = log {
        cmd.args(["--log", log]);
    }
    let out = cmd.output().expect("run returns compare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "compare failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn n(v: &Value, model: &str, field: &str) -> u64 {
    v[model][field]
        .as_u64()
        .unwrap_or_else(|| panic!("{model}.{field} in {v}"))
}

fn assert_all_states_agree(v: &Value) {
    let agree = v["states_agree"].as_object().unwrap();
    assert_eq!(agree.len(), 4, "{v}");
    assert!(
        agree.values().all(|ok| ok == true),
        "states differ: {agree:?}"
    );
}

/// The smallest distance (in submissions) between two returns that claim the same order.
fn closest_repeat(seed: u64, n: u64) -> u64 {
    let mut last_seen = std::collections::HashMap::new();
    let mut closest = u64::MAX;
    for (i, r) in Generator::new(seed).requests(0..n).enumerate() {
        if let Some(j) = last_seen.insert(r.order_id.to_string(), i as u64) {
            closest = closest.min(i as u64 - j);
        }
    }
    closest
}

fn no_fault_run(log: Option<&str>) {
    // Two claims on the same order are decided first-come: if they raced each other (submitted
    // within a few milliseconds), the two models could legitimately pick different winners.
    // Seed 33's repeats are at least 80 submissions (0.4 s) apart, so they never race.
    assert!(
        closest_repeat(33, 200) >= 80,
        "pick a seed without racing repeats"
    );
    let dir = tempfile::tempdir().unwrap();
    let v = compare(
        dir.path(),
        log,
        &["--returns", "200", "--rate", "200", "--seed", "33"],
    );
    for model in ["traditional", "event_sourced"] {
        assert_eq!(n(&v, model, "accepted"), 200, "{model}: {v}");
        assert_eq!(n(&v, model, "refused"), 0, "{model}");
        assert_eq!(n(&v, model, "complete"), 200, "{model}");
        assert_eq!(n(&v, model, "partial"), 0, "{model}");
        assert_eq!(n(&v, model, "lost"), 0, "{model}");
        assert_eq!(n(&v, model, "duplicates"), 0, "{model}");
        assert!(v[model]["converge_ms"].is_u64(), "{model} converged: {v}");
        let p50 = v[model]["latency_ms"]["p50"].as_f64().unwrap();
        let p99 = v[model]["latency_ms"]["p99"].as_f64().unwrap();
        assert!(p50 > 0.0 && p99 >= p50, "{model}: {v}");
    }
    assert_all_states_agree(&v);
    // What `returns serve` shows as the latest comparison: the same object, with its time
    // and its chart.
    let kept = dir.path().join("compare");
    let latest: Value =
        serde_json::from_str(&std::fs::read_to_string(kept.join("latest.json")).unwrap()).unwrap();
    let mut trimmed = latest.clone();
    let object = trimmed.as_object_mut().unwrap();
    assert!(
        object.remove("finished_at").unwrap().is_string(),
        "{latest}"
    );
    assert_eq!(object.remove("chart").unwrap(), "/compare/chart.svg");
    assert_eq!(trimmed, v, "latest.json is what --json printed");
    let svg = std::fs::read_to_string(kept.join("latest.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("</svg>"),
        "{svg:.200}"
    );
}

#[test]
fn without_faults_both_models_complete_every_return_and_agree() {
    no_fault_run(None);
}

#[test]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
fn without_faults_both_models_agree_on_kafka_too() {
    let url = format!(
        "kafka://{}",
        std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP")
    );
    no_fault_run(Some(&url));
}

fn outage_run(log: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    // 400 returns over 2 s; Manufacturing is down for as long as they are being submitted (a
    // window given by a condition, the last submission, not by seconds on a clock that a loaded
    // machine would shift against the submissions).
    let v = compare(
        dir.path(),
        log,
        &[
            "--returns",
            "400",
            "--rate",
            "200",
            "--outage",
            "manufacturing",
        ],
    );
    assert_eq!(v["outages"][0]["team"], "manufacturing", "{v}");
    // Traditional: every return is refused, and left partial where it got to: Sales and
    // Inventory did their part; Manufacturing was down, and Accounting, after it, was never
    // called.
    assert_eq!(n(&v, "traditional", "accepted"), 0, "{v}");
    assert_eq!(n(&v, "traditional", "refused"), 400, "{v}");
    assert_eq!(n(&v, "traditional", "partial"), 400, "{v}");
    assert_eq!(
        v["traditional"]["missing_by_team"],
        serde_json::json!({"manufacturing": 400, "accounting": 400}),
        "{v}"
    );
    assert_eq!(n(&v, "traditional", "complete"), 0, "{v}");
    assert!(v["traditional"]["converge_ms"].is_null(), "{v}");
    // Event-sourced: User Support accepted every return while Manufacturing did nothing at all
    // (it waits for no team), and all are complete once Manufacturing is back: none lost or
    // doubled.
    assert_eq!(n(&v, "event_sourced", "accepted"), 400, "{v}");
    assert_eq!(n(&v, "event_sourced", "refused"), 0);
    assert_eq!(n(&v, "event_sourced", "lost"), 0, "{v}");
    assert_eq!(n(&v, "event_sourced", "duplicates"), 0, "{v}");
    assert_eq!(n(&v, "event_sourced", "complete"), 400, "{v}");
    assert_eq!(n(&v, "event_sourced", "partial"), 0, "{v}");
    assert!(v["event_sourced"]["converge_ms"].is_u64(), "{v}");
}

#[test]
fn during_an_outage_the_traditional_model_refuses_and_the_event_sourced_one_catches_up() {
    outage_run(None);
}

#[test]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
fn during_an_outage_on_kafka_the_event_sourced_model_loses_nothing() {
    let url = format!(
        "kafka://{}",
        std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP")
    );
    outage_run(Some(&url));
}

#[test]
fn a_slow_team_slows_user_support_only_in_the_traditional_model() {
    let dir = tempfile::tempdir().unwrap();
    let v = compare(
        dir.path(),
        None,
        &[
            "--returns",
            "100",
            "--rate",
            "100",
            "--latency",
            "inventory=300",
            "--chart",
            &dir.path().join("chart.svg").display().to_string(),
        ],
    );
    // Every traditional submission waits for Inventory's 300 ms: a floor that follows from the
    // injected latency, which a loaded machine can only raise.
    let trad_p50 = v["traditional"]["latency_ms"]["p50"].as_f64().unwrap();
    assert!(trad_p50 >= 300.0, "traditional p50 {trad_p50} ms: {v}");
    // How fast the event-sourced submissions are is a claim about speed, for `returns compare`
    // to show a person (and a benchmark to track), not for a test on a shared machine to bound.
    // That User Support waits for no team there is asserted by a condition instead: the outage
    // tests above, where it accepts every return while a team is down for the whole run.
    assert_eq!(n(&v, "event_sourced", "accepted"), 100, "{v}");
    for model in ["traditional", "event_sourced"] {
        assert_eq!(n(&v, model, "complete"), 100, "{model}: {v}");
    }
    let svg = std::fs::read_to_string(dir.path().join("chart.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("event-sourced: 100 complete"),
        "{svg}"
    );
}

#[test]
fn bad_fault_flags_are_refused_with_the_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_returns"))
        .args(["compare", "--outage", "shipping@1..2"])
        .env("RETURNS_DATA", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--outage `shipping@1..2`") && err.contains("unknown team"),
        "{err}"
    );
}

#[test]
fn errors_fail_traditional_returns_while_the_event_sourced_model_retries_them() {
    let dir = tempfile::tempdir().unwrap();
    // Sales, called first, fails half of its calls: a return fails when all three attempts do
    // (1 in 8), before any team has done anything.
    let v = compare(
        dir.path(),
        None,
        &[
            "--returns",
            "200",
            "--rate",
            "400",
            "--error-rate",
            "sales=0.5",
        ],
    );
    let refused = n(&v, "traditional", "refused");
    assert!((5..=60).contains(&refused), "about 25 of 200 fail: {v}");
    assert_eq!(
        n(&v, "traditional", "partial"),
        0,
        "nothing was done for them: {v}"
    );
    assert_eq!(n(&v, "traditional", "complete"), 200 - refused);
    assert_eq!(v["error_rate"]["sales"], 0.5);
    // The event-sourced Sales retries each failed batch until it passes.
    assert_eq!(n(&v, "event_sourced", "complete"), 200, "{v}");
    assert_eq!(n(&v, "event_sourced", "duplicates"), 0, "{v}");
    assert_eq!(n(&v, "event_sourced", "lost"), 0, "{v}");
}
