//! What can go wrong calling another service.

use emporium_http::{ApiError, Problem};
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry lists no healthy instance of the service.
    #[error("no instance of {0} is available")]
    NoInstances(String),
    /// The target has been failing as a whole: its circuit is open and calls fail
    /// at once until a probe finds it back.
    #[error("{0} is failing; its circuit is open")]
    CircuitOpen(String),
    /// Too many calls to the target are in flight already (its bulkhead is full).
    #[error("too many calls to {0} in flight")]
    Overloaded(String),
    /// Every instance refused the connection.
    #[error("cannot reach {service}")]
    Unreachable {
        service: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The call did not finish before its deadline.
    #[error("{0} did not answer before the deadline")]
    Timeout(String),
    /// The connection broke during the call.
    #[error("call to {service} failed")]
    Transport {
        service: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The service answered with an error status.
    #[error("{service} answered {status}")]
    Status {
        service: String,
        status: StatusCode,
        problem: Option<Box<Problem>>,
    },
    /// The answer was not what the contract says.
    #[error("unexpected answer from {service}")]
    Decode {
        service: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ClientError {
    /// The status the called service answered with, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the call certainly reached no server (no instance, an open circuit,
    /// a full bulkhead, every connection refused): whatever it asked was not done.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            ClientError::NoInstances(_)
                | ClientError::CircuitOpen(_)
                | ClientError::Overloaded(_)
                | ClientError::Unreachable { .. }
        )
    }

    /// The `code` of the problem the called service answered with, if any.
    pub fn problem_code(&self) -> Option<&str> {
        match self {
            ClientError::Status {
                problem: Some(p), ..
            } => Some(p.code.as_str()),
            _ => None,
        }
    }

    /// The `detail` of the problem the called service answered with, if any.
    pub fn problem_detail(&self) -> Option<&str> {
        match self {
            ClientError::Status {
                problem: Some(p), ..
            } => Some(p.detail.as_str()),
            _ => None,
        }
    }

    /// The field errors of the problem the called service answered with.
    pub fn field_errors(&self) -> &[emporium_http::FieldError] {
        match self {
            ClientError::Status {
                problem: Some(p), ..
            } => &p.errors,
            _ => &[],
        }
    }

    /// The status a proxying or calling service answers with when this happens:
    /// 503 when nobody is there or the target is refused at once (open circuit,
    /// full bulkhead), 504 on the deadline, 502 otherwise.
    pub fn upstream_status(&self) -> StatusCode {
        match self {
            ClientError::NoInstances(_)
            | ClientError::CircuitOpen(_)
            | ClientError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ClientError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ClientError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl From<ClientError> for ApiError {
    /// A dependency's failure as seen by our caller: no internals in the body.
    fn from(e: ClientError) -> Self {
        let detail = match &e {
            ClientError::NoInstances(s) => format!("{s} is unavailable; retry shortly"),
            ClientError::CircuitOpen(s) => format!("{s} is failing; retry shortly"),
            ClientError::Overloaded(s) => format!("{s} is busy; retry shortly"),
            ClientError::Timeout(s) => format!("{s} did not answer in time"),
            ClientError::Unreachable { service, .. } => format!("{service} cannot be reached"),
            ClientError::Transport { service, .. }
            | ClientError::Decode { service, .. }
            | ClientError::Status { service, .. } => format!("{service} failed"),
        };
        let status = e.upstream_status();
        let code = match status {
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            _ => "bad_gateway",
        };
        let fail_fast = matches!(
            e,
            ClientError::NoInstances(_) | ClientError::CircuitOpen(_) | ClientError::Overloaded(_)
        );
        let error = ApiError::new(status, code, detail).with_source(e);
        if fail_fast {
            error.with_header(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            )
        } else {
            error
        }
    }
}
