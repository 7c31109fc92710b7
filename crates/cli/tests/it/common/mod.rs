//! What the fault tests (`kill_teams.rs`, `kill_broker.rs`) share: `returns run TEAM` processes
//! that can be SIGKILLed and restarted, waits with a deadline, the end-of-run checks (one effect
//! per return in every store, `returns replay --json`), and a private Kafka broker run by
//! `scripts/kafka.sh` in its own run directory.
//!
//! Every process started here is killed when its guard is dropped, so a failing test leaves no
//! process behind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use returns_domain::{Accounting, Inventory, Manufacturing, Sales, Team};
use returns_eventlog::{team_group, EventLog, LogError, RETURN_ORDERS};
use returns_services::team::store::TeamStore;
use returns_services::TeamName;
use serde_json::Value;

/// The four teams that act on a return, by name.
pub const TEAMS: [&str; 4] = TeamName::names(TeamName::ALL);

/// The shared broker of the test run (`bash scripts/test.sh` sets it).
pub fn bootstrap() -> String {
    std::env::var("RETURNS_KAFKA_BOOTSTRAP")
        .expect("RETURNS_KAFKA_BOOTSTRAP names the broker (bash scripts/test.sh sets it)")
}

/// `returns` with `--log` and `--data`, and nothing from the caller's environment that would
/// point it elsewhere.
pub fn returns_cmd(url: &str, data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_returns"));
    cmd.env_remove("RETURNS_LOG")
        .env_remove("RETURNS_DATA")
        .args(["--log", url, "--data"])
        .arg(data);
    cmd
}

/// One `returns run TEAM` process; killed if it is dropped while it still runs.
pub struct TeamProcess {
    pub team: &'static str,
    pub generation: u32,
    child: Child,
    stderr: PathBuf,
    /// Set once its output said that it joined its group and got partitions.
    assigned: bool,
}

impl TeamProcess {
    /// Start generation `generation` of `team`; its stderr goes to `logs/<team>-<generation>.log`.
    pub fn start(team: &'static str, url: &str, data: &Path, logs: &Path, generation: u32) -> Self {
        let stderr = logs.join(format!("{team}-{generation}.log"));
        let child = returns_cmd(url, data)
            .args(["run", team])
            .env("RETURNS_TRACE", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("create a team's log file"))
            .spawn()
            .expect("start `returns run`");
        TeamProcess {
            team,
            generation,
            child,
            stderr,
            assigned: false,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Has this process joined its consumer group and been given partitions? (Its log says so.)
    pub fn assigned(&mut self) -> bool {
        if !self.assigned {
            self.assigned = self.output().contains("partitions assigned");
        }
        self.assigned
    }

    /// Still running? A process that exited on its own is a failure worth its log.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} (generation {}) exited on its own with {status}:\n{}",
                self.team,
                self.generation,
                self.output()
            );
        }
    }

    /// SIGKILL: no drain, no commit, no relay flush; whatever was in flight stays as it was.
    pub fn kill(mut self) {
        self.assert_running();
        self.child.kill().expect("SIGKILL a team process");
        self.child.wait().expect("reap a killed team process");
    }

    /// SIGTERM, then wait up to `within` for it to finish its batch, drain its outbox and exit.
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        self.assert_running();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {}", self.team);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within {within:?} after SIGTERM:\n{}",
                self.team,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TeamProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The four teams, one process each, all on one data directory; counts the kills.
pub struct Teams {
    url: String,
    data: PathBuf,
    logs: PathBuf,
    procs: BTreeMap<&'static str, TeamProcess>,
    kills: BTreeMap<&'static str, u32>,
}

impl Teams {
    pub fn start(url: &str, data: &Path, logs: &Path) -> Self {
        std::fs::create_dir_all(logs).expect("create the logs dir");
        let procs = TEAMS
            .iter()
            .map(|t| (*t, TeamProcess::start(t, url, data, logs, 1)))
            .collect();
        Teams {
            url: url.to_string(),
            data: data.to_path_buf(),
            logs: logs.to_path_buf(),
            procs,
            kills: TEAMS.iter().map(|t| (*t, 0)).collect(),
        }
    }

    pub fn get(&mut self, team: &str) -> &mut TeamProcess {
        self.procs.get_mut(team).expect("a running team")
    }

    /// SIGKILL the team's process and start its next generation at once.
    pub fn kill_and_restart(&mut self, team: &'static str) {
        let old = self.procs.remove(team).expect("a running team");
        let generation = old.generation + 1;
        old.kill();
        *self.kills.get_mut(team).expect("a team") += 1;
        let new = TeamProcess::start(team, &self.url, &self.data, &self.logs, generation);
        self.procs.insert(team, new);
    }

    pub fn kills(&self) -> &BTreeMap<&'static str, u32> {
        &self.kills
    }

    pub fn assert_running(&mut self) {
        for p in self.procs.values_mut() {
            p.assert_running();
        }
    }

    /// The current processes' logs, for a failure message.
    pub fn logs(&self) -> String {
        self.procs
            .values()
            .map(|p| {
                format!(
                    "--- {} (generation {}) ---\n{}",
                    p.team,
                    p.generation,
                    p.output()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM every team; each must exit 0 (its batch finished, its outbox drained).
    pub fn stop_all(&mut self) {
        for (team, p) in std::mem::take(&mut self.procs) {
            let output = p.output();
            let status = p.terminate(Duration::from_secs(30));
            assert!(
                status.success(),
                "{team} exits 0 on SIGTERM: {status}\n{output}"
            );
        }
    }
}

/// The team's lag on `returnOrders`. (An error is possible for a moment after a broker restart,
/// while the client's metadata is stale.)
pub async fn lag(log: &Arc<dyn EventLog>, team: &str) -> Result<u64, LogError> {
    log.lag(&team_group(team), RETURN_ORDERS).await
}

/// Poll until every team's lag on `returnOrders` is 0, or panic at `deadline` naming the teams
/// behind (or the last error reading a lag), with `context()` (the processes' logs) in the
/// message.
pub async fn wait_caught_up(
    log: &Arc<dyn EventLog>,
    deadline: Instant,
    mut context: impl FnMut() -> String,
) {
    loop {
        let mut behind = Vec::new();
        for team in TEAMS {
            match lag(log, team).await {
                Ok(0) => {}
                Ok(l) => behind.push(format!("{team}={l}")),
                Err(e) => behind.push(format!("{team}: {e}")),
            }
        }
        if behind.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "teams still behind at the deadline: {behind:?}\n{}",
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn effects<T: Team>(data: &Path) -> HashMap<String, u64> {
    TeamStore::<T>::open(data)
        .expect("open a team store")
        .effects_per_return()
        .expect("read a team's effects")
}

/// The event ids on a team's own topic, per return (its correlation id).
pub async fn event_ids_per_return(
    log: &Arc<dyn EventLog>,
    team: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut events: BTreeMap<String, Vec<String>> = BTreeMap::new();
    log.for_each_record(&returns_eventlog::team_topic(team), &mut |r| {
        events
            .entry(r.header("ce_correlationid").unwrap_or("?").to_string())
            .or_default()
            .push(r.header("ce_id").unwrap_or("?").to_string());
    })
    .await
    .unwrap();
    events
}

/// Every team's store has exactly one effect for each of `returns`, and none for anything else.
pub fn assert_one_effect_per_return(data: &Path, returns: &BTreeSet<String>) {
    for (team, per_return) in [
        ("sales", effects::<Sales>(data)),
        ("inventory", effects::<Inventory>(data)),
        ("manufacturing", effects::<Manufacturing>(data)),
        ("accounting", effects::<Accounting>(data)),
    ] {
        let missing: Vec<_> = returns
            .iter()
            .filter(|id| !per_return.contains_key(*id))
            .take(5)
            .collect();
        let n_missing = returns
            .iter()
            .filter(|id| !per_return.contains_key(*id))
            .count();
        assert!(
            n_missing == 0,
            "{team}: {n_missing} return(s) without an effect (lost), e.g. {missing:?}"
        );
        let doubled: Vec<_> = per_return.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            doubled.is_empty(),
            "{team}: {} return(s) with more than one effect (handled twice): {:?}",
            doubled.len(),
            doubled.iter().take(5).collect::<Vec<_>>()
        );
        let unknown: Vec<_> = per_return
            .keys()
            .filter(|id| !returns.contains(*id))
            .take(5)
            .collect();
        assert!(
            unknown.is_empty(),
            "{team}: effects for returns nobody sent: {unknown:?}"
        );
        assert_eq!(per_return.len(), returns.len(), "{team}: returns handled");
    }
}

/// `returns replay --json` for every team: the state rebuilt from each team's own topic equals
/// its live store, nothing is left in an outbox, and each team folded one event per return.
/// Returns the reports (for the numbers a test prints).
pub fn assert_replay_matches(url: &str, data: &Path, returns: u64) -> Vec<Value> {
    let out = returns_cmd(url, data)
        .args(["replay", "--json"])
        .output()
        .expect("run returns replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<Value> = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "replay --json is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let teams: BTreeSet<&str> = reports.iter().filter_map(|r| r["team"].as_str()).collect();
    assert_eq!(teams, TEAMS.into_iter().collect(), "replayed teams");
    for r in &reports {
        let team = r["team"].as_str().unwrap_or("?");
        assert_eq!(
            r["live_hash"], r["replay_hash"],
            "{team}: the state rebuilt from its topic differs from its store: {r}"
        );
        assert_eq!(r["differing_keys"], 0, "{team}: {r}");
        assert_eq!(
            r["live_outbox"], 0,
            "{team}: events left in its outbox: {r}"
        );
        assert_eq!(r["events"], returns, "{team}: one event per return: {r}");
        assert_eq!(r["unreadable"], 0, "{team}: {r}");
    }
    assert!(
        out.status.success(),
        "returns replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    reports
}

/// `n` distinct TCP ports on 127.0.0.1 that were free a moment ago, below the kernel's range of
/// ephemeral ports. (A port from that range, as binding port 0 gives, can be taken while the
/// broker is down: a client retrying a connect to it may be handed that very port as its own
/// source port, and a TCP connect from a port to itself succeeds. The clients then talk to
/// themselves, and the broker cannot bind its port on restart.)
///
/// The tests of this binary run in threads of one process: a port handed out once is never
/// handed out again in this process, so two tests starting at the same moment cannot both be
/// given a port that neither has bound yet.
pub fn free_ports(n: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let ephemeral_low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000u16, ephemeral_low.min(32_768));
    assert!(
        low + 1_000 < high,
        "no room below the ephemeral ports ({range})"
    );
    // Start somewhere else in each test process, so two test processes rarely try the same
    // ports.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = (std::process::id().wrapping_mul(7_919) ^ nanos) % u32::from(high - low);
    let mut candidate = low + spread as u16;
    let mut held = Vec::new();
    for _ in 0..(high - low) {
        candidate = if candidate + 1 >= high {
            low
        } else {
            candidate + 1
        };
        if handed_out.contains(&candidate) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", candidate)) {
            held.push(listener);
            if held.len() == n {
                break;
            }
        }
    }
    assert_eq!(held.len(), n, "{n} free ports between {low} and {high}");
    let ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect();
    handed_out.extend(&ports);
    ports
}

/// A single-node broker of its own, run by `scripts/kafka.sh` with its own run directory (data,
/// logs, pid) and ports; the jars are the shared cache's. Stopped (or killed) when dropped.
pub struct PrivateBroker {
    run: PathBuf,
    port: u16,
    controller_port: u16,
}

impl PrivateBroker {
    /// Start a clean broker in `run` (created; must be empty or missing) on two free ports.
    pub fn start(run: &Path) -> Self {
        let ports = free_ports(2);
        let broker = PrivateBroker {
            run: run.to_path_buf(),
            port: ports[0],
            controller_port: ports[1],
        };
        let address = broker.script("start");
        assert_eq!(address, broker.bootstrap(), "start prints the address");
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL the broker (`kafka.sh kill`).
    pub fn kill(&self) {
        self.script("kill");
    }

    /// Start it again on its data (`kafka.sh restart`).
    pub fn restart(&self) {
        let address = self.script("restart");
        assert_eq!(address, self.bootstrap(), "restart prints the address");
    }

    /// SIGTERM and wait (`kafka.sh stop`).
    pub fn stop(&self) {
        self.script("stop");
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.run.join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Run `kafka.sh COMMAND` on this broker; its last stdout line.
    fn script(&self, command: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(command)
            .env("KAFKA_RUN", &self.run)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m")
            .env_remove("KAFKA_BOOTSTRAP")
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "kafka.sh {command} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // Also when the test panicked: a broker must not outlive its test. `stop` is a no-op
        // on a broker that is not running.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg("stop")
            .env("KAFKA_RUN", &self.run)
            .env("KAFKA_STOP_TIMEOUT", "10")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Where a test runs `returns`: a data directory of its own and, on Kafka, a namespace of its
/// own on the shared broker; the temporary directory goes when the sandbox does.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub data: PathBuf,
    /// `None`: the embedded log in the data directory.
    pub log: Option<String>,
}

impl Sandbox {
    pub fn new(log: Option<String>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Sandbox {
            data: dir.path().join("data"),
            _dir: dir,
            log,
        }
    }

    /// On the shared broker, under a fresh namespace starting with `prefix`.
    pub fn kafka(prefix: &str) -> Self {
        let namespace = returns_eventlog::conformance::unique(prefix);
        Sandbox::new(Some(format!(
            "kafka://{}?namespace={namespace}",
            bootstrap()
        )))
    }

    pub fn log_url(&self) -> String {
        self.log
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data.join("log.db").display()))
    }

    /// Run `returns ARGS --data DIR [--log URL]`: (success, stdout, stderr).
    pub fn returns(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_returns"));
        cmd.args(args)
            .arg("--data")
            .arg(&self.data)
            .env_remove("RETURNS_DATA")
            .env_remove("RETURNS_LOG");
        if let Some(log) = &self.log {
            cmd.args(["--log", log]);
        }
        let out = cmd.output().expect("run returns");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `returns ARGS`, which must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let (ok, stdout, stderr) = self.returns(args);
        assert!(ok, "returns {args:?} failed: {stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    }
}

/// `returns serve` in a [`Sandbox`], on a free loopback port; killed when dropped.
pub struct Served {
    child: Child,
    stderr: PathBuf,
    /// Where it listens: `127.0.0.1:PORT`.
    pub addr: String,
}

impl Sandbox {
    /// Start `returns serve --listen 127.0.0.1:0` on this sandbox's log and data (no token, the
    /// page built in) and wait, up to `within`, until it says where it listens.
    pub fn serve(&self, within: Duration) -> Served {
        let stderr = self.data.with_file_name("serve.stderr");
        let child = returns_cmd(&self.log_url(), &self.data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("RETURNS_LISTEN")
            .env_remove("RETURNS_TOKEN")
            .env_remove("RETURNS_TOKEN_FILE")
            .env_remove("RETURNS_DASHBOARD_DIR")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("create serve's log file"))
            .spawn()
            .expect("start `returns serve`");
        let mut served = Served {
            child,
            stderr,
            addr: String::new(),
        };
        // "listening on http://127.0.0.1:PORT: POST /returns ..."
        let deadline = Instant::now() + within;
        served.addr = loop {
            if let Some(status) = served.child.try_wait().expect("try_wait") {
                panic!("returns serve exited ({status}):\n{}", served.output());
            }
            let said = served.output();
            let addr = said
                .lines()
                .find_map(|l| l.split("listening on http://").nth(1))
                .and_then(|rest| rest.split(": ").next());
            if let Some(addr) = addr {
                break addr.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "returns serve did not say where it listens within {within:?}:\n{said}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        served
    }
}

impl Served {
    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What it wrote to stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The last `lines` lines of [`Self::output`], for a failure message.
    pub fn output_tail(&self, lines: usize) -> String {
        let output = self.output();
        let all: Vec<&str> = output.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
