//! `returns status` and `returns stats` end to end: the real binary after a real `returns demo`,
//! on SQLite and on a Kafka broker. Every figure the views print is checked against a count made
//! independently: the generator's requests, the teams' own stores, the teams' own topics.

use std::collections::{BTreeMap, HashSet};

use returns_domain::{
    Accounting, AccountingEvent, Generator, Inventory, InventoryEvent, Sales, SalesEvent, Team,
};
use returns_eventlog::wire;
use returns_eventlog::{team_topic, Record};
use returns_services::team::store::TeamStore;
use serde_json::Value;

/// The demo's generator seed in these tests.
const SEED: u64 = 11;

use crate::common;
use common::{Sandbox as Setup, TEAMS};

impl Setup {
    fn demo(&self, n: u64) {
        self.json(&[
            "demo",
            "--returns",
            &n.to_string(),
            "--seed",
            &SEED.to_string(),
            "--json",
        ]);
    }

    /// Every record of a topic, read back outside any group.
    fn topic(&self, topic: &str) -> Vec<Record> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let log = returns_eventlog::open(&self.log_url()).await.unwrap();
            let mut records = Vec::new();
            log.for_each_record(topic, &mut |r| records.push(r))
                .await
                .unwrap();
            records
        })
    }

    /// Append one record to a topic of the log.
    fn append(&self, topic: &str, record: returns_eventlog::OutRecord) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let log = returns_eventlog::open(&self.log_url()).await.unwrap();
            log.append(topic, vec![record]).await.unwrap();
        })
    }

    /// A team's events from its topic, each event id once.
    fn team_events<T: Team>(&self) -> Vec<T::Event> {
        let mut seen = HashSet::new();
        self.topic(&team_topic(T::NAME))
            .iter()
            .map(|r| wire::decode_team_event::<T>(r).unwrap())
            .filter(|(envelope, _)| seen.insert(envelope.id.clone()))
            .map(|(_, event)| event)
            .collect()
    }

    fn effects_by_kind<T: Team>(&self) -> BTreeMap<String, u64> {
        TeamStore::<T>::open(&self.data)
            .unwrap()
            .effects_by_kind()
            .unwrap()
    }

    /// A team's decision on a return as its store holds it: (event id, kind, rejection).
    fn effect(&self, team: &str, return_id: &str) -> (String, String, Option<String>) {
        let db = rusqlite::Connection::open(self.data.join(format!("{team}.db"))).unwrap();
        db.query_row(
            "SELECT event_id, kind, rejection FROM effects WHERE return_id = ?1",
            [return_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    /// The first return a team rejected, if it rejected any.
    fn first_rejected(&self, team: &str) -> Option<String> {
        let db = rusqlite::Connection::open(self.data.join(format!("{team}.db"))).unwrap();
        db.query_row(
            "SELECT return_id FROM effects WHERE rejection IS NOT NULL ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok()
    }

    /// Move the teams' stores away (and back): the views must answer without them.
    fn hide_team_stores(&self, hidden: bool) {
        let away = self.data.join("hidden");
        std::fs::create_dir_all(&away).unwrap();
        for team in TEAMS {
            for suffix in [".db", ".db-wal", ".db-shm"] {
                let name = format!("{team}{suffix}");
                let (from, to) = if hidden {
                    (self.data.join(&name), away.join(&name))
                } else {
                    (away.join(&name), self.data.join(&name))
                };
                if from.exists() {
                    std::fs::rename(from, to).unwrap();
                }
            }
        }
    }
}

fn count<K: Ord>(items: impl IntoIterator<Item = K>) -> BTreeMap<K, u64> {
    let mut counts = BTreeMap::new();
    for k in items {
        *counts.entry(k).or_default() += 1;
    }
    counts
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `stats --json` without the part that says what this very run read.
fn figures(mut stats: Value) -> Value {
    stats.as_object_mut().unwrap().remove("caught_up");
    stats
}

/// Sum `value` over the rows of `table`, grouped by `key`.
fn sum_by(stats: &Value, table: &str, key: &str, value: &str) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for row in stats[table].as_array().unwrap() {
        *sums
            .entry(row[key].as_str().unwrap().to_string())
            .or_default() += u(&row[value]);
    }
    sums
}

fn stats_agree_with_independent_counts(s: &Setup, n: u64, stats: &Value) {
    let requests: Vec<_> = Generator::new(SEED).requests(0..n).collect();
    assert_eq!(u(&stats["returns"]), n, "{stats}");

    // Per model and per month: the generator's requests.
    assert_eq!(
        sum_by(stats, "returns_by_model_month", "model", "returns"),
        count(requests.iter().map(|r| r.model.to_string())),
    );
    assert_eq!(
        sum_by(stats, "returns_by_model_month", "month", "returns"),
        count(requests.iter().map(|r| r.requested_at.month().to_string())),
    );
    // Per defect, and noticed on arrival as the wire carries it.
    assert_eq!(
        sum_by(stats, "returns_by_defect_month", "defect", "returns"),
        count(requests.iter().map(|r| r.reason.defect.to_string())),
    );
    let on_the_wire: Vec<_> = requests
        .iter()
        .map(|r| {
            let out = wire::encode_refund_request(r, &wire::refund_request_envelope(r));
            let record = Record {
                topic: returns_eventlog::RETURN_ORDERS.into(),
                partition: 0,
                offset: 0,
                key: Some(out.key),
                timestamp_ms: 0,
                headers: out.headers,
                payload: out.payload,
            };
            wire::decode_refund_request(&record).1.unwrap()
        })
        .collect();
    let on_arrival = count(
        on_the_wire
            .iter()
            .filter(|r| r.reason.noticed == returns_domain::Noticed::OnArrival)
            .map(|r| r.reason.defect.to_string()),
    );
    let reported: BTreeMap<String, u64> = sum_by(
        stats,
        "returns_by_defect_month",
        "defect",
        "noticed_on_arrival",
    )
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    assert_eq!(reported, on_arrival);

    // Refunds: Sales' store counts them, Sales' topic carries the amounts.
    let refunds: Vec<_> = s
        .team_events::<Sales>()
        .into_iter()
        .filter_map(|e| match e {
            SalesEvent::OrderRefunded { amount, .. } => Some(amount),
            _ => None,
        })
        .collect();
    let mut expected_refunds = BTreeMap::new();
    for a in &refunds {
        let e = expected_refunds
            .entry(a.currency().code().to_string())
            .or_insert((0u64, 0i64));
        e.0 += 1;
        e.1 += a.minor();
    }
    let reported_refunds: BTreeMap<String, (u64, i64)> = stats["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["currency"].as_str().unwrap().to_string(),
                (u(&m["count"]), m["total_minor"].as_i64().unwrap()),
            )
        })
        .collect();
    assert_eq!(reported_refunds, expected_refunds);
    assert_eq!(
        refunds.len() as u64,
        s.effects_by_kind::<Sales>()["order_refunded"]
    );

    // Disposal cost per month: Accounting's topic; backorders per model: Inventory's.
    let mut disposals: BTreeMap<String, i64> = BTreeMap::new();
    for e in s.team_events::<Accounting>() {
        if let AccountingEvent::AssetDisposalCharged { month, amount, .. } = e {
            *disposals.entry(month.to_string()).or_default() += amount.minor();
        }
    }
    let reported: BTreeMap<String, i64> = stats["disposal_cost_by_month"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap().to_string(),
                m["total_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(reported, disposals);
    assert_eq!(
        sum_by(stats, "disposal_cost_by_month", "currency", "count")
            .values()
            .sum::<u64>(),
        s.effects_by_kind::<Accounting>()["asset_disposal_charged"]
    );
    let backorders = count(
        s.team_events::<Inventory>()
            .into_iter()
            .filter_map(|e| match e {
                InventoryEvent::ReplacementBackordered { model, .. } => Some(model.to_string()),
                _ => None,
            }),
    );
    assert_eq!(
        sum_by(stats, "backorders_by_model", "model", "count"),
        backorders
    );

    // Every team decided every return once, so each latency counts n events.
    for l in stats["latency_ms"].as_array().unwrap() {
        let team = l["team"].as_str().unwrap();
        if TEAMS.contains(&team) {
            assert_eq!(u(&l["count"]), n, "{team}: {l}");
            let (p50, p99, max) = (l["p50"].as_f64(), l["p99"].as_f64(), l["max"].as_f64());
            assert!(p50 <= p99 && p99 <= max, "{team}: {l}");
        }
    }
}

/// `status --json` for a return lists the four teams with what each team's store holds.
fn status_agrees_with_the_stores(
    s: &Setup,
    return_id: &str,
    expected: &[(String, String, Option<String>)],
) {
    let status = s.json(&["status", return_id, "--json"]);
    assert_eq!(status["return_id"], return_id);
    assert_eq!(status["complete"], true, "{status}");
    assert!(status["request"]["requested_at"].is_string(), "{status}");
    let teams = status["teams"].as_array().unwrap();
    let names: Vec<&str> = teams.iter().map(|t| t["team"].as_str().unwrap()).collect();
    assert_eq!(names, TEAMS, "{status}");
    for (t, (event_id, kind, rejection)) in teams.iter().zip(expected) {
        let team = t["team"].as_str().unwrap();
        assert_eq!(
            t["event_id"].as_str(),
            Some(event_id.as_str()),
            "{team}: {t}"
        );
        assert_eq!(t["kind"].as_str(), Some(kind.as_str()), "{team}: {t}");
        assert_eq!(t["reason"].as_str(), rejection.as_deref(), "{team}: {t}");
        let status = if rejection.is_some() {
            "rejected"
        } else {
            "accepted"
        };
        assert_eq!(t["status"], status, "{team}: {t}");
        assert!(
            t["event_type"]
                .as_str()
                .unwrap()
                .starts_with(&format!("returns.{team}.")),
            "{t}"
        );
    }
}

fn views_run(s: &Setup, n: u64) {
    s.demo(n);
    // Then a line no team can read: the views count it and go on.
    let bad = s.data.with_file_name("bad.jsonl");
    std::fs::write(&bad, "This is the first message\n").unwrap();
    let (ok, _, stderr) = s.returns(&["publish", "--file", bad.to_str().unwrap(), "--raw"]);
    assert!(ok, "{stderr}");

    // What the teams hold, read now; then their stores go away: the views never need them.
    let mut asked: Vec<String> = vec![Generator::new(SEED).request(0).return_id.to_string()];
    asked.extend(TEAMS.iter().filter_map(|t| s.first_rejected(t)));
    assert!(asked.len() > 1, "the demo rejected nothing");
    let expected: Vec<Vec<_>> = asked
        .iter()
        .map(|id| TEAMS.iter().map(|t| s.effect(t, id)).collect())
        .collect();

    let first = s.json(&["stats", "--json"]);
    stats_agree_with_independent_counts(s, n, &first);
    assert_eq!(first["skipped"]["malformed"], 1, "{first}");
    assert_eq!(u(&first["caught_up"]["applied"]), 5 * n, "{first}");
    assert_eq!(u(&first["caught_up"]["skipped"]), 1, "{first}");

    s.hide_team_stores(true);
    for (id, expected) in asked.iter().zip(&expected) {
        status_agrees_with_the_stores(s, id, expected);
    }
    // Again: nothing new to read, the same figures.
    let second = s.json(&["stats", "--json"]);
    assert_eq!(u(&second["caught_up"]["applied"]), 0, "{second}");
    assert_eq!(figures(second), figures(first.clone()));

    // Unknown and malformed ids fail, saying why.
    let unknown = uuid::Uuid::new_v4().to_string();
    let (ok, _, stderr) = s.returns(&["status", &unknown]);
    assert!(!ok);
    assert!(stderr.contains(&format!("no return {unknown}")), "{stderr}");
    assert!(stderr.contains("Check the id"), "{stderr}");
    let (ok, _, stderr) = s.returns(&["status", "SO-12345678"]);
    assert!(!ok);
    assert!(stderr.contains("is not a return id"), "{stderr}");
    s.hide_team_stores(false);

    // More returns (the generator goes on after the bad line): only they are added.
    s.demo(50);
    let more = s.json(&["stats", "--json"]);
    assert_eq!(u(&more["returns"]), n + 50, "{more}");
    assert_eq!(u(&more["caught_up"]["applied"]), 5 * 50, "{more}");
}

#[test]
fn views_agree_with_the_generator_the_stores_and_the_topics_on_sqlite() {
    views_run(&Setup::new(None), 400);
}

#[test]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
fn views_agree_with_the_generator_the_stores_and_the_topics_on_kafka() {
    views_run(&Setup::kafka("views"), 200);
}

#[test]
fn stats_prints_tables_and_writes_one_csv_file_per_table() {
    let s = Setup::new(None);
    s.demo(120);
    let csv = s.data.with_file_name("csv");
    let (ok, stdout, stderr) = s.returns(&["stats", "--csv", csv.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    for heading in [
        "120 returns",
        "Returns per model and month",
        "Returns per defect and month",
        "Refunds",
        "Disposal cost per month",
        "Backorders per model",
        "Processing latency per team",
        "AURA-PHONE-12",
        "accounting",
    ] {
        assert!(stdout.contains(heading), "missing {heading} in:\n{stdout}");
    }
    let read = |name: &str| -> Vec<String> {
        std::fs::read_to_string(csv.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .split_terminator("\r\n")
            .map(str::to_string)
            .collect()
    };
    let by_model = read("returns_by_model_month.csv");
    assert_eq!(by_model[0], "model,month,returns");
    let total: u64 = by_model[1..]
        .iter()
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 120);
    assert_eq!(read("latency_ms.csv")[0], "team,events,p50,p95,p99,max");
    for name in [
        "returns_by_defect_month.csv",
        "refunds.csv",
        "disposal_cost_by_month.csv",
        "backorders_by_model.csv",
        "skipped.csv",
    ] {
        assert!(!read(name).is_empty(), "{name}");
    }

    let id = Generator::new(SEED).request(7).return_id.to_string();
    let (ok, stdout, stderr) = s.returns(&["status", &id]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("return {id}: requested")),
        "{stdout}"
    );
    for team in TEAMS {
        assert!(stdout.contains(team), "{team} missing:\n{stdout}");
    }
    assert!(stdout.contains("every team has decided"), "{stdout}");
}

/// `status` says a return's request cannot be read only when the view holds an unreadable
/// record for that return; a team's event seen without any request says so instead.
#[test]
fn status_blames_an_unreadable_request_only_when_there_is_one() {
    let s = Setup::new(None);
    let req = Generator::new(SEED).request(0);
    let id = req.return_id.to_string();
    let decision = Sales::decide(&Sales::initial(&Sales::key(&req)), &req);
    let envelope = returns_eventlog::envelope::Envelope::new(
        wire::team_event_type::<Sales>(&decision),
        "/returns/sales",
    );
    s.append(
        &team_topic(Sales::NAME),
        returns_eventlog::OutRecord {
            key: id.clone(),
            headers: envelope.to_headers(),
            payload: wire::encode_team_event::<Sales>(&decision),
        },
    );
    let (ok, stdout, stderr) = s.returns(&["status", &id]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("return {id}: no request for it has been read")),
        "{stdout}"
    );
    assert!(!stdout.contains("could not be read"), "{stdout}");
    assert!(!stdout.contains("dlq"), "{stdout}");

    // Now a request for it that no build here reads.
    let mut v9 = wire::encode_refund_request(&req, &wire::refund_request_envelope(&req));
    for (name, value) in &mut v9.headers {
        if name == "ce_type" {
            *value = "returns.RefundRequest.v9".into();
        }
    }
    s.append(returns_eventlog::RETURN_ORDERS, v9);
    let (ok, stdout, stderr) = s.returns(&["status", &id]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("cannot be read by this view: unknown_version"),
        "{stdout}"
    );
    assert!(stdout.contains("returns dlq list"), "{stdout}");
    let json = s.json(&["status", &id, "--json"]);
    assert_eq!(
        json["unreadable_request"]["kind"], "unknown_version",
        "{json}"
    );
    assert_eq!(json["request"], Value::Null, "{json}");
}

/// An empty log: the views have nothing, and say so without failing.
#[test]
fn on_an_empty_log_stats_reports_zero_and_status_knows_no_return() {
    let s = Setup::new(None);
    let stats = s.json(&["stats", "--json"]);
    assert_eq!(stats["returns"], 0);
    let (ok, _, stderr) = s.returns(&[
        "status",
        &Generator::new(1).request(0).return_id.to_string(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("(0 returns are)"), "{stderr}");
}
