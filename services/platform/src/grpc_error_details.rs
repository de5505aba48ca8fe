//! Per-field validation errors on the gRPC wire, in Google's rich error model.
//!
//! A refused request answers `INVALID_ARGUMENT` with the usual `field: problem; …` message and,
//! in the `grpc-status-details-bin` trailer, a `google.rpc.Status` whose details hold one
//! `google.rpc.BadRequest` listing every field violation. Any gRPC client can read it (grpcio's
//! and tonic's rich-status helpers, `grpcurl`), and the gateway builds its REST error body from
//! it instead of re-checking the request. The two messages are written out here (the same field
//! numbers as `google/rpc/status.proto` and `google/rpc/error_details.proto`) rather than
//! generated, since nothing else of those files is used.

use bytes::Bytes;
use prost::Message;
use volo_grpc::{Code, Status};

use crate::validation::{FieldError, FieldErrors};

/// The type URL of `google.rpc.BadRequest` inside a `google.protobuf.Any`.
const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";

/// Field violations read from a peer's trailer are capped: the message is the peer's to size.
const MAX_VIOLATIONS: usize = 256;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.BadRequest`.
#[derive(Clone, PartialEq, Message)]
struct BadRequest {
    #[prost(message, repeated, tag = "1")]
    field_violations: Vec<FieldViolation>,
}

/// `google.rpc.BadRequest.FieldViolation`.
#[derive(Clone, PartialEq, Message)]
struct FieldViolation {
    #[prost(string, tag = "1")]
    field: String,
    #[prost(string, tag = "2")]
    description: String,
}

/// `INVALID_ARGUMENT` carrying `errors` as text and as a `BadRequest` detail.
pub fn invalid_argument(errors: &FieldErrors) -> Status {
    let message = errors.to_string();
    let bad_request = BadRequest {
        field_violations: errors
            .iter()
            .map(|error| FieldViolation {
                field: error.field.clone(),
                description: error.message.clone(),
            })
            .collect(),
    };
    let status = RpcStatus {
        code: Code::InvalidArgument as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: BAD_REQUEST_TYPE.to_owned(),
            value: bad_request.encode_to_vec(),
        }],
    };
    Status::with_details(
        Code::InvalidArgument,
        message,
        Bytes::from(status.encode_to_vec()),
    )
}

/// The field violations a status carries, if it carries a `BadRequest` (at most
/// [`MAX_VIOLATIONS`]; malformed details count as none).
pub fn field_errors(status: &Status) -> Option<FieldErrors> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    let status = RpcStatus::decode(details).ok()?;
    let detail = status
        .details
        .iter()
        .find(|detail| detail.type_url == BAD_REQUEST_TYPE)?;
    let bad_request = BadRequest::decode(detail.value.as_slice()).ok()?;
    Some(
        bad_request
            .field_violations
            .into_iter()
            .take(MAX_VIOLATIONS)
            .map(|violation| FieldError::new(violation.field, violation.description))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_round_trip_through_a_status() {
        let mut errors = FieldErrors::single("title", "must not be empty");
        errors.add("specifications[1].item", "must not be empty");
        let status = invalid_argument(&errors);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "title: must not be empty; specifications[1].item: must not be empty"
        );
        assert_eq!(field_errors(&status), Some(errors));
    }

    #[test]
    fn a_status_without_or_with_broken_details_has_no_field_errors() {
        assert_eq!(field_errors(&Status::invalid_argument("x: bad")), None);
        let broken = Status::with_details(Code::InvalidArgument, "x", Bytes::from_static(b"\xff"));
        assert_eq!(field_errors(&broken), None);
    }
}
