//! `returns compare`: the traditional model and the event-sourced one, side by side, on the same
//! generated returns and the same fault schedule, started on the same clock.
//!
//! - Traditional: each team serves its endpoint on 127.0.0.1 (`returns_http`); User Support
//!   (`returns_http::orchestrator`) calls the four in turn for every return. An outage makes the
//!   team's endpoint refuse (503).
//! - Event-sourced: User Support accepts the request into its own store with its outgoing record
//!   (the outbox, as `serve` and `publish` do) and is done; its relay publishes to
//!   `returnOrders`, and the four teams run as consumer groups. An outage stops the team's subscriber; it starts again when the outage
//!   ends and reads from its committed position.
//!
//! Both models get their own stores (`<data>/compare/<run>/{traditional,event-sourced}`), so
//! their final states can be compared team by team.

mod chart;
mod report;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use returns_domain::Generator;
use returns_eventlog::{team_group, EventLog, RETURN_ORDERS};
use returns_http::orchestrator::{CallPolicy, Orchestrator, Submission};
use returns_services::pipeline::RelayEnd;
use returns_services::{
    FaultPlan, Pipeline, Publisher, RunClock, Supervisor, TeamFaultState, TeamMetrics, TeamName,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Global;
use crate::shutdown;
use report::Comparison;

/// How long User Support's relay may take to empty its outbox once the run is over.
const RELAY_GRACE: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many returns User Support submits to each model.
    #[arg(long, default_value_t = 1_000)]
    pub returns: u64,
    /// Returns submitted per second (the same schedule for both models).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// TEAM[@START..END]: the team is down from START to END seconds; without a window, for as
    /// long as returns are being submitted. Repeatable.
    #[arg(long = "outage", value_name = "TEAM[@START..END]")]
    pub outages: Vec<String>,
    /// TEAM=MS: every call to the team (traditional) or batch it handles (event-sourced) takes
    /// MS longer. Repeatable.
    #[arg(long = "latency", value_name = "TEAM=MS")]
    pub latencies: Vec<String>,
    /// TEAM=P: each call (traditional) or batch (event-sourced) fails with probability P.
    #[arg(long = "error-rate", value_name = "TEAM=P")]
    pub error_rates: Vec<String>,
    /// Seed of the generated returns and of the error draws.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// After the last return and the last fault, how long the event-sourced teams may take to
    /// catch up before the run is reported as it stands.
    #[arg(long, default_value_t = 120)]
    pub settle_secs: u64,
    /// Print one JSON object: {"traditional": {...}, "event_sourced": {...}}.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG chart of returns completed over time, fault windows marked.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
}

impl Args {
    fn plan(&self) -> anyhow::Result<FaultPlan> {
        let mut plan = FaultPlan::default();
        for o in &self.outages {
            plan.add_outage(o)?;
        }
        for l in &self.latencies {
            plan.add_latency(l)?;
        }
        for e in &self.error_rates {
            plan.add_error_rate(e)?;
        }
        Ok(plan)
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    if args.returns == 0 || !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--returns must be at least 1 and --rate a positive number");
    }
    let plan = args.plan()?;
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let base = global.data_root().join("compare").join(&run_id);
    let trad_dir = base.join("traditional");
    let es_dir = base.join("event-sourced");
    let url = log_url(global.log.as_deref(), &es_dir, &run_id);
    // The error names the log without its secrets (the URL may carry a password).
    let log = returns_eventlog::open(&url)
        .await
        .map_err(|e| global.log_error(e))?;
    let interrupted = shutdown::on_signal();
    let comparison = Runner {
        args: &args,
        plan,
        log,
        trad_dir,
        es_dir,
        interrupted,
    }
    .run()
    .await?;
    keep_latest(&global.data_root().join("compare"), &comparison)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        report::print(&comparison);
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, chart::svg(&comparison))
            .with_context(|| format!("cannot write the chart to {}", path.display()))?;
        if !args.json {
            eprintln!("chart written to {}", path.display());
        }
    }
    Ok(())
}

/// Leave the result where `returns serve` shows it (`GET /compare`): `<data>/compare/latest.json`
/// (the `--json` object, with `finished_at` and `chart`) and `latest.svg`, each replaced whole
/// (written aside, then renamed), so a reader never sees half a file.
fn keep_latest(dir: &Path, comparison: &Comparison) -> anyhow::Result<()> {
    let mut json = serde_json::to_value(comparison)?;
    json["finished_at"] = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)?
        .into();
    json["chart"] = returns_http::api::COMPARE_CHART_PATH.into();
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(name);
        let aside = dir.join(format!(".{name}.new"));
        std::fs::write(&aside, bytes)
            .and_then(|()| std::fs::rename(&aside, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write(
        returns_http::api::LATEST_CHART,
        chart::svg(comparison).as_bytes(),
    )?;
    write(
        returns_http::api::LATEST_COMPARISON,
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )
}

/// The event-sourced model's log: the one given (a Kafka log gets a namespace of its own, so
/// each comparison starts from empty topics), or a fresh SQLite file in the run's directory.
fn log_url(given: Option<&str>, es_dir: &Path, run_id: &str) -> String {
    match given {
        Some(url) if url.starts_with("kafka://") && !url.contains("namespace=") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}namespace=compare-{run_id}")
        }
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", es_dir.join("log.db").display()),
    }
}

struct Runner<'a> {
    args: &'a Args,
    plan: FaultPlan,
    log: Arc<dyn EventLog>,
    trad_dir: PathBuf,
    es_dir: PathBuf,
    interrupted: CancellationToken,
}

/// One return's journey through one model, as User Support saw it.
struct Submitted {
    return_id: String,
    /// When User Support took the return, since the clock started.
    submitted_at: Duration,
    latency: Duration,
    accepted: bool,
}

impl Runner<'_> {
    async fn run(self) -> anyhow::Result<Comparison> {
        let stop = CancellationToken::new();
        // Fault windows count from here, when both models are being set up; the teams' start
        // (a group join on Kafka) is part of the run, as it would be for a real deployment.
        let clock = RunClock::start();

        // Traditional: one HTTP server per team.
        let mut servers = Vec::new();
        let mut endpoints = Vec::new();
        for team in TeamName::ALL {
            let faults = self.plan.for_team(team, &clock, self.args.seed);
            let router = returns_http::team_router(team, &self.trad_dir, faults)
                .with_context(|| format!("cannot open the traditional {team} store"))?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            endpoints.push((team, format!("http://{addr}{}", returns_http::path(team))));
            servers.push(tokio::spawn(returns_http::serve(
                listener,
                router,
                stop.clone(),
            )));
        }
        let orchestrator = Orchestrator::new(endpoints, CallPolicy::default());

        // Event-sourced: User Support accepts into its own store, and its relay publishes; a
        // supervisor per team starts and stops its subscriber.
        Publisher::new(Arc::clone(&self.log))
            .records_on_topic()
            .await?;
        let intake = returns_http::Intake::open(&self.es_dir)
            .context("cannot open the event-sourced User Support's store")?;
        let schedules: Vec<(TeamName, TeamFaultState)> = TeamName::ALL
            .into_iter()
            .map(|team| (team, self.plan.for_team(team, &clock, self.args.seed)))
            .collect();
        let running = Pipeline::new(
            Arc::clone(&self.log),
            self.es_dir.clone(),
            &intake
                .store()
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            intake.wake(),
        )?
        .with_scheduled_teams(schedules.iter().map(|(team, faults)| {
            (
                *team,
                Arc::new(TeamMetrics::new(team.as_str())),
                faults.clone(),
            )
        }))
        .start();
        // Each team is offline while its schedule says it is down.
        let outages = tokio::spawn(follow_outages(
            Arc::clone(running.teams()),
            schedules,
            stop.clone(),
        ));

        // User Support submits the same return to both models at the same moment.
        let generator = Generator::new(self.args.seed);
        let mut trad_tasks = Vec::new();
        let mut es_tasks = Vec::new();
        let started = clock.started();
        for i in 0..self.args.returns {
            if self.interrupted.is_cancelled()
                || outages.is_finished()
                || running.stopped_on_its_own().is_some()
            {
                break;
            }
            let due = started + Duration::from_secs_f64(i as f64 / self.args.rate);
            tokio::time::sleep_until(due.into()).await;
            let request = generator.request(i);
            let submitted_at = due - started;
            let o = orchestrator.clone();
            let r = request.clone();
            trad_tasks.push(tokio::spawn(async move {
                let s: Submission = o.submit(&r).await;
                Submitted {
                    return_id: s.return_id.clone(),
                    submitted_at,
                    latency: s.latency,
                    accepted: s.is_complete(),
                }
            }));
            let (store, wake) = (intake.store(), intake.wake());
            es_tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let return_id = request.return_id.to_string();
                let accepted = tokio::task::spawn_blocking(move || {
                    store
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .accept(std::slice::from_ref(&request))
                        .is_ok()
                })
                .await
                .unwrap_or(false);
                if accepted {
                    wake.notify_one();
                }
                Submitted {
                    return_id,
                    submitted_at,
                    latency: t.elapsed(),
                    accepted,
                }
            }));
        }
        let trad = join_all(trad_tasks).await?;
        let es = join_all(es_tasks).await?;
        clock.mark_submitted();

        // Wait for the faults to end and the event-sourced teams to catch up.
        let faults_end = self.plan.faults_end(&clock).unwrap_or_default();
        let deadline =
            started + faults_end.max(clock.elapsed()) + Duration::from_secs(self.args.settle_secs);
        loop {
            if self.interrupted.is_cancelled()
                || Instant::now() > deadline
                || running.stopped_on_its_own().is_some()
            {
                break;
            }
            // On the blocking pool: the submissions hold the same store there.
            let store = intake.store();
            let sent = tokio::task::spawn_blocking(move || {
                store
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .nothing_waiting()
            })
            .await
            .context("User Support's store")??;
            if clock.elapsed() >= faults_end && sent && self.total_lag().await? == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        outages.await.context("the outage schedule panicked")??;
        if let Some(part) = running.stopped_on_its_own() {
            bail!("{part} stopped on its own");
        }
        let stopped = running.stop(RELAY_GRACE).await;
        // A log that refuses the records (too large, say) leaves them in the outbox: the report
        // counts those returns as accepted and never complete, rather than being lost itself.
        if let RelayEnd::Left(e) = &stopped.relay {
            let waiting = intake
                .store()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .waiting()?;
            eprintln!(
                "warning: User Support's relay stopped with {waiting} return(s) not published: {e}"
            );
        }
        if let Some((part, e)) = stopped.failures.into_iter().next() {
            return Err(anyhow::Error::new(e).context(format!("the {part} team failed")));
        }
        for s in servers {
            s.await.context("a team server panicked")??;
        }

        let start_unix_ms = unix_ms_now() - started.elapsed().as_millis() as i64;
        report::build(report::Inputs {
            returns: self.args.returns,
            plan: &self.plan,
            clock: &clock,
            faults_end,
            start_unix_ms,
            trad,
            es,
            trad_dir: &self.trad_dir,
            es_dir: &self.es_dir,
            log: self.log.describe(),
        })
    }

    async fn total_lag(&self) -> anyhow::Result<u64> {
        let mut lag = 0;
        for team in TeamName::ALL {
            lag += self
                .log
                .lag(&team_group(team.as_str()), RETURN_ORDERS)
                .await?;
        }
        Ok(lag)
    }
}

/// Takes each event-sourced team offline while its schedule says it is down, and back online
/// after, until `stop`.
async fn follow_outages(
    teams: Arc<Supervisor>,
    schedules: Vec<(TeamName, TeamFaultState)>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    while !stop.is_cancelled() {
        // A team that failed is not taken offline and back as if nothing happened: the run
        // would report a model that lost a team as a valid one.
        if let Some(team) = teams.stopped_on_its_own() {
            bail!("the {team} team stopped on its own during the run");
        }
        for (team, faults) in &schedules {
            let up = !faults.is_down();
            if teams.state(*team).is_some_and(|s| s.online != up) {
                teams.set_online(*team, up).await.with_context(|| {
                    format!(
                        "cannot take the {team} team {}",
                        if up { "online" } else { "offline" }
                    )
                })?;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    Ok(())
}

async fn join_all(tasks: Vec<JoinHandle<Submitted>>) -> anyhow::Result<Vec<Submitted>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.context("a submission panicked")?);
    }
    Ok(out)
}

fn unix_ms_now() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
