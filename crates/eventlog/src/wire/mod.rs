//! The only place that decides bytes.
//!
//! Every event type carries its name and version in the CloudEvents `type` attribute, for
//! example `returns.RefundRequest.v1`. Payloads are JSON. The shapes of published versions are
//! frozen by golden files in `tests/golden/`; a new version gets a new module here and an
//! upcaster from the one before, so old records stay readable.

mod error;
pub mod v1;

use returns_domain::{RefundRequest, Team};

use crate::envelope::Envelope;
use crate::{OutRecord, Record};
pub use error::WireError;

/// Who publishes refund requests.
pub const USER_SUPPORT_SOURCE: &str = "/returns/user-support";
pub const REFUND_REQUEST: &str = "returns.RefundRequest";
/// The versions of `RefundRequest` this build reads.
pub const REFUND_REQUEST_VERSIONS: &[u32] = &[1];
/// The type a record on `returnOrders` has when it carries no `ce_type` header.
pub const REFUND_REQUEST_DEFAULT_TYPE: &str = "returns.RefundRequest.v1";

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
        payload: serde_json::to_vec(&v1::RefundRequestV1::from(req))
            .expect("a DTO of strings and integers serializes"),
    }
}

/// A new envelope for a refund request, correlated with its return.
pub fn refund_request_envelope(req: &RefundRequest) -> Envelope {
    Envelope::new(REFUND_REQUEST_DEFAULT_TYPE, USER_SUPPORT_SOURCE)
        .correlated(req.return_id.to_string())
}

/// Read a record of `returnOrders`. The envelope is returned even when the payload is bad, so the
/// caller can dead-letter it under its id.
pub fn decode_refund_request(record: &Record) -> (Envelope, Result<RefundRequest, WireError>) {
    let envelope = Envelope::from_record(record, REFUND_REQUEST_DEFAULT_TYPE);
    let result = decode_refund_request_payload(&envelope.event_type, &record.payload);
    (envelope, result)
}

fn decode_refund_request_payload(
    event_type: &str,
    payload: &[u8],
) -> Result<RefundRequest, WireError> {
    let (name, version) =
        split_type(event_type).ok_or_else(|| WireError::UnknownType(event_type.to_string()))?;
    if name != REFUND_REQUEST {
        return Err(WireError::UnknownType(event_type.to_string()));
    }
    let req = match version {
        1 => {
            let dto: v1::RefundRequestV1 =
                serde_json::from_slice(payload).map_err(|e| WireError::Malformed {
                    event_type: event_type.to_string(),
                    reason: e.to_string(),
                })?;
            RefundRequest::try_from(dto)?
        }
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

/// The versioned type of a team's event, e.g. `returns.sales.OrderRefunded.v1`.
pub fn team_event_type<T: Team>(event: &T::Event) -> String {
    format!("returns.{}.{}.v1", T::NAME, T::event_type(event))
}

/// The payload of a team's event. Version 1 is the event's JSON with a `type` tag, frozen by
/// the golden files.
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
    if version != 1 {
        return Err(WireError::UnknownVersion {
            name: name.to_string(),
            version,
            supported: vec![1],
        });
    }
    let event: T::Event =
        serde_json::from_slice(&record.payload).map_err(|e| WireError::Malformed {
            event_type: envelope.event_type.clone(),
            reason: e.to_string(),
        })?;
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
    use super::split_type;

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
