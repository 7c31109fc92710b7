//! The HTTP API of the real `returns serve`, and `docs/openapi.json` checked against it.
//!
//! A fresh server on a free loopback port takes a few returns over `POST /returns`; the test
//! polls `GET /returns/{id}` until all four reacting teams have decided, `GET /teams` until
//! every team's lag is 0, and checks `/stats` totals, `/metrics` (parsed, numbers equal to
//! `/teams`) and `/healthz`. Every answer the test sees is validated against the schema the
//! OpenAPI file documents for its path, method and status; every documented operation is
//! routed, and every route the server has ([`returns_http::ROUTES`]) is documented. While the
//! log cannot be opened, the routes that need it answer 503 in their documented shape.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use returns_domain::Generator;
use returns_eventlog::conformance::unique;
use returns_eventlog::wire::v2::RefundRequestV2;
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

    // Every team's lag reaches 0; each handled every return once in this process.
    let teams = server.poll("a team's lag never reached 0", |_| {
        let a = get(&addr, "/teams");
        assert_eq!(a.status, 200, "{}", a.text);
        let rows = a.body["teams"].as_array()?;
        rows.iter()
            .all(|t| t["lag"] == 0 && t["processed"] == RETURNS)
            .then_some(a.clone())
    });
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

    // The file and the server agree: every documented operation is routed, every route is
    // documented, and another method on a documented path is a JSON 405.
    let routed: BTreeSet<(String, String)> = returns_http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(spec.operations(), routed, "docs/openapi.json vs the routes");
    for (method, path) in spec.operations() {
        let concrete = path.replace("{id}", &ids[0]);
        let a = call(&addr, &method, &concrete, "application/json", &body(0));
        assert!(
            ![404, 405].contains(&a.status),
            "{method} {path} is documented but not routed: {} {}",
            a.status,
            a.text
        );
        let other = if method == "GET" { "DELETE" } else { "PUT" };
        let a = call(&addr, other, &concrete, "application/json", "");
        assert_eq!(a.status, 405, "{other} {path}: {}", a.text);
    }
    spec.validate_all();

    assert!(
        server.terminate(),
        "exit 0 on SIGTERM:\n{}",
        server.output()
    );
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
    let stats = get(&addr, "/stats");
    assert_eq!((stats.status, &stats.body["returns"]), (200, &0.into()));
    spec.saw("GET", "/stats", &stats);
    spec.validate_all();
}
