//! [`CliError`]: every way a command fails, each printed as one line, each with its exit
//! status, so that scripts can tell a missing key or a conflict from a broken server.

use atomsync_proto::{ErrorCode, WireError};

/// Exit statuses besides 0 (success) and 2 (a usage error, from clap).
pub const EXIT_ERROR: u8 = 1;
/// A write was refused because the document changed (a version conflict).
pub const EXIT_CONFLICT: u8 = 3;
/// The document or group does not exist.
pub const EXIT_NOT_FOUND: u8 = 4;

/// Why a command failed. Displayed as the one line printed after `atomsync: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// What the user gave is unusable: a bad URL, group, key, or value.
    #[error("{0}")]
    Input(String),
    /// The server refused the request with a protocol error.
    #[error("server: {} ({}): {}", error.code, error.code.status(), error.message)]
    Server {
        /// The protocol's code and message.
        error: WireError,
    },
    /// The server answered with something that is not the protocol.
    #[error("server: {0}")]
    Protocol(String),
    /// The server could not be reached, or the connection broke.
    #[error("{0}")]
    Network(String),
    /// The document or group does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A version conflict: the document changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(String),
    /// Standard output was closed by its reader (`atomsync pull g | head`).
    #[error("standard output: closed by its reader")]
    BrokenPipe,
}

impl CliError {
    /// The exit status that goes with the error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Conflict(_) => EXIT_CONFLICT,
            CliError::NotFound(_) => EXIT_NOT_FOUND,
            _ => EXIT_ERROR,
        }
    }

    /// The server's protocol error code, when it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CliError::Server { error } => Some(error.code),
            _ => None,
        }
    }

    /// True when retrying cannot help: the server refused the token or the group.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.code(),
            Some(ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::BadRequest)
        )
    }
}

impl From<WireError> for CliError {
    fn from(error: WireError) -> CliError {
        CliError::Server { error }
    }
}

/// An I/O error on `what` (`standard input`, `standard output`).
pub fn io(what: &str, error: &std::io::Error) -> CliError {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::BrokenPipe;
    }
    CliError::Io(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_show_code_status_and_message() {
        let err = CliError::from(WireError::new(
            ErrorCode::Forbidden,
            "group: user \"alice\" may not use group \"x\"",
        ));
        assert_eq!(
            err.to_string(),
            "server: forbidden (403): group: user \"alice\" may not use group \"x\""
        );
        assert_eq!(err.exit_code(), EXIT_ERROR);
        assert!(err.is_refusal());
        assert_eq!(CliError::Conflict("c".into()).exit_code(), EXIT_CONFLICT);
        assert_eq!(CliError::NotFound("n".into()).exit_code(), EXIT_NOT_FOUND);
    }
}
