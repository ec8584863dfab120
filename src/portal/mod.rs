//! The web portal, served under `/portal/` by `postbox serve` (with the
//! API): server-rendered HTML (minijinja templates, autoescaped) and one
//! small vendored script, everything embedded in the binary. Why this shape,
//! and what each page reads, is in docs/PORTAL.md.
//!
//! Invariants:
//! - A session acts as its owner's token would: pages call the API's own
//!   handlers (`api::webhooks`, `api::deliveries`, `api::queue`) with the
//!   session's `Caller`, so validation, owner scoping and 404s are the
//!   API's. The few reads the API lacks (keyset log window, attempts,
//!   payload, charts, health, live tail) are owner-scoped store statements.
//! - Every POST carries the session's CSRF token; the cookie is HttpOnly,
//!   SameSite=Lax, Path=/portal (Secure for an https base URL).
//! - Every answer carries a strict Content-Security-Policy (no inline
//!   script or style; `script-src 'self'`), `frame-ancestors` from
//!   POSTBOX_PORTAL_FRAME_ANCESTORS, `nosniff`, `no-referrer`, `no-store`.
//! - Every query is indexed and bounded: no count over history.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::api::ApiState;
use crate::web::ApiError;

/// A template context from `key => value` pairs, each value through serde
/// (`minijinja::context!` takes only types minijinja knows).
macro_rules! ctx {
    ($($k:ident => $v:expr),* $(,)?) => {{
        let mut m = std::collections::BTreeMap::<String, minijinja::Value>::new();
        $( m.insert(stringify!($k).to_string(), minijinja::Value::from(minijinja::value::Serde(&$v))); )*
        minijinja::Value::from(m)
    }};
}

mod admin;
mod cert;
mod chart;
mod endpoint_form;
mod endpoints;
mod form;
mod link;
mod log;
pub mod session;
mod tail;
mod verify;
mod view;

pub use cert::{CertReport, CertStatus};
pub use link::{
    mint_link, random_token, token_hash, Link, LinkError, LinkRequest, DEFAULT_LINK_TTL_SECONDS,
    LINK_TTL_SECONDS, LOGIN_PATH,
};

use form::Form;
use session::Session;
use view::Views;

/// The portal's shared state: the API's (store, settings, handlers' state),
/// the templates and the live tail's hub.
pub(crate) struct Portal {
    api: ApiState,
    views: Views,
    tail: tail::Hub,
}

/// One portal request, parsed.
pub(crate) struct Req {
    method: Method,
    /// Path segments after `/portal`.
    segs: Vec<String>,
    query: Form,
    form: Form,
    headers: HeaderMap,
}

/// An error page: status and what to say.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        let message = match e.status {
            StatusCode::NOT_FOUND => {
                "Not found: there is no such endpoint or delivery for this account.".to_string()
            }
            s if s.is_server_error() => "Something went wrong on our side; try again.".into(),
            _ => e.message,
        };
        PageError {
            status: e.status,
            message,
        }
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> PageError {
        ApiError::from(e).into()
    }
}

impl PageError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn not_found() -> PageError {
        ApiError::not_found("page").into()
    }
}

pub(crate) type PageResult = Result<Response, PageError>;

/// The portal's filter: every path under `/portal`, any method. Other paths
/// are rejected before the body is touched.
pub fn routes(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let portal = Arc::new(Portal {
        tail: tail::Hub::new(state.store.clone(), state.clock.clone()),
        api: state,
        views: Views::new(),
    });
    warp::path::full()
        .and_then(|p: warp::path::FullPath| async move {
            let path = p.as_str();
            if path == "/portal" || path.starts_with("/portal/") {
                Ok(p)
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(warp::method())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and_then(
            move |path: warp::path::FullPath,
                  method: Method,
                  query: String,
                  headers: HeaderMap,
                  body| {
                let portal = portal.clone();
                async move {
                    let body = crate::web::body::read_body(&headers, body).await;
                    let response = match body {
                        Ok(body) => {
                            portal
                                .handle(path.as_str(), method, &query, headers, body)
                                .await
                        }
                        Err(_) => portal.error_page(
                            None,
                            PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."),
                        ),
                    };
                    Ok::<_, Rejection>(portal.secure(response))
                }
            },
        )
}

impl Portal {
    async fn handle(
        &self,
        path: &str,
        method: Method,
        query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        if path == "/portal" {
            return redirect("/portal/");
        }
        let segs: Vec<String> = path
            .trim_start_matches("/portal/")
            .split('/')
            .map(str::to_string)
            .collect();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let req = Req {
            method,
            segs,
            query: Form::parse(query.as_bytes()),
            form: if is_form {
                Form::parse(&body)
            } else {
                Form::default()
            },
            headers,
        };
        let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
        // Pages that need no session.
        match (req.method.as_str(), segs.as_slice()) {
            ("GET", ["assets", name]) => return asset(name),
            ("GET", ["login"]) => {
                return self
                    .login(&req)
                    .await
                    .unwrap_or_else(|e| self.error_page(None, e))
            }
            _ => {}
        }
        let now = self.api.clock.now();
        let session = match session::current(&self.api.store, &req.headers, now).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return self.error_page(
                    None,
                    PageError::new(
                        StatusCode::UNAUTHORIZED,
                        "Your portal session has ended or was never started. Open a new portal link to continue.",
                    ),
                )
            }
            Err(e) => return self.error_page(None, e.into()),
        };
        if req.method != Method::GET && req.method != Method::HEAD {
            let sent = req
                .form
                .get(session::CSRF_FIELD)
                .map(str::to_string)
                .or_else(|| {
                    req.headers
                        .get("x-csrf-token")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                });
            if !session.csrf_ok(sent.as_deref()) {
                return self.error_page(
                    Some(&session),
                    PageError::new(
                        StatusCode::FORBIDDEN,
                        "This form has expired or did not come from the portal (CSRF check failed). Reload the page and try again.",
                    ),
                );
            }
        }
        self.route(&session, &req, &segs)
            .await
            .unwrap_or_else(|e| self.error_page(Some(&session), e))
    }

    async fn route(&self, s: &Session, req: &Req, segs: &[&str]) -> PageResult {
        let get = req.method == Method::GET;
        let post = req.method == Method::POST;
        match segs {
            [""] if get => self.endpoints(s, req).await,
            ["logout"] if post => self.logout(s).await,
            ["endpoints", "new"] if get => self.endpoint_new(s).await,
            ["endpoints"] | ["endpoints", ""] if post => self.endpoint_create(s, req).await,
            ["endpoints", id] if get => self.endpoint(s, req, id).await,
            ["endpoints", id, "edit"] if get => self.endpoint_edit(s, id).await,
            ["endpoints", id, "edit"] if post => self.endpoint_update(s, req, id).await,
            ["endpoints", id, "delete"] if post => self.endpoint_delete(s, id).await,
            ["endpoints", id, "rotate"] if post => self.endpoint_rotate(s, req, id).await,
            ["endpoints", id, "pause"] if post => self.endpoint_pause(s, id, true).await,
            ["endpoints", id, "resume"] if post => self.endpoint_pause(s, id, false).await,
            ["endpoints", id, "recover"] if post => self.endpoint_recover(s, req, id).await,
            ["endpoints", id, "deliveries"] if get => self.deliveries(s, req, id).await,
            ["endpoints", id, "deliveries", did] if get => self.delivery(s, req, id, did).await,
            ["endpoints", id, "deliveries", did, "retry"] if post => {
                self.delivery_retry(s, id, did).await
            }
            ["endpoints", id, "verify"] if get => self.verify_page(s, id, None).await,
            ["endpoints", id, "verify"] if post => self.verify_send(s, id).await,
            ["tail"] if get => self.tail_page(s),
            ["tail", "stream"] if get => self.tail_stream(s),
            ["admin"] if get => self.admin(s, req).await,
            ["admin", action] if post => self.admin_action(s, req, action).await,
            _ => Err(PageError::not_found()),
        }
    }

    /// `GET /portal/login?token=...`: opens the link once, sets the session
    /// cookie and lands on the endpoints page.
    async fn login(&self, req: &Req) -> PageResult {
        let token = req.query.get("token").unwrap_or("");
        let now = self.api.clock.now();
        let opened = if token.is_empty() || token.len() > 128 {
            None
        } else {
            session::open(&self.api.store, &self.api.portal, token, now).await?
        };
        let Some((s, value)) = opened else {
            return Err(PageError::new(
                StatusCode::UNAUTHORIZED,
                "This portal link is invalid, was already used, or has expired. Ask for a new link.",
            ));
        };
        tracing::info!(
            owner = %s.row.owner_id,
            admin = s.row.admin,
            until = %s.row.expires_at,
            "portal session started"
        );
        let mut r = redirect("/portal/");
        let cookie = session::set_cookie(&self.api.portal, &value, s.row.expires_at, now);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        Ok(r)
    }

    /// `POST /portal/logout`
    async fn logout(&self, s: &Session) -> PageResult {
        self.api.store.portal_session_delete(&s.id_hash).await?;
        let mut r = self.page(
            StatusCode::OK,
            None,
            "message.html",
            ctx! {
                title => "Signed out",
                message => "You are signed out. Open a new portal link to come back.",
            },
        );
        if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(&self.api.portal)) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        Ok(r)
    }

    /// Renders `template` with `ctx` plus the session's `session` (owner,
    /// admin, csrf) for the layout.
    fn page(
        &self,
        status: StatusCode,
        s: Option<&Session>,
        template: &str,
        ctx: minijinja::Value,
    ) -> Response {
        let session = match s {
            Some(s) => ctx! {
                owner => s.row.owner_id,
                admin => s.row.admin,
                csrf => s.row.csrf_token,
                expires_at => s.row.expires_at,
            },
            None => minijinja::Value::from(()),
        };
        match self
            .views
            .render(template, minijinja::context! { session => session, ..ctx })
        {
            Ok(html) => {
                let mut r = warp::reply::html(html).into_response();
                *r.status_mut() = status;
                r
            }
            Err(e) => {
                tracing::error!(error = %e, template, "cannot render a portal page");
                let mut r = warp::reply::html("<!doctype html><title>Error</title><p>Something went wrong on our side; try again.".to_string()).into_response();
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }

    fn error_page(&self, s: Option<&Session>, e: PageError) -> Response {
        self.page(
            e.status,
            s,
            "message.html",
            ctx! {
                title => e.status.canonical_reason().unwrap_or("Error"),
                message => e.message,
            },
        )
    }

    /// Adds the security headers every portal answer carries.
    fn secure(&self, mut r: Response) -> Response {
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {}",
            self.api.portal.frame_ancestors
        );
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        if self.api.portal.frame_ancestors == "'none'" {
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        r
    }
}

/// 303 to `location` (after a form, and after the login link).
pub(crate) fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A vendored asset, cached for an hour.
fn asset(name: &str) -> Response {
    match view::ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => {
            let mut r = Response::new((*body).into());
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            r
        }
        None => {
            let mut r = Response::new("not found".into());
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

/// A path id, or the 404 page (a malformed id names nothing).
pub(crate) fn path_id(raw: &str) -> Result<uuid::Uuid, PageError> {
    crate::api::request::parse_uuid("id", raw).map_err(|_| PageError::not_found())
}
