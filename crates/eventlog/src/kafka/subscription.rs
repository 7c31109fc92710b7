//! One member of a Kafka consumer group.
//!
//! Offsets move only when the caller commits: `enable.auto.offset.store=false`, so librdkafka
//! commits nothing the caller has not stored, and `commit` stores then commits synchronously.
//! A rebalance takes effect only inside `poll`, and the caller commits before it polls again, so
//! when partitions are revoked everything applied from them has been committed; if a commit
//! races a rebalance, the stored offsets are committed by librdkafka as the partitions are
//! revoked (`enable.auto.commit=true` commits stored offsets on revocation and on close).
//! Records fetched but not yet handed out are dropped with the partition and read again by its
//! next owner from the committed offset: nothing is lost, and nothing is handed out twice.
//!
//! `poll` is cancel-safe: records are gathered into a buffer owned by the subscription, so a
//! poll dropped mid-way leaves what it fetched for the next one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{client_config, is_transient, kafka_err, to_record, ClientKind, KafkaConfig};
use crate::{LogError, Position, Record, Subscription};

/// Logs what the group coordinator gives and takes, and forgets fetched records of partitions
/// taken away before the caller got them (their next owner reads them from the committed
/// offset; handing them out here too would handle them twice).
pub(crate) struct GroupContext {
    group: String,
    names: Arc<HashMap<String, String>>,
    buffer: Arc<Mutex<VecDeque<Record>>>,
}

impl ClientContext for GroupContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::log_client_error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<(String, u32)> = tpl
                .elements()
                .iter()
                .map(|e| {
                    let topic = self.names.get(e.topic()).map_or(e.topic(), String::as_str);
                    (topic.to_string(), e.partition() as u32)
                })
                .collect();
            let mut buffer = self.buffer.lock().expect("buffer lock");
            let before = buffer.len();
            buffer.retain(|r| {
                !revoked
                    .iter()
                    .any(|(t, p)| *t == r.topic && *p == r.partition)
            });
            tracing::info!(
                group = %self.group,
                partitions = %describe(tpl),
                dropped_unhandled = before - buffer.len(),
                "partitions revoked; stored offsets are committed"
            );
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(group = %self.group, partitions = %describe(tpl), "partitions assigned")
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance failed")
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) struct KafkaSubscription {
    consumer: Arc<BaseConsumer<GroupContext>>,
    /// Cluster topic name -> our topic name (they differ under a namespace).
    names: Arc<HashMap<String, String>>,
    /// Records fetched and not yet returned.
    buffer: Arc<Mutex<VecDeque<Record>>>,
    group: String,
}

impl KafkaSubscription {
    pub(crate) fn join(
        config: &KafkaConfig,
        group: &str,
        topics: &[&str],
    ) -> Result<Self, LogError> {
        let qualified_group = config.qualify(group);
        let names: Arc<HashMap<String, String>> = Arc::new(
            topics
                .iter()
                .map(|t| (config.qualify(t), t.to_string()))
                .collect(),
        );
        let buffer = Arc::new(Mutex::new(VecDeque::new()));
        let consumer: BaseConsumer<GroupContext> = client_config(
            config,
            ClientKind::Consumer,
            &[
                ("group.id", &qualified_group),
                ("enable.auto.offset.store", "false"),
                ("enable.auto.commit", "true"),
                ("auto.offset.reset", "earliest"),
                // A member that died is noticed after 10 s instead of 45 s.
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "1000"),
                ("fetch.wait.max.ms", "100"),
            ],
        )
        .create_with_context(GroupContext {
            group: qualified_group.clone(),
            names: Arc::clone(&names),
            buffer: Arc::clone(&buffer),
        })
        .map_err(kafka_err("consumer setup"))?;
        let cluster_topics: Vec<&str> = names.keys().map(String::as_str).collect();
        consumer
            .subscribe(&cluster_topics)
            .map_err(kafka_err("subscribe"))?;
        Ok(KafkaSubscription {
            consumer: Arc::new(consumer),
            names,
            buffer,
            group: qualified_group,
        })
    }

    fn take(&self, max: usize) -> Vec<Record> {
        let mut buffer = self.buffer.lock().expect("buffer lock");
        let n = max.min(buffer.len());
        buffer.drain(..n).collect()
    }
}

/// Fetch into `buffer`: wait up to `timeout` for a first record, then take whatever else is
/// already there, up to `max` in the buffer.
fn fetch(
    consumer: &BaseConsumer<GroupContext>,
    names: &HashMap<String, String>,
    buffer: &Mutex<VecDeque<Record>>,
    max: usize,
    timeout: Duration,
) -> Result<(), LogError> {
    let mut wait = timeout;
    loop {
        if buffer.lock().expect("buffer lock").len() >= max {
            return Ok(());
        }
        let Some(polled) = consumer.poll(wait) else {
            return Ok(());
        };
        wait = Duration::ZERO;
        match polled {
            Ok(m) => {
                let topic = names.get(m.topic()).map_or(m.topic(), String::as_str);
                let record = to_record(&m, topic);
                buffer.lock().expect("buffer lock").push_back(record);
            }
            Err(e) if is_transient(&e) => {
                // librdkafka reconnects and refetches by itself; report and keep going.
                tracing::warn!(error = %e, "consumer: transient error");
            }
            Err(e) => return Err(kafka_err("consume")(e)),
        }
    }
}

/// Commit failures that mean "this member's generation changed": the stored offsets are
/// committed by librdkafka as the partitions are revoked, so the commit is not lost.
fn lost_generation(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::RebalanceInProgress
                | C::IllegalGeneration
                | C::UnknownMemberId
                | C::State
                | C::AssignmentLost
                | C::FencedInstanceId
        )
    )
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, LogError> {
        let ready = self.take(max);
        if !ready.is_empty() {
            return Ok(ready);
        }
        let consumer = Arc::clone(&self.consumer);
        let names = Arc::clone(&self.names);
        let buffer = Arc::clone(&self.buffer);
        tokio::task::spawn_blocking(move || fetch(&consumer, &names, &buffer, max, timeout))
            .await
            .map_err(|_| LogError::Closed)??;
        Ok(self.take(max))
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        if positions.is_empty() {
            return Ok(());
        }
        let consumer = Arc::clone(&self.consumer);
        let qualified: HashMap<&str, &str> = self
            .names
            .iter()
            .map(|(cluster, ours)| (ours.as_str(), cluster.as_str()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for p in positions {
            let topic = qualified.get(p.topic.as_str()).copied().unwrap_or(&p.topic);
            tpl.add_partition_offset(topic, p.partition as i32, Offset::Offset(p.offset as i64))
                .map_err(kafka_err("commit"))?;
        }
        let group = self.group.clone();
        tokio::task::spawn_blocking(move || {
            // Only partitions this member still owns: a revoked partition's new owner commits it.
            let owned = consumer.assignment().map_err(kafka_err("commit"))?;
            let mut mine = TopicPartitionList::new();
            for e in tpl.elements() {
                if owned.find_partition(e.topic(), e.partition()).is_some() {
                    mine.add_partition_offset(e.topic(), e.partition(), e.offset())
                        .map_err(kafka_err("commit"))?;
                } else {
                    tracing::info!(%group, topic = e.topic(), partition = e.partition(), "not committing a partition this member no longer owns; its next owner skips what was applied");
                }
            }
            if mine.count() == 0 {
                return Ok(());
            }
            consumer.store_offsets(&mine).map_err(kafka_err("commit"))?;
            match consumer.commit(&mine, CommitMode::Sync) {
                Ok(()) => Ok(()),
                Err(e) if lost_generation(&e) => {
                    tracing::info!(%group, error = %e, "commit raced a rebalance; the stored offsets are committed on revocation");
                    Ok(())
                }
                Err(e) => Err(kafka_err("commit")(e)),
            }
        })
        .await
        .map_err(|_| LogError::Closed)?
    }
}
