//! The Kafka backend (`kafka://HOST:PORT`), on librdkafka through `rdkafka`.
//!
//! - Appends go through one idempotent producer (`acks=all`, Java-compatible murmur2
//!   partitioner), keyed by the record key, so one return stays in order on one partition even
//!   when a send is retried.
//! - Topics are created through the admin API the first time they are used, with the URL's
//!   partition count.
//! - A subscription is one member of a Kafka consumer group ([`subscription`]): offsets are
//!   stored and committed only when the caller says its effects are durable.
//! - Reads outside any group (`read`, `for_each_record`) assign partitions on a consumer with no
//!   group, so they never move anyone's position.
//! - A namespace in the URL prefixes every topic and group, so tests and several demos can share
//!   one cluster.
//!
//! librdkafka's calls block; every one of them runs on tokio's blocking pool.

mod config;
mod subscription;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub use config::{ClientKind, KafkaConfig};

use crate::{EventLog, LogError, OutRecord, Position, Record, Subscription};

/// The producer's settings (before the URL's): idempotent, every in-sync replica acknowledges,
/// and the Java clients' partitioner, so a key lands where Kafka's own tools put it.
pub const PRODUCER: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("partitioner", "murmur2_random"),
    ("linger.ms", "5"),
    ("compression.type", "lz4"),
    ("message.timeout.ms", "60000"),
];

/// How long a metadata, offset or admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The Kafka event log.
pub struct KafkaLog {
    shared: Arc<Shared>,
    cluster_id: String,
}

pub(crate) struct Shared {
    pub(crate) config: KafkaConfig,
    producer: FutureProducer<LogContext>,
    admin: AdminClient<LogContext>,
    /// A consumer with no group: metadata, end offsets.
    meta: BaseConsumer<LogContext>,
    /// A consumer outside any group for `read`, reassigned on each call.
    reader: Mutex<BaseConsumer<LogContext>>,
    /// One group-bound consumer per group asked about in `committed` (never subscribed).
    offsets: Mutex<HashMap<String, Arc<BaseConsumer<LogContext>>>>,
    /// Partition counts of the topics seen ready, so `append`, `lag` and `read` ask the
    /// cluster for metadata once per topic, not on every call. A partition added to a topic
    /// later by someone else is seen after a restart.
    partition_counts: Mutex<HashMap<String, u32>>,
}

/// Is this failure worth retrying as it is?
pub(crate) fn is_transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::QueueFull
                | C::MessageTimedOut
                | C::RequestTimedOut
                | C::OperationTimedOut
                | C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::NotCoordinator
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::NetworkException
                | C::RebalanceInProgress
                | C::UnknownTopicOrPartition
                // What a broker's restart looks like from a client: the group coordinator is
                // still being found, leaders and their epochs move, the log dirs come back.
                | C::WaitingForCoordinator
                | C::BrokerNotAvailable
                | C::KafkaStorageError
                | C::FencedLeaderEpoch
                | C::UnknownLeaderEpoch
                | C::PreferredLeaderNotAvailable
                | C::OffsetNotAvailable
                | C::Resolve
        )
    )
}

pub(crate) fn kafka_err(op: &'static str) -> impl Fn(KafkaError) -> LogError {
    move |source| LogError::Kafka { op, source }
}

/// Build one librdkafka client with our settings, then the URL's.
fn client_config(config: &KafkaConfig, kind: ClientKind, ours: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in config.client_settings(kind) {
        c.set(k, v);
    }
    c
}

impl KafkaLog {
    /// Connect to the cluster and check that it answers.
    pub async fn open(config: KafkaConfig) -> Result<Self, LogError> {
        let producer: FutureProducer<LogContext> =
            client_config(&config, ClientKind::Producer, PRODUCER)
                .create_with_context(LogContext)
                .map_err(kafka_err("producer setup"))?;
        let admin = client_config(&config, ClientKind::Admin, &[])
            .create_with_context(LogContext)
            .map_err(kafka_err("admin client setup"))?;
        let meta: BaseConsumer<LogContext> = client_config(&config, ClientKind::Consumer, &[])
            .create_with_context(LogContext)
            .map_err(kafka_err("consumer setup"))?;
        // librdkafka assigns partitions only on a consumer with a group id; this one never
        // joins its group and never commits, so the id is a throwaway.
        let reader_group = format!("returns.reader.{}", uuid::Uuid::new_v4().simple());
        let reader: BaseConsumer<LogContext> = client_config(
            &config,
            ClientKind::Consumer,
            &[
                ("group.id", &reader_group),
                ("enable.partition.eof", "true"),
                ("enable.auto.commit", "false"),
                // A read ends at the partition's end; a fetch left waiting there for new
                // records (500 ms by default) would hold up the next read's first fetch.
                ("fetch.wait.max.ms", "10"),
            ],
        )
        .create_with_context(LogContext)
        .map_err(kafka_err("consumer setup"))?;
        let shared = Arc::new(Shared {
            config,
            producer,
            admin,
            meta,
            reader: Mutex::new(reader),
            offsets: Mutex::new(HashMap::new()),
            partition_counts: Mutex::new(HashMap::new()),
        });
        // Fail now, with the cause, if no broker answers.
        let probe = Arc::clone(&shared);
        let cluster_id = blocking(move || {
            probe
                .meta
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map_err(kafka_err("connect"))?;
            Ok(probe
                .meta
                .client()
                .fetch_cluster_id(REQUEST_TIMEOUT)
                .unwrap_or_else(|| "unknown-cluster".to_string()))
        })
        .await?;
        Ok(KafkaLog { shared, cluster_id })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.shared.config
    }
}

enum TopicMeta {
    Missing,
    NotReady(RDKafkaErrorCode),
    Ready(u32),
}

/// Run a blocking request again while it fails for a passing reason (a leader moving, a
/// coordinator loading), for up to [`REQUEST_TIMEOUT`].
fn retry_transient<T>(mut f: impl FnMut() -> Result<T, LogError>) -> Result<T, LogError> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut backoff = Duration::from_millis(20);
    loop {
        match f() {
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tracing::debug!(error = %e, "retrying a Kafka request");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

/// Run blocking librdkafka work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| LogError::Closed)?
}

impl Shared {
    /// What the cluster says of a topic right now.
    fn topic_meta(&self, topic: &str) -> Result<TopicMeta, LogError> {
        use rdkafka::types::RDKafkaRespErr as E;
        let name = self.config.qualify(topic);
        let md = self
            .meta
            .fetch_metadata(Some(&name), REQUEST_TIMEOUT)
            .map_err(kafka_err("metadata request"))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == name) else {
            return Ok(TopicMeta::Missing);
        };
        match t.error() {
            Some(E::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => return Ok(TopicMeta::Missing),
            Some(e) => return Ok(TopicMeta::NotReady(e.into())),
            None => {}
        }
        if t.partitions().is_empty() {
            return Ok(TopicMeta::Missing);
        }
        // Just after creation a partition may have no leader yet.
        if let Some(p) = t
            .partitions()
            .iter()
            .find(|p| p.leader() < 0 || p.error().is_some())
        {
            let code = p
                .error()
                .map(Into::into)
                .unwrap_or(RDKafkaErrorCode::LeaderNotAvailable);
            return Ok(TopicMeta::NotReady(code));
        }
        Ok(TopicMeta::Ready(t.partitions().len() as u32))
    }

    /// Partition count of a topic once every partition has a leader; `UnknownTopic` when it
    /// does not exist. With `created`, a missing topic is waited for too (it was just made).
    fn partitions_when_ready(&self, topic: &str, created: bool) -> Result<u32, LogError> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let code = match self.topic_meta(topic)? {
                TopicMeta::Ready(n) => return Ok(n),
                TopicMeta::Missing if !created => {
                    return Err(LogError::UnknownTopic(topic.to_string()))
                }
                TopicMeta::Missing => RDKafkaErrorCode::UnknownTopicOrPartition,
                TopicMeta::NotReady(code) => code,
            };
            if Instant::now() > deadline {
                return Err(LogError::Kafka {
                    op: "metadata request",
                    source: KafkaError::MetadataFetch(code),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Partition count of an existing topic (asked of the cluster once).
    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        if let Some(n) = self.cached_partitions(topic) {
            return Ok(n);
        }
        let n = self.partitions_when_ready(topic, false)?;
        self.remember_partitions(topic, n);
        Ok(n)
    }

    fn cached_partitions(&self, topic: &str) -> Option<u32> {
        let counts = self.partition_counts.lock().expect("partition counts lock");
        counts.get(topic).copied()
    }

    fn remember_partitions(&self, topic: &str, n: u32) {
        let mut counts = self.partition_counts.lock().expect("partition counts lock");
        counts.insert(topic.to_string(), n);
    }

    fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        let (tpl, partitions) = self.all_partitions(topic, Offset::End)?;
        // A ListOffsets request for "latest" on every partition at once.
        let found = retry_transient(|| {
            self.meta
                .offsets_for_times(tpl.clone(), REQUEST_TIMEOUT)
                .map_err(kafka_err("end offsets"))
        })?;
        Ok(per_partition(&found, partitions))
    }

    /// Every partition of a topic, each with `offset`.
    fn all_partitions(
        &self,
        topic: &str,
        offset: Offset,
    ) -> Result<(TopicPartitionList, u32), LogError> {
        let partitions = self.partitions(topic)?;
        let name = self.config.qualify(topic);
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&name, p as i32, offset)
                .map_err(kafka_err("offsets request"))?;
        }
        Ok((tpl, partitions))
    }

    /// A consumer of `group` that never joins it, for its committed offsets (made once per
    /// group and kept).
    fn group_consumer(&self, group: &str) -> Result<Arc<BaseConsumer<LogContext>>, LogError> {
        let mut offsets = self.offsets.lock().expect("offsets lock");
        if let Some(c) = offsets.get(group) {
            return Ok(Arc::clone(c));
        }
        let c: BaseConsumer<LogContext> = client_config(
            &self.config,
            ClientKind::Consumer,
            &[
                ("group.id", &self.config.qualify(group)),
                ("enable.auto.commit", "false"),
            ],
        )
        .create_with_context(LogContext)
        .map_err(kafka_err("consumer setup"))?;
        let c = Arc::new(c);
        offsets.insert(group.to_string(), Arc::clone(&c));
        Ok(c)
    }

    fn committed(&self, group: &str, topic: &str) -> Result<Vec<u64>, LogError> {
        let (tpl, partitions) = self.all_partitions(topic, Offset::Invalid)?;
        let consumer = self.group_consumer(group)?;
        let got = retry_transient(|| {
            consumer
                .committed_offsets(tpl.clone(), REQUEST_TIMEOUT)
                .map_err(kafka_err("committed offsets request"))
        })?;
        Ok(per_partition(&got, partitions))
    }

    /// Commit offsets for `group` from outside it (a simple consumer's commit: no member, no
    /// generation), which the group coordinator takes while the group has no members.
    fn commit_outside(&self, group: &str, positions: &[Position]) -> Result<(), LogError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in positions {
            tpl.add_partition_offset(
                &self.config.qualify(&p.topic),
                p.partition as i32,
                Offset::Offset(p.offset as i64),
            )
            .map_err(kafka_err("offset commit"))?;
        }
        let consumer = self.group_consumer(group)?;
        retry_transient(|| {
            consumer
                .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
                .map_err(kafka_err("offset commit"))
        })
    }

    /// Read from one partition with the shared group-less consumer: up to `max` records from
    /// `offset`, stopping at the end of the partition.
    fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> Result<(), LogError> {
        let partitions = self.partitions(topic)?;
        if partition >= partitions {
            return Err(LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        let name = self.config.qualify(topic);
        let reader = self.reader.lock().expect("reader lock");
        let (low, high) = reader
            .fetch_watermarks(&name, partition as i32, REQUEST_TIMEOUT)
            .map_err(kafka_err("end offsets"))?;
        // Below the first record the log still holds (retention deleted the rest), a fetch
        // would jump to the end: start at the first one, as the embedded log does.
        // Up to `max` records from there: counted from where the records start, not from
        // `offset`, or a read far below the log start would return nothing for ever.
        let start = offset.max(low.max(0) as u64);
        let end = (high.max(0) as u64).min(start.saturating_add(max as u64));
        if start >= end {
            return Ok(());
        }
        let ranges = HashMap::from([(partition as i32, (start, end))]);
        read_ranges(&reader, topic, &name, ranges, sink)
    }

    /// Read every record of every partition of a topic, up to the ends as they are now, with
    /// one assignment of all partitions: each partition's records come in order, partitions
    /// interleave. One assignment instead of one per partition saves a fetch round trip per
    /// partition, which is most of the time on a small topic. `sink` returns false to stop.
    fn read_all(&self, topic: &str, sink: &mut dyn FnMut(Record) -> bool) -> Result<(), LogError> {
        let partitions = self.partitions(topic)?;
        let name = self.config.qualify(topic);
        let reader = self.reader.lock().expect("reader lock");
        let mut next: HashMap<i32, (u64, u64)> = HashMap::new();
        for p in 0..partitions as i32 {
            let (low, high) = reader
                .fetch_watermarks(&name, p, REQUEST_TIMEOUT)
                .map_err(kafka_err("end offsets"))?;
            next.insert(p, (low.max(0) as u64, high.max(0) as u64));
        }
        read_ranges(&reader, topic, &name, next, sink)
    }

    /// Make sure a topic exists, creating it with our partition count.
    async fn ensure_topic(self: &Arc<Self>, topic: &str) -> Result<(), LogError> {
        if self.cached_partitions(topic).is_some() {
            return Ok(());
        }
        let name = self.config.qualify(topic);
        let replication = self.config.replication.unwrap_or(-1);
        let new = NewTopic::new(
            &name,
            self.config.partitions as i32,
            TopicReplication::Fixed(replication),
        );
        let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .admin
            .create_topics([&new], &opts)
            .await
            .map_err(kafka_err("create topic"))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(LogError::Kafka {
                        op: "create topic",
                        source: KafkaError::AdminOp(code),
                    })
                }
            }
        }
        // Producing or subscribing before every partition has a leader fails or stalls.
        let (shared, t) = (self.clone(), topic.to_string());
        let n = blocking(move || shared.partitions_when_ready(&t, true)).await?;
        self.remember_partitions(topic, n);
        Ok(())
    }
}

/// The offsets of an answer, indexed by partition; 0 where a partition has none (no record yet,
/// nothing committed yet).
fn per_partition(answer: &TopicPartitionList, partitions: u32) -> Vec<u64> {
    let mut out = vec![0u64; partitions as usize];
    for e in answer.elements() {
        if let (Offset::Offset(o), Some(slot)) = (e.offset(), out.get_mut(e.partition() as usize)) {
            *slot = o.max(0) as u64;
        }
    }
    out
}

/// Record headers as Kafka headers (binary-mode CloudEvents attributes among them).
pub fn kafka_headers(headers: &[(String, String)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |hs, (k, v)| {
            hs.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        },
    )
}

/// A consumed message as a [`Record`], with its topic named as we know it (`topic`).
/// Read the records of each partition in `ranges` (partition -> [from, end)) with one assignment
/// of the group-less reader: each partition's records in order, partitions interleaved, until
/// every range is read, the partition ends, or `sink` returns false. `topic` is the name
/// records are given, `name` the qualified one on the cluster.
fn read_ranges(
    reader: &BaseConsumer<LogContext>,
    topic: &str,
    name: &str,
    mut ranges: HashMap<i32, (u64, u64)>,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Result<(), LogError> {
    ranges.retain(|_, (from, end)| from < end);
    if ranges.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (&p, &(from, _)) in &ranges {
        tpl.add_partition_offset(name, p, Offset::Offset(from as i64))
            .map_err(kafka_err("assign"))?;
    }
    reader.assign(&tpl).map_err(kafka_err("assign"))?;
    let result = (|| {
        let mut idle_since = Instant::now();
        while !ranges.is_empty() {
            match reader.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if m.topic() != name {
                        continue;
                    }
                    let Some((at, end)) = ranges.get_mut(&m.partition()) else {
                        continue;
                    };
                    let o = m.offset() as u64;
                    if o < *at {
                        continue;
                    }
                    idle_since = Instant::now();
                    *at = o + 1;
                    if *at >= *end {
                        ranges.remove(&m.partition());
                    }
                    if !sink(to_record(&m, topic)) {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    ranges.remove(&p);
                }
                Some(Err(e)) if is_transient(&e) => {
                    tracing::debug!(error = %e, "read: transient error, still reading");
                }
                Some(Err(e)) => return Err(kafka_err("read")(e)),
                None => {}
            }
            if idle_since.elapsed() > REQUEST_TIMEOUT {
                return Err(LogError::Timeout {
                    op: "read",
                    seconds: REQUEST_TIMEOUT.as_secs(),
                });
            }
        }
        Ok(())
    })();
    unassign_and_drain(reader);
    result
}

/// Take the reader off its partitions and drop whatever it still had queued (records, and
/// end-of-partition events that name only a partition number), so none of it reaches the next
/// read. Bounded: a queue holds at most what was fetched.
fn unassign_and_drain(reader: &BaseConsumer<LogContext>) {
    let _ = reader.unassign();
    for _ in 0..100_000 {
        if reader.poll(Duration::ZERO).is_none() {
            break;
        }
    }
}

/// Every client's context but a group member's: it logs what librdkafka reports client-wide.
/// Reaching the end of a partition is how a read ends, not an error (librdkafka sometimes reports
/// it client-wide, for a partition of an earlier read). A transient error (a broker that is down)
/// is what the call that needed the broker reports, with the cause and a hint; logging it again
/// for every client and every retry would bury that message.
pub(crate) struct LogContext;

impl rdkafka::ClientContext for LogContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for LogContext {}

/// How a client-wide librdkafka error is logged, by every context of ours.
pub(crate) fn log_client_error(error: KafkaError, reason: &str) {
    let end_of_partition = matches!(
        error,
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    );
    if end_of_partition || is_transient(&error) {
        tracing::debug!(%error, %reason, "kafka client");
    } else {
        tracing::warn!(%error, %reason, "kafka client error");
    }
}

pub(crate) fn to_record(m: &BorrowedMessage<'_>, topic: &str) -> Record {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: topic.to_string(),
        partition: m.partition() as u32,
        offset: m.offset() as u64,
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        headers,
        payload: m.payload().unwrap_or_default().to_vec(),
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    fn describe(&self) -> String {
        self.shared.config.describe()
    }

    fn instance(&self) -> Option<String> {
        Some(self.identity())
    }

    /// The cluster's id (made when the cluster was formatted) and the namespace: two namespaces
    /// on one cluster are two logs.
    fn identity(&self) -> String {
        match &self.shared.config.namespace {
            Some(ns) => format!("kafka-{}-{ns}", self.cluster_id),
            None => format!("kafka-{}", self.cluster_id),
        }
    }

    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        self.shared.ensure_topic(topic).await
    }

    async fn append(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, LogError> {
        self.shared.ensure_topic(topic).await?;
        let name = self.shared.config.qualify(topic);
        let mut pending = Vec::with_capacity(records.len());
        for r in &records {
            let mut record = FutureRecord::to(&name)
                .key(r.key.as_bytes())
                .payload(&r.payload)
                .headers(kafka_headers(&r.headers));
            loop {
                match self.shared.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The producer's queue is full: wait for the brokers to take some.
                        record = back;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => return Err(kafka_err("produce")(e)),
                }
            }
        }
        let mut positions = Vec::with_capacity(pending.len());
        for delivery in pending {
            let delivered = delivery.await.map_err(|_| LogError::Closed)?;
            let d = delivered.map_err(|(e, _)| kafka_err("produce")(e))?;
            positions.push(Position {
                topic: topic.to_string(),
                partition: d.partition as u32,
                offset: d.offset as u64,
            });
        }
        Ok(positions)
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, LogError> {
        for t in topics {
            self.shared.ensure_topic(t).await?;
        }
        let sub = subscription::KafkaSubscription::join(&self.shared.config, group, topics)?;
        Ok(Box::new(sub))
    }

    async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        let (shared, topic) = (Arc::clone(&self.shared), topic.to_string());
        blocking(move || shared.end_offsets(&topic)).await
    }

    async fn commit_outside(&self, group: &str, positions: &[Position]) -> Result<(), LogError> {
        let (shared, group, positions) = (
            Arc::clone(&self.shared),
            group.to_string(),
            positions.to_vec(),
        );
        blocking(move || shared.commit_outside(&group, &positions)).await
    }

    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<u64>, LogError> {
        let shared = Arc::clone(&self.shared);
        let (group, topic) = (group.to_string(), topic.to_string());
        blocking(move || shared.committed(&group, &topic)).await
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        let (shared, topic) = (Arc::clone(&self.shared), topic.to_string());
        blocking(move || {
            let mut out = Vec::new();
            shared.read(&topic, partition, offset, max, &mut |r| {
                out.push(r);
                true
            })?;
            Ok(out)
        })
        .await
    }

    async fn topics(&self) -> Result<Vec<String>, LogError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            let md = shared
                .meta
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map_err(kafka_err("metadata request"))?;
            let mut names: Vec<String> = md
                .topics()
                .iter()
                .filter(|t| !t.name().starts_with("__"))
                .filter_map(|t| shared.config.unqualify(t.name()).map(str::to_string))
                .collect();
            names.sort();
            Ok(names)
        })
        .await
    }

    /// Stream the whole topic once with the group-less reader (all partitions in one
    /// assignment), a page at a time through a small channel.
    async fn for_each_record(
        &self,
        topic: &str,
        f: &mut (dyn FnMut(Record) + Send),
    ) -> Result<(), LogError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(4);
        let (shared, topic) = (Arc::clone(&self.shared), topic.to_string());
        let reading = tokio::task::spawn_blocking(move || {
            let mut page = Vec::with_capacity(1000);
            let mut open = true;
            let read = shared.read_all(&topic, &mut |r| {
                page.push(r);
                if page.len() == 1000 {
                    open = tx.blocking_send(std::mem::take(&mut page)).is_ok();
                }
                open
            });
            match read {
                // An unknown topic has no records.
                Err(LogError::UnknownTopic(_)) => return Ok(()),
                other => other?,
            }
            if open && !page.is_empty() {
                let _ = tx.blocking_send(page);
            }
            Ok::<_, LogError>(())
        });
        while let Some(page) = rx.recv().await {
            page.into_iter().for_each(&mut *f);
        }
        reading.await.map_err(|_| LogError::Closed)?
    }
}
