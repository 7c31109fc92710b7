//! The HTTP API of the real `returns serve`, and `docs/openapi.json` checked against it.
//!
//! A fresh server on a free loopback port takes a few returns over `POST /returns`; the test
//! polls `GET /returns/{id}` until all four reacting teams have decided, `GET /teams` until
//! every team's lag is 0, and checks `/stats` totals, `/metrics` (parsed, numbers equal to
//! `/teams`) and `/healthz`. Every answer the test sees is validated against the schema the
//! OpenAPI file documents for its path, method and status; every documented operation is
//! routed, and every route the server has ([`returns_http::ROUTES`]) is documented. While the
//! log cannot be opened, the routes that need it answer 503 in their documented shape.
//!
//! The dashboard's side too: its page and files, `GET /events` (the first `teams` and
//! `records` events, parsed), `GET /samples` (each sample a body `POST /returns` accepts),
//! Manufacturing taken offline (its lag grows alone) and back (it catches up), and
//! `GET /compare` before and after a real `returns compare` on the same data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use returns_domain::Generator;
use returns_eventlog::conformance::unique;
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_services::{open_store_view, TeamName};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);
const REACTING: [&str; 4] = ["sales", "inventory", "manufacturing", "accounting"];
const RETURNS: u64 = 6;

/// One answer: status, content type, body (JSON when it parses, else a string).
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

/// The OpenAPI file, and every answer seen, to validate against it.
struct Spec {
    doc: Value,
    seen: Vec<(&'static str, &'static str, Answer)>,
}

impl Spec {
    fn load() -> Spec {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let text = std::fs::read_to_string(&path).expect("docs/openapi.json");
        Spec {
            doc: serde_json::from_str(&text).expect("docs/openapi.json is JSON"),
            seen: Vec::new(),
        }
    }

    fn operations(&self) -> BTreeSet<(String, String)> {
        let paths = self.doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, ops)| {
                let ops = ops.as_object().expect("path item");
                ops.keys()
                    .map(|m| (m.to_uppercase(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Remember `answer` to `method path` (the documented path template) for validation.
    fn saw(&mut self, method: &'static str, path: &'static str, answer: &Answer) {
        self.seen.push((method, path, answer.clone()));
    }

    /// Every answer seen fits what the file documents for its status.
    fn validate_all(&self) {
        assert!(!self.seen.is_empty());
        let mut checked = BTreeSet::new();
        for (method, path, answer) in &self.seen {
            let op = &self.doc["paths"][*path][method.to_lowercase()];
            assert!(op.is_object(), "{method} {path} is not documented");
            let response = &op["responses"][answer.status.to_string()];
            assert!(
                response.is_object(),
                "{method} {path} answered {} ({}), which is not documented",
                answer.status,
                answer.text
            );
            let content = response["content"].as_object().expect("content");
            let (media, schema) = content
                .iter()
                .find(|(media, _)| answer.content_type.starts_with(media.as_str()))
                .unwrap_or_else(|| {
                    panic!(
                        "{method} {path} {}: content type {} is not documented",
                        answer.status, answer.content_type
                    )
                });
            if media == "application/json" {
                let mut schema = schema["schema"].clone();
                schema["components"] = self.doc["components"].clone();
                let validator =
                    jsonschema::draft202012::new(&schema).expect("a valid response schema");
                let errors: Vec<String> = validator
                    .iter_errors(&answer.body)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{method} {path} {}: {errors:#?}\n{}",
                    answer.status,
                    answer.text
                );
            }
            checked.insert((*method, *path, answer.status));
        }
        eprintln!("validated {} answers: {checked:?}", self.seen.len());
    }
}

/// One HTTP/1.1 call on loopback.
fn call(addr: &str, method: &str, path: &str, content_type: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let status = raw[9..12].parse().expect("a status");
    let (head, text) = raw.split_once("\r\n\r\n").expect("a body");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
        text: text.to_string(),
    }
}

fn get(addr: &str, path: &str) -> Answer {
    call(addr, "GET", path, "application/json", "")
}

fn post(addr: &str, path: &str) -> Answer {
    call(addr, "POST", path, "application/json", "")
}

/// The first `teams` and the first `records` event of `GET /events`.
fn first_live_events(addr: &str) -> (Value, Value) {
    let mut seen = live_events(addr, &["teams", "records"]);
    (
        seen.remove("teams").unwrap(),
        seen.remove("records").unwrap(),
    )
}

/// The first event of each name in `wanted` from `GET /events`, as JSON, read from the chunked
/// stream, which is then dropped.
fn live_events(addr: &str, wanted: &[&str]) -> BTreeMap<String, Value> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header line");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    // Undo the chunking, then split the text into events (blank-line separated).
    let (mut text, mut seen) = (String::new(), BTreeMap::new());
    while !wanted.iter().all(|name| seen.contains_key(*name)) {
        let mut size = String::new();
        reader.read_line(&mut size).expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        assert!(size > 0, "the stream ended early: {text}");
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).expect("a chunk");
        text.push_str(std::str::from_utf8(&chunk[..size]).expect("UTF-8"));
        while let Some((event, rest)) = text.split_once("\n\n") {
            let (mut name, mut data) = ("message", String::new());
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if let Ok(json) = serde_json::from_str::<Value>(&data) {
                seen.entry(name.to_string()).or_insert(json);
            }
            text = rest.to_string();
        }
    }
    seen
}

/// `returns serve` on a free loopback port, killed if the test ends first.
struct Server {
    child: Child,
    stderr: PathBuf,
    addr: String,
}

impl Server {
    fn start(log: &str, data: &Path) -> Server {
        let stderr = data.with_file_name("serve.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_returns"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log", log, "--data"])
            .arg(data)
            .env_remove("RETURNS_LOG")
            .env_remove("RETURNS_TOKEN")
            .env_remove("RETURNS_LISTEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start returns serve");
        let mut server = Server {
            child,
            stderr,
            addr: String::new(),
        };
        // "listening on http://127.0.0.1:PORT: POST /returns ..."
        server.addr = server.poll("never said where it listens", |s| {
            if let Some(status) = s.child.try_wait().unwrap() {
                panic!("exited ({status}):\n{}", s.output());
            }
            let out = s.output();
            let line = out.lines().find(|l| l.contains("listening on http://"))?;
            let rest = line.split("http://").nth(1)?;
            Some(rest.split(": ").next()?.to_string())
        });
        server
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn poll<T>(&mut self, what: &str, mut ready: impl FnMut(&mut Self) -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(answer) = ready(self) {
                return answer;
            }
            assert!(Instant::now() < deadline, "{what}:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then its exit status.
    fn terminate(&mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.poll("still running after SIGTERM", |s| {
            s.child.try_wait().unwrap().map(|status| status.success())
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many effects `team`'s store under `data` has for each return.
fn effects(data: &Path, team: TeamName) -> BTreeMap<String, u64> {
    open_store_view(team, data)
        .unwrap_or_else(|e| panic!("open {}'s store: {e}", team.as_str()))
        .effects_per_return()
        .unwrap_or_else(|e| panic!("read {}'s effects: {e}", team.as_str()))
        .into_iter()
        .collect()
}

/// Does every one of `teams` have an effect for every one of `ids`? (What a wait polls for.)
fn have_effects(data: &Path, teams: &[TeamName], ids: &BTreeSet<String>) -> bool {
    teams.iter().all(|team| {
        let effects = effects(data, *team);
        ids.iter().all(|id| effects.contains_key(id))
    })
}

/// Each of `teams` has exactly one effect for each of `ids` in its store, and none for any
/// other return.
fn assert_one_effect_each(data: &Path, teams: &[TeamName], ids: &BTreeSet<String>) {
    let expected: BTreeMap<String, u64> = ids.iter().map(|id| (id.clone(), 1)).collect();
    for team in teams {
        assert_eq!(
            effects(data, *team),
            expected,
            "{}'s store: one effect for each return sent, and none for any other",
            team.as_str()
        );
    }
}

/// `GET /returns/{id}`'s row for `team`.
fn team_row<'a>(answer: &'a Answer, team: &str) -> &'a Value {
    answer.body["teams"]
        .as_array()
        .and_then(|teams| teams.iter().find(|t| t["team"] == team))
        .unwrap_or_else(|| panic!("no {team} row: {}", answer.text))
}

fn body(i: u64) -> String {
    serde_json::to_string(&RefundRequestV2::from(&Generator::new(17).request(i))).unwrap()
}

/// `name{team="x"} value` lines of a Prometheus text answer, checking that every metric has
/// HELP and TYPE lines before its samples.
fn parse_metrics(text: &str) -> BTreeMap<(String, String), u64> {
    let mut described = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (what, name, rest) = (words.next(), words.next(), words.next());
            let (what, name) = (what.unwrap(), name.expect("a metric name"));
            assert!(rest.is_some_and(|r| !r.is_empty()), "{line}");
            if what == "TYPE" {
                assert!(matches!(rest, Some("counter" | "gauge")), "{line}");
            }
            described
                .entry(name.to_string())
                .or_insert_with(BTreeSet::new)
                .insert(what.to_string());
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name{labels} value");
        let (name, labels) = series.split_once('{').expect("labels");
        let team = labels
            .strip_prefix("team=\"")
            .and_then(|l| l.strip_suffix("\"}"))
            .unwrap_or_else(|| panic!("one team label: {line}"));
        assert_eq!(
            described.get(name).map(|d| d.len()),
            Some(2),
            "HELP and TYPE before {line}"
        );
        if name.ends_with("_total") {
            assert!(text.contains(&format!("# TYPE {name} counter")));
        }
        samples.insert(
            (name.to_string(), team.to_string()),
            value.parse().expect("an integer value"),
        );
    }
    samples
}

fn the_api_answers_and_fits_its_openapi_file(log: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut spec = Spec::load();
    let mut server = Server::start(log, &data);
    let addr = server.addr.clone();

    // Healthy once the log is open.
    let health = server.poll("/healthz never said ok", |_| {
        let a = get(&addr, "/healthz");
        (a.status == 200).then_some(a)
    });
    assert_eq!(health.body["status"], "ok", "{}", health.text);
    assert!(health.body["log"].as_str().unwrap().contains("://"));
    spec.saw("GET", "/healthz", &health);

    // Returns in, one of them twice, and bad bodies.
    let mut ids = Vec::new();
    for i in 0..RETURNS {
        let a = call(&addr, "POST", "/returns", "application/json", &body(i));
        assert_eq!(a.status, 202, "{}", a.text);
        ids.push(a.body["return_id"].as_str().unwrap().to_string());
        spec.saw("POST", "/returns", &a);
    }
    let again = call(&addr, "POST", "/returns", "application/json", &body(2));
    assert_eq!(
        (again.status, &again.body["duplicate"]),
        (200, &true.into())
    );
    spec.saw("POST", "/returns", &again);
    for (content_type, bad, status) in [
        ("application/json", "{\"x\":1}", 422),
        ("application/json", "not json", 400),
        ("text/plain", &body(0) as &str, 415),
    ] {
        let a = call(&addr, "POST", "/returns", content_type, bad);
        assert_eq!(a.status, status, "{}", a.text);
        spec.saw("POST", "/returns", &a);
    }

    // A malformed id, an unknown one.
    let a = get(&addr, "/returns/not-a-return");
    assert_eq!(
        (a.status, &a.body["error"]["kind"]),
        (422, &"invalid_field".into())
    );
    spec.saw("GET", "/returns/{id}", &a);
    let a = get(&addr, &format!("/returns/{}", uuid_like()));
    assert_eq!(
        (a.status, &a.body["error"]["kind"]),
        (404, &"return_not_found".into()),
        "{}",
        a.text
    );
    spec.saw("GET", "/returns/{id}", &a);

    // Every return reaches all four reacting teams; its timeline holds the request and each
    // team's event, caused by the request.
    for id in &ids {
        let a = server.poll(&format!("{id} never complete"), |_| {
            let a = get(&addr, &format!("/returns/{id}"));
            assert_eq!(a.status, 200, "{}", a.text);
            (a.body["complete"] == true).then_some(a)
        });
        assert_eq!(a.body["return_id"], id.as_str());
        let teams: Vec<&str> = a.body["teams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["team"].as_str().unwrap())
            .collect();
        assert_eq!(&teams[..4], REACTING, "{}", a.text);
        assert!(a.body["teams"].as_array().unwrap()[..4]
            .iter()
            .all(|t| t["status"] != "pending"));
        let request_id = a.body["request"]["event_id"].as_str().unwrap().to_string();
        let timeline = a.body["timeline"].as_array().unwrap();
        assert_eq!(timeline[0]["team"], "user-support", "{}", a.text);
        assert_eq!(timeline[0]["event_id"], request_id.as_str());
        for team in REACTING {
            let entry = server.poll(&format!("{team}'s event about {id} on its topic"), |_| {
                let a = get(&addr, &format!("/returns/{id}"));
                let timeline = a.body["timeline"].as_array()?.clone();
                timeline.into_iter().find(|e| e["team"] == team)
            });
            assert_eq!(entry["causation_id"], request_id.as_str());
        }
        spec.saw("GET", "/returns/{id}", &a);
    }

    // Every team's lag reaches 0; each handled every return once: its store has one effect
    // for each return sent, and none for any other.
    let sent: BTreeSet<String> = ids.iter().cloned().collect();
    let teams = server.poll("a team's lag never reached 0", |_| {
        let a = get(&addr, "/teams");
        assert_eq!(a.status, 200, "{}", a.text);
        let rows = a.body["teams"].as_array()?;
        (rows.iter().all(|t| t["lag"] == 0) && have_effects(&data, &TeamName::EVERY, &sent))
            .then_some(a.clone())
    });
    assert_one_effect_each(&data, &TeamName::EVERY, &sent);
    spec.saw("GET", "/teams", &teams);
    assert_eq!(teams.body["end"], RETURNS);
    let rows = teams.body["teams"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|t| t["team"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "sales",
            "inventory",
            "manufacturing",
            "accounting",
            "quality"
        ]
    );
    for t in rows {
        assert_eq!(
            (&t["position"], &t["duplicates"], &t["dead_lettered"]),
            (&RETURNS.into(), &0.into(), &0.into()),
            "{t}"
        );
    }

    // The analytics view has every return.
    let stats = server.poll("/stats never counted every return", |_| {
        let a = get(&addr, "/stats");
        assert_eq!(a.status, 200, "{}", a.text);
        (a.body["returns"] == RETURNS).then_some(a)
    });
    let per_model: u64 = stats.body["returns_by_model_month"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["returns"].as_u64().unwrap())
        .sum();
    assert_eq!(per_model, RETURNS);
    let refunds: u64 = stats.body["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    let sales = &rows[0];
    assert_eq!(refunds, RETURNS - sales["rejected"].as_u64().unwrap());
    spec.saw("GET", "/stats", &stats);

    // /metrics says what /teams says (the counts no longer move).
    let metrics = get(&addr, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .content_type
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        metrics.content_type
    );
    let samples = parse_metrics(&metrics.text);
    for t in rows {
        let team = t["team"].as_str().unwrap().to_string();
        for (metric, field) in [
            ("returns_team_handled_total", "processed"),
            ("returns_team_rejected_total", "rejected"),
            ("returns_team_dead_lettered_total", "dead_lettered"),
            ("returns_team_duplicates_total", "duplicates"),
            ("returns_team_lag", "lag"),
        ] {
            assert_eq!(
                samples.get(&(metric.to_string(), team.clone())).copied(),
                t[field].as_u64(),
                "{metric} of {team}:\n{}",
                metrics.text
            );
        }
    }
    assert_eq!(samples.len(), 5 * 5);
    spec.saw("GET", "/metrics", &metrics);

    dashboard_side(&mut server, &mut spec, &ids, &data);

    // The file and the server agree: every documented operation is routed, every route is
    // documented, and another method on a documented path is a JSON 405.
    let routed: BTreeSet<(String, String)> = returns_http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(spec.operations(), routed, "docs/openapi.json vs the routes");
    for (method, path) in spec.operations() {
        let concrete = path
            .replace("{id}", &ids[0])
            .replace("{team}", "quality")
            .replace("{file}", "app.js");
        let other = if method == "GET" { "DELETE" } else { "PUT" };
        let a = call(&addr, other, &concrete, "application/json", "");
        assert_eq!(a.status, 405, "{other} {path}: {}", a.text);
        if path == "/events" {
            continue; // a stream that does not end: read by first_live_events
        }
        let a = call(&addr, &method, &concrete, "application/json", &body(0));
        assert!(
            !["not_found", "method_not_allowed"]
                .contains(&a.body["error"]["kind"].as_str().unwrap_or("")),
            "{method} {path} is documented but not routed: {} {}",
            a.status,
            a.text
        );
    }
    spec.validate_all();

    assert!(
        server.terminate(),
        "exit 0 on SIGTERM:\n{}",
        server.output()
    );
}

/// The dashboard's routes, after the first returns are all handled.
fn dashboard_side(server: &mut Server, spec: &mut Spec, ids: &[String], data: &Path) {
    let addr = server.addr.clone();

    // The page and its files, compiled in.
    let page = get(&addr, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.text.contains("/assets/app.js"), "{}", page.text);
    spec.saw("GET", "/", &page);
    for (file, kind) in [("app.css", "text/css"), ("app.js", "text/javascript")] {
        let a = get(&addr, &format!("/assets/{file}"));
        assert_eq!(a.status, 200, "{file}");
        assert!(
            a.content_type.starts_with(kind),
            "{file}: {}",
            a.content_type
        );
        spec.saw("GET", "/assets/{file}", &a);
    }
    let missing = get(&addr, "/assets/nothing.js");
    assert_eq!(
        (missing.status, &missing.body["error"]["kind"]),
        (404, &"not_found".into())
    );
    spec.saw("GET", "/assets/{file}", &missing);

    // The live stream: the teams' rows now, then the latest of every lane, read from the log.
    // The view reads the teams' topics a moment after the teams commit: a new listener may
    // find a lane still short, and a later one must find them all full.
    let all: BTreeSet<String> = ids.iter().cloned().collect();
    let lanes = [
        "requests",
        "sales",
        "inventory",
        "manufacturing",
        "accounting",
        "quality",
    ];
    let lane = |records: &Value, name: &str| -> BTreeSet<String> {
        records["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["lane"] == name)
            .map(|r| r["return_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (teams, records) = server.poll("every lane to show every return", |_| {
        let (teams, records) = first_live_events(&addr);
        lanes
            .iter()
            .all(|name| lane(&records, name) == all)
            .then_some((teams, records))
    });
    assert_eq!(teams["teams"].as_array().unwrap().len(), 5, "{teams}");
    assert!(teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["online"] == true));
    assert_eq!(
        records["records"].as_array().unwrap().len(),
        lanes.len() * all.len(),
        "one record per lane and return: {records}"
    );
    for r in records["records"].as_array().unwrap() {
        let expected = if r["lane"] == "requests" {
            "request"
        } else {
            "accepted|rejected"
        };
        assert!(expected.contains(r["outcome"].as_str().unwrap()), "{r}");
        assert!(r["time"].is_string() && r["summary"].is_string(), "{r}");
    }

    // Samples: new, valid requests.
    let samples = get(&addr, "/samples?count=3");
    assert_eq!(samples.status, 200, "{}", samples.text);
    spec.saw("GET", "/samples", &samples);
    let requests = samples.body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3);
    let mut sent: BTreeSet<String> = ids.iter().cloned().collect();
    for request in requests {
        let a = call(
            &addr,
            "POST",
            "/returns",
            "application/json",
            &request.to_string(),
        );
        assert_eq!(
            (a.status, &a.body["duplicate"]),
            (202, &false.into()),
            "{}",
            a.text
        );
        sent.insert(a.body["return_id"].as_str().unwrap().to_string());
    }
    for bad in ["0", "51", "x"] {
        let a = get(&addr, &format!("/samples?count={bad}"));
        assert_eq!(
            (a.status, &a.body["error"]["field"]),
            (422, &"count".into()),
            "{}",
            a.text
        );
        spec.saw("GET", "/samples", &a);
    }
    let rows = |a: &Answer| -> BTreeMap<String, Value> {
        a.body["teams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["team"].as_str().unwrap().to_string(), t.clone()))
            .collect()
    };
    let addr2 = addr.clone();
    server.poll("the samples handled by every team", |_| {
        let a = get(&addr2, "/teams");
        (rows(&a).values().all(|t| t["lag"] == 0) && have_effects(data, &TeamName::EVERY, &sent))
            .then_some(())
    });
    assert_one_effect_each(data, &TeamName::EVERY, &sent);

    // Manufacturing offline: its lag grows, alone; the others carry on.
    let off = post(&addr, "/teams/manufacturing/offline");
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(
        (&off.body["online"], &off.body["changed"]),
        (&false.into(), &true.into())
    );
    spec.saw("POST", "/teams/{team}/offline", &off);
    let again = post(&addr, "/teams/manufacturing/offline");
    assert_eq!(again.body["changed"], false, "{}", again.text);
    let unknown = post(&addr, "/teams/marketing/offline");
    assert_eq!(
        (unknown.status, &unknown.body["error"]["kind"]),
        (404, &"team_not_found".into())
    );
    spec.saw("POST", "/teams/{team}/offline", &unknown);
    const MORE: u64 = 4;
    let mut while_offline = BTreeSet::new();
    for i in 0..MORE {
        let a = call(
            &addr,
            "POST",
            "/returns",
            "application/json",
            &body(100 + i),
        );
        assert_eq!(a.status, 202, "{}", a.text);
        while_offline.insert(a.body["return_id"].as_str().unwrap().to_string());
    }
    let everything: BTreeSet<String> = sent.union(&while_offline).cloned().collect();
    let others: Vec<TeamName> = TeamName::EVERY
        .into_iter()
        .filter(|t| *t != TeamName::Manufacturing)
        .collect();
    let while_off = server.poll(
        "the others to handle the returns while Manufacturing is offline",
        |_| {
            let a = get(&addr2, "/teams");
            let rows = rows(&a);
            let others_done = rows
                .iter()
                .filter(|(team, _)| *team != "manufacturing")
                .all(|(_, t)| t["lag"] == 0)
                && have_effects(data, &others, &everything);
            (others_done && rows["manufacturing"]["lag"] == MORE).then_some(a)
        },
    );
    let m = &rows(&while_off)["manufacturing"];
    assert_eq!(m["online"], false, "{m}");
    assert!(m["changed_at"].is_string(), "{m}");
    spec.saw("GET", "/teams", &while_off);
    // The others handled every return; Manufacturing none of those sent while it is offline,
    // and each of those says so: Manufacturing pending, the return not complete.
    assert_one_effect_each(data, &others, &everything);
    assert_one_effect_each(data, &[TeamName::Manufacturing], &sent);
    for id in &while_offline {
        let a = get(&addr, &format!("/returns/{id}"));
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            (
                &team_row(&a, "manufacturing")["status"],
                &a.body["complete"]
            ),
            (&"pending".into(), &false.into()),
            "{id} while Manufacturing is offline: {}",
            a.text
        );
        spec.saw("GET", "/returns/{id}", &a);
    }

    // Back online: it catches up from its committed position.
    let on = post(&addr, "/teams/manufacturing/online");
    assert_eq!(
        (on.status, &on.body["online"]),
        (200, &true.into()),
        "{}",
        on.text
    );
    spec.saw("POST", "/teams/{team}/online", &on);
    server.poll("Manufacturing to catch up", |_| {
        let a = get(&addr2, "/teams");
        (rows(&a)
            .values()
            .all(|t| t["lag"] == 0 && t["online"] == true)
            && have_effects(data, &[TeamName::Manufacturing], &everything))
        .then_some(())
    });
    assert_one_effect_each(data, &TeamName::EVERY, &everything);
    for id in &everything {
        let a = server.poll(
            &format!("{id} never complete once Manufacturing is back"),
            |_| {
                let a = get(&addr2, &format!("/returns/{id}"));
                assert_eq!(a.status, 200, "{}", a.text);
                (a.body["complete"] == true).then_some(a)
            },
        );
        assert_eq!(a.body["return_id"], id.as_str(), "{}", a.text);
        assert!(
            a.body["request"]["event_id"].is_string(),
            "{id}: its request: {}",
            a.text
        );
        assert_ne!(
            team_row(&a, "manufacturing")["status"],
            "pending",
            "{}",
            a.text
        );
    }

    // No comparison yet; then a real one on the same data directory.
    let none = get(&addr, "/compare");
    assert_eq!(
        (none.status, &none.body["error"]["kind"]),
        (404, &"no_comparison".into()),
        "{}",
        none.text
    );
    assert!(
        none.text.contains("returns compare"),
        "a hint: {}",
        none.text
    );
    spec.saw("GET", "/compare", &none);
    let no_chart = get(&addr, "/compare/chart.svg");
    assert_eq!(no_chart.status, 404);
    spec.saw("GET", "/compare/chart.svg", &no_chart);
    let compared = Command::new(env!("CARGO_BIN_EXE_returns"))
        .args([
            "compare",
            "--returns",
            "20",
            "--rate",
            "400",
            "--settle-secs",
            "30",
            "--data",
        ])
        .arg(data)
        .env_remove("RETURNS_LOG")
        .output()
        .expect("run returns compare");
    assert!(
        compared.status.success(),
        "{}",
        String::from_utf8_lossy(&compared.stderr)
    );
    let latest = get(&addr, "/compare");
    assert_eq!(latest.status, 200, "{}", latest.text);
    assert_eq!(latest.body["returns"], 20);
    assert_eq!(
        latest.body["event_sourced"]["complete"], 20,
        "{}",
        latest.text
    );
    spec.saw("GET", "/compare", &latest);
    let chart = get(&addr, "/compare/chart.svg");
    assert_eq!(chart.status, 200);
    assert!(chart.text.starts_with("<svg"), "{}", chart.text);
    spec.saw("GET", "/compare/chart.svg", &chart);
}

/// A return id nobody published.
fn uuid_like() -> String {
    "0f8e4c2a-6b1d-4e7f-9a3c-5d2b8e1f7a64".to_string()
}

#[test]
fn the_api_on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    the_api_answers_and_fits_its_openapi_file(&url);
}

#[test]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
fn the_api_on_kafka() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP")
        .expect("RETURNS_KAFKA_BOOTSTRAP names the broker (bash scripts/test.sh sets it)");
    let url = format!("kafka://{bootstrap}?namespace={}", unique("serve-api"));
    the_api_answers_and_fits_its_openapi_file(&url);
}

/// While the log cannot be opened, returns are accepted, and the routes that need the log
/// answer 503 in their documented shape.
#[test]
fn the_read_routes_say_503_while_the_log_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the log's directory should be: the log cannot be opened.
    let blocker = dir.path().join("blocked");
    std::fs::write(&blocker, "not a directory").unwrap();
    let url = format!("sqlite://{}", blocker.join("log.db").display());
    let data = dir.path().join("data");
    let mut spec = Spec::load();
    let server = Server::start(&url, &data);
    let addr = server.addr.clone();

    let accepted = call(&addr, "POST", "/returns", "application/json", &body(0));
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    spec.saw("POST", "/returns", &accepted);
    let id = accepted.body["return_id"].as_str().unwrap();
    for (path, template) in [
        ("/healthz".to_string(), "/healthz"),
        ("/teams".to_string(), "/teams"),
        ("/metrics".to_string(), "/metrics"),
        (format!("/returns/{id}"), "/returns/{id}"),
    ] {
        let a = get(&addr, &path);
        assert_eq!(a.status, 503, "{path}: {}", a.text);
        spec.saw("GET", template, &a);
    }
    // The live stream says so, instead of showing nothing as if it were live.
    let live = live_events(&addr, &["unavailable"]);
    assert_eq!(
        live["unavailable"]["error"]["kind"], "unavailable",
        "{live:?}"
    );
    assert!(!live.contains_key("teams"), "{live:?}");
    let stats = get(&addr, "/stats");
    assert_eq!((stats.status, &stats.body["returns"]), (200, &0.into()));
    spec.saw("GET", "/stats", &stats);
    spec.validate_all();
}
