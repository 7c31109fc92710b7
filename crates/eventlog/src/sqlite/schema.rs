use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::LogError;

/// Open a connection with the settings every connection to the log uses.
pub(super) fn connect(path: &Path) -> Result<Connection, LogError> {
    let open = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(open)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(open)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open)?;
    // FULL: an append or a commit is on disk before it returns, since a relay deletes its outbox
    // rows once the append returns. Group commit keeps it to one fsync per writer transaction.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open)?;
    // Reads go through a memory map and a larger page cache instead of a read() per page.
    conn.pragma_update(None, "mmap_size", 1i64 << 28)
        .map_err(open)?;
    // Checkpoint the WAL every ~40 MB rather than every 4 MB: fewer, larger copies.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .map_err(open)?;
    conn.pragma_update(None, "cache_size", -16_384)
        .map_err(open)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Creates the tables a new log needs, and the log's identity: made once, with the log, and
/// read back by every later open (two processes creating the file at once agree on one).
/// Returns the identity.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<String> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS identity (
             only INTEGER PRIMARY KEY CHECK (only = 1),
             id   TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS topics (
             id         INTEGER PRIMARY KEY,
             name       TEXT NOT NULL UNIQUE,
             partitions INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS records (
             topic_id  INTEGER NOT NULL,
             partition INTEGER NOT NULL,
             offset    INTEGER NOT NULL,
             key       TEXT,
             ts        INTEGER NOT NULL,
             headers   TEXT NOT NULL,
             payload   BLOB NOT NULL,
             PRIMARY KEY (topic_id, partition, offset)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS groups (
             name       TEXT PRIMARY KEY,
             generation INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS offsets (
             grp         TEXT NOT NULL,
             topic_id    INTEGER NOT NULL,
             partition   INTEGER NOT NULL,
             next_offset INTEGER NOT NULL,
             PRIMARY KEY (grp, topic_id, partition)
         ) WITHOUT ROWID;",
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO identity (only, id) VALUES (1, ?1)",
        [format!("sqlite-{}", uuid::Uuid::new_v4().simple())],
    )?;
    conn.query_row("SELECT id FROM identity WHERE only = 1", [], |r| r.get(0))
}
