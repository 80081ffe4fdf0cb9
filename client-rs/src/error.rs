//! [`ClientError`]: every way a client operation or a sync attempt can fail, as one
//! documented enum that applications match on.

use atomsync_proto::serde_value::SerdeError;

/// Why an operation of the client failed, or why the last sync attempt did (see
/// [`Status::last_error`](crate::Status::last_error)).
///
/// Nothing the server sends and nothing read back from disk makes the client panic: a bad
/// answer is a [`ClientError::Protocol`], bad bytes on disk a [`ClientError::Corrupt`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The local SQLite store could not be opened, read or written.
    #[error("local store: {0}")]
    Storage(#[from] rusqlite::Error),
    /// The local store holds data this client cannot read (damaged, or written by a newer
    /// version of the client).
    #[error("local store: {0}")]
    Corrupt(String),
    /// A group name the protocol does not allow.
    #[error("group {group:?}: {reason}")]
    InvalidGroup {
        /// The name given.
        group: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A document key the protocol does not allow (keys are 1 to 1024 UTF-8 bytes).
    #[error("key {key:?}: {reason}")]
    InvalidKey {
        /// The key given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value the server would refuse (too deep, too large, an invalid keyword or instant).
    #[error("value of {key:?}: {reason}")]
    InvalidValue {
        /// The key it was written under.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server URL of [`Options`](crate::Options) is unusable.
    #[error("server url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A root certificate given to [`Options::add_root_certificate`](crate::Options::add_root_certificate)
    /// is unusable (not PEM, not a certificate, unreadable file).
    #[error("root certificate: {0}")]
    InvalidCertificate(String),
    /// A value could not be converted to or from an application type.
    #[error("conversion: {0}")]
    Serde(#[from] SerdeError),
    /// The atom or its store was closed.
    #[error("closed")]
    Closed,
    /// The sync engine needs a tokio runtime: call `synced_atom` from within one.
    #[error("no tokio runtime: synced_atom must be called from within a tokio runtime")]
    NoRuntime,
    /// The server could not be reached, or the connection broke.
    #[error("network: {0}")]
    Network(String),
    /// The server refused the token (HTTP 401). Sync stops until the options change or
    /// `sync_now` is called.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The token's user may not use this group (HTTP 403). Sync of the group stops until
    /// the options change or `sync_now` is called.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The server answered with another error status (`unavailable`, `internal`, ...).
    #[error("server error {status} {code}: {message}")]
    Server {
        /// The HTTP status (or the status the WebSocket error code stands for).
        status: u16,
        /// The protocol's error code, e.g. `unavailable`.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server refused one local change outright (its value or key is over a limit the
    /// server is configured with). The change was dropped and the key went back to the
    /// server's value.
    #[error("change to {key:?} refused by the server: {message}")]
    Rejected {
        /// The key of the dropped change.
        key: String,
        /// The server's message.
        message: String,
    },
    /// The server's answer does not follow the protocol.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl ClientError {
    /// True for the errors that stop retrying: 401 and 403.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ClientError::Unauthorized(_) | ClientError::Forbidden(_)
        )
    }

    /// The error for a protocol error code and message, as an error body or frame carries it.
    pub(crate) fn from_wire(error: &atomsync_proto::WireError) -> ClientError {
        use atomsync_proto::ErrorCode;
        match error.code {
            ErrorCode::Unauthorized => ClientError::Unauthorized(error.message.clone()),
            ErrorCode::Forbidden => ClientError::Forbidden(error.message.clone()),
            code => ClientError::Server {
                status: code.status(),
                code: code.as_str().to_owned(),
                message: error.message.clone(),
            },
        }
    }
}
