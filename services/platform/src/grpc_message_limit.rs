//! A request body that refuses a gRPC message larger than the server's limit before any of it
//! is buffered.
//!
//! A gRPC message travels as a 5-byte prefix (a compression flag and a big-endian `u32` length)
//! followed by the message. volo-grpc reserves the declared length as soon as it reads a prefix
//! and has no maximum (reported upstream, see docs/SECURITY.md): a 5-byte prefix declaring
//! 4 GiB made the server reserve 4 GiB. This body sits between hyper and volo-grpc, follows the
//! prefixes as the data frames pass, and answers `RESOURCE_EXHAUSTED` instead of passing on a
//! prefix that declares more than the limit. It buffers nothing: frames are passed on as they
//! come, and it only counts.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use volo_grpc::Status;

/// Where in the stream of messages the next byte falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Inside a prefix: `seen` of its 5 bytes so far, the length's bytes gathered in `length`.
    Prefix { seen: u8, length: u32 },
    /// Inside a message with this many bytes to go.
    Message { left: u64 },
}

/// A message declared larger than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub declared: u32,
    pub limit: u32,
}

impl From<TooLarge> for Status {
    fn from(too_large: TooLarge) -> Self {
        Status::resource_exhausted(format!(
            "a message of {} bytes is larger than this server's limit of {} bytes",
            too_large.declared, too_large.limit
        ))
    }
}

/// Follows the 5-byte prefixes of a gRPC message stream.
#[derive(Debug, Clone)]
pub struct MessageLimit {
    max_bytes: u32,
    position: Position,
}

impl MessageLimit {
    pub fn new(max_bytes: u32) -> Self {
        Self {
            max_bytes,
            position: Position::Prefix { seen: 0, length: 0 },
        }
    }

    /// Reads `chunk` as the next bytes of the stream; an error names the first message that is
    /// too large.
    pub fn check(&mut self, mut chunk: &[u8]) -> Result<(), TooLarge> {
        while !chunk.is_empty() {
            match &mut self.position {
                Position::Message { left } => {
                    let step = (*left).min(chunk.len() as u64);
                    *left -= step;
                    chunk = &chunk[step as usize..];
                    if *left == 0 {
                        self.position = Position::Prefix { seen: 0, length: 0 };
                    }
                }
                Position::Prefix { seen, length } => {
                    // Byte 0 is the compression flag; bytes 1–4 the length.
                    if *seen > 0 {
                        *length = (*length << 8) | u32::from(chunk[0]);
                    }
                    *seen += 1;
                    chunk = &chunk[1..];
                    if *seen == 5 {
                        let declared = *length;
                        if declared > self.max_bytes {
                            return Err(TooLarge {
                                declared,
                                limit: self.max_bytes,
                            });
                        }
                        self.position = if declared == 0 {
                            Position::Prefix { seen: 0, length: 0 }
                        } else {
                            Position::Message {
                                left: u64::from(declared),
                            }
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

/// `B` with its gRPC messages held to a [`MessageLimit`].
pub struct LimitedBody<B> {
    inner: B,
    limit: MessageLimit,
    refused: bool,
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, max_bytes: u32) -> Self {
        Self {
            inner,
            limit: MessageLimit::new(max_bytes),
            refused: false,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.refused {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(error)) => return Poll::Ready(Some(Err(Status::from_error(error.into())))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref()
            && let Err(too_large) = self.limit.check(data)
        {
            self.refused = true;
            return Poll::Ready(Some(Err(too_large.into())));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(length: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes
    }

    #[test]
    fn messages_within_the_limit_pass_in_any_split() {
        let mut stream = prefix(3);
        stream.extend_from_slice(b"abc");
        stream.extend(prefix(0));
        stream.extend(prefix(10));
        stream.extend_from_slice(&[7; 10]);
        for split in 1..stream.len() {
            let mut limit = MessageLimit::new(10);
            for chunk in stream.chunks(split) {
                limit.check(chunk).expect("within the limit");
            }
            assert_eq!(limit.position, Position::Prefix { seen: 0, length: 0 });
        }
    }

    #[test]
    fn a_prefix_declaring_too_much_is_refused_even_split_across_frames() {
        let mut stream = prefix(2);
        stream.extend_from_slice(b"ok");
        stream.extend(prefix(0xFFFF_FFF0));
        for split in 1..stream.len() {
            let mut limit = MessageLimit::new(4 << 20);
            let refused = stream
                .chunks(split)
                .map(|chunk| limit.check(chunk))
                .find_map(Result::err)
                .expect("refused");
            assert_eq!(refused.declared, 0xFFFF_FFF0);
            assert_eq!(
                Status::from(refused).code(),
                volo_grpc::Code::ResourceExhausted
            );
        }
    }
}
