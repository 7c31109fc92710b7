//! `returns run TEAM`: one team as its own process.

use std::sync::Arc;

use anyhow::Context;
use returns_services::{spawn_team, TeamMetrics, TeamName};

use crate::config::Global;
use crate::shutdown;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// sales, inventory, manufacturing, accounting, or quality (a late subscriber: started at any
    /// time, it catches up from the beginning of returnOrders).
    pub team: String,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let team: TeamName = args.team.parse()?;
    let log = global.open_log().await?;
    let data = global.data_dir(log.as_ref())?;
    let metrics = Arc::new(TeamMetrics::new(team.as_str()));
    let shutdown = shutdown::on_signal();
    eprintln!(
        "{team}: handling returnOrders on {}, store in {} (Ctrl-C to stop)",
        log.describe(),
        data.display()
    );
    spawn_team(team, log, data, Arc::clone(&metrics), shutdown)
        .await
        .with_context(|| format!("the {team} team panicked"))?
        .with_context(|| format!("the {team} team failed"))?;
    let s = metrics.snapshot();
    eprintln!(
        "{team}: stopped after {} processed, {} duplicates skipped, {} dead-lettered",
        s.processed, s.duplicates_skipped, s.dead_lettered
    );
    Ok(())
}
