//! The account use cases: register, look up, update, check credentials, seed the administrator.
//! They combine the domain's rules, the password hasher and the store, and turn store and hashing
//! failures into [`AccountError`]. Authorization is the caller's job (see `rpc.rs`).

use crate::{
    domain::{
        Account, FieldErrors, NewAccount, Password, ProfileUpdate, Role, UniqueField, Username,
    },
    passwords::{HashError, PasswordHasher},
    store::{Store, StoreError},
};

/// Why an account operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input: {0}")]
    Invalid(FieldErrors),
    #[error("an account with this {} already exists", .0.name())]
    Conflict(UniqueField),
    #[error("account not found")]
    NotFound,
    /// The same for an unknown user and a wrong password.
    #[error("bad credentials")]
    BadCredentials,
    /// Too much password hashing is waiting, or the database is unavailable (busy, out of
    /// connections, unreachable); nothing was done.
    #[error("the service is overloaded; try again shortly")]
    Busy,
    /// Something that is not the caller's fault; details go to the log, not to the caller.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(field) => AccountError::Conflict(field),
            // The platform's one classification decides what is worth retrying.
            StoreError::Database(error) if error.is_unavailable() => {
                tracing::warn!(%error, "database unavailable");
                AccountError::Busy
            }
            other => AccountError::Internal(InternalError::Store(other)),
        }
    }
}

impl From<HashError> for AccountError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => AccountError::Busy,
            other => AccountError::Internal(other.into()),
        }
    }
}

/// Account operations over one database.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    hasher: PasswordHasher,
}

impl Accounts {
    pub fn new(store: Store, hasher: PasswordHasher) -> Self {
        Self { store, hasher }
    }

    /// Registers a new account with role `ROLE_USER`.
    pub async fn register(&self, account: NewAccount) -> Result<Account, AccountError> {
        let hash = self.hasher.hash(&account.password).await?;
        Ok(self.store.insert(&account, &hash, &[Role::User]).await?)
    }

    /// Writes `admin` as `ROLE_USER` + `ROLE_ADMIN` if no account exists yet; returns whether it
    /// did.
    pub async fn seed_administrator(&self, admin: NewAccount) -> Result<bool, AccountError> {
        // Every start comes here; only the first one, on an empty table, needs the (slow) hash.
        if self.store.has_accounts().await? {
            return Ok(false);
        }
        let hash = self.hasher.hash(&admin.password).await?;
        Ok(self
            .store
            .insert_if_empty(&admin, &hash, &[Role::User, Role::Admin])
            .await?)
    }

    pub async fn find_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<Account>, AccountError> {
        Ok(self.store.find_by_username(username).await?)
    }

    pub async fn find_by_id(&self, id: i64) -> Result<Option<Account>, AccountError> {
        Ok(self.store.find_by_id(id).await?)
    }

    /// Replaces account `id`'s profile; a new password only when one is given.
    pub async fn update(&self, id: i64, update: ProfileUpdate) -> Result<Account, AccountError> {
        let new_hash = match &update.new_password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        self.store
            .update(id, &update, new_hash.as_ref())
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// The account whose username and password these are, or [`AccountError::BadCredentials`].
    ///
    /// Every path verifies exactly one hash (the dummy one when there is no such user), so an
    /// unknown user, a malformed username and a wrong password all take about the same time.
    pub async fn check_credentials(
        &self,
        username: &str,
        password: &Password,
    ) -> Result<Account, AccountError> {
        let found = match Username::parse(username) {
            Ok(username) => self.store.find_credentials(&username).await?,
            Err(_) => None,
        };
        let (account, hash) = found.unzip();
        if self.hasher.verify(password, hash.as_ref()).await? {
            account.ok_or(AccountError::BadCredentials)
        } else {
            Err(AccountError::BadCredentials)
        }
    }
}
