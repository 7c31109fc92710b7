//! User Support's status view following the log (`ProjectionRunner::run`, the path `serve`
//! uses), fed a return's decisions before its request. The request and the decisions are on
//! different topics, and on Kafka nothing orders topics against each other: a return whose
//! request the view has not read is never `complete`, whatever the teams decided.

use std::sync::Arc;
use std::time::Duration;

use returns_domain::{Accounting, Generator, Inventory, Manufacturing, RefundRequest, Sales, Team};
use returns_eventlog::envelope::Envelope;
use returns_eventlog::{team_topic, wire, EventLog, OutRecord, RETURN_ORDERS};
use returns_services::views::status::{ReturnStatus, Status, StatusStore, StatusView};
use returns_services::ProjectionRunner;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

/// `T`'s decision about `req`, as `T`'s relay appends it, caused by the request.
async fn append_decision<T: Team>(log: &Arc<dyn EventLog>, req: &RefundRequest, cause: &Envelope) {
    let event = T::decide(&T::initial(&T::key(req)), req);
    let envelope = Envelope::new(
        wire::team_event_type::<T>(&event),
        format!("/returns/{}", T::NAME),
    )
    .correlated(req.return_id.to_string())
    .caused_by(cause.id.clone());
    let out = OutRecord {
        key: req.return_id.to_string(),
        headers: envelope.to_headers(),
        payload: wire::encode_team_event::<T>(&event),
    };
    log.append(&team_topic(T::NAME), vec![out]).await.unwrap();
}

/// Polls the view's own file until `until` holds, with a deadline.
async fn wait_for(
    dir: &std::path::Path,
    req: &RefundRequest,
    what: &str,
    until: impl Fn(&ReturnStatus) -> bool,
) -> ReturnStatus {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let seen = StatusStore::open(dir)
            .unwrap()
            .status(&req.return_id)
            .unwrap();
        if let Some(status) = seen.filter(|s| until(s)) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the view never saw {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn decisions_before_the_request(log: Arc<dyn EventLog>) {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let view = tokio::spawn(
        ProjectionRunner::<StatusView>::new(Arc::clone(&log), dir.path().into())
            .run(shutdown.clone()),
    );

    let req = Generator::new(17).request(0);
    let request_envelope = wire::refund_request_envelope(&req);
    append_decision::<Sales>(&log, &req, &request_envelope).await;
    append_decision::<Inventory>(&log, &req, &request_envelope).await;
    append_decision::<Manufacturing>(&log, &req, &request_envelope).await;
    append_decision::<Accounting>(&log, &req, &request_envelope).await;

    let early = wait_for(dir.path(), &req, "every team's decision", |s| {
        s.teams[..4].iter().all(|t| t.status != Status::Pending)
    })
    .await;
    assert_eq!(early.request, None, "{early:?}");
    assert!(
        !early.complete,
        "every team decided but the request is not read: {early:?}"
    );

    log.append(
        RETURN_ORDERS,
        vec![wire::encode_refund_request(&req, &request_envelope)],
    )
    .await
    .unwrap();
    let done = wait_for(dir.path(), &req, "the request", |s| s.request.is_some()).await;
    assert!(done.complete, "{done:?}");
    assert_eq!(
        done.request.as_ref().unwrap().event_id,
        request_envelope.id,
        "{done:?}"
    );

    shutdown.cancel();
    view.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_before_the_request_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let log = returns_eventlog::open(&format!("sqlite://{}", dir.path().join("log.db").display()))
        .await
        .unwrap();
    decisions_before_the_request(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run bash scripts/test.sh"
)]
async fn decisions_before_the_request_on_kafka() {
    let bootstrap = std::env::var("RETURNS_KAFKA_BOOTSTRAP").expect("RETURNS_KAFKA_BOOTSTRAP");
    let namespace = format!("status-{}", uuid::Uuid::new_v4().simple());
    let log = returns_eventlog::open(&format!("kafka://{bootstrap}?namespace={namespace}"))
        .await
        .unwrap();
    decisions_before_the_request(log).await;
}
