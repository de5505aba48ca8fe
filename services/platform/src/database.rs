//! Database connections and migrations for both supported backends.
//!
//! An embedded SQLite file is the default (nothing to install); a `postgres://` URL switches to
//! PostgreSQL, which several replicas can share. Services write one set of SQL for both
//! ([`crate::sql`]): `$1` placeholders, `BIGINT` integers (money in cents, times in Unix
//! milliseconds), `TEXT` strings, `INSERT … RETURNING`, `ON CONFLICT`. Only the migrations differ
//! per backend (key generation, types), in `migrations/sqlite` and `migrations/postgres`; sqlx
//! applies them.
//!
//! SQLite runs through `rusqlite` ([`crate::sqlite_pool`]): a read runs on the thread that asks
//! for it, a write transaction on a blocking thread, whole. PostgreSQL runs through sqlx's
//! pool.
//!
//! Every write transaction runs through [`Database::write`], on a task of its own. A request
//! future is dropped whenever its caller gives up; a transaction living in it could be cut off
//! between `BEGIN` and `COMMIT`, leaving a pooled connection inside a transaction that nobody
//! owns (on SQLite holding the write lock for good; on PostgreSQL letting the next borrower's
//! statements join it). So the transaction never lives in the caller's future.

use std::{
    future::Future,
    hash::Hash,
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sqlx::{
    PgPool, Postgres, Transaction,
    migrate::Migrator,
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::Instrument;

use crate::{
    read_cache::ReadCache,
    sql::{self, Done, Row, SqlError, Value},
    sqlite_pool::{PooledSqlite, SqlitePool},
};

/// `[database]` in every service's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user:pass@host/db`.
    pub url: String,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection (and, for SQLite, for a write lock).
    pub acquire_timeout_ms: u64,
    /// PostgreSQL only: the server cancels a statement running longer than this, and ends a
    /// session left idle inside a transaction for longer. (SQLite's waits are bounded by
    /// `acquire_timeout_ms`.)
    pub statement_timeout_ms: u64,
    /// How long a replica may answer shop-window reads (the catalogue, profiles) from memory
    /// ([`crate::read_cache`]): a change made through another replica shows within this, one
    /// made through this replica at once. 0 reads the database every time.
    pub read_cache_ms: u64,
}

impl DatabaseConfig {
    pub fn sqlite_file(path: &Path) -> Self {
        Self {
            url: format!("sqlite://{}", path.display()),
            ..Self::default()
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/bookstore.db".into(),
            max_connections: 8,
            acquire_timeout_ms: 5_000,
            statement_timeout_ms: 10_000,
            read_cache_ms: 1_000,
        }
    }
}

/// Which SQL engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One service's migrations, per backend (from `sqlx::migrate!`).
#[derive(Clone, Copy)]
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("unsupported database URL {url:?}: use sqlite://… or postgres://…")]
    UnsupportedUrl { url: String },
    #[error("cannot create the directory for {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot open the SQLite database: {0}")]
    Open(#[source] SqlError),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A database that knows its backend: a pool of connections, and the turn to write.
#[derive(Clone)]
pub struct Database {
    engine: Engine,
    /// The program whose metrics this database reports ([`Self::report_metrics`]).
    program: Option<&'static str>,
    /// On SQLite, whose turn it is to write (see [`Database::write`]).
    write_turn: Arc<Mutex<()>>,
    acquire_timeout: Duration,
    read_cache_for: Duration,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Shared so that the metrics hook can hold it weakly (a dropped database is not kept open).
#[derive(Clone)]
enum Engine {
    Sqlite(Arc<SqlitePool>),
    Postgres(Arc<PgPool>),
}

impl Engine {
    /// Connections open now, and how many of them are idle.
    fn connections(&self) -> (usize, usize) {
        match self {
            Engine::Sqlite(pool) => pool.counts(),
            Engine::Postgres(pool) => (pool.size() as usize, pool.num_idle()),
        }
    }

    fn downgrade(&self) -> WeakEngine {
        match self {
            Engine::Sqlite(pool) => WeakEngine::Sqlite(Arc::downgrade(pool)),
            Engine::Postgres(pool) => WeakEngine::Postgres(Arc::downgrade(pool)),
        }
    }
}

enum WeakEngine {
    Sqlite(std::sync::Weak<SqlitePool>),
    Postgres(std::sync::Weak<PgPool>),
}

impl WeakEngine {
    fn upgrade(&self) -> Option<Engine> {
        match self {
            WeakEngine::Sqlite(pool) => pool.upgrade().map(Engine::Sqlite),
            WeakEngine::Postgres(pool) => pool.upgrade().map(Engine::Postgres),
        }
    }
}

impl Database {
    /// Connects (creating a SQLite file and its directory if missing) and applies `migrations`.
    pub async fn connect(
        config: &DatabaseConfig,
        migrations: Migrations,
    ) -> Result<Self, DatabaseError> {
        let (backend, url) = normalise_url(&config.url)?;
        let acquire_timeout = Duration::from_millis(config.acquire_timeout_ms);
        let engine = match backend {
            Backend::Sqlite => {
                migrate_sqlite(&url, acquire_timeout, migrations.sqlite).await?;
                let pool = SqlitePool::new(
                    sqlite_path(&url),
                    acquire_timeout,
                    config.max_connections as usize,
                );
                // Fail at start, not at the first request, if the file cannot be opened.
                drop(pool.take().map_err(DatabaseError::Open)?);
                Engine::Sqlite(pool)
            }
            Backend::Postgres => {
                let pool = connect_postgres(&url, config).await?;
                migrations.postgres.run(&pool).await?;
                Engine::Postgres(Arc::new(pool))
            }
        };
        Ok(Self {
            engine,
            program: None,
            write_turn: Arc::new(Mutex::new(())),
            acquire_timeout,
            read_cache_for: Duration::from_millis(config.read_cache_ms),
        })
    }

    /// Reports this database in `program`'s metrics: `db_pool_connections` and
    /// `db_pool_idle_connections` (read at scrape time) and `db_write_wait_seconds` (how long
    /// each write waited for its turn and its connection).
    pub fn report_metrics(mut self, program: &'static str) -> Self {
        self.program = Some(program);
        let engine = self.engine.downgrade();
        let counts = move || engine.upgrade().map(|engine| engine.connections());
        crate::metrics::on_scrape(move || {
            if let Some((open, idle)) = counts() {
                metrics::gauge!("db_pool_connections", "program" => program).set(open as f64);
                metrics::gauge!("db_pool_idle_connections", "program" => program).set(idle as f64);
            }
        });
        self
    }

    /// Connections checked out of the pool now (in a statement, a transaction or held).
    pub fn connections_in_use(&self) -> usize {
        let (open, idle) = self.engine.connections();
        open.saturating_sub(idle)
    }

    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    /// A [`ReadCache`] with the configured bound (`read_cache_ms`), holding at most `capacity`
    /// entries.
    pub fn read_cache<K: Hash + Eq + Clone, V: Clone>(&self, capacity: usize) -> ReadCache<K, V> {
        ReadCache::new(self.read_cache_for, capacity)
    }

    /// A connection of its own, for several reads in a row (no transaction).
    pub async fn acquire(&self) -> Result<Connection, SqlError> {
        Ok(Connection(match &self.engine {
            Engine::Sqlite(pool) => Link::Sqlite(pool.take()?),
            Engine::Postgres(pool) => Link::Postgres(pool.acquire().await?),
        }))
    }

    /// Runs one statement on a connection of the pool ([`sql::On::Pool`]). On SQLite it runs on
    /// this thread: a read from the page cache costs microseconds, far less than handing it to
    /// another thread and back.
    pub(crate) async fn run(
        &self,
        sql: &str,
        parameters: &[Value],
    ) -> Result<(Vec<Row>, Done), SqlError> {
        match &self.engine {
            Engine::Sqlite(pool) => {
                {
                    let connection = pool.take()?;
                    let statement = connection.connection().prepare_cached(sql)?;
                    if statement.readonly() {
                        return sql::run_prepared(connection.connection(), statement, parameters);
                    }
                }
                // A statement that writes waits for the write turn like any transaction, on a
                // blocking thread, not here: waiting for SQLite's lock would stall this thread.
                let (sql, parameters) = (sql.to_owned(), parameters.to_vec());
                self.write(move |mut transaction| async move {
                    let outcome = transaction.run(&sql, &parameters).await?;
                    transaction.commit().await?;
                    Ok(outcome)
                })
                .await
            }
            Engine::Postgres(pool) => {
                let mut connection = pool.acquire().await?;
                sql::run_postgres(&mut connection, sql, parameters).await
            }
        }
    }

    /// Runs `work` in a write transaction on a task of its own and waits for its answer.
    ///
    /// `work` gets the open transaction and ends it: [`WriteTransaction::commit`] to keep its
    /// changes; returning without committing (an error, a refusal) rolls them back. Because the
    /// task is not the caller's future, a caller that gives up (a dropped request, a timeout)
    /// does not cut the transaction short: it still begins, runs and ends on its own, bounded by
    /// the database's timeouts, and the connection goes back to the pool outside any
    /// transaction. A panic in `work` is passed on to the caller.
    ///
    /// On SQLite the whole transaction runs on one blocking thread: its statements complete as
    /// they are called, so `work`'s future never waits on them, and the thread is handed the
    /// work once rather than once per statement.
    ///
    /// SQLite has one writer at a time, and a writer that finds the lock taken waits in SQLite's
    /// busy handler, which sleeps 1, 2, 5, 10 … 100 ms between tries: under contention writers
    /// waited far longer than anyone held the lock (see BENCHMARKS.md, settle and pay). So the
    /// writers of this process first queue for their turn here, in order, each woken the moment
    /// the one before it finishes; the busy handler is left for other processes on the same
    /// file. Waiting for the turn counts against `acquire_timeout_ms`. The transaction takes the
    /// write lock up front (`BEGIN IMMEDIATE`): one that reads first and upgrades later can fail
    /// with "database is locked" without waiting.
    pub async fn write<T, E, F, Fut>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(WriteTransaction) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
    {
        let asked = std::time::Instant::now();
        let program = self.program;
        let waited = move || {
            if let Some(program) = program {
                metrics::histogram!("db_write_wait_seconds", "program" => program)
                    .record(asked.elapsed().as_secs_f64());
            }
        };
        // In the caller's span: the transaction's log lines and trace context are the request's.
        let span = tracing::Span::current();
        let outcome = match &self.engine {
            Engine::Sqlite(pool) => {
                let turn = tokio::time::timeout(
                    self.acquire_timeout,
                    Arc::clone(&self.write_turn).lock_owned(),
                )
                .await
                .map_err(|_| SqlError::unavailable("timed out waiting for the turn to write"))?;
                let pool = Arc::clone(pool);
                let runtime = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || {
                    let connection = pool.take()?;
                    connection
                        .connection()
                        .execute_batch("BEGIN IMMEDIATE")
                        .map_err(SqlError::from)?;
                    waited();
                    let transaction = WriteTransaction {
                        connection: Connection(Link::Sqlite(connection)),
                        _turn: Some(turn),
                    };
                    runtime.block_on(work(transaction).instrument(span))
                })
                .await
            }
            Engine::Postgres(pool) => {
                let pool = Arc::clone(pool);
                tokio::spawn(
                    async move {
                        let transaction = pool.begin().await.map_err(SqlError::from)?;
                        waited();
                        let transaction = WriteTransaction {
                            connection: Connection(Link::PostgresTransaction(transaction)),
                            _turn: None,
                        };
                        work(transaction).await
                    }
                    .instrument(span),
                )
                .await
            }
        };
        match outcome {
            Ok(outcome) => outcome,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only the runtime shutting down cancels the task.
            Err(_) => Err(SqlError::unavailable("the program is shutting down").into()),
        }
    }

    /// Whether a write transaction can begin and end within `limit`: on SQLite, that this
    /// process's write turn and the file's write lock can be had. The readiness probe.
    pub async fn writable(&self, limit: Duration) -> bool {
        let probe = self.write(|transaction| async move {
            transaction.rollback().await?;
            Ok::<_, SqlError>(())
        });
        matches!(tokio::time::timeout(limit, probe).await, Ok(Ok(())))
    }

    /// Closes every connection (on PostgreSQL, waits for checked-out ones to come back).
    pub async fn close(&self) {
        match &self.engine {
            Engine::Sqlite(pool) => pool.close(),
            Engine::Postgres(pool) => pool.close().await,
        }
    }
}

/// Applies SQLite migrations through sqlx (which records them in `_sqlx_migrations`), on a
/// connection used for nothing else.
async fn migrate_sqlite(
    url: &str,
    busy_timeout: Duration,
    migrator: &Migrator,
) -> Result<(), DatabaseError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(DatabaseError::Connect)?
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(busy_timeout)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(DatabaseError::Connect)?;
    let outcome = migrator.run(&pool).await;
    pool.close().await;
    Ok(outcome?)
}

async fn connect_postgres(url: &str, config: &DatabaseConfig) -> Result<PgPool, DatabaseError> {
    let options = PgConnectOptions::from_str(url).map_err(DatabaseError::Connect)?;
    // The server's own bounds: no statement runs, and no transaction stays open, longer than
    // this, whatever happens to the program.
    let statement_timeout = config.statement_timeout_ms.max(1).to_string();
    let options = options.options([
        ("statement_timeout", statement_timeout.as_str()),
        (
            "idle_in_transaction_session_timeout",
            statement_timeout.as_str(),
        ),
    ]);
    PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_with(options)
        .await
        .map_err(DatabaseError::Connect)
}

/// A connection held for several statements: a transaction's ([`WriteTransaction`] derefs to
/// one) or one from [`Database::acquire`]. Statements run on `&mut connection`.
pub struct Connection(Link);

enum Link {
    Sqlite(PooledSqlite),
    Postgres(PoolConnection<Postgres>),
    PostgresTransaction(Transaction<'static, Postgres>),
}

impl Connection {
    pub(crate) async fn run(
        &mut self,
        sql: &str,
        parameters: &[Value],
    ) -> Result<(Vec<Row>, Done), SqlError> {
        match &mut self.0 {
            Link::Sqlite(connection) => {
                let connection = connection.connection();
                // Outside a transaction, this is a connection from `Database::acquire`: for
                // reads. A write must take the write turn (`Database::write`, or a statement on
                // the pool, which takes it by itself).
                let statement = connection.prepare_cached(sql)?;
                if connection.is_autocommit() && !statement.readonly() {
                    return Err(SqlError::Failed(
                        "a write on an acquired SQLite connection: use Database::write".into(),
                    ));
                }
                sql::run_prepared(connection, statement, parameters)
            }
            Link::Postgres(connection) => sql::run_postgres(connection, sql, parameters).await,
            Link::PostgresTransaction(transaction) => {
                sql::run_postgres(transaction, sql, parameters).await
            }
        }
    }
}

/// The transaction [`Database::write`] hands to its work. Statements run on `&mut *tx`;
/// [`Self::commit`] ends it, and dropping it rolls it back (on the write's own thread or task,
/// where nothing can interrupt that). On SQLite it also holds this process's turn to write,
/// given up when the transaction is over.
pub struct WriteTransaction {
    connection: Connection,
    // After `connection`: fields drop in order, so the turn passes on only once the transaction
    // has ended (a SQLite connection dropped inside one rolls it back as it goes back to the
    // pool).
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTransaction {
    pub async fn commit(self) -> Result<(), SqlError> {
        match self.connection.0 {
            Link::Sqlite(connection) => Ok(connection.connection().execute_batch("COMMIT")?),
            Link::PostgresTransaction(transaction) => Ok(transaction.commit().await?),
            Link::Postgres(_) => Ok(()),
        }
    }

    pub async fn rollback(self) -> Result<(), SqlError> {
        match self.connection.0 {
            Link::Sqlite(connection) => Ok(connection.connection().execute_batch("ROLLBACK")?),
            Link::PostgresTransaction(transaction) => Ok(transaction.rollback().await?),
            Link::Postgres(_) => Ok(()),
        }
    }
}

impl Deref for WriteTransaction {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

/// The file of a `sqlite://path?query` URL as [`normalise_url`] writes it.
fn sqlite_path(url: &str) -> PathBuf {
    let rest = url.strip_prefix("sqlite://").unwrap_or(url);
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    PathBuf::from(path)
}

/// Checks the scheme and, for SQLite, makes sure the file can be created.
fn normalise_url(url: &str) -> Result<(Backend, String), DatabaseError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(DatabaseError::UnsupportedUrl {
            url: url.to_owned(),
        });
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| DatabaseError::CreateDir {
            path: path.to_owned(),
            source,
        })?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok((Backend::Sqlite, format!("sqlite://{path}?{query}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode_and_postgres_urls_pass_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nested/x.db");
        let (backend, url) =
            normalise_url(&format!("sqlite://{}", file.display())).expect("sqlite");
        assert_eq!(backend, Backend::Sqlite);
        assert!(url.ends_with("x.db?mode=rwc"), "{url}");
        assert!(dir.path().join("nested").is_dir());

        let (backend, url) = normalise_url("postgres://root@127.0.0.1/test").expect("pg");
        assert_eq!(
            (backend, url.as_str()),
            (Backend::Postgres, "postgres://root@127.0.0.1/test")
        );

        assert!(normalise_url("mysql://x").is_err());
    }
}
