//! The embedded event log: one SQLite file (WAL mode), written by one writer thread that commits
//! whatever requests are waiting in one transaction (group commit), read by each subscription
//! through its own connection.
//!
//! Several processes may share the file: offsets are computed inside each write transaction and
//! a consumer group's generation lives in the file, so a newer member fences off an older one.
//! Durability: `synchronous=FULL` in WAL mode: an append or a commit that returned is on disk,
//! through a crash of the process or of the machine.

mod schema;
mod subscription;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{oneshot, watch};

use crate::record::{corrupt_column, headers_from_json};
use crate::{EventLog, LogError, OutRecord, Position, Record, Subscription};
use subscription::SqliteSubscription;
use writer::Command;

/// The embedded SQLite event log.
pub struct SqliteLog {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// Made with the file, kept in it ([`EventLog::identity`]).
    identity: String,
    partitions: u32,
    writer: std::sync::mpsc::Sender<Command>,
    /// Bumped by the writer after every commit that appended records.
    appended: watch::Receiver<u64>,
    /// A connection for reads outside any subscription.
    reader: Mutex<Connection>,
}

impl SqliteLog {
    /// Open (or create) the log file; new topics get `partitions` partitions.
    pub async fn open(path: &Path, partitions: u32) -> Result<Self, LogError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, partitions))
            .await
            .map_err(|_| LogError::Closed)?
    }

    fn open_blocking(path: PathBuf, partitions: u32) -> Result<Self, LogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LogError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let writer_conn = schema::connect(&path)?;
        let identity = schema::migrate(&writer_conn).map_err(|source| LogError::Open {
            path: path.clone(),
            source,
        })?;
        let reader = schema::connect(&path)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (appended_tx, appended_rx) = watch::channel(0u64);
        std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || writer::run(writer_conn, rx, appended_tx))
            .map_err(|source| LogError::CreateDir {
                path: path.clone(),
                source,
            })?;
        Ok(SqliteLog {
            shared: Arc::new(Shared {
                path,
                identity,
                partitions,
                writer: tx,
                appended: appended_rx,
                reader: Mutex::new(reader),
            }),
        })
    }
}

impl Shared {
    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, LogError>>) -> Command,
    ) -> Result<T, LogError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(make(reply))
            .map_err(|_| LogError::Closed)?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = shared.reader.lock().map_err(|_| LogError::Closed)?;
            f(&conn)
        })
        .await
        .map_err(|_| LogError::Closed)?
    }

    async fn ensure_topic(&self, topic: &str) -> Result<TopicInfo, LogError> {
        let (topic, partitions) = (topic.to_string(), self.partitions);
        self.send(|reply| Command::EnsureTopic {
            topic,
            partitions,
            reply,
        })
        .await
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicInfo {
    pub id: i64,
    pub partitions: u32,
}

pub(crate) fn topic_info(conn: &Connection, topic: &str) -> Result<Option<TopicInfo>, LogError> {
    Ok(conn
        .prepare_cached("SELECT id, partitions FROM topics WHERE name = ?1")?
        .query_row([topic], |r| {
            Ok(TopicInfo {
                id: r.get(0)?,
                partitions: r.get(1)?,
            })
        })
        .optional()?)
}

pub(crate) fn end_offset(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
) -> Result<u64, LogError> {
    let next: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(MAX(offset) + 1, 0) FROM records WHERE topic_id = ?1 AND partition = ?2",
        )?
        .query_row(params![topic_id, partition], |r| r.get(0))?;
    Ok(next as u64)
}

pub(crate) fn committed_offset(
    conn: &Connection,
    group: &str,
    topic_id: i64,
    partition: u32,
) -> Result<u64, LogError> {
    let next: Option<i64> = conn
        .prepare_cached(
            "SELECT next_offset FROM offsets WHERE grp = ?1 AND topic_id = ?2 AND partition = ?3",
        )?
        .query_row(params![group, topic_id, partition], |r| r.get(0))
        .optional()?;
    Ok(next.unwrap_or(0) as u64)
}

pub(crate) fn read_partition(
    conn: &Connection,
    topic: &str,
    topic_id: i64,
    partition: u32,
    offset: u64,
    max: usize,
    out: &mut Vec<Record>,
) -> Result<(), LogError> {
    let mut stmt = conn.prepare_cached(
        "SELECT offset, key, ts, headers, payload FROM records
         WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 ORDER BY offset LIMIT ?4",
    )?;
    let mut rows = stmt.query(params![topic_id, partition, offset as i64, max as i64])?;
    while let Some(row) = rows.next()? {
        let headers: String = row.get(3)?;
        out.push(Record {
            topic: topic.to_string(),
            partition,
            offset: row.get::<_, i64>(0)? as u64,
            key: row.get(1)?,
            timestamp_ms: row.get(2)?,
            headers: headers_from_json(&headers).map_err(|e| corrupt_column(3, e))?,
            payload: row.get(4)?,
        });
    }
    Ok(())
}

#[async_trait]
impl EventLog for SqliteLog {
    fn describe(&self) -> String {
        format!("sqlite://{}", self.shared.path.display())
    }

    fn identity(&self) -> String {
        self.shared.identity.clone()
    }

    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        self.shared.ensure_topic(topic).await.map(|_| ())
    }

    async fn append(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (topic, partitions) = (topic.to_string(), self.shared.partitions);
        self.shared
            .send(|reply| Command::Append {
                topic,
                partitions,
                records,
                reply,
            })
            .await
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, LogError> {
        let sub = SqliteSubscription::join(Arc::clone(&self.shared), group, topics).await?;
        Ok(Box::new(sub))
    }

    async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        let topic = topic.to_string();
        self.shared
            .read(move |conn| {
                let info = topic_info(conn, &topic)?.ok_or(LogError::UnknownTopic(topic))?;
                (0..info.partitions)
                    .map(|p| end_offset(conn, info.id, p))
                    .collect()
            })
            .await
    }

    async fn commit_outside(&self, group: &str, positions: &[Position]) -> Result<(), LogError> {
        // One look-up per topic (a view shows a few partitions of each).
        let mut topics: HashMap<&str, TopicInfo> = HashMap::new();
        let mut resolved = Vec::with_capacity(positions.len());
        for pos in positions {
            let info = match topics.get(pos.topic.as_str()) {
                Some(info) => *info,
                None => {
                    let info = self.shared.ensure_topic(&pos.topic).await?;
                    topics.insert(&pos.topic, info);
                    info
                }
            };
            if pos.partition >= info.partitions {
                return Err(LogError::UnknownPartition {
                    topic: pos.topic.clone(),
                    partition: pos.partition,
                });
            }
            resolved.push((info.id, pos.clone()));
        }
        let group = group.to_string();
        self.shared
            .send(|reply| Command::Commit {
                group,
                generation: None,
                positions: resolved,
                reply,
            })
            .await
    }

    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<u64>, LogError> {
        let (group, topic) = (group.to_string(), topic.to_string());
        self.shared
            .read(move |conn| {
                let info = topic_info(conn, &topic)?.ok_or(LogError::UnknownTopic(topic))?;
                (0..info.partitions)
                    .map(|p| committed_offset(conn, &group, info.id, p))
                    .collect()
            })
            .await
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        let topic = topic.to_string();
        self.shared
            .read(move |conn| {
                let info = topic_info(conn, &topic)?
                    .ok_or_else(|| LogError::UnknownTopic(topic.clone()))?;
                if partition >= info.partitions {
                    return Err(LogError::UnknownPartition { topic, partition });
                }
                let mut out = Vec::new();
                read_partition(conn, &topic, info.id, partition, offset, max, &mut out)?;
                Ok(out)
            })
            .await
    }

    async fn topics(&self) -> Result<Vec<String>, LogError> {
        self.shared
            .read(|conn| {
                let mut stmt = conn.prepare_cached("SELECT name FROM topics ORDER BY name")?;
                let names = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(names)
            })
            .await
    }
}

/// The partition a key belongs to: FNV-1a, stable across runs, platforms and processes.
pub(crate) fn partition_for(key: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioning_is_stable_and_spreads_keys() {
        assert_eq!(partition_for("return-1", 3), partition_for("return-1", 3));
        let mut counts = [0u32; 3];
        for i in 0..3000 {
            counts[partition_for(&format!("key-{i}"), 3) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
