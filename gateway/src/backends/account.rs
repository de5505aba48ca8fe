//! The account service over Thrift (volo-thrift, TTHeader carrying token and request id).

use pilota::FastStr;
use rpc_idl::account::{
    Account, AccountServiceClient, AccountServiceClientBuilder, CheckCredentialsRequest,
    CreateAccountRequest, GetAccountByUsernameRequest, PingRequest, UpdateAccountRequest,
};

use super::{Call, Idempotency, Link, probe::ProbeLayer};
use crate::errors::BackendError;

/// A registration, as the REST layer validated it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub name: String,
    pub avatar: Option<String>,
    pub telephone: Option<String>,
    pub email: Option<String>,
    pub location: Option<String>,
}

/// A profile update of account `id`; `password: None` keeps the old password.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileUpdate {
    pub id: i64,
    pub name: String,
    pub avatar: Option<String>,
    pub telephone: Option<String>,
    pub email: Option<String>,
    pub location: Option<String>,
    pub password: Option<String>,
}

#[derive(Clone)]
pub struct AccountBackend {
    link: Link,
    client: AccountServiceClient,
}

fn fast(value: Option<String>) -> Option<FastStr> {
    value.map(FastStr::from)
}

impl AccountBackend {
    pub(crate) fn new(link: Link) -> Self {
        let client = AccountServiceClientBuilder::new("account")
            .caller_name("gateway")
            .discover(link.discover.clone())
            // Deadlines are the gateway's (one per try, see `Link::invoke`): Volo's own timeout
            // would report a late answer as an internal error.
            .rpc_timeout(None)
            .connect_timeout(Some(link.connect_timeout()))
            .layer_inner(ProbeLayer::ejecting_from(link.discover.clone()))
            .build();
        Self { link, client }
    }

    pub async fn get_by_username(
        &self,
        call: &Call,
        username: &str,
    ) -> Result<Account, BackendError> {
        let username = FastStr::from(username.to_owned());
        self.link
            .invoke("GetAccountByUsername", call, Idempotency::Read, |_| {
                let request = GetAccountByUsernameRequest {
                    username: username.clone(),
                    token: None,
                };
                self.link
                    .thrift(&call.metadata, self.client.get_account_by_username(request))
            })
            .await
    }

    pub async fn create(&self, call: &Call, account: NewAccount) -> Result<Account, BackendError> {
        self.link
            .invoke("CreateAccount", call, Idempotency::Write, |_| {
                let account = account.clone();
                let request = CreateAccountRequest {
                    username: account.username.into(),
                    password: account.password.into(),
                    name: account.name.into(),
                    avatar: fast(account.avatar),
                    telephone: fast(account.telephone),
                    email: fast(account.email),
                    location: fast(account.location),
                };
                self.link
                    .thrift(&call.metadata, self.client.create_account(request))
            })
            .await
    }

    pub async fn update(
        &self,
        call: &Call,
        update: ProfileUpdate,
    ) -> Result<Account, BackendError> {
        self.link
            .invoke("UpdateAccount", call, Idempotency::Write, |_| {
                let update = update.clone();
                let request = UpdateAccountRequest {
                    id: update.id,
                    name: update.name.into(),
                    avatar: fast(update.avatar),
                    telephone: fast(update.telephone),
                    email: fast(update.email),
                    location: fast(update.location),
                    password: fast(update.password),
                    token: None,
                };
                self.link
                    .thrift(&call.metadata, self.client.update_account(request))
            })
            .await
    }

    /// Checks a username/password pair; `call` must carry a SERVICE-scope token.
    pub async fn check_credentials(
        &self,
        call: &Call,
        username: &str,
        password: &str,
    ) -> Result<Account, BackendError> {
        let (username, password) = (
            FastStr::from(username.to_owned()),
            FastStr::from(password.to_owned()),
        );
        // A pure check: repeating it changes nothing.
        self.link
            .invoke("CheckCredentials", call, Idempotency::Read, |_| {
                let request = CheckCredentialsRequest {
                    username: username.clone(),
                    password: password.clone(),
                    token: None,
                };
                self.link
                    .thrift(&call.metadata, self.client.check_credentials(request))
            })
            .await
    }

    /// Whether some instance answers `Ping` with SERVING.
    pub async fn healthy(&self) -> bool {
        self.link
            .healthy(|| async {
                matches!(
                    self.client.ping(PingRequest {}).await,
                    Ok(response) if response.status == "SERVING"
                )
            })
            .await
    }
}
