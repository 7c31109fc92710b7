//! `returns audit` and `returns replay` end to end, on the embedded log and on Kafka: the real
//! binary after a real demo run.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use returns_domain::{Generator, Sales, Team};
use returns_services::team::store::store_path;
use serde_json::Value;

const SEED: u64 = 11;

use crate::common;
use common::{Sandbox as Run, TEAMS};

/// A demo of `n` returns on a fresh data directory (and a fresh namespace on Kafka).
fn demo(kafka: bool, n: u64) -> Run {
    let run = if kafka {
        Run::kafka("audit")
    } else {
        Run::new(None)
    };
    let (ok, _, err) = run.returns(&["demo", "-n", &n.to_string(), "--seed", &SEED.to_string()]);
    assert!(ok, "demo failed: {err}");
    run
}

/// Append to the Sales topic a second copy of one of its events (as a relay that died between
/// append and delete would) and a record that is not an event at all.
fn disturb_the_sales_topic(run: &Run) {
    let url = run.log_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = returns_eventlog::open(&url).await.unwrap();
        let topic = returns_eventlog::team_topic("sales");
        let first = log.read(&topic, 0, 0, 1).await.unwrap().remove(0);
        let again = returns_eventlog::OutRecord {
            key: first.key.clone().unwrap(),
            headers: first.headers.clone(),
            payload: first.payload.clone(),
        };
        let garbage = returns_eventlog::OutRecord {
            key: "garbage".into(),
            headers: vec![],
            payload: b"not an event".to_vec(),
        };
        log.append(&topic, vec![again, garbage]).await.unwrap();
    });
}

fn replay_matches_the_live_stores(run: &Run, n: u64) {
    disturb_the_sales_topic(run);
    let reports = run.json(&["replay", "--json"]);
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 4);
    let orders: BTreeSet<_> = Generator::new(SEED)
        .requests(0..n)
        .map(|r| r.order_id)
        .collect();
    for r in reports {
        let team = r["team"].as_str().unwrap();
        assert_eq!(r["live_hash"], r["replay_hash"], "{team}: {r}");
        assert_eq!(r["differing_keys"], 0, "{team}");
        assert_eq!(r["events"], n, "{team}: one event per return");
        let extra = u64::from(team == "sales");
        assert_eq!(r["duplicates"], extra, "{team}: the copy is folded once");
        assert_eq!(r["unreadable"], extra, "{team}: the garbage is skipped");
        assert_eq!(r["missing"], 0, "{team}");
        assert_eq!(r["live_outbox"], 0, "{team}");
        assert!(r["events_per_sec"].as_f64().unwrap() > 0.0);
        if team == "sales" {
            assert_eq!(r["keys"], orders.len() as u64, "one state row per order");
        }
    }

    // Change one order's state in the live Sales store: the replay must notice, name the key,
    // and fail.
    let live = store_path(&run.data, "sales");
    let conn = rusqlite::Connection::open(&live).unwrap();
    let key: String = conn
        .query_row("SELECT key FROM state ORDER BY key LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute(
        "UPDATE state SET value = '{\"refunded_by\":null,\"refunded\":null}' WHERE key = ?1",
        [&key],
    )
    .unwrap();
    drop(conn);
    let (ok, out, err) = run.returns(&["replay", "sales"]);
    assert!(!ok, "a tampered store must fail the replay: {out}");
    assert!(
        err.contains("differs from the live store for: sales"),
        "{err}"
    );
    assert!(out.contains(&key), "the differing key is named: {out}");
}

fn audit_shows_each_return_across_every_team(run: &Run, n: u64) {
    let generator = Generator::new(SEED);
    // A return whose order was refunded before: Sales must show the rejection.
    let (repeat, _) = (1..n)
        .map(|i| (i, generator.request(i)))
        .find(|(i, r)| generator.requests(0..*i).any(|e| e.order_id == r.order_id))
        .expect("about 2% of returns repeat an order");
    for index in [0, n / 2, repeat] {
        let req = generator.request(index);
        let id = req.return_id.to_string();
        let trail = run.json(&["audit", &id, "--json"]);
        let trail = trail.as_array().unwrap();
        assert_eq!(
            trail.len(),
            5,
            "a request and one event per team: {trail:?}"
        );
        let request = &trail[0];
        assert_eq!(request["team"], "user-support");
        assert_eq!(request["topic"], "returnOrders");
        assert_eq!(request["correlation_id"], id.as_str());
        let teams: BTreeSet<&str> = trail[1..]
            .iter()
            .map(|e| {
                assert_eq!(e["causation_id"], request["event_id"], "{e}");
                assert_eq!(e["correlation_id"], id.as_str());
                e["team"].as_str().unwrap()
            })
            .collect();
        assert_eq!(teams, TEAMS.into_iter().collect());
        // What the trail says Sales did is what the Sales store holds for this return.
        let sales = trail[1..].iter().find(|e| e["team"] == "sales").unwrap();
        let effect = sales_effects(&run.data)[&id].clone();
        assert_eq!(sales["data"], effect);
        if index == repeat {
            // Two returns claim this order: whichever Sales saw first got the refund, and the
            // trail of the other shows the rejection.
            let claims: Vec<Value> = (0..n)
                .map(|i| generator.request(i))
                .filter(|r| r.order_id == req.order_id)
                .map(|r| {
                    let trail = run.json(&["audit", &r.return_id.to_string(), "--json"]);
                    let sales = trail
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|e| e["team"] == "sales");
                    sales.unwrap().clone()
                })
                .collect();
            assert!(claims.len() >= 2);
            let refunded = claims
                .iter()
                .filter(|e| e["data"]["type"] == "OrderRefunded")
                .count();
            assert_eq!(refunded, 1, "{claims:?}");
            for e in claims
                .iter()
                .filter(|e| e["data"]["type"] != "OrderRefunded")
            {
                assert_eq!(e["data"]["type"], "RefundRejected");
                let outcome = e["outcome"].as_str().unwrap();
                assert!(
                    outcome.contains("rejected: OrderAlreadyRefunded"),
                    "{outcome}"
                );
            }
        }
    }

    // One team's own log: every decision it made, oldest first.
    let log = run.json(&["audit", "--team", "inventory", "--limit", "0", "--json"]);
    let log = log.as_array().unwrap();
    assert_eq!(log.len() as u64, n);
    let parse = |e: &Value| {
        let t = e["time"].as_str().unwrap();
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let times: Vec<_> = log.iter().map(parse).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let last_two = run.json(&["audit", "--team", "inventory", "--limit", "2", "--json"]);
    assert_eq!(last_two.as_array().unwrap()[..], log[log.len() - 2..]);
    let future = run.json(&[
        "audit",
        "--team",
        "inventory",
        "--since",
        "2100-01-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(future.as_array().unwrap().len(), 0);
    // User Support's own log: the requests it published to returnOrders.
    let requests = run.json(&["audit", "--team", "user-support", "--limit", "0", "--json"]);
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len() as u64, n);
    assert!(requests
        .iter()
        .all(|e| e["team"] == "user-support" && e["topic"] == "returnOrders"));

    let unknown = uuid::Uuid::new_v4().to_string();
    let (ok, _, err) = run.returns(&["audit", &unknown]);
    assert!(!ok);
    assert!(err.contains("is not on"), "{err}");
    let (ok, _, err) = run.returns(&["audit", "not-a-return"]);
    assert!(!ok);
    assert!(err.contains("not a return id"), "{err}");
}

/// Every Sales effect, by return id, as the event's JSON.
fn sales_effects(data: &Path) -> HashMap<String, Value> {
    let conn = rusqlite::Connection::open(store_path(data, Sales::NAME)).unwrap();
    let mut stmt = conn
        .prepare("SELECT return_id, event FROM effects")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    rows.map(|r| {
        let (id, event) = r.unwrap();
        (id, serde_json::from_str(&event).unwrap())
    })
    .collect()
}

/// Before anything is published, `returns audit --team user-support` says how User Support
/// publishes, not to run it as a team.
#[test]
fn audit_of_user_support_before_any_request_names_the_commands_that_publish() {
    let run = Run::new(None);
    let (ok, _, err) = run.returns(&["audit", "--team", "user-support"]);
    assert!(!ok);
    assert!(
        err.contains("returns publish") && err.contains("returns serve"),
        "{err}"
    );
    assert!(!err.contains("returns run"), "{err}");
}

#[test]
fn on_the_embedded_log_replay_rebuilds_every_team_and_audit_tells_each_story() {
    let run = demo(false, 2_000);
    audit_shows_each_return_across_every_team(&run, 2_000);
    replay_matches_the_live_stores(&run, 2_000);
}

#[test]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
fn on_kafka_replay_rebuilds_every_team_and_audit_tells_each_story() {
    let run = demo(true, 2_000);
    audit_shows_each_return_across_every_team(&run, 2_000);
    replay_matches_the_live_stores(&run, 2_000);
}
