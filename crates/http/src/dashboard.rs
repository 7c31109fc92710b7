//! The dashboard at `/`: one HTML page, its stylesheet and its script, compiled into the binary
//! (`crates/http/assets/`), so it works offline and needs no CDN. It reads the same API as any
//! client: `GET /events` (server-sent events: the teams' rows and the records the status view
//! reads), `/stats`, `/returns/{id}`, `/compare`, `/samples`; and writes through `POST /returns`
//! and `POST /teams/{team}/{offline|online}`.
//!
//! With `RETURNS_DASHBOARD_DIR` set, the three files are read from that directory on every
//! request instead (edit, reload; for working on the page).
//!
//! The page carries the teams ([`TeamName::EVERY`], in a `<script type="application/json"
//! id="teams">`), so the script draws a lane per team without a list of its own.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use returns_services::TeamName;
use serde_json::json;

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
    let body = if *name == "index.html" {
        body.replace(TEAMS_MARK, &teams_json())
    } else {
        body
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

/// Where the page takes the teams.
const TEAMS_MARK: &str = "{{teams}}";

/// Every team, in order, as the page draws it: `id`, `name`, what it `produces`, and whether it
/// is `late` (acts on nothing; nobody waits for it).
fn teams_json() -> String {
    let teams: Vec<_> = TeamName::EVERY
        .into_iter()
        .map(|team| {
            let id = team.as_str();
            let mut name = id.to_string();
            name[..1].make_ascii_uppercase();
            json!({"id": id, "name": name, "produces": team.produces(), "late": team.is_late()})
        })
        .collect();
    // Inside a <script> element: no `<` can end it early.
    json!(teams).to_string().replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_page_names_every_team_and_which_are_late() {
        let page = file("index.html").into_body();
        let body = axum::body::to_bytes(page, usize::MAX).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let start = body
            .find(r#"<script type="application/json" id="teams">"#)
            .unwrap();
        let json = &body[start..];
        let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
        let teams: serde_json::Value = serde_json::from_str(json).unwrap();
        let ids: Vec<&str> = teams
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, TeamName::names(TeamName::EVERY));
        assert_eq!(teams[0]["name"], "Sales");
        assert_eq!(teams[4]["late"], true);
        assert_eq!(teams[3]["late"], false);
        assert!(!body.contains(TEAMS_MARK));
    }
}
