//! The `postbox` commands: each turns its parsed arguments into the
//! library's settings and calls the library. The developer tools (`bench`,
//! `receive`) live here, in the binary, and use the library like any caller.

pub mod args;
mod bench;
mod dev;
mod receive;

use std::sync::Arc;

use postbox::clock::{SharedClock, SystemClock};
use postbox::store::{PublishOptions, Store};

use args::Command;

/// Runs one command to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    match command {
        Command::Migrate(db) => {
            let store = Store::connect(&db.database_url, 1)?;
            let applied = store.migrate().await?;
            println!("migrations up to date ({applied} applied now)");
        }
        Command::Serve(args) => {
            let config = args.to_config()?;
            let shutdown = postbox::app::shutdown_on_signals();
            postbox::app::serve(config, None, clock, shutdown).await?;
        }
        Command::Publish(args) => {
            let payload: serde_json::Value = serde_json::from_str(&args.json)
                .map_err(|e| anyhow::anyhow!("the payload is not valid JSON: {e}"))?;
            let store = Store::connect(&args.db.database_url, 1)?;
            store.schema_check(false).await?;
            let published = store
                .event_publish(
                    &args.event_type,
                    &payload,
                    &args.owner,
                    &PublishOptions {
                        idempotency_key: args.idempotency_key.as_deref(),
                        ordering_key: args.ordering_key.as_deref(),
                        supersede: args.supersede,
                    },
                )
                .await
                // The database's own message for what the SQL function refused;
                // a connection failure keeps its cause for `startup::explain`.
                .map_err(|e| match e.db_message() {
                    Some(m) if !e.is_unmigrated() => anyhow::anyhow!("{m}"),
                    _ => e.into(),
                })?;
            // stdout stays the id alone; a repeat is said on stderr.
            if published.duplicate {
                eprintln!(
                    "{}",
                    if published.same_content {
                        "the idempotency key was already used: nothing added; this is the first event's id"
                    } else {
                        "the idempotency key was already used with another type or payload: nothing added; this is the first event's id"
                    }
                );
            }
            let id = published.id;
            println!("{id}");
        }
        Command::Token(args) => {
            let secret = args.jwt_secret.unwrap_or_default();
            let policy = postbox::api::auth::TokenPolicy {
                secret: &secret,
                issuer: args.jwt_issuer.as_deref().filter(|s| !s.is_empty()),
                audience: args.jwt_audience.as_deref().filter(|s| !s.is_empty()),
            };
            let now = clock.now().timestamp();
            let token =
                postbox::api::auth::mint_for(&policy, &args.sub, args.admin, args.ttl, now)?;
            // The token is the last line of stdout: scripts take it from there.
            println!("{token}");
        }
        Command::PortalLink(args) => {
            let store = Store::connect(&args.db.database_url, 2)?;
            store.schema_check(false).await?;
            let (clock, _) = postbox::app::database_clock(&store, clock).await;
            let base = postbox::config::PortalConfig::new(
                args.base_url.as_deref(),
                postbox::config::defaults::PORTAL_FRAME_ANCESTORS,
                postbox::config::defaults::duration(postbox::config::defaults::PORTAL_SESSION_TTL),
            )?
            .base_url;
            let base = if base.is_empty() {
                format!("http://{}", args.listen)
            } else {
                base
            };
            let request = postbox::portal::LinkRequest::new(&args.sub, args.admin, args.ttl)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let link = postbox::portal::mint_link(&store, &request, clock.now(), &base).await?;
            // The link is the last line of stdout: scripts take it from there.
            eprintln!("opens once, until {}", link.expires_at.to_rfc3339());
            println!("{}", link.url);
        }
        Command::Maintain(args) => {
            let config = args.maintenance.to_config()?;
            let store = Store::connect(&args.db.database_url, 2)?;
            store.schema_check(false).await?;
            let (clock, _) = postbox::app::database_clock(&store, clock).await;
            let report = postbox::maintenance::run_once(&store, &config, &clock).await?;
            for line in report.summary(&config) {
                println!("{line}");
            }
        }
        Command::Receive(args) => receive::run(args, clock).await?,
        Command::Bench(args) => bench::run(*args).await?,
        Command::Dev(args) => dev::run(args, clock).await?,
    }
    Ok(())
}

/// The database a command connects to, for start-up errors to name.
pub fn database_url(command: &Command) -> Option<String> {
    let db = match command {
        Command::Migrate(db) => db,
        Command::Serve(args) => &args.db,
        Command::Publish(args) => &args.db,
        Command::Maintain(args) => &args.db,
        Command::Bench(args) => &args.db,
        Command::PortalLink(args) => &args.db,
        Command::Token(_) | Command::Receive(_) | Command::Dev(_) => return None,
    };
    Some(db.database_url.clone())
}
