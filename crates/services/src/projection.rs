//! Read models fed by events: a consumer group of their own, a SQLite file of their own.
//!
//! A [`Projection`] names its group, its [`Source`] (the topics and how to read a record) and
//! what one event writes. [`ProjectionRunner`] does the rest, the same way a team does (see
//! [`crate::TeamService`]): poll a batch; apply it to the view's store ([`ViewStore`],
//! `<data>/<NAME>.db`) in one transaction that also records the id of every event applied; only
//! then commit the group's positions in the log.
//!
//! | table | holds |
//! |---|---|
//! | `applied` | the id of every event the view has seen (applied or skipped), for dedup |
//! | `skipped` | records the view could not read, with the reason |
//! | `positions` | per partition, the next offset this file has applied |
//! | (the view's own) | what [`Projection::write`] writes |
//!
//! Invariants:
//! - an event counts once, however often it is delivered: its id goes into `applied` in the
//!   transaction that writes its facts, and an id already there is a duplicate, skipped;
//! - a record the view cannot read is skipped with its reason, counted in `skipped` and logged;
//!   the records around it are applied (a view never stalls on one bad record);
//! - the file knows how far it has applied (`positions`, in the same transaction). Where the
//!   group's committed position is ahead of the file (the file was deleted, or another copy of
//!   the view moved the group), the gap is read outside the group and applied before anything
//!   else, so a view never silently misses what its group already passed.
//!
//! The runner serves both uses: [`ProjectionRunner::run`] follows the topics until shutdown;
//! [`ProjectionRunner::catch_up`] applies everything up to the topics' ends as measured when it
//! starts, commits, and returns, so a command can bring its view up to date and then query it.
//!
//! The second half of this module is what User Support's views ([`crate::status`] and
//! [`crate::analytics`]) read, [`ReturnsEvents`]: `returnOrders` and the teams' topics (the four
//! reacting teams' and Quality's), decoded through `wire` into [`ReturnsEvent`].

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use returns_domain::{
    Accounting, AccountingEvent, Inventory, InventoryEvent, Manufacturing, ManufacturingEvent,
    Outcome, Quality, QualityEvent, RefundRequest, ReturnId, Sales, SalesEvent, Team,
};
use returns_eventlog::envelope::Envelope;
use returns_eventlog::wire::{self, WireError};
use returns_eventlog::{
    positions_after, team_topic, EventLog, LogError, Position, Record, Subscription,
    TopicPartition, RETURN_ORDERS,
};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use tokio_util::sync::CancellationToken;

use crate::store::store_error;
use crate::ServiceError;

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
}

/// Topics and how to read their records; several views can read the same source.
pub trait Source {
    /// A record the view could read.
    type Event: Send + 'static;

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
    pub event: Result<E, Skip>,
}

impl<E> Incoming<E> {
    pub fn decode<S: Source<Event = E>>(record: &Record) -> Self {
        Incoming {
            event_id: Envelope::from_record(record, "").id,
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
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
    /// Records the view could not read.
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

impl<P: Projection> ViewStore<P> {
    /// Open (or create) the view's store in the data directory.
    pub fn open(dir: &Path) -> Result<Self, ServiceError> {
        let path = dir.join(format!("{}.db", P::NAME));
        let err = store_error(P::NAME, &path);
        std::fs::create_dir_all(dir).map_err(|source| ServiceError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        for (pragma, value) in [("journal_mode", "WAL"), ("synchronous", "NORMAL")] {
            conn.pragma_update(None, pragma, value).map_err(err)?;
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS applied (
                 event_id TEXT PRIMARY KEY
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS skipped (
                 event_id  TEXT PRIMARY KEY,
                 topic     TEXT NOT NULL,
                 partition INTEGER NOT NULL,
                 offset    INTEGER NOT NULL,
                 kind      TEXT NOT NULL,
                 reason    TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS positions (
                 topic       TEXT NOT NULL,
                 partition   INTEGER NOT NULL,
                 next_offset INTEGER NOT NULL,
                 PRIMARY KEY (topic, partition)
             ) WITHOUT ROWID;",
        )
        .map_err(err)?;
        P::create_tables(&conn).map_err(err)?;
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

    /// Apply a batch in one transaction: each event id not seen before is applied (or skipped
    /// with its reason) and recorded; the file's positions move past the batch.
    pub fn apply(&mut self, batch: &[Incoming<EventOf<P>>]) -> Result<BatchCounts, ServiceError> {
        let err = store_error(P::NAME, &self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let counts = write_batch::<P>(&tx, batch).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(counts)
    }

    /// How far this file has applied each partition.
    pub fn positions(&self) -> Result<Positions, ServiceError> {
        let mut stmt = self
            .conn
            .prepare("SELECT topic, partition, next_offset FROM positions")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    TopicPartition {
                        topic: r.get(0)?,
                        partition: r.get(1)?,
                    },
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Skipped records per kind of reason, over the view's whole life.
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

    /// Events the view has seen (applied or skipped).
    pub fn seen(&self) -> Result<u64, ServiceError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM applied", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }
}

fn write_batch<P: Projection>(
    tx: &Transaction<'_>,
    batch: &[Incoming<EventOf<P>>],
) -> rusqlite::Result<BatchCounts> {
    let mut first_time =
        tx.prepare_cached("INSERT OR IGNORE INTO applied (event_id) VALUES (?1)")?;
    let mut skip = tx.prepare_cached(
        "INSERT INTO skipped (event_id, topic, partition, offset, kind, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut counts = BatchCounts::default();
    for incoming in batch {
        if first_time.execute([&incoming.event_id])? == 0 {
            counts.duplicates += 1;
            continue;
        }
        match &incoming.event {
            Ok(event) => {
                P::write(tx, event)?;
                counts.applied += 1;
            }
            Err(skipped) => {
                tracing::warn!(
                    view = P::NAME,
                    topic = %incoming.topic,
                    partition = incoming.partition,
                    offset = incoming.offset,
                    event_id = %incoming.event_id,
                    kind = skipped.kind,
                    reason = %skipped.reason,
                    "record skipped: the view cannot read it"
                );
                skip.execute(params![
                    incoming.event_id,
                    incoming.topic,
                    incoming.partition,
                    incoming.offset as i64,
                    skipped.kind,
                    skipped.reason
                ])?;
                counts.skipped += 1;
            }
        }
    }
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
    /// How long one poll waits for records.
    pub poll_timeout: Duration,
    /// A catch-up that moves no record forward for this long fails (another member of the
    /// group may be holding partitions, or the log stopped answering).
    pub stall_timeout: Duration,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            batch_max: 5_000,
            poll_timeout: Duration::from_millis(200),
            stall_timeout: Duration::from_secs(60),
        }
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
    /// Records read, through the group or to fill a gap.
    pub records: u64,
    /// Of those, read outside the group because the group had already passed them.
    pub backfilled: u64,
    pub counts: BatchCounts,
    pub elapsed: Duration,
}

type ProgressFn = Arc<dyn Fn(CatchUpProgress) + Send + Sync>;

/// Feeds one view from the log.
pub struct ProjectionRunner<P: Projection> {
    log: Arc<dyn EventLog>,
    data_dir: PathBuf,
    config: ProjectionConfig,
    progress: Option<ProgressFn>,
    view: PhantomData<fn() -> P>,
}

/// Where the file and the group stand, and where a catch-up has to get.
struct Standing {
    /// Next offset the view's file has applied, per partition.
    held: Positions,
    /// The group's committed next offset, per partition.
    group: Positions,
    /// The topics' ends when the catch-up started.
    target: Positions,
}

impl Standing {
    fn at(map: &Positions, tp: &TopicPartition) -> u64 {
        map.get(tp).copied().unwrap_or(0)
    }

    /// Per partition, how far both the file and the group are (never past the target).
    fn reached(&self, tp: &TopicPartition, end: u64) -> u64 {
        Self::at(&self.held, tp)
            .min(Self::at(&self.group, tp))
            .min(end)
    }

    fn done(&self) -> u64 {
        self.target
            .iter()
            .map(|(tp, end)| self.reached(tp, *end))
            .sum()
    }

    fn is_done(&self) -> bool {
        self.target
            .iter()
            .all(|(tp, end)| self.reached(tp, *end) == *end)
    }

    fn raise(map: &mut Positions, positions: &[Position]) {
        for p in positions {
            let at = map
                .entry(TopicPartition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                })
                .or_default();
            *at = (*at).max(p.offset);
        }
    }
}

impl<P: Projection> ProjectionRunner<P> {
    pub fn new(log: Arc<dyn EventLog>, data_dir: PathBuf) -> Self {
        ProjectionRunner {
            log,
            data_dir,
            config: ProjectionConfig::default(),
            progress: None,
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

    /// Follow the topics until `shutdown`; then finish the batch in hand, commit it, and return.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let (mut store, mut sub, mut standing) = self.start().await?;
        let mut gap = CatchUp::default();
        store = self.fill_gaps(store, &mut standing, &mut gap).await?;
        tracing::info!(view = P::NAME, group = P::GROUP, "following its topics");
        loop {
            let records = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                polled = sub.poll(self.config.batch_max, self.config.poll_timeout) => polled?,
            };
            if records.is_empty() {
                continue;
            }
            let positions = positions_after(&records);
            (store, _) = self.apply(store, records).await?;
            self.commit(sub.as_mut(), &positions).await?;
        }
        tracing::info!(view = P::NAME, "stopped cleanly");
        Ok(())
    }

    /// Apply everything up to the topics' ends as they are now, commit, and return. Records
    /// appended meanwhile are left for the next call. Should another member take the group
    /// (a second command catching the same view up), this one follows the group from outside,
    /// reading what the other commits, until its file reaches the ends too.
    pub async fn catch_up(self) -> Result<CatchUp, ServiceError> {
        let started = Instant::now();
        let (mut store, sub, mut standing) = self.start().await?;
        let mut sub = Some(sub);
        let mut report = CatchUp::default();
        let first = standing.done();
        let total = standing.target.values().sum::<u64>() - first;
        let mut last_moved = (first, Instant::now());
        store = self.fill_gaps(store, &mut standing, &mut report).await?;
        loop {
            let done = standing.done();
            if let Some(progress) = &self.progress {
                progress(CatchUpProgress {
                    done: done - first,
                    total,
                });
            }
            if standing.is_done() {
                break;
            }
            if done > last_moved.0 {
                last_moved = (done, Instant::now());
            } else if last_moved.1.elapsed() > self.config.stall_timeout {
                tracing::warn!(
                    view = P::NAME,
                    group = P::GROUP,
                    "catch-up moved nothing for {:?}; is another member of the group holding partitions?",
                    self.config.stall_timeout
                );
                return Err(ServiceError::Log(LogError::Timeout {
                    op: "view catch-up",
                    seconds: self.config.stall_timeout.as_secs(),
                }));
            }
            let records = match sub.as_mut() {
                Some(sub) => {
                    sub.poll(self.config.batch_max, self.config.poll_timeout)
                        .await?
                }
                None => {
                    tokio::time::sleep(self.config.poll_timeout).await;
                    Vec::new()
                }
            };
            if records.is_empty() {
                // Nothing for us: another member may have moved the group past the file.
                let committed = self.committed().await?;
                for (tp, offset) in committed {
                    let at = standing.group.entry(tp).or_default();
                    *at = (*at).max(offset);
                }
                store = self.fill_gaps(store, &mut standing, &mut report).await?;
                continue;
            }
            report.records += records.len() as u64;
            let positions = positions_after(&records);
            let (next, counts) = self.apply(store, records).await?;
            store = next;
            report.counts += counts;
            Standing::raise(&mut standing.held, &positions);
            let Some(member) = sub.as_mut() else {
                continue;
            };
            match self.commit(member.as_mut(), &positions).await {
                Ok(()) => Standing::raise(&mut standing.group, &positions),
                // A newer member took the group over (another command catching the same view
                // up): it moves the group now, and this one follows from outside the group,
                // reading what it passes. What was applied here is redelivered to the group
                // and skipped as duplicates.
                Err(LogError::Fenced { .. }) => {
                    tracing::info!(
                        view = P::NAME,
                        group = P::GROUP,
                        "a newer member took the group over; following it from outside"
                    );
                    sub = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        drop(store);
        report.elapsed = started.elapsed();
        tracing::info!(view = P::NAME, ?report, "caught up");
        Ok(report)
    }

    /// Open the store, join the group, and see where the file, the group and the topics stand.
    async fn start(&self) -> Result<(ViewStore<P>, Box<dyn Subscription>, Standing), ServiceError> {
        let dir = self.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || ViewStore::<P>::open(&dir))
            .await
            .map_err(|_| ServiceError::Task(P::NAME))??;
        let topics = P::Source::topics();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        // Subscribing creates missing topics, so the offsets below can be asked for.
        let sub = self.log.subscribe(P::GROUP, &names).await?;
        let mut target = Positions::new();
        for topic in &topics {
            for (partition, end) in self.log.end_offsets(topic).await?.into_iter().enumerate() {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: partition as u32,
                };
                target.insert(tp, end);
            }
        }
        let standing = Standing {
            held: store.positions()?,
            group: self.committed().await?,
            target,
        };
        Ok((store, sub, standing))
    }

    async fn committed(&self) -> Result<Positions, ServiceError> {
        let mut group = Positions::new();
        for topic in P::Source::topics() {
            let offsets = self.log.committed(P::GROUP, &topic).await?;
            for (partition, offset) in offsets.into_iter().enumerate() {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: partition as u32,
                };
                group.insert(tp, offset);
            }
        }
        Ok(group)
    }

    /// Apply, outside the group, whatever the group has committed past the file.
    async fn fill_gaps(
        &self,
        mut store: ViewStore<P>,
        standing: &mut Standing,
        report: &mut CatchUp,
    ) -> Result<ViewStore<P>, ServiceError> {
        let gaps: Vec<(TopicPartition, u64)> = standing
            .group
            .iter()
            .filter(|(tp, committed)| Standing::at(&standing.held, tp) < **committed)
            .map(|(tp, committed)| (tp.clone(), *committed))
            .collect();
        for (tp, committed) in gaps {
            let mut from = Standing::at(&standing.held, &tp);
            tracing::info!(
                view = P::NAME,
                topic = %tp.topic,
                partition = tp.partition,
                from,
                to = committed,
                "the group is ahead of the view's file: reading the gap outside the group"
            );
            while from < committed {
                let max = (committed - from).min(self.config.batch_max as u64) as usize;
                let page = self.log.read(&tp.topic, tp.partition, from, max).await?;
                let Some(last) = page.last() else { break };
                from = last.offset + 1;
                report.records += page.len() as u64;
                report.backfilled += page.len() as u64;
                let positions = positions_after(&page);
                let (next, counts) = self.apply(store, page).await?;
                store = next;
                report.counts += counts;
                Standing::raise(&mut standing.held, &positions);
            }
        }
        Ok(store)
    }

    /// Commit the group's positions, trying again a few times while the log is busy.
    async fn commit(
        &self,
        sub: &mut dyn Subscription,
        positions: &[Position],
    ) -> Result<(), LogError> {
        let mut backoff = Duration::from_millis(20);
        for attempt in 1.. {
            match sub.commit(positions).await {
                Err(e) if e.is_transient() && attempt < 10 => {
                    tracing::warn!(view = P::NAME, error = %e, attempt, "commit failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
        unreachable!("the loop returns by its tenth attempt")
    }

    /// Decode and apply on a blocking thread, trying again while the file is busy.
    async fn apply(
        &self,
        mut store: ViewStore<P>,
        records: Vec<Record>,
    ) -> Result<(ViewStore<P>, BatchCounts), ServiceError> {
        let (store, counts) = tokio::task::spawn_blocking(move || {
            let batch: Vec<Incoming<EventOf<P>>> =
                records.iter().map(Incoming::decode::<P::Source>).collect();
            let mut backoff = Duration::from_millis(20);
            loop {
                match store.apply(&batch) {
                    Err(e) if e.is_transient() => {
                        tracing::warn!(view = P::NAME, error = %e, "view busy; retrying the batch");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                    other => return (store, other),
                }
            }
        })
        .await
        .map_err(|_| ServiceError::Task(P::NAME))?;
        Ok((store, counts?))
    }
}

// ---------------------------------------------------------------------------------------------
// What User Support's views read.

/// The four teams that act on a return: a return is complete once each has decided.
pub const REACTING_TEAMS: [&str; 4] = [
    Sales::NAME,
    Inventory::NAME,
    Manufacturing::NAME,
    Accounting::NAME,
];

/// Teams that only observe returns and may join late (Quality): their events are shown and
/// measured when there are some, but nobody waits for them. A team added later is not in the
/// views until it is named here and in [`TeamDecision`].
pub const OBSERVING_TEAMS: [&str; 1] = [Quality::NAME];

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
    use returns_domain::{Generator, Inventory, Sales};
    use returns_eventlog::{OutRecord, RETURN_ORDERS};

    use super::testkit::{bad_request, decided, first_decision, incoming, requested};
    use super::*;
    use crate::status::StatusView;
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
        for topic in returns_topics() {
            assert_eq!(log.lag(Counter::GROUP, &topic).await.unwrap(), 0, "{topic}");
        }
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

    /// The group remembers its place in the log, the file its own: a view whose file was
    /// deleted reads again what the group had already passed, instead of missing it.
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
        assert_eq!(rebuilt.backfilled, 121);
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
        for topic in returns_topics() {
            assert_eq!(log.lag(Counter::GROUP, &topic).await.unwrap(), 0, "{topic}");
        }
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
        let store = crate::status::StatusStore::open(dir.path()).unwrap();
        assert_eq!(store.returns_known().unwrap(), 30);
        assert_eq!(store.skipped_by_kind().unwrap()["malformed"], 1);
    }
}
