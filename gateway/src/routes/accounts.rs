//! `/restful/accounts`: read one's own account (or any, as an administrator), register, update.

use axum::{Json, extract::State, http::Method};
use rpc_idl::account::Account;
use serde::{Deserialize, Serialize};

use super::{CommandResult, RouteTable};
use crate::{
    AppState,
    auth::{Authenticated, Public},
    backends::{NewAccount, ProfileUpdate},
    errors::{ApiError, FieldError},
    input::{JsonBody, PathParam, lenient_i64, lenient_string, non_blank},
    throttle::ClientAddress,
};

pub fn routes(table: RouteTable) -> RouteTable {
    table
        .add(Method::GET, "/restful/accounts/{username}", get_account)
        .add(Method::POST, "/restful/accounts", register)
        .add(Method::PUT, "/restful/accounts", update)
}

/// The REST shape of an account; the password hash never leaves the account service.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    id: i64,
    username: String,
    name: String,
    avatar: String,
    telephone: String,
    email: String,
    location: String,
}

impl From<Account> for AccountView {
    fn from(account: Account) -> Self {
        Self {
            id: account.id,
            username: account.username.to_string(),
            name: account.name.to_string(),
            avatar: account.avatar.to_string(),
            telephone: account.telephone.to_string(),
            email: account.email.to_string(),
            location: account.location.to_string(),
        }
    }
}

/// What the front-end sends for both writes (and much more, which is ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountBody {
    #[serde(default, deserialize_with = "lenient_i64")]
    id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    username: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    password: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    avatar: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    telephone: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    email: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    location: Option<String>,
}

/// Optional text: blank counts as absent.
fn optional(value: &Option<String>) -> Option<String> {
    non_blank(value).map(str::to_owned)
}

/// Required text, trimmed; blank or absent is sent as empty, and the account service says why
/// that is refused.
fn required(value: &Option<String>) -> String {
    non_blank(value).unwrap_or_default().to_owned()
}

/// Every rule about an account's fields is the account service's: its `InvalidInput` lists each
/// failed field, and that list is the 400's `errors`. Only what JSON cannot say is checked here.
impl AccountBody {
    fn into_new_account(self) -> Result<NewAccount, ApiError> {
        Ok(NewAccount {
            username: required(&self.username),
            // Opaque (pre-hashed by the front-end): passed on as given.
            password: self.password.clone().unwrap_or_default(),
            name: required(&self.name),
            avatar: optional(&self.avatar),
            telephone: optional(&self.telephone),
            email: optional(&self.email),
            location: optional(&self.location),
        })
    }

    fn into_update(self) -> Result<ProfileUpdate, ApiError> {
        let Some(id) = self.id else {
            return Err(ApiError::invalid(vec![FieldError::new(
                "id",
                "must be given",
            )]));
        };
        Ok(ProfileUpdate {
            id,
            name: required(&self.name),
            avatar: optional(&self.avatar),
            telephone: optional(&self.telephone),
            email: optional(&self.email),
            location: optional(&self.location),
            // Absent or empty keeps the old password.
            password: self.password.filter(|p| !p.is_empty()),
        })
    }
}

async fn get_account(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParam(username): PathParam<String>,
) -> Result<Json<AccountView>, ApiError> {
    auth.require_owner_of_username(&username)?;
    let account = state
        .backends
        .account
        .get_by_username(&auth.call, &username)
        .await?;
    Ok(Json(account.into()))
}

async fn register(
    State(state): State<AppState>,
    client_address: Option<axum::Extension<ClientAddress>>,
    public: Public,
    JsonBody(body): JsonBody<AccountBody>,
) -> Result<Json<CommandResult>, ApiError> {
    // Each registration is an Argon2 hash in the account service.
    state
        .rate_limits
        .registration
        .admit_now(ClientAddress::ip_of(client_address))
        .map_err(ApiError::TooManyRequests)?;
    let account = body.into_new_account()?;
    let created = state.backends.account.create(&public.call, account).await?;
    tracing::info!(account_id = created.id, "account registered");
    Ok(CommandResult::ok("account registered"))
}

async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(body): JsonBody<AccountBody>,
) -> Result<Json<CommandResult>, ApiError> {
    let update = body.into_update()?;
    auth.require_owner_of_account(update.id)?;
    state.backends.account.update(&auth.call, update).await?;
    Ok(CommandResult::ok("account updated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> AccountBody {
        serde_json::from_str(json).expect("json")
    }

    #[test]
    fn a_valid_registration_keeps_optional_fields_optional() {
        let account = body(
            r#"{"username":"alice","password":"x","name":"Alice","telephone":"","email":"alice@example.com","extra":1}"#,
        )
        .into_new_account()
        .expect("valid");
        assert_eq!(account.telephone, None);
        assert_eq!(account.email.as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn an_update_without_password_keeps_the_old_one() {
        let update = body(r#"{"id":"7","username":"alice","name":"A","password":""}"#)
            .into_update()
            .expect("valid");
        assert_eq!(update.id, 7);
        assert_eq!(update.password, None);
        assert!(
            body(r#"{"username":"alice","name":"A"}"#)
                .into_update()
                .is_err()
        );
    }
}
