//! [`RequestError`]: why a request applied nothing (or, once, that a commit's outcome was
//! lost), in the protocol's terms, whichever transport carried it. HTTP renders it as a
//! response with the code's status ([`http::ApiError`](crate::http::ApiError)); WebSocket as
//! an `error` frame that echoes the frame's `id` and `group`. Both take the code and message
//! from [`RequestError::to_wire`], so a failure reads the same on either (PROTOCOL.md
//! section 3).

use atomsync_proto::{ErrorCode, WireError};

use crate::storage::StorageError;

/// Why a request (an HTTP request or a WebSocket frame) applied nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A check refused it: token, permission, shape, a change over a limit, ... The code and
    /// message are answered as they are.
    #[error(transparent)]
    Refused(#[from] WireError),
    /// Storage could not do it.
    #[error(
        "storage: {0}{tail}",
        tail = if .0.applied_nothing() { "; nothing was applied" } else { "" }
    )]
    Storage(StorageError),
}

impl From<StorageError> for RequestError {
    /// An answer storage found too large is the request's own size problem (413), said as
    /// storage said it; every other storage failure stays one.
    fn from(e: StorageError) -> RequestError {
        match e {
            StorageError::TooLarge(message) => RequestError::Refused(WireError::too_large(message)),
            other => RequestError::Storage(other),
        }
    }
}

impl RequestError {
    /// The protocol's code: a storage failure that may pass (busy, full, I/O, shutting down)
    /// is `unavailable` (503, the client may retry), any other `internal` (500, a bug).
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::Refused(e) => e.code,
            RequestError::Storage(e) if e.is_transient() => ErrorCode::Unavailable,
            RequestError::Storage(_) => ErrorCode::Internal,
        }
    }

    /// The code and message to answer with. A storage failure is logged here, once per
    /// answer: a refusal is the client's business, a storage failure the operator's.
    pub fn to_wire(&self) -> WireError {
        let code = self.code();
        match (self, code) {
            (RequestError::Refused(e), _) => return e.clone(),
            (RequestError::Storage(e), ErrorCode::Unavailable) => {
                tracing::warn!(error = %e, "storage unavailable")
            }
            (RequestError::Storage(e), _) => tracing::error!(error = %e, "storage failed"),
        }
        WireError::new(code, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_code_and_message() {
        let refused = RequestError::from(WireError::new(ErrorCode::Forbidden, "group: no"));
        assert_eq!(
            refused.to_wire(),
            WireError::new(ErrorCode::Forbidden, "group: no")
        );
    }

    #[test]
    fn storage_failures_say_nothing_was_applied() {
        let gone = RequestError::from(StorageError::WriterGone);
        let wire = gone.to_wire();
        assert_eq!(wire.code, ErrorCode::Unavailable);
        assert!(
            wire.message.starts_with("storage: ") && wire.message.ends_with("nothing was applied"),
            "{}",
            wire.message
        );
        let bug = RequestError::from(StorageError::Incompatible("schema 9".into()));
        assert_eq!(bug.to_wire().code, ErrorCode::Internal);
    }
}
