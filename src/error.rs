//! Errors of the wiring layer (`app`) and their exit codes.

use crate::store::StoreError;

/// What can stop the dispatcher from starting or running. It lives here,
/// beside [`AppError`], so that the dispatcher, which imports `config`, is
/// not imported back by the layer `config` reports its errors in.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The outbound HTTP client could not be built (TLS roots, resolver).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A statement of the dispatcher failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What can stop `app::serve` (and the commands built on the library).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A setting is missing or invalid; the message says how to fix it.
    #[error("{0}")]
    Config(String),
    /// The database refused or failed (connect, migrate, a statement).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The dispatcher could not start or failed.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// An address to serve on could not be bound.
    #[error("cannot listen on {addr} ({setting}): {source}")]
    Bind {
        addr: std::net::SocketAddr,
        /// The variable that names the address, for the message's next step.
        setting: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// `postbox dev`'s private PostgreSQL cluster.
    #[error(transparent)]
    Cluster(#[from] crate::dev::cluster::ClusterError),
}

impl AppError {
    /// Process exit code: 2 for configuration errors (as clap uses), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Config(_) => 2,
            _ => 1,
        }
    }
}
