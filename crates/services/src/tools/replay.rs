//! Rebuild a team's state from its own events, and compare it with the live store.
//!
//! A team's topic (`returns.<team>.events`) is its audit trail; [`replay`] shows it is also the
//! whole truth. It reads every event of the topic, folds each into the state of the key it names
//! ([`Team::event_key`], [`Team::evolve`]), writes the result into a fresh store, and compares a
//! hash of every state row with the live store's.
//!
//! The topic's partitions are read as they come, so events of different returns arrive in another
//! order than the team decided them. That is sound because every team's `evolve` gives the same
//! state for the same events in any order (a domain test checks it). An event the relay
//! published twice (it publishes at least once) is folded once: events are deduplicated by id.
//!
//! The team may be running while it is replayed. So the replay first takes a snapshot of the
//! live store in one read transaction: its state rows, the ids of the events it has decided, and
//! its outbox (decided, not yet on the log). It then folds exactly those events: the ones on the
//! topic, plus the ones still in the outbox. Events the team published after the snapshot are
//! counted and left out; an event the store decided that is on neither the topic nor the outbox
//! is counted as missing (it would be a lost event, and the states would differ).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use returns_domain::{Accounting, Inventory, Manufacturing, Quality, Sales, Team};
use returns_eventlog::record::{corrupt_column, headers_from_json};
use returns_eventlog::{team_topic, wire, EventLog, Record};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::team::store::{store_path, TeamStore};
use crate::{ServiceError, TeamName};

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub team: String,
    pub topic: String,
    /// Records read from the topic.
    pub records: u64,
    /// Distinct events folded into the state.
    pub events: u64,
    /// Records whose event id was already folded (published twice by a relay).
    pub duplicates: u64,
    /// Records that are not a readable event of this team, each skipped.
    pub unreadable: u64,
    /// Events folded from the live store's outbox (decided, not yet on the topic).
    pub from_outbox: u64,
    /// Events on the topic that the team decided after the snapshot of its store: left out.
    pub after_snapshot: u64,
    /// Events the live store decided that are neither on the topic nor in its outbox.
    pub missing: u64,
    /// State rows (keys) rebuilt.
    pub keys: u64,
    /// SHA-256 over the state rows of the live store and of the rebuilt one.
    pub live_hash: String,
    pub replay_hash: String,
    /// Keys whose state differs (only in one store, or a different value); the first few.
    pub differences: Vec<Difference>,
    pub differing_keys: u64,
    /// Records in the live store's outbox when the snapshot was taken.
    pub live_outbox: u64,
    /// Where the rebuilt store is.
    pub store: PathBuf,
    /// Reading, decoding and folding the topic.
    pub read_ms: u64,
    /// Read, fold and write the fresh store.
    pub total_ms: u64,
    /// Events folded per second of `total_ms`.
    pub events_per_sec: f64,
}

impl ReplayReport {
    /// The rebuilt state equals the live one, and every event the store decided was found.
    pub fn matches(&self) -> bool {
        self.live_hash == self.replay_hash && self.missing == 0
    }
}

/// One key whose state differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub key: String,
    /// The state's JSON in each store; `None` where the key is missing.
    pub live: Option<String>,
    pub replay: Option<String>,
}

/// How many differences a report lists (all are counted).
const LISTED_DIFFERENCES: usize = 10;

/// SHA-256 of state rows in key order: `key`, a NUL, the value, a newline, for every row.
pub fn state_hash<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in rows {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([b'\n']);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rebuild team `T`'s state from its topic into a fresh store in `out_dir` (emptied first), and
/// compare it with the live store in `data_dir`.
pub async fn replay<T: Team>(
    log: &dyn EventLog,
    data_dir: &Path,
    out_dir: &Path,
) -> Result<ReplayReport, ServiceError> {
    let live_path = store_path(data_dir, T::NAME);
    if !live_path.exists() {
        return Err(ServiceError::NoStore {
            team: T::NAME,
            path: live_path,
        });
    }
    let started = Instant::now();
    let snapshot = tokio::task::spawn_blocking(move || Snapshot::take(T::NAME, &live_path))
        .await
        .map_err(|_| ServiceError::Task(T::NAME))??;
    let topic = team_topic(T::NAME);
    let mut fold = Fold::<T>::new(snapshot);
    log.for_each_record(&topic, &mut |record| fold.add(&record, Origin::Topic))
        .await?;
    for record in std::mem::take(&mut fold.snapshot.outbox) {
        fold.add(&record, Origin::Outbox);
    }
    let read = started.elapsed();

    let out = out_dir.to_path_buf();
    tokio::task::spawn_blocking(move || finish(fold, &out, topic, started, read))
        .await
        .map_err(|_| ServiceError::Task(T::NAME))?
}

/// [`replay`] for a team named at run time.
pub async fn replay_team(
    team: TeamName,
    log: &dyn EventLog,
    data_dir: &Path,
    out_dir: &Path,
) -> Result<ReplayReport, ServiceError> {
    match team {
        TeamName::Sales => replay::<Sales>(log, data_dir, out_dir).await,
        TeamName::Inventory => replay::<Inventory>(log, data_dir, out_dir).await,
        TeamName::Manufacturing => replay::<Manufacturing>(log, data_dir, out_dir).await,
        TeamName::Accounting => replay::<Accounting>(log, data_dir, out_dir).await,
        TeamName::Quality => replay::<Quality>(log, data_dir, out_dir).await,
    }
}

/// The live store as one read transaction saw it.
struct Snapshot {
    state: Vec<(String, String)>,
    /// Ids of the events the store decided through the log (not the traditional model's direct
    /// calls, which publish nothing).
    decided: HashSet<String>,
    /// The team-topic records still in the outbox.
    outbox: Vec<Record>,
    outbox_len: u64,
}

impl Snapshot {
    fn take(team: &'static str, path: &Path) -> Result<Snapshot, ServiceError> {
        let err = |source| ServiceError::Store {
            team,
            path: path.to_path_buf(),
            source,
        };
        let mut conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        let tx = conn.transaction().map_err(err)?;
        let state = tx
            .prepare("SELECT key, value FROM state ORDER BY key")
            .and_then(|mut q| {
                q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(err)?;
        let decided = tx
            .prepare("SELECT event_id FROM effects WHERE caused_by NOT LIKE 'direct:%'")
            .and_then(|mut q| {
                q.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<HashSet<_>, _>>()
            })
            .map_err(err)?;
        let topic = team_topic(team);
        let mut outbox_len = 0;
        let mut outbox = Vec::new();
        {
            let mut q = tx
                .prepare("SELECT topic, key, headers, payload FROM outbox ORDER BY seq")
                .map_err(err)?;
            let mut rows = q.query([]).map_err(err)?;
            while let Some(row) = rows.next().map_err(err)? {
                outbox_len += 1;
                let row_topic: String = row.get(0).map_err(err)?;
                if row_topic != topic {
                    continue; // a dead letter
                }
                let headers: String = row.get(2).map_err(err)?;
                outbox.push(Record {
                    topic: row_topic,
                    partition: 0,
                    offset: 0,
                    key: Some(row.get(1).map_err(err)?),
                    timestamp_ms: 0,
                    headers: headers_from_json(&headers).map_err(|e| err(corrupt_column(2, e)))?,
                    payload: row.get(3).map_err(err)?,
                });
            }
        }
        Ok(Snapshot {
            state,
            decided,
            outbox,
            outbox_len,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Topic,
    Outbox,
}

/// The fold of a team's events into state, by key.
struct Fold<T: Team> {
    snapshot: Snapshot,
    states: BTreeMap<String, T::State>,
    seen: HashSet<String>,
    records: u64,
    duplicates: u64,
    unreadable: u64,
    from_outbox: u64,
    after_snapshot: u64,
}

impl<T: Team> Fold<T> {
    fn new(snapshot: Snapshot) -> Self {
        Fold {
            snapshot,
            states: BTreeMap::new(),
            seen: HashSet::new(),
            records: 0,
            duplicates: 0,
            unreadable: 0,
            from_outbox: 0,
            after_snapshot: 0,
        }
    }

    fn add(&mut self, record: &Record, origin: Origin) {
        if origin == Origin::Topic {
            self.records += 1;
        }
        let (envelope, event) = match wire::decode_team_event::<T>(record) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(team = T::NAME, offset = record.offset, partition = record.partition,
                    %error, "replay skips a record that is not a readable event");
                self.unreadable += 1;
                return;
            }
        };
        if !self.snapshot.decided.contains(&envelope.id) {
            self.after_snapshot += 1;
            return;
        }
        if !self.seen.insert(envelope.id) {
            if origin == Origin::Topic {
                self.duplicates += 1;
            }
            return;
        }
        if origin == Origin::Outbox {
            self.from_outbox += 1;
        }
        let key = T::event_key(&event);
        let state = self
            .states
            .entry(key.to_string())
            .or_insert_with(|| T::initial(&key));
        T::evolve(state, &event);
    }
}

fn finish<T: Team>(
    fold: Fold<T>,
    out_dir: &Path,
    topic: String,
    started: Instant,
    read: Duration,
) -> Result<ReplayReport, ServiceError> {
    let rebuilt: Vec<(String, String)> = fold
        .states
        .iter()
        .map(|(k, s)| {
            let json = serde_json::to_string(s).expect("team state serializes");
            (k.clone(), json)
        })
        .collect();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = store_path(out_dir, T::NAME).into_os_string();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ServiceError::DataDir {
                    path: file.into(),
                    source: e,
                })
            }
            _ => {}
        }
    }
    let mut fresh = TeamStore::<T>::open(out_dir)?;
    fresh.write_state(&rebuilt)?;
    let total = started.elapsed();

    let live_rows = &fold.snapshot.state;
    let (differing_keys, differences) = compare(live_rows, &rebuilt);
    let events = fold.seen.len() as u64;
    Ok(ReplayReport {
        team: T::NAME.to_string(),
        topic,
        records: fold.records,
        events,
        duplicates: fold.duplicates,
        unreadable: fold.unreadable,
        from_outbox: fold.from_outbox,
        after_snapshot: fold.after_snapshot,
        missing: fold.snapshot.decided.len() as u64 - events,
        keys: rebuilt.len() as u64,
        live_hash: state_hash(live_rows.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        replay_hash: state_hash(rebuilt.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        differences,
        differing_keys,
        live_outbox: fold.snapshot.outbox_len,
        store: fresh.path().to_path_buf(),
        read_ms: read.as_millis() as u64,
        total_ms: total.as_millis() as u64,
        events_per_sec: events as f64 / total.as_secs_f64().max(1e-9),
    })
}

/// Walk two key-ordered row lists together: how many keys differ, and the first few.
fn compare(live: &[(String, String)], replay: &[(String, String)]) -> (u64, Vec<Difference>) {
    let mut count = 0;
    let mut listed = Vec::new();
    let mut note = |key: &str, live: Option<&String>, replay: Option<&String>| {
        count += 1;
        if listed.len() < LISTED_DIFFERENCES {
            listed.push(Difference {
                key: key.to_string(),
                live: live.cloned(),
                replay: replay.cloned(),
            });
        }
    };
    let (mut l, mut r) = (live.iter().peekable(), replay.iter().peekable());
    loop {
        match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some((lk, lv)), Some((rk, rv))) if lk == rk => {
                if lv != rv {
                    note(lk, Some(lv), Some(rv));
                }
                l.next();
                r.next();
            }
            (Some((lk, lv)), Some((rk, _))) if lk < rk => {
                note(lk, Some(lv), None);
                l.next();
            }
            (Some((lk, lv)), None) => {
                note(lk, Some(lv), None);
                l.next();
            }
            (_, Some((rk, rv))) => {
                note(rk, None, Some(rv));
                r.next();
            }
        }
    }
    (count, listed)
}

#[cfg(test)]
mod tests {
    use returns_domain::{Generator, Sales};
    use returns_eventlog::envelope::Envelope;

    use super::*;

    /// Sales' decisions on `n` generated requests, as records of its topic, and the state.
    fn decided(n: u64) -> (Vec<Record>, BTreeMap<String, <Sales as Team>::State>) {
        let mut states = BTreeMap::new();
        let mut records = Vec::new();
        for (i, req) in Generator::new(3).requests(0..n).enumerate() {
            let key = Sales::key(&req);
            let state = states
                .entry(key.to_string())
                .or_insert_with(|| Sales::initial(&key));
            let event = Sales::decide(state, &req);
            Sales::evolve(state, &event);
            let envelope = Envelope::new(wire::team_event_type::<Sales>(&event), "/returns/sales");
            records.push(Record {
                topic: team_topic("sales"),
                partition: 0,
                offset: i as u64,
                key: Some(req.return_id.to_string()),
                timestamp_ms: 0,
                headers: envelope.to_headers(),
                payload: wire::encode_team_event::<Sales>(&event),
            });
        }
        (records, states)
    }

    #[test]
    fn the_fold_takes_the_snapshot_s_events_once_from_the_topic_or_the_outbox() {
        let (records, states) = decided(50);
        let id = |r: &Record| {
            r.header(returns_eventlog::envelope::ID)
                .unwrap()
                .to_string()
        };
        // The store decided the first 45; the last 5 of those are still in its outbox, and the
        // relay published 2 of them meanwhile. Events 45..50 came after the snapshot.
        let snapshot = Snapshot {
            state: vec![],
            decided: records[..45].iter().map(id).collect(),
            outbox: records[40..45].to_vec(),
            outbox_len: 5,
        };
        let mut fold = Fold::<Sales>::new(snapshot);
        for r in &records[..42] {
            fold.add(r, Origin::Topic);
        }
        fold.add(&records[3], Origin::Topic); // published twice
        let mut garbage = records[4].clone();
        garbage.payload = b"not json".to_vec();
        fold.add(&garbage, Origin::Topic);
        for r in &records[45..] {
            fold.add(r, Origin::Topic);
        }
        for r in std::mem::take(&mut fold.snapshot.outbox) {
            fold.add(&r, Origin::Outbox);
        }
        assert_eq!(fold.seen.len(), 45);
        assert_eq!(fold.duplicates, 1);
        assert_eq!(fold.unreadable, 1);
        assert_eq!(fold.from_outbox, 3);
        assert_eq!(fold.after_snapshot, 5);

        // What was folded is the state after the first 45 decisions.
        let (_, first_45) = decided(45);
        assert_eq!(fold.states, first_45);
        assert_ne!(fold.states, states);
    }

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn compare_finds_changed_missing_and_extra_keys() {
        let live = rows(&[("a", "1"), ("b", "2"), ("d", "4")]);
        let replay = rows(&[("a", "1"), ("b", "3"), ("c", "3")]);
        let (count, listed) = compare(&live, &replay);
        assert_eq!(count, 3);
        let keys: Vec<_> = listed.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["b", "c", "d"]);
        assert_eq!(listed[1].live, None);
        assert_eq!(listed[2].replay, None);
        assert_eq!(compare(&live, &live), (0, vec![]));
    }

    #[test]
    fn the_hash_depends_on_every_key_and_value() {
        let base = state_hash([("a", "1"), ("b", "2")]);
        assert_eq!(base, state_hash([("a", "1"), ("b", "2")]));
        assert_ne!(base, state_hash([("a", "1"), ("b", "3")]));
        assert_ne!(base, state_hash([("a", "1")]));
        // The separators keep ("ab", "") apart from ("a", "b").
        assert_ne!(state_hash([("ab", "")]), state_hash([("a", "b")]));
        assert_eq!(base.len(), 64);
    }
}
