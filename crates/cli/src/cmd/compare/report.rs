//! What `returns compare` found, per model, from what User Support saw and what the teams'
//! stores hold at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use returns_services::faults::schedule::Outage;
use returns_services::metrics::{new_histogram, Latency};
use returns_services::{open_store_view, FaultPlan, RunClock, TeamName};
use serde::Serialize;

use super::Submitted;

/// One model's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// Returns User Support submitted.
    pub submitted: u64,
    /// Returns User Support accepted (traditional: all four teams answered; event-sourced: the
    /// request was appended to the log).
    pub accepted: u64,
    /// Returns User Support had to refuse or report as failed to the customer.
    pub refused: u64,
    /// Returns some but not all teams handled at the end.
    pub partial: u64,
    /// For the partial returns: how many lack each team.
    pub missing_by_team: BTreeMap<String, u64>,
    /// Returns all four teams handled at the end.
    pub complete: u64,
    /// Returns User Support accepted that are not complete at the end.
    pub lost: u64,
    /// Effects beyond one per return and team.
    pub duplicates: u64,
    /// User Support's time to handle one submission.
    pub latency_ms: Latency,
    /// From the end of the faults (or of submitting, whichever is later) until the last return
    /// was complete; `null` when some return never was.
    pub converge_ms: Option<u64>,
    /// When each return became complete (ms since the start), sorted; for the chart.
    #[serde(skip)]
    pub completed_at_ms: Vec<i64>,
}

/// A fault window on the run's clock, for the chart and the report.
#[derive(Debug, Clone, Serialize)]
pub struct FaultWindow {
    pub team: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub returns: u64,
    pub log: String,
    pub outages: Vec<FaultWindow>,
    pub latency_ms: BTreeMap<String, u64>,
    pub error_rate: BTreeMap<String, f64>,
    /// Whether both models' stores end with the same state, team by team.
    pub states_agree: BTreeMap<String, bool>,
    pub traditional: ModelReport,
    pub event_sourced: ModelReport,
}

pub(super) struct Inputs<'a> {
    pub returns: u64,
    pub plan: &'a FaultPlan,
    pub clock: &'a RunClock,
    pub faults_end: Duration,
    pub start_unix_ms: i64,
    pub trad: Vec<Submitted>,
    pub es: Vec<Submitted>,
    pub trad_dir: &'a Path,
    pub es_dir: &'a Path,
    pub log: String,
}

pub(super) fn build(inputs: Inputs<'_>) -> anyhow::Result<Comparison> {
    // With outages, convergence counts from their end; without, from the last submission.
    let has_outage = inputs.plan.teams.values().any(|f| !f.outages.is_empty());
    let settled_from = if has_outage {
        inputs.faults_end
    } else {
        inputs.clock.submitted_at().unwrap_or_default()
    };
    let model = |subs: &[Submitted], dir: &Path| -> anyhow::Result<ModelReport> {
        model_report(subs, dir, inputs.start_unix_ms, settled_from)
    };
    let traditional = model(&inputs.trad, inputs.trad_dir)?;
    let event_sourced = model(&inputs.es, inputs.es_dir)?;
    let mut states_agree = BTreeMap::new();
    for team in TeamName::ALL {
        let a = open_store_view(team, inputs.trad_dir)?.state_rows()?;
        let b = open_store_view(team, inputs.es_dir)?.state_rows()?;
        states_agree.insert(team.to_string(), a == b);
    }
    let mut outages = Vec::new();
    let mut latency_ms = BTreeMap::new();
    let mut error_rate = BTreeMap::new();
    for (team, f) in &inputs.plan.teams {
        for o in &f.outages {
            let (start, end) = match *o {
                Outage::WhileSubmitting => (
                    Duration::ZERO,
                    inputs.clock.submitted_at().unwrap_or_default(),
                ),
                Outage::Window { start, end } => (start, end),
            };
            outages.push(FaultWindow {
                team: team.to_string(),
                start_ms: start.as_millis() as u64,
                end_ms: end.as_millis() as u64,
            });
        }
        if !f.latency.is_zero() {
            latency_ms.insert(team.to_string(), f.latency.as_millis() as u64);
        }
        if f.error_rate > 0.0 {
            error_rate.insert(team.to_string(), f.error_rate);
        }
    }
    Ok(Comparison {
        returns: inputs.returns,
        log: inputs.log,
        outages,
        latency_ms,
        error_rate,
        states_agree,
        traditional,
        event_sourced,
    })
}

fn model_report(
    subs: &[Submitted],
    dir: &Path,
    start_unix_ms: i64,
    settled_from: Duration,
) -> anyhow::Result<ModelReport> {
    let StoreSummary {
        complete_at,
        effects,
    } = StoreSummary::read(dir, start_unix_ms)?;
    let mut hist = new_histogram();
    for s in subs {
        hist.saturating_record(s.latency.as_micros().max(1) as u64);
    }
    let accepted = subs.iter().filter(|s| s.accepted).count() as u64;
    // Every return some team handled, and which teams.
    let mut handled_by: HashMap<&str, HashSet<TeamName>> = HashMap::new();
    for (team, per_return) in &effects {
        for id in per_return.keys() {
            handled_by.entry(id).or_default().insert(*team);
        }
    }
    let mut missing_by_team = BTreeMap::new();
    let mut partial = 0;
    for teams in handled_by
        .values()
        .filter(|t| t.len() < TeamName::ALL.len())
    {
        partial += 1;
        for team in TeamName::ALL.iter().filter(|t| !teams.contains(t)) {
            *missing_by_team.entry(team.to_string()).or_insert(0) += 1;
        }
    }
    let accepted_ids: Vec<&str> = subs
        .iter()
        .filter(|s| s.accepted)
        .map(|s| s.return_id.as_str())
        .collect();
    let lost = accepted_ids
        .iter()
        .filter(|id| !complete_at.contains_key(**id))
        .count() as u64;
    let duplicates = effects
        .values()
        .flat_map(|per_return| per_return.values())
        .map(|n| n.saturating_sub(1))
        .sum();
    let mut completed_at_ms: Vec<i64> = complete_at.values().copied().collect();
    completed_at_ms.sort_unstable();
    // Converged: every return is complete. The time counts from the end of the faults to the
    // completion of the last return submitted before then (the backlog the faults left); with
    // no fault, from the last submission to the last completion.
    let all_complete = complete_at.len() == subs.len();
    let converge_ms = all_complete.then(|| {
        let backlog = subs
            .iter()
            .filter(|s| s.submitted_at <= settled_from)
            .filter_map(|s| complete_at.get(&s.return_id))
            .copied()
            .max()
            .unwrap_or(0)
            .max(0) as u64;
        backlog.saturating_sub(settled_from.as_millis() as u64)
    });
    Ok(ModelReport {
        submitted: subs.len() as u64,
        accepted,
        refused: subs.len() as u64 - accepted,
        partial,
        missing_by_team,
        complete: complete_at.len() as u64,
        lost,
        duplicates,
        latency_ms: Latency::of(&hist),
        converge_ms,
        completed_at_ms,
    })
}

pub(super) fn print(c: &Comparison) {
    let mut faults = Vec::new();
    for o in &c.outages {
        faults.push(format!(
            "{} down {:.1}–{:.1} s",
            o.team,
            o.start_ms as f64 / 1000.0,
            o.end_ms as f64 / 1000.0
        ));
    }
    for (t, ms) in &c.latency_ms {
        faults.push(format!("{t} +{ms} ms"));
    }
    for (t, p) in &c.error_rate {
        faults.push(format!("{t} fails {:.0}%", p * 100.0));
    }
    println!(
        "{} returns, each model on its own stores; event log {}; faults: {}",
        c.returns,
        c.log,
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(", ")
        }
    );
    let (t, e) = (&c.traditional, &c.event_sourced);
    let missing = |m: &ModelReport| {
        if m.missing_by_team.is_empty() {
            "-".to_string()
        } else {
            m.missing_by_team
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let converge = |m: &ModelReport| match m.converge_ms {
        Some(ms) => format!("{:.2} s", ms as f64 / 1000.0),
        None => "never".to_string(),
    };
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["", "traditional", "event-sourced"]);
    let rows: Vec<(&str, String, String)> = vec![
        (
            "accepted by User Support",
            t.accepted.to_string(),
            e.accepted.to_string(),
        ),
        (
            "refused or failed",
            t.refused.to_string(),
            e.refused.to_string(),
        ),
        (
            "User Support latency p50 / p99",
            format!("{:.1} / {:.1} ms", t.latency_ms.p50, t.latency_ms.p99),
            format!("{:.1} / {:.1} ms", e.latency_ms.p50, e.latency_ms.p99),
        ),
        (
            "left partial at the end",
            t.partial.to_string(),
            e.partial.to_string(),
        ),
        ("partial returns lack", missing(t), missing(e)),
        (
            "handled by all four teams",
            t.complete.to_string(),
            e.complete.to_string(),
        ),
        (
            "time to converge after the faults",
            converge(t),
            converge(e),
        ),
        (
            "duplicates",
            t.duplicates.to_string(),
            e.duplicates.to_string(),
        ),
        (
            "lost (accepted, never complete)",
            t.lost.to_string(),
            e.lost.to_string(),
        ),
    ];
    for (name, a, b) in rows {
        table.add_row([name.to_string(), a, b]);
    }
    println!("{table}");
    let disagree: Vec<&String> = c
        .states_agree
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(t, _)| t)
        .collect();
    if disagree.is_empty() {
        println!("Both models end with the same state in every team.");
    } else {
        println!(
            "The models' states differ in: {} (returns the traditional model left partial were never handled there)",
            disagree
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// What one model's four stores hold at the end.
struct StoreSummary {
    /// Returns all four teams decided, with when the last of them did (ms since the start).
    complete_at: HashMap<String, i64>,
    /// Effects per return, per team.
    effects: HashMap<TeamName, HashMap<String, u64>>,
}

impl StoreSummary {
    fn read(dir: &Path, start_unix_ms: i64) -> anyhow::Result<Self> {
        let mut done_at: HashMap<String, (usize, i64)> = HashMap::new();
        let mut effects = HashMap::new();
        for team in TeamName::ALL {
            let view = open_store_view(team, dir)?;
            for (id, at) in view.decided_at()? {
                let e = done_at.entry(id).or_insert((0, i64::MIN));
                e.0 += 1;
                e.1 = e.1.max(at - start_unix_ms);
            }
            effects.insert(team, view.effects_per_return()?);
        }
        let complete_at = done_at
            .into_iter()
            .filter(|(_, (teams, _))| *teams == TeamName::ALL.len())
            .map(|(id, (_, at))| (id, at))
            .collect();
        Ok(StoreSummary {
            complete_at,
            effects,
        })
    }
}
