//! `returns dlq list`: the records teams set aside, with the reason. `returns dlq redrive`: put
//! them back in front of the teams after a fix (see `returns_services::tools::dead_letters`).
//! Not "replay": `returns replay` rebuilds a team's state from its own events.

use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use returns_eventlog::{team_group, Record, RETURN_ORDERS};
use returns_services::tools::dead_letters::{self, RedriveOptions, RedriveReport};
use returns_services::TeamName;
use serde::Serialize;

use crate::config::Global;
use crate::shutdown;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List dead-letter records.
    List {
        /// Only this team's dead letters.
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Put dead-lettered records back on returnOrders after a fix (a build that reads them
    /// now): each under its original event id, once. A team that decided the event skips it;
    /// a team that still cannot read it dead-letters it again with today's reason.
    Redrive {
        /// Only this team's dead letters (every team still sees the records put back, and
        /// skips those it has decided).
        #[arg(long)]
        team: Option<String>,
        /// Count what would be put back; move nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct DeadLetter {
    topic: String,
    partition: u32,
    offset: u64,
    /// `returns dlq redrive` has put it back on `returnOrders` (its group is past it).
    redriven: bool,
    group: String,
    original_topic: String,
    original_partition: String,
    original_offset: String,
    original_event_id: String,
    error_kind: String,
    error: String,
    payload: String,
}

impl DeadLetter {
    fn from_record(r: &Record) -> Self {
        let h = |k: &str| r.header(k).unwrap_or("").to_string();
        let mut payload = String::from_utf8_lossy(&r.payload).into_owned();
        if payload.len() > 120 {
            let cut = (0..=120)
                .rev()
                .find(|i| payload.is_char_boundary(*i))
                .unwrap_or(0);
            payload.truncate(cut);
            payload.push('…');
        }
        DeadLetter {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            redriven: false,
            group: h("dlt_group"),
            original_topic: h("dlt_original_topic"),
            original_partition: h("dlt_original_partition"),
            original_offset: h("dlt_original_offset"),
            original_event_id: h("dlt_original_event_id"),
            error_kind: h("dlt_error_kind"),
            error: h("dlt_error"),
            payload,
        }
    }
}

pub async fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { team, json } => list(global, team, json).await,
        Command::Redrive {
            team,
            dry_run,
            json,
        } => redrive(global, team, dry_run, json).await,
    }
}

async fn redrive(
    global: &Global,
    team: Option<String>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let teams: Vec<TeamName> = match team {
        Some(t) => vec![t.parse()?],
        None => TeamName::EVERY.to_vec(),
    };
    let log = global.open_log().await?;
    let options = RedriveOptions {
        teams: &teams,
        dry_run,
        fix: None,
    };
    let report = dead_letters::redrive(&log, options, &shutdown::on_signal()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_redrive(&report, &log.describe());
    }
    Ok(())
}

fn print_redrive(report: &RedriveReport, log: &str) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "team",
        if report.dry_run {
            "to put back"
        } else {
            "put back"
        },
        "put back before",
        "by error",
        "no event id",
    ]);
    for (team, t) in &report.teams {
        let kinds: Vec<String> = t.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        table.add_row(vec![
            team.clone(),
            t.put_back.to_string(),
            t.repeats.to_string(),
            kinds.join(", "),
            t.unusable.to_string(),
        ]);
    }
    for column in [1, 2, 4] {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!("{table}");
    if report.dry_run {
        println!(
            "dry run: {} record(s) would go back on {RETURN_ORDERS} of {log}; nothing moved",
            report.appended
        );
    } else {
        println!(
            "{} record(s) put back on {RETURN_ORDERS} of {log}, one per event",
            report.appended
        );
    }
    if report.interrupted {
        println!("interrupted: the rest is left for the next run");
    }
}

async fn list(global: &Global, team: Option<String>, json: bool) -> anyhow::Result<()> {
    if let Some(t) = &team {
        t.parse::<TeamName>()?;
    }
    let log = global.open_log().await?;
    let wanted = team.map(|t| returns_eventlog::dead_letter_topic(RETURN_ORDERS, &team_group(&t)));
    let mut letters = Vec::new();
    for topic in log.topics().await? {
        if !topic.ends_with(".dlt") || wanted.as_ref().is_some_and(|w| *w != topic) {
            continue;
        }
        // What its redrive group has read was put back (a topic of no team of ours has none).
        let put_back = match TeamName::EVERY
            .into_iter()
            .find(|t| dead_letters::team_dead_letters(*t) == topic)
        {
            Some(team) => {
                log.committed(&dead_letters::redrive_group(team), &topic)
                    .await?
            }
            None => Vec::new(),
        };
        log.for_each_record(&topic, &mut |r| {
            let mut letter = DeadLetter::from_record(&r);
            // A letter naming no event is passed over by a redrive, never put back.
            letter.redriven = put_back
                .get(r.partition as usize)
                .is_some_and(|&next| r.offset < next)
                && dead_letters::record_to_put_back(&r).is_some();
            letters.push(letter);
        })
        .await?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&letters)?);
        return Ok(());
    }
    if letters.is_empty() {
        println!("no dead letters on {}", log.describe());
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["group", "from", "error", "put back", "payload"]);
    for d in &letters {
        table.add_row(vec![
            d.group.clone(),
            format!(
                "{}/{}@{}",
                d.original_topic, d.original_partition, d.original_offset
            ),
            format!("{}: {}", d.error_kind, d.error),
            if d.redriven { "yes" } else { "" }.to_string(),
            d.payload.clone(),
        ]);
    }
    println!("{table}");
    let redriven = letters.iter().filter(|d| d.redriven).count();
    println!(
        "{} dead letter(s), {redriven} of them put back by `returns dlq redrive`",
        letters.len()
    );
    Ok(())
}
