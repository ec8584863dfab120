//! The retry schedule and the outcome of an attempt: pure functions of their
//! inputs (time and jitter are arguments), unit-tested exhaustively.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{ClaimedDelivery, Completion, DeliveryStatus};

/// The longest wait a `Retry-After` header can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Jitter adds up to this fraction of the computed delay.
pub const MAX_JITTER: f64 = 0.10;

/// What one HTTP attempt produced. A receiver's failure is data, not an error.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attempt {
    /// The response status, when a response arrived.
    pub status: Option<u16>,
    /// The first 16 KiB of the response body, made safe for storage.
    pub body: Option<String>,
    /// Why the attempt failed (no response, blocked target, non-2xx, ...).
    pub error: Option<String>,
    /// The delay a 429/503 asked for.
    pub retry_after: Option<Duration>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
}

impl Attempt {
    /// An attempt that never reached the network, and why.
    pub fn not_sent(started_at: DateTime<Utc>, reason: impl Into<String>) -> Attempt {
        Attempt {
            started_at,
            error: Some(reason.into()),
            ..Default::default()
        }
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }

    /// 410 Gone: the endpoint says it will never want deliveries again.
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// The wait before retry `n` (1-based): `base * 2^(n-1)`, plus `jitter`
/// (0.0..=1.0, scaled to at most 10 %).
pub fn backoff(base_secs: i32, retry: i32, jitter: f64) -> Duration {
    let exp = (retry.max(1) - 1).min(40);
    let secs = f64::from(base_secs.max(0)) * 2f64.powi(exp);
    let jittered = secs * (1.0 + MAX_JITTER * jitter.clamp(0.0, 1.0));
    Duration::from_secs_f64(jittered.min(365.0 * 86400.0))
}

/// The wait before retry `n` (1-based) of an explicit schedule: entry `n`
/// in seconds plus `jitter` (0.0..=1.0, scaled to at most 10 %); `None`
/// past its end (the budget is spent).
pub fn scheduled(schedule: &[i32], retry: i32, jitter: f64) -> Option<Duration> {
    let secs = *schedule.get(usize::try_from(retry.max(1) - 1).ok()?)?;
    let jittered = f64::from(secs.max(0)) * (1.0 + MAX_JITTER * jitter.clamp(0.0, 1.0));
    Some(Duration::from_secs_f64(jittered))
}

/// How many retries a claim may still lead to in all: the schedule's
/// length when it has one, else `max_retries`.
pub fn budget(d: &ClaimedDelivery) -> i32 {
    d.retry_schedule.as_ref().map_or(d.max_retries, |s| {
        i32::try_from(s.len()).unwrap_or(i32::MAX)
    })
}

/// Whether an answer asks the sender to slow down (429, 503): it halves the
/// webhook's effective rate, and its `Retry-After` holds the whole webhook.
pub fn throttles(status: Option<u16>) -> bool {
    matches!(status, Some(429 | 503))
}

/// Parses `Retry-After`: delta seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Turns an attempt into the delivery's next state.
pub fn complete(d: &ClaimedDelivery, a: &Attempt, now: DateTime<Utc>, jitter: f64) -> Completion {
    let (status, next_attempt_at) = if a.succeeded() {
        (DeliveryStatus::Success, None)
    } else if a.gone() || d.attempt > budget(d) || !d.webhook_active {
        (DeliveryStatus::Failed, None)
    } else {
        let mut wait = match &d.retry_schedule {
            Some(s) => scheduled(s, d.attempt, jitter).unwrap_or(Duration::ZERO),
            None => backoff(d.retry_delay_seconds, d.attempt, jitter),
        };
        if let Some(ra) = a.retry_after {
            wait = wait.max(ra);
        }
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(365));
        (DeliveryStatus::Retrying, Some(now + wait))
    };
    Completion {
        delivery_id: d.id,
        webhook_id: d.webhook_id,
        attempt: d.attempt,
        status,
        next_attempt_at,
        response_code: a.status.map(i32::from),
        response_body: a.body.clone(),
        error_message: a.error.clone(),
        started_at: a.started_at,
        duration_ms: a.duration_ms,
        throttle_until: a
            .retry_after
            .filter(|_| throttles(a.status))
            .and_then(|ra| chrono::Duration::from_std(ra).ok())
            .map(|ra| now + ra),
        ordering_key: d.ordering_key.clone(),
        // skip_failed: a failed attempt lets the next of the key go; a 429
        // throttles the whole webhook, so the next would wait all the same.
        leave_line: status == DeliveryStatus::Retrying
            && d.skip_failed
            && d.ordering_key.is_some()
            && a.status != Some(429),
        endpoint_ok: if a.succeeded() {
            Some(true)
        } else if a.status == Some(429) {
            None
        } else {
            Some(false)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn claimed(attempt: i32, max_retries: i32) -> ClaimedDelivery {
        ClaimedDelivery {
            attempt,
            max_retries,
            ..ClaimedDelivery::sample()
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    fn failed(status: Option<u16>) -> Attempt {
        Attempt {
            status,
            started_at: now(),
            error: Some("x".into()),
            ..Default::default()
        }
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let waits: Vec<u64> = (1..=5).map(|n| backoff(60, n, 0.0).as_secs()).collect();
        assert_eq!(waits, vec![60, 120, 240, 480, 960]);
        assert_eq!(backoff(10, 10, 0.0).as_secs(), 5120);
    }

    #[test]
    fn jitter_adds_at_most_ten_percent() {
        assert_eq!(backoff(60, 1, 1.0).as_secs_f64(), 66.0);
        assert_eq!(backoff(60, 2, 0.5).as_secs_f64(), 126.0);
        assert_eq!(backoff(60, 1, 7.0).as_secs_f64(), 66.0, "clamped");
    }

    #[test]
    fn huge_exponents_do_not_overflow() {
        assert!(backoff(3600, 40, 1.0) <= Duration::from_secs(366 * 86400));
    }

    #[test]
    fn success_is_2xx_only() {
        for s in [200u16, 201, 204, 299] {
            let a = Attempt {
                status: Some(s),
                started_at: now(),
                ..Default::default()
            };
            assert_eq!(
                complete(&claimed(1, 3), &a, now(), 0.0).status,
                DeliveryStatus::Success
            );
        }
        for s in [100u16, 301, 302, 304, 400, 404, 429, 500, 503] {
            let c = complete(&claimed(1, 3), &failed(Some(s)), now(), 0.0);
            assert_eq!(c.status, DeliveryStatus::Retrying, "{s}");
        }
        let c = complete(&claimed(1, 3), &failed(None), now(), 0.0);
        assert_eq!(c.status, DeliveryStatus::Retrying);
    }

    #[test]
    fn retries_follow_the_schedule_then_dead_letter() {
        // max_retries = 3: attempts 1..=3 fail into retries 1..=3, attempt 4 is the last.
        for (attempt, wait) in [(1, 60), (2, 120), (3, 240)] {
            let c = complete(&claimed(attempt, 3), &failed(Some(500)), now(), 0.0);
            assert_eq!(c.status, DeliveryStatus::Retrying);
            assert_eq!(
                c.next_attempt_at,
                Some(now() + chrono::Duration::seconds(wait))
            );
        }
        let c = complete(&claimed(4, 3), &failed(Some(500)), now(), 0.0);
        assert_eq!(
            (c.status, c.next_attempt_at),
            (DeliveryStatus::Failed, None)
        );
        let c = complete(&claimed(1, 0), &failed(Some(500)), now(), 0.0);
        assert_eq!(c.status, DeliveryStatus::Failed, "no retries at all");
    }

    #[test]
    fn gone_fails_at_once() {
        let c = complete(&claimed(1, 10), &failed(Some(410)), now(), 0.0);
        assert_eq!(c.status, DeliveryStatus::Failed);
    }

    #[test]
    fn retry_after_only_lengthens_the_wait() {
        let mut a = failed(Some(429));
        a.retry_after = Some(Duration::from_secs(600));
        let c = complete(&claimed(1, 3), &a, now(), 0.0);
        assert_eq!(
            c.next_attempt_at,
            Some(now() + chrono::Duration::seconds(600))
        );
        a.retry_after = Some(Duration::from_secs(5));
        let c = complete(&claimed(1, 3), &a, now(), 0.0);
        assert_eq!(
            c.next_attempt_at,
            Some(now() + chrono::Duration::seconds(60))
        );
    }

    fn scheduled_claim(attempt: i32, schedule: &[i32]) -> ClaimedDelivery {
        ClaimedDelivery {
            attempt,
            max_retries: 0,
            retry_schedule: Some(schedule.to_vec()),
            ..ClaimedDelivery::sample()
        }
    }

    #[test]
    fn a_schedule_replaces_max_retries_and_the_doubling() {
        let schedule = [5, 300, 1800, 7200, 18000, 36000, 36000];
        for (attempt, wait) in schedule.iter().enumerate() {
            let c = complete(
                &scheduled_claim(attempt as i32 + 1, &schedule),
                &failed(Some(500)),
                now(),
                0.0,
            );
            assert_eq!(c.status, DeliveryStatus::Retrying, "attempt {attempt}");
            assert_eq!(
                c.next_attempt_at,
                Some(now() + chrono::Duration::seconds(i64::from(*wait)))
            );
        }
        // Attempt 8 follows the 7th retry: the last one.
        let c = complete(
            &scheduled_claim(8, &schedule),
            &failed(Some(500)),
            now(),
            0.0,
        );
        assert_eq!(
            (c.status, c.next_attempt_at),
            (DeliveryStatus::Failed, None)
        );
        // About 24.5 hours between the first attempt and the dead letter.
        let total: i32 = schedule.iter().sum();
        assert!(total > 86_400, "{total}");
    }

    #[test]
    fn a_schedule_entry_gets_jitter_and_retry_after_still_lengthens_it() {
        assert_eq!(scheduled(&[100], 1, 1.0), Some(Duration::from_secs(110)));
        assert_eq!(scheduled(&[100], 2, 0.0), None);
        assert_eq!(scheduled(&[100], 0, 0.0), Some(Duration::from_secs(100)));
        let mut a = failed(Some(503));
        a.retry_after = Some(Duration::from_secs(600));
        let c = complete(&scheduled_claim(1, &[5]), &a, now(), 0.0);
        assert_eq!(
            c.next_attempt_at,
            Some(now() + chrono::Duration::seconds(600))
        );
        assert_eq!(
            c.throttle_until,
            Some(now() + chrono::Duration::seconds(600))
        );
    }

    #[test]
    fn only_429_and_503_throttle_the_webhook() {
        for (status, throttled) in [(429, true), (503, true), (500, false), (200, false)] {
            let mut a = failed(Some(status));
            a.retry_after = Some(Duration::from_secs(30));
            let c = complete(&claimed(1, 3), &a, now(), 0.0);
            assert_eq!(c.throttle_until.is_some(), throttled, "{status}");
        }
        let c = complete(&claimed(1, 3), &failed(Some(429)), now(), 0.0);
        assert_eq!(c.throttle_until, None, "no Retry-After: no hold");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(" 7 ", now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_retry_after("99999999", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 12:05:00 GMT", now()),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-5", now()), None);
    }
}
