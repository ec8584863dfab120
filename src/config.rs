//! The library's settings: plain, validated types that `app::serve` and the
//! maintenance jobs take, and every default in one `const` (the command line
//! shows the same constants in `--help`). Parsing flags and environment
//! variables is the binary's job; a bad value is refused here, at start-up,
//! before anything runs.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::AppError;

mod dispatch;
mod maintenance;
mod portal;

pub use dispatch::DispatchConfig;
pub use maintenance::MaintenanceConfig;
pub use portal::PortalConfig;

/// Every default, defined once. Durations are written as an operator types
/// them (`15s`, `24h`), are what `--help` shows, and are turned into a
/// [`Duration`] at compile time by [`defaults::duration`].
pub mod defaults {
    use std::time::Duration;

    /// The application's database (DATABASE_URL).
    pub const DATABASE_URL: &str = "postgres://postgres@localhost:5432/postgres";
    /// Connections in the pool (POSTBOX_DB_POOL_SIZE).
    pub const DB_POOL_SIZE: usize = 16;
    /// The API's address (POSTBOX_LISTEN).
    pub const LISTEN: &str = "127.0.0.1:3001";
    /// Deliveries in flight per dispatcher (POSTBOX_CONCURRENCY).
    pub const CONCURRENCY: usize = 128;
    /// Deliveries in flight to one webhook per dispatcher (POSTBOX_ENDPOINT_CONCURRENCY).
    pub const ENDPOINT_CONCURRENCY: usize = 32;
    /// Deliveries started per second per dispatcher, 0 = unlimited (POSTBOX_RATE_LIMIT).
    pub const RATE_LIMIT: u32 = 0;
    /// Time limit of one HTTP attempt (POSTBOX_REQUEST_TIMEOUT).
    pub const REQUEST_TIMEOUT: &str = "15s";
    /// How long SIGTERM waits for in-flight requests (POSTBOX_SHUTDOWN_TIMEOUT).
    pub const SHUTDOWN_TIMEOUT: &str = "30s";
    /// Longest idle sleep without a NOTIFY (POSTBOX_POLL_INTERVAL).
    pub const POLL_INTERVAL: &str = "1s";
    /// Events fanned out per statement, most deliveries claimed at once (POSTBOX_BATCH_SIZE).
    pub const BATCH_SIZE: usize = 500;
    /// The dispatcher's writes commit without waiting for the WAL flush
    /// (POSTBOX_DISPATCHER_ASYNC_COMMIT).
    pub const DISPATCHER_ASYNC_COMMIT: bool = true;
    /// Failing without success this long disables a webhook (POSTBOX_DISABLE_AFTER).
    pub const DISABLE_AFTER: &str = "5d";
    /// How long successful deliveries are kept (POSTBOX_RETENTION_SUCCESS).
    pub const RETENTION_SUCCESS: &str = "24h";
    /// How long failed deliveries are kept (POSTBOX_RETENTION_FAILED).
    pub const RETENTION_FAILED: &str = "7d";
    /// How long events are kept at least, for replays, whatever their
    /// deliveries (POSTBOX_RETENTION_EVENTS); 0: no longer than a delivery
    /// or the success retention needs them.
    pub const RETENTION_EVENTS: &str = "0s";
    /// When maintenance runs: every minute (POSTBOX_MAINTENANCE_SCHEDULE).
    pub const MAINTENANCE_SCHEDULE: &str = "0 * * * * *";
    /// Rows per retention delete statement (no flag: a tuning constant).
    pub const MAINTENANCE_BATCH_SIZE: i64 = 5000;
    /// Lifetime of a token minted by `postbox token` (POSTBOX_TOKEN_TTL).
    pub const TOKEN_TTL: &str = "1h";
    /// Origins that may embed the portal in a frame (POSTBOX_PORTAL_FRAME_ANCESTORS).
    pub const PORTAL_FRAME_ANCESTORS: &str = "'none'";
    /// How long a portal session lasts after its link is opened (POSTBOX_PORTAL_SESSION_TTL).
    pub const PORTAL_SESSION_TTL: &str = "1h";
    /// Lifetime of a portal link (`ttlSeconds`, `postbox portal-link --ttl`).
    pub const PORTAL_LINK_TTL: &str = "15m";

    /// A default duration as a [`Duration`], at compile time: a whole number
    /// followed by `ms`, `s`, `m`, `h`, `d` or `w`. Anything else does not
    /// compile when called in a `const` context.
    pub const fn duration(text: &str) -> Duration {
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut n: u64 = 0;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            n = n * 10 + (bytes[i] - b'0') as u64;
            i += 1;
        }
        let (_, unit) = bytes.split_at(i);
        match unit {
            [b'm', b's'] => Duration::from_millis(n),
            [b's'] => Duration::from_secs(n),
            [b'm'] => Duration::from_secs(n * 60),
            [b'h'] => Duration::from_secs(n * 3600),
            [b'd'] => Duration::from_secs(n * 86400),
            [b'w'] => Duration::from_secs(n * 7 * 86400),
            _ => panic!("a default duration is a whole number and one of ms, s, m, h, d, w"),
        }
    }
}

/// The database: where, and how many pooled connections.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// A libpq-style URL; postbox lives in the schema `postbox`.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
}

/// The API role's settings, once checked.
#[derive(Clone)]
pub struct ApiConfig {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// HS256 key of the API tokens; never empty.
    pub jwt_secret: String,
    /// Secret of POST /api/webhooks/stripe; `None` (unset or empty): that route answers 503.
    pub stripe_webhook_secret: Option<String>,
    /// Secret of POST /api/webhooks/clerk; `None` (unset or empty): that route answers 503.
    pub clerk_webhook_secret: Option<String>,
    /// The `iss` every token must carry (POSTBOX_JWT_ISSUER); `None`: any or none.
    pub jwt_issuer: Option<String>,
    /// The audience every token's `aud` must contain (POSTBOX_JWT_AUDIENCE);
    /// `None`: tokens must carry no `aud`.
    pub jwt_audience: Option<String>,
}

impl std::fmt::Debug for ApiConfig {
    // The secrets stay out of logs and error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl ApiConfig {
    /// Checks the API's settings. An empty secret counts as unset; a missing
    /// JWT secret is a [`AppError::Config`] that says how to fix it.
    pub fn new(
        listen: SocketAddr,
        jwt_secret: Option<String>,
        stripe_webhook_secret: Option<String>,
        clerk_webhook_secret: Option<String>,
    ) -> Result<ApiConfig, AppError> {
        let set = |s: Option<String>| s.filter(|s| !s.is_empty());
        let jwt_secret = crate::startup::jwt_secret(jwt_secret.as_deref())?;
        Ok(ApiConfig {
            listen,
            jwt_secret,
            stripe_webhook_secret: set(stripe_webhook_secret),
            clerk_webhook_secret: set(clerk_webhook_secret),
            jwt_issuer: None,
            jwt_audience: None,
        })
    }

    /// The same settings, requiring `issuer` and `audience` (unset or empty:
    /// not required) in every token.
    pub fn with_token_claims(
        mut self,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> ApiConfig {
        self.jwt_issuer = issuer.filter(|s| !s.is_empty());
        self.jwt_audience = audience.filter(|s| !s.is_empty());
        self
    }
}

/// Everything `app::serve` runs with. A role that is `None` does not run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The database.
    pub db: DbConfig,
    /// The API role; `None` with `--no-api`.
    pub api: Option<ApiConfig>,
    /// The dispatcher's settings; the API's test send uses them too, so they
    /// are set even when no dispatcher runs.
    pub dispatch: DispatchConfig,
    /// Whether this process runs a dispatcher.
    pub dispatcher: bool,
    /// The dispatcher's own writes commit with synchronous_commit=off.
    pub dispatcher_async_commit: bool,
    /// The maintenance scheduler; `None` with `--no-maintenance`.
    pub maintenance: Option<MaintenanceConfig>,
    /// Also serve /metrics on this address.
    pub metrics_listen: Option<SocketAddr>,
    /// Apply the migrations at start-up.
    pub migrate: bool,
    /// The portal (served with the API).
    pub portal: PortalConfig,
}

/// A maintenance schedule: a cron expression, checked once.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    schedule: cron::Schedule,
}

impl Schedule {
    /// The default, [`defaults::MAINTENANCE_SCHEDULE`]: every minute.
    pub fn every_minute() -> Schedule {
        defaults::MAINTENANCE_SCHEDULE
            .parse()
            .expect("the default schedule is a cron expression (a unit test parses it)")
    }

    /// The expression as the operator wrote it.
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The parsed schedule.
    pub fn cron(&self) -> &cron::Schedule {
        &self.schedule
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    /// Accepts a 6/7-field cron expression (seconds first) or a 5-field unix
    /// one (a `0` seconds field is put in front); the error names the setting.
    fn from_str(expr: &str) -> Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        let full = if fields == 5 {
            format!("0 {expr}")
        } else {
            expr.to_string()
        };
        let schedule = full.parse::<cron::Schedule>().map_err(|e| {
            format!("POSTBOX_MAINTENANCE_SCHEDULE `{expr}` is not a cron expression: {e}")
        })?;
        Ok(Schedule {
            expr: expr.to_string(),
            schedule,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn default_durations_read_as_the_runtime_parser_reads_them() {
        for text in [
            defaults::REQUEST_TIMEOUT,
            defaults::SHUTDOWN_TIMEOUT,
            defaults::POLL_INTERVAL,
            defaults::DISABLE_AFTER,
            defaults::RETENTION_SUCCESS,
            defaults::RETENTION_FAILED,
            defaults::RETENTION_EVENTS,
            defaults::TOKEN_TTL,
            "250ms",
            "2m",
            "1w",
        ] {
            assert_eq!(defaults::duration(text), parse_duration(text).unwrap());
        }
        assert!(defaults::MAINTENANCE_SCHEDULE.parse::<Schedule>().is_ok());
        assert!(defaults::LISTEN.parse::<SocketAddr>().is_ok());
    }

    #[test]
    fn schedules_accept_unix_and_seconds_forms() {
        assert!("0 * * * * *".parse::<Schedule>().is_ok());
        let unix = "*/5 * * * *".parse::<Schedule>().unwrap();
        assert_eq!(unix.as_str(), "*/5 * * * *");
        let err = "every minute".parse::<Schedule>().unwrap_err();
        assert!(err.contains("POSTBOX_MAINTENANCE_SCHEDULE"), "{err}");
    }

    #[test]
    fn the_api_needs_a_jwt_secret_and_ignores_empty_inbound_secrets() {
        let listen: SocketAddr = defaults::LISTEN.parse().unwrap();
        let err = ApiConfig::new(listen, Some(String::new()), None, None).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--no-api"), "{err}");
        let api = ApiConfig::new(
            listen,
            Some("jwt-s3cret-long-enough-for-hs256-keys".into()),
            Some(String::new()),
            Some("whsec_clerk".into()),
        )
        .unwrap();
        assert_eq!(api.stripe_webhook_secret, None);
        assert_eq!(api.clerk_webhook_secret.as_deref(), Some("whsec_clerk"));
        let shown = format!("{api:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("whsec"),
            "{shown}"
        );
    }
}
