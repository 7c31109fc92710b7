//! The HTTP side of `returns`, on axum.
//!
//! - **User Support's intake**, `POST /returns` ([`intake`]): a `RefundRequest` v2 body is
//!   accepted into User Support's own store with its outgoing record, in one transaction, and
//!   answered 202 `{return_id, status: "accepted", duplicate, event_id}` (200 with `duplicate:
//!   true` for a return accepted before). A relay publishes it to `returnOrders`, retrying while
//!   the log is down. `returns serve` runs it.
//! - **The traditional model's team endpoints**: instead of reading `returnOrders`, each team
//!   serves one endpoint that User Support calls for every return, and answers with the team's
//!   decision.
//!
//! - **The read side**, `GET /returns/{id}`, `/teams`, `/stats`, `/metrics`, `/healthz`
//!   ([`api`]): the status and analytics views, the log and the teams' counters, as JSON
//!   (Prometheus text for `/metrics`). `docs/openapi.json` documents every route of `returns
//!   serve`.
//!
//! Routers come as `*_routes` without fallbacks, which merge (`Router::merge`); a server puts
//! [`json_fallbacks`] around the whole, then, off loopback, [`auth::require_token`] (a team's
//! endpoint and the intake alone are also served as `team_router` and `intake_router`, with their
//! fallbacks).
//!
//! Every body goes through [`body::RefundRequestBody`]: JSON content type, at most
//! [`MAX_BODY_BYTES`], one JSON object with no repeated key, no array where the DTO has an
//! object, no unknown field, then the wire DTO's shape and the domain's validation. Bad input is
//! always a 4xx naming what is wrong, never a 5xx; a store failure is a 500 whose message names
//! the store but not its file (the cause goes to the log).
//!
//! | team | endpoint |
//! |---|---|
//! | sales | `POST /sales/order-refunds` |
//! | inventory | `POST /inventory/shipments` |
//! | manufacturing | `POST /manufacturing/disassembly-orders` |
//! | accounting | `POST /accounting/asset-disposals` |
//!
//! A team's endpoint decides with the same pure rule as the event-sourced model, in the same
//! kind of store (its own `<data_dir>/<team>.db`, through
//! [`TeamStore::handle_direct`](returns_services::TeamStore::handle_direct)): one transaction
//! per call, idempotent on the return id. So the two models differ only in how the request
//! arrives, and their stores can be compared row by row.
//!
//! The body is a `RefundRequest` v2 JSON object, exactly the wire DTO of the version User
//! Support publishes on the log, [`RefundRequestV2`](returns_eventlog::wire::v2::RefundRequestV2)
//! (with its `reason`: defect, when noticed, description), converted and validated as a record
//! read from the log is; so both models carry the same data. The answers:
//!
//! | status | body | when |
//! |---|---|---|
//! | 201 | [`Decision`], `duplicate: false` | decided now; a business rejection (e.g. `OrderAlreadyRefunded`) is a decision too |
//! | 200 | [`Decision`], `duplicate: true` | the return was decided before: that decision, unchanged |
//! | 400 | `malformed_json` | not JSON, or not a JSON object |
//! | 422 | `invalid_field`, naming the field | a field is missing, of the wrong type, or invalid |
//! | 413, 415 | `payload_too_large`, `unsupported_media_type` | a body over [`MAX_BODY_BYTES`]; a content type other than JSON |
//! | 404, 405 | `not_found`, `method_not_allowed` | another path or method (the 405 names the path's methods, from its `Allow` header) |
//! | 409 | `return_id_conflict`, field `return_id` | `POST /returns`: the id was accepted before with a different request |
//! | 401 | `unauthorized` | a write without the server's token (a server off loopback) |
//! | 503 | `unavailable` | the team is down (an injected outage); the store is busy or locked (with `Retry-After: 1`) |
//! | 500 | `injected_error`, `store_failed` | an injected failure; the store could not read or write |
//!
//! Every error body is `{"error": {"kind", "field", "message"}}` ([`ErrorBody`]).
//!
//! Faults for `returns compare` ([`TeamFaultState`](returns_services::TeamFaultState)) act
//! before the handler: a team that is down answers 503 at once; otherwise the latency passes,
//! then an injected error answers 500. Neither touches the store.
//!
//! The store is a blocking SQLite connection, so each team keeps one behind a mutex and calls
//! it on tokio's blocking pool.

pub mod api;
pub mod auth;
pub mod body;
pub mod dashboard;
mod error;
pub mod intake;
pub mod live;
pub mod orchestrator;
mod team;

pub use api::{api_routes, Api, ROUTES};
pub use auth::{
    listen, needs_token, refuse_cross_site_writes, require_loopback_host, require_token,
    ListenError, Token,
};
pub use dashboard::dashboard_routes;
pub use error::{ErrorBody, ErrorDetail, HttpError};
pub use intake::{intake_router, intake_routes, Accepted, Intake, RETURNS_PATH};
pub use team::{path, team_router, team_routes, Decision};

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The largest request body an endpoint reads (a request is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `router` answering any other path with a JSON 404 and any other method on its paths with a
/// JSON 405. Put it around the merged whole: a router with fallbacks does not merge.
pub fn json_fallbacks(router: Router) -> Router {
    let router = router
        .fallback(|uri: Uri| async move { HttpError::NotFound(uri.path().to_string()) })
        .method_not_allowed_fallback(|method: Method| async move {
            HttpError::MethodNotAllowed {
                method: method.to_string(),
                allow: None,
            }
        });
    // axum sets `Allow` outside a route's layers: the hint is added around the whole router.
    Router::new()
        .fallback_service(router)
        .layer(axum::middleware::map_response(allowed_methods_hint))
}

/// A JSON 405 names the methods its path takes, read from the `Allow` header axum sets on it
/// (the fallback that built the body does not see it).
async fn allowed_methods_hint(method: Method, response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let Some(allow) = response.headers().get(header::ALLOW).cloned() else {
        return response;
    };
    let Ok(methods) = allow.to_str() else {
        return response;
    };
    // A new answer: the old one's headers (its Content-Length) describe the old body.
    let mut answer = HttpError::MethodNotAllowed {
        method: method.to_string(),
        allow: Some(methods.to_string()),
    }
    .into_response();
    answer.headers_mut().insert(header::ALLOW, allow);
    answer
}

/// Serve `router` on `listener` until `shutdown` is cancelled, then finish the calls in flight
/// and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
