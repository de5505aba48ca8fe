//! Versioned migrations apply on SQLite and on the local PostgreSQL, once, and the same SQL text
//! then runs on both (`platform::sql`).

use std::time::{Duration, Instant};

use platform::{
    database::{Backend, Database, DatabaseConfig, Migrations},
    sql::{self, SqlError},
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
    let applied: i64 = scalar(&database, "SELECT COUNT(*) FROM _sqlx_migrations").await;
    assert_eq!(applied, 1);

    let id: i64 = database
        .write(|mut tx| async move {
            let id: i64 = sql::query("INSERT INTO notes (body) VALUES ($1) RETURNING id")
                .bind("it's; DROP TABLE notes; --")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok::<_, SqlError>(id)
        })
        .await
        .expect("insert");
    let body: String = sql::query("SELECT body FROM notes WHERE id = $1")
        .bind(id)
        .fetch_one(&database)
        .await
        .and_then(|row| row.try_get(0))
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

async fn insert_note(database: &Database, body: &str) -> Result<(), SqlError> {
    let body = body.to_owned();
    database
        .write(|mut tx| async move {
            sql::query("INSERT INTO notes (body) VALUES ($1)")
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
    tokio::task::JoinHandle<Result<(), SqlError>>,
) {
    let (opened_tx, opened) = tokio::sync::oneshot::channel();
    let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
    let database = database.clone();
    let task = tokio::spawn(async move {
        database
            .write(move |mut tx| async move {
                sql::query("INSERT INTO notes (body) VALUES ('held')")
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
    scalar(database, "SELECT COUNT(*) FROM notes").await
}

/// The one integer `query` answers, read outside any transaction.
async fn scalar(database: &Database, query: &str) -> i64 {
    sql::query(query)
        .fetch_one(database)
        .await
        .and_then(|row| row.try_get(0))
        .expect(query)
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
        matches!(refused, Err(SqlError::Unavailable(_))),
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
                    sql::query("INSERT INTO notes (body) VALUES ($1)")
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
    while database.connections_in_use() > 0 && settled.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if database.backend() == Backend::Postgres {
        // The server's view: no session of this database sits inside a transaction.
        let stuck = scalar(
            &database,
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .await;
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
    let halves = scalar(
        &database,
        "SELECT COUNT(*) FROM (SELECT substr(body, 1, length(body) - 7) AS pair, COUNT(*) AS n \
         FROM notes WHERE body LIKE 'pair %' GROUP BY 1) AS pairs WHERE n <> 2",
    )
    .await;
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

/// On SQLite a read runs at once beside an open write transaction (WAL), a statement that
/// writes outside a transaction waits for the write turn like any write, and a connection held
/// for reads refuses to write (it would take SQLite's lock without the turn).
#[tokio::test]
async fn sqlite_reads_pass_an_open_write_and_single_writes_take_their_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DatabaseConfig::sqlite_file(&dir.path().join("turn.db"));
    let database = Database::connect(&config, MIGRATIONS)
        .await
        .expect("connect");
    let (opened, release, holder) = hold_open(&database, true);
    opened.await.expect("holder");

    let started = Instant::now();
    assert_eq!(
        count_notes(&database).await,
        0,
        "the open write is not visible"
    );
    assert!(started.elapsed() < Duration::from_millis(500));

    let single = tokio::spawn({
        let database = database.clone();
        async move {
            sql::query("INSERT INTO notes (body) VALUES ('single')")
                .execute(&database)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !single.is_finished(),
        "a single write went ahead of an open one"
    );
    release.send(()).expect("release");
    holder.await.expect("join").expect("commit");
    let done = single.await.expect("join").expect("the single write");
    assert_eq!(done.rows_affected(), 1);
    assert_eq!(count_notes(&database).await, 2);

    let mut held = database.acquire().await.expect("a connection");
    let refused = sql::query("INSERT INTO notes (body) VALUES ('sneaky')")
        .execute(&mut held)
        .await;
    assert!(matches!(refused, Err(SqlError::Failed(_))), "{refused:?}");
    drop(held);
    assert_eq!(count_notes(&database).await, 2);
    database.close().await;
}

/// Values of every kind the schema uses round-trip on both backends, NULL included (bound
/// untyped, so PostgreSQL infers its type from where it stands).
async fn values_round_trip(config: DatabaseConfig) {
    let database = Database::connect(&config, MIGRATIONS)
        .await
        .expect("connect");
    let id: i64 = sql::query("INSERT INTO notes (body) VALUES ($1) RETURNING id")
        .bind("ünïcödé 'quoted'")
        .fetch_one(&database)
        .await
        .and_then(|row| row.try_get("id"))
        .expect("insert");
    let row = sql::query(
        "SELECT body, id, COALESCE($2, body) AS fallback, $3 AS absent FROM notes WHERE id = $1",
    )
    .bind(id)
    .bind(None::<String>)
    .bind(None::<i64>)
    .fetch_one(&database)
    .await
    .expect("select");
    assert_eq!(
        row.try_get::<String, _>("body").expect("body"),
        "ünïcödé 'quoted'"
    );
    assert_eq!(row.try_get::<i64, _>(1).expect("id"), id);
    assert_eq!(
        row.try_get::<String, _>("fallback").expect("fallback"),
        "ünïcödé 'quoted'"
    );
    assert_eq!(row.try_get::<Option<i64>, _>("absent").expect("null"), None);
    assert!(matches!(
        row.try_get::<i64, _>("body"),
        Err(SqlError::Decode { .. })
    ));
    assert!(matches!(
        row.try_get::<i64, _>("missing"),
        Err(SqlError::Decode { .. })
    ));
    let none = sql::query("SELECT id FROM notes WHERE id = $1")
        .bind(id + 1)
        .fetch_one(&database)
        .await;
    assert!(matches!(none, Err(SqlError::NoRow)), "{none:?}");
    database.close().await;
}

#[tokio::test]
async fn sqlite_values_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    values_round_trip(DatabaseConfig::sqlite_file(&dir.path().join("values.db"))).await;
}

#[tokio::test]
async fn postgres_values_round_trip() {
    let postgres = TestPostgres::create().await;
    values_round_trip(DatabaseConfig {
        url: postgres.url.clone(),
        ..Default::default()
    })
    .await;
}
