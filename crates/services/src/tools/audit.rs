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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use returns_eventlog::envelope::Envelope;
use returns_eventlog::wire::REFUND_REQUEST_DEFAULT_TYPE;
use returns_eventlog::{team_topic, EventLog, Position, Record, RETURN_ORDERS};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::user_support::intake::USER_SUPPORT;
use crate::views::projection::{decode_returns_event, ReturnsEvent};
use crate::ServiceError;

/// Who wrote a topic, for a reader: `user-support`, a team's name, or `dead-letters`.
pub fn topic_owner(topic: &str) -> String {
    if topic == RETURN_ORDERS {
        return USER_SUPPORT.into();
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
            outcome: outcome(record, &envelope.event_type),
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

fn outcome(record: &Record, event_type: &str) -> String {
    if let Some(kind) = record.header("dlt_error_kind") {
        return format!("dead-lettered: {kind}");
    }
    match decode_returns_event(record) {
        Ok(ReturnsEvent::Requested { request: r, .. }) => format!(
            "requested: order {}, {} {}, defect {}",
            r.order_id, r.model, r.serial, r.reason.defect
        ),
        Ok(ReturnsEvent::Decided { decision, .. }) => {
            let kind = decision.event_type();
            match decision.outcome().rejection {
                Some(reason) => format!("{kind} (rejected: {reason})"),
                None => kind.to_string(),
            }
        }
        Err(skip) => format!("{event_type}, not readable by this build: {}", skip.reason),
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
    scan(log, audited_topics(log).await?, return_id, &mut entries).await?;
    causal_order(&mut entries);
    Ok(entries)
}

/// [`timeline`] without scanning: the records at `located` (where User Support's status view
/// noted the return's records, [`crate::views::projection::ViewStore::located`]), and what the
/// dead-letter topics hold about it (the view does not read them; they are read whole). A
/// record the view has not read yet is not in it.
pub async fn timeline_at(
    log: &dyn EventLog,
    return_id: &str,
    located: &[Position],
) -> Result<Vec<AuditEntry>, ServiceError> {
    let mut entries = Vec::new();
    for at in located {
        let page = log.read(&at.topic, at.partition, at.offset, 1).await?;
        entries.extend(
            page.iter()
                .filter(|r| r.offset == at.offset)
                .map(AuditEntry::from_record),
        );
    }
    let dead_letters = audited_topics(log)
        .await?
        .into_iter()
        .filter(|t| t.ends_with(".dlt"))
        .collect();
    scan(log, dead_letters, return_id, &mut entries).await?;
    causal_order(&mut entries);
    Ok(entries)
}

/// Every record of `topics` keyed by the return or correlated with it.
async fn scan(
    log: &dyn EventLog,
    topics: Vec<String>,
    return_id: &str,
    entries: &mut Vec<AuditEntry>,
) -> Result<(), ServiceError> {
    for topic in topics {
        log.for_each_record(&topic, &mut |record| {
            let ours = record.key.as_deref() == Some(return_id)
                || record.header(returns_eventlog::envelope::CORRELATION_ID) == Some(return_id);
            if ours {
                entries.push(AuditEntry::from_record(&record));
            }
        })
        .await?;
    }
    Ok(())
}

/// Order a trail so that every event comes after the event that caused it (when the trail
/// holds it), and otherwise by time, then by place in the log: a topological sort that always
/// takes the earliest event whose cause is already placed.
fn causal_order(entries: &mut Vec<AuditEntry>) {
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    let mut ready = BinaryHeap::new();
    let rank = |i: usize| {
        let e = &entries[i];
        Reverse((e.time_ns, e.topic.clone(), e.partition, e.offset, i))
    };
    for (i, e) in entries.iter().enumerate() {
        match e.causation_id.as_deref().and_then(|c| index.get(c)) {
            Some(&cause) if cause != i => children[cause].push(i),
            _ => ready.push(rank(i)),
        }
    }
    let mut order = Vec::with_capacity(entries.len());
    let mut placed = vec![false; entries.len()];
    while let Some(Reverse((.., i))) = ready.pop() {
        placed[i] = true;
        order.push(i);
        for &child in &children[i] {
            ready.push(rank(child));
        }
    }
    // Only hand-made records can form a causation cycle; they go last, by time.
    let mut rest: Vec<usize> = (0..entries.len()).filter(|&i| !placed[i]).collect();
    rest.sort_by_key(|&i| rank(i).0);
    order.extend(rest);
    let mut taken: Vec<Option<AuditEntry>> =
        std::mem::take(entries).into_iter().map(Some).collect();
    *entries = order
        .into_iter()
        .map(|i| taken[i].take().expect("each index once"))
        .collect();
}

/// One team's own log, oldest first, from `since` on: its topic, or for `user-support`
/// `returnOrders`. `None` when that topic does not exist yet.
pub async fn team_log(
    log: &dyn EventLog,
    team: &str,
    since: Option<OffsetDateTime>,
) -> Result<Option<Vec<AuditEntry>>, ServiceError> {
    // User Support's own log is the one it publishes to.
    let topic = if team == USER_SUPPORT {
        RETURN_ORDERS.to_string()
    } else {
        team_topic(team)
    };
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
    fn a_second_request_and_its_decisions_come_in_their_own_time() {
        // A return published twice: each decision follows its own request, in time order,
        // rather than both requests first.
        let mut entries = vec![
            entry("d2", Some("req2"), 6, "returns.sales.events"),
            entry("req2", None, 5, RETURN_ORDERS),
            entry("d1", Some("req1"), 3, "returns.sales.events"),
            entry("req1", None, 1, RETURN_ORDERS),
        ];
        causal_order(&mut entries);
        let ids: Vec<_> = entries.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["req1", "d1", "req2", "d2"]);
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
