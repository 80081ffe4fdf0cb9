//! Logging: where the server's log lines go and how they look.
//!
//! Standard error, one event per line, in one of two formats ([`LogFormat`]): `text`,
//! for people (colored when standard error is a terminal, plain under systemd's journal),
//! or `json`, one JSON object per line for log shippers (`{"timestamp", "level",
//! "target", "message", ...fields}`). Every HTTP request makes one line at target
//! `atomsync::access`, and every WebSocket session one when it ends (see
//! [`crate::http::access`]); tokens never appear in either.

use std::io::IsTerminal;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-01T10:00:00.123Z  INFO atomsync::access: request method="GET" ...`
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
#[error("--log {filter:?}: {message}")]
pub struct LogError {
    filter: String,
    message: String,
}

/// Installs the process's logger: `filter` in `tracing_subscriber::EnvFilter` syntax
/// (`info`, `info,atomsync::access=warn`, `atomsync=debug`), `format` as above.
pub fn init(filter: &str, format: LogFormat) -> Result<(), LogError> {
    let env_filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| LogError {
        filter: filter.to_owned(),
        message: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| LogError {
        filter: filter.to_owned(),
        message: e.to_string(),
    })
}
