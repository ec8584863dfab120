//! The route table as a type: every `/api/...` route the management API
//! serves (the incoming Stripe/Clerk routes are `inbound`'s) is one variant
//! of [`Route`], and its method, path template, access rule and summary come
//! from one exhaustive `match` in [`Route::spec`]. The router's handler
//! dispatch and the OpenAPI document match on the same enum, so adding a
//! variant is a compile error until it has a handler and a description.
//!
//! Matching lives here rather than in chained warp path filters, because
//! warp's `.or()` answers with the "most relevant" rejection, which turns a
//! bad body on a valid path into a 404 or 405. Here the order is explicit:
//! unknown path 404, wrong method 405, and the router goes on with auth
//! (401/403), then ids and body (400/413/415). A literal segment beats a
//! `{param}`, so `/api/webhooks/queue/stats` never reaches
//! `/api/webhooks/{id}/stats`.

use crate::web::errors::{method_not_allowed, route_not_found};
use crate::web::ApiError;

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

/// What describes one route: method, path template (`{name}` is a path
/// parameter: a UUID, or an event type name for `{type}`), who may call it,
/// a one-line summary, and the error answers particular to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path template; `{name}` segments are path parameters.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Error answers only this route gives, as `(status, description)`; a
    /// status the document describes for every route (413) is replaced.
    pub errors: &'static [(&'static str, &'static str)],
}

/// Declares [`Route`] and [`Route::ALL`] from one list, so the list of
/// every route cannot miss a variant.
macro_rules! routes {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// One route of the management API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Route {
            $($(#[$doc])* $variant,)*
        }

        impl Route {
            /// Every route, in table order (the order of docs/WEBHOOKS.md).
            pub const ALL: &'static [Route] = &[$(Route::$variant,)*];
        }
    };
}

routes! {
    /// `GET /api/openapi.json`
    OpenApi,
    /// `GET /api/webhooks/events`
    EventCatalogue,
    /// `POST /api/webhooks/events`
    EventTypeCreate,
    /// `PUT /api/webhooks/events/{type}`
    EventTypeUpdate,
    /// `DELETE /api/webhooks/events/{type}`
    EventTypeRetire,
    /// `GET /api/webhooks/queue/stats`
    QueueStats,
    /// `POST /api/webhooks/queue/pause`
    QueuePause,
    /// `POST /api/webhooks/queue/resume`
    QueueResume,
    /// `POST /api/webhooks/queue/retry-failed`
    QueueRetryFailed,
    /// `POST /api/webhooks`
    WebhookCreate,
    /// `GET /api/webhooks`
    WebhookList,
    /// `POST /api/webhooks/filter-test`
    FilterTest,
    /// `POST /api/webhooks/template-preview`
    TemplatePreview,
    /// `GET /api/webhooks/{id}`
    WebhookGet,
    /// `PUT /api/webhooks/{id}`
    WebhookUpdate,
    /// `DELETE /api/webhooks/{id}`
    WebhookDelete,
    /// `POST /api/webhooks/{id}/regenerate-secret`
    WebhookRotateSecret,
    /// `POST /api/webhooks/{id}/pause`
    WebhookPause,
    /// `POST /api/webhooks/{id}/resume`
    WebhookResume,
    /// `POST /api/webhooks/{id}/recover`
    WebhookRecover,
    /// `POST /api/webhooks/{id}/replay`
    WebhookReplay,
    /// `GET /api/webhooks/{id}/deliveries`
    DeliveryList,
    /// `POST /api/webhooks/{id}/deliveries/{deliveryId}/retry`
    DeliveryRetry,
    /// `GET /api/webhooks/{id}/deliveries/{deliveryId}/attempts`
    DeliveryAttempts,
    /// `POST /api/webhooks/{id}/test`
    WebhookTest,
    /// `GET /api/webhooks/{id}/stats`
    WebhookStats,
    /// `POST /api/events`
    EventPublish,
    /// `POST /api/portal/sessions`
    PortalSessionCreate,
}

const fn spec(
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
        errors: &[],
    }
}

impl RouteSpec {
    /// The same spec with the route's own error answers.
    const fn errors(self, errors: &'static [(&'static str, &'static str)]) -> RouteSpec {
        RouteSpec { errors, ..self }
    }
}

impl Route {
    /// The route's method, path template, access rule and summary.
    pub const fn spec(self) -> RouteSpec {
        use Access::*;
        match self {
            Route::OpenApi => spec("GET", "/api/openapi.json", Public, "This OpenAPI document"),
            Route::EventCatalogue => {
                spec("GET", "/api/webhooks/events", User, "The event catalogue")
            }
            Route::EventTypeCreate => spec(
                "POST",
                "/api/webhooks/events",
                Admin,
                "Add an event type (or reopen a retired one)",
            )
            .errors(&[("409", "An open event type of that name exists")]),
            Route::EventTypeUpdate => spec(
                "PUT",
                "/api/webhooks/events/{type}",
                Admin,
                "Describe an event type",
            ),
            Route::EventTypeRetire => spec(
                "DELETE",
                "/api/webhooks/events/{type}",
                Admin,
                "Retire an event type: no new publishes; stored events stay",
            )
            .errors(&[("409", "webhook.test is needed by the test route")]),
            Route::QueueStats => spec(
                "GET",
                "/api/webhooks/queue/stats",
                Admin,
                "Queue-wide counts",
            ),
            Route::QueuePause => spec(
                "POST",
                "/api/webhooks/queue/pause",
                Admin,
                "Stop claiming, across all dispatchers",
            ),
            Route::QueueResume => spec(
                "POST",
                "/api/webhooks/queue/resume",
                Admin,
                "Restart claiming",
            ),
            Route::QueueRetryFailed => spec(
                "POST",
                "/api/webhooks/queue/retry-failed",
                Admin,
                "Requeue failed deliveries",
            ),
            Route::WebhookCreate => spec("POST", "/api/webhooks", User, "Create a webhook"),
            Route::WebhookList => spec("GET", "/api/webhooks", User, "The caller's webhooks"),
            Route::FilterTest => spec(
                "POST",
                "/api/webhooks/filter-test",
                User,
                "Whether a payload matches a filter (sends nothing)",
            )
            .errors(&[("404", "webhookId is not one of the caller's webhooks")]),
            Route::TemplatePreview => spec(
                "POST",
                "/api/webhooks/template-preview",
                User,
                "The body a template renders for an event (sends nothing)",
            ),
            Route::WebhookGet => spec(
                "GET",
                "/api/webhooks/{id}",
                User,
                "One webhook with its recent deliveries",
            ),
            Route::WebhookUpdate => spec("PUT", "/api/webhooks/{id}", User, "Update a webhook"),
            Route::WebhookDelete => spec(
                "DELETE",
                "/api/webhooks/{id}",
                User,
                "Delete a webhook and its queued deliveries",
            ),
            Route::WebhookRotateSecret => spec(
                "POST",
                "/api/webhooks/{id}/regenerate-secret",
                User,
                "Rotate the signing secret",
            ),
            Route::WebhookPause => spec(
                "POST",
                "/api/webhooks/{id}/pause",
                User,
                "Hold this webhook's deliveries (not sent, retry budget kept)",
            ),
            Route::WebhookResume => spec(
                "POST",
                "/api/webhooks/{id}/resume",
                User,
                "Release a paused webhook's deliveries, in order of due time",
            ),
            Route::WebhookRecover => spec(
                "POST",
                "/api/webhooks/{id}/recover",
                User,
                "Requeue this webhook's failed deliveries of events created in [since, until)",
            ),
            Route::WebhookReplay => spec(
                "POST",
                "/api/webhooks/{id}/replay",
                User,
                "Send this webhook again every matching event created in [since, until)",
            ),
            Route::DeliveryList => spec(
                "GET",
                "/api/webhooks/{id}/deliveries",
                User,
                "Delivery history, newest first",
            ),
            Route::DeliveryRetry => spec(
                "POST",
                "/api/webhooks/{id}/deliveries/{deliveryId}/retry",
                User,
                "Send one delivery again",
            )
            .errors(&[("409", "The delivery is being sent right now")]),
            Route::DeliveryAttempts => spec(
                "GET",
                "/api/webhooks/{id}/deliveries/{deliveryId}/attempts",
                User,
                "Every attempt of one delivery, newest first",
            ),
            Route::WebhookTest => spec(
                "POST",
                "/api/webhooks/{id}/test",
                User,
                "Send a webhook.test event now",
            ),
            Route::WebhookStats => spec(
                "GET",
                "/api/webhooks/{id}/stats",
                User,
                "Delivery statistics",
            ),
            Route::EventPublish => spec(
                "POST",
                "/api/events",
                User,
                "Publish an event for the caller",
            )
            .errors(&[("413", "Request body or event payload over 1 MiB")]),
            Route::PortalSessionCreate => spec(
                "POST",
                "/api/portal/sessions",
                Admin,
                "A single-use link that opens the web portal for one owner",
            ),
        }
    }
}

/// Paths under /api that `inbound` serves.
const NOT_MINE: &[&str] = &["/api/webhooks/stripe", "/api/webhooks/clerk"];

/// Whether the API router answers for `path` (else it leaves the request to
/// the other filters, body untouched).
pub fn owned(path: &str) -> bool {
    path.starts_with("/api/") && !NOT_MINE.contains(&path)
}

/// The `{names}` of a path template, in order.
pub fn template_names(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
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

/// The routes serving `path` (any method) with its raw path parameters:
/// those whose template fits with the most literal segments.
fn candidates(path: &str) -> Vec<(Route, Vec<String>)> {
    let fits: Vec<(Route, usize, Vec<String>)> = Route::ALL
        .iter()
        .filter_map(|r| fit(r.spec().path, path).map(|(l, p)| (*r, l, p)))
        .collect();
    let best = fits.iter().map(|f| f.1).max().unwrap_or(0);
    fits.into_iter()
        .filter(|f| f.1 == best)
        .map(|(r, _, p)| (r, p))
        .collect()
}

/// The methods `path` accepts, in table order (the `Allow` header of a 405).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    candidates(path)
        .into_iter()
        .map(|(r, _)| r.spec().method)
        .collect()
}

/// The route for `method` and `path` with its raw path parameters in
/// template order: 404 for no such path, 405 when the path exists under
/// other methods.
pub fn resolve(method: &str, path: &str) -> Result<(Route, Vec<String>), ApiError> {
    let found = candidates(path);
    if found.is_empty() {
        return Err(route_not_found());
    }
    let allowed: Vec<&str> = found.iter().map(|(r, _)| r.spec().method).collect();
    found
        .into_iter()
        .find(|(r, _)| r.spec().method == method)
        .ok_or_else(|| method_not_allowed(&allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_parameters() {
        let (r, _) = resolve("GET", "/api/webhooks/queue/stats").unwrap();
        assert_eq!(r, Route::QueueStats);
        let (r, _) = resolve("GET", "/api/webhooks/events").unwrap();
        assert_eq!(r, Route::EventCatalogue);
        let (r, p) = resolve("GET", "/api/webhooks/abc/stats").unwrap();
        assert_eq!((r, p), (Route::WebhookStats, vec!["abc".to_string()]));
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
        assert_eq!(
            allowed_methods("/api/webhooks/x"),
            vec!["GET", "PUT", "DELETE"]
        );
    }

    #[test]
    fn every_route_is_unique_and_resolves_to_itself() {
        for (i, a) in Route::ALL.iter().enumerate() {
            for b in &Route::ALL[i + 1..] {
                let (a, b) = (a.spec(), b.spec());
                assert!(!(a.method == b.method && a.path == b.path), "{a:?}");
            }
            let s = a.spec();
            let concrete = s
                .path
                .replace("{id}", "x")
                .replace("{deliveryId}", "y")
                .replace("{type}", "a.b");
            assert_eq!(resolve(s.method, &concrete).unwrap().0, *a);
        }
    }
}
