//! `postbox receive`: a development receiver that prints each delivery and
//! whether its signature and timestamp verify.

use crate::config::ReceiveArgs;

pub async fn run(args: ReceiveArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("postbox receive is not built yet")
}
