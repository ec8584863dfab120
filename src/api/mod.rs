//! The HTTP API (warp): the route table and its dispatcher (`router`),
//! handlers by resource (`webhooks`, `deliveries`, `events`, `queue`), input
//! rules (`validate`, `request`), tokens (`auth`) and the OpenAPI document.
//! Handlers call the store; they never build SQL. Errors become the envelope
//! in one place (`errors`), and one `recover` at the end of `routes` turns
//! every rejection into it, so no request a client can send gets a 5xx.
//!
//! Choices: every `/api` route needs a token except `/api/openapi.json` (the
//! catalogue too: it is tenant-facing data); lists page with `page` >= 1
//! (default 1) and `limit` 1-100 (default 20); unknown query parameters and
//! body fields are refused; bodies are capped at 1 MiB.

use std::convert::Infallible;
use std::time::Duration;

use warp::{Filter, Reply};

use crate::clock::SharedClock;
use crate::dispatch::sender::Sender;
use crate::store::Store;

pub mod auth;
mod deliveries;
pub mod envelope;
mod errors;
mod events;
pub mod openapi;
pub mod ops;
mod queue;
pub mod request;
pub mod router;
pub mod validate;
mod webhooks;

pub use ops::ops_routes;
pub use router::{Access, RouteSpec, ROUTES};

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
    /// Sends the test route's request, signed like every delivery; built
    /// once from the dispatcher settings (timeout, SSRF guard).
    pub sender: Sender,
    pub clock: SharedClock,
    /// The test delivery's lease: the dispatcher's, so that a crash mid-test
    /// is rescued like any claim.
    pub test_lease: Duration,
}

/// Every route of the API.
pub fn routes(state: ApiState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    ops_routes(state.clone())
        .or(crate::inbound::routes(state.clone()))
        .or(router::api_routes(state))
        .recover(|rej: warp::Rejection| async move {
            Ok::<_, Infallible>(errors::from_rejection(&rej).into_response())
        })
}
