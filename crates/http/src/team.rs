//! One team's endpoint in the traditional model: User Support calls it for each return, and it
//! decides with the team's rule in the team's own store.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use returns_domain::{Accounting, Inventory, Manufacturing, Quality, RefundRequest, Sales, Team};
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_eventlog::wire::WireError;
use returns_services::store::{DirectAnswer, Effect};
use returns_services::{ServiceError, TeamFaultState, TeamName, TeamStore};
use serde::{Deserialize, Serialize};

use crate::{HttpError, MAX_BODY_BYTES};

/// The path of a team's endpoint.
pub const fn path(team: TeamName) -> &'static str {
    match team {
        TeamName::Sales => "/sales/order-refunds",
        TeamName::Inventory => "/inventory/shipments",
        TeamName::Manufacturing => "/manufacturing/disassembly-orders",
        TeamName::Accounting => "/accounting/asset-disposals",
        TeamName::Quality => "/quality/defect-records",
    }
}

/// A team's answer to a call: its decision on the return. A business rejection is a decision
/// too, with `rejection` set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub team: String,
    pub return_id: String,
    /// The decision's kind, e.g. `order_refunded` or `refund_rejected`.
    pub kind: String,
    /// The business reason of a rejection, e.g. `OrderAlreadyRefunded`.
    pub rejection: Option<String>,
    /// The team's event, as its store holds it (the v1 JSON with its `type` tag).
    pub event: serde_json::Value,
    /// The return was decided by an earlier call; this is that decision, unchanged.
    pub duplicate: bool,
}

/// The router of one team's endpoint, on that team's store `<data_dir>/<team>.db` (opened, and
/// created if needed, here), suffering `faults`. Use [`TeamFaultState::none`] for none.
pub fn team_router(
    team: TeamName,
    data_dir: &Path,
    faults: TeamFaultState,
) -> Result<Router, ServiceError> {
    let router = match team {
        TeamName::Sales => router::<Sales>,
        TeamName::Inventory => router::<Inventory>,
        TeamName::Manufacturing => router::<Manufacturing>,
        TeamName::Accounting => router::<Accounting>,
        TeamName::Quality => router::<Quality>,
    };
    router(team, data_dir, faults)
}

fn router<T: Team>(
    team: TeamName,
    data_dir: &Path,
    faults: TeamFaultState,
) -> Result<Router, ServiceError> {
    let store = Arc::new(Mutex::new(TeamStore::<T>::open(data_dir)?));
    Ok(Router::new()
        .route(path(team), post(decide::<T>))
        .route_layer(middleware::from_fn_with_state(
            (T::NAME, faults),
            suffer_faults,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|uri: Uri| async move { HttpError::NotFound(uri.path().to_string()) })
        .method_not_allowed_fallback(|method: Method| async move {
            HttpError::MethodNotAllowed(method.to_string())
        })
        .with_state(store))
}

/// The injected faults, before the call reaches the handler: a team that is down answers at
/// once; otherwise the latency passes, and an injected error leaves the store untouched.
async fn suffer_faults(
    State((team, faults)): State<(&'static str, TeamFaultState)>,
    request: Request,
    next: Next,
) -> Response {
    if faults.is_down() {
        return HttpError::Unavailable(team).into_response();
    }
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if faults.fails_now() {
        return HttpError::InjectedError(team).into_response();
    }
    next.run(request).await
}

async fn decide<T: Team>(
    State(store): State<Arc<Mutex<TeamStore<T>>>>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Decision>), HttpError> {
    let Json(body) = body?;
    let request = parse_request(body)?;
    let answer = tokio::task::spawn_blocking(move || {
        // A panic while the lock was held dropped its transaction, which rolled back: the
        // connection is still sound.
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        store.handle_direct(&request)
    })
    .await
    .map_err(|_| ServiceError::Task(T::NAME))??;
    let (status, effect, duplicate) = match answer {
        DirectAnswer::Decided(effect) => (StatusCode::CREATED, effect, false),
        DirectAnswer::AlreadyDecided(effect) => (StatusCode::OK, effect, true),
    };
    Ok((status, Json(decision(T::NAME, effect, duplicate)?)))
}

/// The body as a `RefundRequest`: the shape of the wire DTO of the version User Support
/// publishes (v2), naming the field that does not fit, then the same conversion and validation
/// as a record read from `returnOrders`.
fn parse_request(body: serde_json::Value) -> Result<RefundRequest, HttpError> {
    // serde would also read a struct from an array of its fields in order: not on this wire.
    if !body.is_object() {
        return Err(HttpError::MalformedJson(format!(
            "expected a JSON object, got {}",
            json_type(&body)
        )));
    }
    let dto: RefundRequestV2 = serde_path_to_error::deserialize(body)?;
    let request = RefundRequest::try_from(dto)?;
    request.validate().map_err(WireError::from)?;
    Ok(request)
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn decision(team: &'static str, effect: Effect, duplicate: bool) -> Result<Decision, HttpError> {
    let event = serde_json::from_str(&effect.event).map_err(|e| HttpError::CorruptEvent {
        team,
        return_id: effect.return_id.clone(),
        reason: e.to_string(),
    })?;
    Ok(Decision {
        team: team.to_string(),
        return_id: effect.return_id,
        kind: effect.kind,
        rejection: effect.rejection,
        event,
        duplicate,
    })
}
