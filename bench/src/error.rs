//! [`BenchError`]: why a workload, a baseline or the setup around them failed.
//!
//! A failed workload becomes a row that says so; it never stops the rest of the run.

use atomsync_proto::WireError;

/// Why a benchmark step failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file, a socket or a child process failed; `what` says which.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An HTTP request failed below the protocol (connection refused, reset, timeout).
    #[error("http: {}", chain(.0))]
    Http(#[from] reqwest::Error),
    /// A WebSocket failed (handshake refused, connection closed).
    #[error("websocket: {0}")]
    Ws(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// The raw-SQLite baseline failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A server's answer could not be decoded.
    #[error("decoding an answer: {0}")]
    Wire(#[from] WireError),
    /// A server answered, but not what the protocol says it must.
    #[error("{0}")]
    Protocol(String),
    /// Something the run needs is missing or unusable (a binary, npm, a port).
    #[error("{0}")]
    Setup(String),
    /// A phase ran past its time bound.
    #[error("{0} did not finish within its time bound")]
    Timeout(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for BenchError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        BenchError::Ws(Box::new(e))
    }
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }
}

/// An error with its causes: reqwest's own message ("error sending request") says nothing
/// of why (refused, reset, timed out).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// The result of every benchmark step.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
