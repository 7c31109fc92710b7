//! `returns stats`: usage statistics from the analytics view. The view catches up with the log
//! first (its own consumer group, `returns.analytics`), then its facts are aggregated: tables,
//! one JSON document (`--json`), or one CSV file per table as well (`--csv DIR`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use returns_eventlog::EventLog;
use returns_services::views::analytics::{Analytics, AnalyticsStore, Stats};
use returns_services::views::projection::{stalled_for, CatchUp, CatchUpProgress};
use returns_services::{Projection, ProjectionRunner, ServiceError};
use serde::Serialize;

use crate::config::Global;

/// A catch-up over fewer records than this shows no progress bar.
const LONG_CATCH_UP: u64 = 5_000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write one CSV file per table into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    log: String,
    caught_up: CaughtUp,
    #[serde(flatten)]
    stats: Stats,
}

/// What bringing the view up to date took.
#[derive(Serialize)]
struct CaughtUp {
    records: u64,
    applied: u64,
    duplicates: u64,
    skipped: u64,
    /// Skipped records read again (those read now count in `applied`).
    retried: u64,
    elapsed_ms: u64,
}

impl From<CatchUp> for CaughtUp {
    fn from(c: CatchUp) -> Self {
        CaughtUp {
            records: c.records,
            applied: c.counts.applied,
            duplicates: c.counts.duplicates,
            skipped: c.counts.skipped,
            retried: c.retried,
            elapsed_ms: c.elapsed.as_millis() as u64,
        }
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let log = global.open_log().await?;
    let dir = global.data_dir(log.as_ref())?;
    let caught_up = catch_up::<Analytics>(Arc::clone(&log), dir.clone(), !args.json).await?;
    let stats = tokio::task::spawn_blocking(move || AnalyticsStore::open(&dir)?.stats())
        .await
        .context("the analytics query panicked")?
        .context("reading the analytics view")?;
    if let Some(csv_dir) = &args.csv {
        let written = write_csv(csv_dir, &stats)
            .with_context(|| format!("writing CSV files to {}", csv_dir.display()))?;
        eprintln!("wrote {written} CSV files to {}", csv_dir.display());
    }
    let report = Report {
        log: log.describe(),
        caught_up: caught_up.into(),
        stats,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Bring a view up to date with the log, with a progress bar on stderr when that is a terminal
/// and the catch-up is long.
pub(crate) async fn catch_up<P: Projection>(
    log: Arc<dyn EventLog>,
    dir: PathBuf,
    show_progress: bool,
) -> anyhow::Result<CatchUp> {
    let describe = log.describe();
    let bar = ProgressBar::hidden();
    let shown = show_progress && std::io::stderr().is_terminal();
    let on_progress = {
        let bar = bar.clone();
        move |p: CatchUpProgress| {
            if !shown || p.total < LONG_CATCH_UP {
                return;
            }
            if bar.is_hidden() {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30.cyan/blue}] {human_pos}/{human_len} records {elapsed}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{} view", P::NAME));
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            bar.set_length(p.total);
            bar.set_position(p.done);
        }
    };
    let caught_up = ProjectionRunner::<P>::new(log, dir)
        .with_progress(on_progress)
        .catch_up()
        .await
        .map_err(|e| explain::<P>(e))
        .with_context(|| format!("bringing the {} view up to date with {describe}", P::NAME));
    bar.finish_and_clear();
    caught_up
}

/// A catch-up's error as the user should read it. A stalled catch-up comes as a
/// `LogError::Timeout`, whose message speaks of Kafka whatever the log: say what happened.
fn explain<P: Projection>(e: ServiceError) -> anyhow::Error {
    match stalled_for(&e) {
        Some(stalled) => anyhow::anyhow!(
            "the {} view moved no record forward for {} s while catching up (hint: the log \
             stopped answering, or no longer holds the records it reported; check the log, then \
             try again)",
            P::NAME,
            stalled.as_secs(),
        ),
        None => e.into(),
    }
}

fn print_report(r: &Report) {
    let s = &r.stats;
    let c = &r.caught_up;
    println!(
        "{} returns on {} (view brought up to date: {} records read, {} applied, {} duplicates, {} skipped, in {} ms)",
        s.returns, r.log, c.records, c.applied, c.duplicates, c.skipped, c.elapsed_ms
    );
    if !s.skipped.is_empty() {
        let kinds: Vec<String> = s.skipped.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!(
            "records the view cannot read (read again at each catch-up; the teams dead-letter them): {}",
            kinds.join(", ")
        );
    }

    println!("\nReturns per model and month");
    let by_model: Vec<(String, String, u64)> = s
        .returns_by_model_month
        .iter()
        .map(|m| (m.model.clone(), m.month.clone(), m.returns))
        .collect();
    println!("{}", pivot("model", &by_model, None));

    println!("\nReturns per defect and month (on arrival: share of the returns that say when)");
    let by_defect: Vec<(String, String, u64)> = s
        .returns_by_defect_month
        .iter()
        .map(|d| (d.defect.clone(), d.month.clone(), d.returns))
        .collect();
    let mut known: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for d in &s.returns_by_defect_month {
        let k = known.entry(&d.defect).or_default();
        k.0 += d.noticed_on_arrival;
        k.1 += d.returns - d.noticed_unknown;
    }
    let share = |defect: &str| match known.get(defect) {
        Some((on_arrival, known)) if *known > 0 => {
            format!("{:.1}%", 100.0 * *on_arrival as f64 / *known as f64)
        }
        _ => "-".to_string(),
    };
    println!(
        "{}",
        pivot("defect", &by_defect, Some(("on arrival", &share)))
    );

    println!("\nRefunds (Sales: OrderRefunded)");
    let mut table = new_table(&["currency", "refunds", "total"]);
    for m in &s.refunds {
        table.add_row(vec![
            Cell::new(&m.currency),
            right(m.count),
            right(decimal(m.total_minor)),
        ]);
    }
    print_table(&table);

    println!("\nDisposal cost per month (Accounting: AssetDisposalCharged)");
    let mut table = new_table(&["month", "currency", "disposals", "cost"]);
    for m in &s.disposal_cost_by_month {
        table.add_row(vec![
            Cell::new(&m.month),
            Cell::new(&m.currency),
            right(m.count),
            right(decimal(m.total_minor)),
        ]);
    }
    print_table(&table);

    println!("\nBackorders per model (Inventory: ReplacementBackordered)");
    let mut table = new_table(&["model", "backorders"]);
    for m in &s.backorders_by_model {
        table.add_row(vec![Cell::new(&m.model), right(m.count)]);
    }
    print_table(&table);

    println!("\nProcessing latency per team (the team's event time minus the request's, ms)");
    let mut table = new_table(&["team", "events", "p50", "p95", "p99", "max"]);
    let ms = |v: Option<f64>| right(v.map_or("-".to_string(), |v| format!("{v:.1}")));
    for l in &s.latency_ms {
        table.add_row(vec![
            Cell::new(l.team),
            right(l.count),
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max),
        ]);
    }
    print_table(&table);
}

/// A table, or `(none)` for one without rows.
fn print_table(table: &Table) {
    if table.row_iter().next().is_some() {
        println!("{table}");
    } else {
        println!("(none)");
    }
}

fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    table
}

fn right(value: impl ToString) -> Cell {
    Cell::new(value.to_string()).set_alignment(CellAlignment::Right)
}

/// A last column for [`pivot`]: its name, and its value for a row's label.
type ExtraColumn<'a> = (&'a str, &'a dyn Fn(&str) -> String);

/// Rows of (label, month, count) as one row per label and one column per month, with totals,
/// and optionally one more column computed from the label.
fn pivot(label: &str, cells: &[(String, String, u64)], extra: Option<ExtraColumn<'_>>) -> Table {
    let months: BTreeSet<&str> = cells.iter().map(|(_, m, _)| m.as_str()).collect();
    let mut rows: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for (l, m, n) in cells {
        rows.entry(l).or_default().insert(m, *n);
    }
    let mut header: Vec<&str> = vec![label];
    header.extend(&months);
    header.push("total");
    if let Some((name, _)) = extra {
        header.push(name);
    }
    let mut table = new_table(&header);
    let mut column_totals: BTreeMap<&str, u64> = BTreeMap::new();
    for (l, by_month) in &rows {
        let mut row = vec![Cell::new(l)];
        for m in &months {
            let n = by_month.get(m).copied().unwrap_or(0);
            *column_totals.entry(m).or_default() += n;
            row.push(right(n));
        }
        row.push(right(by_month.values().sum::<u64>()));
        if let Some((_, f)) = extra {
            row.push(right(f(l)));
        }
        table.add_row(row);
    }
    let mut total_row = vec![Cell::new("total")];
    total_row.extend(months.iter().map(|m| right(column_totals[m])));
    total_row.push(right(column_totals.values().sum::<u64>()));
    table.add_row(total_row);
    table
}

/// Minor units as a decimal amount, two places: `-1234` is `-12.34`.
fn decimal(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// One table as a CSV file.
struct CsvFile {
    name: &'static str,
    header: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

/// One CSV file per table; returns how many were written.
fn write_csv(dir: &Path, s: &Stats) -> std::io::Result<usize> {
    fn rows<T>(items: &[T], row: impl Fn(&T) -> Vec<String>) -> Vec<Vec<String>> {
        items.iter().map(row).collect()
    }
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    // A count and an amount: the count, the minor units, the decimal amount.
    let money = |count: u64, minor: i64| [count.to_string(), minor.to_string(), decimal(minor)];
    let skipped: Vec<(&String, &u64)> = s.skipped.iter().collect();
    let files = [
        CsvFile {
            name: "returns_by_model_month.csv",
            header: &["model", "month", "returns"],
            rows: rows(&s.returns_by_model_month, |m| {
                vec![m.model.clone(), m.month.clone(), m.returns.to_string()]
            }),
        },
        CsvFile {
            name: "returns_by_defect_month.csv",
            header: &[
                "defect",
                "month",
                "returns",
                "noticed_on_arrival",
                "noticed_unknown",
                "on_arrival_share",
            ],
            rows: rows(&s.returns_by_defect_month, |d| {
                let counts = [d.returns, d.noticed_on_arrival, d.noticed_unknown];
                [d.defect.clone(), d.month.clone()]
                    .into_iter()
                    .chain(counts.map(|n| n.to_string()))
                    .chain([opt(d.on_arrival_share)])
                    .collect()
            }),
        },
        CsvFile {
            name: "refunds.csv",
            header: &["currency", "refunds", "total_minor", "total"],
            rows: rows(&s.refunds, |m| {
                [
                    [m.currency.clone()].as_slice(),
                    &money(m.count, m.total_minor),
                ]
                .concat()
            }),
        },
        CsvFile {
            name: "disposal_cost_by_month.csv",
            header: &["month", "currency", "disposals", "cost_minor", "cost"],
            rows: rows(&s.disposal_cost_by_month, |m| {
                [
                    [m.month.clone(), m.currency.clone()].as_slice(),
                    &money(m.count, m.total_minor),
                ]
                .concat()
            }),
        },
        CsvFile {
            name: "backorders_by_model.csv",
            header: &["model", "backorders"],
            rows: rows(&s.backorders_by_model, |m| {
                vec![m.model.clone(), m.count.to_string()]
            }),
        },
        CsvFile {
            name: "latency_ms.csv",
            header: &["team", "events", "p50", "p95", "p99", "max"],
            rows: rows(&s.latency_ms, |l| {
                [l.team.to_string(), l.count.to_string()]
                    .into_iter()
                    .chain([l.p50, l.p95, l.p99, l.max].map(opt))
                    .collect()
            }),
        },
        CsvFile {
            name: "skipped.csv",
            header: &["kind", "records"],
            rows: rows(&skipped, |(kind, n)| vec![kind.to_string(), n.to_string()]),
        },
    ];
    std::fs::create_dir_all(dir)?;
    for file in &files {
        let mut text = csv_line(file.header.iter().copied());
        for row in &file.rows {
            text.push_str(&csv_line(row.iter().map(String::as_str)));
        }
        std::fs::write(dir.join(file.name), text)?;
    }
    Ok(files.len())
}

/// One CSV record (RFC 4180): a field with a comma, quote, CR or LF, or leading or trailing
/// space, is quoted, its quotes doubled; lines end with CRLF.
fn csv_line<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = fields
        .map(|f| {
            let needs = f.contains([',', '"', '\r', '\n']) || f.trim() != f;
            if needs {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect();
    format!("{}\r\n", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let line = csv_line(
            [
                "plain",
                "a,b",
                "say \"hi\"",
                "two\nlines",
                " padded",
                "",
                "é",
            ]
            .into_iter(),
        );
        assert_eq!(
            line,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\" padded\",,é\r\n"
        );
    }

    #[test]
    fn minor_units_print_as_decimals() {
        assert_eq!(decimal(0), "0.00");
        assert_eq!(decimal(5), "0.05");
        assert_eq!(decimal(123_456), "1234.56");
        assert_eq!(decimal(-1_005), "-10.05");
    }

    /// A stalled catch-up's error says what happened on any log; `LogError::Timeout` alone
    /// would blame Kafka. Other errors pass through as they are.
    #[test]
    fn a_stalled_catch_up_is_explained_without_blaming_kafka() {
        use returns_eventlog::LogError;
        use returns_services::views::projection::CATCH_UP_STALLED;

        let stalled = ServiceError::Log(LogError::Timeout {
            op: CATCH_UP_STALLED,
            seconds: 60,
        });
        let message = format!("{:#}", explain::<Analytics>(stalled));
        assert!(!message.contains("Kafka"), "{message}");
        assert!(
            message.contains("the analytics view moved no record forward for 60 s"),
            "{message}"
        );
        assert!(message.contains("stopped answering"), "{message}");
        assert!(!message.contains("member of its group"), "{message}");
        let read = ServiceError::Log(LogError::Timeout {
            op: "read",
            seconds: 10,
        });
        let expected = read.to_string();
        assert_eq!(format!("{:#}", explain::<Analytics>(read)), expected);
    }
}
