//! `GET /sync/doc?group=G&key=K`: one document at its latest state, read from a snapshot
//! on a pooled connection (no actor involved, like a pull).
//!
//! An extension beside the sync contract, for tools that work one key at a time (the
//! `atomsync` command line's `get`, `put` and `del`): without it, finding one key means
//! pulling the whole group. Same token, permission and error rules as a pull.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use atomsync_proto::ErrorCode;
use atomsync_proto::wire::{DocAnswer, check_group, check_key};

use super::AppState;
use super::error::ApiError;
use super::request::{param, query_pairs, response_encoding};
use crate::auth::Access;

/// `GET /sync/doc?group=G&key=K`: `{"group", "epoch", "doc": DOC | null}`, null when the
/// key was never written, a DOC with `"deleted": true` for a tombstone.
pub async fn get(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    let bad = |message: String| ApiError::new(ErrorCode::BadRequest, message, enc);
    let (identity, _) = super::admin::identify_sync(&req, &state, Access::Read, enc)?;
    let pairs = query_pairs(&req).map_err(bad)?;
    let group = param(&pairs, "group").ok_or_else(|| bad("group: missing".into()))?;
    check_group(group).map_err(|e| bad(format!("group: {e}")))?;
    let key = param(&pairs, "key").ok_or_else(|| bad("key: missing".into()))?;
    check_key(key).map_err(|e| bad(format!("key: {e}")))?;
    super::access::note(&req, group, None);
    state
        .auth
        .authorize(&identity, group, Access::Read)
        .map_err(|error| ApiError {
            error,
            encoding: enc,
        })?;

    let (doc, epoch) = state
        .storage
        .doc_at(group.into(), key.to_owned())
        .await
        .map_err(|e| ApiError::from_request(e, enc))?;
    let answer = DocAnswer {
        group: group.to_owned(),
        epoch: epoch.to_string(),
        doc,
    };
    Ok(HttpResponse::Ok()
        .content_type(enc.content_type())
        .body(answer.encode(enc)))
}
