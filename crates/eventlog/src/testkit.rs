//! A log that wraps another for tests (feature `testkit`): implement [`Wrapper`] with the
//! wrapped log in [`Wrapper::inner`], override only the calls to meddle with (fail an append,
//! hang it, answer a stale position), and the type is an [`EventLog`] that passes every other
//! call through.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{EventLog, LogError, OutRecord, Position, Record, Subscription};

/// What a wrapping test log changes; every method passes the call to [`Wrapper::inner`]
/// unless overridden.
#[async_trait]
pub trait Wrapper: Send + Sync + 'static {
    /// The log every call goes to.
    fn inner(&self) -> &Arc<dyn EventLog>;

    fn describe(&self) -> String {
        format!("wrapped {}", self.inner().describe())
    }
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        self.inner().ensure_topic(topic).await
    }
    async fn append(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, LogError> {
        self.inner().append(topic, records).await
    }
    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, LogError> {
        self.inner().subscribe(group, topics).await
    }
    async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        self.inner().end_offsets(topic).await
    }
    async fn commit_outside(&self, group: &str, positions: &[Position]) -> Result<(), LogError> {
        self.inner().commit_outside(group, positions).await
    }
    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<u64>, LogError> {
        self.inner().committed(group, topic).await
    }
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        self.inner().read(topic, partition, offset, max).await
    }
    async fn topics(&self) -> Result<Vec<String>, LogError> {
        self.inner().topics().await
    }
}

#[async_trait]
impl<W: Wrapper> EventLog for W {
    fn describe(&self) -> String {
        Wrapper::describe(self)
    }
    fn instance(&self) -> Option<String> {
        self.inner().instance()
    }
    fn identity(&self) -> String {
        self.inner().identity()
    }
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        Wrapper::ensure_topic(self, topic).await
    }
    async fn append(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, LogError> {
        Wrapper::append(self, topic, records).await
    }
    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, LogError> {
        Wrapper::subscribe(self, group, topics).await
    }
    async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        Wrapper::end_offsets(self, topic).await
    }
    async fn commit_outside(&self, group: &str, positions: &[Position]) -> Result<(), LogError> {
        Wrapper::commit_outside(self, group, positions).await
    }
    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<u64>, LogError> {
        Wrapper::committed(self, group, topic).await
    }
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        Wrapper::read(self, topic, partition, offset, max).await
    }
    async fn topics(&self) -> Result<Vec<String>, LogError> {
        Wrapper::topics(self).await
    }
}
