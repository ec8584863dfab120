//! The dispatcher's settings. A plain type the dispatcher imports; it knows
//! nothing of the dispatcher itself.

use std::time::Duration;

use super::defaults;

/// Dispatcher settings. The defaults are the constants of
/// [`defaults`], the same ones the command line shows.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Deliveries in flight at once in this dispatcher.
    pub concurrency: usize,
    /// Deliveries in flight at once to one webhook at first (endpoint
    /// isolation). A webhook whose endpoint answers fast may grow past it,
    /// up to `concurrency - endpoint_concurrency` (see `dispatch::cap`).
    pub endpoint_concurrency: usize,
    /// Deliveries started per second by this dispatcher; 0 = unlimited.
    pub rate_limit: u32,
    /// Time limit of one HTTP attempt (connect, headers and body).
    pub request_timeout: Duration,
    /// Allow endpoints on loopback, private and other non-public addresses.
    pub allow_private_targets: bool,
    /// Refuse http:// endpoint URLs.
    pub require_https: bool,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Longest sleep without a wake-up (missed notifications, due retries).
    pub poll_interval: Duration,
    /// Events fanned out per statement, and the most rows one claim takes.
    pub batch_size: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            concurrency: defaults::CONCURRENCY,
            endpoint_concurrency: defaults::ENDPOINT_CONCURRENCY,
            rate_limit: defaults::RATE_LIMIT,
            request_timeout: const { defaults::duration(defaults::REQUEST_TIMEOUT) },
            allow_private_targets: false,
            require_https: false,
            shutdown_timeout: const { defaults::duration(defaults::SHUTDOWN_TIMEOUT) },
            poll_interval: const { defaults::duration(defaults::POLL_INTERVAL) },
            batch_size: defaults::BATCH_SIZE,
        }
    }
}

impl DispatchConfig {
    /// How long a claim stays valid: two request timeouts plus a margin for
    /// queueing and the completion write. A dispatcher that dies loses its
    /// claims to the rescue after this long.
    pub fn lease(&self) -> Duration {
        self.request_timeout * 2 + Duration::from_secs(30)
    }

    /// These settings made safe to run, as the dispatcher applies them:
    /// every count at least 1, and a poll interval of at least 10 ms (a zero
    /// poll would spin; 10 ms is already far below any use).
    pub fn clamped(self) -> Self {
        DispatchConfig {
            concurrency: self.concurrency.max(1),
            endpoint_concurrency: self.endpoint_concurrency.max(1),
            poll_interval: self.poll_interval.max(Duration::from_millis(10)),
            batch_size: self.batch_size.max(1),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_lifts_every_zero_count_and_the_poll_interval() {
        let c = DispatchConfig {
            concurrency: 0,
            endpoint_concurrency: 0,
            batch_size: 0,
            poll_interval: Duration::ZERO,
            ..DispatchConfig::default()
        }
        .clamped();
        assert_eq!(
            (c.concurrency, c.endpoint_concurrency, c.batch_size),
            (1, 1, 1)
        );
        assert_eq!(c.poll_interval, Duration::from_millis(10));
        let d = DispatchConfig::default();
        assert_eq!(d.clone().clamped().concurrency, d.concurrency);
    }
}
