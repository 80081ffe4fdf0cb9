//! [`GroupActor`]: streams one group's commits to its subscribers, in `seq` order, and
//! answers each subscription with its exact hand-over point.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::*;
use atomsync_proto::Encoding;
use atomsync_proto::wire::{Doc, PageWriter};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use super::registry::{Groups, forget};
use crate::storage::{Committed, PageQuery, Storage};

/// One encoded `changes` frame of a commit, shared by every subscriber of that encoding
/// (queued as an `Arc`, see [`Subscriber::queue`]).
#[derive(Debug, Clone)]
pub struct LiveFrame {
    /// The group the frame belongs to.
    pub group: Arc<str>,
    /// The seq of the last document in the frame.
    pub seq: u64,
    /// The frame's encoding (binary MessagePack or JSON text).
    pub encoding: Encoding,
    /// The encoded frame.
    pub bytes: Bytes,
}

/// A session's registration with a group: where its frames go.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The connection, unique for the life of the process.
    pub conn_id: u64,
    /// The encoding of the frame that subscribed.
    pub encoding: Encoding,
    /// The connection's bounded outgoing queue, shared by all its subscriptions. It holds
    /// `Arc`s: the actor hands every subscriber the same frame for one reference count,
    /// and tokio allocates a queue's first 32 slots up front, for every connection (8
    /// bytes a slot, not the frame's 64).
    pub queue: mpsc::Sender<Arc<LiveFrame>>,
    /// Notified when the queue was full: the connection is too slow and must close (1013).
    pub overflow: Arc<Notify>,
}

/// Registers (or replaces) a connection's subscription; answers with the hand-over point.
#[derive(Message)]
#[rtype(result = "SubscribeAck")]
pub struct Subscribe {
    /// Where the group's live frames go.
    pub subscriber: Subscriber,
}

/// The hand-over point of a subscription: every commit with a greater `seq` reaches the
/// subscriber's queue; the session catches up from storage up to and including `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub struct SubscribeAck {
    /// The seq of the last commit streamed before the registration.
    pub seq: u64,
}

/// Removes a connection's subscription, if any.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The connection.
    pub conn_id: u64,
}

/// How many subscribers the actor holds (for tests and metrics).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SubscriberCount;

/// The most documents, and about the most bytes of values, the actor reads and sends as one
/// frame to fill a gap before a commit (see `Handler<Stream>`); subscribers further behind
/// resume from their cursors instead, catching up in bounded pages.
pub(super) const GAP_DOCS: usize = 1000;
const GAP_BYTES: usize = 8 << 20;

/// What one live `changes` frame carries, about: a large commit (a push of eight 1 MiB
/// values) goes out as several frames, each at least one document, in seq order
/// (PROTOCOL.md section 4: every frame is bounded in bytes).
pub(super) const LIVE_FRAME_BYTES: usize = 1 << 20;

/// A commit of the group, delivered by the registry in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Stream(pub(super) Committed);

/// The actor of one group. Its state is private; only messages reach it.
pub struct GroupActor {
    name: Arc<str>,
    storage: Storage,
    /// The seq of the last commit handed to subscribers (or in storage at start).
    streamed_seq: u64,
    subscribers: HashMap<u64, Subscriber>,
    /// How long the actor lives without subscribers.
    idle_timeout: Duration,
    /// Counts the times the actor went idle: an idle check scheduled before a later
    /// subscription finds its count stale and does nothing.
    idle_round: u64,
    /// The registry's map, to leave it when stopping. Weak: the registry owns the actors'
    /// addresses, not the other way round.
    registry: Weak<Groups>,
    /// `subscribers.len()` as last added to the subscriptions gauge.
    counted: usize,
}

impl GroupActor {
    /// An actor for `name`; its stream position is read from storage when it starts. With
    /// no subscriber for `idle_timeout`, it stops and leaves `registry`.
    pub(super) fn new(
        name: Arc<str>,
        storage: Storage,
        idle_timeout: Duration,
        registry: Weak<Groups>,
    ) -> GroupActor {
        GroupActor {
            name,
            storage,
            streamed_seq: 0,
            subscribers: HashMap::new(),
            idle_timeout,
            idle_round: 0,
            registry,
            counted: 0,
        }
    }

    /// Brings the subscriptions gauge in line with the subscribers held: called after
    /// every change of them, whichever way they change (subscribe, unsubscribe, too slow).
    fn recount(&mut self) {
        let now = self.subscribers.len();
        if now != self.counted {
            if let Some(m) = crate::metrics::get() {
                m.subscriptions.add(now as i64 - self.counted as i64);
            }
            self.counted = now;
        }
    }

    /// Schedules a stop after the idle timeout if the actor has no subscriber now; a
    /// subscription before then cancels it.
    fn watch_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.subscribers.is_empty() {
            return;
        }
        self.idle_round += 1;
        let round = self.idle_round;
        ctx.run_later(self.idle_timeout, move |actor, ctx| {
            if actor.idle_round == round && actor.subscribers.is_empty() {
                tracing::debug!(group = %actor.name, "group actor idle: stopping");
                ctx.stop();
            }
        });
    }

    /// Hands one commit that follows what was streamed (`after() <= streamed_seq`) to every
    /// subscriber. The documents already streamed, or covered by the actor's starting read (a
    /// commit made while the actor started), are left out, so none is streamed twice.
    fn stream(&mut self, committed: Committed) {
        if committed.seq <= self.streamed_seq {
            return;
        }
        let covered = self.streamed_seq;
        self.streamed_seq = committed.seq;
        if self.subscribers.is_empty() {
            return;
        }
        let mut docs = committed.docs;
        if docs.first().is_some_and(|d| d.seq <= covered) {
            docs.retain(|d| d.seq > covered);
        }
        self.fan_out(&docs);
    }

    /// Hands `docs` to every subscriber as `changes` frames (one, unless the commit is
    /// larger than [`LIVE_FRAME_BYTES`]), encoded once per encoding.
    fn fan_out(&mut self, docs: &[Doc]) {
        if docs.is_empty() {
            return;
        }
        let mut encoded: [Option<Vec<Arc<LiveFrame>>>; 2] = [None, None];
        let name = &self.name;
        self.subscribers.retain(|_, sub| {
            let slot = match sub.encoding {
                Encoding::MsgPack => 0,
                Encoding::Json => 1,
            };
            let frames = encoded[slot].get_or_insert_with(|| live_frames(name, docs, sub.encoding));
            for live in frames.iter() {
                match sub.queue.try_send(live.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Too slow to keep up: dropping it here keeps the group and every
                        // other subscriber at full speed; the client resumes from its cursor.
                        sub.overflow.notify_one();
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
        self.recount();
    }
}

/// `docs` as `changes` frames of about [`LIVE_FRAME_BYTES`] each, in seq order.
fn live_frames(group: &Arc<str>, docs: &[Doc], encoding: Encoding) -> Vec<Arc<LiveFrame>> {
    let mut frames = Vec::new();
    let mut writer = PageWriter::changes(group, encoding, LIVE_FRAME_BYTES);
    let mut close = |writer: PageWriter| {
        if let Some(seq) = writer.last_seq() {
            frames.push(Arc::new(LiveFrame {
                group: group.clone(),
                seq,
                encoding,
                bytes: Bytes::from(writer.finish_changes()),
            }));
        }
    };
    for doc in docs {
        if !writer.offer(doc) {
            let full = std::mem::replace(
                &mut writer,
                PageWriter::changes(group, encoding, LIVE_FRAME_BYTES),
            );
            close(full);
            writer.offer(doc);
        }
    }
    close(writer);
    frames
}

impl Actor for GroupActor {
    type Context = Context<Self>;

    fn stopped(&mut self, ctx: &mut Self::Context) {
        if let Some(groups) = self.registry.upgrade() {
            forget(&groups, &self.name, &ctx.address());
        }
    }

    fn started(&mut self, ctx: &mut Self::Context) {
        // Read the group's seq before handling any message (`wait` holds the mailbox), so
        // the first subscriber's hand-over point is right.
        let storage = self.storage.clone();
        let name = self.name.clone();
        let load = async move { storage.group_seq(name).await };
        ctx.wait(load.into_actor(self).map(|loaded, actor, ctx| match loaded {
            Ok(seq) => {
                actor.streamed_seq = seq;
                actor.watch_idle(ctx);
            }
            Err(e) => {
                // Stopping drops the queued messages (their senders see an error, 503); the
                // registry starts a fresh actor on the next request.
                tracing::error!(group = %actor.name, error = %e, "cannot read the group; stopping its actor");
                ctx.stop();
            }
        }));
    }
}

impl Drop for GroupActor {
    fn drop(&mut self) {
        self.subscribers.clear();
        self.recount();
    }
}

impl Handler<Stream> for GroupActor {
    type Result = ();

    fn handle(&mut self, Stream(committed): Stream, ctx: &mut Self::Context) {
        let after = committed.after();
        if committed.seq <= self.streamed_seq
            || after <= self.streamed_seq
            || self.subscribers.is_empty()
        {
            // Nothing between what was streamed and this commit, or nobody to stream it to
            // (a later subscriber catches up from storage, where the commit already is).
            let had = !self.subscribers.is_empty();
            self.stream(committed);
            if had {
                // Subscribers whose queues were closed or full are gone now.
                self.watch_idle(ctx);
            }
            return;
        }
        // A gap: seqs after the last streamed and before this commit were committed by
        // another writer (another instance on a shared database; never on SQLite, whose
        // single writer hands every commit over in order). They are durable, so read them,
        // holding the mailbox so nothing is streamed or registered meanwhile.
        let storage = self.storage.clone();
        let (name, from) = (self.name.clone(), self.streamed_seq);
        let query = PageQuery {
            since: from,
            upto: after,
            limit: GAP_DOCS,
            full: false,
        };
        let fill = async move { storage.pull(name, query, GAP_BYTES).await };
        ctx.wait(fill.into_actor(self).map(move |page, actor, ctx| match page {
            Ok(page) if !page.more && !page.reset => {
                actor.fan_out(&page.docs);
                actor.streamed_seq = after;
                actor.stream(committed);
                actor.watch_idle(ctx);
            }
            failed => {
                // Too far behind to hold in one frame, compacted meanwhile, or unreadable:
                // every subscriber resumes from its own cursor (1013), losing nothing.
                if let Err(e) = failed {
                    tracing::warn!(group = %actor.name, error = %e, "cannot read the commits before a commit; subscribers resume");
                }
                for (_, sub) in actor.subscribers.drain() {
                    sub.overflow.notify_one();
                }
                actor.recount();
                actor.streamed_seq = committed.seq;
                actor.watch_idle(ctx);
            }
        }));
    }
}

impl Handler<Subscribe> for GroupActor {
    type Result = SubscribeAck;

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> SubscribeAck {
        self.idle_round += 1;
        self.subscribers
            .insert(msg.subscriber.conn_id, msg.subscriber);
        self.recount();
        SubscribeAck {
            seq: self.streamed_seq,
        }
    }
}

impl Handler<Unsubscribe> for GroupActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Self::Context) {
        if self.subscribers.remove(&msg.conn_id).is_some() {
            self.recount();
            self.watch_idle(ctx);
        }
    }
}

impl Handler<SubscriberCount> for GroupActor {
    type Result = usize;

    fn handle(&mut self, _: SubscriberCount, _: &mut Self::Context) -> usize {
        self.subscribers.len()
    }
}
