//! `POST /api/portal/sessions` (admin): a single-use link that opens the
//! web portal for one owner (`crate::portal`), under the portal's base URL.

use std::time::Duration;

use serde_json::Value;

use super::reply::Created;
use super::request::{AnyQuery, Input, Json};
use super::validate::{self as v, required};
use super::wire::{PortalLink, PortalSessionRequest};
use super::ApiState;
use crate::portal::{LinkRequest, DEFAULT_LINK_TTL_SECONDS, LINK_TTL_SECONDS};
use crate::web::ApiError;

/// `POST /api/portal/sessions`
pub async fn create(
    state: &ApiState,
    req: Input<(), AnyQuery, Json<PortalSessionRequest>>,
) -> Result<Created<PortalLink>, ApiError> {
    let Json(b) = req.body;
    let Value::String(owner) = required("ownerId", b.owner_id)? else {
        return Err(ApiError::validation("ownerId", "must be a string"));
    };
    let ttl = match b.ttl_seconds {
        None | Some(Value::Null) => DEFAULT_LINK_TTL_SECONDS,
        Some(x) => v::int("ttlSeconds", x, LINK_TTL_SECONDS)?.into(),
    };
    let admin = match b.admin {
        None | Some(Value::Null) => false,
        Some(x) => v::boolean("admin", x)?,
    };
    let request = LinkRequest::new(&owner, admin, Duration::from_secs(ttl.unsigned_abs()))
        .map_err(|e| ApiError::validation("ownerId", e.to_string()))?;
    let link = crate::portal::mint_link(
        &state.store,
        &request,
        state.clock.now(),
        &state.portal.base_url,
    )
    .await?;
    Ok(Created::new(PortalLink {
        url: link.url,
        expires_at: link.expires_at,
    }))
}
