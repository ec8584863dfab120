//! The `postbox` binary: parse the command line, set up logging, call the
//! library. The commands and the developer tools live in `cli`.

use clap::Parser;

mod cli;

#[tokio::main]
async fn main() {
    let args = cli::args::Cli::parse();
    postbox::telemetry::init_logging(args.log_format.into());
    let database_url = cli::database_url(&args.command);
    let code = match cli::run(args.command).await {
        Ok(()) => 0,
        Err(e) => {
            // One line: what failed, where, and what to do next.
            let explained = postbox::startup::explain(e.as_ref(), database_url.as_deref());
            eprintln!("postbox: {}", explained.line);
            explained.exit_code
        }
    };
    std::process::exit(code);
}
