//! Stock Apache Thrift clients speak plain framed or buffered transports with the binary or
//! compact protocol, and no TTHeader. The server keeps Volo's default codec, which detects each
//! of these, so such clients can call it. Here a raw TCP socket plays that client.

use std::{net::SocketAddr, time::Duration};

use pilota::{
    Bytes, BytesMut,
    thrift::{
        Message, TInputProtocol, TMessageIdentifier, TMessageType, TOutputProtocol, TType,
        binary::TBinaryProtocol,
        compact::{TCompactInputProtocol, TCompactOutputProtocol},
    },
};
use rpc_idl::account::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::*;

crate::on_both_backends!(
    a_hand_encoded_framed_binary_ping_gets_the_exact_reply,
    every_stock_transport_and_protocol_can_ping,
    a_plain_framed_binary_client_can_register_and_gets_declared_exceptions,
    strings_that_are_not_utf8_are_refused_or_replaced,
    malformed_messages_do_not_bring_the_server_down,
);

const DEADLINE: Duration = Duration::from_secs(5);

/// The longest reply these tests expect; anything longer means the reply was misread.
const MAX_REPLY: usize = 64 * 1024;

async fn connect(address: SocketAddr) -> TcpStream {
    tokio::time::timeout(DEADLINE, TcpStream::connect(address))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads until `complete` recognises a whole reply, within the deadline.
async fn read_reply(stream: &mut TcpStream, complete: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut received = BytesMut::new();
    tokio::time::timeout(DEADLINE, async {
        while !complete(&received) {
            assert!(received.len() < MAX_REPLY, "reply too long");
            let read = stream.read_buf(&mut received).await.expect("read");
            assert!(read > 0, "the server closed the connection");
        }
    })
    .await
    .expect("a reply in time");
    received.to_vec()
}

/// A framed message is complete when the 4-byte big-endian length's worth of bytes is in.
fn whole_frame(bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && bytes.len() - 4 >= u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
}

async fn a_hand_encoded_framed_binary_ping_gets_the_exact_reply(server: TestServer) {
    #[rustfmt::skip]
    let call: &[u8] = &[
        0, 0, 0, 21,                    // frame length
        0x80, 0x01, 0x00, 0x01,         // strict binary protocol, version 1, CALL
        0, 0, 0, 4, b'P', b'i', b'n', b'g',
        0, 0, 0, 7,                     // sequence id
        12, 0, 1,                       // field 1 (req): struct
        0,                              //   PingRequest {} ends
        0,                              // arguments end
    ];
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 35,
        0x80, 0x01, 0x00, 0x02,         // REPLY
        0, 0, 0, 4, b'P', b'i', b'n', b'g',
        0, 0, 0, 7,                     // the same sequence id
        12, 0, 0,                       // field 0 (success): struct
        11, 0, 1,                       //   field 1 (status): string
        0, 0, 0, 7, b'S', b'E', b'R', b'V', b'I', b'N', b'G',
        0,                              //   PingResponse ends
        0,                              // result ends
    ];
    let mut stream = connect(server.address).await;
    stream.write_all(call).await.expect("write");
    let reply = read_reply(&mut stream, whole_frame).await;
    assert_eq!(reply, expected);
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Framed,
    Buffered,
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Binary,
    Compact,
}

/// One call as a plain Apache Thrift client makes it: encode, send, read, decode.
async fn plain_call<A: Message, R: Message>(
    address: SocketAddr,
    transport: Transport,
    protocol: Protocol,
    method: &'static str,
    args: &A,
) -> R {
    let call = TMessageIdentifier::new(method.into(), TMessageType::Call, 42);
    let mut body = BytesMut::new();
    match protocol {
        Protocol::Binary => write_message(&mut TBinaryProtocol::new(&mut body, false), &call, args),
        Protocol::Compact => write_message(
            &mut TCompactOutputProtocol::new(&mut body, false),
            &call,
            args,
        ),
    }
    exchange(address, transport, protocol, method, &body).await
}

/// Sends an encoded call (message header and arguments) and decodes the reply to it.
async fn exchange<R: Message>(
    address: SocketAddr,
    transport: Transport,
    protocol: Protocol,
    method: &'static str,
    body: &[u8],
) -> R {
    let mut wire = BytesMut::new();
    if let Transport::Framed = transport {
        wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
    }
    wire.extend_from_slice(body);

    let mut stream = connect(address).await;
    stream.write_all(&wire).await.expect("write");
    let reply = match transport {
        Transport::Framed => {
            let mut frame = read_reply(&mut stream, whole_frame).await;
            frame.drain(..4);
            frame
        }
        // An unframed reply is complete when it decodes.
        Transport::Buffered => {
            read_reply(&mut stream, |bytes| decode::<R>(protocol, bytes).is_ok()).await
        }
    };
    assert!(
        !String::from_utf8_lossy(&reply).contains("$argon2"),
        "the reply carries a password hash"
    );
    let (identifier, result) = decode::<R>(protocol, &reply).expect("decode the reply");
    assert_eq!(identifier.name, method);
    assert_eq!(identifier.message_type, TMessageType::Reply);
    assert_eq!(identifier.sequence_number, 42);
    result
}

fn write_message<P: TOutputProtocol, A: Message>(
    protocol: &mut P,
    identifier: &TMessageIdentifier,
    args: &A,
) {
    protocol.write_message_begin(identifier).expect("encode");
    args.encode(protocol).expect("encode");
    protocol.write_message_end().expect("encode");
}

fn decode<R: Message>(
    protocol: Protocol,
    bytes: &[u8],
) -> Result<(TMessageIdentifier, R), pilota::thrift::ThriftException> {
    let mut bytes = Bytes::copy_from_slice(bytes);
    fn read<P: TInputProtocol, R: Message>(
        p: &mut P,
    ) -> Result<(TMessageIdentifier, R), pilota::thrift::ThriftException> {
        let identifier = p.read_message_begin()?;
        let result = R::decode(p)?;
        p.read_message_end()?;
        Ok((identifier, result))
    }
    match protocol {
        Protocol::Binary => read(&mut TBinaryProtocol::new(&mut bytes, false)),
        Protocol::Compact => read(&mut TCompactInputProtocol::new(&mut bytes)),
    }
}

async fn every_stock_transport_and_protocol_can_ping(server: TestServer) {
    for transport in [Transport::Framed, Transport::Buffered] {
        for protocol in [Protocol::Binary, Protocol::Compact] {
            let args = AccountServicePingArgsSend {
                req: PingRequest {},
            };
            let result: AccountServicePingResultRecv =
                plain_call(server.address, transport, protocol, "Ping", &args).await;
            let AccountServicePingResultRecv::Ok(response) = result;
            assert_eq!(response.status, "SERVING", "{transport:?} {protocol:?}");
        }
    }
}

async fn a_plain_framed_binary_client_can_register_and_gets_declared_exceptions(
    server: TestServer,
) {
    let register = |username: &str| AccountServiceCreateAccountArgsSend {
        req: registration(username),
    };
    let (framed, binary) = (Transport::Framed, Protocol::Binary);

    let created: AccountServiceCreateAccountResultRecv = plain_call(
        server.address,
        framed,
        binary,
        "CreateAccount",
        &register("Plain"),
    )
    .await;
    let AccountServiceCreateAccountResultRecv::Ok(created) = created else {
        panic!("expected an account, got {created:?}");
    };
    assert_eq!(created.username, "plain");
    assert_eq!(server.current(created.id).await, created);

    let again: AccountServiceCreateAccountResultRecv = plain_call(
        server.address,
        framed,
        binary,
        "CreateAccount",
        &register("plain"),
    )
    .await;
    let AccountServiceCreateAccountResultRecv::Conflict(conflict) = again else {
        panic!("expected a Conflict, got {again:?}");
    };
    assert_eq!(conflict.field, "username");

    // Without TTHeader there is no way to send a token: a protected method says so.
    let args = AccountServiceGetAccountByUsernameArgsSend {
        req: GetAccountByUsernameRequest {
            username: "plain".into(),
            token: None,
        },
    };
    let denied: AccountServiceGetAccountByUsernameResultRecv = plain_call(
        server.address,
        framed,
        binary,
        "GetAccountByUsername",
        &args,
    )
    .await;
    assert!(
        matches!(
            denied,
            AccountServiceGetAccountByUsernameResultRecv::Unauthenticated(_)
        ),
        "{denied:?}"
    );

    // The compact protocol works for a write too.
    let compact: AccountServiceCreateAccountResultRecv = plain_call(
        server.address,
        framed,
        Protocol::Compact,
        "CreateAccount",
        &register("compact"),
    )
    .await;
    assert!(
        matches!(compact, AccountServiceCreateAccountResultRecv::Ok(ref a) if a.username == "compact"),
        "{compact:?}"
    );
}

/// A CreateAccount call whose username and name are arbitrary bytes, which no well-behaved
/// client can send as a Thrift string but a raw socket can.
fn create_call_with_raw_text(username: &[u8], name: &[u8]) -> BytesMut {
    let mut body = BytesMut::new();
    let mut p = TBinaryProtocol::new(&mut body, false);
    let call = TMessageIdentifier::new("CreateAccount".into(), TMessageType::Call, 42);
    p.write_message_begin(&call).expect("encode");
    p.write_field_begin(TType::Struct, 1).expect("encode"); // args.req
    for (id, value) in [(1, username), (2, PASSWORD.as_bytes()), (3, name)] {
        p.write_field_begin(TType::Binary, id).expect("encode");
        p.write_bytes(Bytes::copy_from_slice(value))
            .expect("encode");
        p.write_field_end().expect("encode");
    }
    p.write_field_stop().expect("encode"); // CreateAccountRequest ends
    p.write_field_end().expect("encode");
    p.write_field_stop().expect("encode"); // arguments end
    p.write_message_end().expect("encode");
    body
}

async fn strings_that_are_not_utf8_are_refused_or_replaced(server: TestServer) {
    let (framed, binary) = (Transport::Framed, Protocol::Binary);
    let call = create_call_with_raw_text(b"bad\xff\xfename", b"Name");
    let refused: AccountServiceCreateAccountResultRecv =
        exchange(server.address, framed, binary, "CreateAccount", &call).await;
    let AccountServiceCreateAccountResultRecv::InvalidInput(invalid) = refused else {
        panic!("expected InvalidInput, got {refused:?}");
    };
    assert_eq!(invalid.errors[0].field, "username");

    // Free text is kept, with the invalid bytes replaced.
    let call = create_call_with_raw_text(b"utf8", b"N\xc3\x28me");
    let created: AccountServiceCreateAccountResultRecv =
        exchange(server.address, framed, binary, "CreateAccount", &call).await;
    let AccountServiceCreateAccountResultRecv::Ok(created) = created else {
        panic!("expected an account, got {created:?}");
    };
    assert_eq!(created.name, "N\u{FFFD}(me");
    assert_eq!(server.current(created.id).await, created);
}

async fn malformed_messages_do_not_bring_the_server_down(server: TestServer) {
    #[rustfmt::skip]
    let attacks: [&[u8]; 4] = [
        // A string longer than the frame that holds it.
        &[0, 0, 0, 12, 0x80, 1, 0, 1, 0x7f, 0xff, 0xff, 0xff, b'P', b'i', b'n', b'g'],
        // A frame claiming 2 GiB.
        &[0x7f, 0xff, 0xff, 0xff, 0x80, 1, 0, 1],
        // An unknown method.
        &[0, 0, 0, 17, 0x80, 1, 0, 1, 0, 0, 0, 4, b'N', b'o', b'p', b'e', 0, 0, 0, 1, 0],
        // Noise.
        b"GET / HTTP/1.1\r\nHost: account\r\n\r\n",
    ];
    // The first one made the generated decoder panic (pilota 0.13 slices the length it read
    // without checking it) until the server's codec walked every message first; now it is a
    // protocol error (`platform::thrift_server`). Either way the server keeps serving others.
    for attack in attacks {
        let mut stream = connect(server.address).await;
        stream.write_all(attack).await.expect("write");
        let _ = stream.shutdown().await;
        // Whatever the server answers (an exception, or closing the connection), it answers
        // soon and keeps serving others.
        let mut sink = Vec::new();
        let drained = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut sink)).await;
        assert!(drained.is_ok(), "no answer to {attack:?}");

        let args = AccountServicePingArgsSend {
            req: PingRequest {},
        };
        let AccountServicePingResultRecv::Ok(pong) = plain_call(
            server.address,
            Transport::Framed,
            Protocol::Binary,
            "Ping",
            &args,
        )
        .await;
        assert_eq!(pong.status, "SERVING", "after {attack:?}");
    }
}
