//! One team's endpoint in the traditional model: User Support calls it for each return, and it
//! decides with the team's rule in the team's own store.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use returns_domain::{Accounting, Inventory, Manufacturing, Quality, Sales, Team};
use returns_services::team::store::{DirectAnswer, Effect};
use returns_services::{ServiceError, TeamFaultState, TeamName, TeamStore};
use serde::{Deserialize, Serialize};

use crate::body::RefundRequestBody;
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
/// created if needed, here), suffering `faults`. Use [`TeamFaultState::none`] for none. It answers
/// other paths and methods with JSON 404 and 405; to merge it with other routes, use
/// [`team_routes`] and put [`json_fallbacks`](crate::json_fallbacks) around the whole.
pub fn team_router(
    team: TeamName,
    data_dir: &Path,
    faults: TeamFaultState,
) -> Result<Router, ServiceError> {
    Ok(crate::json_fallbacks(team_routes(team, data_dir, faults)?))
}

/// [`team_router`] without its fallbacks, so that it merges (`Router::merge`) with other routes.
pub fn team_routes(
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
    let store = Arc::new(Mutex::new(TeamStore::<T>::open_for_direct_calls(data_dir)?));
    Ok(Router::new()
        .route(path(team), post(decide::<T>))
        .route_layer(middleware::from_fn_with_state(
            (T::NAME, faults),
            suffer_faults,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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
    RefundRequestBody(request): RefundRequestBody,
) -> Result<(StatusCode, Json<Decision>), HttpError> {
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
