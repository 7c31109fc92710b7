//! Issue 6's first fault test, on the real broker (`RETURNS_KAFKA_BOOTSTRAP`, a fresh namespace):
//! four `returns run TEAM` processes on one data directory while 20,000 returns are published in
//! chunks; team processes are killed with SIGKILL at random moments (a seeded schedule, the same
//! number of kills for every team) and restarted at once. At the end every team has exactly one
//! effect per return, and `returns replay` rebuilds the same state from each team's own topic,
//! with nothing left in an outbox.
//!
//! A kill only hits a process that has joined its consumer group, after a random delay from that
//! moment and, while chunks are still being published, once it has returns it has not finished
//! (a lag): so kills land in a process that is handling returns, never in one still starting up.
//! The test asserts that they did: most kills, and one of every team's at least, found a lag. A killed member stays in its group until its session
//! times out (10 s), so a restarted team waits about that long before it gets partitions back:
//! the kills of one team are about 10 s apart, and the returns are published over about 30 s.
//!
//! `RETURNS_KILL_SEED=N` replays another schedule (the seed is printed; the moments still depend
//! on timing, the order of the teams and the delays do not).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Teams, TEAMS};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use returns_domain::Generator;
use returns_eventlog::conformance::unique;
use returns_services::Publisher;

const RETURNS: u64 = 20_000;
const CHUNK: u64 = 1_000;
/// One chunk every 1.5 s: 20 chunks in 28.5 s.
const CHUNK_EVERY: Duration = Duration::from_millis(1_500);
/// 3 kills for each of the 4 teams: 12 in all.
const KILLS_PER_TEAM: u32 = 3;
/// Of the 12 kills, at least this many must hit a process with returns it had not finished (a
/// lag at the kill), and at least one of every team's. (A kill waits for a lag only while chunks
/// are still coming, and the team may finish them between that look and the kill: 10 of 12 in
/// a typical run.)
const MIN_KILLS_WITH_WORK: usize = 6;
/// A process may be killed this long (at most) after it got its partitions.
const MAX_DELAY_AFTER_ASSIGNED_MS: u64 = 1_500;
/// Between two kills (of any teams), at least 0.3 s and at most 1.2 s.
const KILL_GAP_MS: std::ops::Range<u64> = 300..1_200;
/// The whole test, from the first process to the last check.
const DEADLINE: Duration = Duration::from_secs(180);
const GENERATOR_SEED: u64 = 66;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
async fn teams_killed_at_random_moments_end_with_one_effect_per_return_and_replay_matches() {
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let seed: u64 = std::env::var("RETURNS_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let namespace = unique("kills");
    let url = format!("kafka://{}?namespace={namespace}", common::bootstrap());
    let log = returns_eventlog::open(&url).await.expect("open Kafka log");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let publisher = Publisher::new(Arc::clone(&log));
    publisher.records_on_topic().await.unwrap();
    let generator = Generator::new(GENERATOR_SEED);

    let mut teams = Teams::start(&url, &data, &dir.path().join("logs"));
    // When the current process of each team may be killed: set once it has its partitions.
    let mut killable_at: BTreeMap<&str, Option<Instant>> =
        TEAMS.iter().map(|t| (*t, None)).collect();
    // (team, seconds into the test, the team's lag on returnOrders at the kill)
    let mut kills: Vec<(&str, f64, u64)> = Vec::new();
    let chunks = RETURNS / CHUNK;
    let mut published = 0u64;
    let publishing_from = Instant::now();
    let mut next_kill_at = Instant::now();

    while published < chunks || kills.len() < (KILLS_PER_TEAM as usize) * TEAMS.len() {
        let now = Instant::now();
        assert!(
            now < deadline,
            "after {DEADLINE:?}: {published} of {chunks} chunks published, {} kills of {}: {:?}\n{}",
            kills.len(),
            KILLS_PER_TEAM as usize * TEAMS.len(),
            teams.kills(),
            teams.logs()
        );
        teams.assert_running();

        // Returns flow: every chunk that is due.
        while published < chunks && now >= publishing_from + CHUNK_EVERY * published as u32 {
            let batch: Vec<_> = generator
                .requests(published * CHUNK..(published + 1) * CHUNK)
                .collect();
            publisher.publish(&batch).await.expect("publish a chunk");
            published += 1;
        }

        // A process that got its partitions becomes killable after a random delay.
        for team in TEAMS {
            let at = killable_at.get_mut(team).unwrap();
            if at.is_none() && teams.get(team).assigned() {
                let delay = rng.random_range(0..=MAX_DELAY_AFTER_ASSIGNED_MS);
                *at = Some(now + Duration::from_millis(delay));
            }
        }

        // The next kill: a killable team among those killed least so far.
        if now >= next_kill_at {
            let mut candidates: Vec<&'static str> = Vec::new();
            for team in TEAMS {
                if teams.kills()[team] >= KILLS_PER_TEAM
                    || killable_at[team].is_none_or(|at| now < at)
                {
                    continue;
                }
                // While returns are still being published, a kill waits for the team to have
                // some it has not finished (the next chunk is at most 1.5 s away): a fast team
                // is otherwise often idle between chunks. After, any moment will do.
                if published < chunks && common::lag(&log, team).await.expect("read a lag") == 0 {
                    continue;
                }
                candidates.push(team);
            }
            let fewest = candidates.iter().map(|t| teams.kills()[t]).min();
            let least_killed: Vec<&'static str> = candidates
                .into_iter()
                .filter(|t| Some(teams.kills()[t]) == fewest)
                .collect();
            if let Some(team) = least_killed.choose(&mut rng).copied() {
                teams.kill_and_restart(team);
                // Read after the kill, the lag is what the killed process left unfinished: its
                // group's position cannot move until the next generation has its partitions
                // (after the dead member's session, seconds away), and nothing is published
                // before this read.
                let behind = common::lag(&log, team).await.expect("read a lag");
                killable_at.insert(team, None);
                kills.push((team, started.elapsed().as_secs_f64(), behind));
                next_kill_at =
                    Instant::now() + Duration::from_millis(rng.random_range(KILL_GAP_MS));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kills_done = started.elapsed();

    // Every team catches up (the last restarted ones wait out their dead member's session).
    common::wait_caught_up(&log, deadline, || teams.logs()).await;
    let caught_up = started.elapsed();
    // SIGTERM: each finishes its batch, drains its outbox (a killed generation may have left
    // rows there; the restarted one relays them) and exits 0.
    teams.stop_all();

    let ids: BTreeSet<String> = generator
        .requests(0..RETURNS)
        .map(|r| r.return_id.to_string())
        .collect();
    common::assert_one_effect_per_return(&data, &ids);
    let reports = common::assert_replay_matches(&url, &data, RETURNS);

    let per_team: Vec<String> = teams
        .kills()
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    let with_work = kills.iter().filter(|(_, _, behind)| *behind > 0).count();
    eprintln!(
        "kill_teams: seed {seed}; {RETURNS} returns; {} SIGKILLs ({}), {with_work} of them with \
         returns waiting; kills done at {:.1} s, all caught up at {:.1} s, checked at {:.1} s",
        kills.len(),
        per_team.join(", "),
        kills_done.as_secs_f64(),
        caught_up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for (team, at, behind) in &kills {
        eprintln!("kill_teams:   {at:6.1} s  {team:<13} lag {behind}");
    }
    for r in &reports {
        eprintln!(
            "kill_teams:   replay {:<13} {} events, {} records published twice (a kill between \
             append and delete), hash {}",
            r["team"].as_str().unwrap_or("?"),
            r["events"],
            r["duplicates"],
            r["live_hash"]
                .as_str()
                .and_then(|h| h.get(..12))
                .unwrap_or("?")
        );
    }
    // The kills were the planned ones, and they hit work in flight: processes killed with
    // returns they had not finished (a lag at the kill), at least one of every team's.
    assert_eq!(
        teams.kills().values().copied().collect::<Vec<_>>(),
        [KILLS_PER_TEAM; TEAMS.len()],
        "{per_team:?}"
    );
    assert!(
        with_work >= MIN_KILLS_WITH_WORK,
        "{with_work} of {} kills hit a process with returns unfinished, fewer than \
         {MIN_KILLS_WITH_WORK}: {kills:?}",
        kills.len()
    );
    for team in TEAMS {
        assert!(
            kills.iter().any(|(t, _, behind)| *t == team && *behind > 0),
            "no kill of {team} hit it with returns unfinished: {kills:?}"
        );
    }
}
