//! The account service: the bookstore's users, their credentials and roles, served over Thrift
//! (`account.AccountService`). It is the only program that ever sees a password hash.
//!
//! Layers: [`rpc`] converts wire types to and from the [`domain`], checks tokens and maps
//! refusals to Thrift exceptions; `accounts` holds the use cases; `passwords` hashes; `store` is
//! the SQL.

mod accounts;
pub mod configuration;
mod domain;
mod passwords;
pub mod rpc;
mod store;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use platform::{
    database::{Database, DatabaseError, Migrations},
    serve::{self, BindError, BoundService, ServeError, ServerTask},
    shutdown::CancellationToken,
    thrift_server::LimitedCodec,
    tokens::TokenError,
    trace_context::ThriftCalls,
};
use rpc_idl::account::AccountServiceServer;
use tokio::net::TcpListener;

use crate::{
    accounts::{AccountError, Accounts},
    configuration::{AdminSeed, Settings},
    domain::{FieldErrors, NewAccount, RegistrationInput},
    passwords::{HashError, PasswordHasher},
    rpc::AccountRpc,
    store::Store,
};

static MIGRATIONS: Migrations = Migrations {
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
    postgres: &sqlx::migrate!("./migrations/postgres"),
};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("[password_hashing]: {0}")]
    Hashing(#[from] HashError),
    #[error("[admin] breaks the account rules: {0}")]
    InvalidAdmin(FieldErrors),
    #[error("cannot seed the administrator: {0}")]
    Seed(#[source] AccountError),
}

/// A bound, ready-to-run account server.
pub struct Application(BoundService);

impl Application {
    /// Binds `settings.server.listen`, connects the database, applies migrations and seeds the
    /// administrator into an empty database.
    pub async fn build(settings: Settings, stop: CancellationToken) -> Result<Self, BuildError> {
        let listener = serve::bind(&settings.server.listen).await?;
        Self::build_with_listener(settings, listener, stop).await
    }

    /// As [`Self::build`], on a listener the caller already bound.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> Result<Self, BuildError> {
        let verifier = settings.auth.live_verifier(stop.clone())?;
        let admin = admin_account(&settings.admin)?;
        let hasher = PasswordHasher::new(&settings.password_hashing)?;
        let database = Database::connect(&settings.database, MIGRATIONS)
            .await?
            .report_metrics("account");
        let accounts = Accounts::new(Store::new(database.clone()), hasher.clone());
        if accounts
            .seed_administrator(admin)
            .await
            .map_err(BuildError::Seed)?
        {
            tracing::info!(username = %settings.admin.username, "administrator seeded");
        }
        hasher.prepare_in_background();

        let serving = Arc::new(AtomicBool::new(true));
        let rpc = AccountRpc::new(accounts, verifier, Arc::clone(&serving));
        // Volo's default codec (it also accepts Apache framed/buffered binary/compact clients),
        // behind the limits of `platform::thrift_server`.
        let server = AccountServiceServer::new(rpc)
            .make_codec(LimitedCodec::new(&settings.server))
            .layer_front(ThriftCalls::of("account").untraced(&["Ping"]));
        let server = ServerTask::new(
            "account",
            listener,
            &settings.server,
            stop,
            move || serving.store(false, Ordering::Release),
            |incoming, shutdown| async move {
                // A Thrift server stops when its incoming stream ends, so it takes no shutdown
                // future; driving the signal here still runs `on_shutdown` the moment stop fires.
                tokio::spawn(shutdown);
                server.run(incoming).await
            },
        )?;
        Ok(Self(BoundService::new(server, database)))
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn address(&self) -> SocketAddr {
        self.0.address()
    }

    /// Serves until the stop token is cancelled and the drain finishes (or its deadline passes),
    /// then closes the database.
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        self.0.run_until_stopped().await
    }
}

/// The configured administrator, checked by the same rules as any registration.
fn admin_account(seed: &AdminSeed) -> Result<NewAccount, BuildError> {
    NewAccount::parse(RegistrationInput {
        username: seed.username.clone(),
        password: seed.password.clone(),
        name: seed.name.clone(),
        avatar: Some(seed.avatar.clone()),
        telephone: Some(seed.telephone.clone()),
        email: Some(seed.email.clone()),
        location: Some(seed.location.clone()),
    })
    .map_err(BuildError::InvalidAdmin)
}
