//! What a backend answered (a Thrift exception, a gRPC status, or no answer at all), as a
//! [`BackendError`] that no longer knows which protocol it came from.

use std::{fmt, io};

use rpc_idl::account::{
    AccountServiceCheckCredentialsException, AccountServiceCreateAccountException,
    AccountServiceGetAccountByIdException, AccountServiceGetAccountByUsernameException,
    AccountServiceUpdateAccountException, FieldError as ThriftFieldError,
};
use volo_grpc::{Code, Status};
use volo_thrift::ClientError;

/// The backend services, as they appear in logs, metrics and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Account,
    Warehouse,
    Payment,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Warehouse => "warehouse",
            Self::Payment => "payment",
        }
    }

    /// The RPC system it speaks (OpenTelemetry's `rpc.system`).
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Account => "thrift",
            Self::Warehouse | Self::Payment => "grpc",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failed validation rule, as the REST contract's optional `errors` array lists it: the
/// services' own type, which every program shares.
pub use platform::validation::FieldError;

/// RPC field names whose REST spelling differs (the last part of a field's path).
const REST_FIELD_NAMES: [(&str, &str); 2] = [("price_cents", "price"), ("product_id", "id")];

/// A service's field error with the field named as the REST body names it
/// (`items[0].product_id` is `items[0].id`, `price_cents` is `price`).
pub(super) fn rest_field(mut error: FieldError) -> FieldError {
    let (parent, last) = match error.field.rsplit_once('.') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, error.field.as_str()),
    };
    if let Some((_, rest)) = REST_FIELD_NAMES.iter().find(|(rpc, _)| *rpc == last) {
        error.field = match parent {
            Some(parent) => format!("{parent}.{rest}"),
            None => (*rest).to_owned(),
        };
    }
    error
}

/// Why a backend call did not produce an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendError {
    pub service: Service,
    pub kind: BackendErrorKind,
}

/// A backend failure, independent of the protocol that reported it.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendErrorKind {
    /// The request failed validation; `message` lists every failed rule.
    InvalidInput {
        message: String,
        errors: Vec<FieldError>,
    },
    NotFound(String),
    /// A uniqueness rule was violated (the message names the field).
    Conflict(String),
    /// The entity is in a state that forbids the action (paying a cancelled payment).
    WrongState(String),
    /// A business rule refused the request (insufficient stock or balance).
    Refused(String),
    /// A username/password pair did not match.
    BadCredentials,
    Unauthenticated(String),
    PermissionDenied(String),
    /// No instance answered: none configured, connection refused or reset, or it said so.
    Unavailable(String),
    /// The call's deadline passed.
    DeadlineExceeded,
    /// Anything else; the detail is logged, never shown.
    Internal(String),
}

impl BackendError {
    pub fn new(service: Service, kind: BackendErrorKind) -> Self {
        Self { service, kind }
    }

    pub fn unavailable(service: Service, detail: impl Into<String>) -> Self {
        Self::new(service, BackendErrorKind::Unavailable(detail.into()))
    }

    pub fn deadline(service: Service) -> Self {
        Self::new(service, BackendErrorKind::DeadlineExceeded)
    }

    /// Whether the failure says nothing about the request itself, so that an idempotent read may
    /// be tried again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            BackendErrorKind::Unavailable(_) | BackendErrorKind::DeadlineExceeded
        )
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self.kind {
            BackendErrorKind::InvalidInput { .. } => "invalid_input",
            BackendErrorKind::NotFound(_) => "not_found",
            BackendErrorKind::Conflict(_) => "conflict",
            BackendErrorKind::WrongState(_) => "wrong_state",
            BackendErrorKind::Refused(_) => "refused",
            BackendErrorKind::BadCredentials => "bad_credentials",
            BackendErrorKind::Unauthenticated(_) => "unauthenticated",
            BackendErrorKind::PermissionDenied(_) => "permission_denied",
            BackendErrorKind::Unavailable(_) => "unavailable",
            BackendErrorKind::DeadlineExceeded => "deadline_exceeded",
            BackendErrorKind::Internal(_) => "internal",
        }
    }

    /// Whether the failure is the backend's fault (or the network's) rather than the caller's.
    pub fn is_server_side(&self) -> bool {
        matches!(
            self.kind,
            BackendErrorKind::Unavailable(_)
                | BackendErrorKind::DeadlineExceeded
                | BackendErrorKind::Internal(_)
        )
    }

    pub fn from_grpc(service: Service, status: &Status) -> Self {
        Self::new(service, BackendErrorKind::from_grpc(status))
    }

    pub fn from_thrift(service: Service, error: &ClientError) -> Self {
        Self::new(service, BackendErrorKind::from_thrift(error))
    }
}

impl BackendErrorKind {
    /// A gRPC status as the warehouse or payment service sent it, or as volo-grpc produced it
    /// locally for a transport failure.
    pub fn from_grpc(status: &Status) -> Self {
        let message = status.message().to_owned();
        // A status the client made up for a failure to reach the server (for a refused
        // connection volo-grpc says UNKNOWN "client error (Connect)") carries that failure as
        // its source; a status the server sent has none.
        if let Some(kind) = transport_failure(status) {
            return kind;
        }
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidInput {
                message,
                // The service's own per-field verdicts (google.rpc.BadRequest), when it sent them.
                errors: platform::grpc_error_details::field_errors(status)
                    .map(|errors| errors.into_iter().collect())
                    .unwrap_or_default(),
            },
            Code::NotFound => Self::NotFound(message),
            Code::AlreadyExists => Self::Conflict(message),
            Code::Aborted => Self::WrongState(message),
            Code::FailedPrecondition => Self::Refused(message),
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::PermissionDenied => Self::PermissionDenied(message),
            Code::Unavailable | Code::ResourceExhausted | Code::Cancelled => {
                Self::Unavailable(message)
            }
            Code::DeadlineExceeded => Self::DeadlineExceeded,
            _ => Self::Internal(format!("{:?}: {message}", status.code())),
        }
    }

    /// A Thrift call that produced no declared answer (transport, protocol or application
    /// failure).
    pub fn from_thrift(error: &ClientError) -> Self {
        match error {
            ClientError::Transport(transport) => match transport.kind() {
                io::ErrorKind::TimedOut => Self::DeadlineExceeded,
                _ => Self::Unavailable(transport.to_string()),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

/// What volo-grpc's client writes before the HTTP/2 error when the connection failed in the
/// middle of a call (`Status::from_hyper_error`: the server died or reset the connection). Such a
/// status has no source to inspect; no service of ours sends this text.
const H2_FAILURE_PREFIX: &str = "h2 protocol error";

/// The transport failure behind a locally made status, if that is what it is.
pub fn transport_failure(status: &Status) -> Option<BackendErrorKind> {
    // A call whose connection broke under it (UNKNOWN or INTERNAL, by the HTTP/2 reason): the
    // instance is gone or going, which is what a read's retry on another instance is for. (On a
    // write the caller gets a 503 and is not retried: whether it was applied is unknown.)
    if matches!(status.code(), Code::Unknown | Code::Internal)
        && status.message().starts_with(H2_FAILURE_PREFIX)
    {
        return Some(BackendErrorKind::Unavailable(status.message().to_owned()));
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<io::Error>() {
            return Some(match io.kind() {
                io::ErrorKind::TimedOut => BackendErrorKind::DeadlineExceeded,
                _ => BackendErrorKind::Unavailable(io.to_string()),
            });
        }
        if let Some(client) = error.downcast_ref::<hyper_util::client::legacy::Error>()
            && client.is_connect()
        {
            return Some(BackendErrorKind::Unavailable(client.to_string()));
        }
        source = error.source();
    }
    None
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} service: {:?}", self.service, self.kind)
    }
}

fn field_errors(errors: &[ThriftFieldError]) -> Vec<FieldError> {
    errors
        .iter()
        .map(|e| FieldError::new(e.field.as_str(), e.message.as_str()))
        .collect()
}

/// Thrift's declared exceptions, per method, into protocol-free kinds.
macro_rules! thrift_exceptions {
    ($($exception:ty { $($variant:ident($binding:ident) => $kind:expr),* $(,)? })*) => {
        $(
            impl From<$exception> for BackendErrorKind {
                fn from(exception: $exception) -> Self {
                    type E = $exception;
                    match exception {
                        $(E::$variant($binding) => $kind,)*
                    }
                }
            }
        )*
    };
}

thrift_exceptions! {
    AccountServiceGetAccountByUsernameException {
        NotFound(e) => BackendErrorKind::NotFound(e.message.to_string()),
        Unauthenticated(e) => BackendErrorKind::Unauthenticated(e.message.to_string()),
        PermissionDenied(e) => BackendErrorKind::PermissionDenied(e.message.to_string()),
        InvalidInput(e) => BackendErrorKind::InvalidInput {
            message: e.message.to_string(),
            errors: field_errors(&e.errors),
        },
        Overloaded(e) => BackendErrorKind::Unavailable(e.message.to_string()),
    }
    AccountServiceGetAccountByIdException {
        NotFound(e) => BackendErrorKind::NotFound(e.message.to_string()),
        Unauthenticated(e) => BackendErrorKind::Unauthenticated(e.message.to_string()),
        PermissionDenied(e) => BackendErrorKind::PermissionDenied(e.message.to_string()),
        Overloaded(e) => BackendErrorKind::Unavailable(e.message.to_string()),
    }
    AccountServiceCreateAccountException {
        InvalidInput(e) => BackendErrorKind::InvalidInput {
            message: e.message.to_string(),
            errors: field_errors(&e.errors),
        },
        Conflict(e) => BackendErrorKind::Conflict(e.message.to_string()),
        Overloaded(e) => BackendErrorKind::Unavailable(e.message.to_string()),
    }
    AccountServiceUpdateAccountException {
        InvalidInput(e) => BackendErrorKind::InvalidInput {
            message: e.message.to_string(),
            errors: field_errors(&e.errors),
        },
        Conflict(e) => BackendErrorKind::Conflict(e.message.to_string()),
        NotFound(e) => BackendErrorKind::NotFound(e.message.to_string()),
        Unauthenticated(e) => BackendErrorKind::Unauthenticated(e.message.to_string()),
        PermissionDenied(e) => BackendErrorKind::PermissionDenied(e.message.to_string()),
        Overloaded(e) => BackendErrorKind::Unavailable(e.message.to_string()),
    }
    AccountServiceCheckCredentialsException {
        BadCredentials(_e) => BackendErrorKind::BadCredentials,
        Unauthenticated(e) => BackendErrorKind::Unauthenticated(e.message.to_string()),
        PermissionDenied(e) => BackendErrorKind::PermissionDenied(e.message.to_string()),
        Overloaded(e) => BackendErrorKind::Unavailable(e.message.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_protocol_free_kinds() {
        let kind = |status: Status| BackendError::from_grpc(Service::Payment, &status).kind;
        assert!(matches!(
            kind(Status::aborted("payment is PAYED")),
            BackendErrorKind::WrongState(_)
        ));
        assert!(matches!(
            kind(Status::failed_precondition("insufficient balance")),
            BackendErrorKind::Refused(_)
        ));
        assert_eq!(
            kind(Status::deadline_exceeded("late")),
            BackendErrorKind::DeadlineExceeded
        );
        assert!(BackendError::from_grpc(Service::Payment, &Status::unavailable("")).is_transient());
        // The connection broke mid-call (a replica killed): volo-grpc's own status, no source.
        let broken = Status::new(Code::Unknown, "h2 protocol error: connection reset");
        assert!(BackendError::from_grpc(Service::Warehouse, &broken).is_transient());
        // A server's own INTERNAL stays internal.
        let internal =
            BackendError::from_grpc(Service::Warehouse, &Status::internal("internal error"));
        assert!(matches!(internal.kind, BackendErrorKind::Internal(_)));
        assert!(!BackendError::from_grpc(Service::Payment, &Status::not_found("")).is_transient());
        assert!(matches!(
            kind(Status::unknown("boom")),
            BackendErrorKind::Internal(_)
        ));
        // What volo-grpc makes of a refused connection: UNKNOWN, with the I/O error as source.
        let refused =
            Status::from_error(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert!(matches!(kind(refused), BackendErrorKind::Unavailable(_)));
    }

    #[test]
    fn thrift_exceptions_map_to_protocol_free_kinds() {
        let exception =
            AccountServiceCreateAccountException::Conflict(rpc_idl::account::Conflict {
                message: "username is taken".into(),
                field: "username".into(),
            });
        assert_eq!(
            BackendErrorKind::from(exception),
            BackendErrorKind::Conflict("username is taken".into())
        );
        let refused = ClientError::Transport(pilota::thrift::TransportException::from(
            io::Error::from(io::ErrorKind::ConnectionRefused),
        ));
        assert!(BackendError::from_thrift(Service::Account, &refused).is_transient());
    }
}
