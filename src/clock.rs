//! Time as an explicit input: production reads the database's clock (the
//! system clock plus a measured offset, `DatabaseClock`), tests pin or shift
//! it so that retries become due without sleeping.
//!
//! Why the database's clock: a lease written by one process is expired by
//! another's rescue. With each host's own clock, a skew between two
//! dispatchers longer than the lease's margin would re-send live claims;
//! measured against the one database every process shares, they agree to
//! within a round trip.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::store::{Store, StoreError};

/// Where library code reads "now".
pub trait Clock: Send + Sync + 'static {
    /// The current instant, UTC.
    fn now(&self) -> DateTime<Utc>;

    /// Whether this is the host's own clock, which production replaces by
    /// the database's (`DatabaseClock`). Clocks that tests pin or shift say
    /// no and are used as they are.
    fn is_system(&self) -> bool {
        false
    }

    /// The database's clock behind this one, if it is one: until it has
    /// been read once (`DatabaseClock::read`) it is only the host's clock,
    /// and nothing may expire or write leases with it.
    fn database(&self) -> Option<&DatabaseClock> {
        None
    }
}

/// Whether `clock` may be used for leases: it is not a database clock still
/// waiting for its first reading.
pub fn is_ready(clock: &SharedClock) -> bool {
    clock.database().is_none_or(DatabaseClock::is_calibrated)
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn is_system(&self) -> bool {
        true
    }
}

/// The system clock shifted by an adjustable offset (tests: "an hour later").
#[derive(Debug, Default, Clone)]
pub struct ShiftedClock {
    offset_ms: Arc<AtomicI64>,
}

impl ShiftedClock {
    /// Moves this clock (and every clone of it) `by` into the future.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// The database server's clock as seen from this process: `base` plus the
/// offset of the latest `calibrate` (0 until then: `is_calibrated` says
/// whether one reading succeeded).
pub struct DatabaseClock {
    base: SharedClock,
    offset_ms: AtomicI64,
    calibrated: AtomicBool,
}

impl DatabaseClock {
    pub fn new(base: SharedClock) -> DatabaseClock {
        DatabaseClock {
            base,
            offset_ms: AtomicI64::new(0),
            calibrated: AtomicBool::new(false),
        }
    }

    /// The base clock, which calibration readings are taken with.
    pub fn base(&self) -> &SharedClock {
        &self.base
    }

    /// Takes a reading `database` of the database's clock, asked at `sent`
    /// and answered at `received` (both by the base clock): the offset is
    /// `database` minus the midpoint, so its error is at most half the round
    /// trip. Returns the new offset.
    pub fn calibrate(
        &self,
        database: DateTime<Utc>,
        sent: DateTime<Utc>,
        received: DateTime<Utc>,
    ) -> Duration {
        let midpoint = sent + (received - sent) / 2;
        let offset = database - midpoint;
        self.offset_ms
            .store(offset.num_milliseconds(), Ordering::SeqCst);
        self.calibrated.store(true, Ordering::SeqCst);
        offset
    }

    /// Whether one reading has succeeded (before it, the offset is 0: the
    /// host's clock, however skewed).
    pub fn is_calibrated(&self) -> bool {
        self.calibrated.load(Ordering::SeqCst)
    }

    /// Takes one reading of the database's clock through `store` and
    /// calibrates with it; returns the new offset. A failure keeps the last
    /// offset.
    pub async fn read(&self, store: &Store) -> Result<Duration, StoreError> {
        let before = self.offset();
        let sent = self.base.now();
        let database = store.database_clock_now().await?;
        let offset = self.calibrate(database, sent, self.base.now());
        let ms = offset.num_milliseconds();
        metrics::gauge!("postbox_clock_offset_seconds").set(ms as f64 / 1000.0);
        if ms.abs() >= 1000 && (offset - before).num_milliseconds().abs() >= 1000 {
            tracing::warn!(
                offset_ms = ms,
                "this host's clock differs from the database's; Postbox keeps time by the database's clock"
            );
        }
        Ok(offset)
    }

    /// The offset in use: database clock minus base clock.
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

impl Clock for DatabaseClock {
    fn now(&self) -> DateTime<Utc> {
        self.base.now() + self.offset()
    }

    fn database(&self) -> Option<&DatabaseClock> {
        Some(self)
    }
}

/// The clock as the roles share it.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_takes_the_offset_at_the_round_trips_midpoint() {
        let base = ShiftedClock::default();
        let clock = DatabaseClock::new(Arc::new(base.clone()));
        let sent = DateTime::UNIX_EPOCH + Duration::seconds(100);
        let received = sent + Duration::milliseconds(20);
        let database = sent + Duration::seconds(45) + Duration::milliseconds(10);
        assert_eq!(
            clock.calibrate(database, sent, received),
            Duration::seconds(45)
        );
        let drift = (clock.now() - (Utc::now() + Duration::seconds(45))).num_milliseconds();
        assert!(drift.abs() < 1000, "{drift}");
        assert!(!clock.is_system() && SystemClock.is_system());
        assert!(clock.is_calibrated());
        let fresh: SharedClock = Arc::new(DatabaseClock::new(Arc::new(base)));
        assert!(!is_ready(&fresh) && is_ready(&(Arc::new(SystemClock) as SharedClock)));
    }
}
