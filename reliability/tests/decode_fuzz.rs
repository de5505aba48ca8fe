//! Property-based fuzzing of every server's decode path, bounded in cases so it runs in CI:
//! random bytes, and valid messages mutated (bytes flipped, cut short, spliced, lengths
//! enlarged), fed to
//!
//! - the account server's Thrift codec exactly as a connection uses it (`LimitedCodec` over a
//!   loopback socket, decoding `AccountServiceRequestRecv`): every input is decoded or refused
//!   with an error, never a panic, and the decoder never waits for bytes that cannot come;
//! - the protobuf decoding of the warehouse's and the payment service's requests (what
//!   volo-grpc runs on a message once `grpc_message_limit` has let its size through): an error,
//!   never a panic.
//!
//! `PROPTEST_CASES` raises the count for a longer run.

use std::time::Duration;

use platform::{configuration::ServerConfig, thrift_server::LimitedCodec};
use proptest::prelude::*;
use rpc_idl::{
    account::AccountServiceRequestRecv,
    payment::SettleRequest,
    warehouse::{CreateProductRequest, GetProductRequest, ReserveStockRequest},
};
use tokio::{io::AsyncWriteExt, net::TcpListener};
use volo_thrift::{
    codec::{Decoder, MakeCodec},
    context::ServerContext,
};

/// Valid Thrift requests in each framing and protocol Volo's server detects.
fn thrift_seeds() -> Vec<Vec<u8>> {
    // Strict binary CALL of `CreateAccount` with a request struct of three strings.
    let mut call = vec![0x80, 0x01, 0x00, 0x01];
    let name = b"CreateAccount";
    call.extend((name.len() as u32).to_be_bytes());
    call.extend(name);
    call.extend(1u32.to_be_bytes());
    call.extend([12, 0, 1]); // field 1: the request struct
    for (id, text) in [(1u8, &b"alice"[..]), (2, b"secret"), (3, b"Alice")] {
        call.extend([11, 0, id]);
        call.extend((text.len() as u32).to_be_bytes());
        call.extend(text);
    }
    call.extend([0, 0]);
    let framed = [&(call.len() as u32).to_be_bytes()[..], &call].concat();
    // TTHeader around the binary call: protocol, no transforms, one key-value, padding.
    let header = [0u8, 0, 0x01, 0, 1, 0, 1, b'k', 0, 1, b'v', 0, 0, 0, 0, 0];
    let mut ttheader = vec![0x10, 0x00, 0, 0, 0, 0, 0, 1];
    ttheader.extend(((header.len() / 4) as u16).to_be_bytes());
    ttheader.extend(header);
    ttheader.extend(&call);
    let ttheader = [&(ttheader.len() as u32).to_be_bytes()[..], &ttheader].concat();
    // Compact CALL of `Ping`, sequence 1, with an empty request struct.
    let compact = vec![
        0x82, 0x21, 0x01, 0x04, b'P', b'i', b'n', b'g', 0x1c, 0x00, 0x00,
    ];
    let compact_framed = [&(compact.len() as u32).to_be_bytes()[..], &compact].concat();
    vec![call, framed, ttheader, compact, compact_framed]
}

/// Valid protobuf requests of the gRPC services.
fn protobuf_seeds() -> Vec<Vec<u8>> {
    vec![
        vec![0x08, 0x2a],                                           // GetProduct { id: 42 }
        vec![0x0a, 1, b'p', 0x12, 4, 0x08, 1, 0x10, 2],             // ReserveStock
        vec![0x0a, 9, 0x0a, 1, b'T', 0x10, 0x64, 0x3a, 2, 0x0a, 0], // CreateProduct
        vec![0x0a, 4, 0x08, 1, 0x10, 1, 0x12, 3, 0x0a, 1, b'A'],    // Settle
    ]
}

/// One change to a valid message.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Cut {
        at: usize,
    },
    Splice {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Overwrite four bytes with a large big-endian number (a declared length, often).
    Enlarge {
        at: usize,
        value: u32,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
        (any::<usize>(), any::<u32>()).prop_map(|(at, value)| Mutation::Enlarge { at, value }),
    ]
}

fn mutate(mut message: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for change in mutations {
        if message.is_empty() {
            break;
        }
        let len = message.len();
        match change {
            Mutation::Flip { at, bit } => message[at % len] ^= 1 << bit,
            Mutation::Cut { at } => message.truncate(at % len),
            Mutation::Splice { at, bytes } => {
                let at = at % len;
                message.splice(at..at, bytes.iter().copied());
            }
            Mutation::Enlarge { at, value } => {
                let at = at % len;
                for (i, byte) in value.to_be_bytes().into_iter().enumerate() {
                    if let Some(slot) = message.get_mut(at + i) {
                        *slot = byte;
                    }
                }
            }
        }
    }
    message
}

/// Inputs: a seed with mutations, or random bytes.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    prop_oneof![
        3 => (0..count, proptest::collection::vec(mutation(), 1..4))
            .prop_map(move |(seed, changes)| mutate(seeds[seed].clone(), &changes)),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

/// Decodes one request as the server does: inside the task-local metadata Volo's server sets up
/// for every connection (the TTHeader decoder writes into it).
async fn decode_one<D: Decoder>(
    decoder: &mut D,
) -> Result<
    Option<volo_thrift::ThriftMessage<AccountServiceRequestRecv>>,
    pilota::thrift::ThriftException,
> {
    let mut cx = ServerContext::default();
    let metainfo = std::cell::RefCell::new(metainfo::MetaInfo::default());
    metainfo::METAINFO
        .scope(
            metainfo,
            decoder.decode::<AccountServiceRequestRecv, _>(&mut cx),
        )
        .await
}

/// Feeds `bytes` to the account server's codec over a loopback connection (the client then
/// closes its side) and decodes until the connection's end; panics if the decoder does.
async fn decode_thrift(bytes: Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let client = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
        // Keep the socket until the server is done with it.
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await;
    });
    let (stream, _) = listener.accept().await.expect("accept");
    let (reader, writer) = volo::net::conn::Conn::from(stream).stream.into_split();
    let codec = LimitedCodec::new(&ServerConfig::default());
    let (encoder, mut decoder) = codec.make_codec(reader, writer);
    let decoding = async {
        // A valid message may be followed by more; read until the end or a refusal.
        for _ in 0..4 {
            match decode_one(&mut decoder).await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), decoding)
        .await
        .expect("the decoder answered once the client had closed");
    // Closing both halves lets the client see the end of the connection.
    drop((encoder, decoder));
    let _ = client.await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_thrift_decode_path_never_panics(bytes in input(thrift_seeds())) {
        runtime().block_on(decode_thrift(bytes));
    }

    #[test]
    fn the_protobuf_decode_paths_never_panic(bytes in input(protobuf_seeds())) {
        use pilota::pb::Message;
        let bytes = bytes::Bytes::from(bytes);
        let _ = GetProductRequest::decode(bytes.clone());
        let _ = ReserveStockRequest::decode(bytes.clone());
        let _ = CreateProductRequest::decode(bytes.clone());
        let _ = SettleRequest::decode(bytes);
    }
}

/// The seeds themselves decode: the fuzzing starts from messages the server accepts.
#[test]
fn every_thrift_seed_is_a_message_the_server_decodes() {
    let runtime = runtime();
    for seed in thrift_seeds() {
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let bytes = seed.clone();
            let client = tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(address)
                    .await
                    .expect("connect");
                stream.write_all(&bytes).await.expect("write");
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await;
            });
            let (stream, _) = listener.accept().await.expect("accept");
            let (reader, writer) = volo::net::conn::Conn::from(stream).stream.into_split();
            let (_encoder, mut decoder) =
                LimitedCodec::new(&ServerConfig::default()).make_codec(reader, writer);
            let decoded = decode_one(&mut decoder).await;
            assert!(
                matches!(decoded, Ok(Some(_))),
                "seed {seed:02x?}: {decoded:?}"
            );
            drop(decoder);
            client.abort();
        });
    }
}
