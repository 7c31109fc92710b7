//! A fault schedule: the same outages, latencies and error rates for both models of
//! `returns compare`, given on the command line.
//!
//! - `--outage TEAM[@START..END]`: the team is down from START to END seconds after the run
//!   started; without a window, for the whole time returns are being submitted.
//! - `--latency TEAM=MS`: every call to the team (traditional) or every batch it handles
//!   (event-sourced) takes MS longer.
//! - `--error-rate TEAM=P`: each call (traditional) or batch (event-sourced) fails with
//!   probability P, drawn from a stream seeded by `--seed`, so a run can be repeated.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::TeamName;

/// When a team is unavailable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outage {
    /// From the start until every return has been submitted.
    WhileSubmitting,
    /// From `start` to `end` after the run started.
    Window { start: Duration, end: Duration },
}

/// The faults of one team.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamFaults {
    pub outages: Vec<Outage>,
    pub latency: Duration,
    pub error_rate: f64,
}

/// The whole schedule, by team.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub teams: BTreeMap<TeamName, TeamFaults>,
}

/// A fault flag that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{flag} `{spec}`: {reason}")]
pub struct FaultSpecError {
    flag: &'static str,
    spec: String,
    reason: String,
}

fn seconds(text: &str) -> Option<Duration> {
    let s: f64 = text.trim().trim_end_matches('s').parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s))
}

impl FaultPlan {
    fn team_mut(
        &mut self,
        name: &str,
        flag: &'static str,
        spec: &str,
    ) -> Result<&mut TeamFaults, FaultSpecError> {
        let team: TeamName =
            name.trim()
                .parse()
                .map_err(|e: crate::ServiceError| FaultSpecError {
                    flag,
                    spec: spec.to_string(),
                    reason: e.to_string(),
                })?;
        Ok(self.teams.entry(team).or_default())
    }

    /// `TEAM` or `TEAM@START..END` (seconds, decimals allowed).
    pub fn add_outage(&mut self, spec: &str) -> Result<(), FaultSpecError> {
        let bad = |reason: &str| FaultSpecError {
            flag: "--outage",
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (name, window) = match spec.split_once('@') {
            None => (spec, Outage::WhileSubmitting),
            Some((name, range)) => {
                let (a, b) = range.split_once("..").ok_or_else(|| {
                    bad("the window is START..END in seconds, e.g. manufacturing@2..5")
                })?;
                let (start, end) = seconds(a)
                    .zip(seconds(b))
                    .ok_or_else(|| bad("START and END are seconds, e.g. 2..5 or 0.5..1.5"))?;
                if end <= start {
                    return Err(bad("END must come after START"));
                }
                (name, Outage::Window { start, end })
            }
        };
        self.team_mut(name, "--outage", spec)?.outages.push(window);
        Ok(())
    }

    /// `TEAM=MS`.
    pub fn add_latency(&mut self, spec: &str) -> Result<(), FaultSpecError> {
        let (name, ms) = spec.split_once('=').unwrap_or((spec, ""));
        let ms: u64 = ms
            .trim()
            .parse()
            .ok()
            .filter(|ms| *ms <= 60_000)
            .ok_or_else(|| FaultSpecError {
                flag: "--latency",
                spec: spec.to_string(),
                reason: "expected TEAM=MS with MS from 0 to 60000, e.g. inventory=200".into(),
            })?;
        self.team_mut(name, "--latency", spec)?.latency = Duration::from_millis(ms);
        Ok(())
    }

    /// `TEAM=P` with P from 0 to 1.
    pub fn add_error_rate(&mut self, spec: &str) -> Result<(), FaultSpecError> {
        let (name, p) = spec.split_once('=').unwrap_or((spec, ""));
        let p: f64 = p
            .trim()
            .parse()
            .ok()
            .filter(|p: &f64| (0.0..=1.0).contains(p))
            .ok_or_else(|| FaultSpecError {
                flag: "--error-rate",
                spec: spec.to_string(),
                reason: "expected TEAM=P with P from 0 to 1, e.g. sales=0.1".into(),
            })?;
        self.team_mut(name, "--error-rate", spec)?.error_rate = p;
        Ok(())
    }

    /// What one team suffers in a run, with its own seeded draws.
    pub fn for_team(&self, team: TeamName, clock: &RunClock, seed: u64) -> TeamFaultState {
        TeamFaultState {
            faults: self.teams.get(&team).cloned().unwrap_or_default(),
            clock: clock.clone(),
            dice: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(
                seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(team as u64 + 1)),
            ))),
        }
    }

    /// When the last outage of any team ends, once that is known (for "time to converge").
    pub fn faults_end(&self, clock: &RunClock) -> Option<Duration> {
        let mut end = Duration::ZERO;
        for outage in self.teams.values().flat_map(|f| &f.outages) {
            end = end.max(match outage {
                Outage::WhileSubmitting => clock.submitted_at()?,
                Outage::Window { end, .. } => *end,
            });
        }
        Some(end)
    }
}

/// The clock of one run: when it started and, once known, when the last return was submitted.
#[derive(Debug, Clone)]
pub struct RunClock {
    started: Instant,
    submitted: Arc<OnceLock<Duration>>,
}

impl RunClock {
    pub fn start() -> Self {
        RunClock {
            started: Instant::now(),
            submitted: Arc::default(),
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every return has been submitted: outages without a window end now.
    pub fn mark_submitted(&self) {
        let _ = self.submitted.set(self.elapsed());
    }

    pub fn submitted_at(&self) -> Option<Duration> {
        self.submitted.get().copied()
    }
}

/// One team's faults as the run goes.
#[derive(Debug, Clone)]
pub struct TeamFaultState {
    faults: TeamFaults,
    clock: RunClock,
    dice: Arc<Mutex<ChaCha8Rng>>,
}

impl TeamFaultState {
    /// No faults at all.
    pub fn none() -> Self {
        FaultPlan::default().for_team(TeamName::Sales, &RunClock::start(), 0)
    }

    /// Is the team down right now?
    pub fn is_down(&self) -> bool {
        let now = self.clock.elapsed();
        self.faults.outages.iter().any(|o| match *o {
            Outage::WhileSubmitting => self.clock.submitted_at().is_none(),
            Outage::Window { start, end } => now >= start && now < end,
        })
    }

    pub fn latency(&self) -> Duration {
        self.faults.latency
    }

    /// Draw whether this call or batch fails.
    pub fn fails_now(&self) -> bool {
        self.faults.error_rate > 0.0
            && self
                .dice
                .lock()
                .expect("dice lock")
                .random_bool(self.faults.error_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_flags() {
        let mut plan = FaultPlan::default();
        plan.add_outage("manufacturing@2..5.5").unwrap();
        plan.add_outage("sales").unwrap();
        plan.add_latency("inventory=200").unwrap();
        plan.add_error_rate("accounting=0.25").unwrap();
        let m = &plan.teams[&TeamName::Manufacturing];
        assert_eq!(
            m.outages,
            vec![Outage::Window {
                start: Duration::from_secs(2),
                end: Duration::from_millis(5500)
            }]
        );
        assert_eq!(
            plan.teams[&TeamName::Sales].outages,
            vec![Outage::WhileSubmitting]
        );
        assert_eq!(
            plan.teams[&TeamName::Inventory].latency,
            Duration::from_millis(200)
        );
        assert_eq!(plan.teams[&TeamName::Accounting].error_rate, 0.25);
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let mut plan = FaultPlan::default();
        for (result, needle) in [
            (plan.add_outage("shipping"), "unknown team"),
            (plan.add_outage("sales@5..2"), "END must come after START"),
            (plan.add_outage("sales@x..2"), "seconds"),
            (plan.add_latency("sales"), "TEAM=MS"),
            (plan.add_error_rate("sales=1.5"), "from 0 to 1"),
        ] {
            let e = result.unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn an_outage_without_window_lasts_while_returns_are_submitted() {
        let mut plan = FaultPlan::default();
        plan.add_outage("sales").unwrap();
        let clock = RunClock::start();
        let sales = plan.for_team(TeamName::Sales, &clock, 1);
        let inventory = plan.for_team(TeamName::Inventory, &clock, 1);
        assert!(sales.is_down() && !inventory.is_down());
        assert_eq!(plan.faults_end(&clock), None);
        clock.mark_submitted();
        assert!(!sales.is_down());
        assert!(plan.faults_end(&clock).is_some());
    }

    #[test]
    fn error_draws_repeat_with_the_seed() {
        let mut plan = FaultPlan::default();
        plan.add_error_rate("sales=0.3").unwrap();
        let draws = |seed| {
            let f = plan.for_team(TeamName::Sales, &RunClock::start(), seed);
            (0..1000).map(|_| f.fails_now()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        let failures = draws(7).iter().filter(|f| **f).count();
        assert!(
            (230..370).contains(&failures),
            "{failures} of 1000 at p=0.3"
        );
    }
}
