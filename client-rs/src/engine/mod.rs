//! The sync engine: one tokio task per store that syncs every attached group.
//!
//! The task routes commands from the atoms (attach, detach, wake after a local write,
//! kick for `sync_now`) to connections: one per server URL and token, each a future the
//! task polls, so several groups share one WebSocket. A connection (see `conn`) is live
//! over the WebSocket when it can be (`live`), falls back to HTTP polling when the server
//! answers HTTP but not the WebSocket (`polling`), and reconnects with backoff. What
//! both modes do to a group (apply changes, check the epoch, push and settle) is in
//! `round`; `applier` stores `changes` frames in the background while the socket is read
//! on, and `batch` gathers the frames that arrive meanwhile, so that a busy group costs
//! one transaction per batch rather than per frame; all of it writes through [`GroupShared`](crate::group::GroupShared) on
//! blocking threads.

mod applier;
mod backoff;
mod batch;
mod conn;
mod http;
mod live;
mod polling;
mod round;
mod ws;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Once};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::group::GroupShared;
use crate::options::{ConnectionKey, Endpoints};
use crate::{ClientError, Status};

/// What the atoms ask of the engine.
pub(crate) enum Command {
    /// Sync this group (new, or its options changed).
    Attach(Arc<GroupShared>),
    /// Stop syncing this group.
    Detach(String),
    /// The group has new pending changes.
    Wake(String),
    /// `sync_now`: retry at once, even after an auth error.
    Kick(String),
    /// Stop everything.
    Shutdown,
}

/// What the engine asks of one connection.
pub(crate) enum ConnCommand {
    Add(Arc<GroupShared>),
    Remove(String),
    Wake,
    Kick(String),
}

/// The running engine of a store.
pub(crate) struct EngineHandle {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) task: JoinHandle<()>,
}

/// Starts the engine on `runtime`.
pub(crate) fn start(runtime: &Handle) -> Result<EngineHandle, ClientError> {
    install_crypto_provider();
    let client = crate::tls::http_client(&[], http::CONNECT_TIMEOUT)?;
    let (commands, receiver) = mpsc::unbounded_channel();
    let engine = Engine {
        client,
        routes: HashMap::new(),
        connections: HashMap::new(),
    };
    let task = runtime.spawn(engine.run(receiver));
    Ok(EngineHandle { commands, task })
}

/// reqwest and tokio-tungstenite are built without a default crypto provider (ring builds
/// far faster than aws-lc); install ring once for the process. An application that
/// installed its own keeps it.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

type Running = FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send>>>;

struct Engine {
    client: reqwest::Client,
    /// Which connection each group syncs over.
    routes: HashMap<String, ConnectionKey>,
    /// The command channel of each connection; dropping it ends the connection once it
    /// has handled what was sent before.
    connections: HashMap<ConnectionKey, mpsc::UnboundedSender<ConnCommand>>,
}

impl Engine {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut running = Running::new();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None | Some(Command::Shutdown) => break,
                    Some(command) => self.route(command, &mut running),
                },
                Some(()) = running.next(), if !running.is_empty() => {}
            }
        }
        // Dropping `running` cancels every connection: sockets close, and a transaction
        // in progress on a blocking thread still commits or rolls back as a whole.
    }

    fn route(&mut self, command: Command, running: &mut Running) {
        match command {
            Command::Attach(shared) => self.attach(shared, running),
            Command::Detach(group) => self.detach(&group),
            Command::Wake(group) => self.send_to(&group, ConnCommand::Wake),
            Command::Kick(group) => self.send_to(&group, ConnCommand::Kick(group.clone())),
            Command::Shutdown => {}
        }
    }

    fn attach(&mut self, shared: Arc<GroupShared>, running: &mut Running) {
        let options = shared.options();
        let key = options.connection_key();
        if self.routes.get(&shared.name).is_some_and(|old| *old != key) {
            self.detach(&shared.name);
        }
        let endpoints = match Endpoints::parse(&options.url) {
            Ok(endpoints) => endpoints,
            Err(error) => {
                // Checked when the atom was made; kept as a status rather than a panic.
                shared.update_status(|status: &mut Status| status.fail(Arc::new(error)));
                return;
            }
        };
        if !self.connections.contains_key(&key) {
            // Custom roots need a client (and a WebSocket connector) of their own.
            let tls = if key.roots.is_empty() {
                Ok((self.client.clone(), None))
            } else {
                crate::tls::http_client(&key.roots, http::CONNECT_TIMEOUT)
                    .and_then(|client| Ok((client, crate::tls::ws_connector(&key.roots)?)))
            };
            let (client, connector) = match tls {
                Ok(tls) => tls,
                Err(error) => {
                    shared.update_status(|status: &mut Status| status.fail(Arc::new(error)));
                    return;
                }
            };
            let (sender, receiver) = mpsc::unbounded_channel();
            let connection = conn::Conn::new(key.clone(), endpoints, client, connector, receiver);
            running.push(Box::pin(connection.run()));
            self.connections.insert(key.clone(), sender);
        }
        self.routes.insert(shared.name.clone(), key.clone());
        let Some(sender) = self.connections.get(&key) else {
            return;
        };
        let _ = sender.send(ConnCommand::Add(shared));
    }

    fn detach(&mut self, group: &str) {
        let Some(key) = self.routes.remove(group) else {
            return;
        };
        if let Some(sender) = self.connections.get(&key) {
            let _ = sender.send(ConnCommand::Remove(group.to_owned()));
        }
        if !self.routes.values().any(|other| *other == key) {
            self.connections.remove(&key);
        }
    }

    fn send_to(&self, group: &str, command: ConnCommand) {
        let sender = self
            .routes
            .get(group)
            .and_then(|key| self.connections.get(key));
        if let Some(sender) = sender {
            let _ = sender.send(command);
        }
    }
}
