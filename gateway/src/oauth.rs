//! The OAuth2 token endpoint (`/oauth/token`, RFC 6749) and the keys behind it.
//!
//! Grants: `password` (checked by the account service), `refresh_token` (re-reads the account,
//! so a changed role or a deleted account takes effect) and `client_credentials` (services
//! calling services). Parameters come from the query string (GET) or a form body (POST); client
//! credentials as `client_id`/`client_secret` parameters or HTTP Basic. Clients are
//! configuration with argon2-hashed secrets. Tokens are EdDSA JWTs signed with the private key
//! only the gateway holds; the public half, derived from it, verifies them here and (as a file)
//! in every service. During a key rotation the gateway also accepts the tokens of the keys in
//! `[oauth] trusted_public_key_paths`.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, Method, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey, pkcs8::DecodePrivateKey};
use platform::{
    key_watch,
    reload::ReloadTiming,
    shutdown::CancellationToken,
    token_keys::{JwkSet, key_id},
    tokens::{Caller, Claims, SCOPE_SERVICE, TokenError, TokenSigner, TokenUse, TokenVerifier},
};
use serde::Serialize;
use tokio::sync::Semaphore;

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

/// Signs and verifies every token the gateway deals with. Its keys follow their files while the
/// gateway runs ([`Self::follow_key_files`]).
pub struct TokenIssuer {
    signing: RwLock<Arc<Signing>>,
    /// The signing key's public half first, then the other trusted keys of a rotation.
    verifier: TokenVerifier,
    private_key_path: PathBuf,
    trusted_public_key_paths: Vec<PathBuf>,
    issuer: String,
    access_seconds: i64,
    refresh_seconds: i64,
    internal_seconds: i64,
}

/// The key tokens are signed with now, and the key set published with it.
struct Signing {
    signer: TokenSigner,
    public_key: VerifyingKey,
    /// The signing key's public half first, then the other trusted keys of a rotation.
    public_keys: JwkSet,
}

impl Signing {
    fn new(key: &SigningKey, trusted: &[VerifyingKey]) -> Result<Arc<Self>, TokenError> {
        Ok(Arc::new(Self {
            signer: TokenSigner::new(key)?,
            public_key: key.verifying_key(),
            public_keys: JwkSet::of(trusted),
        }))
    }
}

impl TokenIssuer {
    /// Loads the private key and derives the public key from it, so the two cannot disagree;
    /// the public keys of a rotation come from their own files.
    pub fn load(config: &OAuthConfig) -> Result<Self, OAuthSetupError> {
        let (key, trusted) = read_keys(&config.private_key_path, &config.trusted_public_key_paths)?;
        Ok(Self {
            signing: RwLock::new(Signing::new(&key, &trusted)?),
            verifier: TokenVerifier::new(trusted, &config.issuer),
            private_key_path: config.private_key_path.clone(),
            trusted_public_key_paths: config.trusted_public_key_paths.clone(),
            issuer: config.issuer.clone(),
            access_seconds: config.access_token_seconds,
            refresh_seconds: config.refresh_token_seconds,
            internal_seconds: config.internal_token_seconds,
        })
    }

    /// Re-reads the key files whenever their directories change, until `stop`: a rotation is a
    /// change of the mounted Secret ([`platform::key_watch`]).
    pub fn follow_key_files(self: &Arc<Self>, stop: CancellationToken) -> Result<(), TokenError> {
        let mut paths = vec![self.private_key_path.clone()];
        paths.extend(self.trusted_public_key_paths.iter().cloned());
        let issuer = Arc::clone(self);
        key_watch::watch_key_files(&paths, ReloadTiming::default(), stop, move || {
            issuer.reread_keys();
        })?;
        Ok(())
    }

    /// Takes the key files' current contents into use. A new signing key signs only once it was
    /// already trusted: if this read is the first to show it, it is trusted from now on (beside
    /// the key signing until now) and signs from the next read on, so the gateway never signs
    /// with a key it would itself have refused a moment before (SECURITY.md, key rotation).
    pub fn reread_keys(&self) {
        let (key, trusted) = match read_keys(&self.private_key_path, &self.trusted_public_key_paths)
        {
            Ok(keys) => keys,
            Err(error) => return key_watch::refused(&error),
        };
        let current = self.signing();
        let public_key = key.verifying_key();
        let (signing, trusted) = if public_key != current.public_key
            && !self.verifier.trusted_keys().contains(&public_key)
        {
            tracing::warn!(
                kid = %key_id(&public_key),
                "a new signing key that was not trusted yet: trusted from now on, signing from \
                 the next reload of the key files"
            );
            let mut keys = vec![current.public_key];
            keys.extend(trusted.into_iter().filter(|key| *key != current.public_key));
            let signing = Arc::new(Signing {
                signer: current.signer.clone(),
                public_key: current.public_key,
                public_keys: JwkSet::of(&keys),
            });
            (signing, keys)
        } else {
            match Signing::new(&key, &trusted) {
                Ok(signing) => (signing, trusted),
                Err(error) => return key_watch::refused(&error),
            }
        };
        let changed =
            self.verifier.trust(trusted.clone()) || signing.public_key != current.public_key;
        *self
            .signing
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = signing;
        if changed {
            key_watch::reloaded(&key_watch::key_ids(&trusted));
        }
    }

    fn signing(&self) -> Arc<Signing> {
        Arc::clone(
            &self
                .signing
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn verify_access(&self, token: &str) -> Result<Caller, TokenError> {
        self.verifier.verify_access(token)
    }

    /// The public keys tokens are verified with, as a JSON Web Key Set, the signing key first.
    pub fn public_keys(&self) -> JwkSet {
        self.signing().public_keys.clone()
    }

    /// The `kid` of the tokens signed now.
    pub fn signing_key_id(&self) -> String {
        self.signing().signer.key_id().to_owned()
    }

    fn claims(&self, subject: Subject<'_>, token_use: TokenUse, seconds: i64) -> Claims {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let (user, account_id, authorities) = match subject.user {
            Some(user) => (
                Some(user.username.to_owned()),
                Some(user.account_id),
                user.authorities.to_vec(),
            ),
            None => (None, None, Vec::new()),
        };
        Claims {
            user_name: user.clone(),
            username: user,
            account_id,
            authorities,
            scope: subject.scopes.to_vec(),
            client_id: subject.client_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            token_use,
            iss: self.issuer.clone(),
            iat: now,
            exp: now + seconds,
        }
    }

    fn sign(&self, claims: &Claims) -> Result<String, OAuthError> {
        self.signing().signer.sign(claims).map_err(|error| {
            tracing::error!(%error, "cannot sign a token");
            OAuthError::Internal
        })
    }

    /// A short-lived SERVICE token for the gateway's own calls (credential checks).
    fn service_token(&self) -> Result<String, OAuthError> {
        let scopes = [SCOPE_SERVICE.to_owned()];
        let subject = Subject {
            user: None,
            scopes: &scopes,
            client_id: GATEWAY_CLIENT_ID,
        };
        self.sign(&self.claims(subject, TokenUse::Access, self.internal_seconds))
    }

    /// A short-lived token speaking for a user with no roles: enough to read their own account.
    fn owner_token(&self, username: &str, account_id: i64) -> Result<String, OAuthError> {
        let subject = Subject {
            user: Some(User {
                username,
                account_id,
                authorities: &[],
            }),
            scopes: &[],
            client_id: GATEWAY_CLIENT_ID,
        };
        self.sign(&self.claims(subject, TokenUse::Access, self.internal_seconds))
    }
}

struct User<'a> {
    username: &'a str,
    account_id: i64,
    authorities: &'a [String],
}

struct Subject<'a> {
    user: Option<User<'a>>,
    scopes: &'a [String],
    client_id: &'a str,
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

/// The signing key, and the keys to trust: the signing key's public half first, then the
/// public key in each of `trusted_paths`, each key once.
fn read_keys(
    private_key_path: &Path,
    trusted_paths: &[PathBuf],
) -> Result<(SigningKey, Vec<VerifyingKey>), OAuthSetupError> {
    let shown = || private_key_path.display().to_string();
    let pem =
        std::fs::read_to_string(private_key_path).map_err(|source| OAuthSetupError::KeyFile {
            path: shown(),
            source,
        })?;
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| OAuthSetupError::KeyFormat {
        path: shown(),
        message: e.to_string(),
    })?;
    let mut trusted = vec![key.verifying_key()];
    for key in key_watch::read_public_keys(trusted_paths)? {
        if !trusted.contains(&key) {
            trusted.push(key);
        }
    }
    Ok((key, trusted))
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

    #[test]
    fn the_derived_public_key_verifies_what_the_private_key_signs() {
        let keys = platform::testing::TestKeys::new();
        let config = OAuthConfig {
            private_key_path: keys.private_key_path(),
            ..OAuthConfig::default()
        };
        let issuer = TokenIssuer::load(&config).expect("key");
        let token = issuer.service_token().expect("sign");
        let caller = issuer.verify_access(&token).expect("verify");
        assert!(caller.has_scope(SCOPE_SERVICE));
        assert_eq!(caller.client_id, GATEWAY_CLIENT_ID);
        // Tokens from the test key set (same key) verify too, foreign ones do not.
        let user = keys.token(platform::testing::TestIdentity::Admin);
        assert!(issuer.verify_access(&user).is_ok());
        let other = platform::testing::TestKeys::new();
        assert!(
            issuer
                .verify_access(&other.token(platform::testing::TestIdentity::Admin))
                .is_err()
        );

        let missing = OAuthConfig {
            private_key_path: "/nonexistent/key.pem".into(),
            ..OAuthConfig::default()
        };
        assert!(matches!(
            TokenIssuer::load(&missing),
            Err(OAuthSetupError::KeyFile { .. })
        ));
    }

    #[test]
    fn tokens_of_the_trusted_public_keys_verify_too() {
        use platform::testing::{TestIdentity, TestKeys};
        let (own, trusted, stranger) = (TestKeys::new(), TestKeys::new(), TestKeys::new());
        let config = OAuthConfig {
            private_key_path: own.private_key_path(),
            trusted_public_key_paths: vec![trusted.public_key_path()],
            ..OAuthConfig::default()
        };
        let issuer = TokenIssuer::load(&config).expect("keys");
        assert!(
            issuer
                .verify_access(&own.token(TestIdentity::Admin))
                .is_ok()
        );
        assert!(
            issuer
                .verify_access(&trusted.token(TestIdentity::Admin))
                .is_ok()
        );
        assert!(matches!(
            issuer.verify_access(&stranger.token(TestIdentity::Admin)),
            Err(TokenError::UnknownKey { .. })
        ));
        // It signs with its own key only.
        let token = issuer.service_token().expect("sign");
        let kid = jsonwebtoken::decode_header(&token).expect("header").kid;
        assert_eq!(kid, Some(issuer.signing_key_id()));

        let missing = OAuthConfig {
            trusted_public_key_paths: vec!["/nonexistent/key.pub.pem".into()],
            ..config
        };
        assert!(matches!(
            TokenIssuer::load(&missing),
            Err(OAuthSetupError::Token(TokenError::KeyFile { .. }))
        ));
    }

    /// A key rotation read from the files: a new signing key the gateway did not trust yet is
    /// trusted at once but signs only from the next re-read; a broken file changes nothing; a
    /// key dropped from the files is refused from then on.
    #[test]
    fn key_files_are_followed_and_a_new_key_is_trusted_before_it_signs() {
        use platform::testing::{TestIdentity, TestKeys};
        let (old, new) = (TestKeys::new(), TestKeys::new());
        let dir = tempfile::tempdir().expect("dir");
        let (private, other) = (dir.path().join("signing.pem"), dir.path().join("other.pem"));
        let copy = |from: &std::path::Path, to: &std::path::Path| {
            std::fs::copy(from, to).expect("copy key");
        };
        copy(&old.private_key_path(), &private);
        copy(&old.public_key_path(), &other);
        let issuer = TokenIssuer::load(&OAuthConfig {
            private_key_path: private.clone(),
            trusted_public_key_paths: vec![other.clone()],
            ..OAuthConfig::default()
        })
        .expect("keys");
        let old_kid = issuer.signing_key_id();
        let new_token = new.token(TestIdentity::Admin);
        assert!(issuer.verify_access(&new_token).is_err());

        // The private key changes first (a skipped step): NEW is trusted, OLD still signs.
        copy(&new.private_key_path(), &private);
        issuer.reread_keys();
        assert_eq!(issuer.signing_key_id(), old_kid);
        assert!(issuer.verify_access(&new_token).is_ok());
        assert!(
            issuer
                .verify_access(&old.token(TestIdentity::Admin))
                .is_ok()
        );
        let published: Vec<_> = issuer
            .public_keys()
            .keys
            .iter()
            .map(|k| k.kid.clone())
            .collect();
        assert_eq!(published[0], old_kid);
        assert_eq!(published.len(), 2);
        // The next re-read signs with NEW.
        issuer.reread_keys();
        let new_kid = issuer.signing_key_id();
        assert_ne!(new_kid, old_kid);

        // A broken file keeps the keys in use.
        std::fs::write(&other, "not a key").expect("break");
        issuer.reread_keys();
        assert!(
            issuer
                .verify_access(&old.token(TestIdentity::Admin))
                .is_ok()
        );

        // OLD dropped from the files: refused from now on, even a token verified before.
        copy(&new.public_key_path(), &other);
        issuer.reread_keys();
        assert!(
            issuer
                .verify_access(&old.token(TestIdentity::Admin))
                .is_err()
        );
        assert!(issuer.verify_access(&new_token).is_ok());
        assert_eq!(issuer.signing_key_id(), new_kid);
    }
}
