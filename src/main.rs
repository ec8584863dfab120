//! The `postbox` binary: parse the command line, set up logging, call the
//! library. The commands and the developer tools live in `cli`.

use clap::Parser;

mod cli;

#[tokio::main]
async fn main() {
    let args = cli::args::Cli::parse();
    postbox::telemetry::init_logging(args.log_format.into());
    let code = match cli::run(args.command).await {
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
