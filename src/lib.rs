//! # Atomsync server
//!
//! A typed, offline-first sync store: applications keep a map of documents per *group*,
//! write it locally, and converge through this server (the contract: `docs/protocol.md`).
//!
//! ## Layout
//!
//! - [`config`]: the one configuration, from TOML < `ATOMSYNC_*` environment < command line.
//! - [`auth`]: tokens to users, users to groups.
//! - [`http`]: actix-web routes for pull, push, health, the browser client's files, and the
//!   operator's admin API.
//! - [`ws`]: WebSocket sessions that subscribe to groups and push.
//! - [`push`]: the one push path both transports call: permission, validation, commit.
//! - [`error`]: why a request applied nothing, as both transports answer it.
//! - [`actors`]: one actor per subscribed group, streaming its commits in order.
//! - [`storage`]: one interface over the database, whichever engine; today SQLite in WAL
//!   mode, with a single writer thread and a pool of readers.
//! - [`metrics`]: what the server counts, exported at `GET /metrics` for Prometheus.
//! - [`tls`]: HTTPS (`[server.tls]`) through rustls.
//! - [`logging`]: log lines as text or JSON, one per request.
//!
//! ## How a push travels
//!
//! Two thread hand-offs in all, the fewest with a dedicated writer thread:
//!
//! 1. On the HTTP worker that read it, `POST /sync` (or a WebSocket `push` frame) is checked
//!    by its transport (token, content type, size, shape), then by [`push::push`], shared
//!    by both: the group's permission, then each change (PROTOCOL.md section 3's order).
//! 2. [`push::push`] hands it to [`storage::Storage::push`] at once: on SQLite, the writer
//!    thread's queue (hand-off 1). The writer version-checks every change, assigns versions
//!    and `seq`s, and commits the accepted ones in one transaction with whatever else is
//!    queued (group commit), each push in its own savepoint.
//! 3. Once durable, the writer hands the commit to the [`actors::Registry`], which passes it
//!    to the group's actor if the group has subscribers, then answers the push's ticket
//!    (hand-off 2, back to the worker, which sends the response). The actor encodes the
//!    commit's `changes` frame once per encoding and hands the same bytes to every
//!    subscribed session's queue, in `seq` order.
//!
//! Reads (pulls, catch-up, a new actor's starting `seq`) never pass through the actors:
//! they are async calls on [`storage::Storage`], which reads a consistent snapshot (on
//! SQLite, from the pool, on the blocking pool).
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod actors;
pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod push;
pub mod storage;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use tokio::sync::watch;

pub use config::Config;

use crate::actors::Registry;
use crate::auth::Auth;
use crate::http::AppState;
use crate::storage::{Storage, StorageError};

/// How long in-flight requests get to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The database could not be opened.
    #[error("database {path}: {source}")]
    Storage {
        /// The database file.
        path: std::path::PathBuf,
        /// What failed.
        source: StorageError,
    },
    /// Listening or serving failed.
    #[error("http: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `config` on `listener` until `shutdown` resolves, then stops cleanly: in-flight
/// requests finish, sessions are closed, the writer commits what it holds, the database is
/// closed. Must run inside an actix system (`actix_web::rt::System`).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let s = &config.server;
    metrics::set_enabled(config.metrics.enabled);
    let tls = s.tls.as_ref().map(tls::server_config).transpose()?;
    let storage = Storage::open(s)
        .await
        .map_err(|source| ServerError::Storage {
            path: s.db.clone(),
            source,
        })?;
    let auth = Arc::new(Auth::from_config(&config));
    if auth.is_on() {
        tracing::info!(
            users = config.users.len(),
            "auth is on: every request needs a token"
        );
    } else {
        tracing::warn!("auth is off: no [users] configured, every group is open to everyone");
    }
    if config.admin.token.is_some() {
        tracing::info!("admin API on: /admin/... needs the [admin] token");
    } else {
        tracing::info!("admin API off: no [admin] token configured");
    }
    tracing::info!(db = %s.db.display(), epoch = storage.epoch(), durability = ?s.durability, "database open");

    let addr = listener.local_addr()?;
    let (stop_sessions, shutdown_rx) = watch::channel(false);
    let state = web::Data::new(AppState {
        registry: Registry::new(storage.clone()),
        storage: storage.clone(),
        auth,
        limits: config.limits(),
        max_body_bytes: s.max_body_bytes,
        shutdown: shutdown_rx,
        admin_token: config
            .admin
            .token
            .as_deref()
            .map(http::admin::AdminToken::new),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(http::access::access))
            .configure(http::configure)
    })
    .disable_signals()
    // Small frames (a pushed answer, a live change) must leave at once, not wait for
    // Nagle's algorithm to collect more: latency is the product.
    .tcp_nodelay(true)
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    let scheme = match tls {
        Some(tls) => {
            server = server.listen_rustls_0_23(listener, tls)?;
            "https"
        }
        None => {
            server = server.listen(listener)?;
            "http"
        }
    };
    if s.workers > 0 {
        server = server.workers(s.workers);
    }
    let server = server.run();
    tracing::info!("listening on {scheme}://{addr}");
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_sessions.send(true);
        handle.stop(true).await;
    });
    let served = server.await;
    // Every acknowledged push is already committed; this commits nothing new, but waits for
    // the writer to finish a batch in progress and checkpoints the WAL.
    storage.close().await;
    tracing::info!("stopped");
    Ok(served?)
}
