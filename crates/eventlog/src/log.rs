use std::time::Duration;

use async_trait::async_trait;

use crate::{LogError, OutRecord, Position, Record};

/// An append-only, partitioned log of records with consumer groups.
///
/// Every backend keeps these promises, checked by [`crate::conformance`]:
/// - records with the same key go to the same partition and are read in the order appended;
/// - each consumer group has its own committed position per partition, untouched by other groups;
/// - a new subscription of a group starts at the group's committed position, so whatever was read
///   and not committed is delivered again.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// The log's URL, without secrets, for messages and reports.
    fn describe(&self) -> String;

    /// For a log that lives outside the data directory, a name for this very log (Kafka: the
    /// cluster id and namespace), so that state built from one log is kept apart from state
    /// built from another. `None` for a log inside the data directory.
    fn instance(&self) -> Option<String> {
        None
    }

    /// A name for this very log, made when the log was created and the same at every open, so
    /// that state built from one log is never taken for state built from another (embedded:
    /// `sqlite-<uuid>`, kept in the log's file; Kafka: `kafka-<cluster id>[-<namespace>]`).
    fn identity(&self) -> String;

    /// Create the topic if it does not exist yet (with the backend's partition count).
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError>;

    /// Append records to a topic, in order, durably. Returns where each record went.
    async fn append(&self, topic: &str, records: Vec<OutRecord>)
        -> Result<Vec<Position>, LogError>;

    /// Record `positions` (next offsets) as `group`'s committed positions without joining the
    /// group: for a reader that keeps its own checkpoint and reads with [`EventLog::read`], so
    /// that the group's lag shows how far behind it is. Meant for a group with no members (a
    /// member's commit would overwrite it, and a broker may refuse it while members are in).
    async fn commit_outside(&self, group: &str, positions: &[Position]) -> Result<(), LogError>;

    /// Join `group` to read `topics`, starting from the group's committed positions.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, LogError>;

    /// The next offset to be written, per partition of the topic (index = partition).
    async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError>;

    /// The group's committed next offset per partition of the topic (0 where none).
    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<u64>, LogError>;

    /// Read up to `max` records of one partition, outside any group: the first `max` the log
    /// holds at or after `offset` (below the first record retention left, from that record).
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError>;

    /// Every topic in the log.
    async fn topics(&self) -> Result<Vec<String>, LogError>;

    /// Hand every record of a topic to `f`, a page at a time: the topic is streamed, never
    /// loaded whole. Each partition's records come in order; partitions may interleave. An
    /// unknown topic has no records.
    async fn for_each_record(
        &self,
        topic: &str,
        f: &mut (dyn FnMut(Record) + Send),
    ) -> Result<(), LogError> {
        let ends = match self.end_offsets(topic).await {
            Err(LogError::UnknownTopic(_)) => return Ok(()),
            other => other?,
        };
        for (partition, end) in ends.into_iter().enumerate() {
            let mut offset = 0;
            while offset < end {
                let page = self.read(topic, partition as u32, offset, 1000).await?;
                let Some(last) = page.last() else { break };
                offset = last.offset + 1;
                page.into_iter().for_each(&mut *f);
            }
        }
        Ok(())
    }

    /// How many records the group has yet to read on the topic.
    async fn lag(&self, group: &str, topic: &str) -> Result<u64, LogError> {
        let end = self.end_offsets(topic).await?;
        let committed = self.committed(group, topic).await?;
        Ok(end
            .iter()
            .enumerate()
            .map(|(p, e)| e.saturating_sub(committed.get(p).copied().unwrap_or(0)))
            .sum())
    }
}

/// One member of a consumer group.
#[async_trait]
pub trait Subscription: Send {
    /// Up to `max` records not yet returned by this subscription, waiting at most `timeout` for
    /// the first one. An empty batch means nothing arrived in time.
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, LogError>;

    /// Store the group's next positions. Call only once the effects of every record before them
    /// are durable.
    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError>;
}
