//! [`PushTicket`]: the future of a push handed to storage.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::{PushOutcome, StorageError};

/// A push handed to storage: resolves with its outcome once the push is durable, or with
/// why nothing of it was applied. Dropping the ticket does not withdraw the push.
#[derive(Debug)]
#[must_use = "the ticket is the only way to learn a push's outcome"]
pub struct PushTicket(Ticket);

/// The sending half: where a backend answers a push it took.
pub(crate) type Reply = oneshot::Sender<Result<PushOutcome, StorageError>>;

#[derive(Debug)]
enum Ticket {
    Queued(oneshot::Receiver<Result<PushOutcome, StorageError>>),
    Failed(Option<StorageError>),
}

impl PushTicket {
    /// A ticket and the reply that resolves it.
    pub(crate) fn new() -> (PushTicket, Reply) {
        let (reply, outcome) = oneshot::channel();
        (PushTicket(Ticket::Queued(outcome)), reply)
    }

    /// A push refused before anything was applied.
    pub(crate) fn failed(error: StorageError) -> PushTicket {
        PushTicket(Ticket::Failed(Some(error)))
    }
}

impl Future for PushTicket {
    type Output = Result<PushOutcome, StorageError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            // A dropped reply: the backend stopped without answering, so nothing was applied.
            Ticket::Queued(outcome) => Pin::new(outcome)
                .poll(cx)
                .map(|answer| answer.unwrap_or(Err(StorageError::WriterGone))),
            Ticket::Failed(error) => {
                Poll::Ready(Err(error.take().unwrap_or(StorageError::WriterGone)))
            }
        }
    }
}
