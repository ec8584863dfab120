//! Wiring: one pool, migrations, the roles (API, dispatcher, maintenance) and
//! their ordered shutdown. `serve` is what `postbox serve` runs; tests drive
//! the same function with a listener on port 0 and their own shutdown token.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::clock::{SharedClock, SystemClock};
use crate::config::ServeArgs;
use crate::dispatch::sender::{Sender, SenderConfig};
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

/// Runs the enabled roles until `shutdown` fires. `api_listener` overrides
/// binding `POSTBOX_LISTEN` (tests pass a listener on port 0).
pub async fn serve(
    args: ServeArgs,
    api_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let clock: SharedClock = Arc::new(SystemClock);
    let jwt_secret = match (&args.api.jwt_secret, args.no_api) {
        (_, true) => String::new(),
        (Some(s), false) if !s.is_empty() => s.clone(),
        _ => {
            return Err(AppError::Config(
                "POSTBOX_JWT_SECRET is not set: the API needs it to check tokens. Set it \
                 (e.g. export POSTBOX_JWT_SECRET=$(openssl rand -hex 32)), or run with --no-api."
                    .into(),
            ))
        }
    };
    let maintenance_schedule =
        crate::config::parse_schedule(&args.maintenance.maintenance_schedule)
            .map_err(AppError::Config)?;
    let store = Store::connect(&args.db.database_url, args.db.db_pool_size)?;
    if !args.no_migrate {
        let applied = store.migrate().await?;
        tracing::info!(applied, "migrations up to date");
    }
    let metrics = telemetry::metrics_handle();
    let dispatch_config = args.dispatch.to_config();
    // The API's test route sends through the dispatcher's kind of Sender.
    let sender = Sender::new(
        SenderConfig {
            request_timeout: dispatch_config.request_timeout,
            allow_private_targets: dispatch_config.allow_private_targets,
            require_https: dispatch_config.require_https,
        },
        clock.clone(),
    )
    .map_err(|e| AppError::Dispatch(e.into()))?;
    let state = ApiState {
        store: store.clone(),
        jwt_secret,
        metrics: metrics.clone(),
        stripe_webhook_secret: args
            .api
            .stripe_webhook_secret
            .clone()
            .filter(|s| !s.is_empty()),
        clerk_webhook_secret: args
            .api
            .clerk_webhook_secret
            .clone()
            .filter(|s| !s.is_empty()),
        allow_private_targets: args.dispatch.allow_private_targets,
        require_https: args.dispatch.require_https,
        sender,
        clock: clock.clone(),
        test_lease: dispatch_config.lease(),
    };

    let mut roles = tokio::task::JoinSet::new();
    if !args.no_api {
        let listener = match api_listener {
            Some(l) => l,
            None => TcpListener::bind(args.api.listen)
                .await
                .map_err(|source| AppError::Bind {
                    addr: args.api.listen,
                    source,
                })?,
        };
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "API listening");
        let routes = api::routes(state.clone());
        let stop = shutdown.clone();
        roles.spawn(async move {
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move { stop.cancelled().await })
                .run()
                .await;
            Ok(())
        });
    }
    if let Some(addr) = args.metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        tracing::info!(%addr, "metrics listening");
        let routes = api::ops_routes(state.clone());
        let stop = shutdown.clone();
        roles.spawn(async move {
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move { stop.cancelled().await })
                .run()
                .await;
            Ok(())
        });
    }
    if !args.no_dispatcher {
        // Its own pool: the dispatcher's sessions may commit asynchronously.
        let dispatch_store = Store::connect_with(
            &args.db.database_url,
            args.db.db_pool_size,
            args.dispatch.dispatcher_async_commit,
        )?;
        let dispatcher = Dispatcher::new(dispatch_store, args.dispatch.to_config(), clock.clone())?;
        let stop = shutdown.clone();
        roles.spawn(async move { dispatcher.run(stop).await.map_err(AppError::from) });
    }
    if !args.no_maintenance {
        let _ = maintenance_schedule;
        let (store, margs, stop) = (store.clone(), args.maintenance.clone(), shutdown.clone());
        roles.spawn(async move {
            crate::maintenance::run(store, margs, stop)
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
