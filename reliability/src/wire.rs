//! Hand-made bytes for the RPC ports, as an outside client (or attacker) would send them, and
//! what a test needs to judge the answer: a raw gRPC call whose body the test writes frame by
//! frame, a complete Thrift `Ping`, and a process's memory as the kernel sees it.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures::channel::mpsc;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A framed, strict-binary `Ping` (no arguments) to the account service.
pub const THRIFT_PING: &[u8] = &[
    0, 0, 0, 21, // frame length
    0x80, 0x01, 0x00, 0x01, // version 1, CALL
    0, 0, 0, 4, b'P', b'i', b'n', b'g', // method name
    0, 0, 0, 7, // sequence id
    12, 0, 1, // field 1: the (empty) request struct
    0, // its end
    0, // the arguments' end
];

/// Writes `bytes` on a new connection and leaves it open (as a client that has more to send, or
/// pretends to), then reads whatever comes back until the server closes the connection or
/// `wait` passes. Returns what came back and whether the server closed it.
pub async fn throw(address: SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    exchange(address, bytes, false, wait).await
}

/// As [`throw`], but the client closes its side after `bytes`: the server sees the end at once.
pub async fn throw_and_close(address: SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    exchange(address, bytes, true, wait).await
}

async fn exchange(
    address: SocketAddr,
    bytes: &[u8],
    close: bool,
    wait: Duration,
) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(address)
        .await
        .unwrap_or_else(|error| panic!("{address} refused a connection: {error}"));
    let _ = stream.write_all(bytes).await;
    if close {
        let _ = stream.shutdown().await;
    }
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    (received, closed)
}

/// One complete `Ping` over a fresh connection; panics unless it is answered SERVING in time.
pub async fn thrift_ping(address: SocketAddr) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(THRIFT_PING).await.expect("write");
    let mut reply = Vec::new();
    let mut chunk = [0u8; 256];
    while !String::from_utf8_lossy(&reply).contains("SERVING") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("a Ping answer in time")
            .expect("read");
        assert!(n > 0, "the account service closed the connection");
        reply.extend_from_slice(&chunk[..n]);
    }
}

/// A gRPC message prefix: not compressed, `length` bytes follow.
pub fn grpc_prefix(length: u32) -> Vec<u8> {
    let mut prefix = vec![0];
    prefix.extend_from_slice(&length.to_be_bytes());
    prefix
}

type FrameSender = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;
/// A request body the caller writes frame by frame.
type OpenBody = StreamBody<mpsc::Receiver<Result<Frame<Bytes>, Infallible>>>;

/// Calls `path` over HTTP/2 with a request body of `chunks`, which stays open (as a slow or
/// hostile client would leave it) until the answer comes or `wait` passes. Returns the
/// `grpc-status` of the answer (from its headers or trailers), or `None` without one in time.
pub async fn grpc_raw(
    address: SocketAddr,
    path: &str,
    chunks: Vec<Vec<u8>>,
    wait: Duration,
) -> Option<u32> {
    let client: Client<_, OpenBody> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let (mut sender, receiver): (FrameSender, _) = mpsc::channel(chunks.len() + 1);
    for chunk in chunks {
        let _ = sender.try_send(Ok(Frame::data(Bytes::from(chunk))));
    }
    let request = http::Request::post(format!("http://{address}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(receiver))
        .expect("request");
    let answer = async {
        let response = client.request(request).await.ok()?;
        if let Some(status) = grpc_status(response.headers()) {
            return Some(status);
        }
        let collected = response.into_body().collect().await.ok()?;
        collected.trailers().and_then(grpc_status)
    };
    let status = tokio::time::timeout(wait, answer).await.ok().flatten();
    drop(sender);
    status
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// A process's resident and virtual memory, in KiB (`VmRSS`, `VmSize` of `/proc/PID/status`).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmSize:"))
}
