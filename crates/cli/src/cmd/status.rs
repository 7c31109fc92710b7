//! `returns status RETURN_ID`: where is my return? User Support's status view catches up with
//! the log (its own consumer group, `returns.user-support.status`), then answers from its own
//! file: when the return was requested and, per team, the team's decision or `pending`. No team
//! is called and no team's store is opened.

use std::sync::Arc;

use anyhow::{bail, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use returns_domain::ReturnId;
use returns_eventlog::RETURN_ORDERS;
use returns_services::views::status::{ReturnStatus, StatusStore, StatusView};

use crate::cmd::stats::catch_up;
use crate::config::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The return's id: the `return_id` of its request, a UUID.
    pub return_id: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let return_id: ReturnId = args.return_id.trim().parse().with_context(|| {
        format!(
            "`{}` is not a return id (expected the request's return_id, a UUID such as \
             0f8e4c2a-6b1d-4e7f-9a3c-5d2b8e1f7a64)",
            args.return_id
        )
    })?;
    let log = global.open_log().await?;
    let dir = global.data_dir(log.as_ref())?;
    catch_up::<StatusView>(Arc::clone(&log), dir.clone(), !args.json).await?;
    let (status, known) = tokio::task::spawn_blocking(move || {
        let store = StatusStore::open(&dir)?;
        Ok::<_, returns_services::ServiceError>((store.status(&return_id)?, store.returns_known()?))
    })
    .await
    .context("the status query panicked")?
    .context("reading the status view")?;
    let Some(status) = status else {
        bail!(
            "no return {return_id} on {}: nothing about it has been published there \
             ({known} returns are). Check the id, and that --log (and --data) name the log the \
             return was published to",
            log.describe()
        );
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_status(&status);
    }
    Ok(())
}

fn print_status(s: &ReturnStatus) {
    match (&s.request, &s.unreadable_request) {
        (Some(r), _) => println!(
            "return {}: requested {}, published {}",
            s.return_id, r.requested_at, r.published_at
        ),
        (None, Some(u)) => println!(
            "return {}: its request ({}[{}] offset {}) cannot be read by this view: {} ({}); \
             the teams dead-letter what they cannot read (see `returns dlq list`); teams' events \
             follow",
            s.return_id, u.topic, u.partition, u.offset, u.kind, u.reason
        ),
        (None, None) => println!(
            "return {}: no request for it has been read from {RETURN_ORDERS}; teams' events \
             follow",
            s.return_id
        ),
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["team", "outcome", "event", "reason", "at"]);
    for t in &s.teams {
        let d = t.decision.as_ref();
        table.add_row(vec![
            t.team.to_string(),
            t.status.as_str().to_string(),
            // `returns.sales.OrderRefunded.v1` reads as `OrderRefunded.v1` in the sales row.
            d.map_or(String::new(), |d| {
                let prefix = format!("returns.{}.", t.team);
                d.event_type
                    .strip_prefix(&prefix)
                    .unwrap_or(&d.event_type)
                    .to_string()
            }),
            d.and_then(|d| d.reason.clone()).unwrap_or_default(),
            d.map_or(String::new(), |d| d.at.clone()),
        ]);
    }
    println!("{table}");
    let decided = s.teams.iter().filter(|t| t.decision.is_some()).count();
    if s.complete {
        println!("every team has decided");
    } else if s.request.is_none() && decided == s.teams.len() {
        println!("every team has decided; the request itself is not read yet");
    } else {
        println!("waiting for {} team(s)", s.teams.len() - decided);
    }
}
