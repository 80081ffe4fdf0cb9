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

use crate::auth::{Access, Identity};
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
    identity: &Identity,
    push: UncheckedPush,
) -> impl Future<Output = Result<PushResponse, RequestError>> + 'static {
    let submitted = check(state, identity, push).map(|request| {
        let group: Arc<str> = request.group.into();
        let ticket = state.storage.push(group.clone(), request.changes);
        (group, ticket)
    });
    async move {
        let (group, ticket) = submitted?;
        let outcome = ticket.await?;
        Ok(PushResponse {
            group: group.to_string(),
            epoch: outcome.epoch.to_string(),
            results: outcome.results,
            seq: outcome.seq,
        })
    }
}

/// The protocol's checks after the shape: the group's permission, then every change.
fn check(
    state: &AppState,
    identity: &Identity,
    push: UncheckedPush,
) -> Result<PushRequest, RequestError> {
    state.auth.authorize(identity, &push.group, Access::Write)?;
    Ok(push.validate(&state.limits)?)
}

#[cfg(test)]
mod tests {
    use atomsync_proto::wire::PushResult;
    use atomsync_proto::{Encoding, ErrorCode};
    use tokio::sync::watch;

    use super::*;
    use crate::actors::Registry;
    use crate::auth::{Auth, SharedAuth};
    use crate::config::Config;
    use crate::storage::testing::TestDb;

    const USERS: &str = "[users.alice]\ntoken = \"a\"\ngroups = [\"todo\"]\n";

    async fn state(db: &TestDb, toml: &str) -> AppState {
        let config = Config::from_toml(toml).unwrap();
        let storage = db.open(1).await;
        AppState {
            registry: Registry::new(storage.clone()),
            storage,
            auth: SharedAuth::new(Auth::from_config(&config)),
            limits: config.limits(),
            max_body_bytes: config.server.max_body_bytes,
            shutdown: watch::channel(false).1,
            admin_token: None,
            liveness: crate::ws::Liveness::default(),
        }
    }

    fn unchecked(state: &AppState, json: &str) -> UncheckedPush {
        UncheckedPush::decode(json.as_bytes(), Encoding::Json, &state.limits).unwrap()
    }

    async fn code(state: &AppState, identity: &Identity, json: &str) -> ErrorCode {
        let request = unchecked(state, json);
        push(state, identity, request).await.unwrap_err().code()
    }

    #[actix_rt::test]
    async fn permission_comes_before_the_changes_and_the_first_bad_change_is_answered() {
        let db = TestDb::new();
        let s = state(&db, USERS).await;
        let alice = s.auth.authenticate(Some("a")).unwrap();
        let bad_key = r#"{"group": "other", "changes": [{"key": "", "base": 0, "value": 1}]}"#;
        assert_eq!(code(&s, &alice, bad_key).await, ErrorCode::Forbidden);
        let bad_key = r#"{"group": "todo", "changes": [{"key": "k", "base": 0, "value": 1},
                                                     {"key": "", "base": 0, "value": 1}]}"#;
        let error = push(&s, &alice, unchecked(&s, bad_key)).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::BadRequest);
        assert!(
            error.to_wire().message.starts_with("changes[1].key"),
            "{error}"
        );
        let repeated = r#"{"group": "todo", "changes": [{"key": "k", "base": 0, "value": 1},
                                                      {"key": "k", "base": 0, "value": 2}]}"#;
        assert_eq!(code(&s, &alice, repeated).await, ErrorCode::BadRequest);
        // Nothing of a refused push was applied.
        assert_eq!(s.storage.group_seq("todo".into()).await.unwrap(), 0);
    }

    #[actix_rt::test]
    async fn an_accepted_push_answers_with_group_epoch_and_seq() {
        let db = TestDb::new();
        let s = state(&db, "").await;
        let json = r#"{"group": "g", "changes": [{"key": "a", "base": 0, "value": 1},
                                                {"key": "b", "base": 3, "deleted": true}]}"#;
        let response = push(&s, &Identity::Open, unchecked(&s, json))
            .await
            .unwrap();
        assert_eq!((response.group.as_str(), response.seq), ("g", 1));
        assert_eq!(response.epoch, s.storage.epoch());
        assert!(matches!(
            response.results[0],
            PushResult::Accepted { seq: 1, .. }
        ));
        assert!(matches!(
            response.results[1],
            PushResult::Conflict { current: None, .. }
        ));
    }

    /// The WebSocket session relies on it: pushes are applied in the order `push` was
    /// called, whatever order their answers are awaited in.
    #[actix_rt::test]
    async fn pushes_are_handed_over_when_called_not_when_awaited() {
        let db = TestDb::new();
        let s = state(&db, "").await;
        let first = push(
            &s,
            &Identity::Open,
            unchecked(
                &s,
                r#"{"group": "g", "changes": [{"key": "k", "base": 0, "value": 1}]}"#,
            ),
        );
        let second = push(
            &s,
            &Identity::Open,
            unchecked(
                &s,
                r#"{"group": "g", "changes": [{"key": "k", "base": 1, "value": 2}]}"#,
            ),
        );
        let second = second.await.unwrap();
        assert!(matches!(
            second.results[0],
            PushResult::Accepted { version: 2, .. }
        ));
        assert!(matches!(
            first.await.unwrap().results[0],
            PushResult::Accepted { version: 1, .. }
        ));
    }

    #[actix_rt::test]
    async fn a_stopped_storage_is_unavailable_and_applied_nothing() {
        let db = TestDb::new();
        let s = state(&db, "").await;
        s.storage.close().await;
        let json = r#"{"group": "g", "changes": [{"key": "a", "base": 0, "value": 1}]}"#;
        let error = push(&s, &Identity::Open, unchecked(&s, json))
            .await
            .unwrap_err();
        let wire = error.to_wire();
        assert_eq!(wire.code, ErrorCode::Unavailable);
        assert!(
            wire.message.ends_with("nothing was applied"),
            "{}",
            wire.message
        );
    }
}
