//! The Ed25519 keys behind the tokens: reading them from PEM text or files, and naming each
//! public key with a key id, the JWT header's `kid`.
//!
//! The key id lets a verifier that trusts several keys (the current one and, during a rotation,
//! the one before or after it) pick the one a token was signed with instead of trying each. It
//! is derived from the public key alone, so the gateway (which holds the private key) and every
//! service (which hold only the public key) compute the same id without sharing anything else:
//! base64url, unpadded, of the first 12 bytes of the SHA-256 of the raw 32-byte public key.
//!
//! [`JwkSet`] publishes the public keys as a JSON Web Key Set (RFC 7517, with RFC 8037's `OKP`
//! keys for Ed25519), which the gateway serves at `/.well-known/jwks.json` for outside verifiers.

use std::path::Path;

use base64::Engine;
use ed25519_dalek::{
    SigningKey, VerifyingKey,
    pkcs8::{DecodePrivateKey, DecodePublicKey},
};
use jsonwebtoken::DecodingKey;
use sha2::{Digest, Sha256};

use crate::tokens::TokenError;

/// How many bytes of the key's SHA-256 make its id: 96 bits, 16 characters of base64url. An id
/// only has to tell apart the few keys one verifier trusts, and it is never a security boundary
/// (the signature is still checked against the key it names).
const KEY_ID_BYTES: usize = 12;

/// The key id (`kid`) of tokens signed with the private half of `key`.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..KEY_ID_BYTES])
}

/// An Ed25519 SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key_from_pem(pem: &[u8]) -> Result<VerifyingKey, TokenError> {
    VerifyingKey::from_public_key_pem(pem_text(pem)?)
        .map_err(|e| TokenError::KeyEncoding(e.to_string()))
}

/// An Ed25519 PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
pub fn signing_key_from_pem(pem: &[u8]) -> Result<SigningKey, TokenError> {
    SigningKey::from_pkcs8_pem(pem_text(pem)?).map_err(|e| TokenError::KeyEncoding(e.to_string()))
}

/// Reads a public key file; errors name the file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, TokenError> {
    public_key_from_pem(&read_key(path)?).map_err(|e| key_format(path, e))
}

fn pem_text(pem: &[u8]) -> Result<&str, TokenError> {
    std::str::from_utf8(pem).map_err(|e| TokenError::KeyEncoding(e.to_string()))
}

pub(crate) fn read_key(path: &Path) -> Result<Vec<u8>, TokenError> {
    std::fs::read(path).map_err(|source| TokenError::KeyFile {
        path: path.display().to_string(),
        source,
    })
}

pub(crate) fn key_format(path: &Path, error: TokenError) -> TokenError {
    TokenError::KeyFormat {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// A JSON Web Key Set of Ed25519 public keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// One Ed25519 public key as a JSON Web Key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Jwk {
    /// `OKP` (octet key pair).
    pub kty: &'static str,
    /// `Ed25519`.
    pub crv: &'static str,
    /// The raw 32-byte public key, base64url without padding.
    pub x: String,
    /// The key id tokens signed with it carry ([`key_id`]).
    pub kid: String,
    /// `EdDSA`.
    pub alg: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
}

impl JwkSet {
    /// The set of `keys`, in the order given (the current key first).
    pub fn of<'a>(keys: impl IntoIterator<Item = &'a VerifyingKey>) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|key| Jwk {
                    kty: "OKP",
                    crv: "Ed25519",
                    x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes()),
                    kid: key_id(key),
                    alg: "EdDSA",
                    use_: "sig",
                })
                .collect(),
        }
    }
}

/// One public key a verifier accepts tokens from, under its key id.
#[derive(Clone)]
pub(crate) struct TrustedKey {
    pub kid: String,
    pub key: DecodingKey,
}

impl From<VerifyingKey> for TrustedKey {
    fn from(key: VerifyingKey) -> Self {
        Self {
            kid: key_id(&key),
            // jsonwebtoken's "DER" for Ed25519 is the raw 32-byte key, as its PEM reader yields.
            key: DecodingKey::from_ed_der(key.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::KeyPairPem;

    #[test]
    fn a_key_id_is_short_url_safe_and_tells_keys_apart() {
        let (first, second) = (KeyPairPem::generate(), KeyPairPem::generate());
        let first_public = public_key_from_pem(first.public_pem.as_bytes()).expect("public");
        let id = key_id(&first_public);
        assert_eq!(id.len(), 16);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{id}"
        );
        // The private half yields the same id: the signer and the verifiers agree.
        let private = signing_key_from_pem(first.private_pem.as_bytes()).expect("private");
        assert_eq!(key_id(&private.verifying_key()), id);
        let second_public = public_key_from_pem(second.public_pem.as_bytes()).expect("public");
        assert_ne!(key_id(&second_public), id);
    }

    #[test]
    fn a_private_key_is_not_a_public_key_and_errors_name_the_file() {
        let pair = KeyPairPem::generate();
        assert!(matches!(
            public_key_from_pem(pair.private_pem.as_bytes()),
            Err(TokenError::KeyEncoding(_))
        ));
        assert!(signing_key_from_pem(pair.public_pem.as_bytes()).is_err());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not-a-key.pem");
        std::fs::write(&path, "hello").expect("write");
        let error = read_public_key(&path).expect_err("not a key");
        assert!(matches!(error, TokenError::KeyFormat { .. }));
        assert!(error.to_string().contains("not-a-key.pem"), "{error}");
        assert!(matches!(
            read_public_key(&dir.path().join("missing.pem")),
            Err(TokenError::KeyFile { .. })
        ));
    }
}
