//! The key tokens are signed with and the keys they are verified with, following their files
//! while the gateway runs (a key rotation is a change of the mounted Secret), and the claims of
//! every token the gateway issues.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use ed25519_dalek::{SigningKey, VerifyingKey, pkcs8::DecodePrivateKey};
use platform::{
    key_watch,
    reload::ReloadTiming,
    shutdown::CancellationToken,
    token_keys::{JwkSet, key_id},
    tokens::{Caller, Claims, SCOPE_SERVICE, TokenError, TokenSigner, TokenUse, TokenVerifier},
};

use super::{GATEWAY_CLIENT_ID, OAuthSetupError};
use crate::{configuration::OAuthConfig, errors::OAuthError};

/// Signs and verifies every token the gateway deals with. Its keys follow their files while the
/// gateway runs ([`Self::follow_key_files`]).
pub struct TokenIssuer {
    signing: RwLock<Arc<Signing>>,
    /// The signing key's public half first, then the other trusted keys of a rotation.
    pub(super) verifier: TokenVerifier,
    private_key_path: PathBuf,
    trusted_public_key_paths: Vec<PathBuf>,
    issuer: String,
    pub(super) access_seconds: i64,
    pub(super) refresh_seconds: i64,
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

    pub(super) fn claims(&self, subject: Subject<'_>, token_use: TokenUse, seconds: i64) -> Claims {
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

    pub(super) fn sign(&self, claims: &Claims) -> Result<String, OAuthError> {
        self.signing().signer.sign(claims).map_err(|error| {
            tracing::error!(%error, "cannot sign a token");
            OAuthError::Internal
        })
    }

    /// A short-lived SERVICE token for the gateway's own calls (credential checks).
    pub(super) fn service_token(&self) -> Result<String, OAuthError> {
        let scopes = [SCOPE_SERVICE.to_owned()];
        let subject = Subject {
            user: None,
            scopes: &scopes,
            client_id: GATEWAY_CLIENT_ID,
        };
        self.sign(&self.claims(subject, TokenUse::Access, self.internal_seconds))
    }

    /// A short-lived token speaking for a user with no roles: enough to read their own account.
    pub(super) fn owner_token(
        &self,
        username: &str,
        account_id: i64,
    ) -> Result<String, OAuthError> {
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

pub(super) struct User<'a> {
    pub(super) username: &'a str,
    pub(super) account_id: i64,
    pub(super) authorities: &'a [String],
}

pub(super) struct Subject<'a> {
    pub(super) user: Option<User<'a>>,
    pub(super) scopes: &'a [String],
    pub(super) client_id: &'a str,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(caller.has_scope(platform::tokens::SCOPE_SERVICE));
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
