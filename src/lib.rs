//! Postbox: rows committed to `postbox.events` become signed, retried webhooks.
//!
//! Codemap:
//! - `config`     the validated settings the library takes, and every default
//! - `app`        wiring: pool, migrations, roles, ordered shutdown
//! - `store`      the only module that talks to Postgres (statements in `sql/`)
//! - `dispatch`   claim -> send -> complete; `retry` is the pure schedule
//! - `signing`    Standard Webhooks sign/verify, pure
//! - `net`        which addresses a webhook may reach (SSRF guard)
//! - `api`        the warp HTTP API
//! - `inbound`    Stripe and Clerk webhooks into `postbox.inbox`
//! - `web`        HTTP pieces both share: envelope, errors, body reader
//! - `maintenance` cron scheduler, retention, auto-disable
//! - `clock`      time as an input
//! - `telemetry`  logging and metrics set-up
//! - `error`      the wiring layer's error type
//! - `startup`    start-up failures explained in one line, with an exit code
//! - `dev`        the private PostgreSQL cluster of `postbox dev` and the test harness
//!
//! The `postbox` binary (`src/main.rs`, `src/cli/`) parses the command line
//! and holds the developer tools (`receive`, `bench`); the library has no
//! clap type.

pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod dev;
pub mod dispatch;
pub mod error;
pub mod inbound;
pub mod maintenance;
pub mod net;
pub mod publish;
pub mod signing;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod web;
