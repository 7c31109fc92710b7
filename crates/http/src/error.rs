//! Every way a team endpoint answers "no", as one JSON shape:
//! `{"error": {"kind": "...", "field": "...or null", "message": "..."}}`.

use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use returns_eventlog::wire::WireError;
use returns_services::user_support::intake::AcceptError;
use returns_services::ServiceError;
use serde::{Deserialize, Serialize};

use crate::MAX_BODY_BYTES;

/// Why a call got no decision. A business rejection is not one of these: it is a decision.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The body is not JSON, or not a JSON object.
    #[error("the body is not a RefundRequest v2 JSON object: {0}")]
    MalformedJson(String),
    /// A field is missing, has the wrong type, or breaks a rule of `RefundRequest`.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("expected a body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    /// The team's service is down (an injected outage).
    #[error("the {0} team is unavailable")]
    Unavailable(&'static str),
    /// The call failed on purpose (an injected error rate).
    #[error("the {0} team failed to answer (injected error)")]
    InjectedError(&'static str),
    /// The store could not read or write: nothing is known about the decision. The answer says
    /// only which store; the cause (which names the file) goes to the server's log.
    #[error("{}", store_message(.0))]
    Store(#[from] ServiceError),
    /// The store holds an event for the return that is not JSON.
    #[error("the {team} store holds an unreadable event for return {return_id}: {reason}")]
    CorruptEvent {
        team: &'static str,
        return_id: String,
        reason: String,
    },
    /// The return id was accepted before with a different request (see
    /// [`AcceptError::Conflict`]).
    #[error(
        "return {0} was already accepted with a different request; a return id names one request"
    )]
    ReturnIdConflict(String),
    #[error("no endpoint at {0}")]
    NotFound(String),
    /// The method, and the methods the path takes (its `Allow` header), if known.
    #[error("method {method} is not allowed here{}", allowed_hint(.allow))]
    MethodNotAllowed {
        method: String,
        allow: Option<String>,
    },
    /// A call without the server's token (see [`crate::auth`]). The token presented is never
    /// repeated.
    #[error("this server answers only with its token: `Authorization: Bearer <token>`, or the cookie `returns_token` (the dashboard asks for it)")]
    Unauthorized,
    /// A request to a server without a token (on loopback) naming another host than a
    /// loopback one: what a DNS-rebinding page sends.
    #[error("this server has no token, so it answers only to a loopback host name, not to {0:?} (hint: open it as http://127.0.0.1:PORT, or give it a token)")]
    ForeignHost(String),
    /// A write sent by a page of another origin (a cross-site form or script).
    #[error("writes from a page of another origin are refused (Origin {0:?})")]
    CrossOrigin(String),
}

fn allowed_hint(allow: &Option<String>) -> String {
    match allow.as_deref() {
        Some(allow) if !allow.is_empty() => {
            let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
            format!(" (use {})", methods.join(" or "))
        }
        _ => String::new(),
    }
}

fn store_message(e: &ServiceError) -> String {
    match e {
        ServiceError::Store { team, .. }
        | ServiceError::NoStore { team, .. }
        | ServiceError::Task(team) => {
            format!("the {team} store could not read or write; the cause is in the server's log")
        }
        _ => "the store could not read or write; the cause is in the server's log".to_string(),
    }
}

impl HttpError {
    /// The short stable name clients match on.
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::MalformedJson(_) => "malformed_json",
            HttpError::InvalidField { .. } => "invalid_field",
            HttpError::UnsupportedMediaType => "unsupported_media_type",
            HttpError::PayloadTooLarge => "payload_too_large",
            HttpError::Unavailable(_) => "unavailable",
            HttpError::InjectedError(_) => "injected_error",
            HttpError::Store(e) if e.is_transient() => "unavailable",
            HttpError::Store(_) | HttpError::CorruptEvent { .. } => "store_failed",
            HttpError::ReturnIdConflict(_) => "return_id_conflict",
            HttpError::NotFound(_) => "not_found",
            HttpError::MethodNotAllowed { .. } => "method_not_allowed",
            HttpError::Unauthorized => "unauthorized",
            HttpError::CrossOrigin(_) => "cross_origin",
            HttpError::ForeignHost(_) => "foreign_host",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            HttpError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            HttpError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Busy or locked: the same call may pass in a moment.
            HttpError::Store(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::InjectedError(_) | HttpError::Store(_) | HttpError::CorruptEvent { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            HttpError::ReturnIdConflict(_) => StatusCode::CONFLICT,
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::CrossOrigin(_) | HttpError::ForeignHost(_) => StatusCode::FORBIDDEN,
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            HttpError::InvalidField { field, .. } => Some(field.clone()),
            HttpError::ReturnIdConflict(_) => Some("return_id".to_string()),
            _ => None,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                kind: self.kind().to_string(),
                field: self.field(),
                message: self.to_string(),
            },
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// See [`HttpError::kind`].
    pub kind: String,
    /// The offending field, e.g. `order_id` or `ship_to.country`, for `invalid_field`.
    pub field: Option<String>,
    pub message: String,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match &self {
            HttpError::Store(cause) => tracing::error!(error = %cause, "a store failed"),
            HttpError::CorruptEvent { .. } => tracing::error!(error = %self, "a store failed"),
            _ => {}
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        match &self {
            HttpError::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            HttpError::Store(e) if e.is_transient() => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<AcceptError> for HttpError {
    fn from(e: AcceptError) -> Self {
        match e {
            AcceptError::Conflict { return_id } => HttpError::ReturnIdConflict(return_id),
            AcceptError::Store(e) => HttpError::Store(e),
        }
    }
}

/// axum's own rejection of a body it could not read, in our shape instead of its plain text.
impl From<BytesRejection> for HttpError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                HttpError::PayloadTooLarge
            }
            other => HttpError::MalformedJson(other.body_text()),
        }
    }
}

/// The shape of the body did not fit the wire DTO. Naming the field turns it into a 422; a body
/// that is valid JSON but not an object at all stays malformed.
impl From<serde_path_to_error::Error<serde_json::Error>> for HttpError {
    fn from(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let reason = e.inner().to_string();
        let parent = Some(e.path().to_string()).filter(|p| p != ".");
        // serde reports a missing field at its parent, naming it only in the message.
        let missing = reason
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_string());
        let (field, reason) = match (parent, missing) {
            (Some(parent), Some(name)) => (Some(format!("{parent}.{name}")), "missing".into()),
            (None, Some(name)) => (Some(name), "missing".into()),
            (parent, None) => (parent, reason),
        };
        match field {
            Some(field) => HttpError::InvalidField { field, reason },
            None => HttpError::MalformedJson(reason),
        }
    }
}

impl From<WireError> for HttpError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Invalid { field, reason } => HttpError::InvalidField { field, reason },
            other => HttpError::MalformedJson(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_error(code: std::os::raw::c_int) -> HttpError {
        HttpError::Store(ServiceError::Store {
            team: "user-support",
            path: "user-support.db".into(),
            source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
        })
    }

    #[test]
    fn a_busy_or_locked_store_is_a_503_to_retry_and_any_other_store_error_a_500() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            let response = store_error(code).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
            assert_eq!(store_error(code).kind(), "unavailable");
        }
        let response = store_error(rusqlite::ffi::SQLITE_IOERR).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
    }
}
