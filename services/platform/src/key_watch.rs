//! Token keys that follow their files while the program runs.
//!
//! Kubernetes updates a mounted Secret in place (the kubelet swaps a `..data` symlink, as for a
//! ConfigMap), so a key rotation is a change of the Secret's contents and needs no restart: each
//! program re-reads its key files when their directory changes (and every poll interval), and
//! swaps the keys it trusts once every file reads as a valid key. A file that is missing or
//! malformed leaves the last good keys in place, with a warning and
//! `key_reloads_total{outcome="refused"}`; the paths themselves come from the configuration,
//! read at start.
//!
//! The order of a rotation (SECURITY.md): every verifier trusts the new key before the gateway
//! signs with it, and keeps the old one until the tokens it signed have expired.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use tokio_util::sync::CancellationToken;

use crate::{
    reload::{ReloadError, ReloadTiming, watch_directories},
    token_keys::{key_id, read_public_key},
    tokens::{TokenError, TokenVerifier},
};

/// Keeps `verifier` trusting the public keys in `paths` (the current key first) as the files
/// change, until `stop`.
pub fn follow_public_keys(
    verifier: TokenVerifier,
    paths: Vec<PathBuf>,
    timing: ReloadTiming,
    stop: CancellationToken,
) -> Result<(), ReloadError> {
    let watched = paths.clone();
    watch_key_files(&watched, timing, stop, move || {
        match read_public_keys(&paths) {
            Ok(keys) => {
                let kids = key_ids(&keys);
                if verifier.trust(keys) {
                    reloaded(&kids);
                }
            }
            Err(error) => refused(&error),
        }
    })
}

/// Watches the directories holding `paths` and calls `reread` after each change.
pub fn watch_key_files(
    paths: &[PathBuf],
    timing: ReloadTiming,
    stop: CancellationToken,
    reread: impl FnMut() + Send + 'static,
) -> Result<(), ReloadError> {
    let mut dirs: Vec<PathBuf> = paths
        .iter()
        .map(|path| match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    watch_directories(dirs, timing, stop, reread)
}

/// The public key in each file, in order, each key once.
pub fn read_public_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, TokenError> {
    let mut keys = Vec::with_capacity(paths.len());
    for path in paths {
        let key = read_public_key(Path::new(path))?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// The key ids of `keys`, for logs.
pub fn key_ids(keys: &[VerifyingKey]) -> Vec<String> {
    keys.iter().map(key_id).collect()
}

/// Logs and counts a key set taken into use.
pub fn reloaded(kids: &[String]) {
    tracing::info!(?kids, "token keys reloaded");
    metrics::counter!("key_reloads_total", "outcome" => "accepted").increment(1);
}

/// Logs and counts key files that could not be used.
pub fn refused(error: &dyn std::fmt::Display) {
    tracing::warn!(%error, "token key files are unusable; keeping the keys in use");
    metrics::counter!("key_reloads_total", "outcome" => "refused").increment(1);
}
