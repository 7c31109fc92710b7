//! Read models fed by events: a SQLite file of their own, which is their only checkpoint.
//!
//! A [`Projection`] names its group, its [`Source`] (the topics and how to read a record) and
//! what one event writes. [`ProjectionRunner`] does the rest: read each partition of the
//! source's topics from where the view's file stands ([`EventLog::read`]), and apply each page
//! to the view's store ([`ViewStore`], `<data>/<NAME>.db`) in one transaction that also
//! records the id of every event applied and how far the file has read. The view's consumer
//! group is never joined: the runner only shows it the file's positions
//! ([`EventLog::commit_outside`]), so that the group's lag is the view's.
//!
//! | table | holds |
//! |---|---|
//! | `applied` | the id of every event the view has applied, for dedup |
//! | `skipped` | records the view cannot read (yet): where they are, their key and the reason |
//! | `positions` | per partition, the next offset this file has applied (or skipped) |
//! | `located` | where each record noted under a key is ([`Projection::locate`]) |
//! | (the view's own) | what [`Projection::write`] writes |
//!
//! Invariants:
//! - an event counts once, however often it is read: its id goes into `applied` in the
//!   transaction that writes its facts, and an id already there is a duplicate, skipped;
//! - a record the view cannot read is skipped with its reason and its place in the log
//!   (`skipped`, never `applied`) and logged; the records around it are applied (a view never
//!   stalls on one bad record). Every catch-up and every `run` starts by reading the skipped
//!   records again: one this build can read now (a version or an event type it has learnt) is
//!   applied and leaves `skipped`. A readable copy of a skipped event (a dead letter put back)
//!   is applied when it comes, and the skipped row goes too;
//! - the file's `positions` are the view's one checkpoint, moved in the transaction that
//!   applies a page, and a page always starts where the file stands, so the file never passes
//!   a record it has not seen. Several processes on one file (a `serve` and a `status`) each
//!   read from where the file stands; an event applied twice counts once;
//! - a catch-up applies nothing past the ends it measured at start. It measures the topics'
//!   ends in the reverse order of [`Source::topics`], so a team's event inside that snapshot
//!   has its request inside it too; each round reads the topics in that order, requests first;
//! - a file of another layout ([`LAYOUT_VERSION`]) is not migrated: it is rebuilt from the log;
//! - work on the file, and reads of the log, keep trying through a transient failure for a
//!   bounded time in a catch-up ([`ProjectionConfig::busy_limit`]), and until shutdown in
//!   `run`, as a team does.
//!
//! The runner serves both uses: [`ProjectionRunner::run`] follows the topics until shutdown;
//! [`ProjectionRunner::catch_up`] applies everything up to the topics' ends as measured when it
//! starts, and returns, so a command can bring its view up to date and then query it.
//!
//! The second half of this module is what User Support's views ([`crate::views::status`] and
//! [`crate::views::analytics`]) read, [`ReturnsEvents`]: `returnOrders` and the teams' topics (the four
//! reacting teams' and Quality's), decoded through `wire` into [`ReturnsEvent`].

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use returns_domain::{
    Accounting, AccountingEvent, Inventory, InventoryEvent, Manufacturing, ManufacturingEvent,
    Outcome, Quality, QualityEvent, RefundRequest, ReturnId, Sales, SalesEvent, Team,
};
use returns_eventlog::envelope::Envelope;
use returns_eventlog::wire::{self, WireError};
use returns_eventlog::{
    team_topic, EventLog, LogError, Position, Record, TopicPartition, RETURN_ORDERS,
};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use tokio_util::sync::CancellationToken;

use crate::retry::{pause, retry, retry_blocking, RetryPolicy, Until};
use crate::team::store::store_error;
use crate::{ServiceError, TeamName};

/// One read model: what it reads and what it writes.
pub trait Projection: Send + Sync + 'static {
    /// The view's name in logs and errors; its store is `<data>/<NAME>.db`.
    const NAME: &'static str;
    /// The consumer group the view reads its topics with.
    const GROUP: &'static str;
    /// The topics it reads and how it reads them.
    type Source: Source;

    /// Create the view's own tables if they do not exist yet.
    fn create_tables(conn: &Connection) -> rusqlite::Result<()>;
    /// Write one event's facts, inside the batch's transaction. Called once per event id.
    fn write(tx: &Transaction<'_>, event: &EventOf<Self>) -> rusqlite::Result<()>;
    /// The key under which the runner notes where a record is in the log (table `located`),
    /// so that a reader can fetch one key's records without scanning the topics
    /// ([`ViewStore::located`]). `None`, the default, notes nothing.
    fn locate(_record: &Incoming<EventOf<Self>>) -> Option<String> {
        None
    }
}

/// Topics and how to read their records; several views can read the same source.
pub trait Source {
    /// A record the view could read.
    type Event: Send + 'static;

    /// The topics, causes first: a record on a later topic is caused by records on earlier
    /// ones (a team's event by a request). A catch-up measures their ends last to first, so
    /// whatever it reads of a later topic has its cause inside what it reads of the earlier.
    fn topics() -> Vec<String>;
    /// Read one record. An `Err` skips it, counted with its reason.
    fn decode(record: &Record) -> Result<Self::Event, Skip>;
}

/// The event type a projection reads.
pub type EventOf<P> = <<P as Projection>::Source as Source>::Event;

/// Why a record was skipped: a short stable kind (`malformed`, `unknown_type`, ...) and the
/// reason in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub kind: &'static str,
    pub reason: String,
}

impl From<WireError> for Skip {
    fn from(e: WireError) -> Self {
        Skip {
            kind: e.kind(),
            reason: e.to_string(),
        }
    }
}

/// A polled record, decoded, with what the store needs to dedup it and to know where it was.
#[derive(Debug)]
pub struct Incoming<E> {
    /// The record's event id (`ce_id`, or one derived from its place in the log).
    pub event_id: String,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// The record's key (a return id, for everything User Support and the teams publish).
    pub key: Option<String>,
    pub event: Result<E, Skip>,
}

impl<E> Incoming<E> {
    pub fn decode<S: Source<Event = E>>(record: &Record) -> Self {
        Incoming {
            event_id: Envelope::from_record(record, "").id,
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            key: record.key.clone(),
            event: S::decode(record),
        }
    }
}

/// What one batch did to the view.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchCounts {
    pub applied: u64,
    /// Events already in the view (a redelivery): not counted again.
    pub duplicates: u64,
    /// Records the view could not read (each counted the first time only).
    pub skipped: u64,
}

impl std::ops::AddAssign for BatchCounts {
    fn add_assign(&mut self, other: Self) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.skipped += other.skipped;
    }
}

/// Next offset per partition.
pub type Positions = BTreeMap<TopicPartition, u64>;

/// A view's own SQLite file.
pub struct ViewStore<P: Projection> {
    conn: Connection,
    path: PathBuf,
    view: PhantomData<fn() -> P>,
}

/// How long one statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The layout of a view's file (`PRAGMA user_version`). A file of another layout is never
/// migrated: everything in it can be read again from the log, so its tables are dropped and
/// the view is rebuilt.
const LAYOUT_VERSION: i64 = 3;

/// A record the view skipped, and where it is in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedAt {
    pub event_id: String,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

impl<P: Projection> ViewStore<P> {
    /// Open (or create) the view's store in the data directory.
    pub fn open(dir: &Path) -> Result<Self, ServiceError> {
        let path = dir.join(format!("{}.db", P::NAME));
        let err = store_error(P::NAME, &path);
        std::fs::create_dir_all(dir).map_err(|source| ServiceError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        for (pragma, value) in [("journal_mode", "WAL"), ("synchronous", "NORMAL")] {
            conn.pragma_update(None, pragma, value).map_err(err)?;
        }
        lay_out::<P>(&mut conn, &path)?;
        Ok(ViewStore {
            conn,
            path,
            view: PhantomData,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> ServiceError + Copy + '_ {
        store_error(P::NAME, &self.path)
    }

    /// How long one statement waits for another connection's lock (10 s unless set).
    pub(crate) fn set_busy_timeout(&self, timeout: Duration) -> Result<(), ServiceError> {
        self.conn.busy_timeout(timeout).map_err(self.err())
    }

    /// Apply a batch in one transaction: each event id not seen before is applied (or skipped
    /// with its reason) and recorded; the file's positions move past the batch.
    pub fn apply(&mut self, batch: &[Incoming<EventOf<P>>]) -> Result<BatchCounts, ServiceError> {
        let err = store_error(P::NAME, &self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let counts = write_batch::<P>(&tx, batch, true).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(counts)
    }

    /// Apply skipped records read again, in one transaction: those that decode now are applied
    /// and leave `skipped` (`applied`); the others stay, with today's reason (`skipped`). The
    /// file's positions do not move.
    pub fn apply_retried(
        &mut self,
        batch: &[Incoming<EventOf<P>>],
    ) -> Result<BatchCounts, ServiceError> {
        let err = store_error(P::NAME, &self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let counts = write_batch::<P>(&tx, batch, false).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(counts)
    }

    /// How far this file has applied each partition.
    pub fn positions(&self) -> Result<Positions, ServiceError> {
        read_positions(&self.conn).map_err(self.err())
    }

    /// Every record the view has skipped and not read since, in log order per partition.
    pub fn skipped(&self) -> Result<Vec<SkippedAt>, ServiceError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT event_id, topic, partition, offset FROM skipped
                 ORDER BY topic, partition, offset",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SkippedAt {
                    event_id: r.get(0)?,
                    topic: r.get(1)?,
                    partition: r.get(2)?,
                    offset: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Records the view cannot read (yet), per kind of reason.
    pub fn skipped_by_kind(&self) -> Result<BTreeMap<String, u64>, ServiceError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, COUNT(*) FROM skipped GROUP BY kind")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Where the records noted under `key` are in the log ([`Projection::locate`]), in log
    /// order per partition.
    pub fn located(&self, key: &str) -> Result<Vec<Position>, ServiceError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT topic, partition, offset FROM located WHERE key = ?1
                 ORDER BY topic, partition, offset",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([key], |r| {
                Ok(Position {
                    topic: r.get(0)?,
                    partition: r.get(1)?,
                    offset: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Events the view has applied.
    pub fn seen(&self) -> Result<u64, ServiceError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM applied", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }
}

/// Makes the file's tables. A file of an older layout ([`LAYOUT_VERSION`]) has every table
/// dropped and this layout's made, in one transaction: the view is then rebuilt from the log.
/// A file of a newer layout is an error: this build must not undo a newer one's work. Two
/// processes opening the file at once: the second finds it laid out.
fn lay_out<P: Projection>(conn: &mut Connection, path: &Path) -> Result<(), ServiceError> {
    let err = store_error(P::NAME, path);
    let newer = |found: i64| ServiceError::NewerLayout {
        path: path.to_path_buf(),
        found,
        known: LAYOUT_VERSION,
    };
    // A read first: a file laid out already needs no write lock (another process may hold it).
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    if version == LAYOUT_VERSION {
        return Ok(());
    }
    if version > LAYOUT_VERSION {
        return Err(newer(version));
    }
    rebuild::<P>(conn).map_err(err)?;
    // Another process may have laid it out meanwhile, as a newer build.
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    if version > LAYOUT_VERSION {
        return Err(newer(version));
    }
    Ok(())
}

/// Drops the tables of a file of an older layout and makes this layout's, in one transaction.
fn rebuild<P: Projection>(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= LAYOUT_VERSION {
        // Laid out meanwhile by another process (this layout, or a newer one: the caller looks).
        return Ok(());
    }
    let old: Vec<String> = tx
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !old.is_empty() {
        tracing::info!(
            view = P::NAME,
            layout = version,
            "a view file of another layout: rebuilding it from the log"
        );
    }
    for table in old {
        tx.execute_batch(&format!("DROP TABLE \"{}\"", table.replace('"', "\"\"")))?;
    }
    tx.execute_batch(
        "CREATE TABLE applied (
             event_id TEXT PRIMARY KEY
         ) WITHOUT ROWID;
         CREATE TABLE skipped (
             event_id  TEXT PRIMARY KEY,
             topic     TEXT NOT NULL,
             partition INTEGER NOT NULL,
             offset    INTEGER NOT NULL,
             kind      TEXT NOT NULL,
             reason    TEXT NOT NULL,
             key       TEXT
         ) WITHOUT ROWID;
         CREATE INDEX skipped_by_key ON skipped (key);
         CREATE TABLE positions (
             topic       TEXT NOT NULL,
             partition   INTEGER NOT NULL,
             next_offset INTEGER NOT NULL,
             PRIMARY KEY (topic, partition)
         ) WITHOUT ROWID;
         CREATE TABLE located (
             key       TEXT NOT NULL,
             topic     TEXT NOT NULL,
             partition INTEGER NOT NULL,
             offset    INTEGER NOT NULL,
             PRIMARY KEY (key, topic, partition, offset)
         ) WITHOUT ROWID;",
    )?;
    P::create_tables(&tx)?;
    tx.pragma_update(None, "user_version", LAYOUT_VERSION)?;
    tx.commit()
}

fn read_positions(conn: &Connection) -> rusqlite::Result<Positions> {
    let mut stmt = conn.prepare_cached("SELECT topic, partition, next_offset FROM positions")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            TopicPartition {
                topic: r.get(0)?,
                partition: r.get(1)?,
            },
            r.get::<_, i64>(2)? as u64,
        ))
    })?;
    rows.collect()
}

/// Write a batch: polled from the log (`advance`: the file's positions move past it) or skipped
/// records read again (positions untouched; one still unreadable keeps its row, with today's
/// reason, and counts as skipped).
fn write_batch<P: Projection>(
    tx: &Transaction<'_>,
    batch: &[Incoming<EventOf<P>>],
    advance: bool,
) -> rusqlite::Result<BatchCounts> {
    let mut first_time =
        tx.prepare_cached("INSERT OR IGNORE INTO applied (event_id) VALUES (?1)")?;
    let mut was_applied = tx.prepare_cached("SELECT 1 FROM applied WHERE event_id = ?1")?;
    let mut unskip = tx.prepare_cached("DELETE FROM skipped WHERE event_id = ?1")?;
    let mut skip = tx.prepare_cached(
        "INSERT INTO skipped (event_id, topic, partition, offset, kind, reason, key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (event_id) DO NOTHING",
    )?;
    let mut still_skipped = tx.prepare_cached(
        "UPDATE skipped SET kind = ?2, reason = ?3, key = COALESCE(?4, key) WHERE event_id = ?1",
    )?;
    let mut locate = tx.prepare_cached(
        "INSERT OR IGNORE INTO located (key, topic, partition, offset) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut counts = BatchCounts::default();
    for incoming in batch {
        if let Some(key) = P::locate(incoming) {
            locate.execute(params![
                key,
                incoming.topic,
                incoming.partition,
                incoming.offset as i64
            ])?;
        }
        match &incoming.event {
            Ok(event) => {
                if first_time.execute([&incoming.event_id])? == 0 {
                    counts.duplicates += 1;
                    continue;
                }
                P::write(tx, event)?;
                // A copy of this event was unreadable before (or this very record was, to an
                // older build): it is read now.
                unskip.execute([&incoming.event_id])?;
                counts.applied += 1;
            }
            // A readable copy of this event has been applied already.
            Err(_) if was_applied.exists([&incoming.event_id])? => counts.duplicates += 1,
            Err(skipped) if !advance => {
                still_skipped.execute(params![
                    incoming.event_id,
                    skipped.kind,
                    skipped.reason,
                    incoming.key
                ])?;
                counts.skipped += 1;
            }
            Err(skipped) => {
                let first = skip.execute(params![
                    incoming.event_id,
                    incoming.topic,
                    incoming.partition,
                    incoming.offset as i64,
                    skipped.kind,
                    skipped.reason,
                    incoming.key
                ])?;
                if first == 0 {
                    counts.duplicates += 1;
                    continue;
                }
                tracing::warn!(
                    view = P::NAME,
                    topic = %incoming.topic,
                    partition = incoming.partition,
                    offset = incoming.offset,
                    event_id = %incoming.event_id,
                    kind = skipped.kind,
                    reason = %skipped.reason,
                    "record skipped: the view cannot read it (it is read again at the next catch-up)"
                );
                counts.skipped += 1;
            }
        }
    }
    if !advance {
        return Ok(counts);
    }
    // The runner hands over pages that start at the file's position, so the highest offset per
    // partition is how far the file has seen.
    let mut advance = tx.prepare_cached(
        "INSERT INTO positions (topic, partition, next_offset) VALUES (?1, ?2, ?3)
         ON CONFLICT (topic, partition)
         DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
    )?;
    let mut next: Positions = BTreeMap::new();
    for i in batch {
        let tp = TopicPartition {
            topic: i.topic.clone(),
            partition: i.partition,
        };
        let at = next.entry(tp).or_default();
        *at = (*at).max(i.offset + 1);
    }
    for (tp, offset) in next {
        advance.execute(params![tp.topic, tp.partition, offset as i64])?;
    }
    Ok(counts)
}

#[derive(Debug, Clone)]
pub struct ProjectionConfig {
    /// Most records applied in one transaction.
    pub batch_max: usize,
    /// How long a following view waits before it looks for new records again, after a round
    /// that found none.
    pub poll_timeout: Duration,
    /// A catch-up that moves no record forward for this long fails (the log no longer holds
    /// the records it measured, or stopped answering).
    pub stall_timeout: Duration,
    /// How long a catch-up waits for the view's file while another process holds it locked
    /// before it fails, naming the file. `run` waits until shutdown instead.
    pub busy_limit: Duration,
    /// The pauses between tries through a transient failure.
    pub retry: RetryPolicy,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            batch_max: 5_000,
            poll_timeout: Duration::from_millis(200),
            stall_timeout: Duration::from_secs(60),
            busy_limit: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// The `op` of the [`LogError::Timeout`] a catch-up fails with when it moves nothing forward
/// for [`ProjectionConfig::stall_timeout`] (see [`stalled_for`]).
pub const CATCH_UP_STALLED: &str = "view catch-up";

/// How long a catch-up moved nothing, if that is why it failed. `LogError::Timeout`'s message
/// speaks of Kafka; a command that reports this error should say what happened instead.
pub fn stalled_for(e: &ServiceError) -> Option<Duration> {
    match e {
        ServiceError::Log(LogError::Timeout { op, seconds }) if *op == CATCH_UP_STALLED => {
            Some(Duration::from_secs(*seconds))
        }
        _ => None,
    }
}

/// How far a catch-up is: records brought up to date, of those it has to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpProgress {
    pub done: u64,
    pub total: u64,
}

/// What a catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Records read past the file's position.
    pub records: u64,
    /// Skipped records read again (not in `records`); those read now count as applied.
    pub retried: u64,
    pub counts: BatchCounts,
    pub elapsed: Duration,
}

type ProgressFn = Arc<dyn Fn(CatchUpProgress) + Send + Sync>;
type TapFn<E> = Arc<dyn Fn(&[Incoming<E>]) + Send + Sync>;

/// Feeds one view from the log.
pub struct ProjectionRunner<P: Projection> {
    log: Arc<dyn EventLog>,
    data_dir: PathBuf,
    config: ProjectionConfig,
    progress: Option<ProgressFn>,
    tap: Option<TapFn<EventOf<P>>>,
    view: PhantomData<fn() -> P>,
}

/// How long work on the view's file, and the view's calls to the log, keep trying through a
/// transient failure (the file locked by another process, the log unreachable): a command
/// answering someone gives up after [`Until::Elapsed`] (naming the file, when it stayed
/// locked); a follower, as a team does, [`Until::Stopped`].
type Patience = Until;

/// Skipped records further apart than this on a partition are read again with separate reads;
/// closer ones with one read over the records between them (cheaper than a round trip each).
const RETRY_SPAN: u64 = 1_000;

/// Group sorted offsets into ranges `[first, last]` whose neighbours are at most
/// [`RETRY_SPAN`] apart.
fn spans(offsets: &[u64]) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for &offset in offsets {
        match spans.last_mut() {
            Some((_, last)) if offset <= *last + RETRY_SPAN => *last = (*last).max(offset),
            _ => spans.push((offset, offset)),
        }
    }
    spans
}

/// The error a catch-up gives up with when the view's file stayed locked: the store error,
/// with a message that says so and what to do.
fn still_locked(e: ServiceError, waited: Duration) -> ServiceError {
    match e {
        ServiceError::Store {
            team,
            path,
            source: rusqlite::Error::SqliteFailure(code, _),
        } => ServiceError::Store {
            team,
            source: rusqlite::Error::SqliteFailure(
                code,
                Some(format!(
                    "the file stayed locked by another connection for {} s (hint: another \
                     process is writing it: a `returns status` or `returns stats` on the same \
                     --data, or a sqlite3 shell with a transaction open; let it finish or stop \
                     it, then try again)",
                    waited.as_secs()
                )),
            ),
            path,
        },
        other => other,
    }
}

impl<P: Projection> ProjectionRunner<P> {
    pub fn new(log: Arc<dyn EventLog>, data_dir: PathBuf) -> Self {
        ProjectionRunner {
            log,
            data_dir,
            config: ProjectionConfig::default(),
            progress: None,
            tap: None,
            view: PhantomData,
        }
    }

    pub fn with_config(mut self, config: ProjectionConfig) -> Self {
        self.config = config;
        self
    }

    /// Call `f` as a catch-up moves forward (for a progress bar).
    pub fn with_progress(mut self, f: impl Fn(CatchUpProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Show `f` every batch the view has applied, once its transaction has committed (the
    /// dashboard's live lanes). `f` runs on the runner's task: it must be quick.
    pub fn with_tap(mut self, f: impl Fn(&[Incoming<EventOf<P>>]) + Send + Sync + 'static) -> Self {
        self.tap = Some(Arc::new(f));
        self
    }

    /// Follow the topics until `shutdown`; then finish the batch in hand and return. A file
    /// locked by another process, or a log that fails transiently, is waited out until
    /// shutdown, as a team does.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        match self.follow(&shutdown).await {
            Err(e) if e.is_transient() && shutdown.is_cancelled() => {
                tracing::info!(view = P::NAME, error = %e, "stopped while waiting");
                Ok(())
            }
            other => other,
        }
    }

    async fn follow(&self, shutdown: &CancellationToken) -> Result<(), ServiceError> {
        let patience = Until::Stopped(shutdown.clone());
        let mut report = CatchUp::default();
        let store = self.open(&patience).await?;
        self.retry_skipped(&store, &patience, &mut report).await?;
        tracing::info!(view = P::NAME, "following its topics");
        let mut shown = Shown::default();
        // Every read and every write keeps trying through a transient failure until the stop
        // (`patience`), so an error out of a round is one that no retry mends.
        while !shutdown.is_cancelled() {
            // A stop does not wait for a read the log is slow to answer (a broker gone): what
            // this round applied is in the file; the rest is read at the next start.
            let moved = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                round = self.round(&store, None, &patience, &mut report) => round?,
            };
            self.show(&store, &mut shown, false).await;
            if moved == 0 {
                pause(self.config.poll_timeout, shutdown).await;
            }
        }
        self.show_last(&store, &mut shown).await;
        tracing::info!(view = P::NAME, "stopped cleanly");
        Ok(())
    }

    /// Apply everything up to the topics' ends as they are now, and return. Records appended
    /// meanwhile are left for the next call. Several catch-ups of one file at once each
    /// finish: each reads from the file's position as it finds it, and an event applied twice
    /// counts once.
    pub async fn catch_up(self) -> Result<CatchUp, ServiceError> {
        let started = Instant::now();
        let patience = Until::Elapsed(self.config.busy_limit);
        let mut report = CatchUp::default();
        let store = self.open(&patience).await?;
        self.retry_skipped(&store, &patience, &mut report).await?;
        let target = self.ends(&patience).await?;
        let mut held = self.positions(&store, &patience).await?;
        let first = reached(&held, &target);
        let total = target.values().sum::<u64>() - first;
        let mut last_moved = (first, Instant::now());
        loop {
            let done = reached(&held, &target);
            if let Some(progress) = &self.progress {
                progress(CatchUpProgress {
                    done: done - first,
                    total,
                });
            }
            if done == target.values().sum::<u64>() {
                break;
            }
            if done > last_moved.0 {
                last_moved = (done, Instant::now());
            } else if last_moved.1.elapsed() > self.config.stall_timeout {
                tracing::warn!(
                    view = P::NAME,
                    "catch-up moved nothing for {:?}; does the log still hold these records?",
                    self.config.stall_timeout
                );
                return Err(ServiceError::Log(LogError::Timeout {
                    op: CATCH_UP_STALLED,
                    seconds: self.config.stall_timeout.as_secs(),
                }));
            }
            let moved = self
                .read_round(&store, &held, Some(&target), &patience, &mut report)
                .await?;
            if moved == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            held = self.positions(&store, &patience).await?;
        }
        self.show_last(&store, &mut Shown::default()).await;
        report.elapsed = started.elapsed();
        tracing::info!(view = P::NAME, ?report, "caught up");
        Ok(report)
    }

    /// Open the view's file (laid out, or rebuilt if another build's).
    async fn open(&self, patience: &Patience) -> Result<Arc<Mutex<ViewStore<P>>>, ServiceError> {
        let (dir, policy, wait) = (
            self.data_dir.clone(),
            self.config.retry.clone(),
            patience.clone(),
        );
        // Opening may meet the file busy (another process laying it out or switching it to WAL).
        let store = tokio::task::spawn_blocking(move || {
            retry_blocking(&policy, &wait, "opening a view's file", || {
                ViewStore::<P>::open(&dir)
            })
        })
        .await
        .map_err(|_| ServiceError::Task(P::NAME))??;
        if let Until::Elapsed(limit) = patience {
            store.set_busy_timeout((*limit).min(BUSY_TIMEOUT))?;
        }
        // The topics exist from here on, so their ends and the group's lag can be asked for.
        for topic in P::Source::topics() {
            retry(
                &self.config.retry,
                patience,
                "creating a view's topics",
                || self.log.ensure_topic(&topic),
            )
            .await?;
        }
        Ok(Arc::new(Mutex::new(store)))
    }

    /// The topics' ends now, measured last topic first: an event's causes are on earlier
    /// topics, so their ends, measured later, are past them (see `Source::topics`). A topic
    /// that does not exist yet has no records.
    async fn ends(&self, patience: &Patience) -> Result<Positions, ServiceError> {
        let mut target = Positions::new();
        for topic in P::Source::topics().iter().rev() {
            let ends = match self.end_offsets(topic, patience).await {
                Err(LogError::UnknownTopic(_)) => continue,
                other => other?,
            };
            for (partition, end) in ends.into_iter().enumerate() {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: partition as u32,
                };
                target.insert(tp, end);
            }
        }
        Ok(target)
    }

    /// How far the file has read.
    async fn positions(
        &self,
        store: &Arc<Mutex<ViewStore<P>>>,
        patience: &Patience,
    ) -> Result<Positions, ServiceError> {
        on_store(store, patience, &self.config.retry, |s| s.positions()).await
    }

    /// [`Self::read_round`] from where the file stands now.
    async fn round(
        &self,
        store: &Arc<Mutex<ViewStore<P>>>,
        target: Option<&Positions>,
        patience: &Patience,
        report: &mut CatchUp,
    ) -> Result<u64, ServiceError> {
        let held = self.positions(store, patience).await?;
        self.read_round(store, &held, target, patience, report)
            .await
    }

    /// One page of every partition that has records past the file's position (up to `target`,
    /// if given), in the order of [`Source::topics`], each page applied in its own transaction.
    /// How many records were applied.
    async fn read_round(
        &self,
        store: &Arc<Mutex<ViewStore<P>>>,
        held: &Positions,
        target: Option<&Positions>,
        patience: &Patience,
        report: &mut CatchUp,
    ) -> Result<u64, ServiceError> {
        let mut moved = 0;
        for topic in P::Source::topics() {
            let ends = match target {
                Some(target) => target
                    .iter()
                    .filter(|(tp, _)| tp.topic == topic)
                    .map(|(_, end)| *end)
                    .collect(),
                None => match self.end_offsets(&topic, patience).await {
                    Err(LogError::UnknownTopic(_)) => continue,
                    other => other?,
                },
            };
            for (partition, end) in ends.into_iter().enumerate() {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: partition as u32,
                };
                let from = held.get(&tp).copied().unwrap_or(0);
                if from >= end {
                    continue;
                }
                let max = (end - from).min(self.config.batch_max as u64) as usize;
                let mut page = self.read(&topic, tp.partition, from, max, patience).await?;
                page.retain(|r| r.offset < end);
                let Some(first) = page.first().map(|r| r.offset) else {
                    continue;
                };
                if first > from {
                    tracing::warn!(
                        view = P::NAME,
                        topic = %topic,
                        partition = tp.partition,
                        from,
                        first,
                        "the log no longer holds these records (retention?): the view goes on without them"
                    );
                }
                moved += page.len() as u64;
                report.records += page.len() as u64;
                report.counts += self.apply(store, page, patience).await?;
            }
        }
        Ok(moved)
    }

    /// The log's [`EventLog::end_offsets`], tried again through a transient failure for as long
    /// as `patience` allows.
    async fn end_offsets(&self, topic: &str, patience: &Patience) -> Result<Vec<u64>, LogError> {
        retry(
            &self.config.retry,
            patience,
            "a view's read of the topic ends",
            || self.log.end_offsets(topic),
        )
        .await
    }

    /// The log's [`EventLog::read`], tried again the same way.
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        patience: &Patience,
    ) -> Result<Vec<Record>, LogError> {
        retry(
            &self.config.retry,
            patience,
            "a view's read of the log",
            || self.log.read(topic, partition, from, max),
        )
        .await
    }

    /// Read every skipped record again and apply those this build can read now. A partition's
    /// skipped records close to each other are read with one read over the range.
    async fn retry_skipped(
        &self,
        store: &Arc<Mutex<ViewStore<P>>>,
        patience: &Patience,
        report: &mut CatchUp,
    ) -> Result<(), ServiceError> {
        let skipped = on_store(store, patience, &self.config.retry, |s| s.skipped()).await?;
        if skipped.is_empty() {
            return Ok(());
        }
        let mut wanted: BTreeMap<TopicPartition, Vec<u64>> = BTreeMap::new();
        for s in &skipped {
            wanted
                .entry(TopicPartition {
                    topic: s.topic.clone(),
                    partition: s.partition,
                })
                .or_default()
                .push(s.offset);
        }
        let mut again = Vec::new();
        for (tp, offsets) in wanted {
            for (first, last) in spans(&offsets) {
                let mut from = first;
                while from <= last {
                    let max = (last + 1 - from).min(self.config.batch_max as u64) as usize;
                    let page = match self
                        .read(&tp.topic, tp.partition, from, max, patience)
                        .await
                    {
                        Ok(page) => page,
                        // The topic or partition is gone: nothing to read again.
                        Err(LogError::UnknownTopic(_) | LogError::UnknownPartition { .. }) => break,
                        Err(e) => return Err(e.into()),
                    };
                    let Some(end) = page.last().map(|r| r.offset + 1) else {
                        break;
                    };
                    from = end;
                    again.extend(
                        page.into_iter()
                            .filter(|r| offsets.binary_search(&r.offset).is_ok()),
                    );
                }
            }
        }
        report.retried += again.len() as u64;
        let counts = on_store(store, patience, &self.config.retry, move |s| {
            let batch: Vec<Incoming<EventOf<P>>> =
                again.iter().map(Incoming::decode::<P::Source>).collect();
            s.apply_retried(&batch)
        })
        .await?;
        if counts.applied > 0 {
            tracing::info!(
                view = P::NAME,
                read_now = counts.applied,
                still_unreadable = counts.skipped,
                "skipped records read again"
            );
        }
        report.counts.applied += counts.applied;
        Ok(())
    }

    /// Decode and apply a page in one transaction (the file's positions move past it); then
    /// show it to the tap.
    async fn apply(
        &self,
        store: &Arc<Mutex<ViewStore<P>>>,
        records: Vec<Record>,
        patience: &Patience,
    ) -> Result<BatchCounts, ServiceError> {
        let (counts, batch) = on_store(store, patience, &self.config.retry, move |s| {
            let batch: Vec<Incoming<EventOf<P>>> =
                records.iter().map(Incoming::decode::<P::Source>).collect();
            Ok((s.apply(&batch)?, batch))
        })
        .await?;
        if let Some(tap) = &self.tap {
            tap(&batch);
        }
        Ok(counts)
    }

    /// Show how far the file is as its group's committed positions, so the group's lag is the
    /// view's ([`EventLog::commit_outside`]); at most once a second unless `now`. Only for
    /// reading: the view's position is its file's. The commit runs in the background, one at a
    /// time, so a log slow to take it (a coordinator gone) never holds up the view's reading;
    /// a failure is logged and the next show tries again.
    async fn show(&self, store: &Arc<Mutex<ViewStore<P>>>, shown: &mut Shown, now: bool) {
        if shown.in_flight.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        if let Some(done) = shown.in_flight.take() {
            if let Ok(Some(positions)) = done.await {
                shown.positions = positions;
            }
        }
        if !now && shown.at.is_some_and(|at| at.elapsed() < SHOW_EVERY) {
            return;
        }
        let held = {
            let store = Arc::clone(store);
            tokio::task::spawn_blocking(move || lock(&store).positions()).await
        };
        let Ok(Ok(held)) = held else { return };
        let moved: Vec<Position> = held
            .iter()
            .filter(|(tp, offset)| shown.positions.get(*tp) != Some(*offset))
            .map(|(tp, offset)| Position {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: *offset,
            })
            .collect();
        shown.at = Some(Instant::now());
        if moved.is_empty() {
            return;
        }
        let log = Arc::clone(&self.log);
        shown.in_flight = Some(tokio::spawn(async move {
            match log.commit_outside(P::GROUP, &moved).await {
                Ok(()) => Some(held),
                Err(e) => {
                    tracing::warn!(view = P::NAME, error = %e, "could not show the view's position to its group (its lag is stale; the view goes on)");
                    None
                }
            }
        }));
    }

    /// The last show, at a stop or at the end of a catch-up: given [`SHOW_AT_STOP`] to land,
    /// not more (it is only the lag).
    async fn show_last(&self, store: &Arc<Mutex<ViewStore<P>>>, shown: &mut Shown) {
        let last = async {
            if let Some(earlier) = shown.in_flight.take() {
                let _ = earlier.await;
            }
            self.show(store, shown, true).await;
            if let Some(this) = shown.in_flight.take() {
                let _ = this.await;
            }
        };
        let _ = tokio::time::timeout(SHOW_AT_STOP, last).await;
    }
}

/// How often a following view shows its position to its group.
const SHOW_EVERY: Duration = Duration::from_secs(1);
/// How long a stopping view tries to show its last position to its group.
const SHOW_AT_STOP: Duration = Duration::from_secs(2);

/// What a view last showed its group, and the show under way.
#[derive(Default)]
struct Shown {
    at: Option<Instant>,
    positions: Positions,
    in_flight: Option<tokio::task::JoinHandle<Option<Positions>>>,
}

/// Records below `target` the file has reached.
fn reached(held: &Positions, target: &Positions) -> u64 {
    target
        .iter()
        .map(|(tp, end)| held.get(tp).copied().unwrap_or(0).min(*end))
        .sum()
}

fn lock<P: Projection>(store: &Mutex<ViewStore<P>>) -> std::sync::MutexGuard<'_, ViewStore<P>> {
    store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Run `work` on the store on a blocking thread, trying again while another connection holds
/// the file locked, for as long as `patience` allows; a catch-up that gives up names the file.
async fn on_store<P: Projection, T: Send + 'static>(
    store: &Arc<Mutex<ViewStore<P>>>,
    patience: &Patience,
    policy: &RetryPolicy,
    mut work: impl FnMut(&mut ViewStore<P>) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let (store, patience, policy) = (Arc::clone(store), patience.clone(), policy.clone());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = retry_blocking(&policy, &patience, "work on the view's file", || {
            work(&mut lock(&store))
        });
        match (result, &patience) {
            (Err(e), Until::Elapsed(_)) if e.is_transient() => {
                Err(still_locked(e, started.elapsed()))
            }
            (other, _) => other,
        }
    })
    .await
    .map_err(|_| ServiceError::Task(P::NAME))?
}

// ---------------------------------------------------------------------------------------------
// What User Support's views read.

/// The four teams that act on a return ([`TeamName::ALL`]): a return is complete once each
/// has decided.
pub const REACTING_TEAMS: [&str; 4] = TeamName::names(TeamName::ALL);

/// Teams that only observe returns and may join late ([`TeamName::LATE`], Quality): their
/// events are shown and measured when there are some, but nobody waits for them. A team added
/// later is not in the views until it is a [`TeamName`] and has a [`TeamDecision`].
pub const OBSERVING_TEAMS: [&str; 1] = TeamName::names(TeamName::LATE);

/// Every team the views read, reacting teams first.
pub fn view_teams() -> impl Iterator<Item = &'static str> {
    REACTING_TEAMS.into_iter().chain(OBSERVING_TEAMS)
}

/// `returnOrders` and the topic of every team the views read.
pub fn returns_topics() -> Vec<String> {
    std::iter::once(RETURN_ORDERS.to_string())
        .chain(view_teams().map(team_topic))
        .collect()
}

/// What User Support's views read: [`returns_topics`], as [`ReturnsEvent`]s.
pub struct ReturnsEvents;

impl Source for ReturnsEvents {
    type Event = ReturnsEvent;

    fn topics() -> Vec<String> {
        returns_topics()
    }
    fn decode(record: &Record) -> Result<ReturnsEvent, Skip> {
        decode_returns_event(record)
    }
}

/// A team's decision on a return, as published on its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamDecision {
    Sales(SalesEvent),
    Inventory(InventoryEvent),
    Manufacturing(ManufacturingEvent),
    Accounting(AccountingEvent),
    Quality(QualityEvent),
}

impl TeamDecision {
    pub fn team(&self) -> &'static str {
        match self {
            TeamDecision::Sales(_) => Sales::NAME,
            TeamDecision::Inventory(_) => Inventory::NAME,
            TeamDecision::Manufacturing(_) => Manufacturing::NAME,
            TeamDecision::Accounting(_) => Accounting::NAME,
            TeamDecision::Quality(_) => Quality::NAME,
        }
    }

    pub fn return_id(&self) -> ReturnId {
        match self {
            TeamDecision::Sales(e) => e.return_id(),
            TeamDecision::Inventory(e) => e.return_id(),
            TeamDecision::Manufacturing(e) => e.return_id(),
            TeamDecision::Accounting(e) => e.return_id(),
            TeamDecision::Quality(e) => e.return_id(),
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            TeamDecision::Sales(e) => Sales::outcome(e),
            TeamDecision::Inventory(e) => Inventory::outcome(e),
            TeamDecision::Manufacturing(e) => Manufacturing::outcome(e),
            TeamDecision::Accounting(e) => Accounting::outcome(e),
            TeamDecision::Quality(e) => Quality::outcome(e),
        }
    }

    /// PascalCase, e.g. `OrderRefunded`.
    pub fn event_type(&self) -> &'static str {
        match self {
            TeamDecision::Sales(e) => Sales::event_type(e),
            TeamDecision::Inventory(e) => Inventory::event_type(e),
            TeamDecision::Manufacturing(e) => Manufacturing::event_type(e),
            TeamDecision::Accounting(e) => Accounting::event_type(e),
            TeamDecision::Quality(e) => Quality::event_type(e),
        }
    }
}

/// A record of `returnOrders` or of a reacting team's topic, read through `wire`.
#[derive(Debug, Clone)]
pub enum ReturnsEvent {
    Requested {
        envelope: Envelope,
        request: Box<RefundRequest>,
    },
    Decided {
        envelope: Envelope,
        decision: TeamDecision,
    },
}

/// Read a record of one of [`returns_topics`]. Unreadable records are the teams' business (they
/// dead-letter them); a view only skips them, with the reason.
pub fn decode_returns_event(record: &Record) -> Result<ReturnsEvent, Skip> {
    fn team<T: Team>(
        record: &Record,
        wrap: fn(T::Event) -> TeamDecision,
    ) -> Result<ReturnsEvent, Skip> {
        let (envelope, event) = wire::decode_team_event::<T>(record)?;
        Ok(ReturnsEvent::Decided {
            envelope,
            decision: wrap(event),
        })
    }
    let topic = record.topic.as_str();
    if topic == RETURN_ORDERS {
        let (envelope, request) = wire::decode_refund_request(record);
        return Ok(ReturnsEvent::Requested {
            envelope,
            request: Box::new(request?),
        });
    }
    type Decode = fn(&Record) -> Result<ReturnsEvent, Skip>;
    let decoders: [(&str, Decode); 5] = [
        (Sales::NAME, |r| team::<Sales>(r, TeamDecision::Sales)),
        (Inventory::NAME, |r| {
            team::<Inventory>(r, TeamDecision::Inventory)
        }),
        (Manufacturing::NAME, |r| {
            team::<Manufacturing>(r, TeamDecision::Manufacturing)
        }),
        (Accounting::NAME, |r| {
            team::<Accounting>(r, TeamDecision::Accounting)
        }),
        (Quality::NAME, |r| team::<Quality>(r, TeamDecision::Quality)),
    ];
    match decoders.iter().find(|(name, _)| team_topic(name) == topic) {
        Some((_, decode)) => decode(record),
        None => Err(Skip {
            kind: "unexpected_topic",
            reason: format!("the view does not read topic `{topic}`"),
        }),
    }
}

/// An envelope's time as unix microseconds.
pub(crate) fn unix_us(envelope: &Envelope) -> i64 {
    (envelope.time.unix_timestamp_nanos() / 1000) as i64
}

/// Unix microseconds as RFC 3339 in UTC.
pub(crate) fn rfc3339_us(us: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{us} µs after the epoch"))
}

/// Hand-made records for the views' tests.
#[cfg(test)]
pub(crate) mod testkit {
    use returns_domain::{RefundRequest, Team};
    use returns_eventlog::envelope::Envelope;
    use returns_eventlog::wire;
    use returns_eventlog::{team_topic, OutRecord, Record, RETURN_ORDERS};

    use super::{EventOf, Incoming, Projection};

    fn at_time(envelope: Envelope, at_ms: i64) -> Envelope {
        Envelope {
            time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
                .unwrap(),
            ..envelope
        }
    }

    fn placed(topic: &str, offset: u64, out: OutRecord) -> Record {
        Record {
            topic: topic.to_string(),
            partition: 0,
            offset,
            key: Some(out.key),
            timestamp_ms: 0,
            headers: out.headers,
            payload: out.payload,
        }
    }

    /// `req` as User Support publishes it, at `at_ms`, at `offset` of `returnOrders`.
    pub(crate) fn requested(req: &RefundRequest, offset: u64, at_ms: i64) -> Record {
        let envelope = at_time(wire::refund_request_envelope(req), at_ms);
        placed(
            RETURN_ORDERS,
            offset,
            wire::encode_refund_request(req, &envelope),
        )
    }

    /// What `T` decides for `req` from the state of a key never seen.
    pub(crate) fn first_decision<T: Team>(req: &RefundRequest) -> T::Event {
        T::decide(&T::initial(&T::key(req)), req)
    }

    /// `event` as `T` publishes it, at `at_ms`, at `offset` of its topic.
    pub(crate) fn decided<T: Team>(event: &T::Event, offset: u64, at_ms: i64) -> Record {
        let envelope = at_time(
            Envelope::new(
                wire::team_event_type::<T>(event),
                format!("/returns/{}", T::NAME),
            ),
            at_ms,
        );
        let out = OutRecord {
            key: "k".into(),
            headers: envelope.to_headers(),
            payload: wire::encode_team_event::<T>(event),
        };
        placed(&team_topic(T::NAME), offset, out)
    }

    /// A line typed into a console producer: no headers, not JSON.
    pub(crate) fn bad_request(offset: u64) -> Record {
        placed(
            RETURN_ORDERS,
            offset,
            OutRecord {
                key: "k".into(),
                headers: vec![],
                payload: b"This is the first message".to_vec(),
            },
        )
    }

    pub(crate) fn incoming<P: Projection>(records: &[Record]) -> Vec<Incoming<EventOf<P>>> {
        records.iter().map(Incoming::decode::<P::Source>).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use returns_domain::{Generator, Inventory, Sales};
    use returns_eventlog::testkit::Wrapper;
    use returns_eventlog::{OutRecord, RETURN_ORDERS};

    use super::testkit::{bad_request, decided, first_decision, incoming, requested};
    use super::*;
    use crate::views::status::{StatusStore, StatusView};
    use crate::Publisher;

    /// A view that counts what it applies, for the runner's tests.
    struct Counter;

    impl Projection for Counter {
        const NAME: &'static str = "counter";
        const GROUP: &'static str = "returns.test.counter";
        type Source = ReturnsEvents;

        fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
            conn.execute_batch("CREATE TABLE IF NOT EXISTS counted (event_id TEXT NOT NULL)")
        }
        fn write(tx: &Transaction<'_>, event: &ReturnsEvent) -> rusqlite::Result<()> {
            let (ReturnsEvent::Requested { envelope, .. } | ReturnsEvent::Decided { envelope, .. }) =
                event;
            tx.execute("INSERT INTO counted (event_id) VALUES (?1)", [&envelope.id])?;
            Ok(())
        }
    }

    fn counted(store: &ViewStore<Counter>) -> u64 {
        store
            .conn()
            .query_row("SELECT COUNT(*) FROM counted", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    }

    #[test]
    fn a_redelivered_batch_is_not_counted_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ViewStore::<Counter>::open(dir.path()).unwrap();
        let reqs: Vec<_> = Generator::new(1).requests(0..3).collect();
        let batch: Vec<Record> = reqs
            .iter()
            .enumerate()
            .map(|(i, r)| requested(r, i as u64, 0))
            .chain([decided::<Sales>(&first_decision::<Sales>(&reqs[0]), 0, 5)])
            .collect();
        let first = store.apply(&incoming::<Counter>(&batch)).unwrap();
        assert_eq!(
            first,
            BatchCounts {
                applied: 4,
                duplicates: 0,
                skipped: 0
            }
        );
        // Delivered again (a commit that never happened), then once more with one new record.
        let again = store.apply(&incoming::<Counter>(&batch)).unwrap();
        assert_eq!((again.applied, again.duplicates), (0, 4));
        let mut more = batch.clone();
        more.push(requested(&Generator::new(1).request(3), 3, 0));
        let third = store.apply(&incoming::<Counter>(&more)).unwrap();
        assert_eq!((third.applied, third.duplicates), (1, 4));
        assert_eq!(counted(&store), 5);
        assert_eq!(store.seen().unwrap(), 5);
    }

    #[test]
    fn a_bad_record_is_skipped_with_its_reason_and_its_neighbours_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ViewStore::<Counter>::open(dir.path()).unwrap();
        let req = Generator::new(1).request(0);
        let mut wrong_type = decided::<Inventory>(&first_decision::<Inventory>(&req), 0, 0);
        wrong_type.topic = team_topic(Sales::NAME); // an inventory event on the sales topic
        wrong_type.offset = 1;
        let stray = Record {
            topic: "elsewhere".into(),
            ..requested(&req, 9, 0)
        };
        let batch = vec![
            requested(&req, 0, 0),
            bad_request(1),
            requested(&Generator::new(1).request(1), 2, 0),
            decided::<Sales>(&first_decision::<Sales>(&req), 0, 0),
            wrong_type,
            stray,
        ];
        let counts = store.apply(&incoming::<Counter>(&batch)).unwrap();
        assert_eq!(
            counts,
            BatchCounts {
                applied: 3,
                duplicates: 0,
                skipped: 3
            }
        );
        assert_eq!(counted(&store), 3);
        let kinds = store.skipped_by_kind().unwrap();
        assert_eq!(
            kinds,
            BTreeMap::from([
                ("malformed".to_string(), 1),
                ("unexpected_topic".to_string(), 1),
                ("unknown_type".to_string(), 1),
            ])
        );
        // Delivered again, the bad record is neither counted nor skipped a second time.
        let again = store.apply(&incoming::<Counter>(&batch)).unwrap();
        assert_eq!((again.skipped, again.duplicates), (0, 6));
        // The file knows how far it got on each partition it saw.
        let positions = store.positions().unwrap();
        let at = |topic: &str| {
            positions[&TopicPartition {
                topic: topic.into(),
                partition: 0,
            }]
        };
        assert_eq!(at(RETURN_ORDERS), 3);
        assert_eq!(at(&team_topic(Sales::NAME)), 2);
    }

    async fn assert_group_caught_up(log: &Arc<dyn EventLog>) {
        for topic in returns_topics() {
            assert_eq!(log.lag(Counter::GROUP, &topic).await.unwrap(), 0, "{topic}");
        }
    }

    async fn sqlite_log(dir: &Path) -> Arc<dyn EventLog> {
        returns_eventlog::open(&format!("sqlite://{}", dir.join("log.db").display()))
            .await
            .unwrap()
    }

    /// Requests published by User Support, plus one raw line that is not a request.
    async fn publish(log: &Arc<dyn EventLog>, range: std::ops::Range<u64>) {
        let reqs: Vec<_> = Generator::new(5).requests(range).collect();
        Publisher::new(Arc::clone(log))
            .publish(&reqs)
            .await
            .unwrap();
        let raw = OutRecord {
            key: "raw".into(),
            headers: vec![],
            payload: b"not a request".to_vec(),
        };
        log.append(RETURN_ORDERS, vec![raw]).await.unwrap();
    }

    #[tokio::test]
    async fn catch_up_applies_up_to_the_end_commits_and_a_second_one_finds_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..250).await;
        let config = ProjectionConfig {
            batch_max: 40,
            ..ProjectionConfig::default()
        };
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let progress = Arc::clone(&seen);
        let first = ProjectionRunner::<Counter>::new(Arc::clone(&log), dir.path().into())
            .with_config(config.clone())
            .with_progress(move |p| progress.lock().unwrap().push(p))
            .catch_up()
            .await
            .unwrap();
        assert_eq!(first.records, 251);
        assert_eq!(first.counts.applied, 250);
        assert_eq!(first.counts.skipped, 1);
        assert_group_caught_up(&log).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen.last(),
            Some(&CatchUpProgress {
                done: 251,
                total: 251
            })
        );
        assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "{seen:?}");

        let second = ProjectionRunner::<Counter>::new(Arc::clone(&log), dir.path().into())
            .catch_up()
            .await
            .unwrap();
        assert_eq!(second.records, 0);

        publish(&log, 250..260).await;
        let third = ProjectionRunner::<Counter>::new(Arc::clone(&log), dir.path().into())
            .catch_up()
            .await
            .unwrap();
        assert_eq!((third.records, third.counts.applied), (11, 10));
        let store = ViewStore::<Counter>::open(dir.path()).unwrap();
        assert_eq!(counted(&store), 260);
    }

    /// The file is the view's only checkpoint: a view whose file was deleted reads everything
    /// again, although its group had shown it at the end.
    #[tokio::test]
    async fn a_deleted_view_file_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..120).await;
        let view_dir = dir.path().join("views");
        let runner = || ProjectionRunner::<Counter>::new(Arc::clone(&log), view_dir.clone());
        runner().catch_up().await.unwrap();
        std::fs::remove_dir_all(&view_dir).unwrap();

        publish(&log, 120..130).await;
        let rebuilt = runner().catch_up().await.unwrap();
        assert_eq!(
            rebuilt.records, 132,
            "every request and both raw lines, again"
        );
        assert_eq!(rebuilt.counts.applied, 130);
        assert_eq!(
            counted(&ViewStore::<Counter>::open(&view_dir).unwrap()),
            130
        );
    }

    /// Two copies of a view (two data directories) on one log share its group: each file still
    /// gets everything.
    #[tokio::test]
    async fn two_files_on_one_group_each_get_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..50).await;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let runner = |d: &Path| ProjectionRunner::<Counter>::new(Arc::clone(&log), d.into());
        runner(&a).catch_up().await.unwrap();
        publish(&log, 50..60).await;
        runner(&b).catch_up().await.unwrap();
        runner(&a).catch_up().await.unwrap();
        for d in [&a, &b] {
            assert_eq!(counted(&ViewStore::<Counter>::open(d).unwrap()), 60);
        }
    }

    /// Two commands catching the same view up at once: on SQLite the second fences the first,
    /// which then follows the group from outside. Both finish, each file complete.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_catch_ups_at_once_both_finish_with_everything() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..600).await;
        let small = ProjectionConfig {
            batch_max: 10,
            ..ProjectionConfig::default()
        };
        let runner = |d: &str| {
            ProjectionRunner::<Counter>::new(Arc::clone(&log), dir.path().join(d))
                .with_config(small.clone())
                .catch_up()
        };
        let (a, b) = tokio::join!(runner("a"), runner("b"));
        let (a, b) = (a.unwrap(), b.unwrap());
        for d in ["a", "b"] {
            let store = ViewStore::<Counter>::open(&dir.path().join(d)).unwrap();
            assert_eq!(counted(&store), 600, "{d}: {a:?} {b:?}");
        }
        assert_group_caught_up(&log).await;
    }

    #[tokio::test]
    async fn run_follows_the_topics_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            ProjectionRunner::<StatusView>::new(Arc::clone(&log), dir.path().into())
                .run(shutdown.clone()),
        );
        publish(&log, 0..30).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let committed: u64 = log
                .committed(StatusView::GROUP, RETURN_ORDERS)
                .await
                .unwrap()
                .iter()
                .sum();
            if committed == 31 {
                break;
            }
            assert!(Instant::now() < deadline, "committed {committed} of 31");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
        let store = StatusStore::open(dir.path()).unwrap();
        assert_eq!(store.returns_known().unwrap(), 30);
        assert_eq!(store.skipped_by_kind().unwrap()["malformed"], 1);
    }

    // What the review found: each test stages one race or leftover on the embedded log,
    // through `Rigged` where the race needs a log that meddles.

    const V3: &str = "returns.RefundRequest.v3";

    /// The same view (its name, group, file and tables) as a later build reads it, one that
    /// knows `RefundRequest.v3` (here: v2 under a new name).
    struct CounterV3;

    struct KnowsV3;

    impl Source for KnowsV3 {
        type Event = ReturnsEvent;

        fn topics() -> Vec<String> {
            returns_topics()
        }
        fn decode(record: &Record) -> Result<ReturnsEvent, Skip> {
            if record.header("ce_type") != Some(V3) {
                return decode_returns_event(record);
            }
            let mut as_v2 = record.clone();
            for (name, value) in &mut as_v2.headers {
                if name == "ce_type" {
                    *value = wire::REFUND_REQUEST_TYPE.to_string();
                }
            }
            decode_returns_event(&as_v2)
        }
    }

    impl Projection for CounterV3 {
        const NAME: &'static str = Counter::NAME;
        const GROUP: &'static str = Counter::GROUP;
        type Source = KnowsV3;

        fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
            Counter::create_tables(conn)
        }
        fn write(tx: &Transaction<'_>, event: &ReturnsEvent) -> rusqlite::Result<()> {
            Counter::write(tx, event)
        }
    }

    fn counted_at(dir: &Path) -> u64 {
        counted(&ViewStore::<Counter>::open(dir).unwrap())
    }

    fn request_record(req: &RefundRequest, event_type: &str) -> OutRecord {
        let mut out = wire::encode_refund_request(req, &wire::refund_request_envelope(req));
        for (name, value) in &mut out.headers {
            if name == "ce_type" {
                *value = event_type.to_string();
            }
        }
        out
    }

    fn decision_record<T: Team>(req: &RefundRequest) -> OutRecord {
        let event = first_decision::<T>(req);
        let envelope = Envelope::new(
            wire::team_event_type::<T>(&event),
            format!("/returns/{}", T::NAME),
        );
        OutRecord {
            key: req.return_id.to_string(),
            headers: envelope.to_headers(),
            payload: wire::encode_team_event::<T>(&event),
        }
    }

    fn runner<P: Projection>(log: &Arc<dyn EventLog>, dir: &Path) -> ProjectionRunner<P> {
        ProjectionRunner::new(Arc::clone(log), dir.into())
    }

    /// How a [`Rigged`] log meddles.
    #[derive(Default)]
    struct Rig {
        /// Appended right after `returnOrders`' end is measured, once.
        after_return_orders_end: Mutex<Vec<(String, OutRecord)>>,
    }

    struct Rigged {
        inner: Arc<dyn EventLog>,
        rig: Rig,
    }

    fn rigged(inner: &Arc<dyn EventLog>, rig: Rig) -> Arc<dyn EventLog> {
        Arc::new(Rigged {
            inner: Arc::clone(inner),
            rig,
        })
    }

    #[async_trait]
    impl Wrapper for Rigged {
        fn inner(&self) -> &Arc<dyn EventLog> {
            &self.inner
        }
        async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
            let ends = self.inner.end_offsets(topic).await?;
            if topic == RETURN_ORDERS {
                let appends =
                    std::mem::take(&mut *self.rig.after_return_orders_end.lock().unwrap());
                for (topic, record) in appends {
                    self.inner.append(&topic, vec![record]).await?;
                }
            }
            Ok(ends)
        }
    }

    /// Finding 3: a record of a version the view does not know yet is skipped, not marked as
    /// seen; once the view's build knows the version, the next catch-up reads it again and
    /// applies it. A malformed record stays skipped, and nothing counts twice.
    #[tokio::test]
    async fn a_skipped_record_is_applied_once_the_view_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..20).await;
        let v3: Vec<OutRecord> = Generator::new(6)
            .requests(0..5)
            .map(|r| request_record(&r, V3))
            .collect();
        log.append(RETURN_ORDERS, v3).await.unwrap();
        let view = dir.path().join("view");

        let old = runner::<Counter>(&log, &view).catch_up().await.unwrap();
        assert_eq!((old.counts.applied, old.counts.skipped), (20, 6));
        let again = runner::<Counter>(&log, &view).catch_up().await.unwrap();
        assert_eq!((again.counts.applied, again.retried), (0, 6));
        assert_eq!(counted_at(&view), 20);

        let newer = runner::<CounterV3>(&log, &view).catch_up().await.unwrap();
        assert_eq!((newer.records, newer.counts.applied), (0, 5), "{newer:?}");
        assert_eq!(counted_at(&view), 25);
        let store = ViewStore::<Counter>::open(&view).unwrap();
        assert_eq!(
            store.skipped_by_kind().unwrap(),
            BTreeMap::from([("malformed".to_string(), 1)])
        );
        assert_eq!(store.seen().unwrap(), 25);

        let last = runner::<CounterV3>(&log, &view).catch_up().await.unwrap();
        assert_eq!(last.counts.applied, 0);
        assert_eq!(counted_at(&view), 25);
    }

    /// A view file of another layout is not migrated: its tables are dropped and the view is
    /// rebuilt from the log, to the same state.
    #[tokio::test]
    async fn a_file_of_another_layout_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..40).await;
        let view = dir.path().join("view");
        runner::<Counter>(&log, &view).catch_up().await.unwrap();
        assert_eq!(counted_at(&view), 40);
        {
            // Another build's file: another layout version, a table this build does not know.
            let db = Connection::open(view.join(format!("{}.db", Counter::NAME))).unwrap();
            db.execute_batch("CREATE TABLE leftover (x INTEGER); PRAGMA user_version = 1;")
                .unwrap();
        }
        let rebuilt = runner::<Counter>(&log, &view).catch_up().await.unwrap();
        assert_eq!(rebuilt.counts.applied, 40, "{rebuilt:?}");
        assert_eq!(counted_at(&view), 40);
        let db = Connection::open(view.join(format!("{}.db", Counter::NAME))).unwrap();
        let leftover: bool = db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'leftover')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!leftover);
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, LAYOUT_VERSION);
    }

    /// Finding 5: a process holding the view's file locked makes a catch-up fail after its
    /// busy limit, with an error that names the file and says what to do, instead of waiting
    /// forever.
    #[tokio::test]
    async fn a_catch_up_gives_up_on_a_locked_view_file_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..10).await;
        runner::<Counter>(&log, dir.path())
            .catch_up()
            .await
            .unwrap();
        publish(&log, 10..20).await;
        let path = dir.path().join(format!("{}.db", Counter::NAME));
        let locker = Connection::open(&path).unwrap();
        locker.execute_batch("BEGIN IMMEDIATE").unwrap();

        let config = ProjectionConfig {
            busy_limit: Duration::from_secs(1),
            ..ProjectionConfig::default()
        };
        let started = Instant::now();
        let caught_up = runner::<Counter>(&log, dir.path())
            .with_config(config)
            .catch_up();
        let err = tokio::time::timeout(Duration::from_secs(30), caught_up)
            .await
            .expect("the catch-up gives up on a locked file")
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(15));
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("locked"), "{message}");
        assert!(message.contains("hint: another process"), "{message}");

        drop(locker);
        runner::<Counter>(&log, dir.path())
            .catch_up()
            .await
            .unwrap();
        assert_eq!(counted_at(dir.path()), 20);
    }

    /// Finding 7: a request and its team's decision are published while a catch-up measures
    /// the topics' ends. The catch-up's snapshot may miss both, never the request alone: the
    /// team topics' ends are measured before `returnOrders`', and nothing past them is applied.
    #[tokio::test]
    async fn a_catch_up_never_holds_a_decision_without_its_request() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..5).await;
        let req = Generator::new(9).request(0);
        let racing = rigged(
            &log,
            Rig {
                after_return_orders_end: Mutex::new(vec![
                    (
                        RETURN_ORDERS.to_string(),
                        request_record(&req, wire::REFUND_REQUEST_TYPE),
                    ),
                    (team_topic(Sales::NAME), decision_record::<Sales>(&req)),
                ]),
            },
        );
        runner::<StatusView>(&racing, dir.path())
            .catch_up()
            .await
            .unwrap();
        let status = StatusStore::open(dir.path())
            .unwrap()
            .status(&req.return_id)
            .unwrap();
        assert_eq!(status, None, "the snapshot holds a part of the return");

        runner::<StatusView>(&log, dir.path())
            .catch_up()
            .await
            .unwrap();
        let status = StatusStore::open(dir.path())
            .unwrap()
            .status(&req.return_id)
            .unwrap()
            .unwrap();
        assert!(status.request.is_some(), "{status:?}");
        assert!(status.teams[0].decision.is_some(), "{status:?}");
    }

    /// A log that fails the first `failing` reads as a broker that is away would, and no longer
    /// holds `returnOrders`' records below `held_from` (retention).
    struct Lossy {
        inner: Arc<dyn EventLog>,
        failing: std::sync::atomic::AtomicU32,
        held_from: u64,
    }

    #[async_trait]
    impl Wrapper for Lossy {
        fn inner(&self) -> &Arc<dyn EventLog> {
            &self.inner
        }
        async fn read(
            &self,
            topic: &str,
            partition: u32,
            offset: u64,
            max: usize,
        ) -> Result<Vec<Record>, LogError> {
            use std::sync::atomic::Ordering;
            if self
                .failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(LogError::Timeout {
                    op: "fetch",
                    seconds: 0,
                });
            }
            let from = match topic {
                RETURN_ORDERS => offset.max(self.held_from),
                _ => offset,
            };
            self.inner.read(topic, partition, from, max).await
        }
    }

    /// A catch-up (`returns status`, `stats`) rides out reads that fail for a while, within
    /// its patience, instead of failing on the first.
    #[tokio::test]
    async fn a_catch_up_rides_out_reads_that_fail_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..30).await;
        let flaky: Arc<dyn EventLog> = Arc::new(Lossy {
            inner: Arc::clone(&log),
            failing: 4.into(),
            held_from: 0,
        });
        let done = runner::<Counter>(&flaky, dir.path())
            .with_config(ProjectionConfig {
                retry: RetryPolicy {
                    first_backoff: Duration::from_millis(1),
                    max_backoff: Duration::from_millis(5),
                    ..RetryPolicy::default()
                },
                ..ProjectionConfig::default()
            })
            .catch_up()
            .await
            .unwrap();
        assert_eq!(done.counts.applied, 30);
        assert_eq!(counted_at(dir.path()), 30);
    }

    /// Records the log no longer holds (retention deleted them) are passed over with a warning:
    /// the view reads from the first record still held and finishes.
    #[tokio::test]
    async fn a_view_goes_on_past_records_the_log_no_longer_holds() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        publish(&log, 0..90).await;
        let lossy: Arc<dyn EventLog> = Arc::new(Lossy {
            inner: Arc::clone(&log),
            failing: 0.into(),
            held_from: 20,
        });
        let mut expected = 0;
        for (partition, end) in log
            .end_offsets(RETURN_ORDERS)
            .await
            .unwrap()
            .into_iter()
            .enumerate()
        {
            let held = log
                .read(RETURN_ORDERS, partition as u32, 20, end as usize)
                .await
                .unwrap();
            expected += held
                .iter()
                .filter(|r| r.payload != b"not a request")
                .count() as u64;
        }
        assert!(expected > 0 && expected < 90, "{expected}");
        runner::<Counter>(&lossy, dir.path())
            .with_config(ProjectionConfig {
                batch_max: 7,
                stall_timeout: Duration::from_secs(5),
                ..ProjectionConfig::default()
            })
            .catch_up()
            .await
            .expect("the catch-up finishes");
        assert_eq!(counted_at(dir.path()), expected);
    }

    /// A file laid out by a newer build is not touched: opening it is an error that says so.
    #[test]
    fn a_file_of_a_newer_layout_is_refused_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        drop(ViewStore::<Counter>::open(dir.path()).unwrap());
        let path = dir.path().join(format!("{}.db", Counter::NAME));
        let db = Connection::open(&path).unwrap();
        db.execute_batch("CREATE TABLE newer (x INTEGER); PRAGMA user_version = 99;")
            .unwrap();
        drop(db);
        let e = ViewStore::<Counter>::open(dir.path())
            .err()
            .expect("refused");
        assert!(
            matches!(e, ServiceError::NewerLayout { found: 99, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("newer build"), "{e}");
        let db = Connection::open(&path).unwrap();
        let kept: bool = db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'newer')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(kept);
    }

    /// A log that never answers a commit from outside a group (a coordinator gone).
    struct Unshown(Arc<dyn EventLog>);

    #[async_trait]
    impl Wrapper for Unshown {
        fn inner(&self) -> &Arc<dyn EventLog> {
            &self.0
        }
        async fn commit_outside(&self, _: &str, _: &[Position]) -> Result<(), LogError> {
            std::future::pending().await
        }
    }

    /// Showing the view's lag to its group is background work: a log that never takes that
    /// commit does not stop the view reading, and does not keep it from stopping.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lag_commit_that_never_answers_holds_up_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(dir.path()).await;
        let stuck: Arc<dyn EventLog> = Arc::new(Unshown(Arc::clone(&log)));
        let stop = CancellationToken::new();
        let view = tokio::spawn(
            runner::<Counter>(&stuck, dir.path())
                .with_config(ProjectionConfig {
                    batch_max: 10,
                    poll_timeout: Duration::from_millis(20),
                    ..ProjectionConfig::default()
                })
                .run(stop.clone()),
        );
        for chunk in 0..4 {
            publish(&log, chunk * 10..chunk * 10 + 10).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            while counted_at(dir.path()) < (chunk + 1) * 10 {
                assert!(Instant::now() < deadline, "the view stopped reading");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), view)
            .await
            .expect("the view stops although its last lag commit never lands")
            .unwrap()
            .unwrap();
    }
}
