//! Wiring: one pool, migrations, the roles (API, dispatcher, maintenance) and
//! their ordered shutdown. `serve` is what `postbox serve` runs; tests drive
//! the same function with a listener on port 0 and their own shutdown token.

use futures_util::FutureExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;

use crate::api::{self, system_secrets, ApiState};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{DatabaseClock, SharedClock};
use crate::config::ServeConfig;
use crate::dispatch::sender::Sender;
use crate::dispatch::Dispatcher;
use crate::error::AppError;
use crate::store::Store;
use crate::telemetry;

/// Fans SIGTERM and ctrl-c out to one token.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

/// Serves `routes` on `listener` until `shutdown` fires, then lets the
/// requests in progress finish (warp's graceful shutdown).
pub async fn serve_routes<F>(routes: F, listener: TcpListener, shutdown: CancellationToken)
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    warp::serve(routes)
        .incoming(listener)
        .graceful(async move { shutdown.cancelled().await })
        .run()
        .await;
}

/// Runs the enabled roles of `config` until `shutdown` fires, reading time
/// from `clock`. `api_listener` overrides binding the configured API address
/// (tests pass a listener on port 0). A role that fails stops the others.
pub async fn serve(
    config: ServeConfig,
    api_listener: Option<TcpListener>,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    // Ports first: a port taken fails before the database is touched.
    let api_listener = match (&config.api, api_listener) {
        (None, _) => None,
        (Some(_), Some(l)) => Some(l),
        (Some(api), None) => Some(bind(api.listen, "POSTBOX_LISTEN").await?),
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind(addr, "POSTBOX_METRICS_LISTEN").await?),
        None => None,
    };
    let store = Store::connect(&config.db.url, config.db.pool_size)?;
    if config.migrate {
        let applied = store.migrate().await?;
        tracing::info!(applied, "migrations up to date");
    } else {
        // An older binary never runs on a newer schema (docs/OPERATIONS.md).
        store.schema_check(false).await?;
    }
    let metrics = telemetry::metrics_handle();
    let (clock, calibration) = database_clock(&store, clock).await;
    let dispatch_config = config.dispatch.clone();
    // The API's test route sends through the dispatcher's kind of Sender.
    let sender = Sender::new(dispatch_config.sender_config(), clock.clone())
        .map_err(|e| AppError::Dispatch(e.into()))?;
    let api_config = config.api.clone();
    let mut portal = config.portal.clone();
    if portal.base_url.is_empty() {
        // Links point at the address the API actually listens on.
        if let Some(addr) = api_listener.as_ref().and_then(|l| l.local_addr().ok()) {
            portal.base_url = format!("http://{addr}");
        }
    }
    let state = ApiState {
        store: store.clone(),
        // Without the API role, the state serves /metrics only: no token is ever checked.
        jwt_secret: api_config
            .as_ref()
            .map(|a| a.jwt_secret.clone())
            .unwrap_or_default(),
        jwt_issuer: api_config.as_ref().and_then(|a| a.jwt_issuer.clone()),
        jwt_audience: api_config.as_ref().and_then(|a| a.jwt_audience.clone()),
        metrics: metrics.clone(),
        stripe_webhook_secret: api_config
            .as_ref()
            .and_then(|a| a.stripe_webhook_secret.clone()),
        clerk_webhook_secret: api_config
            .as_ref()
            .and_then(|a| a.clerk_webhook_secret.clone()),
        allow_private_targets: dispatch_config.allow_private_targets,
        require_https: dispatch_config.require_https,
        sender,
        clock: clock.clone(),
        new_secret: system_secrets(),
        test_lease: dispatch_config.lease(),
        portal,
    };

    let mut roles = tokio::task::JoinSet::new();
    if let Some(db_clock) = calibration {
        roles.spawn(keep_calibrated(store.clone(), db_clock, shutdown.clone()).map(Ok));
    }
    if let Some(listener) = api_listener {
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "API listening");
        let server = serve_routes(api::routes(state.clone()), listener, shutdown.clone());
        roles.spawn(server.map(Ok));
    }
    if let Some(listener) = metrics_listener {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(%addr, "metrics listening");
        let server = serve_routes(api::ops_routes(state.clone()), listener, shutdown.clone());
        roles.spawn(server.map(Ok));
    }
    if config.dispatcher {
        // Its own pool: the dispatcher's sessions may commit asynchronously.
        let dispatch_store = Store::connect_with(
            &config.db.url,
            config.db.pool_size,
            config.dispatcher_async_commit,
        )?;
        let dispatcher = Dispatcher::new(dispatch_store, dispatch_config, clock.clone())?;
        let stop = shutdown.clone();
        roles.spawn(async move { dispatcher.run(stop).await.map_err(AppError::from) });
    }
    if let Some(maintenance) = config.maintenance {
        let (store, clock, stop) = (store.clone(), clock.clone(), shutdown.clone());
        roles.spawn(async move {
            crate::maintenance::run(store, maintenance, clock, stop)
                .await
                .map_err(AppError::from)
        });
    }

    let mut result = Ok(());
    while let Some(joined) = roles.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a role failed; shutting down");
                shutdown.cancel();
                result = Err(e);
            }
            Err(e) => {
                tracing::error!(error = %e, "a role panicked; shutting down");
                shutdown.cancel();
            }
        }
    }
    result
}

/// How often a process measures its offset to the database's clock.
const CALIBRATE_EVERY: Duration = Duration::from_secs(10);

/// The clock the roles share. A clock a test pinned or shifted is used as
/// it is; the host's clock is replaced by the database's (`DatabaseClock`),
/// calibrated once here (`keep_calibrated` does it again periodically), so
/// that every process writes and expires leases on one clock.
pub async fn database_clock(
    store: &Store,
    clock: SharedClock,
) -> (SharedClock, Option<Arc<DatabaseClock>>) {
    if !clock.is_system() {
        return (clock, None);
    }
    let db_clock = Arc::new(DatabaseClock::new(clock));
    calibrate(store, &db_clock).await;
    (db_clock.clone(), Some(db_clock))
}

/// One reading of the database's clock; a failure keeps the last offset.
async fn calibrate(store: &Store, clock: &DatabaseClock) -> bool {
    match clock.read(store).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the database's clock; keeping the last offset");
            false
        }
    }
}

/// The first wait after a failed reading while the clock has never been
/// read; doubles up to `MAX_FIRST_READING_DELAY`. Until that first reading
/// the dispatcher and maintenance do nothing, so it is retried quickly.
const FIRST_READING_DELAY: Duration = Duration::from_millis(100);
const MAX_FIRST_READING_DELAY: Duration = Duration::from_secs(1);

/// Calibrates `clock` every `CALIBRATE_EVERY` until `shutdown` (quickly
/// again and again while no reading has succeeded yet).
async fn keep_calibrated(store: Store, clock: Arc<DatabaseClock>, shutdown: CancellationToken) {
    let mut first = FIRST_READING_DELAY;
    loop {
        let wait = if clock.is_calibrated() {
            CALIBRATE_EVERY
        } else {
            let wait = first;
            first = (first * 2).min(MAX_FIRST_READING_DELAY);
            wait
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => { calibrate(&store, &clock).await; }
        }
    }
}

/// Binds `addr`; a failure names `setting`, the variable that chose the address.
pub async fn bind(
    addr: std::net::SocketAddr,
    setting: &'static str,
) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind {
            addr,
            setting,
            source,
        })
}
