//! Versioned migrations apply on SQLite and on the local PostgreSQL, once, and the same SQL text
//! then runs on both through the `Any` driver.

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
