//! The OAuth2 token endpoint (`/oauth/token`, RFC 6749); the keys behind it are `issuer.rs`'s.
//!
//! Grants: `password` (checked by the account service), `refresh_token` (re-reads the account,
//! so a changed role or a deleted account takes effect) and `client_credentials` (services
//! calling services). Parameters come from the query string (GET) or a form body (POST); client
//! credentials as `client_id`/`client_secret` parameters or HTTP Basic. Clients are
//! configuration with argon2-hashed secrets. Tokens are EdDSA JWTs signed with the private key
//! only the gateway holds; the public half, derived from it, verifies them here and (as a file)
//! in every service. During a key rotation the gateway also accepts the tokens of the keys in
//! `[oauth] trusted_public_key_paths`.

mod issuer;

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, Method, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use platform::tokens::{TokenError, TokenUse};
use serde::Serialize;
use tokio::sync::Semaphore;

pub use issuer::TokenIssuer;
use issuer::{Subject, User};

use crate::{
    AppState,
    backends::Call,
    configuration::{OAuthClientConfig, OAuthConfig},
    errors::{ApiError, BackendErrorKind, OAuthError},
    metrics::RequestId,
    throttle::ClientAddress,
};

/// The client id of tokens the gateway mints for its own calls.
pub const GATEWAY_CLIENT_ID: &str = "gateway";

const GRANT_PASSWORD: &str = "password";
const GRANT_REFRESH: &str = "refresh_token";
const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

#[derive(Debug, thiserror::Error)]
pub enum OAuthSetupError {
    #[error("cannot read the token signing key {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the token signing key {path} is not an Ed25519 PKCS#8 PEM key: {message}")]
    KeyFormat { path: String, message: String },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("OAuth client {id:?}: secret_hash is not an argon2 PHC string: {message}")]
    ClientSecret { id: String, message: String },
}

/// The configured OAuth2 clients, and a cap on concurrent (deliberately slow) secret checks.
pub struct Clients {
    clients: Vec<OAuthClientConfig>,
    checks: Semaphore,
}

impl Clients {
    pub fn new(config: &OAuthConfig) -> Result<Self, OAuthSetupError> {
        for client in &config.clients {
            PasswordHash::new(&client.secret_hash).map_err(|e| OAuthSetupError::ClientSecret {
                id: client.id.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(Self {
            clients: config.clients.clone(),
            checks: Semaphore::new(config.max_concurrent_secret_checks.max(1)),
        })
    }

    async fn authenticate(&self, id: &str, secret: &str) -> Result<&OAuthClientConfig, OAuthError> {
        let client = self
            .clients
            .iter()
            .find(|c| c.id == id)
            .ok_or(OAuthError::InvalidClient)?;
        let _permit = self
            .checks
            .acquire()
            .await
            .map_err(|_| OAuthError::Internal)?;
        let (hash, secret) = (client.secret_hash.clone(), secret.to_owned());
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if matches {
            Ok(client)
        } else {
            Err(OAuthError::InvalidClient)
        }
    }
}

/// The form parameters of a token request; a parameter without a value counts as absent.
struct Params(HashMap<String, String>);

impl Params {
    fn parse<'a>(sources: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, OAuthError> {
        let mut params = HashMap::new();
        for source in sources {
            for (key, value) in form_urlencoded::parse(source) {
                if value.is_empty() {
                    continue;
                }
                if let Some(previous) = params.insert(key.to_string(), value.to_string())
                    && previous != value
                {
                    return Err(OAuthError::InvalidRequest(format!(
                        "parameter {key} is given twice"
                    )));
                }
            }
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("parameter {name} is required")))
    }
}

/// `client_id:client_secret` from an HTTP Basic header (the scheme word in any case).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OAuthError::InvalidClient;
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((id.to_owned(), secret.to_owned())))
}

/// The scopes granted: what was asked for (space-separated), if the client may have all of it;
/// the client's scopes when nothing was asked for.
fn granted_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    match requested {
        None => Ok(allowed.to_vec()),
        Some(requested) => {
            let scopes: Vec<String> = requested.split_whitespace().map(str::to_owned).collect();
            if scopes.is_empty() || scopes.iter().any(|s| !allowed.contains(s)) {
                Err(OAuthError::InvalidScope)
            } else {
                Ok(scopes)
            }
        }
    }
}

#[derive(Debug, Serialize)]
/// RFC 6749 section 5.1, plus the `username` and `authorities` the front-end reads.
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorities: Option<Vec<String>>,
    jti: String,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

/// `GET|POST /oauth/token`.
pub async fn token_endpoint(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    request_id: Option<axum::Extension<RequestId>>,
    client_address: Option<axum::Extension<ClientAddress>>,
    body: Bytes,
) -> Result<TokenResponse, OAuthError> {
    // Before anything that costs: the client's secret is an Argon2 check.
    let client_ip = ClientAddress::ip_of(client_address);
    state
        .rate_limits
        .token
        .admit_now(client_ip)
        .map_err(OAuthError::RateLimited)?;
    let query = query.unwrap_or_default();
    let mut sources = vec![query.as_bytes()];
    if method == Method::POST {
        sources.push(&body);
    }
    let params = Params::parse(sources)?;

    let (client_id, secret) = match basic_credentials(&headers)? {
        Some((id, secret)) => {
            if params.get("client_secret").is_some()
                || params.get("client_id").is_some_and(|given| given != id)
            {
                return Err(OAuthError::InvalidRequest(
                    "use one way of client authentication".into(),
                ));
            }
            (id, secret)
        }
        None => (
            params
                .get("client_id")
                .ok_or(OAuthError::InvalidClient)?
                .to_owned(),
            params
                .get("client_secret")
                .ok_or(OAuthError::InvalidClient)?
                .to_owned(),
        ),
    };
    let client = state.clients.authenticate(&client_id, &secret).await?;

    let grant = params.require("grant_type")?;
    if ![GRANT_PASSWORD, GRANT_REFRESH, GRANT_CLIENT_CREDENTIALS].contains(&grant) {
        return Err(OAuthError::UnsupportedGrantType);
    }
    if !client.grants.iter().any(|g| g == grant) {
        return Err(OAuthError::UnauthorizedClient);
    }
    let request_id = request_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), |id| id.0.0);
    let call = state.call(None, request_id);
    let grants = Grants {
        state: &state,
        client,
        call,
        client_ip,
    };
    match grant {
        GRANT_PASSWORD => grants.password(&params).await,
        GRANT_REFRESH => grants.refresh(&params).await,
        _ => grants.client_credentials(&params),
    }
}

struct Grants<'a> {
    state: &'a AppState,
    client: &'a OAuthClientConfig,
    call: Call,
    /// Where the request came from (unspecified when the server did not say).
    client_ip: IpAddr,
}

/// What the backend said, for the token endpoint: wrong credentials (or a vanished account) are
/// `invalid_grant`; an outage is an outage.
fn grant_failure(error: crate::errors::BackendError) -> OAuthError {
    match error.kind {
        BackendErrorKind::BadCredentials => OAuthError::InvalidGrant("bad credentials".into()),
        BackendErrorKind::NotFound(_) => {
            OAuthError::InvalidGrant("the account no longer exists".into())
        }
        _ => match ApiError::from(error) {
            api @ (ApiError::Unavailable(_) | ApiError::DeadlineExceeded(_)) => {
                OAuthError::Backend(api)
            }
            _ => OAuthError::Internal,
        },
    }
}

impl Grants<'_> {
    fn issuer(&self) -> &TokenIssuer {
        &self.state.tokens
    }

    async fn password(&self, params: &Params) -> Result<TokenResponse, OAuthError> {
        let username = params.require("username")?;
        let password = params.require("password")?;
        let scopes = granted_scopes(params.get("scope"), &self.client.scopes)?;
        let attempt = self
            .state
            .login_throttle
            .admit(username, self.client_ip, std::time::Instant::now())
            .map_err(OAuthError::SlowDown)?;
        let call = self.call.with_token(self.issuer().service_token()?);
        let checked = self
            .state
            .backends
            .account
            .check_credentials(&call, username, password)
            .await;
        match checked {
            Ok(account) => {
                attempt.succeeded(std::time::Instant::now());
                self.user_tokens(&account, scopes)
            }
            Err(error) => {
                if error.kind == BackendErrorKind::BadCredentials {
                    attempt.failed(std::time::Instant::now());
                }
                Err(grant_failure(error))
            }
        }
    }

    async fn refresh(&self, params: &Params) -> Result<TokenResponse, OAuthError> {
        let presented = params.require("refresh_token")?;
        let invalid = || OAuthError::InvalidGrant("the refresh token is invalid or expired".into());
        let claims = self
            .issuer()
            .verifier
            .verify(presented)
            .map_err(|_| invalid())?;
        let (Some(username), Some(account_id)) = (claims.user_name.as_deref(), claims.account_id)
        else {
            return Err(invalid());
        };
        if claims.token_use != TokenUse::Refresh || claims.client_id != self.client.id {
            return Err(invalid());
        }
        let scopes = granted_scopes(params.get("scope"), &claims.scope)?;
        let call = self
            .call
            .with_token(self.issuer().owner_token(username, account_id)?);
        let account = self
            .state
            .backends
            .account
            .get_by_username(&call, username)
            .await
            .map_err(grant_failure)?;
        self.user_tokens(&account, scopes)
    }

    fn client_credentials(&self, params: &Params) -> Result<TokenResponse, OAuthError> {
        let scopes = granted_scopes(params.get("scope"), &self.client.scopes)?;
        let subject = Subject {
            user: None,
            scopes: &scopes,
            client_id: &self.client.id,
        };
        let issuer = self.issuer();
        let claims = issuer.claims(subject, TokenUse::Access, issuer.access_seconds);
        Ok(TokenResponse {
            access_token: issuer.sign(&claims)?,
            token_type: "bearer",
            refresh_token: None,
            expires_in: issuer.access_seconds,
            scope: scopes.join(" "),
            username: None,
            authorities: None,
            jti: claims.jti,
        })
    }

    fn user_tokens(
        &self,
        account: &rpc_idl::account::Account,
        scopes: Vec<String>,
    ) -> Result<TokenResponse, OAuthError> {
        let issuer = self.issuer();
        let authorities: Vec<String> = account.roles.iter().map(|r| r.to_string()).collect();
        let subject = || Subject {
            user: Some(User {
                username: &account.username,
                account_id: account.id,
                authorities: &authorities,
            }),
            scopes: &scopes,
            client_id: &self.client.id,
        };
        let access = issuer.claims(subject(), TokenUse::Access, issuer.access_seconds);
        let refresh = issuer.claims(subject(), TokenUse::Refresh, issuer.refresh_seconds);
        Ok(TokenResponse {
            access_token: issuer.sign(&access)?,
            token_type: "bearer",
            refresh_token: Some(issuer.sign(&refresh)?),
            expires_in: issuer.access_seconds,
            scope: scopes.join(" "),
            username: Some(account.username.to_string()),
            authorities: Some(authorities.clone()),
            jti: access.jti,
        })
    }
}

/// Keys and clients, loaded at start; the keys then follow their files.
pub struct OAuth {
    pub tokens: Arc<TokenIssuer>,
    pub clients: Arc<Clients>,
}

impl OAuth {
    pub fn load(config: &OAuthConfig) -> Result<Self, OAuthSetupError> {
        Ok(Self {
            tokens: Arc::new(TokenIssuer::load(config)?),
            clients: Arc::new(Clients::new(config)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_merge_query_and_body_and_refuse_conflicting_repeats() {
        let params = Params::parse([&b"grant_type=password&scope="[..], b"username=a+b&x=%21"])
            .expect("parses");
        assert_eq!(params.get("username"), Some("a b"));
        assert_eq!(params.get("x"), Some("!"));
        assert_eq!(params.get("scope"), None, "an empty value counts as absent");
        assert!(Params::parse([&b"a=1"[..], b"a=2"]).is_err());
        assert!(Params::parse([&b"a=1"[..], b"a=1"]).is_ok());
    }

    #[test]
    fn basic_credentials_are_decoded_with_any_scheme_case() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("client:s3cr:et");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("basic {encoded}")).expect("header"),
        );
        assert_eq!(
            basic_credentials(&headers).ok().flatten(),
            Some(("client".into(), "s3cr:et".into()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(basic_credentials(&headers), Err(OAuthError::InvalidClient));
        assert_eq!(basic_credentials(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn scopes_are_the_clients_unless_a_subset_is_asked_for() {
        let allowed = vec!["BROWSER".to_owned(), "EXTRA".to_owned()];
        assert_eq!(granted_scopes(None, &allowed), Ok(allowed.clone()));
        assert_eq!(
            granted_scopes(Some("EXTRA"), &allowed),
            Ok(vec!["EXTRA".to_owned()])
        );
        assert_eq!(
            granted_scopes(Some("BROWSER SERVICE"), &allowed),
            Err(OAuthError::InvalidScope)
        );
    }
}
