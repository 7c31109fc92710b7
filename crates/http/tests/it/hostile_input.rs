//! Property tests of the HTTP edge: random bytes, random JSON and mutated valid bodies (fields
//! dropped, wrong types, repeated keys, huge strings, arrays for objects, unknown fields,
//! truncation, wrong content types), sent to User Support's intake and to every team's endpoint.
//! Every answer is a JSON 2xx or 4xx, never a 5xx; and a refused request leaves the endpoint's
//! store exactly as it was, row for row.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use proptest::prelude::*;
use returns_domain::Generator;
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_http::{intake_router, path, team_router, Intake, RETURNS_PATH};
use returns_services::{TeamFaultState, TeamName};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

/// One endpoint on its own data directory, and the file its store lives in.
struct Endpoint {
    uri: &'static str,
    router: Router,
    store: PathBuf,
    _dir: TempDir,
}

fn endpoints() -> Vec<Endpoint> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![Endpoint {
        uri: RETURNS_PATH,
        router: intake_router(Intake::open(dir.path()).unwrap()),
        store: dir.path().join("user-support.db"),
        _dir: dir,
    }];
    for team in TeamName::EVERY {
        let dir = tempfile::tempdir().unwrap();
        all.push(Endpoint {
            uri: path(team),
            router: team_router(team, dir.path(), TeamFaultState::none()).unwrap(),
            store: dir.path().join(format!("{}.db", team.as_str())),
            _dir: dir,
        });
    }
    all
}

/// Every row of every table of a store, as text.
fn contents(store: &PathBuf) -> BTreeMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|table| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let columns = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    (0..columns)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(|v| v.join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            (table, rows)
        })
        .collect()
}

/// One hostile call.
#[derive(Debug, Clone)]
struct Call {
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

/// Send `call` to every endpoint: a JSON 2xx or 4xx, and a store untouched by a 4xx.
fn check(runtime: &tokio::runtime::Runtime, endpoints: &[Endpoint], call: &Call) {
    for endpoint in endpoints {
        let before = contents(&endpoint.store);
        let mut request = Request::builder().method(Method::POST).uri(endpoint.uri);
        if let Some(content_type) = call.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Body::from(call.body.clone())).unwrap();
        let (status, json, body) = runtime.block_on(async {
            let response = endpoint.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let json = response.headers().get(header::CONTENT_TYPE).cloned();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, json, body)
        });
        let shown = String::from_utf8_lossy(&body);
        assert!(
            status.is_success() || status.is_client_error(),
            "{} answered {status}: {shown}",
            endpoint.uri
        );
        assert_eq!(
            json.as_ref().map(|v| v.as_bytes()),
            Some(&b"application/json"[..]),
            "{}",
            endpoint.uri
        );
        let parsed: Value = serde_json::from_slice(&body).expect("a JSON answer");
        if status.is_client_error() {
            assert!(parsed["error"]["kind"].is_string(), "{parsed}");
            assert_eq!(
                contents(&endpoint.store),
                before,
                "{} changed its store on {status}: {shown}",
                endpoint.uri
            );
        }
    }
}

fn valid(i: u64) -> Value {
    serde_json::to_value(RefundRequestV2::from(&Generator::new(17).request(i))).unwrap()
}

/// Every path in a valid body, objects included: `["reason", "defect"]`.
fn paths(value: &Value, prefix: &[String], out: &mut Vec<Vec<String>>) {
    if let Value::Object(fields) = value {
        for (name, v) in fields {
            let mut path = prefix.to_vec();
            path.push(name.clone());
            out.push(path.clone());
            paths(v, &path, out);
        }
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        6 => Just(Some("application/json")),
        1 => Just(Some("application/json; charset=utf-8")),
        1 => Just(Some("text/plain")),
        1 => Just(Some("application/x-www-form-urlencoded")),
        1 => Just(Some("")),
        1 => Just(None),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    None,
    Drop(usize),
    WrongType(usize, Value),
    Repeat(usize, Value),
    HugeString(usize, usize),
    ArrayForObject(usize),
    Unknown(String, Value),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::None),
        any::<usize>().prop_map(Mutation::Drop),
        (any::<usize>(), json_value()).prop_map(|(i, v)| Mutation::WrongType(i, v)),
        (any::<usize>(), json_leaf()).prop_map(|(i, v)| Mutation::Repeat(i, v)),
        (any::<usize>(), 0usize..200_000).prop_map(|(i, n)| Mutation::HugeString(i, n)),
        any::<usize>().prop_map(Mutation::ArrayForObject),
        ("[a-z_]{1,12}", json_leaf()).prop_map(|(k, v)| Mutation::Unknown(k, v)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// A valid body changed by `mutation`, as bytes.
fn mutate(i: u64, mutation: &Mutation) -> Vec<u8> {
    let mut body = valid(i);
    let mut all = Vec::new();
    paths(&body, &[], &mut all);
    let pick = |n: usize| all[n % all.len()].clone();
    fn parent<'a>(body: &'a mut Value, path: &[String]) -> &'a mut serde_json::Map<String, Value> {
        let mut at = body;
        for name in &path[..path.len() - 1] {
            at = &mut at[name.as_str()];
        }
        at.as_object_mut().unwrap()
    }
    let last = |path: &[String]| path.last().unwrap().clone();
    match mutation {
        Mutation::None => {}
        Mutation::Drop(n) => {
            let path = pick(*n);
            parent(&mut body, &path).remove(&last(&path));
        }
        Mutation::WrongType(n, v) => {
            let path = pick(*n);
            parent(&mut body, &path).insert(last(&path), v.clone());
        }
        Mutation::HugeString(n, len) => {
            let path = pick(*n);
            parent(&mut body, &path).insert(last(&path), Value::String("x".repeat(*len)));
        }
        Mutation::ArrayForObject(n) => {
            let objects: Vec<Vec<String>> = all
                .iter()
                .filter(|p| {
                    let mut at = &body;
                    for name in p.iter() {
                        at = &at[name.as_str()];
                    }
                    at.is_object()
                })
                .cloned()
                .collect();
            let path = &objects[n % objects.len()];
            let map = parent(&mut body, path);
            let fields = map[&last(path)]
                .as_object()
                .unwrap()
                .values()
                .cloned()
                .collect();
            map.insert(last(path), Value::Array(fields));
        }
        Mutation::Unknown(key, v) => {
            body.as_object_mut().unwrap().insert(key.clone(), v.clone());
        }
        Mutation::Repeat(n, v) => {
            // Text, since a map cannot hold a key twice: the key again, first in its object.
            let path = pick(*n);
            let text = body.to_string();
            let key = last(&path);
            let again = format!("\"{key}\":{v},");
            return match &path[..path.len() - 1] {
                [] => text.replacen('{', &format!("{{{again}"), 1),
                [outer] => text.replacen(
                    &format!("\"{outer}\":{{"),
                    &format!("\"{outer}\":{{{again}"),
                    1,
                ),
                _ => unreachable!("the body nests one level"),
            }
            .into_bytes();
        }
        Mutation::Truncate(n) => {
            let text = body.to_string().into_bytes();
            return text[..n % text.len()].to_vec();
        }
    }
    body.to_string().into_bytes()
}

fn hostile_call() -> impl Strategy<Value = Call> {
    prop_oneof![
        1 => (content_type(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(content_type, body)| Call { content_type, body }),
        1 => (content_type(), json_value()).prop_map(|(content_type, v)| Call {
            content_type,
            body: v.to_string().into_bytes(),
        }),
        4 => (content_type(), 0u64..500, mutation()).prop_map(|(content_type, i, m)| Call {
            content_type,
            body: mutate(i, &m),
        }),
    ]
}

proptest! {
    // 6 endpoints per case, two store reads each: a few seconds in a debug build.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bad_input_gets_a_4xx_and_leaves_every_store_as_it_was(call in hostile_call()) {
        thread_local! {
            static SETUP: (tokio::runtime::Runtime, Vec<Endpoint>) = (
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
                endpoints(),
            );
        }
        SETUP.with(|(runtime, endpoints)| check(runtime, endpoints, &call));
    }
}

/// The mutations themselves do what they say (so the property above is not vacuous).
#[test]
fn each_mutation_breaks_the_body_as_named() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoints = endpoints();
    let status = |m: Mutation| {
        let call = Call {
            content_type: Some("application/json"),
            body: mutate(3, &m),
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(RETURNS_PATH)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(call.body))
            .unwrap();
        runtime
            .block_on(endpoints[0].router.clone().oneshot(request))
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(Mutation::None), 202);
    assert_eq!(status(Mutation::None), 200, "the same return again");
    assert_eq!(status(Mutation::Repeat(0, Value::Null)), 422);
    assert_eq!(status(Mutation::Unknown("colour".into(), Value::Null)), 422);
    assert_eq!(status(Mutation::HugeString(0, 100_000)), 413);
    assert_eq!(status(Mutation::Truncate(10)), 400);
}
