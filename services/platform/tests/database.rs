//! Versioned migrations apply on SQLite and on the local PostgreSQL, once, and the same SQL text
//! then runs on both through the `Any` driver.

use std::time::{Duration, Instant};

use platform::{
    database::{Backend, Database, DatabaseConfig, Migrations},
    testing::TestPostgres,
};

static MIGRATIONS: Migrations = Migrations {
    sqlite: &sqlx::migrate!("tests/migrations/sqlite"),
    postgres: &sqlx::migrate!("tests/migrations/postgres"),
};

async fn migrate_twice_and_round_trip(config: DatabaseConfig, backend: Backend) {
    let database = Database::connect(&config, MIGRATIONS)
        .await
        .expect("connect and migrate");
    assert_eq!(database.backend(), backend);
    database.close().await;
    // Connecting again applies nothing new and does not fail.
    let database = Database::connect(&config, MIGRATIONS)
        .await
        .expect("second start");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(database.pool())
        .await
        .expect("count");
    assert_eq!(applied, 1);

    let id: i64 = database
        .write(|mut tx| async move {
            let id = sqlx::query_scalar("INSERT INTO notes (body) VALUES ($1) RETURNING id")
                .bind("it's; DROP TABLE notes; --")
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(id)
        })
        .await
        .expect("insert");
    let body: String = sqlx::query_scalar("SELECT body FROM notes WHERE id = $1")
        .bind(id)
        .fetch_one(database.pool())
        .await
        .expect("select");
    assert_eq!(body, "it's; DROP TABLE notes; --");
    database.close().await;
}

#[tokio::test]
async fn sqlite_file_is_created_and_migrated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("nested/dir/test.db");
    migrate_twice_and_round_trip(DatabaseConfig::sqlite_file(&file), Backend::Sqlite).await;
    assert!(file.is_file());
}

#[tokio::test]
async fn postgres_is_migrated() {
    let postgres = TestPostgres::create().await;
    let config = DatabaseConfig {
        url: postgres.url.clone(),
        ..Default::default()
    };
    migrate_twice_and_round_trip(config, Backend::Postgres).await;
}

async fn insert_note(database: &Database, body: &str) -> Result<(), sqlx::Error> {
    let body = body.to_owned();
    database
        .write(|mut tx| async move {
            sqlx::query("INSERT INTO notes (body) VALUES ($1)")
                .bind(body)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
        .await
}

/// A write transaction that stays open until `release` fires, then commits or rolls back.
/// Resolves `opened` once it holds the write turn.
fn hold_open(
    database: &Database,
    commit: bool,
) -> (
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), sqlx::Error>>,
) {
    let (opened_tx, opened) = tokio::sync::oneshot::channel();
    let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
    let database = database.clone();
    let task = tokio::spawn(async move {
        database
            .write(move |mut tx| async move {
                sqlx::query("INSERT INTO notes (body) VALUES ('held')")
                    .execute(&mut *tx)
                    .await?;
                let _ = opened_tx.send(());
                let _ = release_rx.await;
                if commit { tx.commit().await } else { Ok(()) }
            })
            .await
    });
    (opened, release, task)
}

async fn count_notes(database: &Database) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(database.pool())
        .await
        .expect("count")
}

/// The writers of one process take turns on SQLite: while a write transaction is open the next
/// writer waits (and gives up after `acquire_timeout_ms`), and it goes ahead as soon as the open
/// one commits or returns without committing (rolled back).
#[tokio::test]
async fn sqlite_writers_take_turns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DatabaseConfig {
        acquire_timeout_ms: 300,
        ..DatabaseConfig::sqlite_file(&dir.path().join("turns.db"))
    };
    let database = Database::connect(&config, MIGRATIONS)
        .await
        .expect("connect");

    let (opened, release, holder) = hold_open(&database, true);
    opened.await.expect("first writer");
    let started = Instant::now();
    let refused = insert_note(&database, "refused").await;
    assert!(
        matches!(refused, Err(sqlx::Error::PoolTimedOut)),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Ends by commit: the waiting writer goes ahead.
    let waiting = tokio::spawn({
        let database = database.clone();
        async move { insert_note(&database, "after a commit").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a writer went ahead of an open one");
    release.send(()).expect("release");
    holder.await.expect("join").expect("commit");
    waiting.await.expect("join").expect("the waiting writer");

    // Ends without a commit (rolled back): the same.
    let (opened, release, holder) = hold_open(&database, false);
    opened.await.expect("writer");
    let waiting = tokio::spawn({
        let database = database.clone();
        async move { insert_note(&database, "after a rollback").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a writer went ahead of an open one");
    release.send(()).expect("release");
    holder.await.expect("join").expect("rollback");
    waiting.await.expect("join").expect("the waiting writer");
    // "held" once (committed), the two waiting writers; the rolled-back "held" is gone.
    assert_eq!(count_notes(&database).await, 3);
    database.close().await;
}

/// Callers that give up at every possible moment (before, during and after `BEGIN`, mid-way
/// through the statements, while committing) leave no transaction open: afterwards every pooled
/// connection begins a fresh write at once, and each given-up write either committed whole or
/// not at all. On the code before `Database::write` this wedged the pool ("attempted to call
/// begin_with at non-zero transaction depth" on SQLite, statements joining a stranger's
/// transaction on PostgreSQL).
async fn abandoned_writers_leave_no_transaction_open(config: DatabaseConfig) {
    let connections = config.max_connections;
    let database = Database::connect(&config, MIGRATIONS)
        .await
        .expect("connect");
    let mut callers = Vec::new();
    for i in 0..1_000u64 {
        let database = database.clone();
        callers.push(tokio::spawn(async move {
            let write = database.write(move |mut tx| async move {
                for part in 0..2 {
                    sqlx::query("INSERT INTO notes (body) VALUES ($1)")
                        .bind(format!("pair {i} part {part}"))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            });
            // Give up after 0 to 3 ms: spread over every await point of the transaction.
            let patience = Duration::from_micros((i * 7_919) % 3_000);
            let _ = tokio::time::timeout(patience, write).await;
        }));
    }
    for caller in callers {
        caller.await.expect("caller");
    }
    // The writes go on after their callers left; wait until they are done (bounded).
    let settled = Instant::now();
    while database.pool().num_idle() < database.pool().size() as usize
        && settled.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if database.backend() == Backend::Postgres {
        // The server's view: no session of this database sits inside a transaction.
        let stuck: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(database.pool())
        .await
        .expect("pg_stat_activity");
        assert_eq!(stuck, 0, "sessions left inside a transaction");
    }
    // Every connection of the pool, one after another and all at once: none is in a
    // transaction, and the write lock is free.
    for round in 0..(2 * connections) {
        let started = Instant::now();
        insert_note(&database, &format!("after {round}"))
            .await
            .expect("a fresh write after the abandoned ones");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let together: Vec<_> = (0..connections)
        .map(|i| {
            let database = database.clone();
            tokio::spawn(async move { insert_note(&database, &format!("together {i}")).await })
        })
        .collect();
    for writer in together {
        writer.await.expect("join").expect("concurrent fresh write");
    }
    // All or nothing: no pair was cut in half.
    let halves: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT substr(body, 1, length(body) - 7) AS pair, COUNT(*) AS n \
         FROM notes WHERE body LIKE 'pair %' GROUP BY 1) AS pairs WHERE n <> 2",
    )
    .fetch_one(database.pool())
    .await
    .expect("count halves");
    assert_eq!(halves, 0, "a transaction was cut in half");
    database.close().await;
}

#[tokio::test]
async fn sqlite_abandoned_writers_leave_no_transaction_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DatabaseConfig::sqlite_file(&dir.path().join("abandoned.db"));
    abandoned_writers_leave_no_transaction_open(config).await;
}

#[tokio::test]
async fn postgres_abandoned_writers_leave_no_transaction_open() {
    let postgres = TestPostgres::create().await;
    let config = DatabaseConfig {
        url: postgres.url.clone(),
        ..Default::default()
    };
    abandoned_writers_leave_no_transaction_open(config).await;
}

/// The readiness probe: writable while the write lock can be had, not while someone holds it.
#[tokio::test]
async fn writable_reports_a_held_write_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DatabaseConfig::sqlite_file(&dir.path().join("probe.db"));
    let database = Database::connect(&config, MIGRATIONS)
        .await
        .expect("connect");
    assert!(database.writable(Duration::from_secs(1)).await);
    let (opened, release, holder) = hold_open(&database, false);
    opened.await.expect("holder");
    assert!(!database.writable(Duration::from_millis(200)).await);
    release.send(()).expect("release");
    holder.await.expect("join").expect("holder");
    assert!(database.writable(Duration::from_secs(1)).await);
    database.close().await;
}

#[tokio::test]
async fn many_sqlite_writers_at_once_all_get_their_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DatabaseConfig::sqlite_file(&dir.path().join("many.db"));
    let database = Database::connect(&config, MIGRATIONS)
        .await
        .expect("connect");
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let database = database.clone();
            tokio::spawn(async move { insert_note(&database, &format!("writer {i}")).await })
        })
        .collect();
    for writer in writers {
        writer.await.expect("join").expect("writer");
    }
    assert_eq!(count_notes(&database).await, 16);
    database.close().await;
}
