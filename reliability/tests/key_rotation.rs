//! A token-signing key rotation under traffic loses no request and logs no one out.
//!
//! The key files are laid out as in the cluster (SECURITY.md, "Rotating the token-signing key"):
//! the services trust `token-signing.pub.pem` and `token-signing.previous.pub.pem`, the gateway
//! signs with `token-signing.pem` and also trusts `token-signing.other.pub.pem`. Shoppers keep
//! browsing and buying with the tokens they got before the rotation while the files change
//! under the running programs, step by step, as a Secret update changes them:
//!
//! 2. every program trusts NEW; the gateway still signs with OLD;
//! 3. the gateway signs with NEW and still trusts OLD;
//! 5. OLD is dropped everywhere.
//!
//! No request fails during steps 2 and 3, OLD tokens keep working until step 5, NEW tokens work
//! on every service from step 3, and after step 5 an OLD token is refused.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use platform::{
    token_keys::{key_id, public_key_from_pem},
    tokens::KeyPairPem,
};
use reliability::{
    programs::Kind,
    stack::{OTHER_PUBLIC_KEY, PREVIOUS_PUBLIC_KEY, Stack, StackOptions, Storage},
    traffic::{Plan, Traffic, listing, summary},
};

/// The key directory laid out as the kubelet lays out a mounted Secret: each file a symlink
/// into `..data`, itself a symlink to a directory holding one version of the Secret. An update
/// writes a whole new version and swaps `..data` in one rename, so a program sees every file
/// of the old version or every file of the new one.
struct SecretVolume {
    dir: PathBuf,
    version: u32,
}

const FILES: [&str; 4] = [
    "token-signing.pem",
    "token-signing.pub.pem",
    PREVIOUS_PUBLIC_KEY,
    OTHER_PUBLIC_KEY,
];

impl SecretVolume {
    /// Turns the files in `dir` into the first version, without changing what they hold.
    fn adopt(dir: PathBuf) -> Self {
        let contents: Vec<(&str, String)> = FILES
            .iter()
            .map(|name| (*name, std::fs::read_to_string(dir.join(name)).expect(name)))
            .collect();
        let mut volume = Self { dir, version: 0 };
        volume.update(&contents);
        for name in FILES {
            let link = volume.dir.join(format!(".{name}.link"));
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).expect("symlink");
            std::fs::rename(&link, volume.dir.join(name)).expect("file to symlink");
        }
        volume
    }

    /// Publishes a new version holding `files` (every file of the Secret).
    fn update(&mut self, files: &[(&str, String)]) {
        self.version += 1;
        let version = format!("..version_{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).expect("version dir");
        for (name, contents) in files {
            std::fs::write(self.dir.join(&version).join(name), contents).expect("key file");
        }
        let staging = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &staging).expect("..data_tmp");
        std::fs::rename(&staging, self.dir.join("..data")).expect("swap ..data");
    }
}

/// The `kid` of a JWT, from its header.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT")
        .kid
        .expect("a kid")
}

/// Waits until every program named has logged that it took `kid` into use since `marks`.
async fn wait_for_keys(stack: &mut Stack, marks: &[(Kind, usize)], kid: &str) {
    for &(kind, mark) in marks {
        let program = stack.program(kind, 0);
        program
            .wait_for_log(mark, &["token keys reloaded", kid], Duration::from_secs(10))
            .await;
    }
}

fn marks(stack: &mut Stack) -> Vec<(Kind, usize)> {
    [Kind::Account, Kind::Warehouse, Kind::Payment, Kind::Gateway]
        .into_iter()
        .map(|kind| (kind, stack.program(kind, 0).log.mark()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_under_traffic_loses_no_request_and_logs_no_one_out() {
    let mut stack = Stack::start(StackOptions {
        key_rotation_files: true,
        ..StackOptions::with_room(Storage::Sqlite)
    })
    .await;
    let shop = stack.open_shop(3, &[1_000, 1_000]).await;
    let rest = stack.rest.clone();
    let dir = stack.key_dir();
    let old_public = std::fs::read_to_string(dir.join("token-signing.pub.pem")).expect("OLD");
    let old_private = std::fs::read_to_string(dir.join("token-signing.pem")).expect("OLD");
    let mut secret = SecretVolume::adopt(dir);
    let old_kid = key_id(&public_key_from_pem(old_public.as_bytes()).expect("OLD key"));
    let new = KeyPairPem::generate();
    let new_kid = key_id(&public_key_from_pem(new.public_pem.as_bytes()).expect("NEW key"));
    let shopper = shop.shoppers[0].clone();
    assert_eq!(kid_of(&shopper.token), old_kid);

    let traffic = Traffic::start(
        rest.clone(),
        Plan {
            workers: 3,
            products: shop.products.clone(),
            shoppers: shop.shoppers.clone(),
            max_requests: 20_000,
            duration: Duration::from_secs(60),
            pause: Duration::from_millis(5),
        },
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Step 2: trust NEW everywhere, still sign with OLD.
    let before = marks(&mut stack);
    secret.update(&[
        ("token-signing.pem", old_private.clone()),
        ("token-signing.pub.pem", new.public_pem.clone()),
        (PREVIOUS_PUBLIC_KEY, old_public.clone()),
        (OTHER_PUBLIC_KEY, new.public_pem.clone()),
    ]);
    wait_for_keys(&mut stack, &before, &new_kid).await;
    let jwks = rest.get("/.well-known/jwks.json", None).await.expect(200);
    let kids: Vec<String> = jwks.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("kid").to_owned())
        .collect();
    assert_eq!(kids, [old_kid.clone(), new_kid.clone()], "step 2: {jwks:?}");
    let password = format!("{}-pw", shopper.username);
    let still_old = rest.token(&shopper.username, &password).await;
    assert_eq!(
        kid_of(&still_old),
        old_kid,
        "the gateway signs with OLD in step 2"
    );

    // Step 3: sign with NEW, still trust OLD.
    let before = marks(&mut stack);
    secret.update(&[
        ("token-signing.pem", new.private_pem.clone()),
        ("token-signing.pub.pem", new.public_pem.clone()),
        (PREVIOUS_PUBLIC_KEY, old_public.clone()),
        (OTHER_PUBLIC_KEY, old_public.clone()),
    ]);
    let gateway_mark = before[3].1;
    stack
        .program(Kind::Gateway, 0)
        .wait_for_log(
            gateway_mark,
            &["token keys reloaded", &new_kid],
            Duration::from_secs(10),
        )
        .await;
    let renewed = rest.token(&shopper.username, &password).await;
    assert_eq!(
        kid_of(&renewed),
        new_kid,
        "the gateway signs with NEW in step 3"
    );
    // A NEW token on every service: the account, the payment service (the wallet) and the
    // warehouse (an administrator's stock read).
    let me = format!("/restful/accounts/{}", shopper.username);
    rest.get(&me, Some(&renewed)).await.expect(200);
    rest.balance_cents(&renewed).await;
    let admin = rest.admin_token().await;
    assert_eq!(kid_of(&admin), new_kid);
    rest.stock(&admin, shop.products[0]).await;
    // OLD tokens still work.
    rest.get(&me, Some(&shopper.token)).await.expect(200);
    rest.get(&me, Some(&still_old)).await.expect(200);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let events = traffic.stop().await;
    let failures: Vec<_> = events
        .iter()
        .filter(|event| event.outcome.is_failure())
        .collect();
    assert!(
        failures.is_empty(),
        "requests failed during the rotation ({}):\n{}",
        summary(&events),
        listing(failures)
    );
    assert!(
        events.len() > 50,
        "too little traffic: {}",
        summary(&events)
    );

    // Step 5, once OLD's tokens would have expired: OLD is trusted nowhere.
    let before = marks(&mut stack);
    secret.update(&[
        ("token-signing.pem", new.private_pem.clone()),
        ("token-signing.pub.pem", new.public_pem.clone()),
        (PREVIOUS_PUBLIC_KEY, new.public_pem.clone()),
        (OTHER_PUBLIC_KEY, new.public_pem.clone()),
    ]);
    stack
        .program(Kind::Gateway, 0)
        .wait_for_log(
            before[3].1,
            &["token keys reloaded"],
            Duration::from_secs(10),
        )
        .await;
    for &(kind, mark) in &before[..3] {
        stack
            .program(kind, 0)
            .wait_for_log(mark, &["token keys reloaded"], Duration::from_secs(10))
            .await;
    }
    rest.get(&me, Some(&shopper.token)).await.expect(401);
    rest.get(&me, Some(&renewed)).await.expect(200);
    stack.shut_down().await;
}
