//! The read side of `returns serve`: `GET /returns/{id}`, `/teams`, `/stats`, `/metrics` and
//! `/healthz`, documented with `POST /returns` in `docs/openapi.json`.
//!
//! Everything here reads; nothing here decides. A return's status comes from User Support's
//! status view and the statistics from the analytics view: `returns serve` runs both views
//! continuously ([`ProjectionRunner::run`](returns_services::ProjectionRunner::run)), so an
//! answer is as fresh as the view's last poll (a fraction of a second behind the log) and costs
//! no catch-up. A return this server accepted whose request the view has not read yet is
//! answered as pending, never as unknown. The audit timeline is read straight from the log
//! ([`timeline`]); the teams' counts come from their in-memory [`TeamMetrics`] (this run) and
//! their positions and lag from the log (durable).
//!
//! The dashboard's side: `GET /events` (server-sent events, see [`crate::live`]),
//! `POST /teams/{team}/offline` and `/online` (a [`Supervisor`] stops the team's service or
//! starts it again), `GET /samples` (generated requests for the form), and `GET /compare` with
//! `/compare/chart.svg` (what the latest `returns compare` on this data directory found).
//!
//! Until the log answers, `/returns/{id}`, `/teams` and `/metrics` answer 503 `unavailable`,
//! and `/healthz` answers 503. `/stats` reads only the analytics view's file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use returns_domain::{Generator, ReturnId, Timestamp};
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_eventlog::{team_group, EventLog, RETURN_ORDERS};
use returns_services::team::supervisor::TeamState;
use returns_services::tools::audit::{timeline_at, AuditEntry};
use returns_services::views::analytics::{AnalyticsStore, Stats};
use returns_services::views::projection::{Projection, ViewStore, REACTING_TEAMS};
use returns_services::views::status::{ReturnStatus, Status, StatusStore, TeamStatus};
use returns_services::{ServiceError, Supervisor, TeamMetrics, TeamName};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::live::{Live, EVENTS_PATH};
use crate::{ErrorBody, ErrorDetail, Intake, RETURNS_PATH};

/// `GET` one return's status and timeline.
pub const RETURN_PATH: &str = "/returns/{id}";
pub const TEAMS_PATH: &str = "/teams";
pub const STATS_PATH: &str = "/stats";
pub const METRICS_PATH: &str = "/metrics";
pub const HEALTHZ_PATH: &str = "/healthz";
pub const OFFLINE_PATH: &str = "/teams/{team}/offline";
pub const ONLINE_PATH: &str = "/teams/{team}/online";
pub const SAMPLES_PATH: &str = "/samples";
pub const COMPARE_PATH: &str = "/compare";
pub const COMPARE_CHART_PATH: &str = "/compare/chart.svg";

/// Where `returns compare` leaves its latest result, under the data directory's `compare/`.
pub const LATEST_COMPARISON: &str = "latest.json";
/// And its chart.
pub const LATEST_CHART: &str = "latest.svg";
/// The most requests `GET /samples` generates at once.
pub const MAX_SAMPLES: u32 = 50;

/// Every route `returns serve` answers, as (method, path): the OpenAPI test checks the file
/// against this list and against the server.
pub const ROUTES: [(&str, &str); 14] = [
    ("POST", RETURNS_PATH),
    ("GET", RETURN_PATH),
    ("GET", TEAMS_PATH),
    ("GET", STATS_PATH),
    ("GET", METRICS_PATH),
    ("GET", HEALTHZ_PATH),
    ("GET", EVENTS_PATH),
    ("POST", OFFLINE_PATH),
    ("POST", ONLINE_PATH),
    ("GET", SAMPLES_PATH),
    ("GET", COMPARE_PATH),
    ("GET", COMPARE_CHART_PATH),
    ("GET", crate::dashboard::DASHBOARD_PATH),
    ("GET", crate::dashboard::ASSET_PATH),
];

/// The Prometheus text exposition format's content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long `/healthz` waits for the log.
const HEALTH_PATIENCE: Duration = Duration::from_secs(2);

/// What the read side reads: the data directory (the views' files), the log once it answers,
/// the teams' counters, and User Support's intake.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    described: String,
    log: OnceLock<Arc<dyn EventLog>>,
    teams: Vec<Arc<TeamMetrics>>,
    intake: Intake,
    supervisor: OnceLock<Arc<Supervisor>>,
    live: Arc<Live>,
    streams: CancellationToken,
    compare_dir: OnceLock<PathBuf>,
    /// The views' files, opened at the first read and kept (not opened per request).
    status: Mutex<Option<StatusStore>>,
    analytics: Mutex<Option<AnalyticsStore>>,
}

/// Run `read` on the view's store in `slot`, opening it first if this is the first read.
fn read_view<P: Projection, T>(
    slot: &Mutex<Option<ViewStore<P>>>,
    dir: &std::path::Path,
    read: impl FnOnce(&ViewStore<P>) -> Result<T, ServiceError>,
) -> Result<T, ServiceError> {
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    let store = match slot.take() {
        Some(store) => store,
        None => ViewStore::<P>::open(dir)?,
    };
    let answer = read(&store);
    *slot = Some(store);
    answer
}

impl Api {
    /// `described` names the log (without secrets) until it is open.
    pub fn new(
        data_dir: PathBuf,
        described: String,
        teams: Vec<Arc<TeamMetrics>>,
        intake: Intake,
    ) -> Api {
        let streams = CancellationToken::new();
        Api {
            inner: Arc::new(Inner {
                data_dir,
                described,
                log: OnceLock::new(),
                teams,
                intake,
                supervisor: OnceLock::new(),
                live: Arc::new(Live::new(streams.clone())),
                streams,
                compare_dir: OnceLock::new(),
                status: Mutex::new(None),
                analytics: Mutex::new(None),
            }),
        }
    }

    /// The log answered: from now on the routes that need it read it.
    pub fn log_opened(&self, log: Arc<dyn EventLog>) {
        let _ = self.inner.log.set(log);
    }

    /// The teams run under `supervisor`: `/teams` says which are online, and the dashboard can
    /// take them offline and back.
    pub fn teams_started(&self, supervisor: Arc<Supervisor>) {
        let _ = self.inner.supervisor.set(supervisor);
    }

    /// `GET /compare` reads `returns compare`'s latest result in `dir` (`<data>/compare`).
    pub fn with_compare_dir(self, dir: PathBuf) -> Api {
        let _ = self.inner.compare_dir.set(dir);
        self
    }

    /// The hub of `GET /events`: give [`Live::tap`] to the status view's runner.
    pub fn live(&self) -> &Arc<Live> {
        &self.inner.live
    }

    /// Send the dashboard's updates until [`Api::close_streams`].
    pub async fn live_updates(self) {
        let live = Arc::clone(&self.inner.live);
        live.run(self).await
    }

    /// End every `GET /events` stream (before a graceful shutdown, which waits for open
    /// connections).
    pub fn close_streams(&self) {
        self.inner.streams.cancel();
    }

    fn log(&self) -> Result<Arc<dyn EventLog>, ApiError> {
        self.inner
            .log
            .get()
            .cloned()
            .ok_or_else(|| ApiError::Unavailable(self.inner.described.clone()))
    }
}

/// The read routes, without fallbacks (merge them, then put [`crate::json_fallbacks`] around).
pub fn api_routes(api: Api) -> Router {
    Router::new()
        .route(RETURN_PATH, get(return_status))
        .route(TEAMS_PATH, get(teams))
        .route(STATS_PATH, get(stats))
        .route(METRICS_PATH, get(metrics))
        .route(HEALTHZ_PATH, get(healthz))
        .route(EVENTS_PATH, get(crate::live::events))
        .route(OFFLINE_PATH, post(offline))
        .route(ONLINE_PATH, post(online))
        .route(SAMPLES_PATH, get(samples))
        .route(COMPARE_PATH, get(compare))
        .route(COMPARE_CHART_PATH, get(compare_chart))
        .with_state(api)
}

/// Why a read got no answer, in the shape of every error: `{"error": {kind, field, message}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("`{0}` is not a return id (expected the request's return_id, a UUID)")]
    InvalidReturnId(String),
    #[error("no return {0} is known here: neither accepted by this server nor read from the log")]
    ReturnNotFound(String),
    #[error("no team `{0}` runs here (teams: {teams})", teams = TeamName::EVERY.map(TeamName::as_str).join(", "))]
    TeamNotFound(String),
    #[error("`count` must be a whole number from 1 to {MAX_SAMPLES}")]
    InvalidCount,
    #[error("no comparison yet: `returns compare` has not run with this data directory (hint: `returns compare --returns 1000 --outage manufacturing@2..6`)")]
    NoComparison,
    #[error("the log {0} is not reachable yet")]
    Unavailable(String),
    #[error("the log did not answer: {0}")]
    Log(String),
    /// A view's store failed; the cause (which names the file) goes to the server's log.
    #[error("the {0} could not be read; the cause is in the server's log")]
    Store(&'static str, #[source] ServiceError),
    /// A file could not be read; the cause (which names it) goes to the server's log.
    #[error("the {0} could not be read; the cause is in the server's log")]
    File(&'static str, #[source] std::io::Error),
}

impl ApiError {
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidReturnId(_) => "invalid_field",
            ApiError::ReturnNotFound(_) => "return_not_found",
            ApiError::TeamNotFound(_) => "team_not_found",
            ApiError::InvalidCount => "invalid_field",
            ApiError::NoComparison => "no_comparison",
            ApiError::Unavailable(_) | ApiError::Log(_) => "unavailable",
            ApiError::Store(..) | ApiError::File(..) => "store_failed",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidReturnId(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ReturnNotFound(_) | ApiError::TeamNotFound(_) | ApiError::NoComparison => {
                StatusCode::NOT_FOUND
            }
            ApiError::InvalidCount => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::Log(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(..) | ApiError::File(..) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Store(what, cause) => {
                tracing::error!(error = %cause, "reading the {what} failed")
            }
            ApiError::File(what, cause) => {
                tracing::error!(error = %cause, "reading the {what} failed")
            }
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind().to_string(),
                field: match self {
                    ApiError::InvalidReturnId(_) => Some("id".to_string()),
                    ApiError::InvalidCount => Some("count".to_string()),
                    ApiError::TeamNotFound(_) => Some("team".to_string()),
                    _ => None,
                },
                message: self.to_string(),
            },
        };
        (self.status(), Json(body)).into_response()
    }
}

/// `GET /returns/{id}`: the status view's answer and the log's timeline.
#[derive(Debug, Serialize)]
pub struct ReturnAnswer {
    #[serde(flatten)]
    pub status: ReturnStatus,
    /// Everything the log holds about the return, in causal order.
    pub timeline: Vec<AuditEntry>,
}

async fn return_status(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<ReturnAnswer>, ApiError> {
    let return_id: ReturnId = id
        .parse()
        .map_err(|_| ApiError::InvalidReturnId(id.chars().take(80).collect()))?;
    let log = api.log()?;
    let (reader, intake) = (api.clone(), api.inner.intake.store());
    let key = return_id.to_string();
    let (seen, accepted, located) = tokio::task::spawn_blocking(move || {
        let inner = &reader.inner;
        let (seen, located) = read_view(&inner.status, &inner.data_dir, |store| {
            Ok((
                store.status(&return_id)?,
                store.located(&return_id.to_string())?,
            ))
        })?;
        let accepted = match seen {
            Some(_) => false,
            None => intake
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .accepted(&key)?
                .is_some(),
        };
        Ok::<_, ServiceError>((seen, accepted, located))
    })
    .await
    .map_err(|_| ApiError::Store("status view", ServiceError::Task("status view")))?
    .map_err(|e| ApiError::Store("status view", e))?;
    let status = match seen {
        Some(status) => status,
        // Accepted here, not read by the view yet: every team is still to decide.
        None if accepted => ReturnStatus {
            return_id: return_id.to_string(),
            request: None,
            unreadable_request: None,
            teams: REACTING_TEAMS
                .iter()
                .map(|team| TeamStatus {
                    team,
                    status: Status::Pending,
                    decision: None,
                })
                .collect(),
            complete: false,
        },
        None => return Err(ApiError::ReturnNotFound(return_id.to_string())),
    };
    // Where the status view noted the return's records: read just those.
    let key = return_id.to_string();
    let timeline = timeline_at(log.as_ref(), &key, &located)
        .await
        .map_err(|e| ApiError::Log(e.to_string()))?;
    Ok(Json(ReturnAnswer { status, timeline }))
}

/// `GET /teams`.
#[derive(Debug, Serialize)]
pub struct TeamsAnswer {
    pub log: String,
    /// Records on `returnOrders`, all partitions together.
    pub end: u64,
    pub teams: Vec<TeamRow>,
}

/// One team: where its group stands on `returnOrders` (durable) and what it did this run.
#[derive(Debug, Serialize)]
pub struct TeamRow {
    pub team: &'static str,
    pub group: String,
    /// Committed offsets on `returnOrders`, summed over partitions.
    pub position: u64,
    /// Records on `returnOrders` the group has not committed yet.
    pub lag: u64,
    /// Events handled by this process (decided or dead-lettered), duplicates excluded.
    pub processed: u64,
    /// Of those decided, the rejections (business reasons).
    pub rejected: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    /// Whether the team's service runs (the dashboard can take it offline).
    pub online: bool,
    /// When it was last taken offline or brought back (RFC 3339); `null` if never.
    pub changed_at: Option<String>,
}

pub(crate) async fn team_rows(api: &Api) -> Result<TeamsAnswer, ApiError> {
    let log = api.log()?;
    let failed = |e: returns_eventlog::LogError| ApiError::Log(e.to_string());
    let ends = log.end_offsets(RETURN_ORDERS).await.map_err(failed)?;
    let mut teams = Vec::new();
    for metrics in &api.inner.teams {
        let group = team_group(metrics.team);
        let committed = log.committed(&group, RETURN_ORDERS).await.map_err(failed)?;
        let at = |p: usize| committed.get(p).copied().unwrap_or(0);
        let snapshot = metrics.snapshot();
        let state = match (api.inner.supervisor.get(), metrics.team.parse::<TeamName>()) {
            (Some(supervisor), Ok(team)) => supervisor.state(team),
            _ => None,
        };
        teams.push(TeamRow {
            online: state.is_some_and(|s| s.online),
            changed_at: state.and_then(|s| s.changed_at).and_then(rfc3339),
            team: metrics.team,
            position: committed.iter().sum(),
            lag: ends
                .iter()
                .enumerate()
                .map(|(p, end)| end.saturating_sub(at(p)))
                .sum(),
            group,
            processed: snapshot.processed,
            rejected: snapshot.rejections,
            duplicates: snapshot.duplicates_skipped,
            dead_lettered: snapshot.dead_lettered,
        });
    }
    Ok(TeamsAnswer {
        log: log.describe(),
        end: ends.iter().sum(),
        teams,
    })
}

async fn teams(State(api): State<Api>) -> Result<Json<TeamsAnswer>, ApiError> {
    team_rows(&api).await.map(Json)
}

fn rfc3339(t: time::OffsetDateTime) -> Option<String> {
    t.format(&Rfc3339).ok()
}

/// `POST /teams/{team}/offline` and `/online`.
#[derive(Debug, Serialize)]
pub struct TeamChange {
    pub team: &'static str,
    pub online: bool,
    /// False when the team already was in that state.
    pub changed: bool,
    pub changed_at: Option<String>,
}

async fn offline(api: State<Api>, team: Path<String>) -> Result<Json<TeamChange>, ApiError> {
    set_online(api, team, false).await
}

async fn online(api: State<Api>, team: Path<String>) -> Result<Json<TeamChange>, ApiError> {
    set_online(api, team, true).await
}

async fn set_online(
    State(api): State<Api>,
    Path(name): Path<String>,
    online: bool,
) -> Result<Json<TeamChange>, ApiError> {
    let team: TeamName = name
        .parse()
        .map_err(|_| ApiError::TeamNotFound(name.chars().take(40).collect()))?;
    let supervisor = api
        .inner
        .supervisor
        .get()
        .cloned()
        .ok_or_else(|| ApiError::Unavailable(api.inner.described.clone()))?;
    let change = supervisor
        .set_online(team, online)
        .await
        .map_err(|e| match e {
            ServiceError::UnknownTeam(name) => ApiError::TeamNotFound(name),
            e => ApiError::Store("team's service", e),
        })?;
    let TeamState { online, changed_at } = change.state;
    Ok(Json(TeamChange {
        team: team.as_str(),
        online,
        changed: change.changed,
        changed_at: changed_at.and_then(rfc3339),
    }))
}

/// `GET /samples?count=N`.
#[derive(Debug, Deserialize)]
pub struct SamplesQuery {
    pub count: Option<String>,
}

/// Generated requests, new return ids, requested now: what the dashboard's form starts from.
#[derive(Debug, Serialize)]
pub struct Samples {
    pub requests: Vec<RefundRequestV2>,
}

async fn samples(Query(query): Query<SamplesQuery>) -> Result<Json<Samples>, ApiError> {
    let count = match query.count {
        None => 1,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_SAMPLES).contains(&n) => n,
            _ => return Err(ApiError::InvalidCount),
        },
    };
    let now = Timestamp::from_unix_millis(
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
    );
    // Index 0 of a fresh seed never repeats an earlier order (a duplicate claim needs an
    // earlier index): each sample is a new return with a new order.
    let requests = (0..count)
        .map(|_| {
            let mut request = Generator::new(uuid::Uuid::new_v4().as_u64_pair().0).request(0);
            request.requested_at = now;
            RefundRequestV2::from(&request)
        })
        .collect();
    Ok(Json(Samples { requests }))
}

fn compare_file(api: &Api, name: &str) -> Option<PathBuf> {
    api.inner.compare_dir.get().map(|dir| dir.join(name))
}

async fn compare(State(api): State<Api>) -> Result<Response, ApiError> {
    let path = compare_file(&api, LATEST_COMPARISON).ok_or(ApiError::NoComparison)?;
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err::<Response, _>(ApiError::NoComparison)
        }
        Err(e) => return Err::<Response, _>(ApiError::File("latest comparison", e)),
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

async fn compare_chart(State(api): State<Api>) -> Result<Response, ApiError> {
    let path = compare_file(&api, LATEST_CHART).ok_or(ApiError::NoComparison)?;
    match tokio::fs::read(&path).await {
        Ok(svg) => Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::NoComparison),
        Err(e) => Err(ApiError::File("latest comparison's chart", e)),
    }
}

/// `GET /stats`: what `returns stats --json` reports, less its catch-up (the view runs
/// continuously here).
#[derive(Debug, Serialize)]
pub struct StatsAnswer {
    pub log: String,
    #[serde(flatten)]
    pub stats: Stats,
}

async fn stats(State(api): State<Api>) -> Result<Json<StatsAnswer>, ApiError> {
    let reader = api.clone();
    let stats = tokio::task::spawn_blocking(move || {
        let inner = &reader.inner;
        read_view(&inner.analytics, &inner.data_dir, |store| store.stats())
    })
    .await
    .map_err(|_| ApiError::Store("analytics view", ServiceError::Task("analytics view")))?
    .map_err(|e| ApiError::Store("analytics view", e))?;
    let log = match api.inner.log.get() {
        Some(log) => log.describe(),
        None => api.inner.described.clone(),
    };
    Ok(Json(StatsAnswer { log, stats }))
}

async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let answer = team_rows(&api).await?;
    Ok((
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        prometheus_text(&answer.teams),
    )
        .into_response())
}

/// The teams' rows in the Prometheus text exposition format (version 0.0.4).
pub fn prometheus_text(rows: &[TeamRow]) -> String {
    type Metric = (
        &'static str,
        &'static str,
        &'static str,
        fn(&TeamRow) -> u64,
    );
    const METRICS: [Metric; 5] = [
        (
            "returns_team_handled_total",
            "counter",
            "Events of returnOrders the team handled in this process (decided or dead-lettered), duplicates excluded.",
            |r| r.processed,
        ),
        (
            "returns_team_rejected_total",
            "counter",
            "Returns the team rejected for a business reason in this process.",
            |r| r.rejected,
        ),
        (
            "returns_team_dead_lettered_total",
            "counter",
            "Records the team could not read and dead-lettered in this process.",
            |r| r.dead_lettered,
        ),
        (
            "returns_team_duplicates_total",
            "counter",
            "Redelivered events the team skipped as already handled, in this process.",
            |r| r.duplicates,
        ),
        (
            "returns_team_lag",
            "gauge",
            "Records on returnOrders the team's consumer group has not committed yet.",
            |r| r.lag,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in METRICS {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for row in rows {
            // Team names are lower-case words: nothing to escape in a label value.
            out.push_str(&format!("{name}{{team=\"{}\"}} {}\n", row.team, value(row)));
        }
    }
    out
}

/// `GET /healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`, or `unavailable`.
    pub status: &'static str,
    /// The log, as it describes itself (never with secrets).
    pub log: String,
    /// Why the log is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

async fn healthz(State(api): State<Api>) -> (StatusCode, Json<Health>) {
    let unhealthy = |log: String, error: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                log,
                error: Some(error),
            }),
        )
    };
    let log = match api.log() {
        Ok(log) => log,
        Err(e) => return unhealthy(api.inner.described.clone(), e.to_string()),
    };
    // Listing the topics answers on a fresh log too, before any topic exists.
    match tokio::time::timeout(HEALTH_PATIENCE, log.topics()).await {
        Ok(Ok(_)) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                log: log.describe(),
                error: None,
            }),
        ),
        Ok(Err(e)) => unhealthy(log.describe(), e.to_string()),
        Err(_) => unhealthy(
            log.describe(),
            format!("no answer within {} s", HEALTH_PATIENCE.as_secs()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_one_sample_per_team() {
        let row = |team, lag| TeamRow {
            team,
            group: team_group(team),
            position: 7,
            lag,
            processed: 5,
            rejected: 1,
            duplicates: 2,
            dead_lettered: 0,
            online: true,
            changed_at: None,
        };
        let text = prometheus_text(&[row("sales", 0), row("inventory", 3)]);
        assert!(text.contains("# TYPE returns_team_lag gauge\n"), "{text}");
        assert!(text.contains("# TYPE returns_team_handled_total counter\n"));
        assert!(text.contains("returns_team_lag{team=\"inventory\"} 3\n"));
        assert!(text.contains("returns_team_duplicates_total{team=\"sales\"} 2\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 5);
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 10);
    }
}
