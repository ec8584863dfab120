//! Postbox: rows committed to `postbox.events` become signed, retried webhooks.
//!
//! Codemap:
//! - `config`     every setting (flag, env variable, default), parsed by clap
//! - `app`        wiring: pool, migrations, roles, ordered shutdown
//! - `store`      the only module that talks to Postgres (statements in `sql/`)
//! - `dispatch`   claim -> send -> complete; `retry` is the pure schedule
//! - `signing`    Standard Webhooks sign/verify, pure
//! - `net`        which addresses a webhook may reach (SSRF guard)
//! - `api`        the warp HTTP API
//! - `inbound`    Stripe and Clerk webhooks into `postbox.inbox`
//! - `web`        HTTP pieces both share: envelope, errors, body reader
//! - `maintenance` cron scheduler, retention, auto-disable
//! - `receive`    the development receiver
//! - `bench`      the load benchmark
//! - `clock`      time as an input
//! - `telemetry`  logging and metrics set-up
//! - `error`      the wiring layer's error type

pub mod api;
pub mod app;
pub mod bench;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod inbound;
pub mod maintenance;
pub mod net;
pub mod publish;
pub mod receive;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod web;
