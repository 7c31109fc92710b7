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
    let mut best: std::collections::BTreeMap<(&str, u32), u64> = Default::default();
    for r in records {
        let next = best.entry((&r.topic, r.partition)).or_insert(0);
        *next = (*next).max(r.offset + 1);
    }
    best.into_iter()
        .map(|((topic, partition), offset)| Position {
            topic: topic.to_string(),
            partition,
            offset,
        })
        .collect()
}

/// Headers as stored in a SQLite column (the embedded log, the teams' outboxes): a JSON array of
/// `[name, value]` pairs, readable with the sqlite3 shell.
pub fn headers_to_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).expect("string pairs serialize")
}

/// Read back what [`headers_to_json`] wrote. An error means the column was corrupted.
pub fn headers_from_json(text: &str) -> Result<Vec<(String, String)>, serde_json::Error> {
    serde_json::from_str(text)
}

/// A column that does not hold what this build wrote into it.
pub fn corrupt_column(column: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}
