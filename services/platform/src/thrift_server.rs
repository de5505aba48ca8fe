//! The Thrift server's codec with the limits volo-thrift's own has not: Volo's default codec
//! (TTHeader, framed or unframed; binary or compact, detected per connection) behind a guard.
//!
//! volo-thrift reserves whatever a TTHeader length declares (4 GiB for a 16-byte message), reads
//! unframed strings into buffers of the declared size, panics on lengths beyond a frame, and has
//! no connection limit or timeouts (reported upstream, see SECURITY.md). Here, on every
//! connection:
//!
//! - at most `max_connections` connections are served; one more is closed at once;
//! - a message may be at most `max_message_bytes`: a TTHeader or frame length above it, or an
//!   unframed message that grows past it, is refused with a protocol error (and the connection
//!   closed) before the bytes are read;
//! - every message is walked by [`crate::thrift_wire`] before Volo decodes it, so malformed
//!   bytes are a protocol error, never a panic;
//! - once a message has begun, the rest of it must come within `handshake_timeout_ms`; a new
//!   connection must send its first message within that time too, and a connection that is
//!   quiet between calls for `idle_timeout_ms` is closed.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use pilota::thrift::{ProtocolExceptionKind, ThriftException, new_protocol_exception};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use volo::{net::ext::AsyncExt, util::buf_reader::BufReader};
use volo_thrift::{
    EntryMessage, ProtocolApacheCompact, ProtocolBinary, ThriftMessage,
    codec::{
        Decoder, MakeCodec,
        default::{
            DefaultMakeCodec, MakeZeroCopyCodec, ZeroCopyDecoder,
            framed::{HasFramed, MakeFramedCodec},
            thrift::MakeThriftCodec,
            ttheader::{HasTTHeader, MakeTTHeaderCodec},
        },
    },
    context::ThriftContext,
};

use crate::{
    configuration::ServerConfig,
    thrift_wire::{self, Verdict},
};

/// What a connection may cost.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_message: usize,
    message_timeout: Duration,
    idle_timeout: Duration,
}

/// Volo's default codecs: TTHeader over framed over binary or compact, as detected.
type VoloCodecs = MakeTTHeaderCodec<MakeFramedCodec<MakeThriftCodec>>;

/// The codec to give `volo_thrift::server::Server::make_codec`.
#[derive(Clone)]
pub struct LimitedCodec {
    inner: DefaultMakeCodec<GuardedCodecs>,
    connections: Arc<Semaphore>,
    limits: Limits,
}

impl LimitedCodec {
    pub fn new(config: &ServerConfig) -> Self {
        let limits = Limits {
            max_message: config.max_message_bytes as usize,
            message_timeout: Duration::from_millis(config.handshake_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms.max(1)),
        };
        let max_frame = i32::try_from(config.max_message_bytes).unwrap_or(i32::MAX);
        let volo = MakeTTHeaderCodec::new(
            MakeFramedCodec::new(MakeThriftCodec::new()).with_max_frame_size(max_frame),
        );
        Self {
            inner: DefaultMakeCodec::new(GuardedCodecs { volo, limits }),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            limits,
        }
    }
}

impl<R, W> MakeCodec<R, W> for LimitedCodec
where
    R: AsyncRead + AsyncExt + Unpin + Send + Sync + 'static,
    W: AsyncWrite + AsyncExt + Unpin + Send + Sync + 'static,
{
    type Encoder = <DefaultMakeCodec<GuardedCodecs> as MakeCodec<R, W>>::Encoder;
    type Decoder = LimitedDecoder<<DefaultMakeCodec<GuardedCodecs> as MakeCodec<R, W>>::Decoder>;

    fn make_codec(&self, reader: R, writer: W) -> (Self::Encoder, Self::Decoder) {
        let (encoder, decoder) = self.inner.make_codec(reader, writer);
        let permit = self.connections.clone().try_acquire_owned().ok();
        if permit.is_none() {
            tracing::warn!("Thrift connection refused: too many open");
        }
        let decoder = LimitedDecoder {
            inner: decoder,
            permit,
            first: true,
            limits: self.limits,
        };
        (encoder, decoder)
    }
}

/// Ends the connection (as if the client had closed it) when it is over the connection limit
/// or says nothing for too long; holds the connection's place until it ends.
pub struct LimitedDecoder<D> {
    inner: D,
    permit: Option<OwnedSemaphorePermit>,
    first: bool,
    limits: Limits,
}

impl<D: Decoder> Decoder for LimitedDecoder<D> {
    async fn decode<Msg: Send + EntryMessage, Cx: ThriftContext>(
        &mut self,
        cx: &mut Cx,
    ) -> Result<Option<ThriftMessage<Msg>>, ThriftException> {
        if self.permit.is_none() {
            return Ok(None);
        }
        // The first message must start soon; between calls a connection may rest longer. Either
        // way the message itself must then arrive within its own timeout (see the guard).
        let wait = if std::mem::take(&mut self.first) {
            self.limits.message_timeout
        } else {
            self.limits.idle_timeout
        } + self.limits.message_timeout;
        match tokio::time::timeout(wait, self.inner.decode(cx)).await {
            Ok(decoded) => decoded,
            Err(_) => {
                tracing::debug!("closing a quiet Thrift connection");
                Ok(None)
            }
        }
    }

    fn is_closed(&self) -> impl Future<Output = bool> + Send {
        self.inner.is_closed()
    }
}

/// Volo's zero-copy codecs with every message checked first.
#[derive(Clone)]
pub struct GuardedCodecs {
    volo: VoloCodecs,
    limits: Limits,
}

impl MakeZeroCopyCodec for GuardedCodecs {
    type Encoder = <VoloCodecs as MakeZeroCopyCodec>::Encoder;
    type Decoder = GuardedDecoder<<VoloCodecs as MakeZeroCopyCodec>::Decoder>;

    fn make_codec(&self) -> (Self::Encoder, Self::Decoder) {
        let (encoder, decoder) = self.volo.make_codec();
        let decoder = GuardedDecoder {
            volo: decoder,
            limits: self.limits,
            head: [0; 6],
        };
        (encoder, decoder)
    }
}

/// Reads one whole message within the limits, checks it, and only then lets Volo decode it
/// from memory.
pub struct GuardedDecoder<D> {
    volo: D,
    limits: Limits,
    /// How the message being read is framed, so a refusal goes back the same way.
    head: [u8; 6],
}

impl<D: ZeroCopyDecoder> GuardedDecoder<D> {
    async fn read_message<R: AsyncRead + Unpin + Send + Sync>(
        &mut self,
        reader: &mut BufReader<R>,
    ) -> Result<Bytes, ThriftException> {
        let max = self.limits.max_message;
        let head = reader.fill_buf_at_least(6).await?;
        self.head.copy_from_slice(&head[..6]);
        if thrift_wire::is_ttheader(head) || thrift_wire::is_framed(head) {
            let declared = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if declared > max {
                return Err(too_large(declared, max));
            }
            // The length is within the cap: a buffer of it is what the cap allows.
            let mut message = vec![0; 4 + declared];
            reader.read_exact(&mut message).await?;
            thrift_wire::check_prefixed(&message, max).map_err(refusal)?;
            return Ok(Bytes::from(message));
        }
        // Unframed: the message's own lengths say where it ends; read until they do.
        loop {
            match thrift_wire::check_message(reader.buffer()) {
                Ok(length) => {
                    let message = Bytes::copy_from_slice(&reader.buffer()[..length]);
                    AsyncBufReadExt::consume(reader, length);
                    return Ok(message);
                }
                Err(Verdict::NeedMore(needed)) if needed > max => {
                    return Err(too_large(needed, max));
                }
                Err(Verdict::NeedMore(needed)) => {
                    reader.fill_buf_at_least(needed).await?;
                }
                Err(verdict) => return Err(refusal(verdict)),
            }
        }
    }
}

impl<D: ZeroCopyDecoder> ZeroCopyDecoder for GuardedDecoder<D> {
    fn decode<Msg: Send + EntryMessage, Cx: ThriftContext>(
        &mut self,
        cx: &mut Cx,
        bytes: &mut Bytes,
    ) -> Result<Option<ThriftMessage<Msg>>, ThriftException> {
        self.volo.decode(cx, bytes)
    }

    async fn decode_async<
        Msg: Send + EntryMessage,
        Cx: ThriftContext,
        R: AsyncRead + Unpin + Send + Sync,
    >(
        &mut self,
        cx: &mut Cx,
        reader: &mut BufReader<R>,
    ) -> Result<Option<ThriftMessage<Msg>>, ThriftException> {
        let limit = self.limits.message_timeout;
        self.head = [0; 6];
        let mut message = match tokio::time::timeout(limit, self.read_message(reader)).await {
            Ok(Ok(message)) => message,
            Ok(Err(refused)) => {
                answer_in_kind(cx, &self.head);
                return Err(refused);
            }
            Err(_) => {
                let late = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "a message did not arrive in time",
                );
                return Err(late.into());
            }
        };
        self.volo.decode(cx, &mut message)
    }
}

/// Marks the context with the framing and protocol the refused message used (as Volo's decoders
/// would have), so the refusal is written back in a form the client can read.
fn answer_in_kind<Cx: ThriftContext>(cx: &mut Cx, head: &[u8; 6]) {
    let mut payload = &head[..];
    if thrift_wire::is_ttheader(head) {
        cx.extensions_mut().insert(HasTTHeader);
        return;
    }
    if thrift_wire::is_framed(head) {
        cx.extensions_mut().insert(HasFramed);
        payload = &head[4..];
    }
    match payload.first() {
        Some(0x82) => cx.extensions_mut().insert(ProtocolApacheCompact),
        _ => cx.extensions_mut().insert(ProtocolBinary),
    };
}

fn too_large(declared: usize, max: usize) -> ThriftException {
    new_protocol_exception(
        ProtocolExceptionKind::SizeLimit,
        format!("a message of {declared} bytes is larger than this server's limit of {max}"),
    )
}

fn refusal(verdict: Verdict) -> ThriftException {
    let why = match verdict {
        Verdict::Refused(why) => why,
        Verdict::NeedMore(_) => "the message is cut short".to_owned(),
    };
    new_protocol_exception(ProtocolExceptionKind::InvalidData, why)
}
