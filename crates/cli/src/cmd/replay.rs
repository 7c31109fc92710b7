//! `returns replay [TEAM...]`: rebuild each team's state from its own events into a fresh store
//! and compare it with the live store.

use std::path::PathBuf;

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use returns_services::team::store::store_path;
use returns_services::tools::replay::{replay_team, ReplayReport};
use returns_services::TeamName;

use crate::config::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The teams to replay (default: every team that has a store in the data directory).
    pub teams: Vec<String>,
    /// Where the rebuilt stores go (default: <data>/replay).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let log = global.open_log().await?;
    let data = global.data_dir(log.as_ref())?;
    let teams: Vec<TeamName> = if args.teams.is_empty() {
        let present: Vec<TeamName> = TeamName::EVERY
            .into_iter()
            .filter(|t| store_path(&data, t.as_str()).exists())
            .collect();
        if present.is_empty() {
            anyhow::bail!(
                "no team store in {} (hint: run `returns demo` or `returns run TEAM` with the \
                 same --data and --log first)",
                data.display()
            );
        }
        present
    } else {
        args.teams
            .iter()
            .map(|t| t.parse())
            .collect::<Result<_, _>>()?
    };
    let out = args.out.unwrap_or_else(|| data.join("replay"));
    let mut reports = Vec::new();
    for team in teams {
        let report = replay_team(team, log.as_ref(), &data, &out)
            .await
            .with_context(|| format!("cannot replay the {team} team"))?;
        reports.push(report);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_table(&reports);
    }
    let differing: Vec<&str> = reports
        .iter()
        .filter(|r| !r.matches())
        .map(|r| r.team.as_str())
        .collect();
    if !differing.is_empty() {
        anyhow::bail!(
            "the state rebuilt from the log differs from the live store for: {}",
            differing.join(", ")
        );
    }
    Ok(())
}

fn print_table(reports: &[ReplayReport]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "team",
        "events",
        "keys",
        "live hash",
        "replay hash",
        "same",
        "events/s",
    ]);
    for r in reports {
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        table.add_row(vec![
            Cell::new(&r.team),
            right(r.events.to_string()),
            right(r.keys.to_string()),
            Cell::new(&r.live_hash[..12]),
            Cell::new(&r.replay_hash[..12]),
            Cell::new(if r.matches() { "yes" } else { "NO" }),
            right(format!("{:.0}", r.events_per_sec)),
        ]);
    }
    println!("{table}");
    for r in reports {
        if r.duplicates > 0 || r.unreadable > 0 {
            println!(
                "{}: {} records read, {} published twice (folded once), {} unreadable (skipped)",
                r.team, r.records, r.duplicates, r.unreadable
            );
        }
        if r.from_outbox > 0 || r.after_snapshot > 0 {
            println!(
                "{}: the team was working: {} events folded from its outbox (not yet on the \
                 log), {} newer events on the log left out (decided after the snapshot)",
                r.team, r.from_outbox, r.after_snapshot
            );
        }
        if r.missing > 0 {
            println!(
                "{}: {} events the store decided are neither on the log nor in its outbox",
                r.team, r.missing
            );
        }
        if !r.matches() {
            println!(
                "{}: {} keys differ; the first ones:",
                r.team, r.differing_keys
            );
            for d in &r.differences {
                println!(
                    "  {}: live {} / replay {}",
                    d.key,
                    d.live.as_deref().unwrap_or("(missing)"),
                    d.replay.as_deref().unwrap_or("(missing)")
                );
            }
        }
        println!("{}: rebuilt store at {}", r.team, r.store.display());
    }
}
