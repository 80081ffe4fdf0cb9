//! One connection of the engine: the groups that sync with one server URL and token, and
//! the loop that keeps them synced. It tries the WebSocket; if the server answers HTTP but
//! not the WebSocket it polls over HTTP for a while and then tries again; when nothing
//! answers it marks its groups offline and retries with backoff. A 401 stops it until a
//! group is kicked (`sync_now`) or attached again; a 403 stops only its group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::backoff::Backoff;
use super::http::HttpApi;
use super::round::Slot;
use super::ws::{ConnectError, Socket};
use super::{ConnCommand, live, polling};
use crate::options::{ConnectionKey, Endpoints};
use crate::{ClientError, Status};

/// How a mode of the connection ended.
pub(crate) enum Outcome {
    /// The engine dropped the connection: it ends.
    Closed,
    /// Connect again at once (a group was reset and must catch up from 0).
    Reconnect,
    /// HTTP polling ran its course: try the WebSocket again.
    TryWebSocket,
    /// The attempt failed: offline, then backoff (or a stop, for 401).
    Failed(ClientError),
}

/// What a command changed, for the running mode to act on.
pub(crate) enum Effect {
    Added(String),
    Removed(String),
    Wake,
    Kick(String),
}

/// The state of one connection.
pub(crate) struct Conn {
    pub(crate) key: ConnectionKey,
    pub(crate) endpoints: Endpoints,
    pub(crate) http: HttpApi,
    /// The WebSocket's TLS connector when the options trust roots of their own.
    connector: Option<tokio_tungstenite::Connector>,
    pub(crate) commands: mpsc::UnboundedReceiver<ConnCommand>,
    pub(crate) slots: BTreeMap<String, Slot>,
    pub(crate) backoff: Backoff,
    /// The server refused the token: no attempt until a kick or an attach.
    auth_stopped: bool,
    /// Why the last attempt failed; groups added meanwhile are told at once.
    last_failure: Option<Arc<ClientError>>,
    next_push_id: u64,
}

impl Conn {
    pub(crate) fn new(
        key: ConnectionKey,
        endpoints: Endpoints,
        client: reqwest::Client,
        connector: Option<tokio_tungstenite::Connector>,
        commands: mpsc::UnboundedReceiver<ConnCommand>,
    ) -> Conn {
        let http = HttpApi::new(client, endpoints.http.clone(), key.token.clone());
        Conn {
            key,
            endpoints,
            http,
            connector,
            commands,
            slots: BTreeMap::new(),
            backoff: Backoff::default(),
            auth_stopped: false,
            last_failure: None,
            next_push_id: 1,
        }
    }

    /// Keeps the groups synced until the engine drops the connection.
    pub(crate) async fn run(mut self) {
        loop {
            if self.auth_stopped || self.active_groups().is_empty() {
                match self.commands.recv().await {
                    None => return,
                    Some(command) => {
                        self.on_command(command);
                        continue;
                    }
                }
            }
            let token = self.key.token.clone();
            let outcome = match Socket::connect(
                &self.endpoints.ws,
                token.as_deref(),
                self.connector.clone(),
            )
            .await
            {
                Ok(socket) => live::run(&mut self, socket).await,
                Err(ConnectError::Unavailable(error)) => {
                    tracing::info!(server = ?self.key, %error, "no WebSocket: syncing over HTTP");
                    polling::run(&mut self).await
                }
                Err(ConnectError::Auth(error) | ConnectError::Network(error)) => {
                    Outcome::Failed(error)
                }
            };
            match outcome {
                Outcome::Closed => return,
                Outcome::Reconnect | Outcome::TryWebSocket => {}
                Outcome::Failed(error) => {
                    let stop = error.is_auth();
                    self.fail_all(error);
                    if stop {
                        self.auth_stopped = true;
                    } else {
                        let delay = self.backoff.next_delay();
                        if !self.wait(delay).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Marks every group offline with `error`.
    fn fail_all(&mut self, error: ClientError) {
        tracing::debug!(server = ?self.key, %error, "sync attempt failed");
        let error = Arc::new(error);
        for slot in self.slots.values_mut() {
            slot.live = false;
            slot.in_flight = None;
            if !slot.forbidden {
                let error = error.clone();
                slot.status(|status: &mut Status| status.fail(error));
            }
        }
        self.last_failure = Some(error);
    }

    /// A success: the backoff starts over.
    pub(crate) fn succeeded(&mut self) {
        self.backoff.reset();
        self.last_failure = None;
    }

    /// Waits out a backoff delay, handling commands meanwhile; a kick cuts it short.
    /// Returns false when the connection is to end.
    async fn wait(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                () = sleep_until(deadline) => return true,
                command = self.commands.recv() => match command {
                    None => return false,
                    Some(command) => match self.on_command(command) {
                        Effect::Kick(_) => return true,
                        Effect::Added(name) => self.tell_offline(&name),
                        Effect::Removed(_) | Effect::Wake => {}
                    },
                },
            }
        }
    }

    /// Gives a group added while offline the reason at once, so that its `ready` holds.
    fn tell_offline(&self, name: &str) {
        if let (Some(slot), Some(error)) = (self.slots.get(name), &self.last_failure) {
            let error = error.clone();
            slot.status(|status| status.fail(error));
        }
    }

    /// Applies a command to the slots and says what it changed.
    pub(crate) fn on_command(&mut self, command: ConnCommand) -> Effect {
        match command {
            ConnCommand::Add(shared) => {
                // A fresh attach is a change of options: whatever stopped the group or the
                // connection is worth trying again.
                self.auth_stopped = false;
                let name = shared.name.clone();
                self.slots.insert(name.clone(), Slot::new(shared));
                Effect::Added(name)
            }
            ConnCommand::Remove(name) => {
                self.slots.remove(&name);
                Effect::Removed(name)
            }
            ConnCommand::Wake => Effect::Wake,
            ConnCommand::Kick(name) => {
                self.auth_stopped = false;
                self.backoff.reset();
                if let Some(slot) = self.slots.get_mut(&name) {
                    slot.forbidden = false;
                    slot.retry_at = None;
                }
                Effect::Kick(name)
            }
        }
    }

    /// The groups to sync: every one the server has not refused.
    pub(crate) fn active_groups(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(_, slot)| !slot.forbidden)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A fresh id for a WebSocket push.
    pub(crate) fn push_id(&mut self) -> u64 {
        let id = self.next_push_id;
        self.next_push_id += 1;
        id
    }
}
