//! The test harness: a real account server on 127.0.0.1:0 over SQLite (temp dir) or PostgreSQL
//! (a throw-away database), a real Volo Thrift client, tokens for every kind of caller, and the
//! `on_both_backends!` macro that runs one scenario on each database.
//!
//! Every call helper checks that the response, whatever it is, contains no password hash.

use std::{fmt::Debug, net::SocketAddr, time::Duration};

use account::{
    Application,
    configuration::{HashingConfig, Settings},
};
use platform::{
    configuration::ServerConfig,
    database::DatabaseConfig,
    rpc_metadata::CallMetadata,
    shutdown::CancellationToken,
    testing::{TestIdentity, TestKeys, TestPostgres},
};
use rpc_idl::account::*;
use volo_thrift::MaybeException;

/// Runs each named scenario (an `async fn(TestServer)`) once on SQLite and once on PostgreSQL,
/// as tests `<scenario>::sqlite` and `<scenario>::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use $crate::common::{Backend, TestServer};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(TestServer::start(Backend::Sqlite).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(TestServer::start(Backend::Postgres).await).await;
            }
        }
    )*};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Keeps the test database alive as long as the server that uses it.
enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres(TestPostgres),
}

impl TestDatabase {
    async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::Sqlite(tempfile::tempdir().expect("tempdir")),
            Backend::Postgres => Self::Postgres(TestPostgres::create().await),
        }
    }

    fn config(&self) -> DatabaseConfig {
        match self {
            Self::Sqlite(dir) => DatabaseConfig::sqlite_file(&dir.path().join("account.db")),
            Self::Postgres(pg) => DatabaseConfig {
                url: pg.url.clone(),
                ..DatabaseConfig::default()
            },
        }
    }
}

/// Cheap hashing keeps the suite fast; the timing test asks for dearer parameters.
pub fn fast_hashing() -> HashingConfig {
    HashingConfig {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 4,
        max_queued: 64,
    }
}

/// A running account server and a client connected to it.
pub struct TestServer {
    pub client: AccountServiceClient,
    pub keys: TestKeys,
    pub address: SocketAddr,
    pub settings: Settings,
    stop: StopOnDrop,
    running: tokio::task::JoinHandle<Result<(), platform::serve::ServeError>>,
    database: TestDatabase,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server whose settings `configure` adjusted first.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        let keys = TestKeys::new();
        let database = TestDatabase::create(backend).await;
        let mut settings = Settings {
            server: ServerConfig::with_listen("127.0.0.1:0"),
            database: database.config(),
            auth: keys.auth_config(),
            password_hashing: fast_hashing(),
            ..Settings::default()
        };
        configure(&mut settings);
        Self::launch(keys, database, settings).await
    }

    async fn launch(keys: TestKeys, database: TestDatabase, settings: Settings) -> Self {
        let stop = CancellationToken::new();
        let app = Application::build(settings.clone(), stop.clone())
            .await
            .expect("build the account server");
        let address = app.address();
        let running = tokio::spawn(app.run_until_stopped());
        Self {
            client: client(address),
            keys,
            address,
            settings,
            stop: StopOnDrop(stop),
            running,
            database,
        }
    }

    /// Stops this server and starts another on the same database with adjusted settings.
    pub async fn restart_with(self, configure: impl FnOnce(&mut Settings)) -> Self {
        let Self {
            keys,
            mut settings,
            stop,
            running,
            database,
            ..
        } = self;
        stop.0.cancel();
        tokio::time::timeout(Duration::from_secs(15), running)
            .await
            .expect("stops in time")
            .expect("server task")
            .expect("clean stop");
        configure(&mut settings);
        Self::launch(keys, database, settings).await
    }

    pub fn admin(&self) -> Option<String> {
        Some(self.keys.token(TestIdentity::Admin))
    }

    pub fn service(&self) -> Option<String> {
        Some(self.keys.token(TestIdentity::Service))
    }

    /// A token for the owner of `account`.
    pub fn owner(&self, account: &Account) -> Option<String> {
        Some(self.keys.token(TestIdentity::User {
            username: &account.username,
            account_id: account.id,
        }))
    }

    pub async fn create(
        &self,
        req: CreateAccountRequest,
    ) -> MaybeException<Account, AccountServiceCreateAccountException> {
        let call = self.client.create_account(req);
        checked(as_caller(None).thrift_call(call).await)
    }

    /// Registers an account that must be accepted.
    pub async fn register(&self, username: &str) -> Account {
        expect_ok(self.create(registration(username)).await)
    }

    pub async fn get_by_username(
        &self,
        token: Option<String>,
        username: &str,
    ) -> MaybeException<Account, AccountServiceGetAccountByUsernameException> {
        let call = self
            .client
            .get_account_by_username(GetAccountByUsernameRequest {
                username: username.to_owned().into(),
                token: None,
            });
        checked(as_caller(token).thrift_call(call).await)
    }

    pub async fn get_by_id(
        &self,
        token: Option<String>,
        id: i64,
    ) -> MaybeException<Account, AccountServiceGetAccountByIdException> {
        let call = self
            .client
            .get_account_by_id(GetAccountByIdRequest { id, token: None });
        checked(as_caller(token).thrift_call(call).await)
    }

    pub async fn update(
        &self,
        token: Option<String>,
        req: UpdateAccountRequest,
    ) -> MaybeException<Account, AccountServiceUpdateAccountException> {
        let call = self.client.update_account(req);
        checked(as_caller(token).thrift_call(call).await)
    }

    pub async fn check_credentials_as(
        &self,
        token: Option<String>,
        username: &str,
        password: &str,
    ) -> MaybeException<Account, AccountServiceCheckCredentialsException> {
        let call = self.client.check_credentials(CheckCredentialsRequest {
            username: username.to_owned().into(),
            password: password.to_owned().into(),
            token: None,
        });
        checked(as_caller(token).thrift_call(call).await)
    }

    /// Checks credentials the way the gateway does, with a service token.
    pub async fn check_credentials(
        &self,
        username: &str,
        password: &str,
    ) -> MaybeException<Account, AccountServiceCheckCredentialsException> {
        self.check_credentials_as(self.service(), username, password)
            .await
    }

    /// The account as an administrator reads it now.
    pub async fn current(&self, id: i64) -> Account {
        expect_ok(self.get_by_id(self.admin(), id).await)
    }
}

/// Stops the server when the test ends, however it ends.
struct StopOnDrop(CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A Volo Thrift client with the default (TTHeader) codec and a deadline on every call.
pub fn client(address: SocketAddr) -> AccountServiceClient {
    AccountServiceClientBuilder::new("account")
        .address(address)
        .rpc_timeout(Some(Duration::from_secs(10)))
        .build()
}

fn as_caller(token: Option<String>) -> CallMetadata {
    CallMetadata {
        token,
        request_id: Some("test-request".into()),
    }
}

/// The transport must work; then, whatever came back, no password hash may be in it.
fn checked<T: Debug, E: Debug>(
    result: Result<MaybeException<T, E>, volo_thrift::ClientError>,
) -> MaybeException<T, E> {
    let result = result.expect("the call reached the server and came back");
    assert_no_hash(&describe(&result));
    result
}

/// `MaybeException` has no `Debug`; this says what it holds.
pub fn describe<T: Debug, E: Debug>(result: &MaybeException<T, E>) -> String {
    match result {
        MaybeException::Ok(value) => format!("Ok({value:?})"),
        MaybeException::Exception(exception) => format!("Exception({exception:?})"),
    }
}

pub fn assert_no_hash(text: &str) {
    assert!(
        !text.to_ascii_lowercase().contains("argon2"),
        "a response contains password hash material: {text}"
    );
}

/// The password every registration in these tests uses unless it says otherwise.
pub const PASSWORD: &str = "pre-hashed-in-the-browser";

/// A minimal valid registration.
pub fn registration(username: &str) -> CreateAccountRequest {
    CreateAccountRequest {
        username: username.to_owned().into(),
        password: PASSWORD.into(),
        name: format!("{username} name").into(),
        ..Default::default()
    }
}

/// An update that changes nothing but what the caller sets.
pub fn update_of(account: &Account) -> UpdateAccountRequest {
    let given = |s: &pilota::FastStr| (!s.is_empty()).then(|| s.clone());
    UpdateAccountRequest {
        id: account.id,
        name: account.name.clone(),
        avatar: given(&account.avatar),
        telephone: given(&account.telephone),
        email: given(&account.email),
        location: given(&account.location),
        password: None,
        token: None,
    }
}

pub fn expect_ok<T, E: Debug>(result: MaybeException<T, E>) -> T {
    match result {
        MaybeException::Ok(value) => value,
        MaybeException::Exception(exception) => panic!("expected success, got {exception:?}"),
    }
}

pub fn expect_exception<T: Debug, E>(result: MaybeException<T, E>) -> E {
    match result {
        MaybeException::Ok(value) => panic!("expected an exception, got {value:?}"),
        MaybeException::Exception(exception) => exception,
    }
}

/// The name of a declared exception, so tests can compare kinds across methods.
pub trait ExceptionKind: Debug {
    fn kind(&self) -> &'static str;
}

impl ExceptionKind for AccountServiceGetAccountByUsernameException {
    fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NotFound",
            Self::Unauthenticated(_) => "Unauthenticated",
            Self::PermissionDenied(_) => "PermissionDenied",
            Self::InvalidInput(_) => "InvalidInput",
            Self::Overloaded(_) => "Overloaded",
        }
    }
}

impl ExceptionKind for AccountServiceGetAccountByIdException {
    fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NotFound",
            Self::Unauthenticated(_) => "Unauthenticated",
            Self::PermissionDenied(_) => "PermissionDenied",
            Self::Overloaded(_) => "Overloaded",
        }
    }
}

impl ExceptionKind for AccountServiceCreateAccountException {
    fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "InvalidInput",
            Self::Conflict(_) => "Conflict",
            Self::Overloaded(_) => "Overloaded",
        }
    }
}

impl ExceptionKind for AccountServiceUpdateAccountException {
    fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "InvalidInput",
            Self::Conflict(_) => "Conflict",
            Self::NotFound(_) => "NotFound",
            Self::Unauthenticated(_) => "Unauthenticated",
            Self::PermissionDenied(_) => "PermissionDenied",
            Self::Overloaded(_) => "Overloaded",
        }
    }
}

impl ExceptionKind for AccountServiceCheckCredentialsException {
    fn kind(&self) -> &'static str {
        match self {
            Self::BadCredentials(_) => "BadCredentials",
            Self::Unauthenticated(_) => "Unauthenticated",
            Self::PermissionDenied(_) => "PermissionDenied",
            Self::Overloaded(_) => "Overloaded",
        }
    }
}

/// Asserts that a call was refused with the declared exception `kind`.
pub fn assert_refused<T: Debug, E: ExceptionKind>(result: MaybeException<T, E>, kind: &str) {
    let exception = expect_exception(result);
    assert_eq!(exception.kind(), kind, "{exception:?}");
}
