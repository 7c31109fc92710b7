//! The read routes called in process (`oneshot`) on a fresh SQLite log, with nothing running:
//! no relay, no team, no view. So what they answer is what they read, deterministically: a
//! return accepted here but not yet read by the status view is pending (never unknown), the
//! teams' positions and lags come from the log, and the store-less routes still answer.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use returns_domain::Generator;
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_eventlog::{EventLog, RETURN_ORDERS};
use returns_http::{api_routes, intake_routes, json_fallbacks, Api, Intake};
use returns_services::{TeamMetrics, TeamName};
use serde_json::Value;
use tower::ServiceExt;

async fn call(router: &Router, method: Method, uri: &str, body: String) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn json(router: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, text) = call(router, Method::GET, uri, String::new()).await;
    (status, serde_json::from_str(&text).expect(&text))
}

#[tokio::test]
async fn the_read_routes_answer_from_what_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    let log: Arc<dyn EventLog> = returns_eventlog::open(&url).await.unwrap();
    let intake = Intake::open(&data).unwrap();
    let metrics: Vec<Arc<TeamMetrics>> = TeamName::EVERY
        .iter()
        .map(|t| Arc::new(TeamMetrics::new(t.as_str())))
        .collect();
    let api = Api::new(data.clone(), log.describe(), metrics, intake.clone());
    let app = json_fallbacks(intake_routes(intake).merge(api_routes(api.clone())));

    // Before the log is opened for the API: 503 in the error shape.
    let (status, body) = json(&app, "/teams").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["kind"], "unavailable");
    api.log_opened(Arc::clone(&log));
    // A fresh log, no topic yet: it answers.
    let (status, body) = json(&app, "/healthz").await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &"ok".into()),
        "{body}"
    );

    let request = RefundRequestV2::from(&Generator::new(4).request(0));
    let (status, text) = call(
        &app,
        Method::POST,
        "/returns",
        serde_json::to_string(&request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");

    // Accepted here, read by no view yet (nothing runs): pending everywhere, no timeline.
    let (status, body) = json(&app, &format!("/returns/{}", request.return_id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["complete"], false);
    assert_eq!(body["request"], Value::Null);
    let teams = body["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 4);
    assert!(teams.iter().all(|t| t["status"] == "pending"), "{body}");
    assert_eq!(body["timeline"], serde_json::json!([]));

    // Three records on returnOrders, nobody has read them: every team lags by three.
    log.ensure_topic(RETURN_ORDERS).await.unwrap();
    let records = (0..3)
        .map(|i| returns_eventlog::OutRecord {
            key: format!("k{i}"),
            headers: Vec::new(),
            payload: b"{}".to_vec(),
        })
        .collect();
    log.append(RETURN_ORDERS, records).await.unwrap();
    let (status, body) = json(&app, "/teams").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["end"], 3);
    for t in body["teams"].as_array().unwrap() {
        assert_eq!((&t["position"], &t["lag"]), (&0.into(), &3.into()), "{t}");
    }
    let (status, text) = call(&app, Method::GET, "/metrics", String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("returns_team_lag{team=\"manufacturing\"} 3\n"),
        "{text}"
    );

    let (status, body) = json(&app, "/healthz").await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &"ok".into()));
    let (status, body) = json(&app, "/stats").await;
    assert_eq!((status, &body["returns"]), (StatusCode::OK, &0.into()));

    // Malformed and unknown ids; a write method on a read path.
    let (status, body) = json(&app, "/returns/SO-12345678").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "id");
    let other = Generator::new(4).request(1).return_id;
    let (status, body) = json(&app, &format!("/returns/{other}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["kind"], "return_not_found");
    let (status, body) = call(&app, Method::POST, "/teams", String::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // The hint names the methods the path takes, from the `Allow` header.
    assert!(body.contains("(use GET or HEAD)"), "{body}");
    assert!(!body.contains("POST)"), "{body}");
}
