//! `postbox dev`: everything a first run needs, in one process. A private
//! PostgreSQL cluster in a data directory (`postbox::dev::cluster`), the
//! migrations, the API, dispatcher and maintenance exactly as `serve` runs
//! them, and the development receiver of `postbox receive` on loopback, with
//! a demo webhook (owner `demo`, every event type) pointing at it. Private
//! targets are allowed for this run only (the receiver is on 127.0.0.1). On
//! shutdown the cluster stops; its data, the JWT secret and the demo webhook
//! stay in the directory for the next run.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use postbox::clock::SharedClock;
use postbox::config::ServeConfig;
use postbox::dev::cluster::{self, Cluster, ClusterOptions};
use postbox::dev::{DEMO_OWNER, DEMO_WEBHOOK_ID};
use postbox::error::AppError;
use postbox::store::Store;

use super::args::{Cli, Command, DevArgs, ReceiveArgs};
use super::receive;

/// File in the data directory holding the generated JWT secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";
/// Lifetime of the API token printed at start-up.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Starts the cluster, runs everything until ctrl-c or SIGTERM, stops the
/// cluster. A JWT secret is made (32 random bytes, hex) on the first run only.
pub async fn run(config: DevArgs, clock: SharedClock) -> Result<(), AppError> {
    let new_secret = || hex::encode(rand::random::<[u8; 32]>());
    let shutdown = postbox::app::shutdown_on_signals();
    let cluster = start_cluster(config.data_dir.as_deref())?;
    let guard = StopOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().expect("set above");
    say(&format!(
        "postbox dev: PostgreSQL {} in {} ({}), port {}",
        std::fs::read_to_string(cluster.dir().join("data/PG_VERSION"))
            .unwrap_or_default()
            .trim(),
        cluster.dir().display(),
        if cluster.created {
            "new cluster"
        } else if cluster.adopted {
            "already running"
        } else {
            "reused"
        },
        cluster.port()
    ));
    let dir = cluster.dir().to_path_buf();
    let result = run_on(cluster, &config, new_secret, clock, shutdown.clone()).await;
    shutdown.cancel();
    let stopped = guard.stop();
    result?;
    stopped?;
    say(&format!(
        "postbox dev: PostgreSQL stopped; the data stays in {} for next time",
        dir.display()
    ));
    Ok(())
}

/// The default data directory, in the working directory.
const DEFAULT_DATA_DIR: &str = ".postbox-dev";

/// Starts the cluster in `data_dir`, or in the default directory. As root
/// PostgreSQL runs as the `postgres` user, who cannot reach a clone under
/// `/root` (mode 700): the default then moves to the temp directory, one per
/// working directory, and says so. A `--data-dir` given is never moved.
fn start_cluster(data_dir: Option<&Path>) -> Result<Cluster, AppError> {
    let start = |dir: PathBuf| {
        Cluster::start(&ClusterOptions {
            dir,
            port: None,
            settings: vec![],
        })
    };
    if let Some(dir) = data_dir {
        return Ok(start(dir.to_path_buf())?);
    }
    match start(PathBuf::from(DEFAULT_DATA_DIR)) {
        Err(cluster::ClusterError::Unreachable(closed)) => {
            // Nothing but the lock was made in it: leave no trace.
            let _ = std::fs::remove_file(closed.join("lock"));
            let _ = std::fs::remove_dir(&closed);
            let digest = sha2::Sha256::digest(closed.as_os_str().as_encoded_bytes());
            let moved =
                std::env::temp_dir().join(format!("postbox-dev-{}", &hex::encode(digest)[..8]));
            say(&format!(
                "postbox dev: the postgres user cannot reach {} (a parent directory is closed to it); \
                 using {} instead (--data-dir chooses another)",
                closed.display(),
                moved.display()
            ));
            Ok(start(moved)?)
        }
        other => Ok(other?),
    }
}

async fn run_on(
    cluster: &Cluster,
    config: &DevArgs,
    new_secret: impl FnOnce() -> String,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let secret_file = cluster.dir().join(JWT_SECRET_FILE);
    let jwt_secret = load_or_create_secret(&secret_file, new_secret)?;
    let url = cluster.url();
    let store = Store::connect(&url, 2)?;
    store.migrate().await?;

    // The hints name the flags: `postbox dev` is run by hand.
    let api = postbox::app::bind(config.listen, "--listen").await?;
    let receiver_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.receiver_port));
    let receiver = postbox::app::bind(receiver_addr, "--receiver-port").await?;
    let api_addr = api.local_addr().map_err(|source| AppError::Bind {
        addr: config.listen,
        setting: "--listen",
        source,
    })?;
    let hook = format!(
        "http://{}/hook",
        receiver.local_addr().unwrap_or(receiver_addr)
    );
    let now = clock.now();
    let webhook_secret = store
        .webhook_upsert(
            DEMO_WEBHOOK_ID,
            DEMO_OWNER,
            "postbox dev receiver",
            &hook,
            &["*"],
            now,
        )
        .await?
        .ok_or_else(|| {
            AppError::Config(format!(
                "webhook {DEMO_WEBHOOK_ID} in {} belongs to another owner than {DEMO_OWNER}: \
                 delete it, or start with another --data-dir",
                cluster.dir().display()
            ))
        })?;
    let token =
        postbox::api::auth::mint(&jwt_secret, DEMO_OWNER, false, TOKEN_TTL, now.timestamp())
            .map_err(|e| AppError::Config(e.to_string()))?;
    let portal = postbox::portal::LinkRequest::new(
        DEMO_OWNER,
        false,
        postbox::config::defaults::duration(postbox::config::defaults::PORTAL_LINK_TTL),
    )
    .map_err(|e| AppError::Config(e.to_string()))?;
    let portal = postbox::portal::mint_link(&store, &portal, now, &format!("http://{api_addr}"))
        .await?
        .url;
    say(&next_steps(
        &url,
        api_addr,
        &hook,
        &token,
        &secret_file,
        &portal,
    ));

    let settings = receive::Settings::from_args(&ReceiveArgs {
        port: config.receiver_port,
        host: receiver_addr.ip(),
        secret: Some(webhook_secret),
        fail_rate: 0.0,
    })
    .map_err(|e| AppError::Config(e.to_string()))?;
    // A roll of 1.0 is never under the fail rate: no simulated failures.
    let roll: receive::Roll = Arc::new(|| 1.0);
    let config = serve_config(&url, &jwt_secret)?;
    // Side by side in this task: whichever ends first stops the other.
    let receiving = async {
        let stop = shutdown.clone();
        let served = receive::run_on(receiver, settings, clock.clone(), roll, stop.clone()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the development receiver failed; stopping");
            stop.cancel();
        }
    };
    let serving = async {
        let served = postbox::app::serve(config, Some(api), clock.clone(), shutdown.clone()).await;
        shutdown.cancel();
        served
    };
    let ((), served) = tokio::join!(receiving, serving);
    served
}

/// `serve`'s settings for the dev run: the private database, its secret,
/// private targets allowed, migrations already applied. Everything else
/// reads its variable as `serve` does.
fn serve_config(url: &str, jwt_secret: &str) -> Result<ServeConfig, AppError> {
    let argv = [
        "postbox",
        "serve",
        "--database-url",
        url,
        "--jwt-secret",
        jwt_secret,
        "--allow-private-targets",
        "--no-migrate",
    ];
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Serve(args),
            ..
        }) => args.to_config(),
        Ok(_) => unreachable!("the argv above names serve"),
        Err(e) => Err(AppError::Config(e.to_string().trim().to_string())),
    }
}

/// What the user reads first: the database URL and what to run next.
fn next_steps(
    url: &str,
    api: SocketAddr,
    hook: &str,
    token: &str,
    secret_file: &Path,
    portal: &str,
) -> String {
    let bin = std::env::current_exe()
        .ok()
        .map_or("postbox".to_string(), |p| p.display().to_string());
    format!(
        "DATABASE_URL={url}\n\
         postbox dev: API on http://{api}; demo webhook {DEMO_WEBHOOK_ID} (owner {DEMO_OWNER}, every event type) -> receiver {hook}\n\
         \n\
         Publish an event; its delivery is printed below with \"signature verified\":\n\
         \x20 psql \"{url}\" -c \"SELECT postbox.publish('project.created', jsonb_build_object('id', 42), '{DEMO_OWNER}')\"\n\
         Call the API as owner {DEMO_OWNER} (this token lasts 24 h):\n\
         \x20 curl -H \"Authorization: Bearer {token}\" http://{api}/api/webhooks\n\
         Mint another token:\n\
         \x20 {bin} token --sub {DEMO_OWNER} --jwt-secret \"$(cat {secret})\"\n\
         Open the web portal as owner {DEMO_OWNER} (this link opens once, within 15 minutes):\n\
         \x20 {portal}\n\
         Mint another portal link:\n\
         \x20 {bin} portal-link --sub {DEMO_OWNER} --database-url \"{url}\" --listen {api}\n\
         Stop with ctrl-c: PostgreSQL stops, its data stays for the next `postbox dev`.\n",
        secret = secret_file.display(),
    )
}

/// The secret stored in `path`, or a new one written there (mode 0600).
fn load_or_create_secret(
    path: &Path,
    new_secret: impl FnOnce() -> String,
) -> Result<String, AppError> {
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| AppError::Cluster(cluster::ClusterError::DataDir { what, path, source })
    };
    if path.exists() {
        let secret = std::fs::read_to_string(path).map_err(io("read"))?;
        return Ok(secret.trim().to_string());
    }
    let secret = new_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io("create"))?;
    file.write_all(secret.as_bytes()).map_err(io("write"))?;
    Ok(secret)
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the development stack.
    let _ = writeln!(out, "{}", text.trim_end());
    let _ = out.flush();
}

/// Stops the cluster when dropped (an error or a panic on the way out), once.
struct StopOnDrop(Option<Cluster>);

impl StopOnDrop {
    fn stop(mut self) -> Result<(), cluster::ClusterError> {
        self.0.take().map_or(Ok(()), |c| c.stop())
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = c.stop();
        }
    }
}
