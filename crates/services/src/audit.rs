//! The audit trail, read straight from the log: one return's timeline across every team, or one
//! team's own log.
//!
//! Nothing here opens a team's store. The request sits on `returnOrders`, each team's decision on
//! its own topic (`returns.<team>.events`, a team that joined late included), and every record a
//! team set aside on a dead-letter topic. All of them carry the return id as their key and their
//! correlation id, and each decision names the request that caused it.
//!
//! A timeline reads every such topic whole (the log has no index by key), which is fine for
//! demo-sized logs: about a second per 100,000 records on the embedded log.

use std::collections::HashMap;

use returns_eventlog::envelope::Envelope;
use returns_eventlog::wire::{self, REFUND_REQUEST_DEFAULT_TYPE};
use returns_eventlog::{team_topic, EventLog, Record, RETURN_ORDERS};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ServiceError;

/// Who wrote a topic, for a reader: `user-support`, a team's name, or `dead-letters`.
pub fn topic_owner(topic: &str) -> String {
    if topic == RETURN_ORDERS {
        return "user-support".into();
    }
    if topic.ends_with(".dlt") {
        return "dead-letters".into();
    }
    topic
        .strip_prefix("returns.")
        .and_then(|t| t.strip_suffix(".events"))
        .unwrap_or(topic)
        .to_string()
}

/// One event in an audit trail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    /// RFC 3339.
    pub time: String,
    /// Who wrote it (see [`topic_owner`]).
    pub team: String,
    pub event_type: String,
    /// What happened, in a few words: `OrderRefunded`, `rejected: OrderAlreadyRefunded`,
    /// `dead-lettered: unknown_version`, or a request's order, model and defect.
    pub outcome: String,
    pub event_id: String,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// The payload as JSON (a string when it is not JSON).
    pub data: serde_json::Value,
    #[serde(skip)]
    time_ns: i128,
}

impl AuditEntry {
    fn from_record(record: &Record) -> AuditEntry {
        let default_type = if record.topic == RETURN_ORDERS {
            REFUND_REQUEST_DEFAULT_TYPE
        } else {
            ""
        };
        let envelope = Envelope::from_record(record, default_type);
        let data = serde_json::from_slice(&record.payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&record.payload).into_owned())
        });
        let team = match record.header("dlt_group") {
            Some(group) => format!(
                "{} (dead letter)",
                group.strip_prefix("returns.").unwrap_or(group)
            ),
            None => topic_owner(&record.topic),
        };
        AuditEntry {
            time: envelope.time.format(&Rfc3339).unwrap_or_default(),
            team,
            outcome: outcome(record, &data),
            event_type: envelope.event_type,
            event_id: envelope.id,
            correlation_id: envelope.correlation_id,
            causation_id: envelope.causation_id,
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            data,
            time_ns: envelope.time.unix_timestamp_nanos(),
        }
    }
}

fn outcome(record: &Record, data: &serde_json::Value) -> String {
    if let Some(kind) = record.header("dlt_error_kind") {
        return format!("dead-lettered: {kind}");
    }
    if record.topic == RETURN_ORDERS {
        return match wire::decode_refund_request(record).1 {
            Ok(r) => format!(
                "requested: order {}, {} {}, defect {}",
                r.order_id, r.model, r.serial, r.reason.defect
            ),
            Err(e) => format!("unreadable: {e}"),
        };
    }
    let kind = data.get("type").and_then(|t| t.as_str()).unwrap_or("?");
    match data
        .get("reason")
        .and_then(|r| r.get("code"))
        .and_then(|c| c.as_str())
    {
        Some(code) => format!("{kind} (rejected: {code})"),
        None => kind.to_string(),
    }
}

/// Every topic an audit reads: `returnOrders`, every team's topic and every dead-letter topic
/// that exists.
async fn audited_topics(log: &dyn EventLog) -> Result<Vec<String>, ServiceError> {
    Ok(log
        .topics()
        .await?
        .into_iter()
        .filter(|t| {
            t == RETURN_ORDERS
                || t.ends_with(".dlt")
                || (t.starts_with("returns.") && t.ends_with(".events"))
        })
        .collect())
}

/// Everything the log holds about one return, in causal order: the request first, then what
/// each team did about it (by time), then anything set aside.
pub async fn timeline(
    log: &dyn EventLog,
    return_id: &str,
) -> Result<Vec<AuditEntry>, ServiceError> {
    let mut entries = Vec::new();
    for topic in audited_topics(log).await? {
        log.for_each_record(&topic, &mut |record| {
            let ours = record.key.as_deref() == Some(return_id)
                || record.header(returns_eventlog::envelope::CORRELATION_ID) == Some(return_id);
            if ours {
                entries.push(AuditEntry::from_record(&record));
            }
        })
        .await?;
    }
    causal_order(&mut entries);
    Ok(entries)
}

/// Sort so that every event comes after the event that caused it (when the trail holds it),
/// and otherwise by time, then by place in the log.
fn causal_order(entries: &mut [AuditEntry]) {
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.as_str(), i))
        .collect();
    let depth = |mut i: usize| {
        let mut d = 0u32;
        while let Some(&cause) = entries[i]
            .causation_id
            .as_deref()
            .and_then(|c| index.get(c))
        {
            d += 1;
            i = cause;
            if d as usize > entries.len() {
                break; // a causation cycle: only hand-made records can have one
            }
        }
        d
    };
    let depths: Vec<u32> = (0..entries.len()).map(depth).collect();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&entries[a], &entries[b]);
        (depths[a], x.time_ns, &x.topic, x.partition, x.offset).cmp(&(
            depths[b],
            y.time_ns,
            &y.topic,
            y.partition,
            y.offset,
        ))
    });
    let sorted: Vec<AuditEntry> = order.iter().map(|&i| entries[i].clone()).collect();
    entries.clone_from_slice(&sorted);
}

/// One team's own log, oldest first, from `since` on. `None` when the team has no topic yet.
pub async fn team_log(
    log: &dyn EventLog,
    team: &str,
    since: Option<OffsetDateTime>,
) -> Result<Option<Vec<AuditEntry>>, ServiceError> {
    let topic = team_topic(team);
    if !log.topics().await?.contains(&topic) {
        return Ok(None);
    }
    let since_ns = since.map_or(i128::MIN, |t| t.unix_timestamp_nanos());
    let mut entries = Vec::new();
    log.for_each_record(&topic, &mut |record| {
        let entry = AuditEntry::from_record(&record);
        if entry.time_ns >= since_ns {
            entries.push(entry);
        }
    })
    .await?;
    entries.sort_by(|x, y| {
        (x.time_ns, x.partition, x.offset).cmp(&(y.time_ns, y.partition, y.offset))
    });
    Ok(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, cause: Option<&str>, time_ns: i128, topic: &str) -> AuditEntry {
        AuditEntry {
            time: String::new(),
            team: topic_owner(topic),
            event_type: String::new(),
            outcome: String::new(),
            event_id: id.into(),
            correlation_id: None,
            causation_id: cause.map(str::to_string),
            topic: topic.into(),
            partition: 0,
            offset: 0,
            data: serde_json::Value::Null,
            time_ns,
        }
    }

    #[test]
    fn causes_come_first_even_when_their_clock_is_later() {
        // The request's time is set by User Support's clock, the teams' by theirs: a team's
        // event may carry an earlier time than the request that caused it.
        let mut entries = vec![
            entry("sales-1", Some("req"), 5, "returns.sales.events"),
            entry("req", None, 10, RETURN_ORDERS),
            entry("inv-1", Some("req"), 3, "returns.inventory.events"),
            entry("stray", Some("not-in-trail"), 1, "returns.quality.events"),
        ];
        causal_order(&mut entries);
        let ids: Vec<_> = entries.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["stray", "req", "inv-1", "sales-1"]);
    }

    #[test]
    fn topic_owners() {
        assert_eq!(topic_owner(RETURN_ORDERS), "user-support");
        assert_eq!(topic_owner("returns.sales.events"), "sales");
        assert_eq!(topic_owner("returns.quality.events"), "quality");
        assert_eq!(
            topic_owner("returnOrders.returns.sales.dlt"),
            "dead-letters"
        );
    }
}
