//! Incoming webhooks: Stripe and Clerk (Svix) signature checks, and the
//! inbox writes. No JWT on these routes.

use std::convert::Infallible;

use warp::{Filter, Reply};

use crate::api::ApiState;

/// POST /api/webhooks/stripe and POST /api/webhooks/clerk.
pub fn routes(
    state: ApiState,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let _ = state;
    warp::path!("api" / "webhooks" / "inbound-not-built")
        .and(warp::post())
        .map(|| Ok::<_, Infallible>(warp::reply()))
        .and_then(|r: Result<_, Infallible>| async move { r.map_err(|_| warp::reject()) })
}
