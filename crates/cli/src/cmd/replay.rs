//! `returns replay`: being built (issue 5).

use crate::config::Global;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`returns replay` is not built yet")
}
