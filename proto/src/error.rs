//! Errors of the codecs and of request validation, and the protocol's error codes.

/// A value could not be decoded. `path` names where (`changes[3].value[2]`), empty at the top.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended in the middle of a value.
    #[error("{path}: input ends in the middle of a value")]
    Incomplete {
        /// Where in the value.
        path: String,
    },
    /// The input is not a valid encoding (unknown tag or extension, bad payload, bad UTF-8, ...).
    #[error("{path}: {reason}")]
    Invalid {
        /// Where in the value.
        path: String,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// Containers nest deeper than allowed.
    #[error("{path}: nesting deeper than {max_depth}")]
    TooDeep {
        /// Where in the value.
        path: String,
        /// The limit that was passed.
        max_depth: usize,
    },
}

/// The protocol's error codes (PROTOCOL.md section 3), each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400
    BadRequest,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 503
    Unavailable,
    /// 500
    Internal,
}

impl ErrorCode {
    /// The wire name, e.g. `bad_request`.
    pub fn as_str(self) -> &'static str {
        todo!()
    }
    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        todo!()
    }
    /// The code for a wire name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        todo!()
    }
}

/// A request or frame was refused: the code to answer with and a message that says what and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    /// The protocol code (`bad_request`, `payload_too_large`, ...).
    pub code: ErrorCode,
    /// Plain words, naming the place: `changes[3].key: must be 1..1024 bytes`.
    pub message: String,
}
