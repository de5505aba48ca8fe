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

    let mut tx = database.begin_write().await.expect("begin");
    let id: i64 = sqlx::query_scalar("INSERT INTO notes (body) VALUES ($1) RETURNING id")
        .bind("it's; DROP TABLE notes; --")
        .fetch_one(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
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
    let mut tx = database.begin_write().await?;
    sqlx::query("INSERT INTO notes (body) VALUES ($1)")
        .bind(body)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

async fn count_notes(database: &Database) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(database.pool())
        .await
        .expect("count")
}

/// The writers of one process take turns on SQLite: while a write transaction is open the next
/// `begin_write` waits (and gives up after `acquire_timeout_ms`), and it goes ahead as soon as
/// the open one commits or is dropped.
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

    let open = database.begin_write().await.expect("first writer");
    let started = Instant::now();
    let refused = database.begin_write().await;
    assert!(
        matches!(refused, Err(sqlx::Error::PoolTimedOut)),
        "{:?}",
        refused.map(|_| ())
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Ends by commit: the waiting writer goes ahead.
    let waiting = tokio::spawn({
        let database = database.clone();
        async move { insert_note(&database, "after a commit").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a writer went ahead of an open one");
    open.commit().await.expect("commit");
    waiting.await.expect("join").expect("the waiting writer");

    // Ends by drop (rolled back): the same.
    let mut open = database.begin_write().await.expect("writer");
    sqlx::query("INSERT INTO notes (body) VALUES ('rolled back')")
        .execute(&mut *open)
        .await
        .expect("insert");
    let waiting = tokio::spawn({
        let database = database.clone();
        async move { insert_note(&database, "after a rollback").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a writer went ahead of an open one");
    drop(open);
    waiting.await.expect("join").expect("the waiting writer");
    assert_eq!(count_notes(&database).await, 2);
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
