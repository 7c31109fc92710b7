//! User Support's status view: "where is my return?", answered from events alone.
//!
//! The view reads `returnOrders` and the teams' topics as its own consumer group,
//! [`StatusView::GROUP`], into its own file, `<data>/user-support-status.db`. It never calls a
//! team and never opens a team's store: what a team decided is what it published.
//!
//! | table | holds |
//! |---|---|
//! | `requests` | per return: when it was requested and published, and the request's event id |
//! | `outcomes` | per return and team: each event the team published about it |

use returns_domain::ReturnId;
use returns_eventlog::RETURN_ORDERS;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

use crate::views::projection::{
    rfc3339_us, unix_us, Incoming, Projection, ReturnsEvent, ReturnsEvents, ViewStore,
    OBSERVING_TEAMS, REACTING_TEAMS,
};
use crate::ServiceError;

/// The status view's projection.
pub struct StatusView;

/// The status view's own store.
pub type StatusStore = ViewStore<StatusView>;

impl Projection for StatusView {
    const NAME: &'static str = "user-support-status";
    /// User Support's group for this view: named after the team that owns it and the view, so
    /// it can never be taken for a team's group (`returns.<team>`) or another view's.
    const GROUP: &'static str = "returns.user-support.status";
    type Source = ReturnsEvents;

    fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS requests (
                 return_id       TEXT PRIMARY KEY,
                 event_id        TEXT NOT NULL,
                 requested_at_ms INTEGER NOT NULL,
                 published_us    INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS outcomes (
                 return_id  TEXT NOT NULL,
                 team       TEXT NOT NULL,
                 event_id   TEXT NOT NULL,
                 event_type TEXT NOT NULL,
                 kind       TEXT NOT NULL,
                 rejection  TEXT,
                 at_us      INTEGER NOT NULL,
                 PRIMARY KEY (return_id, team, event_id)
             ) WITHOUT ROWID;",
        )
    }

    /// Every record is noted under its return, so a timeline reads only those records
    /// ([`crate::tools::audit::timeline_at`]).
    fn locate(record: &Incoming<ReturnsEvent>) -> Option<String> {
        match &record.event {
            Ok(ReturnsEvent::Requested { request, .. }) => Some(request.return_id.to_string()),
            Ok(ReturnsEvent::Decided { decision, .. }) => Some(decision.return_id().to_string()),
            Err(_) => record.key.clone(),
        }
    }

    fn write(tx: &Transaction<'_>, event: &ReturnsEvent) -> rusqlite::Result<()> {
        match event {
            // The first request of a return is the one that counts.
            ReturnsEvent::Requested { envelope, request } => tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO requests
                     (return_id, event_id, requested_at_ms, published_us) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    request.return_id.to_string(),
                    envelope.id,
                    request.requested_at.unix_millis(),
                    unix_us(envelope)
                ])?,
            ReturnsEvent::Decided { envelope, decision } => {
                let outcome = decision.outcome();
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO outcomes
                     (return_id, team, event_id, event_type, kind, rejection, at_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    decision.return_id().to_string(),
                    decision.team(),
                    envelope.id,
                    envelope.event_type,
                    outcome.kind,
                    outcome.rejection,
                    unix_us(envelope)
                ])?
            }
        };
        Ok(())
    }
}

/// Where one return stands with every reacting team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnStatus {
    pub return_id: String,
    /// The request as User Support published it; `None` when teams' events about the return
    /// were seen but the request was not.
    pub request: Option<RequestSeen>,
    /// Why the request is missing, when the view holds a record for this return on
    /// `returnOrders` that it cannot read. `None` with no request: the view has read no
    /// request for the return at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable_request: Option<UnreadableRequest>,
    /// One entry per reacting team, in the order the teams are named; then one per observing
    /// team (Quality) that has published about the return (nobody waits for those).
    pub teams: Vec<TeamStatus>,
    /// The view has read the request and every reacting team's decision about it. A decision
    /// read before its request (they are on different topics, and on Kafka nothing orders
    /// topics against each other) leaves the return incomplete until the request is read.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestSeen {
    pub event_id: String,
    /// When the customer asked (the request's own time).
    pub requested_at: String,
    /// When User Support published it (the event's time).
    pub published_at: String,
}

/// A record on `returnOrders` keyed by the return that the view cannot read (yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableRequest {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub event_id: String,
    /// `unknown_version`, `malformed`, ...
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No event from the team yet.
    Pending,
    Accepted,
    /// Refused, for the business reason named in the decision.
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamStatus {
    pub team: &'static str,
    pub status: Status,
    /// The team's event about the return (its first, should it have published more than one).
    #[serde(flatten)]
    pub decision: Option<Decision>,
}

impl TeamStatus {
    fn of(team: &'static str, decision: Option<Decision>) -> Self {
        let status = match &decision {
            None => Status::Pending,
            Some(d) if d.reason.is_some() => Status::Rejected,
            Some(_) => Status::Accepted,
        };
        TeamStatus {
            team,
            status,
            decision,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Versioned, e.g. `returns.sales.OrderRefunded.v1`.
    pub event_type: String,
    /// snake_case, e.g. `order_refunded`.
    pub kind: String,
    /// The business reason of a rejection, e.g. `OrderAlreadyRefunded`.
    pub reason: Option<String>,
    pub event_id: String,
    /// The event's time.
    pub at: String,
}

impl ViewStore<StatusView> {
    /// The return's status, or `None` when the view has seen nothing about it.
    pub fn status(&self, return_id: &ReturnId) -> Result<Option<ReturnStatus>, ServiceError> {
        let id = return_id.to_string();
        let request = self
            .conn()
            .query_row(
                "SELECT event_id, requested_at_ms, published_us FROM requests WHERE return_id = ?1",
                [&id],
                |r| {
                    let requested_ms: i64 = r.get(1)?;
                    Ok(RequestSeen {
                        event_id: r.get(0)?,
                        requested_at: rfc3339_us(requested_ms.saturating_mul(1000)),
                        published_at: rfc3339_us(r.get(2)?),
                    })
                },
            )
            .optional()
            .map_err(self.err())?;
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT team, event_type, kind, rejection, event_id, at_us FROM outcomes
                 WHERE return_id = ?1 ORDER BY at_us, event_id",
            )
            .map_err(self.err())?;
        let events: Vec<(String, Decision)> = stmt
            .query_map([&id], |r| {
                Ok((
                    r.get(0)?,
                    Decision {
                        event_type: r.get(1)?,
                        kind: r.get(2)?,
                        reason: r.get(3)?,
                        event_id: r.get(4)?,
                        at: rfc3339_us(r.get(5)?),
                    },
                ))
            })
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        if request.is_none() && events.is_empty() {
            return Ok(None);
        }
        let unreadable_request = match request {
            Some(_) => None,
            None => self
                .conn()
                .query_row(
                    "SELECT topic, partition, offset, event_id, kind, reason FROM skipped
                     WHERE key = ?1 AND topic = ?2 ORDER BY offset LIMIT 1",
                    params![id, RETURN_ORDERS],
                    |r| {
                        Ok(UnreadableRequest {
                            topic: r.get(0)?,
                            partition: r.get(1)?,
                            offset: r.get::<_, i64>(2)? as u64,
                            event_id: r.get(3)?,
                            kind: r.get(4)?,
                            reason: r.get(5)?,
                        })
                    },
                )
                .optional()
                .map_err(self.err())?,
        };
        let decision_of = |team: &str| {
            events
                .iter()
                .find(|(t, _)| t == team)
                .map(|(_, d)| d.clone())
        };
        let mut teams: Vec<TeamStatus> = REACTING_TEAMS
            .iter()
            .map(|team| TeamStatus::of(team, decision_of(team)))
            .collect();
        let complete = request.is_some() && teams.iter().all(|t| t.status != Status::Pending);
        teams.extend(OBSERVING_TEAMS.iter().filter_map(|team| {
            decision_of(team).map(|decision| TeamStatus::of(team, Some(decision)))
        }));
        Ok(Some(ReturnStatus {
            return_id: id,
            request,
            unreadable_request,
            teams,
            complete,
        }))
    }

    /// How many returns the view knows the request of.
    pub fn returns_known(&self) -> Result<u64, ServiceError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM requests", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use returns_domain::{Accounting, Generator, Inventory, Manufacturing, Quality, Sales, Team};

    use super::*;
    use crate::views::projection::testkit::{
        bad_request, decided, first_decision, incoming, requested,
    };

    #[test]
    fn a_return_shows_each_team_decided_or_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StatusStore::open(dir.path()).unwrap();
        let req = Generator::new(3).request(0);
        // Sales has refunded this order already: the same request is refused, with a reason.
        let mut order = Sales::initial(&Sales::key(&req));
        Sales::evolve(&mut order, &first_decision::<Sales>(&req));
        let refused = Sales::decide(&order, &req);
        let batch = vec![
            requested(&req, 0, 1_000),
            decided::<Sales>(&refused, 0, 2_000),
            decided::<Accounting>(&first_decision::<Accounting>(&req), 0, 3_000),
        ];
        let counts = store.apply(&incoming::<StatusView>(&batch)).unwrap();
        assert_eq!(counts.applied, 3);

        let status = store.status(&req.return_id).unwrap().unwrap();
        assert_eq!(status.return_id, req.return_id.to_string());
        let request = status.request.as_ref().unwrap();
        assert_eq!(request.requested_at, req.requested_at.to_rfc3339());
        assert_eq!(request.published_at, "1970-01-01T00:00:01Z");
        assert_eq!(request.event_id, batch[0].header("ce_id").unwrap());
        assert!(!status.complete);
        let by_team: Vec<(&str, Status, Option<&str>)> = status
            .teams
            .iter()
            .map(|t| {
                (
                    t.team,
                    t.status,
                    t.decision.as_ref().and_then(|d| d.reason.as_deref()),
                )
            })
            .collect();
        assert_eq!(
            by_team,
            vec![
                ("sales", Status::Rejected, Some("OrderAlreadyRefunded")),
                ("inventory", Status::Pending, None),
                ("manufacturing", Status::Pending, None),
                ("accounting", Status::Accepted, None),
            ]
        );
        let sales = status.teams[0].decision.as_ref().unwrap();
        assert_eq!(sales.event_type, "returns.sales.RefundRejected.v1");
        assert_eq!(sales.kind, "refund_rejected");
        assert_eq!(sales.event_id, batch[1].header("ce_id").unwrap());
        assert_eq!(sales.at, "1970-01-01T00:00:02Z");

        assert_eq!(
            status.teams.len(),
            4,
            "Quality shows only once it has published"
        );

        // Quality, an observer, is listed once it has published, and nobody waits for it.
        let batch = vec![decided::<Quality>(
            &first_decision::<Quality>(&req),
            0,
            4_000,
        )];
        store.apply(&incoming::<StatusView>(&batch)).unwrap();
        let status = store.status(&req.return_id).unwrap().unwrap();
        assert_eq!(status.teams.len(), 5);
        assert_eq!(
            (status.teams[4].team, status.teams[4].status),
            ("quality", Status::Accepted)
        );
        assert!(!status.complete);

        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["teams"][1]["status"], "pending");
        assert_eq!(json["teams"][0]["reason"], "OrderAlreadyRefunded");
    }

    #[test]
    fn every_record_of_a_return_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StatusStore::open(dir.path()).unwrap();
        let (a, b) = (Generator::new(5).request(0), Generator::new(5).request(1));
        let batch = vec![
            requested(&a, 0, 1_000),
            requested(&b, 1, 1_000),
            decided::<Sales>(&first_decision::<Sales>(&a), 0, 2_000),
            decided::<Quality>(&first_decision::<Quality>(&a), 0, 2_500),
            decided::<Accounting>(&first_decision::<Accounting>(&b), 0, 3_000),
        ];
        store.apply(&incoming::<StatusView>(&batch)).unwrap();
        // A second delivery of the same records notes nothing new.
        store.apply(&incoming::<StatusView>(&batch)).unwrap();
        let at = |store: &StatusStore, key: &ReturnId| -> Vec<(String, u64)> {
            store
                .located(&key.to_string())
                .unwrap()
                .into_iter()
                .map(|p| (p.topic, p.offset))
                .collect()
        };
        let mut expected_a: Vec<(String, u64)> = [0, 2, 3]
            .iter()
            .map(|&i| (batch[i].topic.clone(), batch[i].offset))
            .collect();
        expected_a.sort();
        assert_eq!(
            at(&store, &a.return_id),
            expected_a,
            "the request, Sales and Quality"
        );
        assert_eq!(at(&store, &b.return_id).len(), 2);
    }

    #[test]
    fn an_unknown_return_has_no_status_and_a_bad_request_is_only_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StatusStore::open(dir.path()).unwrap();
        let req = Generator::new(3).request(0);
        let batch = vec![bad_request(0), requested(&req, 1, 1_000)];
        let counts = store.apply(&incoming::<StatusView>(&batch)).unwrap();
        assert_eq!((counts.applied, counts.skipped), (1, 1));
        assert_eq!(store.returns_known().unwrap(), 1);
        let other = Generator::new(3).request(1).return_id;
        assert_eq!(store.status(&other).unwrap(), None);
        let known = store.status(&req.return_id).unwrap().unwrap();
        assert!(known.teams.iter().all(|t| t.status == Status::Pending));
    }

    /// Every reacting team's decision read before the request: not complete until the request
    /// is read too.
    #[test]
    fn a_return_is_complete_only_once_its_request_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StatusStore::open(dir.path()).unwrap();
        let req = Generator::new(4).request(0);
        let decisions = vec![
            decided::<Sales>(&first_decision::<Sales>(&req), 0, 2_000),
            decided::<Inventory>(&first_decision::<Inventory>(&req), 0, 2_000),
            decided::<Manufacturing>(&first_decision::<Manufacturing>(&req), 0, 2_000),
            decided::<Accounting>(&first_decision::<Accounting>(&req), 0, 2_000),
        ];
        store.apply(&incoming::<StatusView>(&decisions)).unwrap();
        let early = store.status(&req.return_id).unwrap().unwrap();
        assert!(early.teams.iter().all(|t| t.status == Status::Accepted));
        assert_eq!((&early.request, early.complete), (&None, false));

        store
            .apply(&incoming::<StatusView>(&[requested(&req, 0, 1_000)]))
            .unwrap();
        let done = store.status(&req.return_id).unwrap().unwrap();
        assert!(done.request.is_some());
        assert!(done.complete);
    }

    /// A team's event without its request: the request is said unreadable only when the view
    /// holds an unreadable record for that return.
    #[test]
    fn a_missing_request_is_blamed_on_a_skipped_record_only_when_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StatusStore::open(dir.path()).unwrap();
        let (late, unreadable) = (Generator::new(3).request(0), Generator::new(3).request(1));
        let mut v9 = requested(&unreadable, 0, 1_000);
        v9.key = Some(unreadable.return_id.to_string());
        for (name, value) in &mut v9.headers {
            if name == "ce_type" {
                *value = "returns.RefundRequest.v9".into();
            }
        }
        let batch = vec![
            v9,
            decided::<Sales>(&first_decision::<Sales>(&late), 0, 2_000),
            decided::<Sales>(&first_decision::<Sales>(&unreadable), 1, 3_000),
        ];
        let counts = store.apply(&incoming::<StatusView>(&batch)).unwrap();
        assert_eq!((counts.applied, counts.skipped), (2, 1));

        let not_read = store.status(&late.return_id).unwrap().unwrap();
        assert_eq!(
            (&not_read.request, &not_read.unreadable_request),
            (&None, &None)
        );
        let skipped = store.status(&unreadable.return_id).unwrap().unwrap();
        assert_eq!(skipped.request, None);
        let why = skipped.unreadable_request.unwrap();
        assert_eq!(
            (why.topic.as_str(), why.offset, why.kind.as_str()),
            ("returnOrders", 0, "unknown_version")
        );
        assert!(why.reason.contains("version 9"), "{}", why.reason);
    }
}
