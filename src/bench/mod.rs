//! `postbox bench`: the load benchmark.

use crate::config::BenchArgs;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("postbox bench is not built yet")
}
