//! The route table and its dispatcher. Every `/api/...` route (except the
//! incoming Stripe/Clerk routes, which `inbound` serves) is listed once in
//! `ROUTES`; the router, the OpenAPI document and the tests all read it.
//!
//! Matching is done here rather than with chained warp path filters, because
//! warp's `.or()` answers with the "most relevant" rejection, which turns a
//! bad body on a valid path into a 404 or 405. Here the order is explicit:
//! unknown path 404, wrong method 405, then auth (401/403), then ids and
//! body (400/413/415). A literal segment beats a `{param}`, so
//! `/api/webhooks/queue/stats` never reaches `/api/webhooks/{id}/stats`.

use warp::http::{HeaderMap, HeaderValue, Method};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::{self, Caller};
use super::envelope::ApiError;
use super::errors::{method_not_allowed, route_not_found};
use super::request::{read_body, Ctx};
use super::{deliveries, events, openapi, queue, webhooks, ApiState};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token.
    Public,
    /// A valid token; the caller sees only its own rows.
    User,
    /// A valid token with `role: admin`.
    Admin,
}

/// One route: method, path template (`{name}` is a parameter), access.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        summary,
    }
}

/// Every route this router serves.
pub const ROUTES: &[RouteSpec] = &[
    r(
        "GET",
        "/api/openapi.json",
        Access::Public,
        "This OpenAPI document",
    ),
    r(
        "GET",
        "/api/webhooks/events",
        Access::User,
        "The event catalogue",
    ),
    r(
        "GET",
        "/api/webhooks/queue/stats",
        Access::Admin,
        "Queue-wide counts",
    ),
    r(
        "POST",
        "/api/webhooks/queue/pause",
        Access::Admin,
        "Stop claiming, across all dispatchers",
    ),
    r(
        "POST",
        "/api/webhooks/queue/resume",
        Access::Admin,
        "Restart claiming",
    ),
    r(
        "POST",
        "/api/webhooks/queue/retry-failed",
        Access::Admin,
        "Requeue failed deliveries",
    ),
    r("POST", "/api/webhooks", Access::User, "Create a webhook"),
    r(
        "GET",
        "/api/webhooks",
        Access::User,
        "The caller's webhooks",
    ),
    r(
        "GET",
        "/api/webhooks/{id}",
        Access::User,
        "One webhook with its recent deliveries",
    ),
    r(
        "PUT",
        "/api/webhooks/{id}",
        Access::User,
        "Update a webhook",
    ),
    r(
        "DELETE",
        "/api/webhooks/{id}",
        Access::User,
        "Delete a webhook and its queued deliveries",
    ),
    r(
        "POST",
        "/api/webhooks/{id}/regenerate-secret",
        Access::User,
        "Rotate the signing secret",
    ),
    r(
        "GET",
        "/api/webhooks/{id}/deliveries",
        Access::User,
        "Delivery history, newest first",
    ),
    r(
        "POST",
        "/api/webhooks/{id}/deliveries/{deliveryId}/retry",
        Access::User,
        "Send one delivery again",
    ),
    r(
        "POST",
        "/api/webhooks/{id}/test",
        Access::User,
        "Send a webhook.test event now",
    ),
    r(
        "GET",
        "/api/webhooks/{id}/stats",
        Access::User,
        "Delivery statistics",
    ),
    r(
        "POST",
        "/api/events",
        Access::User,
        "Publish an event for the caller",
    ),
];

/// Paths under /api that other modules serve.
const NOT_MINE: &[&str] = &["/api/webhooks/stripe", "/api/webhooks/clerk"];

fn owned(path: &str) -> bool {
    path.starts_with("/api/") && !NOT_MINE.contains(&path)
}

/// The parameters when `path` fits `template`, with the number of literal
/// segments (the more, the more specific).
fn fit(template: &str, path: &str) -> Option<(usize, Vec<String>)> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut literals = 0;
    let mut params = vec![];
    for (t, p) in t.iter().zip(&p) {
        if t.starts_with('{') {
            if p.is_empty() {
                return None;
            }
            params.push((*p).to_string());
        } else if t == p {
            literals += 1;
        } else {
            return None;
        }
    }
    Some((literals, params))
}

/// The route for `method` and `path`: 404 for no such path, 405 when the
/// path exists under other methods.
pub fn resolve(method: &str, path: &str) -> Result<(&'static RouteSpec, Vec<String>), ApiError> {
    let fits: Vec<(&RouteSpec, usize, Vec<String>)> = ROUTES
        .iter()
        .filter_map(|r| fit(r.path, path).map(|(l, p)| (r, l, p)))
        .collect();
    let best = fits.iter().map(|f| f.1).max().ok_or_else(route_not_found)?;
    let candidates: Vec<_> = fits.into_iter().filter(|f| f.1 == best).collect();
    let allowed: Vec<&str> = candidates.iter().map(|f| f.0.method).collect();
    candidates
        .into_iter()
        .find(|f| f.0.method == method)
        .map(|(r, _, p)| (r, p))
        .ok_or_else(|| method_not_allowed(&allowed))
}

/// The filter serving `ROUTES`. It rejects (as not found) paths it does not
/// own before touching the body, so the other filters keep theirs.
pub fn api_routes(
    state: ApiState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::full()
        .and_then(|p: warp::path::FullPath| async move {
            if owned(p.as_str()) {
                Ok(p)
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(warp::method())
        .and(
            warp::query::raw()
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and_then(
            move |path: warp::path::FullPath,
                  method: Method,
                  query: Option<String>,
                  headers: HeaderMap,
                  body| {
                let state = state.clone();
                async move {
                    let answer = async {
                        let (route, params) = resolve(method.as_str(), path.as_str())?;
                        let caller = match route.access {
                            Access::Public => Caller {
                                owner: String::new(),
                                admin: false,
                            },
                            Access::User => auth::authenticate(&state.jwt_secret, &headers)?,
                            Access::Admin => {
                                let c = auth::authenticate(&state.jwt_secret, &headers)?;
                                if !c.admin {
                                    return Err(ApiError::forbidden(
                                        "this route needs a token with role admin",
                                    ));
                                }
                                c
                            }
                        };
                        let body = read_body(&headers, body).await?;
                        let ctx = Ctx {
                            caller,
                            params,
                            query,
                            headers,
                            body,
                        };
                        dispatch(&state, route, ctx).await
                    }
                    .await;
                    let response = match answer {
                        Ok(r) => r,
                        Err(e) => {
                            let allow = (e.status == warp::http::StatusCode::METHOD_NOT_ALLOWED)
                                .then(|| allow_header(path.as_str()))
                                .flatten();
                            let mut r = e.into_response();
                            if let Some(allow) = allow {
                                r.headers_mut().insert(warp::http::header::ALLOW, allow);
                            }
                            r
                        }
                    };
                    Ok::<_, Rejection>(response)
                }
            },
        )
}

fn allow_header(path: &str) -> Option<HeaderValue> {
    let fits: Vec<(&RouteSpec, usize)> = ROUTES
        .iter()
        .filter_map(|r| fit(r.path, path).map(|(l, _)| (r, l)))
        .collect();
    let best = fits.iter().map(|f| f.1).max()?;
    let methods: Vec<&str> = fits
        .iter()
        .filter(|f| f.1 == best)
        .map(|f| f.0.method)
        .collect();
    HeaderValue::from_str(&methods.join(", ")).ok()
}

/// Calls the handler of `route`. Every entry of `ROUTES` has an arm here (a
/// test checks it).
async fn dispatch(state: &ApiState, route: &RouteSpec, ctx: Ctx) -> Result<Response, ApiError> {
    match (route.method, route.path) {
        ("GET", "/api/openapi.json") => openapi::get(state, &ctx).await,
        ("GET", "/api/webhooks/events") => webhooks::catalogue(state, ctx).await,
        ("GET", "/api/webhooks/queue/stats") => queue::stats(state, ctx).await,
        ("POST", "/api/webhooks/queue/pause") => queue::pause(state, ctx).await,
        ("POST", "/api/webhooks/queue/resume") => queue::resume(state, ctx).await,
        ("POST", "/api/webhooks/queue/retry-failed") => queue::retry_failed(state, ctx).await,
        ("POST", "/api/webhooks") => webhooks::create(state, ctx).await,
        ("GET", "/api/webhooks") => webhooks::list(state, ctx).await,
        ("GET", "/api/webhooks/{id}") => webhooks::get(state, ctx).await,
        ("PUT", "/api/webhooks/{id}") => webhooks::update(state, ctx).await,
        ("DELETE", "/api/webhooks/{id}") => webhooks::delete(state, ctx).await,
        ("POST", "/api/webhooks/{id}/regenerate-secret") => {
            webhooks::regenerate_secret(state, ctx).await
        }
        ("GET", "/api/webhooks/{id}/deliveries") => deliveries::list(state, ctx).await,
        ("POST", "/api/webhooks/{id}/deliveries/{deliveryId}/retry") => {
            deliveries::retry(state, ctx).await
        }
        ("POST", "/api/webhooks/{id}/test") => deliveries::test_send(state, ctx).await,
        ("GET", "/api/webhooks/{id}/stats") => deliveries::stats(state, ctx).await,
        ("POST", "/api/events") => events::publish(state, ctx).await,
        _ => Err(ApiError::new(
            warp::http::StatusCode::NOT_IMPLEMENTED,
            "NOT_IMPLEMENTED",
            "route listed but not wired",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_parameters() {
        let (r, _) = resolve("GET", "/api/webhooks/queue/stats").unwrap();
        assert_eq!(r.path, "/api/webhooks/queue/stats");
        let (r, _) = resolve("GET", "/api/webhooks/events").unwrap();
        assert_eq!(r.path, "/api/webhooks/events");
        let (r, p) = resolve("GET", "/api/webhooks/abc/stats").unwrap();
        assert_eq!(
            (r.path, p),
            ("/api/webhooks/{id}/stats", vec!["abc".to_string()])
        );
        assert_eq!(
            resolve("PUT", "/api/webhooks/queue/stats")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            resolve("PUT", "/api/webhooks/events").unwrap_err().status,
            405
        );
        assert_eq!(resolve("GET", "/api/nope").unwrap_err().status, 404);
        assert_eq!(
            resolve("GET", "/api/webhooks//stats").unwrap_err().status,
            404
        );
    }

    #[test]
    fn every_route_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
        }
    }
}
