//! Operations endpoints: liveness, readiness, Prometheus metrics. Served by
//! the API and, with POSTBOX_METRICS_LISTEN, on their own address. A scrape
//! refreshes the queue gauges from the database at most once per second
//! (process-wide), so many scrapers cost the database one cheap query.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::ApiState;
use crate::store::Store;

/// How old the queue gauges may be when /metrics renders them.
const QUEUE_GAUGES_MAX_AGE: Duration = Duration::from_secs(1);

/// Liveness, readiness and metrics: served by the API and by the metrics listener.
pub fn ops_routes(
    state: ApiState,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let ready_state = state.clone();
    let readyz = warp::path!("readyz").and(warp::get()).and_then(move || {
        let store = ready_state.store.clone();
        async move {
            let reply = match store.ping().await {
                Ok(()) => warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({"status": "ready"})),
                    StatusCode::OK,
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "readiness check failed");
                    warp::reply::with_status(
                        warp::reply::json(&serde_json::json!({"status": "unavailable", "reason": "database unreachable"})),
                        StatusCode::SERVICE_UNAVAILABLE,
                    )
                }
            };
            Ok::<_, Infallible>(reply)
        }
    });
    let metrics = warp::path!("metrics").and(warp::get()).and_then(move || {
        let state = state.clone();
        async move {
            refresh_queue_gauges(&state.store, state.clock.now()).await;
            Ok::<_, Infallible>(warp::reply::with_header(
                state.metrics.render(),
                "content-type",
                "text/plain; version=0.0.4",
            ))
        }
    });
    healthz.or(readyz).or(metrics)
}

/// Sets the queue gauges from `sql/delivery_queue_depth.sql` unless they were
/// set less than `QUEUE_GAUGES_MAX_AGE` ago. A failure is logged and the
/// previous values stay: the scrape still answers.
async fn refresh_queue_gauges(store: &Store, now: chrono::DateTime<chrono::Utc>) {
    static LAST: OnceLock<tokio::sync::Mutex<Option<Instant>>> = OnceLock::new();
    let mut last = LAST.get_or_init(Default::default).lock().await;
    if last.is_some_and(|at| at.elapsed() < QUEUE_GAUGES_MAX_AGE) {
        return;
    }
    match store.delivery_queue_depth(now).await {
        Ok(q) => {
            for (status, n) in [
                ("pending", q.pending),
                ("retrying", q.retrying),
                ("sending", q.sending),
                ("failed", q.failed),
            ] {
                metrics::gauge!("postbox_queue_depth", "status" => status).set(n as f64);
            }
            if let Some(n) = q.success_estimate {
                metrics::gauge!("postbox_queue_depth", "status" => "success").set(n as f64);
            }
            metrics::gauge!("postbox_events_fanout_pending").set(q.fanout_pending as f64);
            metrics::gauge!("postbox_oldest_due_seconds").set(q.oldest_due_seconds);
            metrics::gauge!("postbox_queue_paused").set(if q.paused { 1.0 } else { 0.0 });
            for (state, n) in [
                ("open", q.breakers_open),
                ("half_open", q.breakers_half_open),
            ] {
                metrics::gauge!("postbox_webhook_breakers", "state" => state).set(n as f64);
            }
            metrics::gauge!("postbox_webhooks_paused").set(q.webhooks_paused as f64);
            *last = Some(Instant::now());
        }
        Err(e) => tracing::warn!(error = %e, "cannot refresh the queue gauges"),
    }
}
