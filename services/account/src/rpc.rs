//! `account.AccountService` on the wire: converts Thrift types to and from the domain, checks
//! the caller's token, and turns every refusal into the method's declared Thrift exception (the
//! only place that does).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use pilota::FastStr;
use platform::{
    rpc_metadata::{CallMetadata, token_of},
    tokens::{Caller, TokenVerifier},
};
use rpc_idl::account as wire;
use tracing::Instrument;
use volo_thrift::{ApplicationException, ApplicationExceptionKind, MaybeException, ServerError};

use crate::{
    accounts::{AccountError, Accounts},
    domain::{
        Account, FieldErrors, NewAccount, Password, ProfileUpdate, RegistrationInput, UniqueField,
        UpdateInput, Username, access,
    },
};

/// The one message for every failed credentials check, so callers cannot tell which usernames
/// exist.
pub const BAD_CREDENTIALS: &str = "bad username or password";

pub struct AccountRpc {
    accounts: Accounts,
    verifier: TokenVerifier,
    /// False once shutdown has begun; `Ping` reports it.
    serving: Arc<AtomicBool>,
}

impl AccountRpc {
    pub fn new(accounts: Accounts, verifier: TokenVerifier, serving: Arc<AtomicBool>) -> Self {
        Self {
            accounts,
            verifier,
            serving,
        }
    }

    /// The verified caller, from the TTHeader's token or the request's `token` field (see
    /// `idl/account.thrift`); both present must agree.
    fn caller(&self, token_field: Option<&FastStr>) -> Result<Caller, Refusal> {
        let mut metadata = CallMetadata::from_thrift();
        if let Some(field) = token_field {
            let token = token_of(&text(field));
            match &metadata.token {
                Some(header) if *header != token => {
                    return Err(Refusal::Unauthenticated(
                        "the token field and the TTHeader carry different tokens".to_owned(),
                    ));
                }
                _ => metadata.token = Some(token),
            }
        }
        metadata
            .require_caller(&self.verifier)
            .map_err(|error| Refusal::Unauthenticated(error.to_string()))
    }

    async fn get_by_username(&self, req: wire::GetAccountByUsernameRequest) -> Outcome {
        let caller = self.caller(req.token.as_ref())?;
        let username = match Username::parse(&text(&req.username)) {
            Ok(username) => username,
            // Whoever may not read other accounts learns nothing about this name either.
            Err(message) if access::may_read_any(&caller) => {
                return Err(Refusal::Invalid(FieldErrors::single("username", message)));
            }
            Err(_) => return Err(Refusal::NOT_YOURS_TO_READ),
        };
        let account = self.accounts.find_by_username(&username).await?;
        readable(&caller, account)
    }

    async fn get_by_id(&self, req: wire::GetAccountByIdRequest) -> Outcome {
        let caller = self.caller(req.token.as_ref())?;
        let account = self.accounts.find_by_id(req.id).await?;
        readable(&caller, account)
    }

    async fn create(&self, req: wire::CreateAccountRequest) -> Outcome {
        let account = NewAccount::parse(RegistrationInput {
            username: text(&req.username),
            password: text(&req.password),
            name: text(&req.name),
            avatar: owned(req.avatar),
            telephone: owned(req.telephone),
            email: owned(req.email),
            location: owned(req.location),
        })
        .map_err(Refusal::Invalid)?;
        let created = self.accounts.register(account).await?;
        tracing::info!(account_id = created.id, "account registered");
        Ok(created)
    }

    async fn update(&self, req: wire::UpdateAccountRequest) -> Outcome {
        let caller = self.caller(req.token.as_ref())?;
        match self.accounts.find_by_id(req.id).await? {
            Some(account) if access::may_update(&caller, &account) => {}
            None if access::may_update_any(&caller) => return Err(Refusal::NotFound),
            _ => {
                return Err(Refusal::PermissionDenied(
                    "only the account's owner or an administrator may change it",
                ));
            }
        }
        let update = ProfileUpdate::parse(UpdateInput {
            name: text(&req.name),
            avatar: owned(req.avatar),
            telephone: owned(req.telephone),
            email: owned(req.email),
            location: owned(req.location),
            password: owned(req.password),
        })
        .map_err(Refusal::Invalid)?;
        let password_changed = update.new_password.is_some();
        let updated = self.accounts.update(req.id, update).await?;
        tracing::info!(account_id = updated.id, password_changed, "account updated");
        Ok(updated)
    }

    async fn verify_credentials(&self, req: wire::CheckCredentialsRequest) -> Outcome {
        let caller = self.caller(req.token.as_ref())?;
        if !access::may_check_credentials(&caller) {
            return Err(Refusal::PermissionDenied(
                "checking credentials needs a token with scope SERVICE",
            ));
        }
        let password = Password::candidate(&text(&req.password));
        Ok(self
            .accounts
            .check_credentials(&text(&req.username), &password)
            .await?)
    }
}

type Outcome = Result<Account, Refusal>;

fn readable(caller: &Caller, account: Option<Account>) -> Outcome {
    match account {
        Some(account) if access::may_read(caller, &account) => Ok(account),
        None if access::may_read_any(caller) => Err(Refusal::NotFound),
        _ => Err(Refusal::NOT_YOURS_TO_READ),
    }
}

/// Thrift strings should be UTF-8, but the generated decoder does not check. Re-reading the bytes
/// here turns anything invalid into U+FFFD, so the rules and the database only ever see real
/// text (a username with such a character is then refused like any other bad character).
fn text(value: &FastStr) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

fn owned(value: Option<FastStr>) -> Option<String> {
    value.as_ref().map(text)
}

impl wire::AccountService for AccountRpc {
    async fn ping(&self, _req: wire::PingRequest) -> Result<wire::PingResponse, ServerError> {
        let status = if self.serving.load(Ordering::Acquire) {
            "SERVING"
        } else {
            "NOT_SERVING"
        };
        Ok(wire::PingResponse {
            status: FastStr::from_static_str(status),
        })
    }

    async fn get_account_by_username(
        &self,
        req: wire::GetAccountByUsernameRequest,
    ) -> Result<
        MaybeException<wire::Account, wire::AccountServiceGetAccountByUsernameException>,
        ServerError,
    > {
        let outcome = self
            .get_by_username(req)
            .instrument(span("GetAccountByUsername"))
            .await;
        reply(outcome)
    }

    async fn get_account_by_id(
        &self,
        req: wire::GetAccountByIdRequest,
    ) -> Result<
        MaybeException<wire::Account, wire::AccountServiceGetAccountByIdException>,
        ServerError,
    > {
        let outcome = self.get_by_id(req).instrument(span("GetAccountById")).await;
        reply(outcome)
    }

    async fn create_account(
        &self,
        req: wire::CreateAccountRequest,
    ) -> Result<
        MaybeException<wire::Account, wire::AccountServiceCreateAccountException>,
        ServerError,
    > {
        let outcome = self.create(req).instrument(span("CreateAccount")).await;
        reply(outcome)
    }

    async fn update_account(
        &self,
        req: wire::UpdateAccountRequest,
    ) -> Result<
        MaybeException<wire::Account, wire::AccountServiceUpdateAccountException>,
        ServerError,
    > {
        let outcome = self.update(req).instrument(span("UpdateAccount")).await;
        reply(outcome)
    }

    async fn check_credentials(
        &self,
        req: wire::CheckCredentialsRequest,
    ) -> Result<
        MaybeException<wire::Account, wire::AccountServiceCheckCredentialsException>,
        ServerError,
    > {
        let outcome = self
            .verify_credentials(req)
            .instrument(span("CheckCredentials"))
            .await;
        reply(outcome)
    }
}

/// One span per call, carrying the caller's request id.
fn span(method: &'static str) -> tracing::Span {
    let metadata = CallMetadata::from_thrift();
    tracing::info_span!(
        "rpc",
        method,
        request_id = metadata.request_id.as_deref().unwrap_or("-")
    )
}

/// Why a call did not return an account; each becomes a declared Thrift exception.
#[derive(Debug)]
enum Refusal {
    Unauthenticated(String),
    PermissionDenied(&'static str),
    NotFound,
    Invalid(FieldErrors),
    Conflict(UniqueField),
    BadCredentials,
    Busy,
    /// Already logged; the caller learns only that it failed.
    Internal,
}

impl Refusal {
    const NOT_YOURS_TO_READ: Refusal =
        Refusal::PermissionDenied("only the account's owner or an administrator may read it");
}

impl From<AccountError> for Refusal {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Invalid(errors) => Refusal::Invalid(errors),
            AccountError::Conflict(field) => Refusal::Conflict(field),
            AccountError::NotFound => Refusal::NotFound,
            AccountError::BadCredentials => Refusal::BadCredentials,
            AccountError::Busy => Refusal::Busy,
            AccountError::Internal(error) => {
                tracing::error!(%error, "account operation failed");
                Refusal::Internal
            }
        }
    }
}

/// The wire form of a successful call or a refusal. A refusal the method does not declare is a
/// bug; it is logged and answered, like an internal failure, with an application exception that
/// reveals nothing.
fn reply<E: DeclaredExceptions>(
    outcome: Outcome,
) -> Result<MaybeException<wire::Account, E>, ServerError> {
    let refusal = match outcome {
        Ok(account) => return Ok(MaybeException::Ok(to_wire(account))),
        Err(refusal) => refusal,
    };
    match E::declared(refusal) {
        Ok(exception) => Ok(MaybeException::Exception(exception)),
        Err(Refusal::Internal) => Err(internal_error()),
        Err(undeclared) => {
            tracing::error!(?undeclared, "refusal not declared by this method");
            Err(internal_error())
        }
    }
}

fn internal_error() -> ServerError {
    ApplicationException::new(ApplicationExceptionKind::INTERNAL_ERROR, "internal error").into()
}

fn to_wire(account: Account) -> wire::Account {
    let text = |value: Option<String>| FastStr::from(value.unwrap_or_default());
    wire::Account {
        id: account.id,
        username: FastStr::from(account.username.as_str().to_owned()),
        name: account.name.into(),
        avatar: text(account.avatar),
        telephone: text(account.telephone),
        email: text(account.email),
        location: text(account.location),
        roles: account
            .roles
            .iter()
            .map(|role| FastStr::from_static_str(role.as_str()))
            .collect(),
    }
}

/// The exceptions one method declares in the IDL.
trait DeclaredExceptions: Sized {
    /// The declared exception for `refusal`, or the refusal back when the method has none.
    fn declared(refusal: Refusal) -> Result<Self, Refusal>;
}

impl DeclaredExceptions for wire::AccountServiceGetAccountByUsernameException {
    fn declared(refusal: Refusal) -> Result<Self, Refusal> {
        Ok(match refusal {
            Refusal::NotFound => Self::NotFound(not_found()),
            Refusal::Unauthenticated(message) => Self::Unauthenticated(unauthenticated(message)),
            Refusal::PermissionDenied(message) => {
                Self::PermissionDenied(permission_denied(message))
            }
            Refusal::Invalid(errors) => Self::InvalidInput(invalid_input(&errors)),
            Refusal::Busy => Self::Overloaded(overloaded()),
            other => return Err(other),
        })
    }
}

impl DeclaredExceptions for wire::AccountServiceGetAccountByIdException {
    fn declared(refusal: Refusal) -> Result<Self, Refusal> {
        Ok(match refusal {
            Refusal::NotFound => Self::NotFound(not_found()),
            Refusal::Unauthenticated(message) => Self::Unauthenticated(unauthenticated(message)),
            Refusal::PermissionDenied(message) => {
                Self::PermissionDenied(permission_denied(message))
            }
            Refusal::Busy => Self::Overloaded(overloaded()),
            other => return Err(other),
        })
    }
}

impl DeclaredExceptions for wire::AccountServiceCreateAccountException {
    fn declared(refusal: Refusal) -> Result<Self, Refusal> {
        Ok(match refusal {
            Refusal::Invalid(errors) => Self::InvalidInput(invalid_input(&errors)),
            Refusal::Conflict(field) => Self::Conflict(conflict(field)),
            Refusal::Busy => Self::Overloaded(overloaded()),
            other => return Err(other),
        })
    }
}

impl DeclaredExceptions for wire::AccountServiceUpdateAccountException {
    fn declared(refusal: Refusal) -> Result<Self, Refusal> {
        Ok(match refusal {
            Refusal::Invalid(errors) => Self::InvalidInput(invalid_input(&errors)),
            Refusal::Conflict(field) => Self::Conflict(conflict(field)),
            Refusal::NotFound => Self::NotFound(not_found()),
            Refusal::Unauthenticated(message) => Self::Unauthenticated(unauthenticated(message)),
            Refusal::PermissionDenied(message) => {
                Self::PermissionDenied(permission_denied(message))
            }
            Refusal::Busy => Self::Overloaded(overloaded()),
            other => return Err(other),
        })
    }
}

impl DeclaredExceptions for wire::AccountServiceCheckCredentialsException {
    fn declared(refusal: Refusal) -> Result<Self, Refusal> {
        Ok(match refusal {
            Refusal::BadCredentials => Self::BadCredentials(wire::BadCredentials {
                message: FastStr::from_static_str(BAD_CREDENTIALS),
            }),
            Refusal::Unauthenticated(message) => Self::Unauthenticated(unauthenticated(message)),
            Refusal::PermissionDenied(message) => {
                Self::PermissionDenied(permission_denied(message))
            }
            Refusal::Busy => Self::Overloaded(overloaded()),
            other => return Err(other),
        })
    }
}

fn overloaded() -> wire::Overloaded {
    wire::Overloaded {
        message: FastStr::from_static_str("the service is overloaded; try again shortly"),
    }
}

fn not_found() -> wire::NotFound {
    wire::NotFound {
        message: FastStr::from_static_str("account not found"),
    }
}

fn unauthenticated(message: String) -> wire::Unauthenticated {
    wire::Unauthenticated {
        message: message.into(),
    }
}

fn permission_denied(message: &'static str) -> wire::PermissionDenied {
    wire::PermissionDenied {
        message: FastStr::from_static_str(message),
    }
}

fn invalid_input(errors: &FieldErrors) -> wire::InvalidInput {
    wire::InvalidInput {
        message: errors.to_string().into(),
        errors: errors
            .errors()
            .iter()
            .map(|error| wire::FieldError {
                field: FastStr::from(error.field.clone()),
                message: error.message.clone().into(),
            })
            .collect(),
    }
}

fn conflict(field: UniqueField) -> wire::Conflict {
    wire::Conflict {
        message: format!("an account with this {} already exists", field.name()).into(),
        field: FastStr::from_static_str(field.name()),
    }
}

#[cfg(test)]
mod tests {
    use platform::sql::SqlError;

    use super::*;
    use crate::store::StoreError;

    /// A database that is busy or unreachable is "try again shortly" on every method that
    /// touches it (the gateway answers 503 with Retry-After), never an anonymous internal error;
    /// any other database failure stays internal.
    #[test]
    fn an_unavailable_database_is_overloaded_on_every_method() {
        let unavailable = || {
            Refusal::from(AccountError::from(StoreError::Database(
                SqlError::Unavailable("database is locked".into()),
            )))
        };
        assert!(matches!(
            wire::AccountServiceGetAccountByUsernameException::declared(unavailable()),
            Ok(wire::AccountServiceGetAccountByUsernameException::Overloaded(_))
        ));
        assert!(matches!(
            wire::AccountServiceGetAccountByIdException::declared(unavailable()),
            Ok(wire::AccountServiceGetAccountByIdException::Overloaded(_))
        ));
        assert!(matches!(
            wire::AccountServiceCreateAccountException::declared(unavailable()),
            Ok(wire::AccountServiceCreateAccountException::Overloaded(_))
        ));
        assert!(matches!(
            wire::AccountServiceUpdateAccountException::declared(unavailable()),
            Ok(wire::AccountServiceUpdateAccountException::Overloaded(_))
        ));
        assert!(matches!(
            wire::AccountServiceCheckCredentialsException::declared(unavailable()),
            Ok(wire::AccountServiceCheckCredentialsException::Overloaded(_))
        ));
        let failed = Refusal::from(AccountError::from(StoreError::Database(SqlError::Failed(
            "syntax error".into(),
        ))));
        assert!(matches!(failed, Refusal::Internal));
    }
}
