//! The traditional model's team endpoints, called in process (`oneshot`), each test on its own
//! temporary data directory.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use returns_domain::{
    Accounting, Generator, Inventory, Manufacturing, Noticed, Outcome, Quality, RefundRequest,
    ReturnReason, Sales, Team,
};
use returns_eventlog::wire::v1::RefundRequestV1;
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_http::{path, serve, team_router, Decision, ErrorBody, ErrorDetail, MAX_BODY_BYTES};
use returns_services::faults::schedule::FaultSpecError;
use returns_services::{FaultPlan, RunClock, TeamFaultState, TeamName, TeamStore};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const JSON: &str = "application/json";

/// One team's endpoint on a fresh data directory.
struct Endpoint {
    team: TeamName,
    dir: TempDir,
    router: Router,
}

impl Endpoint {
    fn new(team: TeamName) -> Self {
        Self::with_faults(team, TeamFaultState::none())
    }

    fn with_faults(team: TeamName, faults: TeamFaultState) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let router = team_router(team, dir.path(), faults).expect("router");
        Endpoint { team, dir, router }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(body.into()).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(JSON.as_bytes()),
            "every answer is JSON ({status})"
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).expect("a JSON body");
        (status, body)
    }

    /// POST a JSON body to the team's endpoint.
    async fn post(&self, body: impl Into<Body>) -> (StatusCode, Value) {
        self.call(Method::POST, path(self.team), Some(JSON), body)
            .await
    }

    async fn post_request(&self, request: &RefundRequest) -> (StatusCode, Value) {
        self.post(body_of(request)).await
    }

    /// How many effects the team's store holds per return.
    fn effects(&self) -> HashMap<String, u64> {
        fn open<T: Team>(dir: &Path) -> HashMap<String, u64> {
            TeamStore::<T>::open(dir)
                .and_then(|store| store.effects_per_return())
                .expect("effects")
        }
        let effects = match self.team {
            TeamName::Sales => open::<Sales>,
            TeamName::Inventory => open::<Inventory>,
            TeamName::Manufacturing => open::<Manufacturing>,
            TeamName::Accounting => open::<Accounting>,
            TeamName::Quality => open::<Quality>,
        };
        effects(self.dir.path())
    }
}

fn body_of(request: &RefundRequest) -> String {
    serde_json::to_string(&RefundRequestV2::from(request)).expect("a DTO serializes")
}

fn request(i: u64) -> RefundRequest {
    Generator::new(7).request(i)
}

/// What the team's pure rule decides for a request on a fresh store.
fn expected(team: TeamName, request: &RefundRequest) -> Outcome {
    fn decide<T: Team>(request: &RefundRequest) -> Outcome {
        let state = T::initial(&T::key(request));
        T::outcome(&T::decide(&state, request))
    }
    let decide = match team {
        TeamName::Sales => decide::<Sales>,
        TeamName::Inventory => decide::<Inventory>,
        TeamName::Manufacturing => decide::<Manufacturing>,
        TeamName::Accounting => decide::<Accounting>,
        TeamName::Quality => decide::<Quality>,
    };
    decide(request)
}

fn decision(body: Value) -> Decision {
    serde_json::from_value(body).expect("a Decision")
}

/// The answer is an error with this status and kind; its details.
#[track_caller]
fn assert_error(
    (status, body): (StatusCode, Value),
    expected: StatusCode,
    kind: &str,
) -> ErrorDetail {
    assert_eq!(status, expected, "{body}");
    let ErrorBody { error } = serde_json::from_value(body).expect("an error body");
    assert_eq!(error.kind, kind, "{}", error.message);
    error
}

/// The sales endpoint, suffering the faults `add` puts in a plan.
fn sales_with(add: impl FnOnce(&mut FaultPlan) -> Result<(), FaultSpecError>) -> Endpoint {
    let mut plan = FaultPlan::default();
    add(&mut plan).expect("a valid fault");
    let faults = plan.for_team(TeamName::Sales, &RunClock::start(), 1);
    Endpoint::with_faults(TeamName::Sales, faults)
}

#[tokio::test]
async fn every_team_decides_a_new_return_with_201() {
    for team in TeamName::ALL {
        let endpoint = Endpoint::new(team);
        let request = request(0);
        let (status, body) = endpoint.post_request(&request).await;
        assert_eq!(status, StatusCode::CREATED, "{team}: {body}");
        let outcome = expected(team, &request);
        let d = decision(body);
        assert_eq!(d.team, team.as_str());
        assert_eq!(d.return_id, request.return_id.to_string());
        assert_eq!(d.kind, outcome.kind, "{team}");
        assert_eq!(d.rejection.as_deref(), outcome.rejection, "{team}");
        assert!(d.event.get("type").is_some(), "{team}: {}", d.event);
        assert!(!d.duplicate);
    }
}

#[tokio::test]
async fn the_same_return_again_is_200_with_the_earlier_decision() {
    for team in TeamName::ALL {
        let endpoint = Endpoint::new(team);
        let request = request(1);
        let (status, first) = endpoint.post_request(&request).await;
        assert_eq!(status, StatusCode::CREATED, "{team}: {first}");
        let (status, again) = endpoint.post_request(&request).await;
        assert_eq!(status, StatusCode::OK, "{team}: {again}");
        let (first, again) = (decision(first), decision(again));
        assert!(again.duplicate, "{team}");
        assert_eq!(
            Decision {
                duplicate: false,
                ..again
            },
            first,
            "{team}"
        );
        assert_eq!(
            endpoint.effects(),
            HashMap::from([(request.return_id.to_string(), 1)]),
            "{team}: one effect for the return"
        );
    }
}

#[tokio::test]
async fn a_business_rejection_is_a_201_decision() {
    let endpoint = Endpoint::new(TeamName::Sales);
    let first = request(2);
    // Another return for the same order: a second claim.
    let second_claim = RefundRequest {
        return_id: request(3).return_id,
        ..first.clone()
    };
    assert_eq!(endpoint.post_request(&first).await.0, StatusCode::CREATED);
    let (status, body) = endpoint.post_request(&second_claim).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let d = decision(body);
    assert_eq!(d.kind, "refund_rejected");
    assert_eq!(d.rejection.as_deref(), Some("OrderAlreadyRefunded"));
    assert!(!d.duplicate);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400_malformed_json() {
    let endpoint = Endpoint::new(TeamName::Sales);
    let valid = body_of(&request(0));
    for body in [
        "{not json".to_string(),
        String::new(),
        "[1, 2]".to_string(),
        "\"a string\"".to_string(),
        format!("{valid} trailing"),
    ] {
        let (status, reply) = endpoint.post(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {reply}");
        assert_eq!(reply["error"]["kind"], "malformed_json", "{body:?}");
        assert_eq!(reply["error"]["field"], Value::Null, "{body:?}");
    }
    assert!(endpoint.effects().is_empty());
}

#[tokio::test]
async fn an_invalid_or_missing_field_is_422_naming_it() {
    let endpoint = Endpoint::new(TeamName::Sales);
    let valid = serde_json::to_value(RefundRequestV2::from(&request(0))).expect("json");
    let with = |pointer: &str, value: Option<Value>| {
        let mut body = valid.clone();
        let (parent, name) = pointer.rsplit_once('/').expect("a pointer");
        let object = body
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .expect("an object");
        match value {
            Some(value) => object.insert(name.to_string(), value),
            None => object.remove(name),
        };
        body
    };
    let cases = [
        (
            "bad order id",
            with("/order_id", Some(json!("X"))),
            "order_id",
        ),
        (
            "missing customer",
            with("/customer_id", None),
            "customer_id",
        ),
        (
            "missing country",
            with("/ship_to/country", None),
            "ship_to.country",
        ),
        (
            "minor units as text",
            with("/unit_cost/minor", Some(json!("ten"))),
            "unit_cost.minor",
        ),
        (
            "zero refund",
            with("/refund_amount/minor", Some(json!(0))),
            "refund_amount",
        ),
        (
            "blank name",
            with("/ship_to/name", Some(json!("  "))),
            "ship_to.name",
        ),
        ("missing reason", with("/reason", None), "reason"),
        (
            "missing defect",
            with("/reason/defect", None),
            "reason.defect",
        ),
        (
            "bad defect",
            with("/reason/defect", Some(json!("no power"))),
            "reason.defect",
        ),
        (
            "noticed outside its values",
            with("/reason/noticed", Some(json!("yesterday"))),
            "reason.noticed",
        ),
        (
            "description as a number",
            with("/reason/description", Some(json!(7))),
            "reason.description",
        ),
        (
            "description too long",
            with("/reason/description", Some(json!("x".repeat(1_001)))),
            "reason.description",
        ),
    ];
    for (case, body, field) in cases {
        let answer = endpoint.post(body.to_string()).await;
        let e = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(e.field.as_deref(), Some(field), "{case}: {}", e.message);
    }
    assert!(endpoint.effects().is_empty());
}

/// The body is the version User Support publishes on the log (v2): a v1 body, with a bare
/// `defect` and no `reason`, is refused, naming the field it lacks.
#[tokio::test]
async fn a_v1_body_is_422_naming_the_missing_reason() {
    let endpoint = Endpoint::new(TeamName::Manufacturing);
    let v1 = serde_json::to_string(&RefundRequestV1::from(&request(0))).expect("json");
    let e = assert_error(
        endpoint.post(v1).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    assert_eq!(e.field.as_deref(), Some("reason"), "{}", e.message);
    assert!(endpoint.effects().is_empty());
}

/// What v2 adds reaches the team: Quality counts when the defect was noticed, and the decision
/// for a body with the description left out is the one with a null description.
#[tokio::test]
async fn the_reason_of_the_body_reaches_the_team() {
    let endpoint = Endpoint::new(TeamName::Quality);
    for (i, noticed) in [(0, Noticed::OnArrival), (1, Noticed::InUse)] {
        let request = RefundRequest {
            reason: ReturnReason {
                noticed,
                ..request(i).reason
            },
            ..request(i)
        };
        let (status, body) = endpoint.post_request(&request).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let d = decision(body);
        assert_eq!(d.kind, "defect_recorded", "{:?}", d.event);
        assert_eq!(d.event["noticed"], noticed.as_str());
        assert_eq!(d.event["defect"], request.reason.defect.as_str());
    }
    let mut body = serde_json::to_value(RefundRequestV2::from(&request(2))).expect("json");
    body["reason"]
        .as_object_mut()
        .expect("an object")
        .remove("description");
    let (status, reply) = endpoint.post(body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let endpoint = Endpoint::new(TeamName::Sales);
    let mut dto = RefundRequestV2::from(&request(0));
    dto.ship_to.name = "x".repeat(100 * 1024);
    let body = serde_json::to_string(&dto).expect("json");
    assert!(body.len() > MAX_BODY_BYTES);
    let answer = endpoint.post(body).await;
    assert_error(answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(endpoint.effects().is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let endpoint = Endpoint::new(TeamName::Inventory);
    let body = body_of(&request(0));
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let uri = path(TeamName::Inventory);
        let answer = endpoint
            .call(Method::POST, uri, content_type, body.clone())
            .await;
        assert_error(
            answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    assert!(endpoint.effects().is_empty());
}

#[tokio::test]
async fn other_paths_and_methods_answer_json_404_and_405() {
    let endpoint = Endpoint::new(TeamName::Manufacturing);
    let answer = endpoint
        .call(Method::POST, path(TeamName::Sales), Some(JSON), "{}")
        .await;
    assert_error(answer, StatusCode::NOT_FOUND, "not_found");
    let answer = endpoint
        .call(Method::GET, path(TeamName::Manufacturing), None, "")
        .await;
    assert_error(answer, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn a_team_that_is_down_answers_503_and_decides_nothing() {
    let endpoint = sales_with(|plan| plan.add_outage("sales@0..60"));
    let answer = endpoint.post_request(&request(0)).await;
    assert_error(answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(endpoint.effects().is_empty());
}

#[tokio::test]
async fn an_injected_error_answers_500_and_decides_nothing() {
    let endpoint = sales_with(|plan| plan.add_error_rate("sales=1"));
    let answer = endpoint.post_request(&request(0)).await;
    assert_error(answer, StatusCode::INTERNAL_SERVER_ERROR, "injected_error");
    assert!(endpoint.effects().is_empty());
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let endpoint = sales_with(|plan| plan.add_latency("sales=50"));
    let started = Instant::now();
    let (status, reply) = endpoint.post_request(&request(0)).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn a_store_that_fails_answers_500_store_failed() {
    let endpoint = Endpoint::new(TeamName::Accounting);
    // Break the store behind the endpoint's back: its next write fails.
    rusqlite::Connection::open(endpoint.dir.path().join("accounting.db"))
        .and_then(|conn| conn.execute_batch("DROP TABLE effects"))
        .expect("drop the effects table");
    let answer = endpoint.post_request(&request(0)).await;
    let e = assert_error(answer, StatusCode::INTERNAL_SERVER_ERROR, "store_failed");
    assert!(e.message.contains("accounting"), "{}", e.message);
    // The cause names the store's file: it goes to the log, never to the caller.
    let dir = endpoint.dir.path().to_str().expect("a UTF-8 path");
    assert!(
        !e.message.contains(dir) && !e.message.contains(".db"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn serve_answers_over_tcp_and_stops_on_shutdown() {
    let endpoint = Endpoint::new(TeamName::Sales);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, endpoint.router.clone(), shutdown.clone()));

    let body = body_of(&request(0));
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let call = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {JSON}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        path(TeamName::Sales),
        body.len()
    );
    stream.write_all(call.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns after shutdown")
        .expect("the task did not panic");
    assert!(stopped.is_ok(), "{stopped:?}");
}
