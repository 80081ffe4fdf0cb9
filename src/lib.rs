//! # Atomsync server
//!
//! A typed, offline-first sync store: applications keep a map of documents per *group*,
//! write it locally, and converge through this server (the contract: `docs/protocol.md`).
//!
//! ## Layout
//!
//! - [`config`]: the one configuration, from TOML < `ATOMSYNC_*` environment < command line.
//! - [`auth`]: tokens to users, users to the groups they may read or write; allowed origins.
//! - [`conn`]: open connections: their limit, request deadlines, aborting a socket.
//! - [`http`]: actix-web routes for pull, push, health, the browser client's files, and the
//!   operator's admin API.
//! - [`ws`]: WebSocket sessions that subscribe to groups and push.
//! - [`push`]: the one push path both transports call: permission, validation, commit.
//! - [`error`]: why a request applied nothing, as both transports answer it.
//! - [`actors`]: one actor per subscribed group, streaming its commits in order.
//! - [`storage`]: one interface over the database, whichever engine: SQLite in WAL mode,
//!   with a single writer thread and a pool of readers (the default); or PostgreSQL, shared
//!   by several instances of the server.
//! - [`offline`]: the commands that work on a database while no server runs (`backup`,
//!   `restore`, `compact`; SQLite only, see its doc).
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
//! On PostgreSQL, step 2 goes to the group's writer task instead (per group, one
//! transaction at a time, locking the group's row, the pushes queued behind it joining the
//! next), and the other instances learn of the commit by `NOTIFY`: each hands it to its own
//! group actor, which reads the new documents from the database and streams them.
//!
//! Reads (pulls, catch-up, a new actor's starting `seq`) never pass through the actors:
//! they are async calls on [`storage::Storage`], which reads a consistent snapshot (on
//! SQLite, from the pool, on the blocking pool).
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod actors;
pub mod auth;
pub mod config;
pub mod conn;
pub mod error;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod offline;
pub mod push;
pub mod storage;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::web;
use tokio::sync::{mpsc, watch};

pub use config::Config;

use crate::actors::Registry;
use crate::auth::{Auth, SharedAuth};
use crate::conn::{Connections, Timings};
use crate::http::AppState;
use crate::storage::{Storage, StorageError};

/// How long in-flight requests get to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long an idle HTTP connection is kept open for a next request (actix's default).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

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
        /// The database file, or the PostgreSQL URL with its password hidden.
        path: std::path::PathBuf,
        /// What failed.
        source: StorageError,
    },
    /// Listening or serving failed.
    #[error("http: {0}")]
    Io(#[from] std::io::Error),
}

/// Removes tombstones older than `horizon` every `every` (and once at start), until
/// shutdown (PROTOCOL.md section 8).
async fn compact_on_schedule(
    storage: Storage,
    horizon: Duration,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(
        older_than = %humantime::format_duration(horizon),
        every = %humantime::format_duration(every),
        "compaction on: old tombstones are removed on a schedule"
    );
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let before = std::time::SystemTime::now()
            .checked_sub(horizon)
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        match storage.compact(before).await {
            Ok(done) if done.tombstones > 0 => tracing::info!(
                tombstones = done.tombstones,
                groups = done.groups,
                "compaction removed old tombstones; those groups' floors rose"
            ),
            Ok(_) => tracing::debug!("compaction: no tombstone old enough"),
            Err(e) => tracing::warn!(error = %e, "compaction failed; it runs again on schedule"),
        }
    }
}

/// Serves `config` on `listener` until `shutdown` resolves, then stops cleanly: in-flight
/// requests finish, sessions are closed, the writer commits what it holds, the database is
/// closed. Must run inside an actix system (`actix_web::rt::System`).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), ServerError> {
    let (_keep, reloads) = mpsc::channel(1);
    run_with_reload(config, listener, shutdown, reloads).await
}

/// [`run`], taking new configurations from `reloads` while it serves (the binary sends one
/// on SIGHUP). Of a new configuration the users, their grants and `allowed_origins` take
/// effect at once: a WebSocket whose token was removed is closed, a subscription to a
/// group its user may no longer read gets `forbidden`. Other `[server]` keys need a
/// restart (the log says so). An invalid configuration is logged and ignored.
pub async fn run_with_reload(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + 'static,
    reloads: mpsc::Receiver<Config>,
) -> Result<(), ServerError> {
    config.validate()?;
    let s = &config.server;
    metrics::set_enabled(config.metrics.enabled);
    let tls = s.tls.as_ref().map(tls::server_config).transpose()?;
    let storage = Storage::open(s)
        .await
        .map_err(|source| ServerError::Storage {
            path: s.database().redacted().into(),
            source,
        })?;
    let auth = SharedAuth::new(Auth::from_config(&config));
    if auth.current().is_on() {
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
    tracing::info!(db = %s.database().redacted(), epoch = storage.epoch(), durability = ?s.durability, "database open");

    let addr = listener.local_addr()?;
    let limit = match s.max_connections {
        0 => conn::default_limit(),
        configured => configured,
    };
    let connections = Connections::new(
        limit,
        Timings {
            request_timeout: s.request_timeout,
            keep_alive: KEEP_ALIVE,
            close_timeout: s.close_timeout,
        },
    );
    tracing::info!(
        max_connections = limit,
        request_timeout = ?s.request_timeout,
        "connection limits"
    );
    let loopback = addr.ip().is_loopback();
    let (stop_sessions, shutdown_rx) = watch::channel(false);
    if let Some(horizon) = config.compaction.tombstones_older_than {
        actix_web::rt::spawn(compact_on_schedule(
            storage.clone(),
            horizon,
            config.compaction.every,
            shutdown_rx.clone(),
        ));
    }
    let state = web::Data::new(AppState {
        registry: Registry::with_idle_timeout(storage.clone(), s.group_idle_timeout),
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
        liveness: ws::Liveness {
            ping_interval: s.ping_interval,
            idle_timeout: s.idle_timeout,
            close_timeout: s.close_timeout,
        },
    });
    let state_for_reload = state.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = http::server::build(
        listener,
        state,
        connections.clone(),
        http::server::Listen {
            workers: s.workers,
            request_timeout: s.request_timeout,
            keep_alive: KEEP_ALIVE,
            shutdown_grace: SHUTDOWN_GRACE,
            loopback,
        },
        tls,
    )?;
    tracing::info!("listening on {scheme}://{addr}");
    let handle = server.handle();
    let sweeper = actix_web::rt::spawn(connections.clone().run_sweeper());
    let close_timeout = s.close_timeout;
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_sessions.send(true);
        connections.close_idle();
        // WebSocket sessions run outside actix's dispatcher, which would not wait for them
        // to send their close frames; each is gone within the close timeout.
        connections
            .sessions_ended(close_timeout + conn::SWEEP_INTERVAL * 2)
            .await;
        handle.stop(true).await;
    });
    let reloader = actix_web::rt::spawn(apply_reloads(config, reloads, state_for_reload));
    let served = server.await;
    reloader.abort();
    sweeper.abort();
    // Every acknowledged push is already committed; this commits nothing new, but waits for
    // the writer to finish a batch in progress and checkpoints the WAL.
    storage.close().await;
    tracing::info!("stopped");
    Ok(served?)
}

/// Puts each configuration from `reloads` in force (see [`run_with_reload`]).
async fn apply_reloads(
    mut current: Config,
    mut reloads: mpsc::Receiver<Config>,
    state: web::Data<AppState>,
) {
    while let Some(next) = reloads.recv().await {
        if let Err(e) = next.validate() {
            tracing::error!(error = %e, "config reload refused; the old configuration stays in force");
            continue;
        }
        let mut unchanged = current.server.clone();
        unchanged.allowed_origins = next.server.allowed_origins.clone();
        if unchanged != next.server {
            tracing::warn!(
                "config reload: [server] keys other than allowed_origins take effect at the next start"
            );
        }
        let auth = Auth::from_config(&next);
        tracing::info!(
            users = next.users.len(),
            allowed_origins = next.server.allowed_origins.len(),
            auth = if auth.is_on() { "on" } else { "off" },
            "config reloaded: users, grants and allowed origins in force"
        );
        state.auth.replace(auth);
        current.users = next.users;
        current.server.allowed_origins = next.server.allowed_origins;
    }
}
