//! The wake-up connection: a dedicated (non-pooled) connection that LISTENs on
//! the wake-up channel and pokes the dispatcher on every notification. When
//! the connection drops it reconnects with backoff, LISTENs again and pokes
//! once, since notifications sent while it was away are lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{future, StreamExt};
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, WAKEUP_CHANNEL};

/// `claim` is raised for notifications with the payload `claim` (work was
/// requeued, the queue resumed) and after a reconnect: the dispatcher then
/// looks for due deliveries, not only for new events.
pub async fn run(
    url: String,
    wake: Arc<Notify>,
    claim: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match listen_once(&url, &wake, &claim, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "wake-up connection lost");
                claim.store(true, Ordering::Relaxed);
                wake.notify_one();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn listen_once(
    url: &str,
    wake: &Notify,
    claim: &AtomicBool,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = Store::connect_one(url).await.map_err(|e| e.to_string())?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let listen = async {
        client
            .batch_execute(&format!("LISTEN {WAKEUP_CHANNEL}"))
            .await?;
        let _ = ready_tx.send(());
        future::pending::<Result<(), tokio_postgres::Error>>().await
    };
    tokio::pin!(listen);
    let mut ready_rx = Some(ready_rx);
    loop {
        tokio::select! {
            r = &mut listen => return r.map_err(|e| e.to_string()),
            _ = shutdown.cancelled() => return Ok(()),
            _ = async { ready_rx.as_mut().unwrap().await }, if ready_rx.is_some() => {
                ready_rx = None;
                tracing::debug!("listening for wake-ups");
                // Anything committed while we were not listening is found now.
                claim.store(true, Ordering::Relaxed);
                wake.notify_one();
            }
            msg = messages.next() => match msg {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if n.payload() == "claim" {
                        claim.store(true, Ordering::Relaxed);
                    }
                    wake.notify_one();
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the server closed the connection".into()),
            }
        }
    }
}
