//! Operations endpoints: liveness, readiness, Prometheus metrics. Served by
//! the API and, with POSTBOX_METRICS_LISTEN, on their own address.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::ApiState;

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
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(
            state.metrics.render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    healthz.or(readyz).or(metrics)
}
