//! `GET /events`: what the dashboard watches, as server-sent events.
//!
//! - `teams`: the `GET /teams` answer (each team's position, lag, counts, online or not), at
//!   once on connecting, then every [`TEAMS_EVERY`] while anyone listens. One task computes it
//!   for every listener. While the log does not answer, `unavailable` comes instead, with the
//!   error (`{"error": {"kind": "unavailable", ...}}`), so a page never shows stale numbers as
//!   live.
//! - `records`: what User Support's status view has just read from the log: requests on
//!   `returnOrders` and each team's events, one lane each. The view's runner hands every
//!   applied batch to [`Live::tap`]; a task sends what gathered every [`RECORDS_EVERY`], at most
//!   [`PER_LANE`] records per lane (the newest; the rest are counted in `dropped`). On
//!   connecting, a listener first gets the latest [`PER_LANE`] of each lane.
//!
//! So the lanes show the log as a reader of the log sees it, not the teams' internals: a team
//! taken offline writes nothing, and its lane stays still while its lag grows.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use returns_domain::ReturnId;
use returns_eventlog::{team_topic, RETURN_ORDERS};
use returns_services::views::projection::{view_teams, Incoming, ReturnsEvent};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::api::{team_rows, Api};
use crate::{ErrorBody, ErrorDetail};

/// `GET /events`.
pub const EVENTS_PATH: &str = "/events";
/// How often listeners get the teams' rows.
pub const TEAMS_EVERY: Duration = Duration::from_millis(500);
/// How often gathered records are sent.
pub const RECORDS_EVERY: Duration = Duration::from_millis(250);
/// Records per lane in one message, and kept for a new listener.
pub const PER_LANE: usize = 25;
/// The lane of `returnOrders`.
pub const REQUESTS_LANE: &str = "requests";

/// One record as a lane shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveRecord {
    /// `requests`, or the team whose topic it is on.
    pub lane: &'static str,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub return_id: Option<String>,
    /// `RefundRequest`, or the team's event (`OrderRefunded`, ...), or why it is unreadable.
    pub event_type: String,
    /// `request`, `accepted`, `rejected` or `unreadable`.
    pub outcome: &'static str,
    /// A rejection's business reason, or why the record is unreadable.
    pub reason: Option<String>,
    /// A few words for people.
    pub summary: String,
    /// The event's time (RFC 3339); `null` for an unreadable record.
    pub time: Option<String>,
}

/// A `records` message.
#[derive(Debug, Default, Serialize)]
pub struct RecordsMessage {
    pub records: Vec<LiveRecord>,
    /// Per lane, records that arrived but are not in `records` (more than [`PER_LANE`]).
    pub dropped: BTreeMap<&'static str, u64>,
}

/// The hub between the status view's runner, the teams' rows and the listeners.
pub struct Live {
    gathered: Mutex<Lanes>,
    recent: Mutex<Lanes>,
    records: broadcast::Sender<Arc<str>>,
    /// The latest `teams` (or `unavailable`) event: its name and data.
    teams: watch::Sender<Option<(&'static str, Arc<str>)>>,
    stop: CancellationToken,
}

#[derive(Default)]
struct Lanes {
    lanes: BTreeMap<&'static str, VecDeque<LiveRecord>>,
    dropped: BTreeMap<&'static str, u64>,
}

impl Lanes {
    fn push(&mut self, record: LiveRecord) {
        let lane = self.lanes.entry(record.lane).or_default();
        if lane.len() == PER_LANE {
            lane.pop_front();
            *self.dropped.entry(record.lane).or_default() += 1;
        }
        lane.push_back(record);
    }

    fn message(&self) -> RecordsMessage {
        RecordsMessage {
            records: self.lanes.values().flatten().cloned().collect(),
            dropped: self.dropped.clone(),
        }
    }
}

impl Live {
    /// Listeners' streams end when `stop` is cancelled (a server shutting down does not wait
    /// for them).
    pub fn new(stop: CancellationToken) -> Live {
        Live {
            gathered: Mutex::default(),
            recent: Mutex::default(),
            records: broadcast::channel(64).0,
            teams: watch::channel(None).0,
            stop,
        }
    }

    /// Give the status view's runner this (`ProjectionRunner::with_tap`).
    pub fn tap(self: &Arc<Self>) -> impl Fn(&[Incoming<ReturnsEvent>]) + Send + Sync + 'static {
        let live = Arc::clone(self);
        move |batch| {
            let mut gathered = live.gathered.lock().unwrap_or_else(PoisonError::into_inner);
            for record in batch.iter().filter_map(live_record) {
                gathered.push(record);
            }
        }
    }

    /// Send what gathered and the teams' rows, until the hub's stop.
    pub async fn run(self: Arc<Self>, api: Api) {
        let mut records = tokio::time::interval(RECORDS_EVERY);
        let mut teams = tokio::time::interval(TEAMS_EVERY);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = records.tick() => self.flush(),
                _ = teams.tick() => {
                    if self.teams.receiver_count() == 0 {
                        continue;
                    }
                    let (name, data) = teams_event(&api).await;
                    self.teams.send_replace(Some((name, data.into())));
                }
            }
        }
    }

    fn flush(&self) {
        let gathered =
            std::mem::take(&mut *self.gathered.lock().unwrap_or_else(PoisonError::into_inner));
        if gathered.lanes.is_empty() {
            return;
        }
        let message = gathered.message();
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            for record in &message.records {
                recent.push(record.clone());
            }
        }
        let json = serde_json::to_string(&message).expect("records serialize");
        // No listener: nothing to do (the recent lanes keep the latest).
        let _ = self.records.send(json.into());
    }

    fn recent(&self) -> Option<String> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.lanes.is_empty() {
            return None;
        }
        let message = RecordsMessage {
            records: recent.message().records,
            dropped: BTreeMap::new(),
        };
        Some(serde_json::to_string(&message).expect("records serialize"))
    }
}

/// The `teams` event now, or `unavailable` with the reason.
async fn teams_event(api: &Api) -> (&'static str, String) {
    match team_rows(api).await {
        Ok(rows) => (
            "teams",
            serde_json::to_string(&rows).expect("rows serialize"),
        ),
        Err(e) => {
            tracing::debug!(error = %e, "teams' rows not available");
            let body = ErrorBody {
                error: ErrorDetail {
                    kind: "unavailable".to_string(),
                    field: None,
                    message: e.to_string(),
                },
            };
            (
                "unavailable",
                serde_json::to_string(&body).expect("errors serialize"),
            )
        }
    }
}

/// A batch record as a lane shows it; `None` for a topic no lane shows.
fn live_record(incoming: &Incoming<ReturnsEvent>) -> Option<LiveRecord> {
    let lane = if incoming.topic == RETURN_ORDERS {
        REQUESTS_LANE
    } else {
        view_teams().find(|team| team_topic(team) == incoming.topic)?
    };
    let time = |t: time::OffsetDateTime| t.format(&Rfc3339).ok();
    let (return_id, event_type, outcome, reason, summary, at) = match &incoming.event {
        Ok(ReturnsEvent::Requested { envelope, request }) => (
            Some(request.return_id.to_string()),
            "RefundRequest".to_string(),
            "request",
            None,
            format!(
                "{} · {} · {}",
                request.model, request.reason.defect, request.item_location
            ),
            time(envelope.time),
        ),
        Ok(ReturnsEvent::Decided { envelope, decision }) => {
            let outcome = decision.outcome();
            let event_type = decision.event_type();
            (
                Some(decision.return_id().to_string()),
                event_type.to_string(),
                if outcome.rejection.is_some() {
                    "rejected"
                } else {
                    "accepted"
                },
                outcome.rejection.map(str::to_string),
                match outcome.rejection {
                    Some(reason) => format!("rejected: {reason}"),
                    None => event_type.to_string(),
                },
                time(envelope.time),
            )
        }
        // The key names the return only when it is one (a raw line may carry anything).
        Err(skip) => (
            incoming
                .key
                .as_deref()
                .and_then(|k| k.parse::<ReturnId>().ok())
                .map(|id| id.to_string()),
            skip.kind.to_string(),
            "unreadable",
            Some(skip.reason.clone()),
            format!("unreadable: {}", skip.kind),
            None,
        ),
    };
    Some(LiveRecord {
        lane,
        topic: incoming.topic.clone(),
        partition: incoming.partition,
        offset: incoming.offset,
        return_id,
        event_type,
        outcome,
        reason,
        summary,
        time: at,
    })
}

/// `GET /events`.
pub(crate) async fn events(State(api): State<Api>) -> impl IntoResponse {
    let live = Arc::clone(api.live());
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(16);
    let mut records = live.records.subscribe();
    let mut teams = live.teams.subscribe();
    tokio::spawn(async move {
        let send = |name: &str, data: &str| {
            let event = Event::default().event(name).data(data);
            let tx = tx.clone();
            async move { tx.send(Ok(event)).await.is_ok() }
        };
        // The rows now (not in half a second), then the lanes' latest.
        let (name, data) = teams_event(&api).await;
        if !send(name, &data).await {
            return;
        }
        teams.mark_unchanged();
        if let Some(recent) = live.recent() {
            if !send("records", &recent).await {
                return;
            }
        }
        loop {
            let sent = tokio::select! {
                _ = live.stop.cancelled() => return,
                _ = tx.closed() => return,
                changed = teams.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let latest = teams.borrow_and_update().clone();
                    match latest {
                        Some((name, data)) => send(name, &data).await,
                        None => true,
                    }
                }
                message = records.recv() => match message {
                    Ok(message) => send("records", &message).await,
                    // A slow listener missed some: it gets the next ones.
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if !sent {
                return;
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lane: &'static str, offset: u64) -> LiveRecord {
        LiveRecord {
            lane,
            topic: "t".into(),
            partition: 0,
            offset,
            return_id: None,
            event_type: "X".into(),
            outcome: "accepted",
            reason: None,
            summary: String::new(),
            time: None,
        }
    }

    #[test]
    fn a_lane_keeps_its_newest_records_and_counts_the_rest() {
        let mut lanes = Lanes::default();
        for offset in 0..(PER_LANE as u64 + 7) {
            lanes.push(record("sales", offset));
        }
        lanes.push(record("inventory", 0));
        let message = lanes.message();
        let sales: Vec<u64> = message
            .records
            .iter()
            .filter(|r| r.lane == "sales")
            .map(|r| r.offset)
            .collect();
        assert_eq!(sales.len(), PER_LANE);
        assert_eq!(sales.first(), Some(&7), "the oldest seven are dropped");
        assert_eq!(message.dropped.get("sales"), Some(&7));
        assert_eq!(message.dropped.get("inventory"), None);
    }
}
