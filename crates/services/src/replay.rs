//! Rebuild a team's state from its own events, and compare it with the live store.
//!
//! A team's topic (`returns.<team>.events`) is its audit trail; [`replay`] shows it is also the
//! whole truth. It reads every event of the topic, folds each into the state of the key it names
//! ([`Team::event_key`], [`Team::evolve`]), writes the result into a fresh store, and compares a
//! hash of every state row with the live store's.
//!
//! The topic is read partition by partition, so events of different returns come in another
//! order than the team decided them. That is sound because every team's `evolve` gives the same
//! state for the same events in any order (a domain test checks it). An event the relay
//! published twice (it publishes at least once) is folded once: events are deduplicated by id.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use returns_domain::{Accounting, Inventory, Manufacturing, Quality, Sales, Team};
use returns_eventlog::{team_topic, wire, EventLog};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{store_path, TeamStore};
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
    /// State rows (keys) rebuilt.
    pub keys: u64,
    /// SHA-256 over the state rows of the live store and of the rebuilt one.
    pub live_hash: String,
    pub replay_hash: String,
    /// Keys whose state differs (only in one store, or a different value); the first few.
    pub differences: Vec<Difference>,
    pub differing_keys: u64,
    /// Events the live store decided but has not yet appended to the topic (its outbox). A
    /// replay cannot see them; start the team to publish them.
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
    pub fn matches(&self) -> bool {
        self.live_hash == self.replay_hash
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
    let topic = team_topic(T::NAME);
    let mut fold = Fold::<T>::default();
    log.for_each_record(&topic, &mut |record| fold.add(&record))
        .await?;
    let read = started.elapsed();

    let out = out_dir.to_path_buf();
    let data = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || finish(fold, &data, &out, topic, started, read))
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

/// The fold of a topic's events into state, by key.
struct Fold<T: Team> {
    states: BTreeMap<String, T::State>,
    seen: HashSet<String>,
    records: u64,
    duplicates: u64,
    unreadable: u64,
}

impl<T: Team> Default for Fold<T> {
    fn default() -> Self {
        Fold {
            states: BTreeMap::new(),
            seen: HashSet::new(),
            records: 0,
            duplicates: 0,
            unreadable: 0,
        }
    }
}

impl<T: Team> Fold<T> {
    fn add(&mut self, record: &returns_eventlog::Record) {
        self.records += 1;
        let (envelope, event) = match wire::decode_team_event::<T>(record) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(team = T::NAME, offset = record.offset, partition = record.partition,
                    %error, "replay skips a record that is not a readable event");
                self.unreadable += 1;
                return;
            }
        };
        if !self.seen.insert(envelope.id) {
            self.duplicates += 1;
            return;
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
    data_dir: &Path,
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

    let live = TeamStore::<T>::open(data_dir)?;
    let live_rows = live.state_rows()?;
    let live_outbox = live.outbox_len()?;
    let (differing_keys, differences) = compare(&live_rows, &rebuilt);
    let events = fold.seen.len() as u64;
    Ok(ReplayReport {
        team: T::NAME.to_string(),
        topic,
        records: fold.records,
        events,
        duplicates: fold.duplicates,
        unreadable: fold.unreadable,
        keys: rebuilt.len() as u64,
        live_hash: state_hash(live_rows.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        replay_hash: state_hash(rebuilt.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        differences,
        differing_keys,
        live_outbox,
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
    use super::*;

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
