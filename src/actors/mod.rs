//! The group actors: one actix actor per document group, and the registry that starts them.
//!
//! A group actor is the one place where its group's pushes are put in order and where its
//! subscribers are registered, so the hand-over from catch-up to live streaming is exact:
//!
//! 1. [`Push`]: the actor forwards the validated push, in arrival order, to the storage
//!    [`Writer`](crate::storage::Writer), the single thread that version-checks, assigns
//!    versions and `seq`s, and commits (see `storage::writer`). The reply future resolves
//!    once the commit is durable.
//! 2. After the commit the writer sends the actor a [`Committed`](crate::storage::Committed)
//!    message. Messages from one sender keep their order, so the actor sees commits in `seq`
//!    order. It encodes each commit's `changes` frame once per encoding in use and hands the
//!    same bytes to every subscriber's bounded queue.
//! 3. [`Subscribe`] registers a session's queue and answers with the `seq` of the last commit
//!    the actor has streamed: the session catches up from storage up to exactly that `seq`,
//!    and everything after it reaches its queue live. No gap, no duplicate.
//!
//! Why SQLite never runs on an actor's thread: a blocking call inside an actix actor stalls
//! every actor and connection on that arbiter. Writes run on the writer thread; reads (pull,
//! catch-up) on actix-web's blocking pool (`web::block`) with pooled read connections.

mod group;
#[cfg(test)]
mod push_tests;
mod registry;
#[cfg(test)]
mod subscribe_tests;

pub use group::{
    GroupActor, LiveFrame, Push, PushError, Subscribe, SubscribeAck, Subscriber, SubscriberCount,
    Unsubscribe,
};
pub use registry::Registry;
