//! SQLite connections kept open for reuse, each with its prepared statements cached.
//!
//! SQLite is a library, not a server: a connection is a file handle and a page cache, a
//! statement runs on the thread that asks for it, and opening one takes well under a
//! millisecond. So the pool is a stack of idle connections behind a mutex; one is taken for a
//! statement or a transaction and put back after, and a new one is opened when none is idle.
//! At most `max_idle` are kept (each holds a page cache), and a connection that comes back
//! inside a transaction (its user dropped it half-way) is rolled back first.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use rusqlite::OpenFlags;

use crate::sql::SqlError;

/// Prepared statements kept per connection: more than any service has.
const CACHED_STATEMENTS: usize = 128;

/// Each connection's page cache, in KiB (SQLite's default is 2 MiB per connection).
const PAGE_CACHE_KIB: u32 = 1024;

pub(crate) struct SqlitePool {
    path: PathBuf,
    busy_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// Connections open now, idle or in use.
    open: AtomicUsize,
    closed: AtomicBool,
}

impl SqlitePool {
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration, max_idle: usize) -> Arc<Self> {
        Arc::new(Self {
            path,
            busy_timeout,
            max_idle: max_idle.max(1),
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// An idle connection, or a new one.
    pub(crate) fn take(self: &Arc<Self>) -> Result<PooledSqlite, SqlError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SqlError::unavailable("the database is closed"));
        }
        let idle = self.idle_connections().pop();
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = self.open_one()?;
                self.open.fetch_add(1, Ordering::Relaxed);
                connection
            }
        };
        Ok(PooledSqlite {
            connection: Some(connection),
            pool: Arc::clone(self),
        })
    }

    fn open_one(&self) -> Result<rusqlite::Connection, SqlError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            // Each connection is used by one thread at a time (the pool hands it out whole).
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        // WAL lets readers run beside the one writer; the busy timeout makes a writer wait for
        // the lock (another process's) instead of failing at once.
        connection.busy_timeout(self.busy_timeout)?;
        connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        connection.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
             PRAGMA cache_size = -{PAGE_CACHE_KIB};"
        ))?;
        connection.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
        Ok(connection)
    }

    fn idle_connections(&self) -> std::sync::MutexGuard<'_, Vec<rusqlite::Connection>> {
        // A panic while the lock was held cannot leave the stack half-changed.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn give_back(&self, connection: rusqlite::Connection) {
        let mut idle = self.idle_connections();
        if !self.closed.load(Ordering::Acquire) && idle.len() < self.max_idle {
            idle.push(connection);
        } else {
            drop(idle);
            drop(connection);
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Connections open now, and how many of them are idle.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let idle = self.idle_connections().len();
        (self.open.load(Ordering::Relaxed), idle)
    }

    /// Refuses new work and closes the idle connections (the busy ones close when they come
    /// back).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let idle = std::mem::take(&mut *self.idle_connections());
        self.open.fetch_sub(idle.len(), Ordering::Relaxed);
    }
}

/// A connection taken from the pool; it goes back when dropped.
pub(crate) struct PooledSqlite {
    connection: Option<rusqlite::Connection>,
    pool: Arc<SqlitePool>,
}

impl PooledSqlite {
    pub(crate) fn connection(&self) -> &rusqlite::Connection {
        self.connection
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for PooledSqlite {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        // A transaction its user did not end (an error, a panic, a dropped future): end it now,
        // so that the next user starts outside any transaction and the write lock is free.
        if !connection.is_autocommit() && connection.execute_batch("ROLLBACK").is_err() {
            // Cannot tell what state it is in: do not pool it.
            drop(connection);
            self.pool.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.pool.give_back(connection);
    }
}
