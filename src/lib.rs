//! Postbox: rows committed to `postbox.events` become signed, retried webhooks.
//!
//! Codemap (docs/ARCHITECTURE.md has the file by file map and the reasons):
//! - `config`      the validated settings the library takes, and every default
//! - `app`         wiring: pool, migrations, roles, the database clock, ordered shutdown
//! - `store`       Postgres, and only here: a file per table, a method per `sql/` file
//! - `dispatch`    producer (claim) -> executor (send) -> completer (record)
//! - `signing`     Standard Webhooks sign/verify, pure
//! - `net`         which addresses a webhook may reach (SSRF guard)
//! - `api`         the management API; `route::Route` is the route table as a type
//! - `portal`      the web portal under /portal/: links, sessions, pages, live tail
//! - `inbound`     Stripe and Clerk webhooks into `postbox.inbox`
//! - `web`         HTTP pieces both share: envelope, errors, body reader
//! - `maintenance` cron scheduler, lease rescue, retention, auto-disable
//! - `publish`     publishing from Rust inside the caller's transaction
//! - `clock`       time as an input; production keeps the database's clock
//! - `telemetry`   logging and metrics set-up
//! - `error`       the wiring layer's error type and exit codes
//! - `startup`     start-up failures explained in one line, with an exit code
//! - `dev`         the private PostgreSQL cluster of `postbox dev` and the test harness
//!
//! The `postbox` binary (`src/main.rs`, `src/cli/`) parses the command line
//! and holds the developer tools (`dev`, `receive`, `bench`); the library has
//! no clap type.

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
pub mod portal;
pub mod publish;
pub mod signing;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod web;
