//! The one push path, shared by `POST /sync` and the WebSocket `push` frame.
//!
//! Each transport reads and decodes its own request first (HTTP: token, content type, body
//! size, shape; WebSocket: the token at the upgrade, then the frame's shape), then calls
//! [`push`], which goes on in the order of PROTOCOL.md section 3: the group's permission
//! (403), then every change (400 or 413), then storage. A request refused at any step
//! applied nothing.

use std::future::Future;
use std::sync::Arc;

use atomsync_proto::wire::{PushRequest, PushResponse, UncheckedPush};

use crate::auth::Identity;
use crate::error::RequestError;
use crate::http::AppState;

/// Checks `push` for `identity` and hands it on to be committed; the future resolves with
/// the response once the push is durable.
///
/// The checks and the hand-off happen when `push` is called, not when the future is first
/// polled: a WebSocket session that calls it for each `push` frame as it reads them gets its
/// pushes applied in the order they came, however it awaits the answers.
///
/// Errors: 403 `forbidden` when `identity` may not use the group; 400 `bad_request` or 413
/// `payload_too_large` for the first invalid change, in request order; 503 `unavailable`
/// or 500 `internal` when storage fails. Nothing was applied in every case.
pub fn push(
    state: &AppState,
    identity: Identity,
    push: UncheckedPush,
) -> impl Future<Output = Result<PushResponse, RequestError>> + 'static {
    let submitted = check(state, identity, push).map(|request| {
        let group: Arc<str> = request.group.into();
        let ticket = state.storage.push(group.clone(), request.changes);
        (group, ticket)
    });
    let epoch = state.storage.epoch_arc();
    async move {
        let (group, ticket) = submitted?;
        let outcome = ticket.await?;
        Ok(PushResponse {
            group: group.to_string(),
            epoch: epoch.to_string(),
            results: outcome.results,
            seq: outcome.seq,
        })
    }
}

/// The protocol's checks after the shape: the group's permission, then every change.
fn check(
    state: &AppState,
    identity: Identity,
    push: UncheckedPush,
) -> Result<PushRequest, RequestError> {
    state.auth.authorize(identity, &push.group)?;
    Ok(push.validate(&state.limits)?)
}
