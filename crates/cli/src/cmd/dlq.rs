//! `returns dlq list`: the records teams set aside, with the reason.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use returns_eventlog::{team_group, Record, RETURN_ORDERS};
use serde::Serialize;

use crate::config::Global;

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
}

#[derive(Serialize)]
struct DeadLetter {
    topic: String,
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
    let Command::List { team, json } = command;
    if let Some(t) = &team {
        t.parse::<returns_services::TeamName>()?;
    }
    let log = global.open_log().await?;
    let wanted = team.map(|t| returns_eventlog::dead_letter_topic(RETURN_ORDERS, &team_group(&t)));
    let mut letters = Vec::new();
    for topic in log.topics().await? {
        if !topic.ends_with(".dlt") || wanted.as_ref().is_some_and(|w| *w != topic) {
            continue;
        }
        log.for_each_record(&topic, &mut |r| letters.push(DeadLetter::from_record(&r)))
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
        .set_header(vec!["group", "from", "error", "payload"]);
    for d in &letters {
        table.add_row(vec![
            d.group.clone(),
            format!(
                "{}/{}@{}",
                d.original_topic, d.original_partition, d.original_offset
            ),
            format!("{}: {}", d.error_kind, d.error),
            d.payload.clone(),
        ]);
    }
    println!("{table}");
    println!("{} dead letter(s)", letters.len());
    Ok(())
}
