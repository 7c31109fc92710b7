//! A team's own store: one SQLite file per team, which no other team opens.
//!
//! | table | holds |
//! |---|---|
//! | `processed` | the id of every event the team handled (decided or dead-lettered) |
//! | `state` | the team's state, one row per key its rule reads (an order, a model, a serial, a month) |
//! | `effects` | one row per decision: what the team did for a return, as its event |
//! | `outbox` | outgoing records not yet appended to the log (see [`crate::team::relay`]) |
//!
//! [`TeamStore::apply`] writes all four for a batch in one transaction.
//!
//! An id in `processed` is `decided` or `dead_lettered`. A decided id is final: any later copy
//! of that event is a duplicate. A dead-lettered id is not: when a copy of the event comes back
//! readable (put back by [`crate::tools::dead_letters`] after a fix), it is decided and the row becomes
//! `decided`, in the same transaction as the effect; when it comes back still unreadable, it is
//! dead-lettered again with the reason of today's build. `dead_lettered_from` names the copy
//! last dead-lettered (its `dlq_redriven_from` header, or for an original its place in the log),
//! so a redelivery of that same copy is a duplicate, never a second dead letter.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use returns_domain::{Outcome, RefundRequest, Team};
use returns_eventlog::envelope::Envelope;
use returns_eventlog::record::{corrupt_column, headers_to_json};
use returns_eventlog::wire::{self, WireError};
use returns_eventlog::{dead_letter_topic, team_group, team_topic, Record, RETURN_ORDERS};
use rusqlite::{
    params, CachedStatement, Connection, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::faults::{CrashPoint, Faults};
use crate::retry::{retry_blocking, RetryPolicy, Until};
use crate::ServiceError;

/// One record read from `returnOrders`, decoded.
#[derive(Debug, Clone)]
pub enum Input {
    Request {
        envelope: Envelope,
        request: Box<RefundRequest>,
    },
    /// A record that is not a readable `RefundRequest`: it is set aside, never retried.
    Bad {
        envelope: Envelope,
        record: Record,
        error: WireError,
    },
}

impl Input {
    pub fn decode(record: Record) -> Input {
        match wire::decode_refund_request(&record) {
            (envelope, Ok(request)) => Input::Request {
                envelope,
                request: Box::new(request),
            },
            (envelope, Err(error)) => Input::Bad {
                envelope,
                record,
                error,
            },
        }
    }
}

/// A decision the batch made.
#[derive(Debug, Clone)]
pub struct Decided {
    pub return_id: String,
    pub outcome: Outcome,
    /// When the request was published (its event time), unix microseconds.
    pub published_at_us: i64,
}

/// A team's decision on one return, as its store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub return_id: String,
    /// The decision's kind, e.g. `order_refunded` or `refund_rejected`.
    pub kind: String,
    /// The business reason of a rejection, e.g. `OrderAlreadyRefunded`.
    pub rejection: Option<String>,
    /// The team event's versioned JSON.
    pub event: String,
}

/// The answer to a direct call (the traditional model's endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectAnswer {
    /// Decided now.
    Decided(Effect),
    /// This return was decided before: the earlier decision, unchanged.
    AlreadyDecided(Effect),
}

/// A direct call's decision. The `LIKE` term repeats the partial index's condition, which is how
/// SQLite knows it may use that index.
const DIRECT_EFFECT: &str = "SELECT return_id, kind, rejection, event FROM effects
     WHERE caused_by = ?1 AND caused_by LIKE 'direct:%'";

/// The event id under which a direct call for a return is recorded: one per return, so calling
/// again for the same return is recognised.
pub fn direct_event_id(return_id: &str) -> String {
    format!("direct:{return_id}")
}

/// What one batch did.
#[derive(Debug, Default, Clone)]
pub struct BatchReport {
    pub decided: Vec<Decided>,
    pub duplicates: u64,
    pub dead_lettered: u64,
}

pub struct TeamStore<T: Team> {
    conn: Connection,
    path: PathBuf,
    team: PhantomData<fn() -> T>,
}

/// The file of a team's store in the data directory.
pub fn store_path(dir: &Path, team: &str) -> PathBuf {
    dir.join(format!("{team}.db"))
}

/// Turns a SQLite error on a team's store into a [`ServiceError`] naming the team and the file.
pub(crate) fn store_error<'p>(
    team: &'static str,
    path: &'p Path,
) -> impl Fn(rusqlite::Error) -> ServiceError + Copy + 'p {
    move |source| ServiceError::Store {
        team,
        path: path.to_path_buf(),
        source,
    }
}

/// Which tables [`connect`] makes in a store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// A team's store: `processed`, `state`, `effects` and `outbox`.
    Team,
    /// Only `outbox`: what the relay reads, in a team's store or in User Support's (which
    /// makes its own tables besides).
    Outbox,
}

pub(crate) fn connect(
    team: &'static str,
    path: &Path,
    layout: Layout,
) -> Result<Connection, ServiceError> {
    // Connections opening a new file at once can get SQLITE_BUSY at once, without the busy
    // handler (switching to WAL, or its first recovery): try again for a while.
    retry_blocking(
        &RetryPolicy::default(),
        &Until::Elapsed(Duration::from_secs(10)),
        "opening a store",
        || try_connect(team, path, layout),
    )
}

fn try_connect(
    team: &'static str,
    path: &Path,
    layout: Layout,
) -> Result<Connection, ServiceError> {
    let err = store_error(team, path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ServiceError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    // FULL: a commit is on disk before it returns. The team commits its offset in the log, and
    // User Support answers "accepted", only after this commit; with NORMAL a power cut could
    // take the last commits back while the log keeps the offset (or the client keeps the
    // answer), and those returns would never be handled. One fsync per batch.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    conn.pragma_update(None, "mmap_size", 1i64 << 28)
        .map_err(err)?;
    // Checkpoint the WAL every ~40 MB rather than every 4 MB: fewer, larger copies.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .map_err(err)?;
    conn.pragma_update(None, "cache_size", -8_192)
        .map_err(err)?;
    // The layout is made in one IMMEDIATE transaction: a team's service and its relay open the
    // same new file at the same moment. Files of earlier builds are not migrated.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    if layout == Layout::Team {
        tx.execute_batch(TEAM_TABLES).map_err(err)?;
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS outbox (
             seq     INTEGER PRIMARY KEY AUTOINCREMENT,
             topic   TEXT NOT NULL,
             key     TEXT NOT NULL,
             headers TEXT NOT NULL,
             payload BLOB NOT NULL
         );",
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(conn)
}

/// A team's own tables (the outbox aside).
const TEAM_TABLES: &str = "CREATE TABLE IF NOT EXISTS processed (
             event_id           TEXT PRIMARY KEY,
             return_id          TEXT,
             outcome            TEXT NOT NULL,
             at_ms              INTEGER NOT NULL,
             dead_lettered_from TEXT
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS state (
             key   TEXT PRIMARY KEY,
             value TEXT NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS effects (
             seq        INTEGER PRIMARY KEY,
             event_id   TEXT NOT NULL,
             caused_by  TEXT NOT NULL,
             return_id  TEXT NOT NULL,
             kind       TEXT NOT NULL,
             rejection  TEXT,
             event      TEXT NOT NULL,
             at_ms      INTEGER NOT NULL
         );
         -- The traditional model's calls look their decision up by event id. Only their rows
         -- are indexed, so the event-sourced path pays nothing for it.
         CREATE INDEX IF NOT EXISTS effects_of_direct_calls ON effects (caused_by)
             WHERE caused_by LIKE 'direct:%';";

pub(crate) fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

impl<T: Team> TeamStore<T> {
    /// Open (or create) the team's store in the data directory.
    pub fn open(dir: &Path) -> Result<Self, ServiceError> {
        let path = store_path(dir, T::NAME);
        let conn = connect(T::NAME, &path, Layout::Team)?;
        Ok(TeamStore {
            conn,
            path,
            team: PhantomData,
        })
    }

    /// Open the team's store for the traditional model's endpoint, which commits one
    /// transaction per call. It keeps `synchronous=NORMAL` (a commit survives a crash of the
    /// process, not a power cut): with an fsync per call, User Support's p50 in `returns compare`
    /// rose from a few ms to about a second at 200 returns/s, which would measure the disk
    /// rather than the model. The event-sourced path commits a batch per fsync.
    pub fn open_for_direct_calls(dir: &Path) -> Result<Self, ServiceError> {
        let store = Self::open(dir)?;
        store
            .conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(store_error(T::NAME, &store.path))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a write waits for another connection's lock before it fails as busy (a
    /// transient error the team retries). 10 s unless set.
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), ServiceError> {
        self.conn.busy_timeout(timeout).map_err(self.err())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> ServiceError + '_ {
        store_error(T::NAME, &self.path)
    }

    /// Apply a batch in one transaction: skip events already processed, decide the others with
    /// the team's rule, and write effects, state, processed ids and outgoing records together.
    pub fn apply(
        &mut self,
        inputs: &[Input],
        faults: &Faults,
    ) -> Result<BatchReport, ServiceError> {
        let err = store_error(T::NAME, &self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let report = write_batch::<T>(&tx, inputs, Publish::Yes).map_err(&err)?;
        // A crash here leaves the transaction uncommitted: SQLite rolls it back.
        faults.check(CrashPoint::InsideTransaction)?;
        tx.commit().map_err(&err)?;
        Ok(report)
    }

    /// Decide one request called directly (the traditional model: no log, no outgoing events),
    /// in its own transaction, idempotent on the return id.
    pub fn handle_direct(&mut self, request: &RefundRequest) -> Result<DirectAnswer, ServiceError> {
        let return_id = request.return_id.to_string();
        let event_id = direct_event_id(&return_id);
        let input = Input::Request {
            envelope: Envelope::new(wire::REFUND_REQUEST_TYPE, wire::USER_SUPPORT_SOURCE)
                .with_id(event_id.clone())
                .correlated(return_id),
            request: Box::new(request.clone()),
        };
        let err = store_error(T::NAME, &self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let report =
            write_batch::<T>(&tx, std::slice::from_ref(&input), Publish::No).map_err(&err)?;
        let effect = tx
            .query_row(DIRECT_EFFECT, [&event_id], |r| {
                Ok(Effect {
                    return_id: r.get(0)?,
                    kind: r.get(1)?,
                    rejection: r.get(2)?,
                    event: r.get(3)?,
                })
            })
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(if report.duplicates > 0 {
            DirectAnswer::AlreadyDecided(effect)
        } else {
            DirectAnswer::Decided(effect)
        })
    }

    /// Every state row (key, JSON), in key order: two stores agree when these are equal.
    pub fn state_rows(&self) -> Result<Vec<(String, String)>, ServiceError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM state ORDER BY key")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Replace every state row with `rows`, in one transaction (a store rebuilt by a replay).
    pub fn write_state(&mut self, rows: &[(String, String)]) -> Result<(), ServiceError> {
        let err = store_error(T::NAME, &self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        tx.execute("DELETE FROM state", []).map_err(&err)?;
        {
            let mut insert = tx
                .prepare("INSERT INTO state (key, value) VALUES (?1, ?2)")
                .map_err(&err)?;
            for (key, value) in rows {
                insert.execute(params![key, value]).map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// Outgoing records not yet appended to the log.
    pub fn outbox_len(&self) -> Result<u64, ServiceError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// When each return was first decided (unix ms).
    pub fn decided_at(&self) -> Result<HashMap<String, i64>, ServiceError> {
        let mut stmt = self
            .conn
            .prepare("SELECT return_id, MIN(at_ms) FROM effects GROUP BY return_id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// The team's state for one key, as its rule sees it.
    pub fn state(&self, key: &T::Key) -> Result<T::State, ServiceError> {
        let mut load = self.conn.prepare_cached(LOAD_STATE).map_err(self.err())?;
        load_state::<T>(&mut load, key).map_err(self.err())
    }

    /// How many effects each return has (a correct team has exactly one per return).
    pub fn effects_per_return(&self) -> Result<HashMap<String, u64>, ServiceError> {
        self.count_by("return_id")
    }

    /// Effects by kind, over the store's whole life.
    pub fn effects_by_kind(&self) -> Result<BTreeMap<String, u64>, ServiceError> {
        self.count_by("kind")
    }

    /// Effects counted per value of one column (a fixed column name, never user input).
    fn count_by<C: FromIterator<(String, u64)>>(
        &self,
        column: &'static str,
    ) -> Result<C, ServiceError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {column}, COUNT(*) FROM effects GROUP BY {column}"
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Ids of the events processed (decided or dead-lettered).
    pub fn processed_count(&self) -> Result<u64, ServiceError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM processed", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }
}

const LOAD_STATE: &str = "SELECT value FROM state WHERE key = ?1";

/// The stored state of `key`, or the rule's initial state for a key never seen.
fn load_state<T: Team>(load: &mut CachedStatement<'_>, key: &T::Key) -> rusqlite::Result<T::State> {
    let stored: Option<String> = load.query_row([key.to_string()], |r| r.get(0)).optional()?;
    match stored {
        Some(json) => serde_json::from_str(&json).map_err(|e| corrupt_column(0, e)),
        None => Ok(T::initial(key)),
    }
}

/// Whether a batch's decisions go to the outbox, to be published on the team's topic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Publish {
    Yes,
    No,
}

/// Writes one batch inside an open transaction.
fn write_batch<T: Team>(
    tx: &Transaction<'_>,
    inputs: &[Input],
    publish: Publish,
) -> rusqlite::Result<BatchReport> {
    let mut w = BatchWriter::<T> {
        mark_decided: tx.prepare_cached(MARK_DECIDED)?,
        mark_dead_lettered: tx.prepare_cached(MARK_DEAD_LETTERED)?,
        load: tx.prepare_cached(LOAD_STATE)?,
        effect: tx.prepare_cached(
            "INSERT INTO effects (event_id, caused_by, return_id, kind, rejection, event, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?,
        outbox: tx.prepare_cached(
            "INSERT INTO outbox (topic, key, headers, payload) VALUES (?1, ?2, ?3, ?4)",
        )?,
        states: HashMap::new(),
        publish,
        at_ms: now_us() / 1000,
        report: BatchReport::default(),
    };
    for input in inputs {
        match input {
            Input::Request { envelope, request } => w.decide(envelope, request)?,
            Input::Bad {
                envelope,
                record,
                error,
            } => w.dead_letter(envelope, record, error)?,
        }
    }
    // Every state loaded in this batch was loaded to decide on it, so every one has changed.
    let mut save = tx.prepare_cached(
        "INSERT INTO state (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?;
    for (key, state) in &w.states {
        let json = serde_json::to_string(state).expect("team state serializes");
        save.execute(params![key, json])?;
    }
    Ok(w.report)
}

/// Marks an event decided. New ids are inserted; an id only dead-lettered so far becomes
/// `decided` (a copy put back after a fix); a decided id is left alone, and no row changes.
const MARK_DECIDED: &str = "INSERT INTO processed (event_id, return_id, outcome, at_ms)
     VALUES (?1, ?2, 'decided', ?3)
     ON CONFLICT (event_id) DO UPDATE
     SET return_id = excluded.return_id, outcome = 'decided', at_ms = excluded.at_ms
     WHERE processed.outcome = 'dead_lettered'";

/// Marks an event dead-lettered, naming the copy (?3). A decided id is left alone. An id
/// dead-lettered before is marked again (and so dead-lettered again) only for another copy: one
/// that was put back (?4 = 1) when the row names the original (NULL), or any copy whose name
/// differs from the one in the row.
const MARK_DEAD_LETTERED: &str =
    "INSERT INTO processed (event_id, return_id, outcome, at_ms, dead_lettered_from)
     VALUES (?1, NULL, 'dead_lettered', ?2, ?3)
     ON CONFLICT (event_id) DO UPDATE
     SET dead_lettered_from = excluded.dead_lettered_from, at_ms = excluded.at_ms
     WHERE processed.outcome = 'dead_lettered'
       AND CASE WHEN processed.dead_lettered_from IS NULL THEN ?4
                ELSE processed.dead_lettered_from <> excluded.dead_lettered_from END";

/// The header a record put back by [`crate::tools::dead_letters`] carries: the dead letter it came
/// from, `topic/partition/offset`.
pub const REDRIVEN_FROM: &str = "dlq_redriven_from";

struct BatchWriter<'tx, T: Team> {
    mark_decided: CachedStatement<'tx>,
    mark_dead_lettered: CachedStatement<'tx>,
    load: CachedStatement<'tx>,
    effect: CachedStatement<'tx>,
    outbox: CachedStatement<'tx>,
    /// The state of each key decided on in this batch, by the key's text.
    states: HashMap<String, T::State>,
    publish: Publish,
    at_ms: i64,
    report: BatchReport,
}

impl<T: Team> BatchWriter<'_, T> {
    /// Count a row left unchanged as a duplicate; true when the row changed (act on it).
    fn changed(&mut self, rows: usize) -> bool {
        if rows == 0 {
            self.report.duplicates += 1;
        }
        rows > 0
    }

    fn decide(&mut self, envelope: &Envelope, request: &RefundRequest) -> rusqlite::Result<()> {
        let return_id = request.return_id.to_string();
        let rows = self
            .mark_decided
            .execute(params![envelope.id, return_id, self.at_ms])?;
        if !self.changed(rows) {
            return Ok(());
        }
        let key = T::key(request);
        let state = match self.states.entry(key.to_string()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(load_state::<T>(&mut self.load, &key)?),
        };
        let event = T::decide(state, request);
        T::evolve(state, &event);
        let outcome = T::outcome(&event);
        let out = Envelope::new(
            wire::team_event_type::<T>(&event),
            format!("/returns/{}", T::NAME),
        )
        .correlated(return_id.clone())
        .caused_by(envelope.id.clone());
        let payload = wire::encode_team_event::<T>(&event);
        self.effect.execute(params![
            out.id,
            envelope.id,
            return_id,
            outcome.kind,
            outcome.rejection,
            std::str::from_utf8(&payload).unwrap_or_default(),
            self.at_ms
        ])?;
        if self.publish == Publish::Yes {
            self.outbox.execute(params![
                team_topic(T::NAME),
                return_id,
                headers_to_json(&out.to_headers()),
                payload
            ])?;
        }
        self.report.decided.push(Decided {
            return_id,
            outcome,
            published_at_us: (envelope.time.unix_timestamp_nanos() / 1000) as i64,
        });
        Ok(())
    }

    /// Set a record that cannot be read aside on the team's dead-letter topic, with the reason
    /// and where it came from.
    fn dead_letter(
        &mut self,
        envelope: &Envelope,
        record: &Record,
        error: &WireError,
    ) -> rusqlite::Result<()> {
        let redriven_from = record.header(REDRIVEN_FROM);
        let copy = redriven_from.map_or_else(
            || format!("{}/{}/{}", record.topic, record.partition, record.offset),
            str::to_string,
        );
        let rows = self.mark_dead_lettered.execute(params![
            envelope.id,
            self.at_ms,
            copy,
            redriven_from.is_some()
        ])?;
        if !self.changed(rows) {
            return Ok(());
        }
        let group = team_group(T::NAME);
        let mut headers = record.headers.clone();
        headers.extend(
            [
                ("dlt_error_kind", error.kind().to_string()),
                ("dlt_error", error.to_string()),
                ("dlt_original_topic", record.topic.clone()),
                ("dlt_original_partition", record.partition.to_string()),
                ("dlt_original_offset", record.offset.to_string()),
                ("dlt_original_event_id", envelope.id.clone()),
                ("dlt_group", group.clone()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        self.outbox.execute(params![
            dead_letter_topic(RETURN_ORDERS, &group),
            record.key.as_deref().unwrap_or(&envelope.id),
            headers_to_json(&headers),
            record.payload
        ])?;
        self.report.dead_lettered += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A team's service and its relay open a new store at the same moment: the layout is made
    /// once, and neither fails on the other's half-made columns.
    #[test]
    fn connections_opening_a_new_store_at_once_all_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("sales.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(6));
            let opened: Vec<_> = (0..6)
                .map(|i| {
                    let (path, start) = (path.clone(), std::sync::Arc::clone(&start));
                    // The service opens the team's layout; its relay, only the outbox.
                    let layout = [Layout::Team, Layout::Outbox][i % 2];
                    std::thread::spawn(move || {
                        start.wait();
                        connect("sales", &path, layout).map(|_| ())
                    })
                })
                .collect();
            for handle in opened {
                let result = handle.join().unwrap();
                assert!(result.is_ok(), "round {round}: {result:?}");
            }
        }
    }

    /// A direct call finds its decision through the partial index, not by scanning every
    /// effect the team ever made.
    #[test]
    fn a_direct_call_looks_its_decision_up_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = TeamStore::<returns_domain::Sales>::open(dir.path()).unwrap();
        let plan: Vec<String> = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {DIRECT_EFFECT}"))
            .unwrap()
            .query_map(["direct:x"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("USING INDEX effects_of_direct_calls")),
            "{plan:?}"
        );
    }

    fn on_log(out: returns_eventlog::OutRecord, offset: u64) -> Record {
        Record {
            topic: RETURN_ORDERS.into(),
            partition: 0,
            offset,
            key: Some(out.key),
            timestamp_ms: 0,
            headers: out.headers,
            payload: out.payload,
        }
    }

    /// Return `i`'s request as User Support publishes it, under event id `id`, at `offset`.
    fn good(i: u64, id: &str, offset: u64) -> Input {
        let req = returns_domain::Generator::new(1).request(i);
        let envelope = wire::refund_request_envelope(&req).with_id(id);
        Input::decode(on_log(wire::encode_refund_request(&req, &envelope), offset))
    }

    /// An unreadable record under event id `id` at `offset`, put back from `redriven_from`.
    fn bad(id: &str, offset: u64, redriven_from: Option<&str>) -> Input {
        let mut headers = vec![("ce_id".to_string(), id.to_string())];
        headers.extend(redriven_from.map(|r| (REDRIVEN_FROM.to_string(), r.to_string())));
        let input = Input::decode(on_log(
            returns_eventlog::OutRecord {
                key: id.into(),
                headers,
                payload: b"not json".to_vec(),
            },
            offset,
        ));
        assert!(matches!(input, Input::Bad { .. }));
        input
    }

    /// (decided, duplicates, dead-lettered) of one batch.
    fn apply(store: &mut TeamStore<returns_domain::Sales>, input: Input) -> (usize, u64, u64) {
        let r = store.apply(&[input], &Faults::none()).unwrap();
        (r.decided.len(), r.duplicates, r.dead_lettered)
    }

    /// An event that was only dead-lettered is decided when it comes back readable, once; a
    /// decided event is never dead-lettered or decided again.
    #[test]
    fn a_dead_lettered_event_that_comes_back_readable_is_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TeamStore::<returns_domain::Sales>::open(dir.path()).unwrap();
        assert_eq!(apply(&mut store, bad("e-1", 0, None)), (0, 0, 1));
        assert_eq!(apply(&mut store, good(0, "e-1", 9)), (1, 0, 0));
        assert_eq!(apply(&mut store, good(0, "e-1", 9)), (0, 1, 0));
        assert_eq!(apply(&mut store, bad("e-1", 0, None)), (0, 1, 0));
        assert_eq!(apply(&mut store, bad("e-1", 12, Some("d/0/1"))), (0, 1, 0));
        assert_eq!(store.effects_per_return().unwrap().values().sum::<u64>(), 1);
        assert_eq!(store.processed_count().unwrap(), 1);
        // Both in one batch: the dead letter first, then the decision.
        let both = [bad("e-2", 1, None), good(1, "e-2", 10)];
        let r = store.apply(&both, &Faults::none()).unwrap();
        assert_eq!((r.decided.len(), r.duplicates, r.dead_lettered), (1, 0, 1));
    }

    /// A copy put back that is still unreadable is dead-lettered again (with today's reason),
    /// once per copy: a redelivery of the original or of that copy is a duplicate.
    #[test]
    fn a_copy_put_back_still_unreadable_is_dead_lettered_again_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TeamStore::<returns_domain::Sales>::open(dir.path()).unwrap();
        assert_eq!(apply(&mut store, bad("e-1", 0, None)), (0, 0, 1));
        assert_eq!(
            apply(&mut store, bad("e-1", 0, None)),
            (0, 1, 0),
            "redelivered"
        );
        assert_eq!(apply(&mut store, bad("e-1", 5, Some("d/0/1"))), (0, 0, 1));
        // The same dead letter put back twice (a replay that lost its commit) is one copy.
        assert_eq!(apply(&mut store, bad("e-1", 6, Some("d/0/1"))), (0, 1, 0));
        assert_eq!(apply(&mut store, bad("e-1", 7, Some("d/0/2"))), (0, 0, 1));
        // Only the last copy is remembered: the original redelivered after a copy (a group
        // rewound by hand) is dead-lettered again; an extra dead letter, never a lost one.
        assert_eq!(apply(&mut store, bad("e-1", 0, None)), (0, 0, 1));
        assert_eq!(apply(&mut store, good(0, "e-1", 8)), (1, 0, 0));
        assert_eq!(
            store.outbox_len().unwrap(),
            5,
            "four dead letters and one event"
        );
    }

    /// The outbox's `seq` is never handed out twice (AUTOINCREMENT): a relay clears "every
    /// row up to the last one it sent", so a number reused after the outbox emptied would let a
    /// relay still holding an older number delete rows nobody sent.
    #[test]
    fn outbox_numbers_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TeamStore::<returns_domain::Sales>::open(dir.path()).unwrap();
        let add = || {
            store
                .conn
                .execute(
                    "INSERT INTO outbox (topic, key, headers, payload) VALUES ('t', 'k', '[]', x'')",
                    [],
                )
                .unwrap();
            store.conn.last_insert_rowid()
        };
        let first = add();
        store.conn.execute("DELETE FROM outbox", []).unwrap();
        assert!(add() > first);
    }
}
