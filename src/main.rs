//! The `postbox` binary: parse the command line, set up logging, call the library.

use clap::Parser;

use postbox::config::{Cli, Command};
use postbox::store::Store;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    postbox::telemetry::init_logging(cli.log_format);
    let code = match run(cli.command).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("postbox: {e:#}");
            e.downcast_ref::<postbox::error::AppError>()
                .map(|a| a.exit_code())
                .unwrap_or(1)
        }
    };
    std::process::exit(code);
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate(db) => {
            let store = Store::connect(&db.database_url, 1)?;
            let applied = store.migrate().await?;
            println!("migrations up to date ({applied} applied now)");
        }
        Command::Serve(args) => {
            let shutdown = postbox::app::shutdown_on_signals();
            postbox::app::serve(*args, None, shutdown).await?;
        }
        Command::Publish(args) => {
            let payload: serde_json::Value = serde_json::from_str(&args.json)
                .map_err(|e| anyhow::anyhow!("the payload is not valid JSON: {e}"))?;
            let store = Store::connect(&args.db.database_url, 1)?;
            let id = store
                .event_publish(
                    &args.event_type,
                    &payload,
                    &args.owner,
                    args.idempotency_key.as_deref(),
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}",
                        e.db_message()
                            .map(str::to_string)
                            .unwrap_or_else(|| e.to_string())
                    )
                })?;
            println!("{id}");
        }
        Command::Token(args) => postbox::api::auth::token_command(args)?,
        Command::Maintain(args) => {
            let store = Store::connect(&args.db.database_url, 2)?;
            let report = postbox::maintenance::run_once(&store, &args.maintenance).await?;
            let config = postbox::maintenance::MaintenanceConfig::from(&args.maintenance);
            for line in report.summary(&config) {
                println!("{line}");
            }
        }
        Command::Receive(args) => postbox::receive::run(args).await?,
        Command::Bench(args) => postbox::bench::run(*args).await?,
    }
    Ok(())
}
