//! `POST /returns`, called in process (`oneshot`), each test on its own data directory: accepted
//! into User Support's store (202), a repeat recognised (200), bad bodies refused as the teams'
//! endpoints refuse them, the write token off loopback, and the routers merging into one app.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use returns_domain::Generator;
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_eventlog::{wire, Record, RETURN_ORDERS};
use returns_http::{
    intake_router, intake_routes, json_fallbacks, path, require_token, team_routes, Accepted,
    Intake, Token, RETURNS_PATH,
};
use returns_services::{IntakeStore, TeamFaultState, TeamName};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

const TOKEN: &str = "a-token-of-some-length-0001";

fn body(i: u64) -> String {
    serde_json::to_string(&RefundRequestV2::from(&Generator::new(9).request(i))).unwrap()
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).expect("a JSON body"))
}

fn intake() -> (TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let router = intake_router(Intake::open(dir.path()).unwrap());
    (dir, router)
}

/// The records waiting in User Support's outbox, decoded as the teams decode them.
fn outbox(dir: &TempDir) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(dir.path().join("user-support.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT key, headers, payload FROM outbox ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(Record {
                topic: RETURN_ORDERS.into(),
                partition: 0,
                offset: 0,
                key: Some(r.get(0)?),
                timestamp_ms: 0,
                headers: returns_eventlog::record::headers_from_json(&r.get::<_, String>(1)?)
                    .unwrap(),
                payload: r.get(2)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows.into_iter()
        .map(|record| {
            let (envelope, request) = wire::decode_refund_request(&record);
            (request.unwrap().return_id.to_string(), envelope.id)
        })
        .collect()
}

#[tokio::test]
async fn a_return_is_accepted_with_its_record_and_a_repeat_is_a_200_duplicate() {
    let (dir, router) = intake();
    let (status, reply) = call(&router, Method::POST, RETURNS_PATH, None, body(0)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let first: Accepted = serde_json::from_value(reply).unwrap();
    let expected = Generator::new(9).request(0).return_id.to_string();
    assert_eq!(
        (
            first.return_id.as_str(),
            first.status.as_str(),
            first.duplicate
        ),
        (expected.as_str(), "accepted", false)
    );
    let (status, reply) = call(&router, Method::POST, RETURNS_PATH, None, body(0)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let again: Accepted = serde_json::from_value(reply).unwrap();
    assert_eq!(
        again,
        Accepted {
            duplicate: true,
            ..first.clone()
        }
    );
    // One record, under the event id the answer gave.
    assert_eq!(outbox(&dir), [(expected, first.event_id)]);
    let store = IntakeStore::open(dir.path()).unwrap();
    assert_eq!(store.accepted_count().unwrap(), 1);
}

#[tokio::test]
async fn bad_bodies_are_refused_naming_the_field_and_accept_nothing() {
    let (dir, router) = intake();
    let valid = body(1);
    let cases = [
        ("{not json".to_string(), StatusCode::BAD_REQUEST, None),
        ("[1, 2]".to_string(), StatusCode::BAD_REQUEST, None),
        (
            valid.replacen('{', "{\"order_id\":\"SO-00000001\",", 1),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("order_id"),
        ),
        (
            valid.replacen('{', "{\"colour\":\"red\",", 1),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("colour"),
        ),
        (
            {
                let mut body: Value = serde_json::from_str(&valid).unwrap();
                let fields = body["reason"]
                    .as_object()
                    .unwrap()
                    .values()
                    .cloned()
                    .collect();
                body["reason"] = Value::Array(fields);
                body.to_string()
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reason"),
        ),
        (
            valid.replace("\"minor\":", "\"minor\":\"x\",\"was\":"),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
    ];
    for (body, status, field) in cases {
        let (got, reply) = call(&router, Method::POST, RETURNS_PATH, None, body.clone()).await;
        assert_eq!(got, status, "{body}: {reply}");
        if let Some(field) = field {
            assert_eq!(reply["error"]["field"], field, "{reply}");
        }
    }
    let (status, reply) = call(&router, Method::GET, RETURNS_PATH, None, String::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("(use POST)"),
        "{reply}"
    );
    assert!(outbox(&dir).is_empty());
}

/// The same return id with another body is refused (409) and nothing changes; the same body
/// again is still a duplicate.
#[tokio::test]
async fn a_return_id_accepted_with_another_body_is_a_409_conflict() {
    let (dir, router) = intake();
    let (status, first) = call(&router, Method::POST, RETURNS_PATH, None, body(1)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let mut changed = RefundRequestV2::from(&Generator::new(9).request(2));
    changed.return_id = first["return_id"].as_str().unwrap().to_string();
    let changed = serde_json::to_string(&changed).unwrap();
    let (status, reply) = call(&router, Method::POST, RETURNS_PATH, None, changed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(reply["error"]["kind"], "return_id_conflict", "{reply}");
    assert_eq!(reply["error"]["field"], "return_id", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains(first["return_id"].as_str().unwrap()),
        "{reply}"
    );
    assert_eq!(outbox(&dir).len(), 1, "the change was not published");
    let (status, again) = call(&router, Method::POST, RETURNS_PATH, None, body(1)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], first["event_id"]);
}

#[tokio::test]
async fn with_a_token_writes_need_it_and_get_a_json_401_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new(TOKEN).unwrap();
    let app = require_token(intake_router(Intake::open(dir.path()).unwrap()), token);
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token".to_string()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {TOKEN}x")),
    ] {
        let (status, reply) =
            call(&app, Method::POST, RETURNS_PATH, auth.as_deref(), body(2)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {reply}");
        assert_eq!(reply["error"]["kind"], "unauthorized");
        assert!(!reply.to_string().contains(TOKEN), "{reply}");
    }
    assert!(
        outbox(&dir).is_empty(),
        "nothing accepted without the token"
    );
    let bearer = format!("Bearer {TOKEN}");
    let (status, reply) = call(&app, Method::POST, RETURNS_PATH, Some(&bearer), body(2)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    // The scheme is case-insensitive (RFC 7235).
    for (i, scheme) in [(4, "bearer"), (5, "BEARER")] {
        let auth = format!("{scheme} {TOKEN}");
        let (status, reply) = call(&app, Method::POST, RETURNS_PATH, Some(&auth), body(i)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{auth}: {reply}");
    }
    // Reads need it too (they show customers' addresses), as a header or as the dashboard's
    // cookie, percent-encoded; the page's files and the health check do not.
    let (status, _) = call(&app, Method::GET, "/nowhere", None, String::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, Method::GET, "/nowhere", Some(&bearer), String::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (cookie, expected) in [
        (
            format!("theme=dark; returns_token={TOKEN}"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("returns_token={}", TOKEN.replace('-', "%2D")),
            StatusCode::NOT_FOUND,
        ),
        (
            "returns_token=wrong-token-wrong-token".to_string(),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let request = Request::builder()
            .method(Method::GET)
            .uri("/nowhere")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let answer = app.clone().oneshot(request).await.unwrap();
        assert_eq!(answer.status(), expected, "{cookie}");
    }
    for public in ["/", "/assets/app.js", "/healthz"] {
        let (status, _) = call(&app, Method::GET, public, None, String::new()).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{public} answers without the token"
        );
    }
}

/// The intake and the teams' routes merge into one app with one set of JSON fallbacks.
#[tokio::test]
async fn the_routers_merge_into_one_app() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = intake_routes(Intake::open(dir.path()).unwrap());
    for team in TeamName::EVERY {
        app = app.merge(team_routes(team, dir.path(), TeamFaultState::none()).unwrap());
    }
    let app = json_fallbacks(app);
    let (status, reply) = call(&app, Method::POST, RETURNS_PATH, None, body(3)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    for team in TeamName::EVERY {
        let (status, reply) = call(&app, Method::POST, path(team), None, body(3)).await;
        assert_eq!(status, StatusCode::CREATED, "{team}: {reply}");
    }
    let (status, reply) = call(&app, Method::POST, "/nowhere", None, body(3)).await;
    assert_eq!(
        (status, &reply["error"]["kind"]),
        (StatusCode::NOT_FOUND, &"not_found".into())
    );
    let (status, reply) = call(&app, Method::PUT, RETURNS_PATH, None, body(3)).await;
    assert_eq!(
        (status, &reply["error"]["kind"]),
        (StatusCode::METHOD_NOT_ALLOWED, &"method_not_allowed".into())
    );
}

/// A browser's write from a page of another origin is refused, whatever the token; scripts and
/// the server's own page pass.
#[tokio::test]
async fn writes_from_another_origin_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app =
        returns_http::refuse_cross_site_writes(intake_router(Intake::open(dir.path()).unwrap()));
    let post = |headers: &[(&str, &str)], i: u64| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(RETURNS_PATH)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Body::from(body(i))).unwrap()
    };
    for (case, (headers, expected)) in [
        (
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "https://evil.example"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:9999"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("host", "127.0.0.1:8080"), ("origin", "null")],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("sec-fetch-site", "cross-site")],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
            StatusCode::ACCEPTED,
        ),
        // Behind a proxy that rewrites Host: the browser's word counts.
        (
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "https://returns.example.com"),
                ("sec-fetch-site", "same-origin"),
            ],
            StatusCode::ACCEPTED,
        ),
        (
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-site"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (vec![], StatusCode::ACCEPTED),
    ]
    .into_iter()
    .enumerate()
    {
        // Each accepted write is a new return; a refused one would be the same one each time.
        let i = if expected == StatusCode::ACCEPTED {
            case as u64
        } else {
            100
        };
        let answer = app.clone().oneshot(post(&headers, i)).await.unwrap();
        assert_eq!(answer.status(), expected, "{headers:?}");
        if expected == StatusCode::FORBIDDEN {
            let bytes = axum::body::to_bytes(answer.into_body(), 1 << 16)
                .await
                .unwrap();
            let reply: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(reply["error"]["kind"], "cross_origin", "{reply}");
        }
    }
    assert_eq!(
        outbox(&dir).len(),
        3,
        "only the three same-origin writes were accepted"
    );
}

/// Without a token (loopback), a request naming a host that is not loopback is refused: what a
/// DNS-rebinding page sends, reads included.
#[tokio::test]
async fn without_a_token_only_loopback_host_names_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let app = returns_http::require_loopback_host(intake_router(Intake::open(dir.path()).unwrap()));
    for (host, expected) in [
        ("evil.example:8080", StatusCode::FORBIDDEN),
        ("127.0.0.1.evil.example", StatusCode::FORBIDDEN),
        ("127.0.0.1:8080", StatusCode::NOT_FOUND),
        ("localhost:8080", StatusCode::NOT_FOUND),
        ("[::1]:8080", StatusCode::NOT_FOUND),
    ] {
        let request = Request::builder()
            .uri("/returns/anything")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap();
        let answer = app.clone().oneshot(request).await.unwrap();
        assert_eq!(answer.status(), expected, "{host}");
        if expected == StatusCode::FORBIDDEN {
            let bytes = axum::body::to_bytes(answer.into_body(), 1 << 16)
                .await
                .unwrap();
            let reply: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(reply["error"]["kind"], "foreign_host", "{reply}");
        }
    }
}
