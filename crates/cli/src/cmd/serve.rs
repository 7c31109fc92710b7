//! `returns serve`: User Support's intake (`POST /returns`), its relay, and the five teams, in
//! one process, until SIGINT or SIGTERM; with them, once the log answers, User Support's status
//! view and the analytics view, followed continuously, and the read side of the API
//! (`GET /returns/{id}`, `/teams`, `/stats`, `/metrics`, `/healthz`; see `returns_http::api`).
//!
//! The intake takes returns as soon as it listens, even while the log is down: they are accepted
//! into User Support's store and wait in its outbox. The log is opened in the background,
//! retried until it answers; then the relay publishes and the teams run. On a signal the server
//! stops taking requests and finishes those in flight, the relay empties the outbox if the log
//! takes it (what it cannot append stays for the next start), the teams finish and commit their
//! batch, and the process exits 0.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use returns_http::{
    api_routes, dashboard_routes, intake_routes, json_fallbacks, require_token, Api, Intake, Token,
};
use returns_services::pipeline::{RelayEnd, Running};
use returns_services::user_support::intake::USER_SUPPORT;
use returns_services::{Pipeline, TeamMetrics, TeamName};
use tokio_util::sync::CancellationToken;

use crate::cmd::publish::LogOpener;
use crate::config::Global;
use crate::shutdown;

/// How long requests in flight, and then the relay, may take to finish after a signal.
const GRACE: Duration = Duration::from_secs(10);
/// How long the log may stay silent before we say it is not reachable.
const PATIENCE: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (IP:PORT or HOST:PORT). Anything but loopback needs a token.
    #[arg(long, env = "RETURNS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The token every call but the dashboard's page and /healthz needs (`Authorization: Bearer
    /// <token>`, or the dashboard's cookie), at least 16 characters. Prefer the environment or
    /// --token-file: other users can read a command line.
    #[arg(long, env = "RETURNS_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// A file holding the token (surrounding whitespace is ignored).
    #[arg(long, env = "RETURNS_TOKEN_FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
}

/// A flag's secret value: `Debug` never shows it, and clap never echoes it (it cannot fail to
/// parse; it is checked afterwards).
#[derive(Clone)]
pub struct Secret(String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

fn token(args: &Args) -> anyhow::Result<Option<Token>> {
    let (text, from) = match (&args.token, &args.token_file) {
        (Some(Secret(text)), _) => (text.clone(), "--token (or RETURNS_TOKEN)".to_string()),
        (None, Some(path)) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, None) => return Ok(None),
    };
    // The error names where the token came from, never the token.
    Token::new(&text)
        .map(Some)
        .with_context(|| format!("the token from {from} is not usable"))
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let token = token(&args)?;
    let url = global.check_log_url()?;
    let described = global.describe_log();
    let listener = returns_http::listen(&args.listen, token.is_some()).await?;
    let local = listener.local_addr().context("the listening address")?;
    let shutdown = shutdown::on_signal();

    // Where the stores are when that is known before the log answers.
    let known = global.data_dir_without_log();
    let mut log = LogOpener::start(url, shutdown.clone(), known.clone());
    let data = match known {
        Some(dir) => dir,
        None => {
            eprintln!(
                "waiting for {described} to answer before serving: its stores are named by its \
                 cluster's id (hint: give --data DIR to take returns while the log is down)"
            );
            match log.wait(None).await? {
                Some(opened) => global.data_dir(opened.as_ref())?,
                None => return Ok(()),
            }
        }
    };
    log.bind_before_opening(&described).await?;
    let intake = Intake::open(&data)
        .with_context(|| format!("cannot open User Support's store in {}", data.display()))?;
    let teams: Vec<(TeamName, Arc<TeamMetrics>)> = TeamName::EVERY
        .into_iter()
        .map(|team| (team, Arc::new(TeamMetrics::new(team.as_str()))))
        .collect();
    let api = Api::new(
        data.clone(),
        described.clone(),
        teams.iter().map(|(_, m)| Arc::clone(m)).collect(),
        intake.clone(),
    )
    .with_compare_dir(global.data_root().join("compare"));
    let mut app = json_fallbacks(
        intake_routes(intake.clone())
            .merge(api_routes(api.clone()))
            .merge(dashboard_routes()),
    );
    let guarded = token.is_some();
    match token {
        Some(token) => app = require_token(app, token),
        // Loopback without a token: only to a loopback host name (no DNS rebinding).
        None => app = returns_http::require_loopback_host(app),
    }
    // Loopback too: a page of another origin must not post to it (no token there to stop it).
    let app = returns_http::refuse_cross_site_writes(app);
    let stop_http = CancellationToken::new();
    let mut http = tokio::spawn(returns_http::serve(listener, app, stop_http.clone()));
    let live = tokio::spawn(api.clone().live_updates());
    eprintln!(
        "listening on http://{local}: the dashboard at /; POST {} ({}), GET /returns/{{id}} \
         /teams /stats /metrics /healthz /events; log {described}; stores in {}",
        returns_http::RETURNS_PATH,
        if guarded {
            "calls need the token"
        } else {
            "loopback: no token"
        },
        data.display()
    );

    // The log, then the relay and the teams.
    let log = match log.wait(Some(PATIENCE)).await? {
        Some(opened) => Some(opened),
        None if shutdown.is_cancelled() => None,
        None => {
            eprintln!(
                "{described} is not reachable yet: returns are accepted and wait in User \
                 Support's outbox; retrying until it answers{}",
                log.last_error()
            );
            log.wait(None).await?
        }
    };
    let mut pipeline = None;
    if let Some(log) = &log {
        // The teams run under a supervisor: the dashboard can take one offline and back. The
        // views the read side answers from are followed rather than caught up per request; the
        // status view shows the dashboard's lanes what it reads.
        let running = Pipeline::new(
            Arc::clone(log),
            data.clone(),
            &intake
                .store()
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            intake.wake(),
        )?
        .with_teams(teams)
        .with_views()
        .with_status_tap(api.live().tap())
        .start();
        api.teams_started(Arc::clone(running.teams()));
        api.log_opened(Arc::clone(log));
        eprintln!(
            "{} answers: publishing accepted returns; the five teams and the two views run",
            log.describe()
        );
        pipeline = Some(running);
    }

    // Until a signal, or until something stops on its own (a failure).
    let failed = loop {
        if shutdown.is_cancelled() {
            break None;
        }
        if http.is_finished() {
            break Some("the HTTP server");
        }
        if let Some(part) = pipeline.as_ref().and_then(Running::stopped_on_its_own) {
            break Some(part);
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };

    // Stop taking requests and finish those in flight (the dashboard's streams end at once);
    // then the relay, the teams and the views.
    api.close_streams();
    stop_http.cancel();
    let served = tokio::time::timeout(GRACE, &mut http).await;
    if served.is_err() {
        http.abort();
        tracing::warn!("requests still in flight after the grace period were dropped");
    }
    let mut errors = Vec::new();
    if let Ok(Ok(Err(e))) = served {
        errors.push(format!("the HTTP server failed: {e}"));
    }
    if let Some(running) = pipeline {
        let stopped = running.stop(GRACE).await;
        match stopped.relay {
            // The log did not take the outbox: it stays there for the next start.
            RelayEnd::Left(e) if failed.is_none() => {
                tracing::info!(error = %e, "the relay stopped with records left");
            }
            RelayEnd::Left(e) => errors.push(format!("{USER_SUPPORT} failed: {e}")),
            RelayEnd::Emptied | RelayEnd::OutOfTime => {}
        }
        for (part, e) in stopped.failures {
            errors.push(format!("{part} failed: {e}"));
        }
    }
    let _ = live.await;
    let waiting = intake
        .store()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .waiting()?;
    if waiting > 0 {
        eprintln!(
            "stopped: {waiting} accepted return(s) wait in User Support's outbox for the next start"
        );
    } else {
        eprintln!("stopped: every accepted return is on the log");
    }
    if let Some(what) = failed {
        bail!(
            "{what} stopped on its own: {}",
            if errors.is_empty() {
                "no error given".to_string()
            } else {
                errors.join("; ")
            }
        );
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}
