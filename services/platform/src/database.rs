//! Database pools and migrations for both supported backends.
//!
//! An embedded SQLite file is the default (nothing to install); a `postgres://` URL switches to
//! PostgreSQL, which several replicas can share. Services write one set of SQL for both through
//! sqlx's `Any` driver: `$1` placeholders, `BIGINT` integers (money in cents, times in Unix
//! milliseconds), `TEXT` strings, `INSERT … RETURNING`, `ON CONFLICT`. Only the migrations differ
//! per backend (key generation, types), in `migrations/sqlite` and `migrations/postgres`.
//!
//! Every write transaction runs through [`Database::write`], on a task of its own. sqlx cannot
//! end a transaction whose future is dropped half-way: a `BEGIN` whose answer was still on its
//! way leaves the pooled connection inside a transaction that nobody owns (on SQLite holding the
//! write lock for good; on PostgreSQL letting the next borrower's statements join it). A request
//! future is dropped whenever its caller gives up, so the transaction must not live in it.

use std::{
    future::Future,
    hash::Hash,
    ops::{Deref, DerefMut},
    path::Path,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sqlx::{
    Any, AnyConnection, AnyPool, Transaction,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::Instrument;

use crate::read_cache::ReadCache;

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
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A connection pool that knows its backend.
#[derive(Clone, Debug)]
pub struct Database {
    /// Shared so that the metrics hook can hold it weakly (a dropped database is not kept open).
    pool: Arc<AnyPool>,
    /// The program whose metrics this database reports ([`Self::report_metrics`]).
    program: Option<&'static str>,
    backend: Backend,
    /// On SQLite, whose turn it is to write (see [`Database::begin_write`]).
    write_turn: Arc<Mutex<()>>,
    acquire_timeout: Duration,
    read_cache_for: Duration,
}

impl Database {
    /// Connects (creating a SQLite file and its directory if missing) and applies `migrations`.
    pub async fn connect(
        config: &DatabaseConfig,
        migrations: Migrations,
    ) -> Result<Self, DatabaseError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalise_url(&config.url)?;
        let options = AnyConnectOptions::from_str(&url).map_err(DatabaseError::Connect)?;
        let busy_timeout_ms = config.acquire_timeout_ms;
        let statement_timeout_ms = config.statement_timeout_ms.max(1);
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            // sqlx pings every connection it hands out, and again when it takes it back. An
            // embedded SQLite connection has no peer that could have gone away, and each ping
            // is a round trip to the connection's worker thread; PostgreSQL keeps the check,
            // since its server may have closed an idle connection.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; the busy timeout makes a
                        // writer wait for the lock instead of failing at once.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        let busy = format!("PRAGMA busy_timeout = {busy_timeout_ms}");
                        sqlx::query(&busy).execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    } else {
                        // The server's own bounds: no statement runs, and no transaction stays
                        // open, longer than this, whatever happens to the program.
                        for setting in ["statement_timeout", "idle_in_transaction_session_timeout"]
                        {
                            let set = format!("SET {setting} = {statement_timeout_ms}");
                            sqlx::query(&set).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(DatabaseError::Connect)?;
        let migrator = match backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        migrator.run(&pool).await?;
        Ok(Self {
            pool: Arc::new(pool),
            program: None,
            backend,
            write_turn: Arc::new(Mutex::new(())),
            acquire_timeout: Duration::from_millis(config.acquire_timeout_ms),
            read_cache_for: Duration::from_millis(config.read_cache_ms),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Reports this database in `program`'s metrics: `db_pool_connections` and
    /// `db_pool_idle_connections` (read at scrape time) and `db_write_wait_seconds` (how long
    /// each write waited for its turn and its connection).
    pub fn report_metrics(mut self, program: &'static str) -> Self {
        self.program = Some(program);
        let pool = Arc::downgrade(&self.pool);
        crate::metrics::on_scrape(move || {
            if let Some(pool) = pool.upgrade() {
                metrics::gauge!("db_pool_connections", "program" => program)
                    .set(f64::from(pool.size()));
                metrics::gauge!("db_pool_idle_connections", "program" => program)
                    .set(pool.num_idle() as f64);
            }
        });
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A [`ReadCache`] with the configured bound (`read_cache_ms`), holding at most `capacity`
    /// entries.
    pub fn read_cache<K: Hash + Eq + Clone, V: Clone>(&self, capacity: usize) -> ReadCache<K, V> {
        ReadCache::new(self.read_cache_for, capacity)
    }

    /// Runs `work` in a write transaction on a task of its own and waits for its answer.
    ///
    /// `work` gets the open transaction and ends it: [`WriteTransaction::commit`] to keep its
    /// changes; returning without committing (an error, a refusal) rolls them back. Because the
    /// task is not the caller's future, a caller that gives up (a dropped request, a timeout)
    /// does not cut the transaction short: it still begins, runs and ends on its own, bounded by
    /// the database's timeouts, and the connection goes back to the pool outside any
    /// transaction. A panic in `work` is passed on to the caller.
    pub async fn write<T, E, F, Fut>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(WriteTransaction) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
    {
        let database = self.clone();
        // In the caller's span: the transaction's log lines and trace context are the request's.
        let task = tokio::spawn(
            async move {
                let asked = std::time::Instant::now();
                let transaction = database.begin_write().await?;
                if let Some(program) = database.program {
                    metrics::histogram!("db_write_wait_seconds", "program" => program)
                        .record(asked.elapsed().as_secs_f64());
                }
                work(transaction).await
            }
            .instrument(tracing::Span::current()),
        );
        match task.await {
            Ok(outcome) => outcome,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only the runtime shutting down cancels the task.
            Err(_) => Err(sqlx::Error::PoolClosed.into()),
        }
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a transaction that reads first and upgrades later can fail with
    /// "database is locked" without waiting, which concurrent reservations would hit.
    ///
    /// SQLite has one writer at a time, and a writer that finds the lock taken waits in SQLite's
    /// busy handler, which sleeps 1, 2, 5, 10 … 100 ms between tries: under contention writers
    /// waited far longer than anyone held the lock (see BENCHMARKS.md, settle and pay). So the
    /// writers of this process first queue for their turn here, in order, each woken the moment
    /// the one before it finishes; the busy handler is left for other processes on the same
    /// file. Waiting for the turn counts against `acquire_timeout_ms`, as waiting for the lock
    /// did.
    ///
    /// Private: only [`Self::write`] calls it, on a task nobody can cancel half-way.
    async fn begin_write(&self) -> Result<WriteTransaction, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let turn = tokio::time::timeout(
                    self.acquire_timeout,
                    Arc::clone(&self.write_turn).lock_owned(),
                )
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?;
                let transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTransaction {
                    transaction,
                    _turn: Some(turn),
                })
            }
            Backend::Postgres => Ok(WriteTransaction {
                transaction: self.pool.begin().await?,
                _turn: None,
            }),
        }
    }

    /// Whether a write transaction can begin and end within `limit`: on SQLite, that this
    /// process's write turn and the file's write lock can be had. The readiness probe.
    pub async fn writable(&self, limit: Duration) -> bool {
        let probe = self.write(|transaction| async move {
            transaction.rollback().await?;
            Ok::<_, sqlx::Error>(())
        });
        matches!(tokio::time::timeout(limit, probe).await, Ok(Ok(())))
    }

    /// Closes every connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The transaction [`Database::write`] hands to its work. Statements run on `&mut *tx`, as on a
/// plain sqlx transaction; [`Self::commit`] ends it, and dropping it rolls it back (on the
/// write task, where nothing can interrupt that). On SQLite it also holds this process's turn
/// to write, given up when the transaction is over.
pub struct WriteTransaction {
    transaction: Transaction<'static, Any>,
    // After `transaction`: fields drop in order, so the turn passes on only once it has ended.
    // (Dropped without a commit, sqlx rolls back on the connection's thread a moment later; a
    // writer that begins meanwhile waits for that in SQLite's busy handler.)
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTransaction {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.transaction.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.transaction.rollback().await
    }
}

impl Deref for WriteTransaction {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.transaction
    }
}

impl DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.transaction
    }
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
