//! The only place that decides bytes.
//!
//! Every event type carries its name and version in the CloudEvents `type` attribute, for
//! example `returns.RefundRequest.v2`. Payloads are JSON. The shapes of published versions are
//! frozen by golden files in `tests/golden/` and described by the JSON Schemas in `schemas/` at
//! the repository root ([`schema`], feature `schema`).
//!
//! A new version gets a new module here (`v1`, `v2`, ...) and an upcaster from the one before
//! (`From<RefundRequestV1> for RefundRequestV2`), so old records stay readable: only the newest
//! DTO converts into the domain, and every older one is upcast to it first.
//!
//! | event type | written | read |
//! |---|---|---|
//! | `returns.RefundRequest` | v2 ([`REFUND_REQUEST_TYPE`]) | v1 (upcast), v2 ([`REFUND_REQUEST_VERSIONS`]) |
//! | `returns.<team>.<EventType>` | v1 ([`TEAM_EVENT_VERSION`]) | v1 ([`TEAM_EVENT_VERSIONS`]) |

mod error;
#[cfg(feature = "schema")]
pub mod schema;
pub mod v1;
pub mod v2;

use returns_domain::{RefundRequest, Team};

use crate::envelope::Envelope;
use crate::{OutRecord, Record};
pub use error::WireError;

/// Who publishes refund requests.
pub const USER_SUPPORT_SOURCE: &str = "/returns/user-support";
pub const REFUND_REQUEST: &str = "returns.RefundRequest";
/// The versions of `RefundRequest` this build reads.
pub const REFUND_REQUEST_VERSIONS: &[u32] = &[1, 2];
/// The type User Support writes today: the newest version.
pub const REFUND_REQUEST_TYPE: &str = "returns.RefundRequest.v2";
/// The type a record on `returnOrders` has when it carries no `ce_type` header (a line typed
/// into Kafka's console producer): v1, the shape such lines have always had.
pub const REFUND_REQUEST_DEFAULT_TYPE: &str = "returns.RefundRequest.v1";

/// The version of every team event type written today, `returns.<team>.<EventType>.v1`.
pub const TEAM_EVENT_VERSION: u32 = 1;
/// The versions of team events this build reads.
pub const TEAM_EVENT_VERSIONS: &[u32] = &[TEAM_EVENT_VERSION];

/// Split `returns.RefundRequest.v1` into (`returns.RefundRequest`, 1).
pub fn split_type(event_type: &str) -> Option<(&str, u32)> {
    let (name, version) = event_type.rsplit_once(".v")?;
    let canonical = !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && (version == "0" || !version.starts_with('0'));
    if name.is_empty() || !canonical {
        return None;
    }
    Some((name, version.parse().ok()?))
}

/// The record User Support appends for a request: keyed by the return, so everything about one
/// return stays in order.
pub fn encode_refund_request(req: &RefundRequest, envelope: &Envelope) -> OutRecord {
    OutRecord {
        key: req.return_id.to_string(),
        headers: envelope.to_headers(),
        payload: serde_json::to_vec(&v2::RefundRequestV2::from(req))
            .expect("a DTO of strings and integers serializes"),
    }
}

/// A new envelope for a refund request, correlated with its return.
pub fn refund_request_envelope(req: &RefundRequest) -> Envelope {
    Envelope::new(REFUND_REQUEST_TYPE, USER_SUPPORT_SOURCE).correlated(req.return_id.to_string())
}

/// Read a record of `returnOrders`. The envelope is returned even when the payload is bad, so the
/// caller can dead-letter it under its id.
pub fn decode_refund_request(record: &Record) -> (Envelope, Result<RefundRequest, WireError>) {
    let envelope = Envelope::from_record(record, REFUND_REQUEST_DEFAULT_TYPE);
    let result = decode_refund_request_payload(&envelope.event_type, &record.payload);
    (envelope, result)
}

/// Read a refund request written as plain JSON, without a type (a line of a file): v2 when it
/// has a `reason`, v1 when it has a bare `defect`, validated.
pub fn decode_untyped_refund_request(payload: &[u8]) -> Result<RefundRequest, WireError> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload)
        .map_err(|e| WireError::Malformed {
            event_type: REFUND_REQUEST.to_string(),
            reason: format!("not a JSON object: {e}"),
        })?;
    let event_type = if object.contains_key("reason") {
        REFUND_REQUEST_TYPE
    } else if object.contains_key("defect") {
        REFUND_REQUEST_DEFAULT_TYPE
    } else {
        return Err(WireError::Malformed {
            event_type: REFUND_REQUEST.to_string(),
            reason: "neither version 2 (with a `reason`) nor version 1 (with a `defect`)".into(),
        });
    };
    decode_refund_request_payload(event_type, payload)
}

/// Read a refund request's payload of a known type, e.g. `returns.RefundRequest.v1` (a line of
/// a file, an HTTP body), validated.
pub fn decode_refund_request_payload(
    event_type: &str,
    payload: &[u8],
) -> Result<RefundRequest, WireError> {
    let (name, version) =
        split_type(event_type).ok_or_else(|| WireError::UnknownType(event_type.to_string()))?;
    if name != REFUND_REQUEST {
        return Err(WireError::UnknownType(event_type.to_string()));
    }
    let req = match version {
        // Through the upcaster to v2.
        1 => RefundRequest::try_from(parse::<v1::RefundRequestV1>(event_type, payload)?)?,
        2 => RefundRequest::try_from(parse::<v2::RefundRequestV2>(event_type, payload)?)?,
        other => {
            return Err(WireError::UnknownVersion {
                name: name.to_string(),
                version: other,
                supported: REFUND_REQUEST_VERSIONS.to_vec(),
            })
        }
    };
    req.validate().map_err(WireError::from)?;
    Ok(req)
}

fn parse<D: serde::de::DeserializeOwned>(event_type: &str, payload: &[u8]) -> Result<D, WireError> {
    serde_json::from_slice(payload).map_err(|e| WireError::Malformed {
        event_type: event_type.to_string(),
        reason: e.to_string(),
    })
}

/// The versioned type of a team's event, e.g. `returns.sales.OrderRefunded.v1`.
pub fn team_event_type<T: Team>(event: &T::Event) -> String {
    format!(
        "returns.{}.{}.v{TEAM_EVENT_VERSION}",
        T::NAME,
        T::event_type(event)
    )
}

/// The payload of a team's event. Version 1 is the event's JSON with a `type` tag, frozen by
/// the golden files and described by the schemas.
pub fn encode_team_event<T: Team>(event: &T::Event) -> Vec<u8> {
    serde_json::to_vec(event).expect("team events serialize")
}

/// Read a team's event back.
pub fn decode_team_event<T: Team>(record: &Record) -> Result<(Envelope, T::Event), WireError> {
    let envelope = Envelope::from_record(record, "");
    let (name, version) = split_type(&envelope.event_type)
        .ok_or_else(|| WireError::UnknownType(envelope.event_type.clone()))?;
    if !name.starts_with(&format!("returns.{}.", T::NAME)) {
        return Err(WireError::UnknownType(envelope.event_type.clone()));
    }
    if !TEAM_EVENT_VERSIONS.contains(&version) {
        return Err(WireError::UnknownVersion {
            name: name.to_string(),
            version,
            supported: TEAM_EVENT_VERSIONS.to_vec(),
        });
    }
    let event: T::Event = parse(&envelope.event_type, &record.payload)?;
    if team_event_type::<T>(&event) != envelope.event_type {
        return Err(WireError::Malformed {
            event_type: envelope.event_type.clone(),
            reason: format!("the payload is a {}", T::event_type(&event)),
        });
    }
    Ok((envelope, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_types_are_the_newest_versions_read() {
        assert_eq!(
            split_type(REFUND_REQUEST_TYPE),
            Some((
                REFUND_REQUEST,
                *REFUND_REQUEST_VERSIONS.iter().max().unwrap()
            ))
        );
        assert_eq!(
            split_type(REFUND_REQUEST_DEFAULT_TYPE),
            Some((REFUND_REQUEST, 1))
        );
        assert_eq!(TEAM_EVENT_VERSIONS.iter().max(), Some(&TEAM_EVENT_VERSION));
    }

    #[test]
    fn only_canonical_versions_are_read() {
        assert_eq!(
            split_type("returns.RefundRequest.v1"),
            Some(("returns.RefundRequest", 1))
        );
        assert_eq!(
            split_type("returns.RefundRequest.v12"),
            Some(("returns.RefundRequest", 12))
        );
        for bad in [
            "returns.RefundRequest.v+1",
            "returns.RefundRequest.v01",
            "returns.RefundRequest.v",
            "returns.RefundRequest",
            ".v1",
        ] {
            assert_eq!(split_type(bad), None, "{bad}");
        }
    }
}
