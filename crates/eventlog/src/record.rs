/// A record to append: a key (which picks the partition), headers and an opaque payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// A record read back from the log, with the place it sits at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// Absent for records written by tools that set none.
    pub key: Option<String>,
    /// When the log stored the record (unix milliseconds).
    pub timestamp_ms: i64,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Record {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The position just after this record: what a consumer commits once it is handled.
    pub fn next_position(&self) -> Position {
        Position {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset + 1,
        }
    }
}

/// A place in the log: for an append, where the record went; for a commit, the next offset the
/// group will read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

/// The positions to commit after handling `records`: the highest next offset per partition.
pub fn positions_after<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Position> {
    let mut best: std::collections::BTreeMap<(String, u32), u64> = Default::default();
    for r in records {
        let e = best.entry((r.topic.clone(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    best.into_iter()
        .map(|((topic, partition), offset)| Position {
            topic,
            partition,
            offset,
        })
        .collect()
}
