//! The HTTP API (warp): filters and handlers. Handlers call the store; they
//! never build SQL. Errors map to the envelope in one place.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::store::Store;

pub mod auth;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub jwt_secret: String,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub stripe_webhook_secret: Option<String>,
    pub clerk_webhook_secret: Option<String>,
    pub allow_private_targets: bool,
    pub require_https: bool,
}

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

/// Every route of the API.
pub fn routes(state: ApiState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    ops_routes(state.clone())
        .or(crate::inbound::routes(state))
        .recover(|_rej: warp::Rejection| async move {
            Ok::<_, Infallible>(warp::reply::with_status(
                warp::reply::json(&serde_json::json!({
                    "success": false,
                    "error": {"code": "NOT_FOUND", "message": "no such route"}
                })),
                StatusCode::NOT_FOUND,
            ))
        })
}
