//! SQL for accounts and their roles, one text for SQLite and PostgreSQL (`platform::sql`).
//!
//! Uniqueness is enforced by the database's constraints, never by a read-then-write check in
//! code, so concurrent registrations cannot both win; a violation comes back as
//! [`StoreError::Conflict`] naming the field. The password hash is read only by
//! [`Store::find_credentials`], for verification, which always reads the database; profile reads
//! are answered from memory for up to `database.read_cache_ms` (`platform::read_cache`).

use std::sync::Arc;

use platform::{
    database::{Connection, Database},
    read_cache::ReadCache,
    sql::{self, On, Row, SqlError},
};

use crate::{
    domain::{Account, NewAccount, ProfileUpdate, Role, UniqueField, Username},
    passwords::PasswordHash,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this {} already exists", .0.name())]
    Conflict(UniqueField),
    #[error(transparent)]
    Database(SqlError),
    /// A row this code could not have written (an unknown role, a malformed username).
    #[error("unexpected data in the accounts table: {0}")]
    Corrupt(String),
}

impl From<SqlError> for StoreError {
    fn from(error: SqlError) -> Self {
        match unique_violation(&error) {
            Some(field) => StoreError::Conflict(field),
            None => StoreError::Database(error),
        }
    }
}

/// Which unique constraint a write broke. Each constraint's name contains its column's name:
/// PostgreSQL reports the constraint's name, SQLite only says "UNIQUE constraint failed:
/// accounts.email" (or "index 'accounts_email_key'"), so the name is looked for in either.
fn unique_violation(error: &SqlError) -> Option<UniqueField> {
    let SqlError::UniqueViolation { subject } = error else {
        return None;
    };
    [
        UniqueField::Username,
        UniqueField::Telephone,
        UniqueField::Email,
    ]
    .into_iter()
    .find(|field| subject.contains(field.name()))
}

const ACCOUNT_COLUMNS: &str = "id, username, name, avatar, telephone, email, location";

/// The accounts tables.
#[derive(Clone)]
pub struct Store {
    database: Database,
    /// Profiles as last read (`database.read_cache_ms`); [`Store::update`] invalidates both.
    /// Credentials are never served from here.
    by_username: Arc<ReadCache<Username, Account>>,
    by_id: Arc<ReadCache<i64, Account>>,
}

/// Profiles kept in memory at most, per lookup kind.
const CACHED_PROFILES: usize = 10_000;

impl Store {
    pub fn new(database: Database) -> Self {
        Self {
            by_username: Arc::new(database.read_cache(CACHED_PROFILES)),
            by_id: Arc::new(database.read_cache(CACHED_PROFILES)),
            database,
        }
    }

    /// Inserts a new account with `roles`, in one transaction.
    pub async fn insert(
        &self,
        account: &NewAccount,
        hash: &PasswordHash,
        roles: &[Role],
    ) -> Result<Account, StoreError> {
        let (account, hash, roles) = (account.clone(), hash.clone(), roles.to_vec());
        self.database
            .write(move |mut tx| async move {
                let created = insert_in(&mut tx, &account, &hash, &roles).await?;
                tx.commit().await?;
                Ok(created)
            })
            .await
    }

    /// Whether any account exists.
    pub async fn has_accounts(&self) -> Result<bool, StoreError> {
        // A count of at most one row: portable (SQLite has no boolean type) and constant-time.
        let found: i64 =
            sql::query("SELECT COUNT(*) FROM (SELECT 1 FROM accounts LIMIT 1) AS first_account")
                .fetch_one(&self.database)
                .await?
                .try_get(0)?;
        Ok(found > 0)
    }

    /// Inserts `account` only when the table is empty; returns whether it did. Several replicas
    /// starting at once may all see an empty table: the unique username lets only one insert
    /// win, and the losers treat the conflict as "already seeded".
    pub async fn insert_if_empty(
        &self,
        account: &NewAccount,
        hash: &PasswordHash,
        roles: &[Role],
    ) -> Result<bool, StoreError> {
        let (account, hash, roles) = (account.clone(), hash.clone(), roles.to_vec());
        self.database
            .write(move |mut tx| async move {
                let count: i64 = sql::query("SELECT COUNT(*) FROM accounts")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                if count > 0 {
                    return Ok(false);
                }
                match insert_in(&mut tx, &account, &hash, &roles).await {
                    Ok(_) => {}
                    Err(StoreError::Conflict(_)) => return Ok(false),
                    Err(other) => return Err(other),
                }
                match tx.commit().await.map_err(StoreError::from) {
                    Ok(()) => Ok(true),
                    Err(StoreError::Conflict(_)) => Ok(false),
                    Err(other) => Err(other),
                }
            })
            .await
    }

    pub async fn find_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<Account>, StoreError> {
        self.by_username
            .get_or_load(username, || async {
                let rows = sql::query(SELECT_ACCOUNT_BY_USERNAME)
                    .bind(username.as_str())
                    .fetch_all(&self.database)
                    .await?;
                account_from_rows(&rows)
            })
            .await
    }

    pub async fn find_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        self.by_id
            .get_or_load(&id, || async {
                let rows = sql::query(SELECT_ACCOUNT_BY_ID)
                    .bind(id)
                    .fetch_all(&self.database)
                    .await?;
                account_from_rows(&rows)
            })
            .await
    }

    /// The account and its password hash, for checking a login.
    pub async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(Account, PasswordHash)>, StoreError> {
        let rows = sql::query(SELECT_CREDENTIALS)
            .bind(username.as_str())
            .fetch_all(&self.database)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let hash = PasswordHash::from_stored(first.try_get("password_hash")?);
        Ok(account_from_rows(&rows)?.map(|account| (account, hash)))
    }

    /// Replaces the profile of account `id`, and its password hash when `new_hash` is given.
    /// `None` when there is no such account.
    pub async fn update(
        &self,
        id: i64,
        update: &ProfileUpdate,
        new_hash: Option<&PasswordHash>,
    ) -> Result<Option<Account>, StoreError> {
        let (update, new_hash) = (update.clone(), new_hash.cloned());
        let (by_username, by_id) = (Arc::clone(&self.by_username), Arc::clone(&self.by_id));
        self.database
            .write(move |mut tx| async move {
                let profile = &update.profile;
                // COALESCE keeps the stored hash when no new one is bound.
                let sql = format!(
                    "UPDATE accounts SET name = $1, avatar = $2, telephone = $3, email = $4, \
                     location = $5, password_hash = COALESCE($6, password_hash), updated_at = $7 \
                     WHERE id = $8 RETURNING {ACCOUNT_COLUMNS}"
                );
                let row = sql::query(&sql)
                    .bind(profile.name.as_str())
                    .bind(profile.avatar.as_deref())
                    .bind(profile.telephone.as_ref().map(|t| t.as_str()))
                    .bind(profile.email.as_ref().map(|e| e.as_str()))
                    .bind(profile.location.as_deref())
                    .bind(new_hash.as_ref().map(PasswordHash::as_stored))
                    .bind(platform::clock::now_ms())
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let roles = roles_of(&mut *tx, id).await?;
                tx.commit().await?;
                // On the write's own task, after the commit: see `platform::read_cache`.
                by_username.invalidate_all();
                by_id.invalidate_all();
                account_from_row(&row, roles).map(Some)
            })
            .await
    }
}

async fn insert_in(
    tx: &mut Connection,
    account: &NewAccount,
    hash: &PasswordHash,
    roles: &[Role],
) -> Result<Account, StoreError> {
    let profile = &account.profile;
    let now = platform::clock::now_ms();
    let sql = format!(
        "INSERT INTO accounts (username, name, avatar, telephone, email, location, \
         password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         RETURNING {ACCOUNT_COLUMNS}"
    );
    let row = sql::query(&sql)
        .bind(account.username.as_str())
        .bind(profile.name.as_str())
        .bind(profile.avatar.as_deref())
        .bind(profile.telephone.as_ref().map(|t| t.as_str()))
        .bind(profile.email.as_ref().map(|e| e.as_str()))
        .bind(profile.location.as_deref())
        .bind(hash.as_stored())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
    let id: i64 = row.try_get("id")?;
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    for role in &roles {
        sql::query("INSERT INTO account_roles (account_id, role) VALUES ($1, $2)")
            .bind(id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
    }
    account_from_row(&row, roles)
}

async fn roles_of<'c>(on: impl Into<On<'c>>, id: i64) -> Result<Vec<Role>, StoreError> {
    let rows = sql::query("SELECT role FROM account_roles WHERE account_id = $1")
        .bind(id)
        .fetch_all(on)
        .await?;
    let mut roles = rows
        .iter()
        .map(|row| parse_role(&row.try_get::<String, _>("role")?))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    Ok(roles)
}

/// `SELECT` of an account and its roles, one row per role (a NULL role for an account without
/// any), by the `key` column = `$1`, with `extra` columns after the profile (the password hash,
/// only when a login is being checked). One statement rather than the account and then its
/// roles: on PostgreSQL every statement is a round trip to the server, and this is the hottest
/// read. Built at compile time: the text is the statement cache's key.
macro_rules! select_account {
    ($key:literal $(, $extra:literal)?) => {
        concat!(
            "SELECT a.id, a.username, a.name, a.avatar, a.telephone, a.email, a.location",
            $($extra,)?
            ", r.role FROM accounts a LEFT JOIN account_roles r ON r.account_id = a.id \
             WHERE a.",
            $key,
            " = $1"
        )
    };
}

const SELECT_ACCOUNT_BY_USERNAME: &str = select_account!("username");
const SELECT_ACCOUNT_BY_ID: &str = select_account!("id");
const SELECT_CREDENTIALS: &str = select_account!("username", ", a.password_hash");

/// The account in the rows of a `select_account!` statement, if there are any.
fn account_from_rows(rows: &[Row]) -> Result<Option<Account>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut roles = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(name) = row.try_get::<Option<String>, _>("role")? {
            roles.push(parse_role(&name)?);
        }
    }
    roles.sort();
    account_from_row(first, roles).map(Some)
}

fn parse_role(name: &str) -> Result<Role, StoreError> {
    Role::parse(name).ok_or_else(|| StoreError::Corrupt(format!("unknown role {name:?}")))
}

fn account_from_row(row: &Row, roles: Vec<Role>) -> Result<Account, StoreError> {
    let username: String = row.try_get("username")?;
    let username = Username::parse(&username)
        .map_err(|why| StoreError::Corrupt(format!("username {username:?} {why}")))?;
    Ok(Account {
        id: row.try_get("id")?,
        username,
        name: row.try_get("name")?,
        avatar: row.try_get("avatar")?,
        telephone: row.try_get("telephone")?,
        email: row.try_get("email")?,
        location: row.try_get("location")?,
        roles,
    })
}
