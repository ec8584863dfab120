//! The per-dispatcher rate limit (POSTBOX_RATE_LIMIT): a token bucket that
//! bounds how many deliveries a claim may take.

use std::time::{Duration, Instant};

/// A token bucket: `rate` starts per second, bursts of at most `rate`.
pub(super) struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub(super) fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            tokens: f64::from(rate).min(1.0),
            last: Instant::now(),
        }
    }

    /// Whole starts allowed now, or `None` when unlimited.
    pub(super) fn available(&mut self) -> Option<usize> {
        if self.rate <= 0.0 {
            return None;
        }
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.rate.max(1.0));
        self.last = now;
        Some(self.tokens.floor() as usize)
    }

    pub(super) fn take(&mut self, n: usize) {
        if self.rate > 0.0 {
            self.tokens -= n as f64;
        }
    }

    pub(super) fn until_next(&self) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((1.0 - self.tokens).max(0.0) / self.rate).max(0.001))
    }
}
