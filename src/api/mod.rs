//! The HTTP API (warp). `route` is the table of routes as a type; `openapi`
//! maps each route to its handler and derives the OpenAPI document from the
//! handlers' types; `router` is the warp filter that resolves, authorises
//! and calls them. Handlers by resource (`webhooks`, `deliveries`, `events`,
//! `queue`) take a typed `request::Input` and answer a typed `reply`, with
//! the wire types of `wire`; field rules are in `validate`, tokens in
//! `auth`. Handlers call the store; they never build SQL. One `recover` at
//! the end of `routes` turns every rejection into the error envelope
//! (`web::errors`), so no request a client can send gets a 5xx.
//!
//! Choices: every `/api` route needs a token except `/api/openapi.json` (the
//! catalogue too: it is tenant-facing data); lists page with `page` >= 1
//! (default 1) and `limit` 1-100 (default 20); unknown body fields are
//! refused, and so are unknown query parameters on the routes that read the
//! query (every GET); bodies are capped at 1 MiB.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use warp::{Filter, Reply};

use crate::clock::SharedClock;
use crate::dispatch::sender::Sender;
use crate::store::Store;

pub mod auth;
pub(crate) mod deliveries;
pub(crate) mod event_types;
mod events;
pub mod openapi;
pub mod ops;
mod portal;
pub(crate) mod queue;
pub(crate) mod recovery;
pub mod reply;
pub mod request;
pub mod route;
pub mod router;
pub mod shaping;
pub mod validate;
pub(crate) mod webhooks;
pub mod wire;

pub use ops::ops_routes;
pub use route::{Access, Route, RouteSpec};

/// Where new webhook signing secrets come from: each call returns a fresh
/// `whsec_` secret (`signing::generate_secret`'s format). Production uses
/// [`system_secrets`]; tests may fix it.
pub type SecretSource = Arc<dyn Fn() -> String + Send + Sync>;

/// Secrets from the thread-local random generator, seeded by the OS.
pub fn system_secrets() -> SecretSource {
    Arc::new(|| crate::signing::generate_secret(&mut rand::rng()))
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub jwt_secret: String,
    /// The `iss` every token must carry (POSTBOX_JWT_ISSUER).
    pub jwt_issuer: Option<String>,
    /// The audience every token's `aud` must contain (POSTBOX_JWT_AUDIENCE).
    pub jwt_audience: Option<String>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub stripe_webhook_secret: Option<String>,
    pub clerk_webhook_secret: Option<String>,
    pub allow_private_targets: bool,
    pub require_https: bool,
    /// Sends the test route's request, signed like every delivery; built
    /// once from the dispatcher settings (timeout, SSRF guard).
    pub sender: Sender,
    pub clock: SharedClock,
    /// The randomness behind new webhook secrets (create and rotate).
    pub new_secret: SecretSource,
    /// The test delivery's lease: the dispatcher's, so that a crash mid-test
    /// is rescued like any claim.
    pub test_lease: Duration,
    /// The portal's settings; its `base_url` is never empty here.
    pub portal: crate::config::PortalConfig,
}

/// Every route of the API: operations, the incoming webhooks, the management API.
pub fn routes(state: ApiState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let inbound = crate::inbound::InboundState {
        store: state.store.clone(),
        clock: state.clock.clone(),
        stripe_webhook_secret: state.stripe_webhook_secret.clone(),
        clerk_webhook_secret: state.clerk_webhook_secret.clone(),
    };
    ops_routes(state.clone())
        .or(crate::portal::routes(state.clone()))
        .or(crate::inbound::routes(inbound))
        .or(router::api_routes(state))
        .recover(|rej: warp::Rejection| async move {
            Ok::<_, Infallible>(crate::web::errors::from_rejection(&rej).into_response())
        })
}
