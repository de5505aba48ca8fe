//! What a test's configuration and files need: cheap password and client-secret hashing, and a
//! static site to serve.

use std::path::{Path, PathBuf};

use super::rest::{CLIENT_ID, CLIENT_SECRET};

/// What `secret.txt`, beside the site [`static_site`] writes, holds: an answer that contains it
/// escaped the static directory.
pub const SECRET_OUTSIDE: &str = "TOP-SECRET-OUTSIDE";

/// A site for `[static_files] dir`, written under `dir`: `index.html`, `static/css/app.css` and
/// `static/app.js`, with `secret.txt` outside it, beside. Returns the site's root.
pub fn static_site(dir: &Path) -> PathBuf {
    let root = dir.join("static");
    std::fs::create_dir_all(root.join("static/css")).expect("mkdir");
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>Fenix</title>",
    )
    .expect("write");
    std::fs::write(root.join("static/css/app.css"), "body{}").expect("write");
    std::fs::write(root.join("static/app.js"), "console.log(1)").expect("write");
    std::fs::write(dir.join("secret.txt"), SECRET_OUTSIDE).expect("write");
    root
}

// Unoptimised test builds make the production Argon2 costs take a large part of a second per
// hash, so test configurations use tiny ones.

/// The `secret_hash` for the OAuth2 client `client_id` of a test configuration: the front-end
/// authenticates with [`CLIENT_SECRET`], any other client with `service_secret`.
pub fn cheap_client_hash(client_id: &str, service_secret: &str) -> String {
    cheap_hash(match client_id {
        CLIENT_ID => CLIENT_SECRET,
        _ => service_secret,
    })
}

/// The account service's `[password_hashing]` for tests (the hashing itself is the account
/// service's to test).
pub fn cheap_password_hashing() -> account::configuration::HashingConfig {
    account::configuration::HashingConfig {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 4,
        max_queued: 64,
    }
}

/// An Argon2id hash of `secret`, with tiny parameters.
pub fn cheap_hash(secret: &str) -> String {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version, password_hash::SaltString};
    let params = Params::new(1024, 1, 1, None).expect("params");
    let salt = SaltString::encode_b64(b"gateway-test-salt").expect("salt");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(secret.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}
