//! `GET /sync` (pull), `POST /sync` (push) and `GET /healthz`.
//!
//! Each handler checks in the order PROTOCOL.md section 3 gives: token (401), content type
//! (415), body size (413), decoding and shape (400), the group's permission (403), each
//! change (400/413); a push's last two checks are the shared push path's
//! ([`crate::push`]). A request that fails any check applies nothing.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use atomsync_proto::wire::{Doc, PageWriter, UncheckedPush, check_group, encode_value};
use atomsync_proto::{Encoding, ErrorCode, Value};

use crate::storage::{PageQuery, PageSink};

use super::AppState;
use super::access::{note, note_bytes};
use super::error::ApiError;
use super::request::{body_encoding, param, query_pairs, read_body, response_encoding};
use crate::auth::Access;

/// The default and the largest page of a pull.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

/// The page being encoded as storage reads it: each document is written into the body
/// and dropped, so a pull holds one page's bytes, once (PROTOCOL.md section 4).
struct Body(PageWriter);

impl PageSink for Body {
    fn offer(&mut self, doc: Doc) -> bool {
        self.0.offer(&doc)
    }
}

/// `GET /sync?group=G&since=S&limit=N[&full=true]`: a page of at most N documents and
/// about the body limit in bytes (at least one document when one remains).
pub async fn pull(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    let bad = |message: String| ApiError::new(ErrorCode::BadRequest, message, enc);
    let (identity, _) = super::admin::identify_sync(&req, &state, Access::Read, enc)?;
    let pairs = query_pairs(&req).map_err(bad)?;
    let group = param(&pairs, "group").ok_or_else(|| bad("group: missing".into()))?;
    check_group(group).map_err(|e| bad(format!("group: {e}")))?;
    note(&req, group, None);
    let since = match param(&pairs, "since") {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| bad(format!("since: {s:?} is not an integer >= 0")))?,
    };
    let limit = match param(&pairs, "limit") {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            _ => return Err(bad(format!("limit: {s:?} is not an integer >= 1"))),
        },
    };
    let full = match param(&pairs, "full") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(format!("full: {other:?} is not true or false"))),
    };
    state
        .auth
        .authorize(&identity, group, Access::Read)
        .map_err(|error| ApiError {
            error,
            encoding: enc,
        })?;

    let query = PageQuery {
        since,
        upto: u64::MAX,
        limit,
        full,
    };
    // A page names its seqs with the epoch it was read under. If the database got a new
    // epoch between naming the answer and reading it (PostgreSQL, another instance renewed
    // it), the answer is read again under the new one, which storage has adopted by then.
    for _ in 0..EPOCH_TRIES {
        let epoch = state.storage.epoch_arc();
        let writer = PageWriter::pull(group, &epoch, enc, state.max_body_bytes);
        let (Body(writer), end) = state
            .storage
            .pull_into(group.into(), query, Body(writer))
            .await
            .map_err(|e| ApiError::from_request(e, enc))?;
        if end.epoch == epoch {
            note(&req, group, Some(writer.docs()));
            let body = writer.finish_pull(end.seq, end.more, end.reset, end.floor);
            note_bytes(&req, body.len());
            return Ok(ok(enc, body));
        }
    }
    Err(ApiError::new(
        ErrorCode::Unavailable,
        "the database's epoch is changing; try again",
        enc,
    ))
}

/// How many times a pull is read again when the database's epoch changes under it: each
/// change needs the database to go back in time, so a second is already rare.
const EPOCH_TRIES: usize = 3;

/// `POST /sync`: the transport's checks (token, content type, body size, shape), then the
/// shared push path ([`crate::push`]) for the rest.
pub async fn push(
    req: HttpRequest,
    body: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    let (identity, _) = super::admin::identify_sync(&req, &state, Access::Write, enc)?;
    let body_enc = body_encoding(&req, enc)?;
    let body = read_body(&req, body, state.max_body_bytes, enc).await?;
    let unchecked = UncheckedPush::decode(&body, body_enc, &state.limits)
        .map_err(|error| ApiError::from_request(error, enc))?;
    drop(body);
    note(&req, &unchecked.group, Some(unchecked.changes.len()));
    let response = crate::push::push(&state, &identity, unchecked)
        .await
        .map_err(|error| ApiError::from_request(error, enc))?;
    Ok(ok(enc, response.encode(enc)))
}

/// `GET /healthz`: 200 when storage answers, else 503. Needs no token.
pub async fn health(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    // Any failure is a 503: a load balancer takes the instance out, whatever the cause.
    state
        .storage
        .health()
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("storage: {e}"), enc))?;
    let status = Value::Map(vec![(Value::from("status"), Value::from("ok"))]);
    Ok(ok(enc, encode_value(&status, enc)))
}

fn ok(enc: Encoding, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(enc.content_type())
        .body(body)
}
