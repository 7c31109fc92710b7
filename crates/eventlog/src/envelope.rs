//! CloudEvents 1.0 attributes carried as record headers (the Kafka protocol binding, binary mode):
//! the payload is the event data, the attributes are `ce_`-prefixed headers. Every backend stores
//! them the same way.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Record;

pub const SPECVERSION: &str = "ce_specversion";
pub const ID: &str = "ce_id";
pub const TYPE: &str = "ce_type";
pub const SOURCE: &str = "ce_source";
pub const TIME: &str = "ce_time";
/// The return this event belongs to (an extension attribute).
pub const CORRELATION_ID: &str = "ce_correlationid";
/// The id of the event that caused this one (an extension attribute).
pub const CAUSATION_ID: &str = "ce_causationid";
pub const CONTENT_TYPE: &str = "content-type";

/// Namespace for ids derived from a record's place in the log, for records written without one.
const DERIVED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b7e_35a4_4d0e_9b1f_7c3e_52a8_d901);

/// The attributes of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    /// Name and version, e.g. `returns.RefundRequest.v1`.
    pub event_type: String,
    pub source: String,
    pub time: OffsetDateTime,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
}

impl Envelope {
    /// A new event happening now, with a fresh id.
    pub fn new(event_type: impl Into<String>, source: impl Into<String>) -> Self {
        Envelope {
            id: Uuid::now_v7().to_string(),
            event_type: event_type.into(),
            source: source.into(),
            time: OffsetDateTime::now_utc(),
            correlation_id: None,
            causation_id: None,
        }
    }

    pub fn correlated(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    pub fn caused_by(mut self, causation_id: impl Into<String>) -> Self {
        self.causation_id = Some(causation_id.into());
        self
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    pub fn to_headers(&self) -> Vec<(String, String)> {
        let mut h = vec![
            (SPECVERSION.into(), "1.0".into()),
            (ID.into(), self.id.clone()),
            (TYPE.into(), self.event_type.clone()),
            (SOURCE.into(), self.source.clone()),
            (TIME.into(), self.time.format(&Rfc3339).unwrap_or_default()),
            (CONTENT_TYPE.into(), "application/json".into()),
        ];
        if let Some(c) = &self.correlation_id {
            h.push((CORRELATION_ID.into(), c.clone()));
        }
        if let Some(c) = &self.causation_id {
            h.push((CAUSATION_ID.into(), c.clone()));
        }
        h
    }

    /// Read the attributes of a record. A record written without them (for example typed into a
    /// console producer) gets an id derived from its place in the log, so it is the same on every
    /// delivery; its time is the log's timestamp; its type is `default_type`.
    pub fn from_record(record: &Record, default_type: &str) -> Envelope {
        let time = record
            .header(TIME)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .or_else(|| {
                OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(record.timestamp_ms) * 1_000_000,
                )
                .ok()
            })
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Envelope {
            id: record
                .header(ID)
                .map(str::to_string)
                .unwrap_or_else(|| derived_id(&record.topic, record.partition, record.offset)),
            event_type: record.header(TYPE).unwrap_or(default_type).to_string(),
            source: record.header(SOURCE).unwrap_or("unknown").to_string(),
            time,
            correlation_id: record.header(CORRELATION_ID).map(str::to_string),
            causation_id: record.header(CAUSATION_ID).map(str::to_string),
        }
    }
}

/// A stable event id for a record that has none: a UUID v5 of its topic, partition and offset.
pub fn derived_id(topic: &str, partition: u32, offset: u64) -> String {
    Uuid::new_v5(
        &DERIVED_ID_NAMESPACE,
        format!("{topic}/{partition}/{offset}").as_bytes(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: Vec<(String, String)>) -> Record {
        Record {
            topic: "returnOrders".into(),
            partition: 1,
            offset: 42,
            key: None,
            timestamp_ms: 1_767_225_600_000,
            headers,
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn headers_round_trip() {
        let env = Envelope::new("returns.RefundRequest.v1", "/user-support")
            .correlated("r-1")
            .caused_by("e-0");
        let back = Envelope::from_record(&record(env.to_headers()), "ignored");
        assert_eq!(back.id, env.id);
        assert_eq!(back.event_type, env.event_type);
        assert_eq!(back.source, env.source);
        assert_eq!(back.correlation_id.as_deref(), Some("r-1"));
        assert_eq!(back.causation_id.as_deref(), Some("e-0"));
        assert_eq!(
            back.time.unix_timestamp_nanos() / 1000,
            env.time.unix_timestamp_nanos() / 1000
        );
    }

    #[test]
    fn a_record_without_headers_gets_a_stable_derived_id() {
        let a = Envelope::from_record(&record(vec![]), "returns.RefundRequest.v1");
        let b = Envelope::from_record(&record(vec![]), "returns.RefundRequest.v1");
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, derived_id("returnOrders", 1, 42));
        assert_ne!(a.id, derived_id("returnOrders", 1, 43));
        assert_eq!(a.event_type, "returns.RefundRequest.v1");
        assert_eq!(a.time.unix_timestamp(), 1_767_225_600);
    }
}
