//! `POST /returns`: User Support's intake. A `RefundRequest` v2 body (read by
//! [`RefundRequestBody`], as the teams' endpoints read theirs) is accepted into User Support's
//! own store with the record that will announce it on `returnOrders`, in one transaction; only
//! then does the answer say accepted. The relay publishes it, now or when the log is back.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use returns_services::user_support::intake::USER_SUPPORT;
use returns_services::{IntakeStore, ServiceError};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::body::RefundRequestBody;
use crate::{HttpError, MAX_BODY_BYTES};

/// The intake's path.
pub const RETURNS_PATH: &str = "/returns";

/// The intake's store and the bell of its relay.
#[derive(Clone)]
pub struct Intake {
    store: Arc<Mutex<IntakeStore>>,
    wake: Arc<Notify>,
}

impl Intake {
    /// Open (creating if needed) User Support's store `<data_dir>/user-support.db`.
    pub fn open(data_dir: &Path) -> Result<Intake, ServiceError> {
        Ok(Intake {
            store: Arc::new(Mutex::new(IntakeStore::open(data_dir)?)),
            wake: Arc::new(Notify::new()),
        })
    }

    /// Rung after each new acceptance: give it to the store's relay
    /// ([`IntakeStore::relay`]) so it publishes at once.
    pub fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// The store, for the relay and for reports.
    pub fn store(&self) -> Arc<Mutex<IntakeStore>> {
        Arc::clone(&self.store)
    }
}

/// The answer to `POST /returns`: 202 for a return accepted now, 200 with `duplicate: true` for
/// one accepted before (nothing is published again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub return_id: String,
    /// Always `accepted`: the return is in User Support's store and will reach the log.
    pub status: String,
    pub duplicate: bool,
    /// The id of the `RefundRequest` event that announces the return on `returnOrders`.
    pub event_id: String,
}

/// The intake's routes, without fallbacks, to merge with others; wrap the whole in
/// [`json_fallbacks`](crate::json_fallbacks).
pub fn intake_routes(intake: Intake) -> Router {
    Router::new()
        .route(RETURNS_PATH, post(accept))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(intake)
}

/// The intake alone, with JSON 404 and 405 answers.
pub fn intake_router(intake: Intake) -> Router {
    crate::json_fallbacks(intake_routes(intake))
}

async fn accept(
    State(intake): State<Intake>,
    RefundRequestBody(request): RefundRequestBody,
) -> Result<(StatusCode, Json<Accepted>), HttpError> {
    let store = intake.store();
    let answer = tokio::task::spawn_blocking(move || {
        // A panic while the lock was held dropped its transaction, which rolled back: the
        // connection is still sound.
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        store.accept(std::slice::from_ref(&request))
    })
    .await
    .map_err(|_| ServiceError::Task(USER_SUPPORT))??
    .pop()
    .expect("one answer per request");
    tracing::debug!(
        return_id = %answer.return_id,
        event_id = %answer.event_id,
        duplicate = answer.duplicate,
        "return accepted"
    );
    let status = if answer.duplicate {
        StatusCode::OK
    } else {
        intake.wake.notify_one();
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(Accepted {
            return_id: answer.return_id,
            status: "accepted".into(),
            duplicate: answer.duplicate,
            event_id: answer.event_id,
        }),
    ))
}
