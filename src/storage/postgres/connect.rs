//! How the backend reaches PostgreSQL: the connection settings every session gets, the
//! runtime the connections live on, and the pool, whose every new connection has the
//! database's epoch checked before it is used (see `epoch`).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod,
};
use tokio::runtime::Runtime;
use tokio_postgres::NoTls;

use super::epoch::Epochs;
use crate::config::{Database, Durability};
use crate::storage::StorageError;

/// How long a call waits for a pooled connection before it reports the pool exhausted.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting to PostgreSQL may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of every session, readers, writers and listener alike:
/// - `lock_timeout`: a push waiting longer than this on its group's row (held by another
///   instance's transaction) fails with 503 rather than hanging;
/// - `idle_in_transaction_session_timeout`: a transaction left open by an instance that
///   stopped (a frozen process, a lost machine) releases its group's row after this.
const SESSION_OPTIONS: &str = "-c lock_timeout=10s -c idle_in_transaction_session_timeout=30s";

/// The connection settings of `url` (its password never shown in an error), with the
/// session settings above, the durability's, and keepalives.
pub(super) fn config(
    url: &str,
    durability: Durability,
) -> Result<tokio_postgres::Config, StorageError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        StorageError::Incompatible(format!("{}: {e}", Database::Postgres(url).redacted()))
    })?;
    let mut session = config.get_options().unwrap_or_default().to_owned();
    session.push_str(if session.is_empty() { "" } else { " " });
    session.push_str(SESSION_OPTIONS);
    if durability == Durability::Normal {
        // Commits return before their WAL reaches disk: a crash of the server process
        // loses nothing (PostgreSQL has it), one of the database machine may lose the
        // last fraction of a second. `full` keeps the database's own setting.
        session.push_str(" -c synchronous_commit=off");
    }
    config.options(&session);
    if config.get_application_name().is_none() {
        config.application_name("atomsync");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // A database that vanished (a lost machine, a cut network) is noticed within about
    // half a minute, not the system's default two hours: the listener must not sit on
    // a dead connection while commits go unheard.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    Ok(config)
}

/// The backend's own small runtime (see the backend's "Its own runtime").
pub(super) fn runtime() -> Result<Runtime, StorageError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("atomsync-postgres")
        .enable_all()
        .build()
        .map_err(|e| StorageError::Incompatible(format!("cannot start a runtime: {e}")))
}

/// A pool of `size` connections made from `config`. Once the epoch is settled, each new
/// connection is checked by `epochs` before it is handed out: one that reaches a database
/// gone back in time renews (or learns) its epoch first, and one that cannot be checked is
/// not used (the caller hears 503). Every use of the pool must run on the backend's
/// runtime, where its connections are made and driven.
pub(super) fn pool(
    config: tokio_postgres::Config,
    size: u32,
    epochs: Arc<Epochs>,
) -> Result<Pool, StorageError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size as usize)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .post_create(Hook::async_fn(move |client, _| {
            let epochs = epochs.clone();
            Box::pin(async move {
                if epochs.settled() {
                    epochs.check(client).await.map_err(|e| {
                        HookError::message(format!("checking the database's epoch: {e}"))
                    })?;
                }
                Ok(())
            })
        }))
        .build()
        .map_err(|e| StorageError::Incompatible(format!("connection pool: {e}")))
}

/// A pooled connection, the wait for it counted in the metrics as SQLite's reads are.
pub(super) async fn get(pool: &Pool) -> Result<Object, PoolError> {
    let waited = std::time::Instant::now();
    let got = pool.get().await;
    if let Some(m) = crate::metrics::get() {
        m.pool_wait(waited, &got);
    }
    got
}
