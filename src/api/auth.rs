//! API tokens: HS256 JWTs whose `sub` is the owner and whose `role: admin`
//! opens the admin routes.

use crate::config::TokenArgs;

/// `postbox token`: prints a token on the last line of stdout.
pub fn token_command(args: TokenArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("postbox token is not built yet")
}
