//! The JWTs that the gateway issues and every program verifies.
//!
//! Tokens are signed with Ed25519 (JWT `alg: EdDSA`). Only the gateway holds the private key;
//! services get the public key and can verify but never mint. Verification pins the algorithm,
//! so `alg: none` and HMAC tokens "signed" with the public key are rejected.
//!
//! So that the signing key can be rotated without refusing every outstanding token, a token
//! names its key in the header (`kid`, see [`crate::token_keys`]) and a verifier may trust
//! several keys: it checks a token against the key it names, and a token from before key ids
//! (no `kid`) against each trusted key in turn.

use std::{
    path::Path,
    sync::{Arc, RwLock},
};

use ed25519_dalek::{
    SigningKey, VerifyingKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header, Validation,
    errors::{Error as JwtError, ErrorKind},
};
use serde::{Deserialize, Serialize};

use crate::token_keys::{
    TrustedKey, key_format, key_id, public_key_from_pem, read_key, read_public_key,
    signing_key_from_pem,
};

/// Role that unlocks catalogue writes and other users' accounts.
pub const ROLE_ADMIN: &str = "ROLE_ADMIN";
/// Role every registered account has.
pub const ROLE_USER: &str = "ROLE_USER";
/// Scope of tokens held by services calling services.
pub const SCOPE_SERVICE: &str = "SERVICE";
/// Scope of tokens held by the web front-end on behalf of a user.
pub const SCOPE_BROWSER: &str = "BROWSER";

/// Whether a token grants access or only the right to get a new access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    Access,
    Refresh,
}

/// The claims of every bookstore JWT. Field names follow Spring Security OAuth2's tokens, which
/// the Fenix front-end and its tools already know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The account's username; absent on client-credentials (service) tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Same as `user_name` (both spellings are in use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The account's id; absent on service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
    #[serde(default)]
    pub authorities: Vec<String>,
    #[serde(default)]
    pub scope: Vec<String>,
    pub client_id: String,
    /// Unique token id (UUID).
    pub jti: String,
    pub token_use: TokenUse,
    /// Issuer; verification requires the configured one.
    pub iss: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

/// Who is calling, as proven by a verified access token.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub username: Option<String>,
    pub account_id: Option<i64>,
    pub authorities: Vec<String>,
    pub scopes: Vec<String>,
    pub client_id: String,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.authorities.iter().any(|a| a == ROLE_ADMIN)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// True when the token was issued to the account with this username (case-insensitive).
    pub fn is_user(&self, username: &str) -> bool {
        self.username
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(username))
    }
}

impl From<Claims> for Caller {
    fn from(claims: Claims) -> Self {
        Self {
            username: claims.user_name.or(claims.username),
            account_id: claims.account_id,
            authorities: claims.authorities,
            scopes: claims.scope,
            client_id: claims.client_id,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("a refresh token cannot be used to call APIs")]
    NotAnAccessToken,
    #[error("a refresh token is required")]
    NotARefreshToken,
    #[error("the token was signed with key {kid:?}, which is not trusted")]
    UnknownKey { kid: String },
    #[error("cannot read key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} is not an Ed25519 PEM key: {message}")]
    KeyFormat { path: String, message: String },
    #[error("not an Ed25519 PEM key: {0}")]
    KeyEncoding(String),
    #[error(transparent)]
    KeyWatch(#[from] crate::reload::ReloadError),
}

impl TokenError {
    /// The kind of refusal, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(error) => match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "expired",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "bad_signature",
                _ => "malformed",
            },
            Self::NotAnAccessToken => "not_an_access_token",
            Self::NotARefreshToken => "not_a_refresh_token",
            Self::UnknownKey { .. } => "unknown_key",
            Self::KeyFile { .. }
            | Self::KeyFormat { .. }
            | Self::KeyEncoding(_)
            | Self::KeyWatch(_) => "key",
        }
    }
}

/// Verifies tokens with the issuer's public keys: the current one and, during a key rotation,
/// the others named in the configuration. Access tokens it accepted are remembered until they
/// expire ([`crate::token_cache`]), so a client's next request with the same token costs a map
/// lookup instead of a signature check; clones share the keys and what was remembered.
///
/// The keys can be replaced while the program runs ([`Self::trust`], driven by
/// [`crate::key_watch`]); what was remembered goes with the keys it was verified with, so a
/// token of a key no longer trusted is refused from the next request on.
#[derive(Clone)]
pub struct TokenVerifier {
    current: Arc<RwLock<Arc<TrustedSet>>>,
    validation: Validation,
}

/// The keys trusted at one time, and the tokens verified with them.
struct TrustedSet {
    /// In the order given: the current key first, so tokens without a key id usually match at
    /// the first try.
    keys: Box<[TrustedKey]>,
    public: Vec<VerifyingKey>,
    verified: crate::token_cache::VerifiedTokens,
}

impl TrustedSet {
    fn new(public: Vec<VerifyingKey>) -> Arc<Self> {
        Arc::new(Self {
            keys: public.iter().copied().map(TrustedKey::from).collect(),
            public,
            verified: Default::default(),
        })
    }
}

impl TokenVerifier {
    /// Accepts tokens signed by any of `keys` (at most a few: a token without a key id is
    /// checked against each).
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>, issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.leeway = 5;
        Self {
            current: Arc::new(RwLock::new(TrustedSet::new(keys.into_iter().collect()))),
            validation,
        }
    }

    /// From now on, accepts tokens signed by `keys` only (the current key first). Returns
    /// whether that changed anything.
    pub fn trust(&self, keys: Vec<VerifyingKey>) -> bool {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.public == keys {
            return false;
        }
        *current = TrustedSet::new(keys);
        true
    }

    /// The keys trusted now, the current one first.
    pub fn trusted_keys(&self) -> Vec<VerifyingKey> {
        self.set().public.clone()
    }

    fn set(&self) -> Arc<TrustedSet> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// `public_key_pem` is an Ed25519 SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(public_key_pem: &[u8], issuer: &str) -> Result<Self, TokenError> {
        Ok(Self::new([public_key_from_pem(public_key_pem)?], issuer))
    }

    /// Trusts the public key in each file, the current key first.
    pub fn from_pem_files<'a>(
        paths: impl IntoIterator<Item = &'a Path>,
        issuer: &str,
    ) -> Result<Self, TokenError> {
        let keys = paths
            .into_iter()
            .map(read_public_key)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(keys, issuer))
    }

    /// Verifies signature, issuer and expiry, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_with(&self.set(), token)
    }

    fn verify_with(&self, set: &TrustedSet, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode_header(token)?.kid {
            Some(kid) => {
                let trusted = set.keys.iter().find(|trusted| trusted.kid == kid);
                // The id is the sender's text and ends up in logs and error messages: a real
                // one is 16 characters, so anything past 64 is cut.
                let trusted = trusted.ok_or_else(|| TokenError::UnknownKey {
                    kid: kid.chars().take(64).collect(),
                })?;
                Ok(self.decode(token, trusted)?)
            }
            None => self.verify_with_any_key(set, token),
        }
    }

    /// A token from before key ids: the first key whose signature matches decides.
    fn verify_with_any_key(&self, set: &TrustedSet, token: &str) -> Result<Claims, TokenError> {
        let mut refused = JwtError::from(ErrorKind::InvalidSignature);
        for trusted in set.keys.iter() {
            match self.decode(token, trusted) {
                Ok(claims) => return Ok(claims),
                // Not signed with this key; maybe with the next.
                Err(error) if *error.kind() == ErrorKind::InvalidSignature => refused = error,
                // Signed with this key (or malformed whatever the key): no other key can help.
                Err(error) => return Err(error.into()),
            }
        }
        Err(refused.into())
    }

    fn decode(&self, token: &str, trusted: &TrustedKey) -> Result<Claims, JwtError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &trusted.key, &self.validation)?.claims)
    }

    /// Verifies an access token and returns who it speaks for.
    pub fn verify_access(&self, token: &str) -> Result<Caller, TokenError> {
        // Accepted while `exp >= now - leeway`, as jsonwebtoken's own expiry check does.
        let not_before =
            jsonwebtoken::get_current_timestamp() as i64 - self.validation.leeway as i64;
        let set = self.set();
        if let Some(caller) = set.verified.get(token, not_before) {
            return Ok(caller);
        }
        let claims = self
            .verify_with(&set, token)
            .inspect_err(verification_failed)?;
        if claims.token_use != TokenUse::Access {
            let error = TokenError::NotAnAccessToken;
            verification_failed(&error);
            return Err(error);
        }
        let exp = claims.exp;
        let caller = Caller::from(claims);
        set.verified.insert(token, caller.clone(), exp, not_before);
        Ok(caller)
    }
}

/// Counts a token refused (`token_verification_failures_total{reason}`).
fn verification_failed(error: &TokenError) {
    metrics::counter!("token_verification_failures_total", "reason" => error.reason()).increment(1);
}

/// Signs tokens with the private key, naming its public half in each token's `kid`. Only the
/// gateway (the token endpoint) has one.
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
    kid: String,
}

impl TokenSigner {
    pub fn new(key: &SigningKey) -> Result<Self, TokenError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| TokenError::KeyEncoding(e.to_string()))?;
        Ok(Self {
            key: EncodingKey::from_ed_der(der.as_bytes()),
            kid: key_id(&key.verifying_key()),
        })
    }

    /// `private_key_pem` is an Ed25519 PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(private_key_pem: &[u8]) -> Result<Self, TokenError> {
        Self::new(&signing_key_from_pem(private_key_pem)?)
    }

    pub fn from_pem_file(path: &Path) -> Result<Self, TokenError> {
        let pem = read_key(path)?;
        Self::from_pem(&pem).map_err(|e| key_format(path, e))
    }

    /// The `kid` of every token this signer signs.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// A freshly generated Ed25519 key pair as PEM text, for development and tests.
pub struct KeyPairPem {
    pub private_pem: String,
    pub public_pem: String,
}

impl KeyPairPem {
    pub fn generate() -> Self {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        // Encoding a valid in-memory key cannot fail; the fallbacks are unreachable in practice.
        let private_pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .unwrap_or_default();
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default();
        Self {
            private_pem,
            public_pem,
        }
    }

    /// Writes `token-signing.pem` and `token-signing.pub.pem` into `dir` unless both exist, and
    /// returns their paths. The private key file is readable by its owner only.
    pub fn ensure_files(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        use std::os::unix::fs::OpenOptionsExt;
        let private = dir.join("token-signing.pem");
        let public = dir.join("token-signing.pub.pem");
        if private.is_file() && public.is_file() {
            return Ok((private, public));
        }
        std::fs::create_dir_all(dir)?;
        let pair = Self::generate();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&private)?;
        std::io::Write::write_all(&mut file, pair.private_pem.as_bytes())?;
        std::fs::write(&public, pair.public_pem)?;
        Ok((private, public))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(token_use: TokenUse, exp_offset: i64) -> Claims {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        Claims {
            user_name: Some("icyfenix".into()),
            username: Some("icyfenix".into()),
            account_id: Some(1),
            authorities: vec![ROLE_USER.into(), ROLE_ADMIN.into()],
            scope: vec![SCOPE_BROWSER.into()],
            client_id: "bookstore_frontend".into(),
            jti: "id".into(),
            token_use,
            iss: "bookstore".into(),
            iat: now,
            exp: now + exp_offset,
        }
    }

    fn pair() -> (TokenSigner, TokenVerifier) {
        let keys = KeyPairPem::generate();
        let signer = TokenSigner::from_pem(keys.private_pem.as_bytes()).expect("private key");
        let verifier =
            TokenVerifier::from_pem(keys.public_pem.as_bytes(), "bookstore").expect("public key");
        (signer, verifier)
    }

    #[test]
    fn a_signed_access_token_verifies_into_its_caller() {
        let (signer, verifier) = pair();
        let token = signer.sign(&claims(TokenUse::Access, 60)).expect("sign");
        let caller = verifier.verify_access(&token).expect("verify");
        assert_eq!(caller.username.as_deref(), Some("icyfenix"));
        assert!(caller.is_admin());
        assert!(caller.is_user("IcyFenix"));
        assert!(!caller.has_scope(SCOPE_SERVICE));
    }

    #[test]
    fn expired_refresh_foreign_and_tampered_tokens_are_refused() {
        let (signer, verifier) = pair();
        let expired = signer.sign(&claims(TokenUse::Access, -60)).expect("sign");
        assert!(verifier.verify_access(&expired).is_err());

        let refresh = signer.sign(&claims(TokenUse::Refresh, 60)).expect("sign");
        assert!(matches!(
            verifier.verify_access(&refresh),
            Err(TokenError::NotAnAccessToken)
        ));

        let (other_signer, _) = pair();
        let foreign = other_signer
            .sign(&claims(TokenUse::Access, 60))
            .expect("sign");
        assert!(verifier.verify_access(&foreign).is_err());

        // Another token's payload under this token's signature: a tampered payload.
        let good = signer.sign(&claims(TokenUse::Access, 60)).expect("sign");
        let mut other_claims = claims(TokenUse::Access, 60);
        other_claims.user_name = Some("mallory".into());
        let other = signer.sign(&other_claims).expect("sign");
        let good_parts: Vec<&str> = good.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let tampered = format!("{}.{}.{}", good_parts[0], other_parts[1], good_parts[2]);
        assert!(verifier.verify_access(&good).is_ok());
        assert!(verifier.verify_access(&tampered).is_err());
    }

    #[test]
    fn a_verified_token_is_remembered_and_still_expires() {
        let (signer, verifier) = pair();
        let token = signer.sign(&claims(TokenUse::Access, 60)).expect("sign");
        let first = verifier.verify_access(&token).expect("verify");
        assert_eq!(verifier.set().verified.len(), 1);
        // A clone shares the cache; the answer is the same.
        assert_eq!(
            verifier.clone().verify_access(&token).expect("cached"),
            first
        );

        // Already past expiry plus leeway: refused, and a refusal is not remembered.
        let expired = signer.sign(&claims(TokenUse::Access, -60)).expect("sign");
        assert!(verifier.verify_access(&expired).is_err());
        let refresh = signer.sign(&claims(TokenUse::Refresh, 60)).expect("sign");
        assert!(verifier.verify_access(&refresh).is_err());
        assert_eq!(verifier.set().verified.len(), 1);

        // A remembered token is refused once its expiry (plus leeway) has passed.
        let short = signer.sign(&claims(TokenUse::Access, -4)).expect("sign");
        assert!(verifier.verify_access(&short).is_ok(), "within the leeway");
        let now = jsonwebtoken::get_current_timestamp() as i64;
        assert!(verifier.set().verified.get(&short, now - 5).is_some());
        assert!(verifier.set().verified.get(&short, now - 5 + 2).is_none());
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let (_, verifier) = pair();
        // {"alg":"none","typ":"JWT"} . claims . (no signature)
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let body = "eyJ1c2VyX25hbWUiOiJ4IiwiY2xpZW50X2lkIjoieCIsImp0aSI6IngiLCJ0b2tlbl91c2UiOiJhY2Nlc3MiLCJpc3MiOiJib29rc3RvcmUiLCJpYXQiOjAsImV4cCI6OTk5OTk5OTk5OX0";
        assert!(
            verifier
                .verify_access(&format!("{header}.{body}."))
                .is_err()
        );
    }

    /// A token signed by `signer` whose header says `kid` (or nothing), as a token from another
    /// signer, or from before key ids, would.
    fn signed_naming(signer: &TokenSigner, kid: Option<&str>, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &signer.key).expect("sign")
    }

    /// `[auth]` with the current key and `previous` keys, as files in `dir`. The next call
    /// overwrites them, so build the verifier before making another.
    fn auth_config(
        dir: &Path,
        current: &KeyPairPem,
        previous: &[&KeyPairPem],
    ) -> crate::configuration::AuthConfig {
        let write = |name: String, pair: &KeyPairPem| {
            let path = dir.join(name);
            std::fs::write(&path, &pair.public_pem).expect("write key");
            path
        };
        crate::configuration::AuthConfig {
            public_key_path: write("current.pub.pem".into(), current),
            previous_public_key_paths: previous
                .iter()
                .enumerate()
                .map(|(i, pair)| write(format!("previous-{i}.pub.pem"), pair))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_previous_keys_tokens_are_accepted_only_while_that_key_is_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (KeyPairPem::generate(), KeyPairPem::generate());
        let old_signer = TokenSigner::from_pem(old.private_pem.as_bytes()).expect("old key");
        let new_signer = TokenSigner::from_pem(new.private_pem.as_bytes()).expect("new key");
        let from_old = old_signer
            .sign(&claims(TokenUse::Access, 60))
            .expect("sign");
        let from_new = new_signer
            .sign(&claims(TokenUse::Access, 60))
            .expect("sign");

        let rotating = auth_config(dir.path(), &new, &[&old])
            .verifier()
            .expect("keys");
        assert!(rotating.verify_access(&from_old).is_ok());
        assert!(rotating.verify_access(&from_new).is_ok());

        let rotated = auth_config(dir.path(), &new, &[]).verifier().expect("keys");
        assert!(matches!(
            rotated.verify_access(&from_old),
            Err(TokenError::UnknownKey { kid }) if kid == old_signer.key_id()
        ));
        assert!(rotated.verify_access(&from_new).is_ok());

        // A listed file that is not there stops the program at start.
        let mut missing = auth_config(dir.path(), &new, &[&old]);
        missing.previous_public_key_paths = vec![dir.path().join("nope.pem")];
        assert!(matches!(
            missing.verifier(),
            Err(TokenError::KeyFile { .. })
        ));
    }

    #[test]
    fn a_token_naming_a_key_is_checked_against_that_key_only() {
        let (trusted, other) = (KeyPairPem::generate(), KeyPairPem::generate());
        let signer = TokenSigner::from_pem(trusted.private_pem.as_bytes()).expect("key");
        let other_signer = TokenSigner::from_pem(other.private_pem.as_bytes()).expect("key");
        let verifier = TokenVerifier::from_pem(trusted.public_pem.as_bytes(), "bookstore")
            .expect("public key");
        let claims = claims(TokenUse::Access, 60);

        // Signed with a trusted key, but naming a key nobody trusts.
        let unknown = signed_naming(&signer, Some("AAAAAAAAAAAAAAAA"), &claims);
        assert!(matches!(
            verifier.verify_access(&unknown),
            Err(TokenError::UnknownKey { .. })
        ));
        // A long made-up id is refused, and not repeated in full.
        let long = signed_naming(&signer, Some(&"k".repeat(10_000)), &claims);
        match verifier.verify_access(&long) {
            Err(TokenError::UnknownKey { kid }) => assert_eq!(kid.len(), 64),
            other => panic!("expected UnknownKey, got {other:?}"),
        }
        // Signed with an untrusted key: its own key id is unknown here.
        let foreign = other_signer.sign(&claims).expect("sign");
        assert!(matches!(
            verifier.verify_access(&foreign),
            Err(TokenError::UnknownKey { .. })
        ));
        // With both keys trusted, a token signed with one but naming the other is refused:
        // the named key alone decides.
        let public = |pair: &KeyPairPem| {
            crate::token_keys::public_key_from_pem(pair.public_pem.as_bytes()).expect("public")
        };
        let both = TokenVerifier::new([public(&trusted), public(&other)], "bookstore");
        assert!(both.verify_access(&foreign).is_ok());
        let impostor = signed_naming(&other_signer, Some(signer.key_id()), &claims);
        assert!(matches!(
            both.verify_access(&impostor),
            Err(TokenError::Invalid(e)) if *e.kind() == ErrorKind::InvalidSignature
        ));
        assert_eq!(
            verifier.set().verified.len(),
            0,
            "refusals are not remembered"
        );
    }

    #[test]
    fn a_token_without_a_key_id_is_accepted_by_the_key_that_signed_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (KeyPairPem::generate(), KeyPairPem::generate());
        let old_signer = TokenSigner::from_pem(old.private_pem.as_bytes()).expect("old key");
        let before_key_ids = signed_naming(&old_signer, None, &claims(TokenUse::Access, 60));

        // Tried against the current key first, then the previous one, which signed it.
        let rotating = auth_config(dir.path(), &new, &[&old])
            .verifier()
            .expect("keys");
        let caller = rotating.verify_access(&before_key_ids).expect("old key");
        assert_eq!(caller.username.as_deref(), Some("icyfenix"));
        let unchanged = auth_config(dir.path(), &old, &[]).verifier().expect("keys");
        assert!(unchanged.verify_access(&before_key_ids).is_ok());
        let rotated = auth_config(dir.path(), &new, &[]).verifier().expect("keys");
        assert!(matches!(
            rotated.verify_access(&before_key_ids),
            Err(TokenError::Invalid(e)) if *e.kind() == ErrorKind::InvalidSignature
        ));

        // The key that signed it decides the answer: expired is expired, not "bad signature".
        let expired = signed_naming(&old_signer, None, &claims(TokenUse::Access, -60));
        assert!(matches!(
            rotating.verify_access(&expired),
            Err(TokenError::Invalid(e)) if *e.kind() == ErrorKind::ExpiredSignature
        ));
    }

    #[test]
    fn the_signers_key_id_is_the_one_verifiers_compute_for_its_public_key() {
        let keys = KeyPairPem::generate();
        let signer = TokenSigner::from_pem(keys.private_pem.as_bytes()).expect("private key");
        let verifier =
            TokenVerifier::from_pem(keys.public_pem.as_bytes(), "bookstore").expect("public key");
        let token = signer.sign(&claims(TokenUse::Access, 60)).expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(signer.key_id()));
        assert_eq!(verifier.set().keys[0].kid, signer.key_id());
        let public =
            crate::token_keys::public_key_from_pem(keys.public_pem.as_bytes()).expect("public");
        assert_eq!(crate::token_keys::key_id(&public), signer.key_id());
    }
}
