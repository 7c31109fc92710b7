//! `returns audit RETURN_ID` (one return across every team) and `returns audit --team TEAM`
//! (one team's own log), read from the event log.

use std::str::FromStr;

use anyhow::{bail, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use returns_domain::ReturnId;
use returns_eventlog::RETURN_ORDERS;
use returns_services::tools::audit::{team_log, timeline, AuditEntry};
use returns_services::user_support::intake::USER_SUPPORT;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::config::Global;

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["return_id", "team"]))]
pub struct Args {
    /// The return whose timeline to show.
    pub return_id: Option<String>,
    /// Show this team's own log instead (sales, inventory, manufacturing, accounting, or a team
    /// that joined later, such as quality; user-support for its requests on returnOrders).
    #[arg(long)]
    pub team: Option<String>,
    /// With --team: only events from this time on, RFC 3339 (2026-03-01T00:00:00Z) or a span
    /// back from now (90s, 15m, 2h, 7d).
    #[arg(long, requires = "team")]
    pub since: Option<String>,
    /// With --team: show only the last N events (0 for all).
    #[arg(long, default_value_t = 50, requires = "team")]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let log = global.open_log().await?;
    if let Some(team) = &args.team {
        let since = args.since.as_deref().map(parse_since).transpose()?;
        let Some(entries) = team_log(log.as_ref(), team, since).await? else {
            if team == USER_SUPPORT {
                bail!(
                    "nothing published to {RETURN_ORDERS} on {} yet (hint: User Support \
                     publishes with `returns publish` or `returns serve`)",
                    log.describe()
                );
            }
            bail!(
                "no events from team `{team}` on {} (hint: is the team's name right, and has it \
                 run against this log? `returns run {team}`)",
                log.describe()
            );
        };
        let total = entries.len();
        if total == 0 && !args.json {
            println!(
                "team `{team}` has no events on {}{}",
                log.describe(),
                if args.since.is_some() {
                    " in that time"
                } else {
                    " yet"
                }
            );
            return Ok(());
        }
        let shown = if args.limit == 0 {
            &entries[..]
        } else {
            &entries[total.saturating_sub(args.limit)..]
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(shown)?);
        } else {
            print_entries(shown, false);
            if shown.len() < total {
                println!(
                    "the last {} of {total} events; --limit 0 shows all",
                    shown.len()
                );
            }
        }
        return Ok(());
    }
    let return_id = args.return_id.as_deref().unwrap_or_default();
    let id = ReturnId::from_str(return_id).context("not a return id")?;
    let entries = timeline(log.as_ref(), &id.to_string()).await?;
    if entries.is_empty() {
        bail!(
            "return {id} is not on {} (hint: is --log/--data the log it was published to?)",
            log.describe()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print_entries(&entries, true);
    }
    Ok(())
}

fn print_entries(entries: &[AuditEntry], causes: bool) {
    let mut table = Table::new();
    let mut header = vec!["time", "team", "what", "event id"];
    if causes {
        header.push("caused by");
    } else {
        header.insert(1, "return");
    }
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    for e in entries {
        // Milliseconds are enough to read; --json keeps the full time.
        let time = e.time.get(..23).unwrap_or(&e.time).replace('T', " ");
        let mut row = vec![time, e.team.clone(), e.outcome.clone(), e.event_id.clone()];
        if causes {
            row.push(e.causation_id.clone().unwrap_or_else(|| "-".into()));
        } else {
            row.insert(1, e.correlation_id.clone().unwrap_or_else(|| "-".into()));
        }
        table.add_row(row);
    }
    println!("{table}");
}

/// RFC 3339, or a span back from now: a number and one of s, m, h, d.
fn parse_since(text: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let hint = || {
        format!("--since `{text}`: expected RFC 3339 (2026-03-01T00:00:00Z) or a span such as 90s, 15m, 2h, 7d")
    };
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split), text.get(split..));
    let n: i64 = number
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 0)
        .with_context(hint)?;
    let seconds_per = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3_600,
        Some("d") => 86_400,
        _ => bail!(hint()),
    };
    n.checked_mul(seconds_per)
        .map(Duration::seconds)
        .and_then(|span| OffsetDateTime::now_utc().checked_sub(span))
        .with_context(|| format!("--since `{text}`: too far back"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_rfc3339_and_spans() {
        let t = parse_since("2026-03-01T00:00:00Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1_772_323_200);
        let ago = OffsetDateTime::now_utc() - parse_since("2h").unwrap();
        assert!((ago.whole_seconds() - 7_200).abs() < 5, "{ago}");
        for bad in ["", "h", "-2h", "2w", "yesterday", "2026-03-01"] {
            let err = parse_since(bad).unwrap_err().to_string();
            assert!(err.contains("expected RFC 3339"), "{bad}: {err}");
        }
        for huge in ["9999999d", "9999999999999999d", "9223372036854775807s"] {
            let err = parse_since(huge).unwrap_err().to_string();
            assert!(err.contains("too far back"), "{huge}: {err}");
        }
    }
}
