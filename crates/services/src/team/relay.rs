//! The outbox relay: appends an outbox's records (a team's outgoing events, or User Support's
//! accepted returns) to the log, in order, then clears them.
//!
//! A record leaves the outbox only after the log has it. If the relay dies between the two, the
//! same records (same event ids) are appended again on restart; readers drop the repeat by id.
//! A failed append is retried with backoff, never dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use returns_eventlog::record::{corrupt_column, headers_from_json};
use returns_eventlog::{EventLog, OutRecord};
use rusqlite::{params, Connection};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::faults::{CrashPoint, Faults};
use crate::metrics::TeamMetrics;
use crate::retry::{pause, Backoff, RetryPolicy};
use crate::team::store::{connect, store_error, Layout};
use crate::ServiceError;

const BATCH: usize = 5_000;
const IDLE_RECHECK: Duration = Duration::from_millis(200);

pub struct OutboxRow {
    pub seq: i64,
    pub topic: String,
    pub record: OutRecord,
}

/// The relay's own connection to a team's store.
pub struct Outbox {
    team: &'static str,
    path: PathBuf,
    conn: Connection,
}

impl Outbox {
    pub fn open(team: &'static str, path: PathBuf) -> Result<Self, ServiceError> {
        let conn = connect(team, &path, Layout::Outbox)?;
        Ok(Outbox { team, path, conn })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> ServiceError + '_ {
        store_error(self.team, &self.path)
    }

    /// The oldest `max` rows, in the order they were written.
    pub fn peek(&self, max: usize) -> Result<Vec<OutboxRow>, ServiceError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, topic, key, headers, payload FROM outbox ORDER BY seq LIMIT ?1",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([max as i64], |r| {
                Ok(OutboxRow {
                    seq: r.get(0)?,
                    topic: r.get(1)?,
                    record: OutRecord {
                        key: r.get(2)?,
                        headers: headers_from_json(&r.get::<_, String>(3)?)
                            .map_err(|e| corrupt_column(3, e))?,
                        payload: r.get(4)?,
                    },
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    pub fn clear_through(&self, seq: i64) -> Result<(), ServiceError> {
        self.conn
            .prepare_cached("DELETE FROM outbox WHERE seq <= ?1")
            .and_then(|mut s| s.execute(params![seq]))
            .map(|_| ())
            .map_err(self.err())
    }

    pub fn len(&self) -> Result<u64, ServiceError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    pub fn is_empty(&self) -> Result<bool, ServiceError> {
        Ok(self.len()? == 0)
    }
}

/// Moves one outbox to the log until cancelled. On cancel it empties the outbox first; an
/// append that fails then ends it with that error, the rest kept in the outbox for the next
/// start.
pub struct Relay {
    pub log: Arc<dyn EventLog>,
    pub outbox: Outbox,
    pub wake: Arc<Notify>,
    pub metrics: Arc<TeamMetrics>,
    pub faults: Faults,
}

impl Relay {
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let Relay {
            log,
            outbox,
            wake,
            metrics,
            faults,
        } = self;
        let outbox = Arc::new(std::sync::Mutex::new(outbox));
        let policy = RetryPolicy::default();
        let mut backoff = Backoff::new(&policy);
        loop {
            // Read before peeking: an empty outbox ends a stopping relay only if the peek began
            // after the stop, so rows committed while a slow peek ran are not left behind.
            let stopping = shutdown.is_cancelled();
            let ob = Arc::clone(&outbox);
            let rows =
                tokio::task::spawn_blocking(move || ob.lock().expect("outbox lock").peek(BATCH))
                    .await
                    .map_err(|_| ServiceError::Task("relay"))??;
            if rows.is_empty() {
                if stopping {
                    return Ok(());
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(IDLE_RECHECK) => {}
                }
                continue;
            }
            let last = rows.last().expect("not empty").seq;
            let count = rows.len() as u64;
            match append_in_order(log.as_ref(), rows).await {
                Ok(()) => backoff = Backoff::new(&policy),
                // Every failed append is tried again, transient or not (the rows are safe in the
                // outbox), until the relay is stopped.
                Err(e) => {
                    let wait = backoff.next_pause();
                    tracing::warn!(error = %e, retry_in = ?wait, "relay could not append; will retry");
                    if !pause(wait, &shutdown).await {
                        // Nothing is lost: the rows stay in the outbox for the next start.
                        return Err(e);
                    }
                    continue;
                }
            }
            faults.check(CrashPoint::RelayAfterAppend)?;
            let ob = Arc::clone(&outbox);
            tokio::task::spawn_blocking(move || {
                ob.lock().expect("outbox lock").clear_through(last)
            })
            .await
            .map_err(|_| ServiceError::Task("relay"))??;
            metrics.record_relayed(count);
        }
    }
}

/// Append rows to their topics, keeping the outbox order: consecutive rows of one topic go in
/// one append.
async fn append_in_order(log: &dyn EventLog, rows: Vec<OutboxRow>) -> Result<(), ServiceError> {
    let mut run: Vec<OutRecord> = Vec::new();
    let mut topic: Option<String> = None;
    for row in rows {
        if topic.as_deref() != Some(row.topic.as_str()) {
            if let Some(t) = topic.take() {
                log.append(&t, std::mem::take(&mut run)).await?;
            }
            topic = Some(row.topic);
        }
        run.push(row.record);
    }
    if let Some(t) = topic {
        log.append(&t, run).await?;
    }
    Ok(())
}
