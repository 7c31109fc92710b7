//! The single writer: drains every waiting request and commits them in one transaction.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::{oneshot, watch};

use super::{end_offset, partition_for, topic_info, TopicInfo};
use crate::record::headers_to_json;
use crate::{LogError, OutRecord, Position};

/// How many records one transaction takes at most before it commits.
const MAX_RECORDS_PER_TX: usize = 50_000;

type Reply<T> = oneshot::Sender<Result<T, LogError>>;

pub(super) enum Command {
    EnsureTopic {
        topic: String,
        partitions: u32,
        reply: Reply<TopicInfo>,
    },
    Append {
        topic: String,
        partitions: u32,
        records: Vec<OutRecord>,
        reply: Reply<Vec<Position>>,
    },
    Join {
        group: String,
        reply: Reply<i64>,
    },
    Commit {
        group: String,
        /// The member's generation, checked; `None`: a commit from outside the group.
        generation: Option<i64>,
        positions: Vec<(i64, Position)>,
        reply: Reply<()>,
    },
}

impl Command {
    fn weight(&self) -> usize {
        match self {
            Command::Append { records, .. } => records.len(),
            Command::Commit { positions, .. } => positions.len(),
            _ => 1,
        }
    }
}

pub(super) fn run(mut conn: Connection, rx: Receiver<Command>, appended: watch::Sender<u64>) {
    while let Ok(first) = rx.recv() {
        let mut weight = first.weight();
        let mut batch = vec![first];
        while weight < MAX_RECORDS_PER_TX {
            match rx.try_recv() {
                Ok(cmd) => {
                    weight += cmd.weight();
                    batch.push(cmd);
                }
                Err(_) => break,
            }
        }
        let wrote = batch.iter().any(|c| matches!(c, Command::Append { .. }));
        match execute(&mut conn, &batch) {
            Ok(results) => {
                // Results are computed in order, so zip them back to the commands' replies.
                for (cmd, result) in batch.into_iter().zip(results) {
                    finish(cmd, result);
                }
            }
            Err(_) => {
                // Something failed the whole transaction: run each command on its own, so only
                // the one at fault gets the error.
                for cmd in batch {
                    let result = execute(&mut conn, std::slice::from_ref(&cmd))
                        .map(|mut r| r.pop().expect("one result per command"));
                    finish(cmd, result.and_then(|r| r));
                }
            }
        }
        if wrote {
            appended.send_modify(|n| *n += 1);
        }
    }
}

/// A command's value before it is matched back to its reply.
enum Value {
    Topic(TopicInfo),
    Positions(Vec<Position>),
    Generation(i64),
    Unit,
}

/// Answer a command with its result, once its transaction has committed (or failed). A requester
/// that went away no longer needs its answer, so a failed send is ignored.
fn finish(cmd: Command, result: Result<Value, LogError>) {
    let _ = match (cmd, result) {
        (Command::EnsureTopic { reply, .. }, Ok(Value::Topic(t))) => reply.send(Ok(t)).is_ok(),
        (Command::Append { reply, .. }, Ok(Value::Positions(p))) => reply.send(Ok(p)).is_ok(),
        (Command::Join { reply, .. }, Ok(Value::Generation(g))) => reply.send(Ok(g)).is_ok(),
        (Command::Commit { reply, .. }, Ok(Value::Unit)) => reply.send(Ok(())).is_ok(),
        (Command::EnsureTopic { reply, .. }, Err(e)) => reply.send(Err(e)).is_ok(),
        (Command::Append { reply, .. }, Err(e)) => reply.send(Err(e)).is_ok(),
        (Command::Join { reply, .. }, Err(e)) => reply.send(Err(e)).is_ok(),
        (Command::Commit { reply, .. }, Err(e)) => reply.send(Err(e)).is_ok(),
        (_, Ok(_)) => unreachable!("execute yields the value kind of each command"),
    };
}

/// Run the commands in one transaction. `Err` means the transaction did not commit; `Ok` holds
/// one result per command (a command may fail on its own without failing the others, e.g. a
/// fenced commit).
fn execute(
    conn: &mut Connection,
    batch: &[Command],
) -> Result<Vec<Result<Value, LogError>>, LogError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut topics: HashMap<String, TopicInfo> = HashMap::new();
    let mut next: HashMap<(i64, u32), u64> = HashMap::new();
    let mut results = Vec::with_capacity(batch.len());
    for cmd in batch {
        let result = match cmd {
            Command::EnsureTopic {
                topic, partitions, ..
            } => ensure_topic(&tx, &mut topics, topic, *partitions).map(Value::Topic)?,
            Command::Append {
                topic,
                partitions,
                records,
                ..
            } => {
                let info = ensure_topic(&tx, &mut topics, topic, *partitions)?;
                Value::Positions(append(&tx, &mut next, topic, info, records)?)
            }
            Command::Join { group, .. } => {
                let generation: i64 = tx
                    .prepare_cached(
                        "INSERT INTO groups (name, generation) VALUES (?1, 1)
                         ON CONFLICT (name) DO UPDATE SET generation = generation + 1
                         RETURNING generation",
                    )?
                    .query_row([group], |r| r.get(0))?;
                Value::Generation(generation)
            }
            Command::Commit {
                group,
                generation,
                positions,
                ..
            } => {
                if let Some(generation) = generation {
                    let current: i64 = tx
                        .prepare_cached("SELECT generation FROM groups WHERE name = ?1")?
                        .query_row([group], |r| r.get(0))?;
                    if current != *generation {
                        results.push(Err(LogError::Fenced {
                            group: group.clone(),
                            generation: *generation,
                        }));
                        continue;
                    }
                }
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO offsets (grp, topic_id, partition, next_offset) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (grp, topic_id, partition) DO UPDATE SET next_offset = excluded.next_offset",
                )?;
                for (topic_id, pos) in positions {
                    stmt.execute(params![group, topic_id, pos.partition, pos.offset as i64])?;
                }
                Value::Unit
            }
        };
        results.push(Ok(result));
    }
    tx.commit()?;
    Ok(results)
}

fn ensure_topic(
    conn: &Connection,
    cache: &mut HashMap<String, TopicInfo>,
    topic: &str,
    partitions: u32,
) -> Result<TopicInfo, LogError> {
    if let Some(info) = cache.get(topic) {
        return Ok(*info);
    }
    conn.prepare_cached("INSERT OR IGNORE INTO topics (name, partitions) VALUES (?1, ?2)")?
        .execute(params![topic, partitions])?;
    let info = topic_info(conn, topic)?.ok_or_else(|| LogError::UnknownTopic(topic.into()))?;
    cache.insert(topic.to_string(), info);
    Ok(info)
}

fn append(
    conn: &Connection,
    next: &mut HashMap<(i64, u32), u64>,
    topic: &str,
    info: TopicInfo,
    records: &[OutRecord],
) -> Result<Vec<Position>, LogError> {
    let now = time::OffsetDateTime::now_utc();
    let ts = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO records (topic_id, partition, offset, key, ts, headers, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut positions = Vec::with_capacity(records.len());
    for rec in records {
        let partition = partition_for(&rec.key, info.partitions);
        let offset = match next.get(&(info.id, partition)) {
            Some(n) => *n,
            None => end_offset(conn, info.id, partition)?,
        };
        stmt.execute(params![
            info.id,
            partition,
            offset as i64,
            rec.key,
            ts,
            headers_to_json(&rec.headers),
            rec.payload
        ])?;
        next.insert((info.id, partition), offset + 1);
        positions.push(Position {
            topic: topic.to_string(),
            partition,
            offset,
        });
    }
    Ok(positions)
}
