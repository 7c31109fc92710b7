//! `returns demo`: User Support takes in N returns while the four teams handle them; then a
//! report of what each team did.
//!
//! The returns go the way every return goes: accepted into User Support's store with their
//! outgoing records (one transaction per chunk), then published by its relay.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use returns_domain::Generator;
use returns_eventlog::{team_group, EventLog, RETURN_ORDERS};
use returns_services::metrics::{new_histogram, Latency, TeamSnapshot};
use returns_services::pipeline::RelayEnd;
use returns_services::user_support::intake::USER_SUPPORT;
use returns_services::{IntakeStore, Pipeline, Publisher, TeamMetrics, TeamName};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Global;
use crate::shutdown;

/// Requests per intake transaction.
const PUBLISH_CHUNK: u64 = 2_000;
/// How long the relay may take to empty the outbox once the run is over (or interrupted).
const RELAY_GRACE: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many returns to publish.
    #[arg(long = "returns", short = 'n', default_value_t = 1000)]
    pub returns: u64,
    /// Seed of the return generator (the same seed gives the same returns).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub struct Report {
    pub returns: u64,
    pub log: String,
    pub seed: u64,
    /// Index of the first generated return: a run on a log that already has returns continues
    /// the generator where the log ends.
    pub first_index: u64,
    pub elapsed_ms: u64,
    pub publish_per_sec: f64,
    /// Returns through all four teams per second: what the team that processed fewest
    /// processed in this run. `None` (JSON `null`) when one of them processed nothing: a run
    /// that did no work has no throughput.
    pub returns_per_sec: Option<f64>,
    pub latency_ms: Latency,
    pub teams: BTreeMap<String, TeamReport>,
}

#[derive(Serialize)]
pub struct TeamReport {
    #[serde(flatten)]
    pub run: TeamSnapshot,
    /// Records of `returnOrders` the team has not committed yet.
    pub lag: u64,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let log = global.open_log().await?;
    let data = global.data_dir(log.as_ref())?;
    let store = IntakeStore::open(&data)
        .with_context(|| format!("cannot open User Support's store in {}", data.display()))?;
    // Records left in the outbox by an earlier run go first; the generator continues after them.
    let waiting = store.waiting()?;
    let first_index = Publisher::new(Arc::clone(&log)).records_on_topic().await? + waiting;
    let shutdown = shutdown::on_signal();
    let wake = Arc::new(Notify::new());
    let metrics: Vec<(TeamName, Arc<TeamMetrics>)> = TeamName::ALL
        .iter()
        .map(|t| (*t, Arc::new(TeamMetrics::new(t.as_str()))))
        .collect();
    let running = Pipeline::new(Arc::clone(&log), data.clone(), &store, Arc::clone(&wake))?
        .with_teams(metrics.iter().map(|(t, m)| (*t, Arc::clone(m))))
        .start();
    let store = Arc::new(std::sync::Mutex::new(store));

    let bars = Bars::new(args.returns, &metrics, args.json);
    let started = Instant::now();
    let generator = Generator::new(args.seed);
    let mut published = 0u64;
    let mut already_accepted = 0u64;
    while published < args.returns && !shutdown.is_cancelled() {
        let n = PUBLISH_CHUNK.min(args.returns - published);
        let start = first_index + published;
        let batch: Vec<_> = generator.requests(start..start + n).collect();
        let intake = Arc::clone(&store);
        let answers = tokio::task::spawn_blocking(move || {
            let mut store = intake.lock().unwrap_or_else(PoisonError::into_inner);
            store.accept(&batch)
        })
        .await
        .context("accepting returns")?
        .context("accepting returns into User Support's store")?;
        already_accepted += answers.iter().filter(|a| a.duplicate).count() as u64;
        wake.notify_one();
        published += n;
        bars.published.set_position(published);
        bars.tick(&metrics);
    }
    let publish_secs = started.elapsed().as_secs_f64();
    bars.published.finish();

    if already_accepted > 0 {
        eprintln!(
            "{already_accepted} of these returns were accepted before by User Support's store in \
             {} (not published again)",
            data.display()
        );
    }
    // Wait until User Support's outbox is empty (whoever emptied it) and every team has
    // committed everything on the topic.
    let mut failed = None;
    loop {
        bars.tick(&metrics);
        if shutdown.is_cancelled() {
            break;
        }
        if let Some(part) = running.stopped_on_its_own() {
            failed = Some(part);
            break;
        }
        let intake = Arc::clone(&store);
        let outbox_empty = tokio::task::spawn_blocking(move || {
            intake
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .nothing_waiting()
        })
        .await
        .context("reading User Support's store")??;
        if !outbox_empty {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let mut behind = 0;
        for (team, _) in &metrics {
            behind += log.lag(&team_group(team.as_str()), RETURN_ORDERS).await?;
        }
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    // The relay empties the outbox before it stops; if the log fails meanwhile, the rest stays
    // there for the next run. Then the teams finish and commit their batch.
    let stopped = running.stop(RELAY_GRACE).await;
    if let Some(part) = failed {
        let why: Vec<String> = stopped
            .failures
            .iter()
            .map(|(part, e)| format!("{part}: {e}"))
            .chain(match &stopped.relay {
                RelayEnd::Left(e) => Some(format!("{USER_SUPPORT}: {e}")),
                _ => None,
            })
            .collect();
        bail!(
            "{part} stopped before every return was handled: {}",
            if why.is_empty() {
                "no error given".to_string()
            } else {
                why.join("; ")
            }
        );
    }
    if let RelayEnd::Left(e) = &stopped.relay {
        eprintln!("User Support's relay stopped with records left in its outbox: {e}");
    }
    if let Some((part, e)) = stopped.failures.into_iter().next() {
        return Err(anyhow::Error::new(e).context(format!("{part} failed")));
    }
    bars.finish(&metrics);
    if shutdown.is_cancelled() {
        eprintln!("interrupted: teams committed what they handled; run again to continue");
    }

    let report = build_report(
        log.as_ref(),
        &args,
        first_index,
        published,
        publish_secs,
        elapsed,
        &metrics,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

async fn build_report(
    log: &dyn EventLog,
    args: &Args,
    first_index: u64,
    published: u64,
    publish_secs: f64,
    elapsed: Duration,
    metrics: &[(TeamName, Arc<TeamMetrics>)],
) -> anyhow::Result<Report> {
    let mut all = new_histogram();
    let mut teams = BTreeMap::new();
    for (team, m) in metrics {
        m.add_latencies_to(&mut all);
        teams.insert(
            team.to_string(),
            TeamReport {
                run: m.snapshot(),
                lag: log.lag(&team_group(team.as_str()), RETURN_ORDERS).await?,
            },
        );
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let through_all = teams.values().map(|t| t.run.processed).min().unwrap_or(0);
    Ok(Report {
        returns: published,
        log: log.describe(),
        seed: args.seed,
        first_index,
        elapsed_ms: elapsed.as_millis() as u64,
        publish_per_sec: (published as f64 / publish_secs.max(1e-9)).round(),
        returns_per_sec: (through_all > 0).then(|| (through_all as f64 / secs).round()),
        latency_ms: Latency::of(&all),
        teams,
    })
}

fn print_report(r: &Report) {
    println!(
        "{} returns on {} (seed {}, generator index {}..{})",
        r.returns,
        r.log,
        r.seed,
        r.first_index,
        r.first_index + r.returns
    );
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "team",
        "processed",
        "effects by kind",
        "rejections",
        "duplicates skipped",
        "dead-lettered",
        "lag",
        "p50 ms",
        "p99 ms",
    ]);
    for (name, t) in &r.teams {
        let effects = t
            .run
            .effects
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n");
        let rejections = if t.run.rejection_reasons.is_empty() {
            "0".to_string()
        } else {
            t.run
                .rejection_reasons
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        table.add_row(vec![
            Cell::new(name),
            Cell::new(t.run.processed).set_alignment(CellAlignment::Right),
            Cell::new(effects),
            Cell::new(rejections),
            Cell::new(t.run.duplicates_skipped).set_alignment(CellAlignment::Right),
            Cell::new(t.run.dead_lettered).set_alignment(CellAlignment::Right),
            Cell::new(t.lag).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", t.run.latency_ms.p50)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", t.run.latency_ms.p99)).set_alignment(CellAlignment::Right),
        ]);
    }
    println!("{table}");
    match r.returns_per_sec {
        Some(through) => println!(
            "{through:.0} returns/s through all four teams ({:.0} returns/s published); publish-to-team latency p50 {:.1} ms, p99 {:.1} ms; {:.2} s in all",
            r.publish_per_sec,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.elapsed_ms as f64 / 1000.0
        ),
        None => println!(
            "no return went through all four teams in this run: no throughput to report; {:.2} s in all",
            r.elapsed_ms as f64 / 1000.0
        ),
    }
}

/// Progress on stderr: one bar for publishing, one per team (hidden with --json or off a terminal).
struct Bars {
    _multi: MultiProgress,
    published: ProgressBar,
    teams: Vec<ProgressBar>,
}

impl Bars {
    fn new(total: u64, metrics: &[(TeamName, Arc<TeamMetrics>)], hidden: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        let style = ProgressStyle::with_template(
            "{prefix:>14} [{bar:40.cyan/blue}] {pos:>7}/{len:7} {per_sec:>12}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let bar = |name: &str| {
            let b = multi.add(ProgressBar::new(total));
            b.set_style(style.clone());
            b.set_prefix(name.to_string());
            b
        };
        let published = bar("user-support");
        let teams = metrics.iter().map(|(t, _)| bar(t.as_str())).collect();
        Bars {
            _multi: multi,
            published,
            teams,
        }
    }

    fn tick(&self, metrics: &[(TeamName, Arc<TeamMetrics>)]) {
        for (bar, (_, m)) in self.teams.iter().zip(metrics) {
            bar.set_position(m.processed());
        }
    }

    fn finish(&self, metrics: &[(TeamName, Arc<TeamMetrics>)]) {
        self.tick(metrics);
        for b in &self.teams {
            b.finish();
        }
    }
}
