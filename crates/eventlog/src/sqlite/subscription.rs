use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::time::Instant;

use super::writer::Command;
use super::{committed_offset, read_partition, schema, Shared};
use crate::{LogError, Position, Record, Subscription};

/// How often a waiting subscription looks at the file again, for appends made by other processes
/// (appends from this process wake it at once).
const RECHECK: Duration = Duration::from_millis(50);

struct Assignment {
    topic: String,
    topic_id: i64,
    partition: u32,
    /// The next offset this subscription returns.
    next: u64,
}

/// The only member of its consumer group: joining bumps the group's generation, which fences off
/// any older member (its commits fail with [`LogError::Fenced`]).
pub(super) struct SqliteSubscription {
    shared: Arc<Shared>,
    group: String,
    generation: i64,
    conn: Arc<Mutex<Connection>>,
    assignments: Vec<Assignment>,
    /// Which assignment the next poll starts with, so no partition starves.
    start: usize,
}

impl SqliteSubscription {
    pub(super) async fn join(
        shared: Arc<Shared>,
        group: &str,
        topics: &[&str],
    ) -> Result<Self, LogError> {
        let mut infos = Vec::new();
        for topic in topics {
            infos.push((topic.to_string(), shared.ensure_topic(topic).await?));
        }
        let group_name = group.to_string();
        let generation = shared
            .send(|reply| Command::Join {
                group: group_name,
                reply,
            })
            .await?;
        let conn = schema::connect(&shared.path)?;
        let group_name = group.to_string();
        let (conn, assignments) = tokio::task::spawn_blocking(move || {
            let mut assignments = Vec::new();
            for (topic, info) in infos {
                for partition in 0..info.partitions {
                    let next = committed_offset(&conn, &group_name, info.id, partition)?;
                    assignments.push(Assignment {
                        topic: topic.clone(),
                        topic_id: info.id,
                        partition,
                        next,
                    });
                }
            }
            Ok::<_, LogError>((conn, assignments))
        })
        .await
        .map_err(|_| LogError::Closed)??;
        Ok(SqliteSubscription {
            shared,
            group: group.to_string(),
            generation,
            conn: Arc::new(Mutex::new(conn)),
            assignments,
            start: 0,
        })
    }

    async fn fetch(&mut self, max: usize) -> Result<Vec<Record>, LogError> {
        let conn = Arc::clone(&self.conn);
        let n = self.assignments.len();
        let wanted: Vec<(usize, String, i64, u32, u64)> = (0..n)
            .map(|i| (self.start + i) % n)
            .map(|i| {
                let a = &self.assignments[i];
                (i, a.topic.clone(), a.topic_id, a.partition, a.next)
            })
            .collect();
        self.start = (self.start + 1) % n.max(1);
        let (records, advanced) = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| LogError::Closed)?;
            let mut out = Vec::new();
            // (assignment, its next offset) for every partition that returned records.
            let mut advanced = Vec::new();
            for (i, topic, topic_id, partition, next) in wanted {
                if out.len() >= max {
                    break;
                }
                let before = out.len();
                read_partition(
                    &conn,
                    &topic,
                    topic_id,
                    partition,
                    next,
                    max - before,
                    &mut out,
                )?;
                if let Some(last) = out[before..].last() {
                    advanced.push((i, last.offset + 1));
                }
            }
            Ok::<_, LogError>((out, advanced))
        })
        .await
        .map_err(|_| LogError::Closed)??;
        for (i, next) in advanced {
            self.assignments[i].next = next;
        }
        Ok(records)
    }
}

#[async_trait]
impl Subscription for SqliteSubscription {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, LogError> {
        let deadline = Instant::now() + timeout;
        let mut changes = self.shared.appended.clone();
        loop {
            changes.mark_unchanged();
            let records = self.fetch(max.max(1)).await?;
            let now = Instant::now();
            if !records.is_empty() || now >= deadline {
                return Ok(records);
            }
            let wait = (deadline - now).min(RECHECK);
            // Woken early by an append from this process; otherwise look again after `wait`.
            let _ = tokio::time::timeout(wait, changes.changed()).await;
        }
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut resolved = Vec::with_capacity(positions.len());
        for pos in positions {
            let a = self
                .assignments
                .iter()
                .find(|a| a.topic == pos.topic && a.partition == pos.partition)
                .ok_or_else(|| LogError::UnknownPartition {
                    topic: pos.topic.clone(),
                    partition: pos.partition,
                })?;
            resolved.push((a.topic_id, pos.clone()));
        }
        let (group, generation) = (self.group.clone(), Some(self.generation));
        self.shared
            .send(|reply| Command::Commit {
                group,
                generation,
                positions: resolved,
                reply,
            })
            .await
    }
}
