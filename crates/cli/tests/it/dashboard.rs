//! The dashboard of `returns serve`, end to end in a real headless Chromium driven through
//! chromedriver (WebDriver, by fantoccini).
//!
//! A fresh server on its own log opens the page; the test submits a return with the form and
//! sees it in every team's lane and its timeline complete; takes Manufacturing offline with the
//! keyboard (Tab onto its toggle, Enter) and sends a burst of returns: Manufacturing's lag grows by
//! the burst while Sales, Inventory and Accounting handle every one of them; brings it back
//! online with a click and sees it catch up, then checks `GET /teams` says the same. At every
//! step it saves a screenshot (`target/dashboard-screenshots/<sqlite|kafka>/NN-step.png`), and
//! it checks that the page has no horizontal scroll at 1280x800 nor at 400x800.
//!
//! The page is read through the `data-*` attributes it promises (`data-testid`, `data-lag`,
//! `data-handled`, ...), polled every 150 ms with a deadline; a wait that runs out names what it
//! waited for and what the page showed last, saves a screenshot, and adds the server's log.
//!
//! It runs only when `RETURNS_CHROMEDRIVER` names a chromedriver at build time (`bash
//! scripts/test.sh` installs Debian's chromium and chromium-driver and sets it); the Kafka
//! variant also needs `RETURNS_KAFKA_BOOTSTRAP`. Without them the tests are listed as ignored.

use crate::common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_ports, Sandbox, Served, TEAMS};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long one wait for the page may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// How often a wait looks at the page.
const POLL: Duration = Duration::from_millis(150);
/// Returns sent while Manufacturing is offline.
const BURST: u64 = 10;
/// The team taken offline.
const OFFLINE: &str = "manufacturing";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs chromedriver: run `bash scripts/test.sh`, or set RETURNS_CHROMEDRIVER"
)]
async fn the_dashboard_on_the_embedded_log() {
    the_dashboard_shows_teams_react_fall_behind_and_catch_up(Sandbox::new(None), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs chromedriver: run `bash scripts/test.sh`, or set RETURNS_CHROMEDRIVER"
)]
#[cfg_attr(
    all(browser_tests, not(kafka_broker)),
    ignore = "needs a Kafka broker: run `bash scripts/test.sh`, or set RETURNS_KAFKA_BOOTSTRAP"
)]
async fn the_dashboard_on_kafka() {
    the_dashboard_shows_teams_react_fall_behind_and_catch_up(Sandbox::kafka("dashboard"), "kafka")
        .await;
}

async fn the_dashboard_shows_teams_react_fall_behind_and_catch_up(sandbox: Sandbox, variant: &str) {
    let started = Instant::now();
    let server = sandbox.serve(DEADLINE);
    let mut driver = Chromedriver::start();
    let page = Page::new(driver.session().await, &server, variant).await;

    // Loaded: connected, every team online with its numbers, the form filled with a sample.
    page.goto("/").await;
    let loaded = page
        .wait(
            "the page connected (live open), every team lane online with data-lag and \
             data-handled, and the form prefilled",
            "const s = {live: attr('[data-testid=live]', 'state'), teams: teams(),
                        end: attr('[data-testid=lane-requests]', 'end'),
                        prefilled: !!$('form[data-testid=submit-form]') &&
                            [...$('form[data-testid=submit-form]').elements]
                                .some(e => e.tagName !== 'BUTTON' && e.value),
                        submit: !!$('[data-testid=submit]') && !$('[data-testid=submit]').disabled};
             const ok = s.live === 'open' && s.end !== null && s.prefilled && s.submit &&
                 REACTING.every(t => s.teams[t] && s.teams[t].online === 'true' &&
                     s.teams[t].lag !== null && s.teams[t].handled !== null);
             return {ok, state: s};",
            json!(null),
        )
        .await;
    page.no_horizontal_scroll().await;
    page.shot("loaded").await;

    // One return through the form reaches all four teams.
    page.click("[data-testid=submit]").await;
    let result = page
        .wait(
            "[data-testid=submit-result] with data-status and data-return-id",
            "const r = $('[data-testid=submit-result]');
             const s = r && {status: r.dataset.status, id: r.dataset.returnId, text: r.innerText};
             return {ok: !!s && !!s.status && !!s.id, state: s};",
            json!(null),
        )
        .await;
    assert_eq!(result["status"], "accepted", "the form's return: {result}");
    let id = result["id"].as_str().unwrap().to_string();
    eprintln!("submitted {id}");
    page.wait(
        &format!("li[data-return-id={id}] in the requests lane and in every team's lane"),
        "const id = arguments[0];
         const lanes = ['requests', ...REACTING];
         const seen = Object.fromEntries(lanes.map(t =>
             [t, !!lane(t) && !!lane(t).querySelector(`li[data-return-id=\"${id}\"]`)]));
         return {ok: lanes.every(t => seen[t]), state: seen};",
        json!(id),
    )
    .await;
    // (A fresh log: every team starts with 0 handled and returnOrders empty; the numbers are
    // read all the same.)
    let handled = loaded["teams"]["sales"]["handled"].as_u64().unwrap() + 1;
    let end_before: u64 = loaded["end"].as_str().and_then(|e| e.parse().ok()).unwrap();
    page.wait(
        &format!("every team at lag 0 with {handled} handled"),
        "const s = teams();
         return {ok: REACTING.every(t => s[t].lag === 0 && s[t].handled === arguments[0]),
                 state: s};",
        json!(handled),
    )
    .await;

    // Its timeline, opened from the item in Sales' lane, shows every team's decision.
    page.click(&format!(
        "[data-testid=lane-sales] li[data-return-id=\"{id}\"]"
    ))
    .await;
    page.wait(
        &format!("[data-testid=timeline] for {id} with data-complete=true and an entry per team"),
        "const tl = $('[data-testid=timeline]');
         const s = tl && {id: tl.dataset.returnId, complete: tl.dataset.complete,
             teams: [...tl.querySelectorAll('[data-testid=timeline-entry]')]
                 .map(e => e.dataset.team)};
         return {ok: !!s && s.id === arguments[0] && s.complete === 'true' &&
                     REACTING.every(t => s.teams.includes(t)),
                 state: s};",
        json!(id),
    )
    .await;
    page.shot("submitted-and-reached").await;

    // Manufacturing offline, with the keyboard: Tab onto its toggle (it shows where the focus
    // is), Enter.
    let toggle = page
        .find(&format!(
            "[data-testid=lane-{OFFLINE}] [data-testid=toggle]"
        ))
        .await;
    assert_eq!(
        toggle.attr("aria-pressed").await.unwrap().as_deref(),
        Some("false"),
        "{OFFLINE}'s toggle while online"
    );
    page.tab_to(&toggle).await;
    page.press(Key::Enter).await;
    page.wait(
        &format!("{OFFLINE} offline: data-online=false, its toggle aria-pressed=true"),
        "const t = arguments[0];
         const b = lane(t) && lane(t).querySelector('[data-testid=toggle]');
         const s = {team: team(t), pressed: b && b.getAttribute('aria-pressed'),
                    text: b && b.innerText};
         return {ok: s.team.online === 'false' && s.pressed === 'true' &&
                     /bring online/i.test(s.text),
                 state: s};",
        json!(OFFLINE),
    )
    .await;

    // A burst while it is offline: the others handle it, Manufacturing falls behind by it.
    let count = page.find("[data-testid=burst-count]").await;
    count.clear().await.unwrap();
    count.send_keys(&BURST.to_string()).await.unwrap();
    page.click("[data-testid=burst]").await;
    page.wait(
        &format!("[data-testid=burst-result] data-sent={BURST} data-accepted={BURST}"),
        "const r = $('[data-testid=burst-result]');
         const s = r && {sent: r.dataset.sent, accepted: r.dataset.accepted, text: r.innerText};
         return {ok: !!s && s.sent === String(arguments[0]) && s.accepted === String(arguments[0]),
                 state: s};",
        json!(BURST),
    )
    .await;
    let behind = page
        .wait(
            &format!(
                "the other teams at lag 0 with {} handled, {OFFLINE} offline with lag >= {BURST} \
                 and still {handled} handled, its lane showing its lag, returnOrders' end >= {}",
                handled + BURST,
                end_before + 1 + BURST
            ),
            "const [off, handled, burst, end_before] = arguments;
             const s = teams();
             const others = REACTING.filter(t => t !== off);
             const m = s[off];
             const shown = !!lane(off) && lane(off).innerText.includes(String(m && m.lag));
             const end = num(attr('[data-testid=lane-requests]', 'end'));
             return {ok: others.every(t => s[t].lag === 0 && s[t].handled === handled + burst) &&
                         m.online === 'false' && m.lag >= burst && m.handled === handled &&
                         shown && end >= end_before + 1 + burst,
                     state: {teams: s, lag_shown_in_lane: shown, requests_end: end}};",
            json!([OFFLINE, handled, BURST, end_before]),
        )
        .await;
    eprintln!("while {OFFLINE} is offline: {behind}");
    page.shot("offline-and-behind").await;

    // Back online with a click: it catches up.
    toggle.click().await.unwrap();
    page.wait(
        &format!("{OFFLINE} online again, lag 0, as many handled as the others"),
        "const [off, total] = arguments;
         const s = teams();
         const b = lane(off) && lane(off).querySelector('[data-testid=toggle]');
         return {ok: s[off].online === 'true' && b.getAttribute('aria-pressed') === 'false' &&
                     REACTING.every(t => s[t].lag === 0 && s[t].handled === total),
                 state: {teams: s, pressed: b && b.getAttribute('aria-pressed')}};",
        json!([OFFLINE, handled + BURST]),
    )
    .await;
    page.shot("back-online-and-caught-up").await;

    // The API says the same.
    let teams = page.fetch_json("/teams").await;
    let rows = teams["teams"].as_array().expect("GET /teams: teams");
    let row = |team: &str| {
        rows.iter()
            .find(|r| r["team"] == team)
            .unwrap_or_else(|| panic!("{team} in GET /teams: {teams}"))
    };
    for r in rows {
        assert_eq!(r["lag"], 0, "GET /teams after the catch-up: {teams}");
    }
    assert_eq!(
        row(OFFLINE)["processed"],
        row("sales")["processed"],
        "{teams}"
    );
    assert_eq!(row("sales")["processed"], handled + BURST, "{teams}");
    assert_eq!(row(OFFLINE)["online"], true, "{teams}");

    // The layout fits a wide and a narrow window.
    for (width, name) in [(1280, "1280x800"), (400, "400x800")] {
        page.viewport(width, 800).await;
        page.client
            .execute("window.scrollTo(0, 0);", vec![])
            .await
            .unwrap();
        page.shot(name).await;
        page.no_horizontal_scroll().await;
    }

    eprintln!(
        "dashboard on {variant}: {:.1} s, screenshots in {}",
        started.elapsed().as_secs_f64(),
        page.shots.display()
    );
    driver.end(page).await;
}

/// `chromedriver --port=N` in a process group of its own, with a temporary directory for its
/// log and the browser's profile. Dropping it ends the session (Chromium quits) and kills the
/// group, also when the test failed.
struct Chromedriver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// The session's id, once there is one.
    session: Option<String>,
}

impl Chromedriver {
    fn start() -> Self {
        // Read at build time, as crates/cli/build.rs turns this test on by it.
        let Some(path) = option_env!("RETURNS_CHROMEDRIVER") else {
            panic!("RETURNS_CHROMEDRIVER names a chromedriver (bash scripts/test.sh sets it)");
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_ports(1)[0];
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).unwrap();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {path}: {e}"));
        Chromedriver {
            child,
            port,
            dir,
            session: None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// The Chromium next to chromedriver, if there is one there (else chromedriver looks).
    fn chromium() -> Option<PathBuf> {
        let driver = Path::new(option_env!("RETURNS_CHROMEDRIVER")?);
        let chromium = driver.with_file_name("chromium");
        chromium.exists().then_some(chromium)
    }

    /// A session in a fresh headless Chromium, 1280x800; retried until chromedriver listens.
    async fn session(&mut self) -> Client {
        let profile = self.dir.path().join("profile");
        let mut options = json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                // A small /dev/shm (containers) crashes pages; /tmp has room.
                "--disable-dev-shm-usage",
                "--window-size=1280,800", format!("--user-data-dir={}", profile.display()),
            ],
        });
        if let Some(chromium) = Self::chromium() {
            options["binary"] = json!(chromium);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_string(), options);
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let url = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match builder.connect(&url).await {
                Ok(client) => {
                    self.session = client.session_id().await.unwrap();
                    return client;
                }
                Err(_) if Instant::now() < deadline => {
                    if let Some(status) = self.child.try_wait().expect("try_wait") {
                        panic!("chromedriver exited ({status}):\n{}", self.log());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session at {url}: {e}\n{}", self.log()),
            }
        }
    }

    /// End the page's session: Chromium quits.
    async fn end(&mut self, page: Page<'_>) {
        page.client
            .close()
            .await
            .expect("end the WebDriver session");
        self.session = None;
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // A session still open (the test failed) first, so that chromedriver stops Chromium in
        // order; then the whole group, whatever is left of it.
        if let Some(id) = &self.session {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    stream,
                    "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                );
                // The answer comes once Chromium has quit (chromedriver keeps the connection).
                let _ = stream.read(&mut [0; 1024]);
            }
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// JavaScript that every wait's check can use: `REACTING` (the four teams), `$`, `attr`,
/// `lane(team)`, `team(team)` (its `data-online`, and `data-lag` and `data-handled` as numbers
/// or null) and `teams()`; after `const REACTING = [...];`.
const PRELUDE: &str = "
const $ = s => document.querySelector(s);
const attr = (s, name) => { const e = $(s); return e ? e.getAttribute('data-' + name) : null; };
const num = v => (v === undefined || v === null || v === '') ? null : Number(v);
const lane = t => $(`[data-testid=lane-${t}]`);
const team = t => { const l = lane(t);
    return l ? {online: l.dataset.online, lag: num(l.dataset.lag),
                handled: num(l.dataset.handled)} : null; };
const teams = () => Object.fromEntries(REACTING.map(t => [t, team(t)]));
";

/// The browser on the server's page, and where its screenshots go.
struct Page<'a> {
    client: Client,
    server: &'a Served,
    /// `target/dashboard-screenshots/<variant>`, emptied first.
    shots: PathBuf,
    taken: Cell<u32>,
}

impl<'a> Page<'a> {
    async fn new(client: Client, server: &'a Served, variant: &str) -> Page<'a> {
        let shots = target_dir().join("dashboard-screenshots").join(variant);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("create the screenshots' directory");
        let page = Page {
            client,
            server,
            shots,
            taken: Cell::new(0),
        };
        page.viewport(1280, 800).await;
        page
    }

    /// Size the window so that the page sees `width` x `height` (the viewport, as
    /// `innerWidth` and `innerHeight`), and let the layout follow.
    async fn viewport(&self, width: u32, height: u32) {
        let inner = "return [window.innerWidth, window.innerHeight];";
        self.client.set_window_size(width, height).await.unwrap();
        let seen = self.client.execute(inner, vec![]).await.unwrap();
        let (w, h) = (seen[0].as_u64().unwrap(), seen[1].as_u64().unwrap());
        if (w, h) != (width.into(), height.into()) {
            // The window's frame, if it has one, takes the difference.
            let grow = |outer: u32, seen: u64| (u64::from(outer) * 2).saturating_sub(seen);
            self.client
                .set_window_size(grow(width, w) as u32, grow(height, h) as u32)
                .await
                .unwrap();
        }
        self.settle().await;
        let seen = self.client.execute(inner, vec![]).await.unwrap();
        assert_eq!(seen, json!([width, height]), "the viewport");
    }

    async fn goto(&self, path: &str) {
        let url = self.server.url(path);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => {
                self.shot("FAILED").await;
                panic!("no element {css} on the page: {e}");
            }
        }
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.click().await {
            self.shot("FAILED").await;
            panic!("click {css}: {e}");
        }
    }

    /// Run `check` (a function body after [`PRELUDE`] returning `{ok, state}`; its `arguments`
    /// are `args`: an array's items, or the one value, or none for null) until `ok`; its last
    /// `state`. Panics after [`DEADLINE`] naming `what` and the state the page was in.
    async fn wait(&self, what: &str, check: &str, args: Value) -> Value {
        let script = format!(
            "const REACTING = {};{PRELUDE}\nreturn (function() {{ {check} }}).apply(null, arguments);",
            json!(TEAMS)
        );
        let args = match args {
            Value::Array(a) => a,
            Value::Null => vec![],
            other => vec![other],
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            let last = match self.client.execute(&script, args.clone()).await {
                Ok(answer) if answer["ok"] == true => return answer["state"].clone(),
                Ok(answer) => answer["state"].clone(),
                Err(e) => json!(format!("the check failed: {e}")),
            };
            if Instant::now() > deadline {
                self.shot("FAILED").await;
                panic!(
                    "waited {DEADLINE:?} for {what}; the page showed last:\n{last:#}\n\
                     --- returns serve ---\n{}",
                    self.server.output_tail(60)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Move the focus onto `element` the way a keyboard user does: from the control before it,
    /// Tab. Then the focus is on it and visible (`:focus-visible`, with an outline or a shadow).
    async fn tab_to(&self, element: &Element) {
        let element = serde_json::to_value(element).unwrap();
        self.client
            .execute("arguments[0].focus();", vec![element.clone()])
            .await
            .unwrap();
        let shift_tab = KeyActions::new("keyboard".to_string())
            .then(KeyAction::Down {
                value: Key::Shift.into(),
            })
            .then(KeyAction::Down {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Shift.into(),
            });
        self.client.perform_actions(shift_tab).await.unwrap();
        self.press(Key::Tab).await;
        let focus = self
            .client
            .execute(
                "const e = arguments[0], style = getComputedStyle(e);
                 return {focused: document.activeElement === e,
                         active: document.activeElement && document.activeElement.outerHTML
                             .slice(0, 200),
                         visible: e.matches(':focus-visible'),
                         outline: style.outlineStyle + ' ' + style.outlineWidth,
                         shadow: style.boxShadow};",
                vec![element],
            )
            .await
            .unwrap();
        assert_eq!(focus["focused"], true, "Tab did not reach it: {focus:#}");
        let ring = (focus["outline"]
            .as_str()
            .unwrap_or("none")
            .split(' ')
            .next()
            != Some("none")
            && !focus["outline"].as_str().unwrap_or("").ends_with(" 0px"))
            || focus["shadow"].as_str().unwrap_or("none") != "none";
        assert!(
            focus["visible"] == true && ring,
            "the keyboard focus is not visible: {focus:#}"
        );
    }

    /// Press and release `key` on whatever has the focus.
    async fn press(&self, key: Key) {
        let keys = KeyActions::new("keyboard".to_string())
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        self.client.perform_actions(keys).await.unwrap();
    }

    /// No horizontal scroll at the window's current size; else the elements that stick out.
    async fn no_horizontal_scroll(&self) {
        let size = self
            .client
            .execute(
                "const inner = window.innerWidth;
                 const name = e => e.tagName.toLowerCase() +
                     (e.dataset.testid ? `[data-testid=${e.dataset.testid}]` : '') +
                     (e.id ? '#' + e.id : '') +
                     (typeof e.className === 'string' && e.className ?
                         '.' + e.className.trim().split(/\\s+/).join('.') : '');
                 const out = e => e && e.getBoundingClientRect().right > inner + 0.5;
                 const where = e => { const t = e.parentElement &&
                     e.parentElement.closest('[data-testid]'); return t ? `${name(t)} > ` : ''; };
                 const outermost = [...document.querySelectorAll('body *')]
                     .filter(e => out(e) && !out(e.parentElement))
                     .slice(0, 8)
                     .map(e => `${where(e)}${name(e)}: right edge at ` +
                         Math.round(e.getBoundingClientRect().right));
                 return {scroll: document.documentElement.scrollWidth, inner, sticking_out: outermost};",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            size["scroll"].as_u64() <= size["inner"].as_u64(),
            "horizontal scroll: {size:#}"
        );
    }

    /// Two animation frames: the layout has followed a resize.
    async fn settle(&self) {
        self.client
            .execute_async(
                "const done = arguments[0];
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await
            .unwrap();
    }

    /// `GET path` from the page, as JSON.
    async fn fetch_json(&self, path: &str) -> Value {
        let answer = self
            .client
            .execute_async(
                "const done = arguments[1];
                 fetch(arguments[0]).then(r => r.json().then(body => done({status: r.status, body})))
                     .catch(e => done({status: 0, body: String(e)}));",
                vec![json!(path)],
            )
            .await
            .unwrap();
        assert_eq!(answer["status"], 200, "GET {path}: {answer}");
        answer["body"].clone()
    }

    /// Save the page as `NN-name.png`.
    async fn shot(&self, name: &str) {
        let n = self.taken.get() + 1;
        self.taken.set(n);
        let path = self.shots.join(format!("{n:02}-{name}.png"));
        match self.client.screenshot().await {
            Ok(png) => {
                std::fs::write(&path, png).expect("write a screenshot");
                eprintln!("screenshot {}", path.display());
            }
            Err(e) => eprintln!("no screenshot {name}: {e}"),
        }
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else three levels above this test binary
/// (`target/debug/deps/dashboard-*`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<binary>")
        .to_path_buf()
}
