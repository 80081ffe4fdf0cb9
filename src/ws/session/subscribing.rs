//! A session's subscriptions: registering with a group's actor, the catch-up rounds up to
//! its hand-over point ([`Handover`]), live frames, and unsubscribing. The hard ordering
//! logic lives in [`Handover`]; this part moves frames between it, the actors and the socket.

use std::sync::Arc;

use actix::Addr;
use atomsync_proto::wire::ServerFrame;
use atomsync_proto::{Encoding, ErrorCode, WireError};
use tokio::sync::mpsc;

use super::Session;
use crate::actors::{GroupActor, LiveFrame, SubscribeAck, Subscriber, Unsubscribe};
use crate::auth::Access;
use crate::ws::catch_up::{self, CatchUpEvent, Round, Step};
use crate::ws::outbox::End;
use crate::ws::session::{CATCH_UP_AHEAD, LIVE_BATCH};
use crate::ws::subscription::{Handover, RoundEnd, Subscription};

impl Session {
    /// `subscribe`: registers with the group actor, then starts catching up to its
    /// hand-over point. Subscribing again replaces the old subscription and its round.
    pub(super) async fn subscribe(
        &mut self,
        group: String,
        since: u64,
        encoding: Encoding,
    ) -> Result<(), End> {
        if let Err(error) = self
            .state
            .auth
            .authorize(&self.identity, &group, Access::Read)
        {
            return self.error(encoding, None, Some(group), error).await;
        }
        let name: Arc<str> = group.into();
        self.stats.subscribed(&name);
        if let Some(mut old) = self.subscriptions.remove(&name) {
            // The registration below replaces the old one at the actor (same connection).
            old.stop();
        }
        let (addr, ack) = match self.register(&name, encoding).await {
            Ok(registered) => registered,
            Err(error) => {
                return self
                    .error(encoding, None, Some(name.to_string()), error)
                    .await;
            }
        };
        let generation = self.next_generation();
        let task = self.start_round(name.clone(), since, ack.seq, encoding, generation);
        let handover = Handover::new(name.clone(), generation, since, ack.seq);
        self.subscriptions.insert(
            name,
            Box::new(Subscription::new(addr, encoding, handover, task)),
        );
        Ok(())
    }

    pub(super) async fn unsubscribe(
        &mut self,
        group: String,
        encoding: Encoding,
    ) -> Result<(), End> {
        if let Some(mut sub) = self.subscriptions.remove(group.as_str()) {
            sub.stop();
            self.release_catch_up();
            // Awaited, so that once `unsubscribed` is sent no new frame of the group is
            // queued; frames already queued find no subscription and are dropped.
            let _ = sub
                .addr
                .send(Unsubscribe {
                    conn_id: self.conn_id,
                })
                .await;
        }
        self.out
            .frame(encoding, &ServerFrame::Unsubscribed { group })
            .await
    }

    /// A live frame, then every frame already queued behind it (up to [`LIVE_BATCH`]):
    /// written together, they leave in one flush of the connection instead of one each,
    /// and the session wakes once per batch, not once per frame.
    pub(super) async fn on_live_batch(
        &mut self,
        frame: Arc<LiveFrame>,
        queue: &mut mpsc::Receiver<Arc<LiveFrame>>,
    ) -> Result<(), End> {
        self.on_live(frame).await?;
        for _ in 1..LIVE_BATCH {
            match queue.try_recv() {
                Ok(frame) => self.on_live(frame).await?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    async fn on_live(&mut self, frame: Arc<LiveFrame>) -> Result<(), End> {
        // No subscription: unsubscribed, or replaced and not yet registered; dropped.
        let Some(sub) = self.subscriptions.get_mut(&frame.group) else {
            return Ok(());
        };
        match sub.handover.live(frame) {
            Some((encoding, bytes)) => self.out.bytes(encoding, &bytes).await,
            None => Ok(()),
        }
    }

    pub(super) async fn on_catch_up(&mut self, event: CatchUpEvent) -> Result<(), End> {
        let Some(sub) = self.subscriptions.get_mut(&event.group) else {
            return Ok(());
        };
        if sub.handover.generation() != event.generation {
            return Ok(()); // A replaced round's page, already in the channel.
        }
        let encoding = sub.encoding;
        match event.step {
            Step::Frame { bytes, seq } => {
                sub.handover.sent_page(seq);
                self.out.bytes(encoding, &bytes).await
            }
            Step::Done {
                seq,
                reset,
                floor,
                epoch,
            } => match sub.handover.round_done(seq, reset) {
                RoundEnd::Live { seq, reset, frames } => {
                    sub.round_finished();
                    let subscribed = ServerFrame::Subscribed {
                        group: event.group.to_string(),
                        epoch: epoch.to_string(),
                        seq,
                        reset,
                        floor,
                    };
                    self.out.frame(encoding, &subscribed).await?;
                    for (encoding, bytes) in frames {
                        self.out.bytes(encoding, &bytes).await?;
                    }
                    Ok(())
                }
                RoundEnd::Again { since } => self.next_round(event.group, since, encoding).await,
            },
            Step::Failed(error) => {
                self.drop_subscription(&event.group);
                self.error(encoding, None, Some(event.group.to_string()), error)
                    .await
            }
        }
    }

    /// The group committed faster than catch-up held its frames: register again for a new
    /// hand-over point and read on from the cursor.
    async fn next_round(
        &mut self,
        group: Arc<str>,
        since: u64,
        encoding: Encoding,
    ) -> Result<(), End> {
        tracing::debug!(conn_id = self.conn_id, %group, since, "catch-up lagged the group; another round");
        if !self.subscriptions.contains_key(&group) {
            return Ok(());
        }
        let (addr, ack) = match self.register(&group, encoding).await {
            Ok(registered) => registered,
            Err(error) => {
                self.drop_subscription(&group);
                return self
                    .error(encoding, None, Some(group.to_string()), error)
                    .await;
            }
        };
        let generation = self.next_generation();
        let task = self.start_round(group.clone(), since, ack.seq, encoding, generation);
        if let Some(sub) = self.subscriptions.get_mut(&group) {
            sub.addr = addr;
            sub.handover.next_round(generation, ack.seq);
            sub.set_task(task);
        }
        Ok(())
    }

    /// Registers this connection's queue with the group's actor (started if none runs):
    /// the actor and the hand-over point.
    async fn register(
        &self,
        group: &str,
        encoding: Encoding,
    ) -> Result<(Addr<GroupActor>, SubscribeAck), WireError> {
        let subscriber = Subscriber {
            conn_id: self.conn_id,
            encoding,
            queue: self.live_tx.clone(),
            overflow: self.overflow.clone(),
        };
        self.state
            .registry
            .subscribe(group, subscriber)
            .await
            .map_err(|e| WireError::new(ErrorCode::Unavailable, format!("group actor: {e}")))
    }

    fn start_round(
        &mut self,
        group: Arc<str>,
        since: u64,
        upto: u64,
        encoding: Encoding,
        generation: u64,
    ) -> tokio::task::AbortHandle {
        let round = Round {
            storage: self.state.storage.clone(),
            group,
            since,
            upto,
            encoding,
            generation,
        };
        let (events, _) = self
            .catch_up
            .get_or_insert_with(|| mpsc::channel(CATCH_UP_AHEAD));
        catch_up::spawn(round, events.clone())
    }

    /// Drops the catch-up channel once no subscription is catching up. Nothing current can
    /// be left in it: a round's last event is what makes its subscription live, and what a
    /// replaced or stopped round still sends is stale anyway.
    pub(super) fn release_catch_up(&mut self) {
        if self.catch_up.is_some()
            && self
                .subscriptions
                .values()
                .all(|sub| sub.handover.is_live())
        {
            self.catch_up = None;
        }
    }

    fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    pub(super) fn drop_subscription(&mut self, group: &str) {
        if let Some(mut sub) = self.subscriptions.remove(group) {
            sub.stop();
            sub.addr.do_send(Unsubscribe {
                conn_id: self.conn_id,
            });
        }
    }
}
