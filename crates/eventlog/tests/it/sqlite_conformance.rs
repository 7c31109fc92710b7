//! The conformance suite on the embedded SQLite backend: each check gets its own log file.

use std::sync::Arc;

use returns_eventlog::conformance::unique;
use returns_eventlog::sqlite::SqliteLog;
use returns_eventlog::EventLog;

async fn open() -> Arc<dyn EventLog> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(unique("conformance"))
        .join("log.db");
    Arc::new(SqliteLog::open(&path, 3).await.expect("open log"))
}

returns_eventlog::conformance_tests!(open());

/// Embedded-only: a group has one member at a time; a newer member fences off the older one, so
/// a member that lost its place cannot move the group's position.
#[tokio::test]
async fn a_newer_member_fences_off_the_older_one() {
    let log = open().await;
    let topic = unique("fence");
    let group = unique("g");
    log.append(
        &topic,
        vec![returns_eventlog::OutRecord {
            key: "k".into(),
            headers: vec![],
            payload: b"x".to_vec(),
        }],
    )
    .await
    .unwrap();
    let mut old = log.subscribe(&group, &[&topic]).await.unwrap();
    let got = returns_eventlog::conformance::poll_n(old.as_mut(), 1).await;
    let _new = log.subscribe(&group, &[&topic]).await.unwrap();
    let err = old
        .commit(&returns_eventlog::positions_after(&got))
        .await
        .unwrap_err();
    assert!(
        matches!(err, returns_eventlog::LogError::Fenced { .. }),
        "{err}"
    );
    assert_eq!(log.lag(&group, &topic).await.unwrap(), 1);
}

/// A log file's identity is made with the file and read back by every open; another file is
/// another log.
#[tokio::test]
async fn a_log_keeps_its_identity_and_another_file_has_another() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("identity"));
    let first = SqliteLog::open(&dir.join("one.db"), 3).await.unwrap();
    let identity = first.identity();
    assert!(identity.starts_with("sqlite-"), "{identity}");
    drop(first);
    let again = SqliteLog::open(&dir.join("one.db"), 3).await.unwrap();
    assert_eq!(again.identity(), identity);
    let other = SqliteLog::open(&dir.join("two.db"), 3).await.unwrap();
    assert_ne!(other.identity(), identity);
}
