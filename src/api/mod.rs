//! The HTTP API (warp): filters and handlers. Handlers call the store; they
//! never build SQL. Errors map to the envelope in one place.

use std::convert::Infallible;

use warp::{Filter, Reply};

use crate::store::Store;

pub mod auth;
pub mod envelope;
pub mod ops;

pub use ops::ops_routes;

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

/// Every route of the API.
pub fn routes(state: ApiState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    ops_routes(state.clone())
        .or(crate::inbound::routes(state))
        .recover(|rej: warp::Rejection| async move {
            let err = match rej.find::<envelope::ApiError>() {
                Some(e) => e.clone(),
                None => envelope::ApiError::not_found("route"),
            };
            Ok::<_, Infallible>(err.into_response())
        })
}
