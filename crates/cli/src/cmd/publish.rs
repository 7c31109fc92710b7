//! `returns publish`: User Support's one repeatable call, from the command line.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use returns_domain::Generator;
use returns_eventlog::wire::{self, REFUND_REQUEST_DEFAULT_TYPE, REFUND_REQUEST_TYPE};
use returns_eventlog::{OutRecord, RETURN_ORDERS};
use returns_services::Publisher;

use crate::config::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many generated returns to publish (ignored with --file).
    #[arg(long = "returns", short = 'n', default_value_t = 1)]
    pub returns: u64,
    /// Seed of the return generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First generator index (default: continue where `returnOrders` ends).
    #[arg(long)]
    pub from_index: Option<u64>,
    /// Publish the requests in this file instead: one RefundRequest JSON object per line, v2
    /// (with a `reason`) or v1 (with a bare `defect`); each is published as v2.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// With --file: append each line as it is, unchecked and without headers, as Kafka's console
    /// producer would (to see how the teams deal with bad input).
    #[arg(long, requires = "file")]
    pub raw: bool,
    /// Print the positions as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let log = global.open_log().await?;
    let positions = match &args.file {
        Some(path) if args.raw => {
            let records = read_lines(path)?
                .into_iter()
                .map(|(n, line)| OutRecord {
                    key: format!("line-{n}"),
                    headers: Vec::new(),
                    payload: line.into_bytes(),
                })
                .collect();
            log.append(RETURN_ORDERS, records).await?
        }
        Some(path) => {
            let mut requests = Vec::new();
            for (n, line) in read_lines(path)? {
                let object: serde_json::Value = serde_json::from_str(&line)
                    .with_context(|| format!("{}:{n}: not a JSON object", path.display()))?;
                let version = if object.get("reason").is_some() {
                    REFUND_REQUEST_TYPE
                } else {
                    REFUND_REQUEST_DEFAULT_TYPE
                };
                let req = wire::decode_refund_request_payload(version, line.as_bytes())
                    .with_context(|| format!("{}:{n}: not a valid {version}", path.display()))?;
                requests.push(req);
            }
            Publisher::new(log.clone()).publish(&requests).await?
        }
        None => {
            let start = match args.from_index {
                Some(i) => i,
                None => Publisher::new(log.clone()).records_on_topic().await?,
            };
            let requests: Vec<_> = Generator::new(args.seed)
                .requests(start..start + args.returns)
                .collect();
            Publisher::new(log.clone()).publish(&requests).await?
        }
    };
    if args.json {
        let out: Vec<_> = positions
            .iter()
            .map(|p| serde_json::json!({"topic": p.topic, "partition": p.partition, "offset": p.offset}))
            .collect();
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "published {} record(s) to {RETURN_ORDERS} on {}",
            positions.len(),
            log.describe()
        );
    }
    Ok(())
}

fn read_lines(path: &PathBuf) -> anyhow::Result<Vec<(usize, String)>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if !line.trim().is_empty() {
            out.push((i + 1, line));
        }
    }
    if out.is_empty() {
        bail!(
            "{} has no records (one JSON object per line expected)",
            path.display()
        );
    }
    Ok(out)
}
