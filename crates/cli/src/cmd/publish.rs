//! `returns publish`: User Support takes in returns from the command line.
//!
//! The returns are first **accepted** into User Support's own store (`<data>/user-support.db`),
//! each with the record that announces it, in one transaction; then its relay publishes the
//! outbox to `returnOrders` until it is empty. The log may be down: the returns stay accepted
//! and waiting, and the relay retries until the log answers (Ctrl-C leaves them in the outbox
//! for the next run, or for `returns serve`). A return accepted before is a duplicate and is
//! not published again. A return id accepted before with a different request stops the publish
//! with an error naming it: the transaction of its chunk (up to 5,000 returns, so the whole of
//! any smaller file) rolls back and none of those returns is accepted; chunks accepted before
//! it stay accepted and are published by the next run. `--raw` lines skip all this: they are appended as they are, as Kafka's
//! console producer would.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use returns_domain::{Generator, RefundRequest};
use returns_eventlog::wire;
use returns_eventlog::{EventLog, OutRecord, RETURN_ORDERS};
use returns_services::user_support::intake::USER_SUPPORT;
use returns_services::{open_log_when_reachable, Acceptance, IntakeStore, Publisher, TeamMetrics};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Global;
use crate::shutdown;

/// Requests per intake transaction.
const ACCEPT_CHUNK: usize = 5_000;
/// How long the generator waits for the log to say where `returnOrders` ends.
const START_PROBE: Duration = Duration::from_secs(5);
/// How long the log may stay silent before we say it is not reachable.
const PATIENCE: Duration = Duration::from_secs(2);
/// How long a command waits for the log before it opens a store in a data directory it knows
/// without the log: a log that answers by then has the directory bound before anything is
/// written in it; one that answers later, before anything is sent to it.
pub(crate) const BIND_PROBE: Duration = Duration::from_secs(1);
/// After Ctrl-C, how long an append already under way may take to finish.
const GRACE: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many generated returns to publish (ignored with --file). `-n 0` publishes only what
    /// waits in User Support's outbox.
    #[arg(long = "returns", short = 'n', default_value_t = 1)]
    pub returns: u64,
    /// Seed of the return generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First generator index (default: continue where `returnOrders` ends once User Support's
    /// outbox is published; while the log does not answer, after the returns User Support has
    /// accepted).
    #[arg(long)]
    pub from_index: Option<u64>,
    /// Publish the requests in this file instead: one RefundRequest JSON object per line, v2
    /// (with a `reason`) or v1 (with a bare `defect`); each is published as v2.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// With --file: append each line as it is, unchecked, without headers and without User
    /// Support's store, as Kafka's console producer would (to see how the teams deal with bad
    /// input).
    #[arg(long, requires = "file")]
    pub raw: bool,
    /// Accept the returns into User Support's outbox and stop there: a later `returns publish`
    /// (`-n 0` to add none) or `returns serve` publishes them.
    #[arg(long, conflicts_with = "raw")]
    pub no_wait: bool,
    /// Print a JSON summary (with each return's id, event id and whether it was a duplicate).
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Summary {
    log: String,
    /// Returns accepted now.
    accepted: u64,
    /// Returns accepted before: not published again.
    duplicates: u64,
    /// Records this run appended to `returnOrders` (earlier runs' waiting records included).
    published: u64,
    /// Accepted returns still waiting in User Support's outbox for the log.
    waiting: u64,
    returns: Vec<ReturnAnswer>,
}

#[derive(Serialize)]
struct ReturnAnswer {
    return_id: String,
    event_id: String,
    duplicate: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    if args.raw {
        let path = args.file.as_deref().expect("clap: --raw requires --file");
        return publish_raw(global, path, args.json).await;
    }
    let requests = match &args.file {
        Some(path) => Some(read_requests(path)?),
        None => None,
    };
    let url = global.check_log_url()?;
    let described = global.describe_log();
    let shutdown = shutdown::on_signal();
    // Where the stores are when that is known before the log answers.
    let known = global.data_dir_without_log();
    let mut log = LogOpener::start(url, shutdown.clone(), known.clone());

    let data = match known {
        Some(dir) => dir,
        None if args.no_wait => bail!(
            "cannot accept returns with --no-wait for {described} without --data: the stores of a \
             Kafka log are named by its cluster's id (hint: give --data DIR)"
        ),
        None => {
            eprintln!(
                "waiting for {described} to answer: its stores are named by its cluster's id \
                 (hint: give --data DIR to accept returns while the log is down)"
            );
            match log.wait(None).await? {
                Some(opened) => global.data_dir(opened.as_ref())?,
                None => return Ok(()),
            }
        }
    };
    log.bind_before_opening(&described).await?;
    let store = IntakeStore::open(&data)
        .with_context(|| format!("cannot open User Support's store in {}", data.display()))?;
    let store = Arc::new(Mutex::new(store));

    let requests = match requests {
        Some(requests) => requests,
        None => {
            let start = match args.from_index {
                Some(i) => i,
                None => generator_start(&mut log, &store).await?,
            };
            Generator::new(args.seed)
                .requests(start..start + args.returns)
                .collect()
        }
    };
    // With the log already open, the relay publishes while the rest is still being accepted.
    let mut relaying = None;
    if !args.no_wait {
        if let Some(opened) = log.wait(Some(Duration::ZERO)).await? {
            relaying = Some(Relaying::start(&store, opened)?);
        }
    }
    let answers = accept(&store, requests, relaying.as_ref()).await?;
    let accepted = answers.iter().filter(|a| !a.duplicate).count() as u64;
    let duplicates = answers.len() as u64 - accepted;
    let waiting = blocking(&store, IntakeStore::waiting).await?;
    let path = lock(&store).path().to_path_buf();
    if !args.json {
        println!(
            "accepted {accepted} return(s) ({duplicates} duplicate(s) of returns accepted \
             before) into User Support's store {}",
            path.display()
        );
    }

    let published = if args.no_wait {
        0
    } else {
        let run = RelayRun {
            described: &described,
            quiet: args.json,
            shutdown: &shutdown,
        };
        relay_until_empty(&mut log, &store, relaying, waiting, run).await?
    };
    let waiting = blocking(&store, IntakeStore::waiting).await?;
    if args.json {
        let summary = Summary {
            log: described,
            accepted,
            duplicates,
            published,
            waiting,
            returns: answers
                .into_iter()
                .map(|a| ReturnAnswer {
                    return_id: a.return_id,
                    event_id: a.event_id,
                    duplicate: a.duplicate,
                })
                .collect(),
        };
        println!("{}", serde_json::to_string(&summary)?);
    } else if !args.no_wait {
        println!("published {published} record(s) to {RETURN_ORDERS} on {described}");
    }
    if waiting > 0 {
        eprintln!(
            "{waiting} accepted return(s) wait in User Support's outbox ({}); `returns publish -n 0` \
             or `returns serve` with the same --data and --log publishes them",
            path.display()
        );
    }
    Ok(())
}

/// The log, opened in the background and retried until it answers or we stop (also used by
/// `returns serve`).
pub(crate) struct LogOpener {
    task: Option<JoinHandle<Option<Arc<dyn EventLog>>>>,
    log: Option<Arc<dyn EventLog>>,
    last_error: Arc<Mutex<Option<String>>>,
    /// The data directory opened before the log answered, bound to the log when it does.
    data: Option<PathBuf>,
}

impl LogOpener {
    /// Start opening `url` (checked by [`Global::check_log_url`]). `data`: the data directory
    /// in use before the log answers, if any; [`LogOpener::wait`] binds it to the log
    /// ([`returns_services::data_dir::bind`]) before handing the log out.
    pub(crate) fn start(url: String, shutdown: CancellationToken, data: Option<PathBuf>) -> Self {
        let last_error = Arc::new(Mutex::new(None));
        let heard = Arc::clone(&last_error);
        let task = tokio::spawn(async move {
            // The URL was checked: only a cancel ends this without a log.
            open_log_when_reachable(&url, &shutdown, |e| {
                tracing::info!(error = %e, "the event log does not answer yet; retrying");
                *heard.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
            })
            .await
            .ok()
            .flatten()
        });
        LogOpener {
            task: Some(task),
            log: None,
            last_error,
            data,
        }
    }

    /// The log, once it answers; waiting at most `limit` (for ever with `None`). `None` if it has
    /// not answered by then, or we are stopping. An error if the data directory in use is
    /// another log's.
    pub(crate) async fn wait(
        &mut self,
        limit: Option<Duration>,
    ) -> anyhow::Result<Option<Arc<dyn EventLog>>> {
        if let Some(task) = self.task.as_mut() {
            let opened = match limit {
                Some(limit) => match tokio::time::timeout(limit, &mut *task).await {
                    Ok(opened) => opened,
                    Err(_) => return Ok(None),
                },
                None => task.await,
            };
            self.task = None;
            let opened = opened.ok().flatten();
            if let (Some(log), Some(data)) = (&opened, &self.data) {
                returns_services::data_dir::bind(data, log.as_ref())?;
            }
            self.log = opened;
        }
        Ok(self.log.clone())
    }

    /// Before a store is opened in the data directory known without the log: the log that
    /// answers within [`BIND_PROBE`] has the directory bound (or refused) by [`Self::wait`]. A
    /// log that does not answer cannot be checked: a directory already bound to a log
    /// described otherwise (`described`) is then refused, since accepting returns there would
    /// send them to that other log later.
    pub(crate) async fn bind_before_opening(&mut self, described: &str) -> anyhow::Result<()> {
        if self.wait(Some(BIND_PROBE)).await?.is_some() {
            return Ok(());
        }
        let Some(data) = &self.data else {
            return Ok(());
        };
        if let Some(bound) = returns_services::data_dir::bound_to(data)? {
            if bound.log != described {
                anyhow::bail!(
                    "the data directory {} holds state built from the event log {}, and {described} \
                     does not answer, so it cannot be checked to be that log (hint: give this log \
                     a data directory of its own with --data DIR, or wait until it answers)",
                    data.display(),
                    bound.log
                );
            }
        }
        Ok(())
    }

    /// Why the last try failed, for a message: ` (last try: ...)`, or nothing before the first
    /// failure.
    pub(crate) fn last_error(&self) -> String {
        match &*self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(e) => format!(" (last try: {e})"),
            None => String::new(),
        }
    }
}

/// Where generated returns continue: where `returnOrders` will end once User Support's outbox
/// is published; if the log does not answer soon, after every return User Support accepted.
async fn generator_start(
    log: &mut LogOpener,
    store: &Arc<Mutex<IntakeStore>>,
) -> anyhow::Result<u64> {
    match log.wait(Some(START_PROBE)).await? {
        Some(log) => {
            let on_topic = Publisher::new(log).records_on_topic().await?;
            Ok(on_topic + blocking(store, IntakeStore::waiting).await?)
        }
        None => {
            let accepted = blocking(store, IntakeStore::accepted_count).await?;
            eprintln!(
                "the log did not answer within {} s: generated returns continue after the \
                 {accepted} User Support has accepted",
                START_PROBE.as_secs()
            );
            Ok(accepted)
        }
    }
}

async fn accept(
    store: &Arc<Mutex<IntakeStore>>,
    requests: Vec<RefundRequest>,
    relaying: Option<&Relaying>,
) -> anyhow::Result<Vec<Acceptance>> {
    let mut answers = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(ACCEPT_CHUNK) {
        let chunk = chunk.to_vec();
        let store = Arc::clone(store);
        let mut accepted = tokio::task::spawn_blocking(move || lock(&store).accept(&chunk))
            .await
            .context("accepting returns")?
            .context("accepting returns into User Support's store")?;
        answers.append(&mut accepted);
        if let Some(relaying) = relaying {
            relaying.wake.notify_one();
        }
    }
    Ok(answers)
}

/// User Support's relay, running.
struct Relaying {
    task: JoinHandle<Result<(), returns_services::ServiceError>>,
    stop: CancellationToken,
    wake: Arc<Notify>,
    metrics: Arc<TeamMetrics>,
}

impl Relaying {
    fn start(store: &Mutex<IntakeStore>, log: Arc<dyn EventLog>) -> anyhow::Result<Relaying> {
        let metrics = Arc::new(TeamMetrics::new(USER_SUPPORT));
        let wake = Arc::new(Notify::new());
        let relay = lock(store).relay(log, Arc::clone(&wake), Arc::clone(&metrics))?;
        let stop = CancellationToken::new();
        Ok(Relaying {
            task: tokio::spawn(relay.run(stop.clone())),
            stop,
            wake,
            metrics,
        })
    }
}

/// How `relay_until_empty` talks and stops.
struct RelayRun<'a> {
    described: &'a str,
    quiet: bool,
    shutdown: &'a CancellationToken,
}

/// Run the relay (`relaying`, or one started once the log answers) until the outbox is empty,
/// or until Ctrl-C (then the rest stays in the outbox). Returns how many records it appended.
async fn relay_until_empty(
    log: &mut LogOpener,
    store: &Arc<Mutex<IntakeStore>>,
    relaying: Option<Relaying>,
    waiting: u64,
    run: RelayRun<'_>,
) -> anyhow::Result<u64> {
    let RelayRun {
        described,
        quiet,
        shutdown,
    } = run;
    let relaying = match relaying {
        Some(relaying) => relaying,
        None if waiting == 0 => return Ok(0),
        None => {
            let opened = match log.wait(Some(PATIENCE)).await? {
                Some(opened) => Some(opened),
                None if shutdown.is_cancelled() => None,
                None => {
                    eprintln!(
                        "{described} is not reachable: {waiting} accepted return(s) wait in User \
                         Support's outbox; retrying until it answers (Ctrl-C leaves them there, \
                         safe, for the next run){}",
                        log.last_error()
                    );
                    log.wait(None).await?
                }
            };
            let Some(opened) = opened else {
                return Ok(0);
            };
            Relaying::start(store, opened)?
        }
    };
    let Relaying {
        mut task,
        stop: stop_relay,
        metrics,
        ..
    } = relaying;
    let done_before = metrics.snapshot().relayed;
    let bar = progress(done_before + waiting, quiet);
    let mut last_progress = (0, Instant::now());
    let mut said_stalled = false;
    loop {
        let relayed = metrics.snapshot().relayed;
        bar.set_position(relayed);
        if relayed != last_progress.0 {
            last_progress = (relayed, Instant::now());
        } else if !said_stalled && last_progress.1.elapsed() > Duration::from_secs(10) {
            said_stalled = true;
            bar.suspend(|| {
                eprintln!(
                    "{described} is not taking records: the relay retries; the returns stay \
                     accepted (Ctrl-C leaves them in the outbox)"
                )
            });
        }
        if task.is_finished() || shutdown.is_cancelled() {
            break;
        }
        // Empty is the end, whoever emptied it: another process's relay on the same outbox may
        // have sent some of these, so this relay's own count need not reach `waiting`.
        if blocking(store, IntakeStore::nothing_waiting).await? {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    // A stopping relay empties the outbox unless an append fails; an append already under way
    // gets a moment, then is dropped (its records stay in the outbox; a repeat carries the same
    // event ids, which the teams drop).
    stop_relay.cancel();
    let finished = tokio::time::timeout(GRACE, &mut task).await;
    if finished.is_err() {
        task.abort();
    }
    bar.finish_and_clear();
    match finished {
        Ok(Ok(Ok(()))) | Err(_) => {}
        Ok(Ok(Err(e))) if shutdown.is_cancelled() || e.is_transient() => {
            tracing::info!(error = %e, "the relay stopped with records left");
        }
        Ok(Ok(Err(e))) => return Err(e).context("User Support's relay failed"),
        Ok(Err(e)) => return Err(e).context("User Support's relay panicked"),
    }
    Ok(metrics.snapshot().relayed)
}

fn progress(total: u64, hidden: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>14} [{bar:40.cyan/blue}] {pos:>7}/{len:7} {per_sec:>12}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix("published");
    bar
}

fn lock(store: &Mutex<IntakeStore>) -> std::sync::MutexGuard<'_, IntakeStore> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ask the store something on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: &Arc<Mutex<IntakeStore>>,
    ask: fn(&IntakeStore) -> Result<T, returns_services::ServiceError>,
) -> anyhow::Result<T> {
    let store = Arc::clone(store);
    Ok(tokio::task::spawn_blocking(move || ask(&lock(&store)))
        .await
        .context("reading User Support's store")??)
}

async fn publish_raw(global: &Global, path: &Path, json: bool) -> anyhow::Result<()> {
    let log = global.open_log().await?;
    let records = read_lines(path)?
        .into_iter()
        .map(|(n, line)| OutRecord {
            key: format!("line-{n}"),
            headers: Vec::new(),
            payload: line.into_bytes(),
        })
        .collect();
    let positions = log.append(RETURN_ORDERS, records).await?;
    if json {
        let out: Vec<_> = positions
            .iter()
            .map(|p| serde_json::json!({"topic": p.topic, "partition": p.partition, "offset": p.offset}))
            .collect();
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "published {} record(s) to {RETURN_ORDERS} on {}",
            positions.len(),
            log.describe()
        );
    }
    Ok(())
}

/// The requests of a file of v2 or v1 lines, each checked; a bad line is named by its place.
fn read_requests(path: &Path) -> anyhow::Result<Vec<RefundRequest>> {
    let mut requests = Vec::new();
    for (n, line) in read_lines(path)? {
        let req = wire::decode_untyped_refund_request(line.as_bytes())
            .with_context(|| format!("{}:{n}: not a valid RefundRequest", path.display()))?;
        requests.push(req);
    }
    Ok(requests)
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if !line.trim().is_empty() {
            out.push((i + 1, line));
        }
    }
    if out.is_empty() {
        bail!(
            "{} has no records (one JSON object per line expected)",
            path.display()
        );
    }
    Ok(out)
}
