//! The group actors: one actix actor per subscribed document group, and the registry that
//! starts them and routes commits to them.
//!
//! Pushes do not pass through the actors: the push path ([`crate::push`]) hands them to
//! storage, which serializes each group's version checks and `seq`s (on SQLite, its single
//! writer thread). A group actor does what only it can: order the group's commits against
//! its subscriptions and fan them out.
//!
//! 1. Once a commit is durable, storage hands it to the [`Registry`]'s commit sink, which
//!    passes it to the group's actor, if the group has one (no actor: nobody subscribed, and
//!    nothing to stream). Each group's commits arrive in `seq` order. The actor encodes each
//!    commit's `changes` frame once per encoding in use and hands the same bytes to every
//!    subscriber's bounded queue.
//! 2. [`Subscribe`] registers a session's queue and answers with the `seq` of the last commit
//!    the actor has streamed: the session catches up from storage up to exactly that `seq`,
//!    and everything after it reaches its queue live. No gap, no duplicate.
//! 3. A new actor reads its group's `seq` from storage before it answers anything. Every
//!    commit the registry routed to it before that read is covered by the read and skipped,
//!    and every commit the registry could not route to it (before the actor existed) is
//!    in the read, so the hand-over stays exact.
//! 4. A commit that does not follow the last one streamed (seqs committed by another writer,
//!    as another instance on a shared database would; or a notice carrying only a `seq`) is
//!    preceded by the missing documents, read from storage while the mailbox waits. The
//!    actor relies on storage, not on seeing every commit, for a gapless stream.
//!
//! 5. An actor with no subscriber for the idle timeout stops and leaves the registry; its
//!    group's commits since are in storage, and the next subscription starts a fresh actor
//!    (point 3), so a server of millions of groups keeps actors only for those in use.
//!
//! An actor only awaits storage's futures (the starting `seq`, a gap's documents); whatever
//! blocks stays inside the backend, never on the arbiter's thread, where it would stall
//! every actor and connection of that arbiter.

mod group;
#[cfg(test)]
mod idle_tests;
mod registry;
#[cfg(test)]
mod subscribe_tests;

pub use group::{
    GroupActor, LiveFrame, Subscribe, SubscribeAck, Subscriber, SubscriberCount, Unsubscribe,
};
pub use registry::{DEFAULT_IDLE_TIMEOUT, Registry};
