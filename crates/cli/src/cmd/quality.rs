//! `returns quality`: defect rates per model and location, read from the Quality team's store.
//!
//! Quality is a late subscriber: `returns run quality` starts it at any time, and it catches up
//! from the beginning of `returnOrders`. This command only reads its store, plus the group's
//! lag, so a report taken while Quality is still catching up says so.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use returns_domain::{DefectCode, DefectRates, ModelAtLocation, NoticedCounts, Quality, Team};
use returns_eventlog::{team_group, RETURN_ORDERS};
use returns_services::team::store::store_path;
use returns_services::TeamStore;
use serde::Serialize;

use crate::config::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many defects to list per model and location, most frequent first.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub struct Report {
    pub log: String,
    pub store: String,
    /// Records of `returnOrders` Quality has not handled yet (0: caught up).
    pub lag: u64,
    /// Returns recorded, over every model and location.
    pub returns: u64,
    /// Returns Quality did not count (a model the company does not make).
    pub not_recorded: u64,
    /// One row per model at a location, by model, then location.
    pub rows: Vec<Row>,
}

#[derive(Serialize)]
pub struct Row {
    pub model: String,
    pub location: String,
    pub returns: u64,
    pub noticed: NoticedCounts,
    /// Share of returns found faulty on arrival, among those whose request says when the defect
    /// was noticed; `null` when none says.
    pub on_arrival_share: Option<f64>,
    /// The most frequent defects, with their share of this row's returns.
    pub top_defects: Vec<DefectShare>,
    /// Returns per defect code.
    pub defects: BTreeMap<DefectCode, u64>,
    pub first_requested_at: Option<String>,
    pub last_requested_at: Option<String>,
}

#[derive(Serialize)]
pub struct DefectShare {
    pub defect: String,
    pub returns: u64,
    pub share: f64,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let log = global.open_log().await?;
    let dir = global.data_dir(log.as_ref())?;
    let path = store_path(&dir, Quality::NAME);
    if !path.exists() {
        bail!(
            "the Quality team has never run with this data directory: there is no {} \
             (hint: start it with `returns run quality` and the same --data and --log; it catches \
             up from the beginning of {RETURN_ORDERS})",
            path.display()
        );
    }
    let store = TeamStore::<Quality>::open(&dir)?;
    let lag = log
        .lag(&team_group(Quality::NAME), RETURN_ORDERS)
        .await
        .context("reading the Quality team's lag")?;
    // The store orders rows by the key's text, where `AURA-PHONE-12-PRO@` sorts before
    // `AURA-PHONE-12@`; a report goes by model, then location.
    let mut rates = BTreeMap::new();
    for (key, json) in store.state_rows()? {
        let key: ModelAtLocation = key
            .parse()
            .with_context(|| format!("a state row of {} has the key {key:?}", path.display()))?;
        let state: DefectRates = serde_json::from_str(&json)
            .with_context(|| format!("the state of {key} in {}", path.display()))?;
        rates.insert(key, state);
    }
    let rows: Vec<Row> = rates
        .into_iter()
        // A key whose only returns were not recorded keeps its initial state: nothing to show.
        .filter(|(_, state)| state.returns > 0)
        .map(|(key, state)| row(key, &state, args.top))
        .collect();
    let report = Report {
        log: log.describe(),
        store: path.display().to_string(),
        lag,
        returns: rows.iter().map(|r| r.returns).sum(),
        not_recorded: store
            .effects_by_kind()?
            .get("defect_not_recorded")
            .copied()
            .unwrap_or(0),
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn row(key: ModelAtLocation, rates: &DefectRates, top: usize) -> Row {
    let share = |n: u64| n as f64 / rates.returns as f64;
    Row {
        model: key.model.to_string(),
        location: key.location.to_string(),
        returns: rates.returns,
        noticed: rates.noticed,
        on_arrival_share: rates.on_arrival_share(),
        top_defects: rates
            .top_defects(top)
            .into_iter()
            .map(|(defect, returns)| DefectShare {
                defect: defect.to_string(),
                returns,
                share: share(returns),
            })
            .collect(),
        defects: rates.defects.clone(),
        first_requested_at: rates.first_requested_at.map(|t| t.to_rfc3339()),
        last_requested_at: rates.last_requested_at.map(|t| t.to_rfc3339()),
    }
}

fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

fn print_report(r: &Report) {
    println!("Defect rates per model and location, from {}", r.store);
    if r.rows.is_empty() {
        println!("Quality has recorded no returns yet.");
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "model",
            "location",
            "returns",
            "on arrival",
            "top defects",
        ]);
        for row in &r.rows {
            let on_arrival = match row.on_arrival_share {
                Some(share) if row.noticed.unknown > 0 => {
                    format!("{} ({} unknown)", percent(share), row.noticed.unknown)
                }
                Some(share) => percent(share),
                None => "unknown".to_string(),
            };
            let top = row
                .top_defects
                .iter()
                .map(|d| format!("{} {}", d.defect, percent(d.share)))
                .collect::<Vec<_>>()
                .join(", ");
            table.add_row(vec![
                Cell::new(&row.model),
                Cell::new(&row.location),
                Cell::new(row.returns).set_alignment(CellAlignment::Right),
                Cell::new(on_arrival).set_alignment(CellAlignment::Right),
                Cell::new(top),
            ]);
        }
        println!("{table}");
    }
    println!(
        "{} returns recorded in {} model/location pairs; {} not recorded (unknown model)",
        r.returns,
        r.rows.len(),
        r.not_recorded
    );
    if r.lag == 0 {
        println!("Quality is caught up with {RETURN_ORDERS} on {}.", r.log);
    } else {
        println!(
            "Quality is still catching up: {} records of {RETURN_ORDERS} on {} not handled yet.",
            r.lag, r.log
        );
    }
}
