//! [`GroupActor`]: streams one group's commits to its subscribers, in `seq` order, and
//! answers each subscription with its exact hand-over point.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use atomsync_proto::Encoding;
use atomsync_proto::wire::{Doc, encode_changes};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::storage::{Committed, Storage};

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
    /// `subscribers.len()` as last added to the subscriptions gauge.
    counted: usize,
}

impl GroupActor {
    /// An actor for `name`; its stream position is read from storage when it starts.
    pub fn new(name: Arc<str>, storage: Storage) -> GroupActor {
        GroupActor {
            name,
            storage,
            streamed_seq: 0,
            subscribers: HashMap::new(),
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

    /// Hands `docs` to every subscriber as one `changes` frame, encoded once per encoding.
    fn fan_out(&mut self, docs: &[Doc]) {
        let Some(last) = docs.last().map(|d| d.seq) else {
            return;
        };
        let mut encoded: [Option<Arc<LiveFrame>>; 2] = [None, None];
        let name = &self.name;
        self.subscribers.retain(|_, sub| {
            let slot = match sub.encoding {
                Encoding::MsgPack => 0,
                Encoding::Json => 1,
            };
            let live = encoded[slot]
                .get_or_insert_with(|| {
                    Arc::new(LiveFrame {
                        group: name.clone(),
                        seq: last,
                        encoding: sub.encoding,
                        bytes: Bytes::from(encode_changes(name, docs, last, sub.encoding)),
                    })
                })
                .clone();
            match sub.queue.try_send(live) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Too slow to keep up: dropping it here keeps the group and every other
                    // subscriber at full speed; the client resumes from its cursor.
                    sub.overflow.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.recount();
    }
}

impl Actor for GroupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Read the group's seq before handling any message (`wait` holds the mailbox), so
        // the first subscriber's hand-over point is right.
        let storage = self.storage.clone();
        let name = self.name.clone();
        let load = async move { storage.group_seq(name).await };
        ctx.wait(load.into_actor(self).map(|loaded, actor, ctx| match loaded {
            Ok(seq) => actor.streamed_seq = seq,
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
            self.stream(committed);
            return;
        }
        // A gap: seqs after the last streamed and before this commit were committed by
        // another writer (another instance on a shared database; never on SQLite, whose
        // single writer hands every commit over in order). They are durable, so read them,
        // holding the mailbox so nothing is streamed or registered meanwhile.
        let storage = self.storage.clone();
        let (name, from) = (self.name.clone(), self.streamed_seq);
        let fill = async move { storage.pull(name, from, GAP_DOCS, after).await };
        let small = |docs: &[Doc]| {
            let bytes: usize = docs
                .iter()
                .map(|d| d.value.as_ref().map_or(0, |v| v.len()))
                .sum();
            bytes <= GAP_BYTES
        };
        ctx.wait(fill.into_actor(self).map(move |page, actor, _| match page {
            Ok(page) if !page.more && !page.reset && small(&page.docs) => {
                actor.fan_out(&page.docs);
                actor.streamed_seq = after;
                actor.stream(committed);
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
            }
        }));
    }
}

impl Handler<Subscribe> for GroupActor {
    type Result = SubscribeAck;

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> SubscribeAck {
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

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) {
        self.subscribers.remove(&msg.conn_id);
        self.recount();
    }
}

impl Handler<SubscriberCount> for GroupActor {
    type Result = usize;

    fn handle(&mut self, _: SubscriberCount, _: &mut Self::Context) -> usize {
        self.subscribers.len()
    }
}
