//! Dead letters put back in front of the teams after a fix (`returns dlq redrive`).
//!
//! A team dead-letters a record it cannot read (see [`crate::team::store`]). Once that is fixed (a new
//! build reads the version that was unknown, or a corrected record), [`redrive`] takes each
//! selected team's dead letters and appends them to `returnOrders` again:
//!
//! - **Where they go: `returnOrders`, under their original event id**, with the header
//!   [`REDRIVEN_FROM`] naming the dead letter (`topic/partition/offset`) and the `dlt_*` headers
//!   removed. Every team reads `returnOrders` already, so no team reads anything new, and the
//!   record is a redelivery of the same event: a team that decided it skips it as a duplicate;
//!   a team that had only dead-lettered it decides it now (its `processed` row turns from
//!   `dead_lettered` to `decided` in the transaction of the effect); a team that still cannot
//!   read it dead-letters it again, with today's reason. The cost: a record dead-lettered by
//!   one team is put in front of every team (harmless, by the dedup), and `--team` limits whose
//!   dead letters are taken, not who sees them. A per-team retry topic would have kept it to
//!   one team, but would have given every team a second input and the views a topic to miss.
//! - **The id is kept**: a record written without `ce_id` (a console producer) had an id derived
//!   from its place in the log; its dead letter's `dlt_original_event_id` becomes its `ce_id`.
//! - **Once per dead letter**: each dead-letter topic is read by its own consumer group,
//!   [`redrive_group`], committed after the append. A second run starts after the first; a run
//!   that dies between append and commit appends the same records again, which the teams skip
//!   by id (and a team that still cannot read them does not dead-letter that copy twice).
//! - A run takes the dead letters up to the topics' ends as they are when it starts, so records
//!   dead-lettered again meanwhile wait for the next run instead of going round in a loop.
//! - An event dead-lettered by several teams is appended once per run.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use returns_eventlog::envelope;
use returns_eventlog::{
    dead_letter_topic, positions_after, team_group, EventLog, LogError, OutRecord, Record,
    RETURN_ORDERS,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use crate::team::store::REDRIVEN_FROM;
use crate::{ServiceError, TeamName};

/// The header of a dead letter that names the event id it was read under.
pub const ORIGINAL_EVENT_ID: &str = "dlt_original_event_id";

const PAGE: usize = 1_000;
const POLL: Duration = Duration::from_millis(200);
/// A redrive whose group gets no record for this long, though records are left, gives up: on
/// Kafka another member of the group (a second `returns dlq redrive`) holds the partitions.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// A change made to each record before it is put back (a corrected upstream record). It gets
/// the dead letter (with the `dlt_*` headers naming the error) and the record to append.
pub type Fix<'a> = &'a (dyn Fn(&Record, &mut OutRecord) + Sync);

/// What to put back.
#[derive(Clone, Copy)]
pub struct RedriveOptions<'a> {
    /// Whose dead letters.
    pub teams: &'a [TeamName],
    /// Count what would be put back, and move nothing.
    pub dry_run: bool,
    /// Applied to each record before it is appended; `None` puts records back as they were
    /// (after a new build).
    pub fix: Option<Fix<'a>>,
}

/// One team's dead letters taken by a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TeamReplay {
    /// Dead letters put back (in a dry run: that would be).
    pub put_back: u64,
    /// Of those, records that had been put back before and were still unreadable then.
    pub repeats: u64,
    /// Per `dlt_error_kind`.
    pub by_kind: BTreeMap<String, u64>,
    /// Dead letters that name no event id (not written by a team), passed over.
    pub unusable: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    pub dry_run: bool,
    /// Per team asked for, by name.
    pub teams: BTreeMap<String, TeamReplay>,
    /// Records appended to `returnOrders` (in a dry run: that would be): one per event, however
    /// many of the teams had dead-lettered it.
    pub appended: u64,
    /// Stopped by shutdown before the end: what is not counted here is left for the next run.
    pub interrupted: bool,
}

/// The consumer group that reads a team's dead-letter topic to put it back.
pub fn redrive_group(team: TeamName) -> String {
    format!("dlq-redrive.{}", team_dead_letters(team))
}

/// A team's dead-letter topic.
pub fn team_dead_letters(team: TeamName) -> String {
    dead_letter_topic(RETURN_ORDERS, &team_group(team.as_str()))
}

/// The record to append for a dead letter, and the event id it goes under; `None` for a dead
/// letter that names no id.
pub fn record_to_put_back(letter: &Record) -> Option<(String, OutRecord)> {
    let id = letter
        .header(ORIGINAL_EVENT_ID)
        .or_else(|| letter.header(envelope::ID))?
        .to_string();
    let mut headers: Vec<(String, String)> = letter
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("dlt_") && k != REDRIVEN_FROM)
        .cloned()
        .collect();
    if !headers.iter().any(|(k, _)| k == envelope::ID) {
        headers.push((envelope::ID.to_string(), id.clone()));
    }
    headers.push((
        REDRIVEN_FROM.to_string(),
        format!("{}/{}/{}", letter.topic, letter.partition, letter.offset),
    ));
    let record = OutRecord {
        key: letter.key.clone().unwrap_or_else(|| id.clone()),
        headers,
        payload: letter.payload.clone(),
    };
    Some((id, record))
}

/// Put the selected teams' dead letters back on `returnOrders` (see the module's doc). On
/// shutdown it stops after the page in hand, committed, and says so in the report.
pub async fn redrive(
    log: &Arc<dyn EventLog>,
    options: RedriveOptions<'_>,
    shutdown: &CancellationToken,
) -> Result<RedriveReport, ServiceError> {
    let existing: HashSet<String> = log.topics().await?.into_iter().collect();
    let mut run = Run {
        log,
        options,
        appended: HashSet::new(),
        report: RedriveReport {
            dry_run: options.dry_run,
            ..RedriveReport::default()
        },
    };
    // Every topic's end is taken before anything is put back: what the teams dead-letter
    // again meanwhile is left for the next run.
    let mut ends = Vec::new();
    for &team in options.teams {
        let topic = team_dead_letters(team);
        let end = if existing.contains(&topic) {
            Some(log.end_offsets(&topic).await?)
        } else {
            None
        };
        ends.push((team, topic, end));
    }
    for (team, topic, end) in ends {
        let mut taken = TeamReplay::default();
        if let Some(end) = end.filter(|_| !run.report.interrupted) {
            if options.dry_run {
                run.count_pending(team, &topic, &end, &mut taken).await?;
            } else {
                run.put_back(team, &topic, &end, &mut taken, shutdown)
                    .await?;
            }
        }
        run.report.teams.insert(team.to_string(), taken);
    }
    run.report.appended = run.appended.len() as u64;
    Ok(run.report)
}

struct Run<'a> {
    log: &'a Arc<dyn EventLog>,
    options: RedriveOptions<'a>,
    /// Event ids appended (or that would be) by this run.
    appended: HashSet<String>,
    report: RedriveReport,
}

impl Run<'_> {
    /// Take one dead letter: count it, and give the record to append unless this run has
    /// appended its event already.
    fn take(&mut self, letter: &Record, taken: &mut TeamReplay) -> Option<OutRecord> {
        let Some((id, mut record)) = record_to_put_back(letter) else {
            taken.unusable += 1;
            return None;
        };
        taken.put_back += 1;
        taken.repeats += u64::from(letter.header(REDRIVEN_FROM).is_some());
        let kind = letter.header("dlt_error_kind").unwrap_or("unknown");
        *taken.by_kind.entry(kind.to_string()).or_default() += 1;
        if !self.appended.insert(id) {
            return None;
        }
        if let Some(fix) = self.options.fix {
            fix(letter, &mut record);
        }
        Some(record)
    }

    /// A dry run: read from the group's position to the end, outside the group.
    async fn count_pending(
        &mut self,
        team: TeamName,
        topic: &str,
        ends: &[u64],
        taken: &mut TeamReplay,
    ) -> Result<(), ServiceError> {
        let from = self.log.committed(&redrive_group(team), topic).await?;
        for (partition, &end) in ends.iter().enumerate() {
            let mut offset = from.get(partition).copied().unwrap_or(0);
            while offset < end {
                let page = self.log.read(topic, partition as u32, offset, PAGE).await?;
                let Some(last) = page.last() else { break };
                offset = last.offset + 1;
                for letter in page.iter().filter(|r| r.offset < end) {
                    self.take(letter, taken);
                }
            }
        }
        Ok(())
    }

    /// Read the topic as the team's redrive group up to `ends`; for each page, append, then
    /// commit.
    async fn put_back(
        &mut self,
        team: TeamName,
        topic: &str,
        ends: &[u64],
        taken: &mut TeamReplay,
        shutdown: &CancellationToken,
    ) -> Result<(), ServiceError> {
        let group = redrive_group(team);
        let mut next = self.log.committed(&group, topic).await?;
        next.resize(ends.len(), 0);
        let reached = |next: &[u64]| next.iter().zip(ends).all(|(n, e)| n >= e);
        if reached(&next) {
            return Ok(());
        }
        let mut sub = self.log.subscribe(&group, &[topic]).await?;
        let mut last_progress = tokio::time::Instant::now();
        while !reached(&next) {
            let polled = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.report.interrupted = true;
                    return Ok(());
                }
                polled = sub.poll(PAGE, POLL) => polled?,
            };
            let page: Vec<Record> = polled
                .into_iter()
                .filter(|r| r.offset < ends.get(r.partition as usize).copied().unwrap_or(0))
                .collect();
            if page.is_empty() {
                if last_progress.elapsed() > IDLE_LIMIT {
                    return Err(LogError::Timeout {
                        op: "read of a dead-letter topic by its redrive group (is another `returns dlq redrive` running?)",
                        seconds: IDLE_LIMIT.as_secs(),
                    }
                    .into());
                }
                continue;
            }
            last_progress = tokio::time::Instant::now();
            let mut out = Vec::new();
            for letter in &page {
                next[letter.partition as usize] =
                    next[letter.partition as usize].max(letter.offset + 1);
                out.extend(self.take(letter, taken));
            }
            if !out.is_empty() {
                self.log.append(RETURN_ORDERS, out).await?;
            }
            sub.commit(&positions_after(&page)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(headers: &[(&str, &str)]) -> Record {
        Record {
            topic: "returnOrders.returns.sales.dlt".into(),
            partition: 2,
            offset: 7,
            key: Some("R-1".into()),
            timestamp_ms: 0,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_record_without_an_id_is_put_back_under_the_id_it_was_read_under() {
        let (id, out) = record_to_put_back(&letter(&[
            ("dlt_error_kind", "malformed"),
            ("dlt_original_event_id", "derived-1"),
            ("dlt_original_offset", "3"),
        ]))
        .unwrap();
        assert_eq!(id, "derived-1");
        assert_eq!(out.key, "R-1");
        assert_eq!(out.payload, b"{}");
        assert_eq!(
            out.headers,
            vec![
                ("ce_id".to_string(), "derived-1".to_string()),
                (
                    REDRIVEN_FROM.to_string(),
                    "returnOrders.returns.sales.dlt/2/7".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_record_keeps_its_own_headers_and_loses_the_dead_letter_ones() {
        let (id, out) = record_to_put_back(&letter(&[
            ("ce_id", "e-1"),
            ("ce_type", "returns.RefundRequest.v9"),
            (REDRIVEN_FROM, "returnOrders.returns.sales.dlt/0/1"),
            ("dlt_error_kind", "unknown_version"),
            ("dlt_original_event_id", "e-1"),
        ]))
        .unwrap();
        assert_eq!(id, "e-1");
        let names: Vec<&str> = out.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["ce_id", "ce_type", REDRIVEN_FROM]);
        assert_eq!(out.headers[2].1, "returnOrders.returns.sales.dlt/2/7");
    }

    #[test]
    fn a_dead_letter_that_names_no_id_is_not_put_back() {
        assert!(record_to_put_back(&letter(&[("dlt_error_kind", "malformed")])).is_none());
    }
}
