//! One SQL text for both backends: queries, their parameters and their rows.
//!
//! A service writes `sql::query("… WHERE id = $1").bind(id).fetch_one(&database)` once; the same
//! text runs on SQLite (through `rusqlite`, on the calling thread, with the statement prepared
//! once per connection and cached) and on PostgreSQL (through sqlx). Parameters are `$n` on
//! both: SQLite reads `$1` as a parameter named "$1", and [`bind_sqlite`] puts the n-th value
//! there, as PostgreSQL does.
//!
//! Why not sqlx for SQLite too: sqlx runs each SQLite connection on a thread of its own, so
//! every statement was two thread switches, and those switches were a quarter of a purchase's
//! CPU (BENCHMARKS.md). Here a read runs where it is asked for, and a write transaction is
//! handed to a blocking thread once, whole ([`crate::database::Database::write`]).
//!
//! Errors are classified here, once, for every service: [`SqlError::Unavailable`] (busy,
//! locked, out of connections, shutting down: worth retrying later) and
//! [`SqlError::UniqueViolation`] (a constraint, naming it) are the two a caller decides on.

use std::sync::Arc;

use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

use crate::database::{Connection, Database};

/// A boxed error from either driver.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The database is busy, locked, out of connections, unreachable or shutting down; the
    /// statement itself may well be fine.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A unique or primary-key constraint refused a write. `subject` holds the constraint's name
    /// (PostgreSQL) or SQLite's message, which names the table and column.
    #[error("unique constraint violated: {subject}")]
    UniqueViolation { subject: String },
    /// `fetch_one` found no row.
    #[error("the query returned no row")]
    NoRow,
    /// A column was missing or held another type than asked for.
    #[error("column {column}: {problem}")]
    Decode { column: String, problem: String },
    /// Anything else the database refused.
    #[error("database error: {0}")]
    Failed(#[source] Cause),
}

impl SqlError {
    /// Whether retrying later may succeed (see [`SqlError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SqlError::Unavailable(_))
    }

    pub(crate) fn unavailable(reason: &str) -> Self {
        SqlError::Unavailable(reason.to_owned().into())
    }
}

impl From<rusqlite::Error> for SqlError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        // Extended result codes of the constraint kinds a unique key raises.
        const UNIQUE: i32 = 2067;
        const PRIMARY_KEY: i32 = 1555;
        match &error {
            rusqlite::Error::SqliteFailure(failure, message) => match failure.code {
                // SQLITE_BUSY: the write lock was not granted within the busy timeout;
                // SQLITE_LOCKED: a table lock.
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    SqlError::Unavailable(Box::new(error))
                }
                ErrorCode::ConstraintViolation
                    if matches!(failure.extended_code, UNIQUE | PRIMARY_KEY) =>
                {
                    SqlError::UniqueViolation {
                        subject: message.clone().unwrap_or_default(),
                    }
                }
                _ => SqlError::Failed(Box::new(error)),
            },
            _ => SqlError::Failed(Box::new(error)),
        }
    }
}

impl From<sqlx::Error> for SqlError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => SqlError::Unavailable(Box::new(error)),
            sqlx::Error::RowNotFound => SqlError::NoRow,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                if code == "23505" {
                    SqlError::UniqueViolation {
                        subject: db.constraint().unwrap_or_else(|| db.message()).to_owned(),
                    }
                } else if code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                {
                    // SQLSTATE classes 08 (connection exception), 53 (insufficient resources)
                    // and 57P (operator intervention, e.g. the server shutting down).
                    SqlError::Unavailable(Box::new(error))
                } else {
                    SqlError::Failed(Box::new(error))
                }
            }
            _ => SqlError::Failed(Box::new(error)),
        }
    }
}

/// A parameter or a column's value. The schema uses only these: `BIGINT` (money in cents,
/// times in Unix milliseconds, ids), `TEXT`, one floating-point rating, and NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Integer(value)
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Integer(value.into())
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Integer(value.into())
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Real(value)
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Value::Text(value.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// A Rust type a column's value can be read as.
pub trait Decode: Sized {
    /// `Err` names the type that was expected.
    fn decode(value: &Value) -> Result<Self, &'static str>;
}

impl Decode for i64 {
    fn decode(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Integer(number) => Ok(*number),
            _ => Err("an integer"),
        }
    }
}

impl Decode for i32 {
    fn decode(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Integer(number) => i32::try_from(*number).map_err(|_| "a 32-bit integer"),
            _ => Err("an integer"),
        }
    }
}

impl Decode for f64 {
    fn decode(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Real(number) => Ok(*number),
            // SQLite keeps a whole REAL as an integer when that is smaller.
            Value::Integer(number) => Ok(*number as f64),
            _ => Err("a number"),
        }
    }
}

impl Decode for String {
    fn decode(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Text(text) => Ok(text.clone()),
            _ => Err("text"),
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            other => T::decode(other).map(Some),
        }
    }
}

/// How a row's column is named in [`Row::try_get`]: by position or by name.
pub trait ColumnIndex: std::fmt::Display + Copy {
    fn position(self, columns: &[Box<str>]) -> Option<usize>;
}

impl ColumnIndex for usize {
    fn position(self, columns: &[Box<str>]) -> Option<usize> {
        (self < columns.len()).then_some(self)
    }
}

impl ColumnIndex for &str {
    fn position(self, columns: &[Box<str>]) -> Option<usize> {
        columns.iter().position(|column| &**column == self)
    }
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[Box<str>]>,
    values: Vec<Value>,
}

impl Row {
    pub fn try_get<T: Decode, I: ColumnIndex>(&self, index: I) -> Result<T, SqlError> {
        let position = index
            .position(&self.columns)
            .ok_or_else(|| SqlError::Decode {
                column: index.to_string(),
                problem: "no such column".to_owned(),
            })?;
        T::decode(&self.values[position]).map_err(|expected| SqlError::Decode {
            column: index.to_string(),
            problem: format!("expected {expected}, found {:?}", self.values[position]),
        })
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows_affected: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// Where a query runs: on a connection of the pool for this statement alone (`&database`), or
/// on a connection already held (`&mut *transaction`, an acquired connection).
pub enum On<'c> {
    Pool(&'c Database),
    Connection(&'c mut Connection),
}

impl<'c> From<&'c Database> for On<'c> {
    fn from(database: &'c Database) -> Self {
        On::Pool(database)
    }
}

impl<'c> From<&'c mut Connection> for On<'c> {
    fn from(connection: &'c mut Connection) -> Self {
        On::Connection(connection)
    }
}

/// A statement and its parameters, built by [`query`].
#[must_use = "a query does nothing until it is executed or fetched"]
pub struct Query<'q> {
    sql: &'q str,
    parameters: Vec<Value>,
}

/// A statement with `$1`, `$2`, … parameters, bound in order with [`Query::bind`].
pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        parameters: Vec::new(),
    }
}

impl Query<'_> {
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.parameters.push(value.into());
        self
    }

    /// Runs the statement; any rows it returns are read and dropped.
    pub async fn execute<'c>(self, on: impl Into<On<'c>>) -> Result<Done, SqlError> {
        let (_, done) = self.run(on.into()).await?;
        Ok(done)
    }

    pub async fn fetch_all<'c>(self, on: impl Into<On<'c>>) -> Result<Vec<Row>, SqlError> {
        let (rows, _) = self.run(on.into()).await?;
        Ok(rows)
    }

    pub async fn fetch_optional<'c>(self, on: impl Into<On<'c>>) -> Result<Option<Row>, SqlError> {
        let (rows, _) = self.run(on.into()).await?;
        Ok(rows.into_iter().next())
    }

    pub async fn fetch_one<'c>(self, on: impl Into<On<'c>>) -> Result<Row, SqlError> {
        self.fetch_optional(on).await?.ok_or(SqlError::NoRow)
    }

    async fn run(self, on: On<'_>) -> Result<(Vec<Row>, Done), SqlError> {
        match on {
            On::Pool(database) => database.run(self.sql, &self.parameters).await,
            On::Connection(connection) => connection.run(self.sql, &self.parameters).await,
        }
    }
}

/// Runs one statement on a SQLite connection, on this thread. The caller prepares it (cached per
/// connection) and may ask it first whether it writes.
pub(crate) fn run_prepared(
    connection: &rusqlite::Connection,
    mut statement: rusqlite::CachedStatement<'_>,
    parameters: &[Value],
) -> Result<(Vec<Row>, Done), SqlError> {
    bind_sqlite(&mut statement, parameters)?;
    let columns: Arc<[Box<str>]> = statement
        .column_names()
        .into_iter()
        .map(Box::from)
        .collect();
    let read_only = statement.readonly();
    let mut found = Vec::new();
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next()? {
        let values = (0..columns.len())
            .map(|index| row.get_ref(index).map(sqlite_value))
            .collect::<Result<Vec<_>, _>>()?;
        found.push(Row {
            columns: Arc::clone(&columns),
            values,
        });
    }
    let rows_affected = if read_only { 0 } else { connection.changes() };
    Ok((found, Done { rows_affected }))
}

/// Binds the n-th value to `$n` (or `?n`), and plain `?`s in order.
fn bind_sqlite(
    statement: &mut rusqlite::CachedStatement<'_>,
    parameters: &[Value],
) -> Result<(), SqlError> {
    for index in 1..=statement.parameter_count() {
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$').or_else(|| name.strip_prefix('?')))
            .and_then(|number| number.parse::<usize>().ok())
            .unwrap_or(index);
        let value = number
            .checked_sub(1)
            .and_then(|position| parameters.get(position))
            .ok_or_else(|| SqlError::Decode {
                column: format!("${number}"),
                problem: "no value bound".to_owned(),
            })?;
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(number) => ValueRef::Integer(*number),
            Value::Real(number) => ValueRef::Real(*number),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

fn sqlite_value(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(number) => Value::Integer(number),
        ValueRef::Real(number) => Value::Real(number),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Value::Text(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

/// Runs one statement on a PostgreSQL connection.
pub(crate) async fn run_postgres(
    connection: &mut sqlx::PgConnection,
    sql: &str,
    parameters: &[Value],
) -> Result<(Vec<Row>, Done), SqlError> {
    use futures::TryStreamExt;
    use sqlx::Either;

    let mut query = sqlx::query(sql);
    for value in parameters {
        query = match value {
            Value::Null => query.bind(UntypedNull),
            Value::Integer(number) => query.bind(*number),
            Value::Real(number) => query.bind(*number),
            Value::Text(text) => query.bind(text.clone()),
        };
    }
    let mut found = Vec::new();
    let mut rows_affected = 0;
    let mut columns: Option<Arc<[Box<str>]>> = None;
    // The executor's stream gives each row and, at the end, the count of rows changed.
    let mut results = sqlx::Executor::fetch_many(connection, query);
    while let Some(result) = results.try_next().await? {
        match result {
            Either::Left(done) => rows_affected += done.rows_affected(),
            Either::Right(row) => {
                let columns = columns.get_or_insert_with(|| {
                    row.columns().iter().map(|c| Box::from(c.name())).collect()
                });
                let values = (0..row.len())
                    .map(|index| postgres_value(&row, index))
                    .collect::<Result<Vec<_>, _>>()?;
                found.push(Row {
                    columns: Arc::clone(columns),
                    values,
                });
            }
        }
    }
    Ok((found, Done { rows_affected }))
}

/// NULL with no type of its own: the server infers it from where `$n` stands, as it does for a
/// literal `NULL` (a typed one, say `BIGINT`, would be refused where a text is expected).
struct UntypedNull;

impl sqlx::Type<sqlx::Postgres> for UntypedNull {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        // OID 0: "unspecified" in the protocol's Parse message.
        sqlx::postgres::PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _buffer: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

fn postgres_value(row: &sqlx::postgres::PgRow, index: usize) -> Result<Value, SqlError> {
    if row.try_get_raw(index)?.is_null() {
        return Ok(Value::Null);
    }
    let type_name = row.column(index).type_info().name().to_owned();
    Ok(match type_name.as_str() {
        "INT8" => Value::Integer(row.try_get::<i64, _>(index)?),
        "INT4" => Value::Integer(row.try_get::<i32, _>(index)?.into()),
        "INT2" => Value::Integer(row.try_get::<i16, _>(index)?.into()),
        "BOOL" => Value::Integer(row.try_get::<bool, _>(index)?.into()),
        "FLOAT8" => Value::Real(row.try_get::<f64, _>(index)?),
        "FLOAT4" => Value::Real(row.try_get::<f32, _>(index)?.into()),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Value::Text(row.try_get::<String, _>(index)?),
        other => {
            return Err(SqlError::Decode {
                column: row.column(index).name().to_owned(),
                problem: format!("the PostgreSQL type {other} is not one this schema uses"),
            });
        }
    })
}
