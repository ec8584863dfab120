//! The only module that talks to Postgres. One function per statement in
//! `sql/`, named after its file; statements are prepared once per connection
//! and always parameterised. Migrations live in `migrations/`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub use delivery::{DeliveryRow, DeliveryWindow, DeliveryWindowRow, QueueDepth, RetryOutcome};
pub use delivery_attempt::AttemptRow;
pub use event::{EventRow, PublishOptions, Published, EVENT_PUBLISH_SQL};
pub use event_type::EventType;
pub use maintenance::{DeletedBatch, MaintenanceLock, Retention};
pub use portal::{NewPortalSession, PortalSessionRow, PORTAL_TAIL_CHANNEL};
pub use queue::QueueStatsRow;
pub use types::{
    BatchMember, BreakerRule, ClaimLimits, ClaimedBatch, ClaimedDelivery, CompleteReport,
    Completion, DeliveryStatus, FanoutResult, FANOUT_MAX_DELIVERIES,
};
pub use webhook::{
    BreakerRow, FilterMatch, HourlyRow, NewWebhook, OrderingPolicy, TroubledWebhookRow,
    WebhookHealthRow, WebhookPatch, WebhookRow, WebhookStatsRow,
};
pub use webhook_job::{JobKind, JobProgress, JobRange, JOB_BATCH};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The NOTIFY channel that wakes dispatchers.
pub const WAKEUP_CHANNEL: &str = "postbox_wakeup";

/// Errors of the store layer: which operation failed, and the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database URL: {0}")]
    Config(String),
    #[error("cannot get a database connection: {}", pool_cause(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{op}: {source}")]
    Db {
        op: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("migrations failed: {0}")]
    Migrate(#[from] refinery::Error),
    /// A statement that always answers a row answered none (repeatedly).
    #[error("{0}: no row answered")]
    Missing(&'static str),
    /// The migration history is from a newer version or damaged.
    #[error("{0}")]
    Schema(#[from] schema::SchemaError),
    /// `sslmode` or `sslrootcert` in the URL cannot be used; says which and why.
    #[error("DATABASE_URL: {0}")]
    Tls(String),
}

impl StoreError {
    /// The SQLSTATE of a database error, if this is one.
    pub fn sql_state(&self) -> Option<&str> {
        match self {
            StoreError::Db { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// True for a missing `postbox` schema or table (SQLSTATE 3F000,
    /// 42P01): the database was never migrated.
    pub fn is_unmigrated(&self) -> bool {
        matches!(self.sql_state(), Some("3F000" | "42P01"))
            && self.db_message().is_some_and(|m| m.contains("postbox"))
    }

    /// The database's own message (for errors raised by our SQL functions).
    pub fn db_message(&self) -> Option<&str> {
        match self {
            StoreError::Db { source, .. } => source.as_db_error().map(|e| e.message()),
            _ => None,
        }
    }
}

/// A pool error without deadpool's "Error occurred while creating a new
/// object" prefix, so that a log line says the cause once.
fn pool_cause(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(cause) => cause.to_string(),
        other => other.to_string(),
    }
}

fn db(op: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Db { op, source }
}

/// The text of `sql/<name>.sql`, compiled into the binary.
macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/", $name, ".sql"))
    };
}

/// `sql/<name>.sql` as a [`Statement`]: the file is named once, and the name
/// is what errors report.
macro_rules! statement {
    ($name:literal) => {
        $crate::store::Statement {
            name: $name,
            text: sql!($name),
        }
    };
}

/// One statement of `sql/`: its file name (the operation named in errors)
/// and its text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statement {
    pub name: &'static str,
    pub text: &'static str,
}

impl Statement {
    /// Prepares the statement on `client` (cached per connection).
    pub(crate) async fn prepare(
        self,
        client: &Object,
    ) -> Result<tokio_postgres::Statement, StoreError> {
        client
            .prepare_cached(self.text)
            .await
            .map_err(db(self.name))
    }

    /// Runs it on `client`; the rows changed.
    pub(crate) async fn execute(
        self,
        client: &Object,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let stmt = self.prepare(client).await?;
        client.execute(&stmt, params).await.map_err(db(self.name))
    }

    /// Runs it on `client`; every row.
    pub(crate) async fn query(
        self,
        client: &Object,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let stmt = self.prepare(client).await?;
        client.query(&stmt, params).await.map_err(db(self.name))
    }

    /// Runs it on `client`; exactly one row.
    pub(crate) async fn query_one(
        self,
        client: &Object,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let stmt = self.prepare(client).await?;
        client.query_one(&stmt, params).await.map_err(db(self.name))
    }

    /// Runs it on `client`; at most one row.
    pub(crate) async fn query_opt(
        self,
        client: &Object,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let stmt = self.prepare(client).await?;
        client.query_opt(&stmt, params).await.map_err(db(self.name))
    }
}

/// A pooled connection inside an explicit transaction (`BEGIN` sent). Dropped
/// before [`InTransaction::commit`] (an error, or the future cancelled), the
/// connection is closed instead of going back to the pool, so the server
/// rolls the transaction back and no half-done transaction is ever reused.
pub(crate) struct InTransaction(Option<Object>);

impl InTransaction {
    /// Sends `BEGIN` on `client`; `op` names the work in errors.
    pub(crate) async fn begin(client: Object, op: &'static str) -> Result<Self, StoreError> {
        client.batch_execute("BEGIN").await.map_err(db(op))?;
        Ok(InTransaction(Some(client)))
    }

    /// The connection, for the transaction's statements.
    pub(crate) fn client(&self) -> &Object {
        self.0.as_ref().expect("a transaction not yet committed")
    }

    /// Sends `COMMIT`; the connection goes back to the pool.
    pub(crate) async fn commit(mut self, op: &'static str) -> Result<(), StoreError> {
        let client = self.0.take().expect("a transaction not yet committed");
        match client.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                drop(Object::take(client));
                Err(db(op)(e))
            }
        }
    }
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

// Statements grouped by table; each file adds an `impl Store` block.
/// The benchmark's statements (`postbox bench`).
pub mod bench;
mod delivery;
mod delivery_attempt;
mod event;
mod event_type;
mod inbox;
mod maintenance;
mod portal;
mod queue;
pub mod schema;
pub mod tls;
mod types;
mod webhook;
mod webhook_job;

/// A handle on the database: a connection pool plus the statements.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    url: String,
}

/// The session settings of the dispatcher's connections, as `(name, value)`.
///
/// - `synchronous_commit = off`: a claim or an outcome commits without
///   waiting for its WAL flush (see [`Store::connect_with`]).
/// - `plan_cache_mode = force_generic_plan`: every statement is planned once
///   per session; they are written to need no custom plan.
/// - `enable_seqscan = off`: every dispatcher statement reaches its rows
///   through an index, whatever the statistics say. A generic plan made
///   while a table was small (a fresh database, or statistics that
///   autovacuum has not refreshed: with `autovacuum = off` they never are)
///   would otherwise keep reading the whole table on every execution as it
///   grows: the completion's UPDATE did, 0.3 ms per delivery at 30,000 rows
///   (docs/PERFORMANCE.md, "Completion"). A table with no usable index
///   (`queue_state`, one row) is still scanned: the setting only makes a
///   sequential scan the last choice.
pub const DISPATCHER_SESSION: &[(&str, &str)] = &[
    ("synchronous_commit", "off"),
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
];

impl Store {
    /// Builds a pool of at most `max_size` connections. Connects lazily.
    pub fn connect(url: &str, max_size: usize) -> Result<Store, StoreError> {
        Store::connect_with(url, max_size, false)
    }

    /// Like `connect`; with `async_commit` the pool's sessions take
    /// [`DISPATCHER_SESSION`]: a commit returns before its WAL is flushed,
    /// statements are planned once, generically, and reach rows through
    /// indexes. Only the dispatcher uses it. A Postgres crash can then forget its last
    /// few hundred milliseconds of claims and outcomes; every guarantee still
    /// holds (the events are untouched, a forgotten claim or outcome means the
    /// delivery is sent again: at least once), and no commit waits for a disk
    /// flush, which is most of a small transaction's cost.
    pub fn connect_with(
        url: &str,
        max_size: usize,
        async_commit: bool,
    ) -> Result<Store, StoreError> {
        let (mut pg, tls) = tls::parse(url)?;
        // Every statement here is bounded and on an index: JIT compilation
        // (hundreds of ms, paid again on each execution once a plan's cost
        // estimate passes jit_above_cost, as fan-out's does with a large
        // backlog) would cost far more than it saves.
        let mut ours = String::from("-c jit=off");
        if async_commit {
            for (name, value) in DISPATCHER_SESSION {
                ours.push_str(&format!(" -c {name}={value}"));
            }
        }
        let options = match pg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {ours}"),
            _ => ours,
        };
        pg.options(&options);
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Store {
            pool,
            url: url.to_string(),
        })
    }

    /// The URL this store connects to (for dedicated connections such as LISTEN).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection of its own, outside the pool (LISTEN, benchmark
    /// producers), with the URL's TLS settings; the caller spawns or polls
    /// the returned connection.
    pub async fn connect_one(
        url: &str,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tls::Stream>,
        ),
        StoreError,
    > {
        let (config, tls) = tls::parse(url)?;
        config.connect(tls).await.map_err(db("connect"))
    }

    /// A pooled connection, for this module's files only: outside `store`
    /// nothing runs SQL, so nothing outside gets a raw connection. Fails
    /// when the pool cannot hand one out within its wait timeout.
    async fn client(&self) -> Result<Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    // One statement on a pooled connection, prepared once per connection;
    // its name is the operation errors report.

    async fn exec(&self, st: Statement, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        st.execute(&self.client().await?, params).await
    }

    async fn rows(
        &self,
        st: Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        st.query(&self.client().await?, params).await
    }

    async fn row(&self, st: Statement, params: &[&(dyn ToSql + Sync)]) -> Result<Row, StoreError> {
        st.query_one(&self.client().await?, params).await
    }

    async fn row_opt(
        &self,
        st: Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        st.query_opt(&self.client().await?, params).await
    }

    /// Applies the embedded migrations; running it again changes nothing.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        // refinery panics on a damaged history row and would report an unknown
        // version as it does: refuse both before it runs.
        self.schema_check(true).await?;
        let mut client = self.client().await?;
        // Concurrent `migrate` runs (several replicas starting at once) take turns.
        client
            .execute("SELECT pg_advisory_lock(7138400190000002)", &[])
            .await
            .map_err(db("migrate: lock"))?;
        // refinery's `CREATE TABLE IF NOT EXISTS` draws a NOTICE on every
        // start; the log should stay quiet until something happens.
        client
            .batch_execute("SET client_min_messages = warning")
            .await
            .map_err(db("migrate: quiet"))?;
        let report = embedded::migrations::runner()
            .set_migration_table_name("postbox_schema_history")
            .run_async(&mut **client)
            .await;
        let _ = client
            .batch_execute("RESET client_min_messages; SELECT pg_advisory_unlock(7138400190000002)")
            .await;
        Ok(report?.applied_migrations().len())
    }

    /// The database server's clock now (`sql/database_clock_now.sql`).
    pub async fn database_clock_now(&self) -> Result<DateTime<Utc>, StoreError> {
        let row = self.row(statement!("database_clock_now"), &[]).await?;
        Ok(row.get(0))
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(db("ping"))?;
        Ok(())
    }
}
