//! The completer: records attempt outcomes in batches, off the request path.
//! Whatever has arrived while the previous write ran goes in the next one;
//! each write is fenced by the claim's attempt number (see
//! `sql/delivery_complete_many.sql`), so a late outcome changes nothing. It
//! ends once every sender of outcomes is gone and the last batch is written.

use std::time::Duration;

use tokio::sync::mpsc;

use super::signals::TestSignals;
use crate::clock::SharedClock;
use crate::store::{Completion, Store};

/// Writes outcomes until the channel closes. A failed write is retried; if
/// the database stays away, the leases expire and the rescue sends those
/// deliveries again.
pub(super) async fn run_completer(
    store: Store,
    mut rx: mpsc::Receiver<Completion>,
    clock: SharedClock,
    signals: Option<TestSignals>,
) {
    let mut batch = Vec::with_capacity(1024);
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=8 {
            match store.delivery_complete_many(&batch, clock.now()).await {
                Ok(_) => {
                    if let Some(s) = &signals {
                        s.completed(batch.len());
                    }
                    break;
                }
                Err(e) if attempt == 8 => {
                    tracing::error!(error = %e, outcomes = batch.len(), "giving up recording outcomes; the lease rescue will resend them");
                }
                Err(e) => {
                    tracing::warn!(error = %e, outcomes = batch.len(), "recording outcomes failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
