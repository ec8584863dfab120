//! Every setting: its flag, its environment variable, its default. Parsed by
//! clap at start-up (a bad value is a clear error before anything runs) and
//! turned into the plain config structs the library takes.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::dispatch::DispatchConfig;

#[derive(Debug, Parser)]
#[command(
    name = "postbox",
    version,
    about = "Transactional outbox to signed webhooks, with Postgres as the only dependency"
)]
pub struct Cli {
    /// Log format: pretty for people, json for one JSON object per line. RUST_LOG filters.
    #[arg(
        long,
        env = "POSTBOX_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations to DATABASE_URL (safe to run again)
    Migrate(DbArgs),
    /// Run the API, the dispatcher and the maintenance scheduler
    Serve(Box<ServeArgs>),
    /// Publish one event, exactly as postbox.publish() does
    Publish(PublishArgs),
    /// Mint an API token signed with POSTBOX_JWT_SECRET
    Token(TokenArgs),
    /// Run the maintenance jobs once and exit
    Maintain(MaintainArgs),
    /// A development receiver: prints each delivery and whether its signature verifies
    Receive(ReceiveArgs),
    /// The load benchmark: drain, latency, producer cost, scale, isolation
    Bench(Box<BenchArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The application's database; postbox lives in its schema `postbox`
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@localhost:5432/postgres",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Connections in the pool
    #[arg(long, env = "POSTBOX_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
}

#[derive(Debug, Clone, Args)]
pub struct DispatchArgs {
    /// Deliveries in flight at once per dispatcher
    #[arg(long, env = "POSTBOX_CONCURRENCY", default_value_t = 128)]
    pub concurrency: usize,
    /// Deliveries in flight at once to one webhook, per dispatcher
    #[arg(long, env = "POSTBOX_ENDPOINT_CONCURRENCY", default_value_t = 32)]
    pub endpoint_concurrency: usize,
    /// Deliveries started per second per dispatcher; 0 = unlimited
    #[arg(long, env = "POSTBOX_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,
    /// Time limit of one HTTP attempt (connect, headers and body)
    #[arg(long, env = "POSTBOX_REQUEST_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Allow endpoints on loopback, private, link-local and other non-public addresses
    #[arg(long, env = "POSTBOX_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// Refuse http:// endpoint URLs
    #[arg(long, env = "POSTBOX_REQUIRE_HTTPS")]
    pub require_https: bool,
    /// How long SIGTERM waits for in-flight requests
    #[arg(long, env = "POSTBOX_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Longest idle sleep without a NOTIFY (missed notifications, due retries)
    #[arg(long, env = "POSTBOX_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Events fanned out per statement and most deliveries claimed at once
    #[arg(long, env = "POSTBOX_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,
    /// The dispatcher's own writes (claims, outcomes) commit without waiting
    /// for the WAL flush (synchronous_commit=off); a Postgres crash can only
    /// make a delivery be sent again
    #[arg(long, env = "POSTBOX_DISPATCHER_ASYNC_COMMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub dispatcher_async_commit: bool,
}

impl DispatchArgs {
    pub fn to_config(&self) -> DispatchConfig {
        DispatchConfig {
            concurrency: self.concurrency.max(1),
            endpoint_concurrency: self.endpoint_concurrency.max(1),
            rate_limit: self.rate_limit,
            request_timeout: self.request_timeout,
            allow_private_targets: self.allow_private_targets,
            require_https: self.require_https,
            shutdown_timeout: self.shutdown_timeout,
            // A zero poll would spin; 10 ms is already far below any use.
            poll_interval: self.poll_interval.max(std::time::Duration::from_millis(10)),
            batch_size: self.batch_size.max(1),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// API address
    #[arg(long, env = "POSTBOX_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    /// HS256 key for API tokens (required when the API runs)
    #[arg(long, env = "POSTBOX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Secret of POST /api/webhooks/stripe (whsec_...); unset: that route answers 503
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Secret of POST /api/webhooks/clerk (whsec_...); unset: that route answers 503
    #[arg(long, env = "CLERK_WEBHOOK_SECRET", hide_env_values = true)]
    pub clerk_webhook_secret: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct MaintenanceArgs {
    /// A webhook failing without any success for this long is disabled
    #[arg(long, env = "POSTBOX_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub disable_after: Duration,
    /// How long successful deliveries are kept
    #[arg(long, env = "POSTBOX_RETENTION_SUCCESS", default_value = "24h", value_parser = parse_duration)]
    pub retention_success: Duration,
    /// How long failed deliveries are kept
    #[arg(long, env = "POSTBOX_RETENTION_FAILED", default_value = "7d", value_parser = parse_duration)]
    pub retention_failed: Duration,
    /// Cron expression for the maintenance jobs (6 fields with seconds, or 5-field unix cron)
    #[arg(
        long,
        env = "POSTBOX_MAINTENANCE_SCHEDULE",
        default_value = "0 * * * * *"
    )]
    pub maintenance_schedule: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub dispatch: DispatchArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub maintenance: MaintenanceArgs,
    /// Also serve /metrics on this address (useful with --no-api)
    #[arg(long, env = "POSTBOX_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Do not serve the API
    #[arg(long, env = "POSTBOX_NO_API")]
    pub no_api: bool,
    /// Do not run a dispatcher
    #[arg(long, env = "POSTBOX_NO_DISPATCHER")]
    pub no_dispatcher: bool,
    /// Do not run the maintenance scheduler
    #[arg(long, env = "POSTBOX_NO_MAINTENANCE")]
    pub no_maintenance: bool,
    /// Do not apply migrations at start-up
    #[arg(long, env = "POSTBOX_NO_MIGRATE")]
    pub no_migrate: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Event type, e.g. project.updated
    pub event_type: String,
    /// Payload: a JSON object
    pub json: String,
    /// Owner of the event (the tenant whose webhooks receive it)
    #[arg(long, env = "POSTBOX_OWNER")]
    pub owner: String,
    /// Idempotency key: a second publish with the same owner and key adds nothing
    #[arg(long, env = "POSTBOX_IDEMPOTENCY_KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Subject: the owner id the token acts for
    #[arg(long, env = "POSTBOX_TOKEN_SUB")]
    pub sub: String,
    /// Add the admin role (queue routes)
    #[arg(long, env = "POSTBOX_TOKEN_ADMIN")]
    pub admin: bool,
    /// Lifetime of the token
    #[arg(long, env = "POSTBOX_TOKEN_TTL", default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// HS256 key
    #[arg(long, env = "POSTBOX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct MaintainArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub maintenance: MaintenanceArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReceiveArgs {
    /// Port to listen on (127.0.0.1 unless --host)
    #[arg(long, env = "POSTBOX_RECEIVE_PORT", default_value_t = 4000)]
    pub port: u16,
    /// Address to bind
    #[arg(long, env = "POSTBOX_RECEIVE_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// The webhook's secret (whsec_...), to verify signatures
    #[arg(long, env = "POSTBOX_RECEIVE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Fraction of deliveries to answer with 500 (0.0-1.0), to watch retries
    #[arg(long, env = "POSTBOX_RECEIVE_FAIL_RATE", default_value_t = 0.0)]
    pub fail_rate: f64,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print one JSON object instead of a table
    #[arg(long, env = "POSTBOX_BENCH_JSON")]
    pub json: bool,
    /// Small sizes: finishes in under a minute
    #[arg(long, env = "POSTBOX_BENCH_QUICK")]
    pub quick: bool,
    /// Events in the drain test
    #[arg(long, env = "POSTBOX_BENCH_EVENTS")]
    pub events: Option<usize>,
    /// Endpoints in the drain test
    #[arg(long, env = "POSTBOX_BENCH_ENDPOINTS", default_value_t = 10)]
    pub endpoints: usize,
    /// Producer connections in the steady and producer-cost tests
    #[arg(long, env = "POSTBOX_BENCH_PRODUCERS", default_value_t = 8)]
    pub producers: usize,
    /// Events per second in the steady test
    #[arg(long, env = "POSTBOX_BENCH_RATE", default_value_t = 1000)]
    pub rate: u32,
    /// Length of the steady and producer-cost tests
    #[arg(long, env = "POSTBOX_BENCH_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Finished deliveries put in the tables before the scale test (0 skips it)
    #[arg(long, env = "POSTBOX_BENCH_SCALE_FINISHED")]
    pub scale_finished: Option<usize>,
    /// Future retries put in the tables before the scale test
    #[arg(long, env = "POSTBOX_BENCH_SCALE_FUTURE")]
    pub scale_future: Option<usize>,
    /// Dispatcher concurrency
    #[arg(long, env = "POSTBOX_CONCURRENCY", default_value_t = 128)]
    pub concurrency: usize,
    /// Which parts to run (comma-separated): drain,steady,producer,ceilings,scale,isolation
    #[arg(long, env = "POSTBOX_BENCH_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,
}

/// Parses `500ms`, `15s`, `10m`, `24h`, `5d`, `1w`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. 500ms, 15s, 10m, 24h or 5d"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" | "mins" => value * 60.0,
        "h" | "hr" | "hrs" => value * 3600.0,
        "d" | "day" | "days" => value * 86400.0,
        "w" => value * 7.0 * 86400.0,
        other => {
            return Err(format!(
                "`{other}` is not a duration unit: use ms, s, m, h, d or w"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=10.0 * 365.0 * 86400.0).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Accepts a 6/7-field cron expression (seconds first) or a 5-field unix one
/// (a `0` seconds field is put in front).
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expr}")
    } else {
        expr.to_string()
    };
    full.parse::<cron::Schedule>()
        .map_err(|e| format!("POSTBOX_MAINTENANCE_SCHEDULE `{expr}` is not a cron expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("5d").unwrap(),
            Duration::from_secs(5 * 86400)
        );
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn schedules_accept_unix_and_seconds_forms() {
        assert!(parse_schedule("0 * * * * *").is_ok());
        assert!(parse_schedule("*/5 * * * *").is_ok());
        assert!(parse_schedule("every minute").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dispatch_defaults_agree_with_the_library() {
        let cli = Cli::try_parse_from(["postbox", "serve"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!()
        };
        let from_cli = serve.dispatch.to_config();
        let lib = DispatchConfig::default();
        assert_eq!(from_cli.concurrency, lib.concurrency);
        assert_eq!(from_cli.endpoint_concurrency, lib.endpoint_concurrency);
        assert_eq!(from_cli.request_timeout, lib.request_timeout);
        assert_eq!(from_cli.batch_size, lib.batch_size);
    }
}
