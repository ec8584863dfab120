//! The command line: every flag, its environment variable and its default
//! (the constants of `postbox::config::defaults`), parsed by clap, and the
//! conversions into the library's validated settings. Only the `postbox`
//! binary (and the tests that check the documentation against it) compile
//! this file: the library never sees a clap type.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use postbox::config::DispatchConfig;
use postbox::config::MaintenanceConfig;
use postbox::config::{
    defaults, parse_duration, ApiConfig, DbConfig, PortalConfig, Schedule, ServeConfig,
};
use postbox::error::AppError;

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

impl From<LogFormat> for postbox::telemetry::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Pretty => postbox::telemetry::LogFormat::Pretty,
            LogFormat::Json => postbox::telemetry::LogFormat::Json,
        }
    }
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
    /// Mint a single-use link that opens the web portal for one owner
    PortalLink(PortalLinkArgs),
    /// Run the maintenance jobs once and exit
    Maintain(MaintainArgs),
    /// A development receiver: prints each delivery and whether its signature verifies
    Receive(ReceiveArgs),
    /// The load benchmark: drain, latency, producer cost, scale, isolation
    Bench(Box<BenchArgs>),
    /// Development: a private PostgreSQL, the API, a dispatcher and a receiver with a demo webhook
    Dev(DevArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The application's database; postbox lives in its schema `postbox`
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = defaults::DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Connections in the pool
    #[arg(long, env = "POSTBOX_DB_POOL_SIZE", default_value_t = defaults::DB_POOL_SIZE)]
    pub db_pool_size: usize,
}

impl DbArgs {
    pub fn to_config(&self) -> DbConfig {
        DbConfig {
            url: self.database_url.clone(),
            pool_size: self.db_pool_size,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DispatchArgs {
    /// Deliveries in flight at once per dispatcher
    #[arg(long, env = "POSTBOX_CONCURRENCY", default_value_t = defaults::CONCURRENCY)]
    pub concurrency: usize,
    /// Deliveries in flight at once to one webhook at first, per dispatcher; a
    /// fast endpoint grows up to the concurrency less this
    #[arg(long, env = "POSTBOX_ENDPOINT_CONCURRENCY", default_value_t = defaults::ENDPOINT_CONCURRENCY)]
    pub endpoint_concurrency: usize,
    /// Deliveries started per second per dispatcher; 0 = unlimited
    #[arg(long, env = "POSTBOX_RATE_LIMIT", default_value_t = defaults::RATE_LIMIT)]
    pub rate_limit: u32,
    /// Time limit of one HTTP attempt (connect, headers and body)
    #[arg(long, env = "POSTBOX_REQUEST_TIMEOUT", default_value = defaults::REQUEST_TIMEOUT, value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Allow endpoints on loopback, private, link-local and other non-public addresses
    #[arg(long, env = "POSTBOX_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// Refuse http:// endpoint URLs
    #[arg(long, env = "POSTBOX_REQUIRE_HTTPS")]
    pub require_https: bool,
    /// How long SIGTERM waits for in-flight requests
    #[arg(long, env = "POSTBOX_SHUTDOWN_TIMEOUT", default_value = defaults::SHUTDOWN_TIMEOUT, value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Longest idle sleep without a NOTIFY (missed notifications, due retries)
    #[arg(long, env = "POSTBOX_POLL_INTERVAL", default_value = defaults::POLL_INTERVAL, value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Events fanned out per statement and most deliveries claimed at once
    #[arg(long, env = "POSTBOX_BATCH_SIZE", default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,
    /// The dispatcher's own writes (claims, outcomes) commit without waiting
    /// for the WAL flush (synchronous_commit=off); a Postgres crash can only
    /// make a delivery be sent again
    #[arg(long, env = "POSTBOX_DISPATCHER_ASYNC_COMMIT", default_value_t = defaults::DISPATCHER_ASYNC_COMMIT, action = clap::ArgAction::Set)]
    pub dispatcher_async_commit: bool,
}

impl DispatchArgs {
    pub fn to_config(&self) -> DispatchConfig {
        DispatchConfig {
            concurrency: self.concurrency,
            endpoint_concurrency: self.endpoint_concurrency,
            rate_limit: self.rate_limit,
            request_timeout: self.request_timeout,
            allow_private_targets: self.allow_private_targets,
            require_https: self.require_https,
            shutdown_timeout: self.shutdown_timeout,
            poll_interval: self.poll_interval,
            batch_size: self.batch_size,
        }
        .clamped()
    }
}

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// API address
    #[arg(long, env = "POSTBOX_LISTEN", default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// HS256 key for API tokens (required when the API runs)
    #[arg(long, env = "POSTBOX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Issuer every API token must carry in `iss`; unset: not checked
    #[arg(long, env = "POSTBOX_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Audience every API token's `aud` must contain; unset: tokens must carry no `aud`
    #[arg(long, env = "POSTBOX_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Secret of POST /api/webhooks/stripe (whsec_...); unset: that route answers 503
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Secret of POST /api/webhooks/clerk (whsec_...); unset: that route answers 503
    #[arg(long, env = "CLERK_WEBHOOK_SECRET", hide_env_values = true)]
    pub clerk_webhook_secret: Option<String>,
    /// Public URL the portal's links start with (https:// makes its cookie Secure); unset: http://POSTBOX_LISTEN
    #[arg(long, env = "POSTBOX_PORTAL_BASE_URL")]
    pub portal_base_url: Option<String>,
    /// Origins that may embed the portal in a frame, space-separated ('self', https://app.example.com)
    #[arg(long, env = "POSTBOX_PORTAL_FRAME_ANCESTORS", default_value = defaults::PORTAL_FRAME_ANCESTORS)]
    pub portal_frame_ancestors: String,
    /// How long a portal session lasts after its link is opened
    #[arg(long, env = "POSTBOX_PORTAL_SESSION_TTL", default_value = defaults::PORTAL_SESSION_TTL, value_parser = parse_duration)]
    pub portal_session_ttl: Duration,
}

impl ApiArgs {
    /// The portal's checked settings.
    pub fn portal_config(&self) -> Result<PortalConfig, AppError> {
        PortalConfig::new(
            self.portal_base_url.as_deref(),
            &self.portal_frame_ancestors,
            self.portal_session_ttl,
        )
    }
}

#[derive(Debug, Clone, Args)]
pub struct MaintenanceArgs {
    /// A webhook failing without any success for this long is disabled
    #[arg(long, env = "POSTBOX_DISABLE_AFTER", default_value = defaults::DISABLE_AFTER, value_parser = parse_duration)]
    pub disable_after: Duration,
    /// How long successful deliveries are kept
    #[arg(long, env = "POSTBOX_RETENTION_SUCCESS", default_value = defaults::RETENTION_SUCCESS, value_parser = parse_duration)]
    pub retention_success: Duration,
    /// How long failed deliveries are kept
    #[arg(long, env = "POSTBOX_RETENTION_FAILED", default_value = defaults::RETENTION_FAILED, value_parser = parse_duration)]
    pub retention_failed: Duration,
    /// How long events are kept at least, for replays (0: as long as the success retention)
    #[arg(long, env = "POSTBOX_RETENTION_EVENTS", default_value = defaults::RETENTION_EVENTS, value_parser = parse_duration)]
    pub retention_events: Duration,
    /// Cron expression for the maintenance jobs (6 fields with seconds, or 5-field unix cron)
    #[arg(
        long,
        env = "POSTBOX_MAINTENANCE_SCHEDULE",
        default_value = defaults::MAINTENANCE_SCHEDULE
    )]
    pub maintenance_schedule: String,
}

impl MaintenanceArgs {
    /// The jobs' settings; an invalid schedule is a configuration error.
    pub fn to_config(&self) -> Result<MaintenanceConfig, AppError> {
        let schedule: Schedule = self
            .maintenance_schedule
            .parse()
            .map_err(AppError::Config)?;
        Ok(MaintenanceConfig {
            disable_after: self.disable_after,
            retention_success: self.retention_success,
            retention_failed: self.retention_failed,
            retention_events: self.retention_events,
            schedule,
            ..MaintenanceConfig::default()
        })
    }
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

impl ServeArgs {
    /// The validated settings of `app::serve`. The schedule is checked even
    /// with `--no-maintenance`, so a typo never waits for the day it is used.
    pub fn to_config(&self) -> Result<ServeConfig, AppError> {
        let api = if self.no_api {
            None
        } else {
            Some(
                ApiConfig::new(
                    self.api.listen,
                    self.api.jwt_secret.clone(),
                    self.api.stripe_webhook_secret.clone(),
                    self.api.clerk_webhook_secret.clone(),
                )?
                .with_token_claims(self.api.jwt_issuer.clone(), self.api.jwt_audience.clone()),
            )
        };
        let maintenance = self.maintenance.to_config()?;
        Ok(ServeConfig {
            db: self.db.to_config(),
            api,
            dispatch: self.dispatch.to_config(),
            dispatcher: !self.no_dispatcher,
            dispatcher_async_commit: self.dispatch.dispatcher_async_commit,
            maintenance: (!self.no_maintenance).then_some(maintenance),
            metrics_listen: self.metrics_listen,
            migrate: !self.no_migrate,
            portal: self.api.portal_config()?,
        })
    }
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
    /// Ordering key (1-256 bytes): deliveries of one key go one at a time per webhook, in commit order
    #[arg(long)]
    pub ordering_key: Option<String>,
    /// Cancel the ordering key's not-yet-sent deliveries of the same event type
    #[arg(long, requires = "ordering_key")]
    pub supersede: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PortalLinkArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The owner whose portal the link opens
    #[arg(long, env = "POSTBOX_PORTAL_SUB")]
    pub sub: String,
    /// Open the operator view too (queue, catalogue, troubled webhooks)
    #[arg(long, env = "POSTBOX_PORTAL_ADMIN")]
    pub admin: bool,
    /// How long the link can be opened (once)
    #[arg(long, env = "POSTBOX_PORTAL_LINK_TTL", default_value = defaults::PORTAL_LINK_TTL, value_parser = parse_duration)]
    pub ttl: Duration,
    /// Public URL the link starts with; unset: http://POSTBOX_LISTEN
    #[arg(long, env = "POSTBOX_PORTAL_BASE_URL")]
    pub base_url: Option<String>,
    /// The API's address, for the default base URL
    #[arg(long, env = "POSTBOX_LISTEN", default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
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
    #[arg(long, env = "POSTBOX_TOKEN_TTL", default_value = defaults::TOKEN_TTL, value_parser = parse_duration)]
    pub ttl: Duration,
    /// HS256 key
    #[arg(long, env = "POSTBOX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// `iss` of the token: set it when the API requires an issuer
    #[arg(long, env = "POSTBOX_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// `aud` of the token: set it when the API requires an audience
    #[arg(long, env = "POSTBOX_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
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
pub struct DevArgs {
    /// Directory of the private PostgreSQL cluster, created on first use and reused
    /// [default: .postbox-dev; as root, where the postgres user cannot reach it,
    /// a directory under /tmp, printed at start]
    #[arg(long, env = "POSTBOX_DEV_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// API address
    #[arg(long, env = "POSTBOX_LISTEN", default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Port of the development receiver on 127.0.0.1; 0 picks a free one
    #[arg(long, env = "POSTBOX_DEV_RECEIVER_PORT", default_value_t = 0)]
    pub receiver_port: u16,
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
    /// Successful deliveries put in the tables before the scale test
    /// (default 500,000; 100,000 with --quick)
    #[arg(long, env = "POSTBOX_BENCH_SCALE_FINISHED")]
    pub scale_finished: Option<usize>,
    /// Dead letters put in the tables before the scale test (default 400,000;
    /// 80,000 with --quick)
    #[arg(long, env = "POSTBOX_BENCH_SCALE_DEAD")]
    pub scale_dead: Option<usize>,
    /// Due deliveries of one slow endpoint (it never answers) put in the
    /// tables before the scale test (default 100,000; 20,000 with --quick)
    #[arg(long, env = "POSTBOX_BENCH_SCALE_BACKLOG")]
    pub scale_backlog: Option<usize>,
    /// Future retries put in the tables before the scale test (default 0)
    #[arg(long, env = "POSTBOX_BENCH_SCALE_FUTURE")]
    pub scale_future: Option<usize>,
    /// Dispatcher concurrency
    #[arg(long, env = "POSTBOX_CONCURRENCY", default_value_t = defaults::CONCURRENCY)]
    pub concurrency: usize,
    /// Which parts to run (comma-separated): drain (= drain1,drain10,keyed,batched),steady,producer,ceilings,scale,isolation,fanout,templates,ratelimit,recover,ordering
    #[arg(long, env = "POSTBOX_BENCH_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("postbox").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let Command::Serve(serve) = parse(&["serve", "--jwt-secret", &"k".repeat(32)]) else {
            panic!("serve")
        };
        let config = serve.to_config().unwrap();
        let (from_cli, lib) = (config.dispatch, DispatchConfig::default());
        assert_eq!(from_cli.concurrency, lib.concurrency);
        assert_eq!(from_cli.endpoint_concurrency, lib.endpoint_concurrency);
        assert_eq!(from_cli.rate_limit, lib.rate_limit);
        assert_eq!(from_cli.request_timeout, lib.request_timeout);
        assert_eq!(from_cli.shutdown_timeout, lib.shutdown_timeout);
        assert_eq!(from_cli.poll_interval, lib.poll_interval);
        assert_eq!(from_cli.batch_size, lib.batch_size);
        let (from_cli, lib) = (config.maintenance.unwrap(), MaintenanceConfig::default());
        assert_eq!(from_cli.disable_after, lib.disable_after);
        assert_eq!(from_cli.retention_success, lib.retention_success);
        assert_eq!(from_cli.retention_failed, lib.retention_failed);
        assert_eq!(from_cli.schedule.as_str(), lib.schedule.as_str());
        assert_eq!(config.db.pool_size, defaults::DB_POOL_SIZE);
        assert_eq!(config.api.unwrap().listen.to_string(), defaults::LISTEN);
    }

    #[test]
    fn serve_settings_are_checked_before_anything_runs() {
        let Command::Serve(serve) = parse(&["serve"]) else {
            panic!("serve")
        };
        let err = serve.to_config().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().starts_with("POSTBOX_JWT_SECRET is not set"));
        let Command::Serve(serve) = parse(&["serve", "--no-api", "--no-maintenance"]) else {
            panic!("serve")
        };
        let config = serve.to_config().unwrap();
        assert!(config.api.is_none() && config.maintenance.is_none());
        let Command::Serve(serve) = parse(&[
            "serve",
            "--no-api",
            "--maintenance-schedule",
            "every minute",
            "--concurrency",
            "0",
        ]) else {
            panic!("serve")
        };
        assert_eq!(serve.dispatch.to_config().concurrency, 1);
        let err = serve.to_config().unwrap_err();
        assert!(err.to_string().contains("not a cron expression"), "{err}");
    }
}
