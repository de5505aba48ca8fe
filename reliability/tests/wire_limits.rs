//! One packet must not take a service down. Against the real binaries, each of the messages an
//! outside client could hand-make is refused promptly, the server's resident and virtual memory
//! stay where they were (nothing is reserved for a length a peer merely declared), no task
//! panics, and the next client is served: a TTHeader message declaring 4 GiB, an unframed
//! method name declaring 2 GiB, a frame declaring 2 GiB, a string running past its frame, a
//! TTHeader header cut short, gRPC messages declaring 4 GiB, 6 MiB and 48 MiB, a client that
//! sends a few bytes and waits (on the gateway too), and an over-long display name sent straight to the account
//! service. Then the whole bookstore in one process, under an address-space limit, survives the
//! oversized declarations.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reliability::{
    programs::{Kind, launcher_binary},
    stack::{Stack, StackOptions},
    wire::{self, grpc_prefix, grpc_raw, memory_kib, thrift_ping},
};
use rpc_idl::account::{AccountServiceClientBuilder, CreateAccountRequest};

/// `RESOURCE_EXHAUSTED`.
const RESOURCE_EXHAUSTED: u32 = 8;
/// A refusal must come within this.
const PROMPTLY: Duration = Duration::from_secs(3);
/// What a server's memory may grow by across the whole barrage (connections, buffers within
/// the limits); a reservation for any declared length would be gigabytes.
const MEMORY_SLACK_KIB: u64 = 128 * 1024;

/// A TTHeader message whose length field declares 0xFFFFFFF0 bytes.
const TTHEADER_4_GIB: &[u8] = &[
    0xff, 0xff, 0xff, 0xf0, 0x10, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0,
];
/// Unframed strict binary whose method name declares 0x7FFFFFF0 bytes.
const UNFRAMED_2_GIB_NAME: &[u8] = &[0x80, 0x01, 0x00, 0x01, 0x7f, 0xff, 0xff, 0xf0, 0, 0];
/// A frame declaring 2 GiB.
const FRAME_2_GIB: &[u8] = &[0x7f, 0xff, 0xff, 0xf0, 0x80, 0x01, 0x00, 0x01];
/// A framed Ping whose method name declares 1 000 bytes inside a 21-byte frame.
const NAME_BEYOND_FRAME: &[u8] = &[
    0, 0, 0, 21, 0x80, 0x01, 0x00, 0x01, 0, 0, 0x03, 0xe8, b'P', b'i', b'n', b'g', 0, 0, 0, 7, 12,
    0, 1, 0, 0,
];
/// A TTHeader message whose header claims 64 words in a 14-byte message.
const TTHEADER_CUT_SHORT: &[u8] = &[
    0, 0, 0, 14, 0x10, 0x00, 0, 0, 0, 0, 0, 1, 0, 64, 0, 0, 0x01, 0xff,
];

/// Sends `bytes` and expects the server to answer (or not) and close the connection promptly.
async fn refused_promptly(address: SocketAddr, what: &str, bytes: &[u8]) {
    let started = Instant::now();
    let (_, closed) = wire::throw(address, bytes, PROMPTLY * 2).await;
    assert!(closed, "{what}: the connection was left open");
    assert!(
        started.elapsed() < PROMPTLY,
        "{what}: took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_messages_are_refused_promptly_and_cost_nothing() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let account = stack.accounts[0].address();
    let warehouse = stack.warehouses[0].address();
    let payment = stack.payments[0].address();
    let programs = [Kind::Account, Kind::Warehouse, Kind::Payment];
    let pids: Vec<u32> = programs
        .iter()
        .map(|&kind| stack.program(kind, 0).pid().expect("running"))
        .collect();
    let before: Vec<(u64, u64)> = pids.iter().map(|&pid| memory_kib(pid)).collect();

    // Thrift: each is refused with the connection closed, and the next caller is served.
    for (what, bytes) in [
        ("TTHeader declaring 4 GiB", TTHEADER_4_GIB),
        ("unframed name declaring 2 GiB", UNFRAMED_2_GIB_NAME),
        ("frame declaring 2 GiB", FRAME_2_GIB),
        ("name beyond its frame", NAME_BEYOND_FRAME),
        ("TTHeader header cut short", TTHEADER_CUT_SHORT),
    ] {
        refused_promptly(account, what, bytes).await;
        thrift_ping(account).await;
    }

    // Field limits hold for direct callers as they do over REST: a 200 000-character display
    // name is refused (and needs no token to try).
    let client = AccountServiceClientBuilder::new("account")
        .address(account)
        .rpc_timeout(Some(Duration::from_secs(5)))
        .build();
    let huge_name = CreateAccountRequest {
        username: "longname".into(),
        password: "secret".into(),
        name: "n".repeat(200_000).into(),
        ..Default::default()
    };
    let answer = client.create_account(huge_name).await.expect("an answer");
    assert!(
        matches!(answer, volo_thrift::MaybeException::Exception(_)),
        "an over-long name was stored"
    );

    // gRPC: declared sizes above the 4 MiB limit get RESOURCE_EXHAUSTED at once, with the
    // stream left open (nothing more is sent).
    for (address, path) in [
        (warehouse, "/warehouse.WarehouseService/GetProduct"),
        (payment, "/payment.PaymentService/GetWallet"),
    ] {
        for (what, chunks) in [
            ("4 GiB declared", vec![grpc_prefix(0xffff_fff0)]),
            (
                "a 6 MiB message",
                vec![grpc_prefix(6 << 20), vec![0; 64 << 10]],
            ),
            (
                "a 48 MiB message",
                vec![grpc_prefix(48 << 20), vec![0; 64 << 10]],
            ),
        ] {
            let started = Instant::now();
            let status = grpc_raw(address, path, chunks, PROMPTLY * 2).await;
            assert_eq!(status, Some(RESOURCE_EXHAUSTED), "{path}: {what}");
            assert!(
                started.elapsed() < PROMPTLY,
                "{path}: {what} took {:?}",
                started.elapsed()
            );
        }
    }

    // A client that sends a few bytes and waits is dropped within the handshake timeout (2 s
    // here), on every port.
    let gateway = stack.gateway.address();
    for (address, bytes) in [
        (account, &UNFRAMED_2_GIB_NAME[..6]),
        (warehouse, &b"PRI * HTTP/2.0"[..]),
        (payment, &b"PRI * HTTP/2.0"[..]),
        (gateway, &b"GET /restful/pro"[..]),
    ] {
        let started = Instant::now();
        let (_, closed) = wire::throw(address, bytes, Duration::from_secs(10)).await;
        assert!(closed, "{address}: a silent client was never dropped");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{address}: a silent client was dropped only after {:?}",
            started.elapsed()
        );
    }

    // Nothing was reserved, nothing panicked, every process serves.
    for ((&kind, &pid), (rss_before, size_before)) in programs.iter().zip(&pids).zip(before) {
        let (rss, size) = memory_kib(pid);
        assert!(
            rss < rss_before + MEMORY_SLACK_KIB && size < size_before + MEMORY_SLACK_KIB,
            "{kind:?}: memory grew from {rss_before}/{size_before} KiB to {rss}/{size} KiB \
             (resident/virtual)"
        );
        let program = stack.program(kind, 0);
        assert!(program.is_running(), "{kind:?} died");
        if let Some(line) = program.log.find_since(0, &["panicked"]) {
            panic!("{kind:?} panicked: {line}");
        }
    }
    thrift_ping(account).await;
    stack.rest.get("/restful/products", None).await.expect(200);
    stack.shut_down().await;
}

/// The launcher as a child process under `prlimit --as`, killed on drop.
struct LimitedLauncher {
    child: Child,
    addresses: Vec<(String, SocketAddr)>,
}

impl LimitedLauncher {
    fn start(data_dir: &std::path::Path, address_space_bytes: u64) -> Self {
        let mut child = Command::new("prlimit")
            .arg(format!("--as={address_space_bytes}"))
            .arg("--")
            .arg(launcher_binary())
            .args(["--log-level", "warn", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--account-listen", "127.0.0.1:0"])
            .args([
                "--warehouse-listen",
                "127.0.0.1:0",
                "--payment-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the launcher under prlimit");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The banner: one line per program, "  name  address  protocol".
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut words = line.split_whitespace();
                if let (Some(name), Some(address)) = (words.next(), words.next())
                    && let Ok(address) = address.parse::<SocketAddr>()
                {
                    let _ = tx.send((name.to_owned(), address));
                }
            }
        });
        let mut addresses = Vec::new();
        while addresses.len() < 4 {
            let entry = rx
                .recv_timeout(Duration::from_secs(90))
                .expect("the launcher printed its addresses");
            addresses.push(entry);
        }
        Self { child, addresses }
    }

    fn address(&self, program: &str) -> SocketAddr {
        self.addresses
            .iter()
            .find(|(name, _)| name == program)
            .map(|(_, address)| *address)
            .unwrap_or_else(|| panic!("no {program} in the banner"))
    }
}

impl Drop for LimitedLauncher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Under a 3 GiB address-space limit (where a single 4 GiB reservation fails and aborts the
/// process), the oversized declarations on every RPC port leave all four programs running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_survives_oversized_declarations_under_a_memory_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut launcher = LimitedLauncher::start(dir.path(), 3 << 30);
    let account = launcher.address("account");
    let warehouse = launcher.address("warehouse");
    let payment = launcher.address("payment");
    for bytes in [TTHEADER_4_GIB, UNFRAMED_2_GIB_NAME, FRAME_2_GIB] {
        wire::throw(account, bytes, PROMPTLY).await;
    }
    for (address, path) in [
        (warehouse, "/warehouse.WarehouseService/GetProduct"),
        (payment, "/payment.PaymentService/GetWallet"),
    ] {
        let status = grpc_raw(address, path, vec![grpc_prefix(0xffff_fff0)], PROMPTLY).await;
        assert_eq!(status, Some(RESOURCE_EXHAUSTED), "{path}");
    }
    assert!(
        launcher.child.try_wait().expect("wait").is_none(),
        "the launcher died"
    );
    thrift_ping(account).await;
    let products = gateway::testing::Rest::new(launcher.address("gateway"))
        .get("/restful/products", None)
        .await;
    products.expect(200);
}
