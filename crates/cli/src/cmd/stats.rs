//! `returns stats`: being built (issue 5).

use crate::config::Global;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`returns stats` is not built yet")
}
