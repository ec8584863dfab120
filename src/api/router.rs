//! The warp filter serving [`Route`]: resolve the route (404, 405 with
//! `Allow`), check access (401, 403), read the body (413), extract the
//! handler's typed input (400, 415) and call it, through the one table from
//! route to handler (`openapi::with_handler`).

use std::future::Future;
use std::pin::Pin;

use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::{self, Caller};
use super::openapi::{self, Handler, Visit};
use super::reply::Answer;
use super::request::{Ctx, Input};
use super::route::{self, Access, Route};
use super::ApiState;
use crate::web::body::{read_body, BodyError};
use crate::web::errors::payload_too_large;
use crate::web::ApiError;

/// The filter serving every [`Route`]. It rejects (as not found) paths it
/// does not own before touching the body, so the other filters keep theirs.
pub fn api_routes(
    state: ApiState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::full()
        .and_then(|p: warp::path::FullPath| async move {
            if route::owned(p.as_str()) {
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
                        let (route, params) = route::resolve(method.as_str(), path.as_str())?;
                        let caller = authorize(&state, route.spec().access, &headers)?;
                        let body = read_body(&headers, body).await.map_err(|e| match e {
                            BodyError::TooLarge => payload_too_large(),
                            BodyError::Unreadable(_) => ApiError::new(
                                StatusCode::BAD_REQUEST,
                                "BAD_REQUEST",
                                "cannot read the request body",
                            ),
                        })?;
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
                    Ok::<_, Rejection>(answer.unwrap_or_else(|e| error_response(e, path.as_str())))
                }
            },
        )
}

/// The caller when `access` lets it in: 401 without a valid token, 403 for
/// an admin route without `role: admin`.
fn authorize(state: &ApiState, access: Access, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let now = state.clock.now().timestamp();
    let policy = auth::TokenPolicy {
        secret: &state.jwt_secret,
        issuer: state.jwt_issuer.as_deref(),
        audience: state.jwt_audience.as_deref(),
    };
    match access {
        Access::Public => Ok(Caller {
            owner: String::new(),
            admin: false,
        }),
        Access::User => auth::authenticate(&policy, headers, now),
        Access::Admin => {
            let c = auth::authenticate(&policy, headers, now)?;
            if !c.admin {
                return Err(ApiError::forbidden(
                    "this route needs a token with role admin",
                ));
            }
            Ok(c)
        }
    }
}

/// The error envelope; a 405 carries `Allow` with the path's methods.
fn error_response(e: ApiError, path: &str) -> Response {
    let allow = (e.status == StatusCode::METHOD_NOT_ALLOWED)
        .then(|| HeaderValue::from_str(&route::allowed_methods(path).join(", ")).ok())
        .flatten();
    let mut r = e.into_response();
    if let Some(allow) = allow {
        r.headers_mut().insert(warp::http::header::ALLOW, allow);
    }
    r
}

/// Calls a route's handler: extracts its typed input from the request,
/// awaits it and turns its answer into a response.
struct Dispatch<'a> {
    state: &'a ApiState,
    ctx: Ctx,
}

type Answering<'a> = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send + 'a>>;

impl<'a> Visit<'a> for Dispatch<'a> {
    type Out = Answering<'a>;
    fn visit<Args, H: Handler<'a, Args>>(self, handler: H) -> Answering<'a> {
        let Dispatch { state, ctx } = self;
        Box::pin(async move {
            let input = Input::from_ctx(ctx)?;
            Ok(handler.call(state, input).await?.into_response())
        })
    }
}

async fn dispatch(state: &ApiState, route: Route, ctx: Ctx) -> Result<Response, ApiError> {
    openapi::with_handler(route, Dispatch { state, ctx }).await
}
