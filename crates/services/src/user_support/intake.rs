//! User Support's intake: a return is **accepted** into User Support's own store before anything
//! is published, so an accepted return is never lost, whatever the log is doing.
//!
//! The store is `<data>/user-support.db` (not the status view's `user-support-status.db`):
//!
//! | table | holds |
//! |---|---|
//! | `accepted` | one row per return ever accepted: its id (unique), the id of the event announcing it, the SHA-256 of its v2 payload, when |
//! | `outbox` | the `returnOrders` records not yet appended to the log, in order |
//!
//! [`IntakeStore::accept`] writes both in **one transaction**: a return is accepted with the
//! record that announces it, or not at all. The record is encoded once, there, with its event id
//! (a UUID v7 made inside the transaction), so the [`Relay`] that moves the outbox to the log
//! (the teams' relay, unchanged) republishes exactly that record after a failed or interrupted
//! append, and the teams drop the repeat by id. The same return accepted again is recognised by
//! its id and answered as a duplicate: nothing is written and nothing is published twice. The
//! same return id with a **different** request (its v2 payload hashes differently) is a
//! [`AcceptError::Conflict`]: the whole call's transaction rolls back, so none of the requests
//! given with it is accepted.
//!
//! The store is opened with the teams' store connection (the same SQLite settings and the same
//! `outbox` table, which is what lets the relay serve both), and holds only its own tables.
//!
//! The log may be unreachable when returns are accepted: [`open_log_when_reachable`] opens it
//! as soon as it answers, retrying with backoff until then.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use returns_domain::RefundRequest;
use returns_eventlog::record::headers_to_json;
use returns_eventlog::{wire, EventLog, LogError, RETURN_ORDERS};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::retry::{pause, Backoff, RetryPolicy};
use crate::team::relay::{Outbox, Relay};
use crate::team::store::{connect, store_error, Layout};
use crate::{Faults, ServiceError, TeamMetrics};

/// User Support's name, as its store, metrics and errors name it.
pub const USER_SUPPORT: &str = "user-support";

/// The file of User Support's intake store in the data directory.
pub fn intake_path(dir: &Path) -> PathBuf {
    dir.join(format!("{USER_SUPPORT}.db"))
}

/// What the intake answered for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    pub return_id: String,
    /// The id of the `RefundRequest` event announcing the return: for a duplicate, the id given
    /// when the return was first accepted.
    pub event_id: String,
    /// The return had been accepted before; nothing new was written.
    pub duplicate: bool,
}

/// Why [`IntakeStore::accept`] accepted nothing.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The return id was accepted before with a different request. Nothing of the call was
    /// accepted: a return id names one request, and a change to it is refused, not dropped.
    #[error(
        "return {return_id} was already accepted with a different request (a return id names \
         one request); nothing of this batch was accepted"
    )]
    Conflict { return_id: String },
    /// The store could not read or write.
    #[error(transparent)]
    Store(#[from] ServiceError),
}

/// User Support's own store: the returns it accepted and its outbox.
pub struct IntakeStore {
    conn: Connection,
    path: PathBuf,
}

impl IntakeStore {
    /// Open (creating if needed) `<dir>/user-support.db`.
    pub fn open(dir: &Path) -> Result<Self, ServiceError> {
        let path = intake_path(dir);
        let mut conn = connect(USER_SUPPORT, &path, Layout::Outbox)?;
        let err = store_error(USER_SUPPORT, &path);
        // In one IMMEDIATE transaction, as the team tables (`connect`).
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS accepted (
                 return_id      TEXT PRIMARY KEY,
                 event_id       TEXT NOT NULL,
                 accepted_at_ms INTEGER NOT NULL,
                 request_sha256 BLOB NOT NULL
             ) WITHOUT ROWID;",
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(IntakeStore { conn, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> ServiceError + Copy + '_ {
        store_error(USER_SUPPORT, &self.path)
    }

    /// Accept the requests: each new return with its outgoing `returnOrders` record, all in one
    /// transaction. A return accepted before with the same request (or twice in `requests`) is a
    /// duplicate; with a different request, [`AcceptError::Conflict`] and nothing of `requests`
    /// is accepted. When this returns `Ok`, every new return is durable and will reach the log.
    pub fn accept(&mut self, requests: &[RefundRequest]) -> Result<Vec<Acceptance>, AcceptError> {
        let err = store_error(USER_SUPPORT, &self.path);
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut answers = Vec::with_capacity(requests.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO accepted
                         (return_id, event_id, accepted_at_ms, request_sha256)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            let mut earlier = tx
                .prepare_cached(
                    "SELECT event_id, request_sha256 FROM accepted WHERE return_id = ?1",
                )
                .map_err(err)?;
            let mut outbox = tx
                .prepare_cached(
                    "INSERT INTO outbox (topic, key, headers, payload) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            for request in requests {
                let return_id = request.return_id.to_string();
                // The event id is made here, inside the transaction, and stored with the record:
                // every append of this record carries it.
                let envelope = wire::refund_request_envelope(request);
                // The request's canonical encoding (the v2 payload, which the envelope does not
                // touch) tells a repeat from a change.
                let record = wire::encode_refund_request(request, &envelope);
                let sha256 = Sha256::digest(&record.payload).to_vec();
                let new = insert
                    .execute(params![return_id, envelope.id, now_ms as i64, sha256])
                    .map_err(err)?
                    == 1;
                if new {
                    outbox
                        .execute(params![
                            RETURN_ORDERS,
                            record.key,
                            headers_to_json(&record.headers),
                            record.payload
                        ])
                        .map_err(err)?;
                    answers.push(Acceptance {
                        return_id,
                        event_id: envelope.id,
                        duplicate: false,
                    });
                } else {
                    let (event_id, earlier_sha256): (String, Vec<u8>) = earlier
                        .query_row([&return_id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map_err(err)?;
                    if earlier_sha256 != sha256 {
                        // Dropping `tx` rolls the whole call back.
                        return Err(AcceptError::Conflict { return_id });
                    }
                    answers.push(Acceptance {
                        return_id,
                        event_id,
                        duplicate: true,
                    });
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(answers)
    }

    /// The event id a return was accepted under, if it was.
    pub fn accepted(&self, return_id: &str) -> Result<Option<String>, ServiceError> {
        self.conn
            .prepare_cached("SELECT event_id FROM accepted WHERE return_id = ?1")
            .and_then(|mut s| s.query_row([return_id], |r| r.get(0)).optional())
            .map_err(self.err())
    }

    /// How many returns were ever accepted.
    pub fn accepted_count(&self) -> Result<u64, ServiceError> {
        self.count("SELECT COUNT(*) FROM accepted")
    }

    /// How many accepted returns wait in the outbox for the log.
    pub fn waiting(&self) -> Result<u64, ServiceError> {
        self.count("SELECT COUNT(*) FROM outbox")
    }

    /// Whether no accepted return waits for the log (cheap, unlike counting them).
    pub fn nothing_waiting(&self) -> Result<bool, ServiceError> {
        self.conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM outbox)", [], |r| r.get(0))
            .map_err(self.err())
    }

    fn count(&self, sql: &str) -> Result<u64, ServiceError> {
        self.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// The relay that moves this store's outbox to `log` (on its own connection). `wake` it
    /// after an accept to publish at once; `metrics.snapshot().relayed` counts what it
    /// appended. Run it with [`Relay::run`]: it retries a failed append with backoff until the
    /// log takes it, and on cancel it empties the outbox first (or returns the append's error,
    /// leaving the rest in the outbox for the next start).
    pub fn relay(
        &self,
        log: Arc<dyn EventLog>,
        wake: Arc<Notify>,
        metrics: Arc<TeamMetrics>,
    ) -> Result<Relay, ServiceError> {
        Ok(Relay {
            log,
            outbox: Outbox::open(USER_SUPPORT, self.path.clone())?,
            wake,
            metrics,
            faults: Faults::none(),
        })
    }
}

/// Open the log `url` names, retrying with backoff ([`RetryPolicy`]) while it cannot be
/// opened: a Kafka broker that does not answer, an SQLite file that cannot be opened yet.
/// `on_failure` hears about each failed try. `Ok(None)` if `shutdown` came first; `Err` only for
/// a URL that is not valid, which no retry mends.
pub async fn open_log_when_reachable(
    url: &str,
    shutdown: &CancellationToken,
    mut on_failure: impl FnMut(&LogError),
) -> Result<Option<Arc<dyn EventLog>>, LogError> {
    returns_eventlog::LogUrl::parse(url)?;
    // Every failure but a bad URL is tried again: a log that cannot be opened now (no broker
    // yet, a file not there yet) may be openable later.
    let mut backoff = Backoff::new(&RetryPolicy::default());
    loop {
        tokio::select! {
            opened = returns_eventlog::open(url) => match opened {
                Ok(log) => return Ok(Some(log)),
                Err(e @ LogError::InvalidUrl { .. }) => return Err(e),
                Err(e) => on_failure(&e),
            },
            _ = shutdown.cancelled() => return Ok(None),
        }
        if !pause(backoff.next_pause(), shutdown).await {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use returns_domain::Generator;

    use super::*;

    #[test]
    fn a_return_accepted_twice_is_a_duplicate_with_its_first_event_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = IntakeStore::open(dir.path()).unwrap();
        let requests: Vec<_> = Generator::new(1).requests(0..3).collect();
        let first = store.accept(&requests).unwrap();
        assert!(first.iter().all(|a| !a.duplicate));
        // Again, plus one new, plus the new one twice in the same call.
        let mut again = requests.clone();
        let new = Generator::new(1).request(3);
        again.push(new.clone());
        again.push(new);
        let second = store.accept(&again).unwrap();
        let duplicates: Vec<bool> = second.iter().map(|a| a.duplicate).collect();
        assert_eq!(duplicates, [true, true, true, false, true]);
        assert_eq!(
            second[..3],
            first
                .iter()
                .map(|a| Acceptance {
                    duplicate: true,
                    ..a.clone()
                })
                .collect::<Vec<_>>()[..]
        );
        assert_eq!(second[4].event_id, second[3].event_id);
        assert_eq!(store.accepted_count().unwrap(), 4);
        assert_eq!(
            store.waiting().unwrap(),
            4,
            "one record per return, never two"
        );
        assert!(!store.nothing_waiting().unwrap());
        assert_eq!(
            store.accepted(&requests[0].return_id.to_string()).unwrap(),
            Some(first[0].event_id.clone())
        );
        assert_eq!(store.accepted("no-such-return").unwrap(), None);
    }

    #[test]
    fn a_return_id_accepted_again_with_a_different_request_is_a_conflict_and_accepts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = IntakeStore::open(dir.path()).unwrap();
        let first = Generator::new(1).request(0);
        store.accept(std::slice::from_ref(&first)).unwrap();
        let mut changed = Generator::new(1).request(1);
        changed.return_id = first.return_id;
        let new = Generator::new(1).request(2);
        let e = store
            .accept(&[new.clone(), changed])
            .expect_err("a different request under the same id");
        assert!(
            matches!(&e, AcceptError::Conflict { return_id } if *return_id == first.return_id.to_string()),
            "{e}"
        );
        assert!(e.to_string().contains(&first.return_id.to_string()), "{e}");
        assert_eq!(store.accepted_count().unwrap(), 1, "the batch rolled back");
        assert_eq!(store.waiting().unwrap(), 1);
        // The true repeat is still a duplicate.
        let again = store.accept(&[first]).unwrap();
        assert!(again[0].duplicate);
    }

    /// User Support's file holds its own tables, with its relay's connection open too, and no
    /// team's (`processed`, `state`, `effects`).
    #[test]
    fn the_intake_store_holds_only_its_own_tables() {
        let dir = tempfile::tempdir().unwrap();
        let store = IntakeStore::open(dir.path()).unwrap();
        let _relay = Outbox::open(USER_SUPPORT, store.path().to_path_buf()).unwrap();
        let conn = Connection::open(store.path()).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_master
                 WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .unwrap();
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["accepted", "outbox"]);
    }

    #[tokio::test]
    async fn an_invalid_url_is_not_retried() {
        let stop = CancellationToken::new();
        let e = open_log_when_reachable("postgres://x", &stop, |_| panic!("no retry"))
            .await
            .err()
            .expect("an invalid URL fails at once");
        assert!(matches!(e, LogError::InvalidUrl { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_log_that_cannot_be_opened_is_retried_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        // The log's directory is a file: it cannot be opened until the file goes.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, "not a directory").unwrap();
        let url = format!("sqlite://{}", blocked.join("log.db").display());
        let stop = CancellationToken::new();
        let mut failures = 0;
        let opened = open_log_when_reachable(&url, &stop, |_| {
            failures += 1;
            if failures == 2 {
                std::fs::remove_file(&blocked).unwrap();
            }
        })
        .await
        .unwrap();
        assert!(opened.is_some());
        assert_eq!(failures, 2);

        let stop = CancellationToken::new();
        let blocked = dir.path().join("blocked-for-good");
        std::fs::write(&blocked, "not a directory").unwrap();
        let url = format!("sqlite://{}", blocked.join("log.db").display());
        let opened = open_log_when_reachable(&url, &stop, |_| stop.cancel())
            .await
            .unwrap();
        assert!(opened.is_none(), "shutdown ends the retries");
    }
}
