//! The dashboard at `/`: one HTML page, its stylesheet and its script, compiled into the binary
//! (`crates/http/assets/`), so it works offline and needs no CDN. It reads the same API as any
//! client: `GET /events` (server-sent events: the teams' rows and the records the status view
//! reads), `/stats`, `/returns/{id}`, `/compare`, `/samples`; and writes through `POST /returns`
//! and `POST /teams/{team}/{offline|online}`.
//!
//! With `RETURNS_DASHBOARD_DIR` set, the three files are read from that directory on every
//! request instead (edit, reload; for working on the page).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// `GET /`: the page.
pub const DASHBOARD_PATH: &str = "/";
/// `GET /assets/{file}`: its stylesheet and script.
pub const ASSET_PATH: &str = "/assets/{file}";

/// (name, content type, embedded content)
const FILES: [(&str, &str, &str); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
];

/// The page's routes, without fallbacks.
pub fn dashboard_routes() -> Router {
    Router::new()
        .route(DASHBOARD_PATH, get(|| async { file("index.html") }))
        .route(
            ASSET_PATH,
            get(|Path(name): Path<String>| async move { file(&name) }),
        )
}

fn file(name: &str) -> Response {
    let Some((name, content_type, embedded)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return crate::HttpError::NotFound(format!("/assets/{name}")).into_response();
    };
    let body = match std::env::var_os("RETURNS_DASHBOARD_DIR") {
        Some(dir) => match std::fs::read_to_string(std::path::Path::new(&dir).join(name)) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(file = name, error = %e, "RETURNS_DASHBOARD_DIR: serving the built-in copy");
                embedded.to_string()
            }
        },
        None => embedded.to_string(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, *content_type),
            // A new binary may bring a new page: the browser asks again, cheaply.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
