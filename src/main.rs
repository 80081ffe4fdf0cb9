//! `atomsync-server`: parses the configuration, starts logging, binds, and runs
//! [`atomsync::run`] until SIGTERM or Ctrl-C.

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use atomsync::Config;
use atomsync::config::Durability;
use atomsync::logging::LogFormat;
use clap::Parser;

/// The Atomsync sync server. With no options it serves on 127.0.0.1:8090 with the database
/// `atomsync.db` in the working directory and auth off. Options override the config file's
/// keys; `ATOMSYNC_*` environment variables sit between the two.
#[derive(Debug, Parser)]
#[command(name = "atomsync-server", version, about, long_about)]
struct Cli {
    /// TOML config file (see config/atomsync.toml for every key).
    #[arg(long, short, env = "ATOMSYNC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8090 (port 0 picks a free port).
    #[arg(long, env = "ATOMSYNC_BIND", value_name = "ADDR")]
    bind: Option<String>,
    /// SQLite database file, created when missing.
    #[arg(long, env = "ATOMSYNC_DB", value_name = "PATH")]
    db: Option<PathBuf>,
    /// full: fsync before every acknowledgement; normal: survives a process crash, not a power cut.
    #[arg(long, env = "ATOMSYNC_DURABILITY", value_enum)]
    durability: Option<Durability>,
    /// Read connections in the pool.
    #[arg(long, env = "ATOMSYNC_POOL_SIZE")]
    pool_size: Option<u32>,
    /// Largest request body or WebSocket frame, in bytes (default 8 MiB).
    #[arg(long, env = "ATOMSYNC_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest value in its MessagePack encoding, in bytes (default 1 MiB).
    #[arg(long, env = "ATOMSYNC_MAX_VALUE_BYTES")]
    max_value_bytes: Option<usize>,
    /// Deepest nesting of containers in a value (default 64).
    #[arg(long, env = "ATOMSYNC_MAX_DEPTH")]
    max_depth: Option<usize>,
    /// Most changes in one push (default 10000).
    #[arg(long, env = "ATOMSYNC_MAX_CHANGES")]
    max_changes: Option<usize>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "ATOMSYNC_WORKERS")]
    workers: Option<usize>,
    /// The admin API's bearer token (`[admin] token`); prefer the environment or the file
    /// to the command line, where other users of the machine can read it.
    #[arg(
        long,
        env = "ATOMSYNC_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Log filter, e.g. info, debug, atomsync=trace.
    #[arg(long, env = "ATOMSYNC_LOG", default_value = "info")]
    log: String,
    /// Log lines as text (for people) or JSON (one object per line, for log shippers).
    #[arg(long, env = "ATOMSYNC_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

impl Cli {
    /// The file's config (or the embedded default), with environment and flags on top.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let s = &mut config.server;
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field.clone() { s.$field = v; } )* };
        }
        set!(
            bind,
            db,
            durability,
            pool_size,
            max_body_bytes,
            max_value_bytes,
            max_depth,
            max_changes,
            workers
        );
        if let Some(token) = self.admin_token.clone() {
            config.admin.token = Some(token);
        }
        config.validate()?;
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    atomsync::logging::init(&cli.log, cli.log_format)?;
    let config = cli.config()?;
    let listener = TcpListener::bind(&config.server.bind)
        .with_context(|| format!("cannot listen on {}", config.server.bind))?;
    actix_web::rt::System::new().block_on(atomsync::run(config, listener, shutdown_signal()))?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C still stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
