//! The group actors: one actix actor per subscribed document group, and the registry that
//! starts them and routes commits to them.
//!
//! Pushes do not pass through the actors: the push path ([`crate::push`]) hands them to
//! storage, whose single writer serializes every group's version checks and `seq`s (see
//! `storage::writer`). A group actor does what only it can: order the group's commits
//! against its subscriptions and fan them out.
//!
//! 1. Once a commit is durable, the writer hands it to the [`Registry`]'s commit sink, which
//!    passes it to the group's actor, if the group has one (no actor: nobody subscribed, and
//!    nothing to stream). One sender in commit order, so the actor sees commits in `seq`
//!    order. It encodes each commit's `changes` frame once per encoding in use and hands the
//!    same bytes to every subscriber's bounded queue.
//! 2. [`Subscribe`] registers a session's queue and answers with the `seq` of the last commit
//!    the actor has streamed: the session catches up from storage up to exactly that `seq`,
//!    and everything after it reaches its queue live. No gap, no duplicate.
//! 3. A new actor reads its group's `seq` from storage before it answers anything. Every
//!    commit the registry routed to it before that read is covered by the read and skipped,
//!    and every commit the registry could not route to it (before the actor existed) is
//!    in the read, so the hand-over stays exact.
//!
//! Why storage never runs on an actor's thread: a blocking call inside an actix actor stalls
//! every actor and connection on that arbiter. Writes run on the writer thread; reads (pull,
//! catch-up, the starting `seq`) on the blocking pool with pooled read connections.

mod group;
mod registry;
#[cfg(test)]
mod subscribe_tests;

pub use group::{
    GroupActor, LiveFrame, Subscribe, SubscribeAck, Subscriber, SubscriberCount, Unsubscribe,
};
pub use registry::Registry;
