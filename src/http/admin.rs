//! The admin API (`docs/protocol.md`, "Admin API"): what an operator, the `atomsync`
//! command line and the inspector page read about a server. Not part of the client
//! contract.
//!
//! - `GET /admin/server`: the database's epoch and how many group actors run (one per
//!   group with subscribers, or used within the idle timeout).
//! - `GET /admin/groups?after=NAME&limit=N`: groups in name order, a page at a time.
//! - `GET /admin/groups/{g}`: one group's summary.
//! - `GET /admin/groups/{g}/docs?after=KEY&prefix=P&limit=N&tombstones=true`: its
//!   documents in key order, a page at a time.
//!
//! Every request needs the `[admin]` token (`Authorization: Bearer`, or `?token=`):
//! 403 when the server has none configured (the API is off), 401 when it is missing or
//! unknown, 403 when it is a user's token. Answers follow content negotiation like every
//! endpoint. A server may hold millions of groups: nothing here answers more than one
//! bounded page.

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use atomsync_proto::wire::{DocsPage, GroupInfo, GroupsPage, check_group, check_key, encode_value};
use atomsync_proto::{Encoding, ErrorCode, Value};
use futures_util::future::join_all;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use super::request::{param, query_pairs, response_encoding, token, token_pairs};
use crate::actors::SubscriberCount;
use crate::auth::{Access, Identity};
use crate::storage::{GroupStats, KeyRange};

/// Groups per page: the default, and the most one request gets. Each group's counts cost a
/// pass over its documents, so pages stay small.
const DEFAULT_GROUPS: usize = 100;
const MAX_GROUPS: usize = 1000;

/// Documents per page: the default and the most (a page is also bounded in bytes).
const DEFAULT_DOCS: usize = 100;
const MAX_DOCS: usize = 1000;

/// The `[admin]` token, compared in constant time. Its `Debug` shows nothing of it.
pub struct AdminToken(Vec<u8>);

impl AdminToken {
    /// The configured token.
    pub fn new(token: &str) -> AdminToken {
        AdminToken(token.as_bytes().to_vec())
    }

    fn matches(&self, given: &str) -> bool {
        bool::from(self.0.ct_eq(given.as_bytes()))
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// True when the request carries the configured admin token (header or `?token=`): what
/// lets the inspector page load the browser client and tail a group read-only over the
/// WebSocket, besides the admin API.
pub(crate) fn is_admin(req: &HttpRequest, state: &AppState) -> bool {
    let Some(admin) = &state.admin_token else {
        return false;
    };
    let pairs = query_pairs(req).unwrap_or_default();
    token(req, &pairs).is_some_and(|given| admin.matches(given))
}

/// Who a sync request (pull, push, one document, WebSocket) acts for, the admin token
/// included: with auth on, it reads any group, as over the admin API, and never writes
/// (403 for `Access::Write`); the bool says it was the admin. Any other token as
/// [`identify`](super::request::identify) says.
pub(crate) fn identify_sync(
    req: &HttpRequest,
    state: &AppState,
    access: Access,
    enc: Encoding,
) -> Result<(Identity, bool), ApiError> {
    if !(is_admin(req, state) && state.auth.current().is_on()) {
        return super::request::identify(req, &state.auth, enc).map(|id| (id, false));
    }
    match access {
        Access::Read => Ok((Identity::Open, true)),
        Access::Write => Err(ApiError::new(ErrorCode::Forbidden, ADMIN_READS_ONLY, enc)),
    }
}

/// Why the admin token's writes are refused, over HTTP and the WebSocket alike.
pub(crate) const ADMIN_READS_ONLY: &str =
    "token: the admin token reads only; push with a user's token";

/// Admits the admin, or says why not (403 API off, 401 no or unknown token, 403 a user's).
pub(crate) fn admit(req: &HttpRequest, state: &AppState, enc: Encoding) -> Result<(), ApiError> {
    let Some(admin) = &state.admin_token else {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "admin: the admin API is off on this server; set [admin] token in its config",
            enc,
        ));
    };
    let pairs = token_pairs(req).map_err(|e| ApiError::new(ErrorCode::Unauthorized, e, enc))?;
    let Some(given) = token(req, &pairs) else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "token: missing; the admin API needs the admin token (`Authorization: Bearer TOKEN`)",
            enc,
        ));
    };
    if admin.matches(given) {
        return Ok(());
    }
    if let Ok(Identity::User(_)) = state.auth.authenticate(Some(given)) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "token: a user's token; the admin API needs the admin token",
            enc,
        ));
    }
    Err(ApiError::new(
        ErrorCode::Unauthorized,
        "token: not the admin token",
        enc,
    ))
}

/// `limit`: an integer >= 1, capped at `max`; `default` when absent.
fn limit(pairs: &[(String, String)], default: usize, max: usize) -> Result<usize, String> {
    match param(pairs, "limit") {
        None => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(max).min(max)),
            _ => Err(format!("limit: {s:?} is not an integer >= 1")),
        },
    }
}

/// The group name of the path, checked.
fn group_of(path: &str, enc: Encoding) -> Result<String, ApiError> {
    check_group(path)
        .map(|()| path.to_owned())
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("group: {e}"), enc))
}

fn not_found(group: &str, enc: Encoding) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("group: {group:?} has never been written on this server"),
        enc,
    )
}

/// A group's summary with its live subscriber count (0 when its actor is not running).
async fn info(state: &AppState, stats: GroupStats) -> GroupInfo {
    let subscribers = match state.registry.running(&stats.name) {
        Some(actor) => actor.send(SubscriberCount).await.unwrap_or(0),
        None => 0,
    };
    GroupInfo {
        name: stats.name,
        seq: stats.seq,
        floor: stats.floor,
        documents: stats.documents,
        tombstones: stats.tombstones,
        subscribers: u64::try_from(subscribers).unwrap_or(u64::MAX),
    }
}

fn ok(enc: Encoding, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(enc.content_type())
        .body(body)
}

/// `GET /admin/server`: `{"epoch": E, "group_actors": N}`.
pub async fn server(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    admit(&req, &state, enc)?;
    let actors = u64::try_from(state.registry.len()).unwrap_or(u64::MAX);
    let body = Value::Map(vec![
        (Value::from("epoch"), Value::from(state.storage.epoch())),
        (Value::from("group_actors"), Value::from(actors)),
    ]);
    Ok(ok(enc, encode_value(&body, enc)))
}

/// `GET /admin/groups?after=NAME&limit=N`: `{"groups": [GROUP, ...], "next": NAME | null}`.
pub async fn groups(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    let bad = |message: String| ApiError::new(ErrorCode::BadRequest, message, enc);
    admit(&req, &state, enc)?;
    let pairs = query_pairs(&req).map_err(bad)?;
    let after = param(&pairs, "after").map(str::to_owned);
    if let Some(after) = &after {
        check_group(after).map_err(|e| bad(format!("after: {e}")))?;
    }
    let limit = limit(&pairs, DEFAULT_GROUPS, MAX_GROUPS).map_err(bad)?;
    let (page, more) = state
        .storage
        .groups(after, limit)
        .await
        .map_err(|e| ApiError::from_request(e, enc))?;
    let next = more.then(|| page.last().map(|g| g.name.clone())).flatten();
    let groups = join_all(page.into_iter().map(|g| info(&state, g))).await;
    Ok(ok(enc, GroupsPage { groups, next }.encode(enc)))
}

/// `GET /admin/groups/{g}`: GROUP; 404 when the group has never been written.
pub async fn group(
    req: HttpRequest,
    path: Path<String>,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    admit(&req, &state, enc)?;
    let name = group_of(&path, enc)?;
    super::access::note(&req, &name, None);
    let found = state
        .storage
        .group_stats(name.as_str().into())
        .await
        .map_err(|e| ApiError::from_request(e, enc))?;
    let stats = found.ok_or_else(|| not_found(&name, enc))?;
    Ok(ok(enc, info(&state, stats).await.encode(enc)))
}

/// `GET /admin/groups/{g}/docs?after=KEY&prefix=P&limit=N&tombstones=BOOL`:
/// `{"group": G, "docs": [DOC, ...], "next": KEY | null}`; 404 for a group never written.
pub async fn docs(
    req: HttpRequest,
    path: Path<String>,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    let bad = |message: String| ApiError::new(ErrorCode::BadRequest, message, enc);
    admit(&req, &state, enc)?;
    let name = group_of(&path, enc)?;
    super::access::note(&req, &name, None);
    let pairs = query_pairs(&req).map_err(bad)?;
    let after = param(&pairs, "after").map(str::to_owned);
    if let Some(after) = &after {
        check_key(after).map_err(|e| bad(format!("after: {e}")))?;
    }
    let prefix = param(&pairs, "prefix").unwrap_or_default().to_owned();
    if prefix.len() > 1024 {
        return Err(bad("prefix: must be at most 1024 bytes".into()));
    }
    let tombstones = match param(&pairs, "tombstones") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(format!("tombstones: {other:?} is not true or false"))),
    };
    let limit = limit(&pairs, DEFAULT_DOCS, MAX_DOCS).map_err(bad)?;
    let max_bytes = state.max_body_bytes;
    let range = KeyRange {
        after,
        prefix,
        tombstones,
        limit,
        max_bytes,
    };
    let found = state
        .storage
        .docs_by_key(name.as_str().into(), range)
        .await
        .map_err(|e| ApiError::from_request(e, enc))?;
    let page = found.ok_or_else(|| not_found(&name, enc))?;
    let next = page
        .more
        .then(|| page.docs.last().map(|d| d.key.clone()))
        .flatten();
    super::access::note(&req, &name, Some(page.docs.len()));
    let body = DocsPage {
        group: name,
        docs: page.docs,
        next,
    }
    .encode(enc);
    super::access::note_bytes(&req, body.len());
    Ok(ok(enc, body))
}
