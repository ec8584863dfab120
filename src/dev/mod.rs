//! Development support in the library: the private PostgreSQL cluster that
//! `postbox dev` (the binary's `cli::dev`) runs its database in and that the
//! test harness starts when no server answers, and the demo webhook's
//! identity. `postbox serve` never uses it: production starts no database.

pub mod cluster;

use uuid::Uuid;

/// The demo webhook's fixed id: `postbox dev` registers it again on every
/// start, re-pointing it at that run's receiver instead of adding another.
pub const DEMO_WEBHOOK_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_00de);
/// The owner of the demo webhook and of the events the printed `psql` line publishes.
pub const DEMO_OWNER: &str = "demo";
