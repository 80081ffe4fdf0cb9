//! Reading a request: the response encoding, the token, the body within its limit.

use actix_web::HttpRequest;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{BytesMut, Payload};
use atomsync_proto::{Encoding, ErrorCode};
use futures_util::StreamExt;

use super::error::ApiError;
use crate::auth::{Identity, SharedAuth};

/// The response encoding: the first of ours that `Accept` names, else the request body's,
/// else JSON (PROTOCOL.md section 3).
pub fn response_encoding(req: &HttpRequest) -> Encoding {
    header_str(req, header::ACCEPT)
        .and_then(Encoding::from_accept)
        .or_else(|| header_str(req, header::CONTENT_TYPE).and_then(Encoding::from_content_type))
        .unwrap_or(Encoding::Json)
}

/// The body's encoding, from `Content-Type`; 415 for any other or none.
pub fn body_encoding(req: &HttpRequest, respond_in: Encoding) -> Result<Encoding, ApiError> {
    let content_type = header_str(req, header::CONTENT_TYPE);
    content_type
        .and_then(Encoding::from_content_type)
        .ok_or_else(|| {
            let got = content_type.map_or("none".to_owned(), |c| format!("{c:?}"));
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("Content-Type: {got}; send application/msgpack or application/json"),
                respond_in,
            )
        })
}

/// The query string's parameters; `Err` with a message when it does not parse.
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, String> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| format!("query: {e}"))
}

/// The first value of a query parameter.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The token: `Authorization: Bearer TOKEN`, else the `token` query parameter.
pub fn token<'a>(req: &'a HttpRequest, pairs: &'a [(String, String)]) -> Option<&'a str> {
    header_str(req, header::AUTHORIZATION)
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .or_else(|| param(pairs, "token"))
}

/// Who the request is from (PROTOCOL.md section 5): the token from the header or the query,
/// checked against the configured users; 401 in `respond_in` when auth is on and it fails.
pub fn identify(
    req: &HttpRequest,
    auth: &SharedAuth,
    respond_in: Encoding,
) -> Result<Identity, ApiError> {
    let pairs = query_pairs(req).unwrap_or_default();
    auth.authenticate(token(req, &pairs))
        .map_err(|error| ApiError {
            error,
            encoding: respond_in,
        })
}

/// Reads the whole body, refusing (413) as soon as it is known to exceed `limit`: from
/// `Content-Length` before reading anything, else while streaming.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
    respond_in: Encoding,
) -> Result<BytesMut, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("body: over the limit of {limit} bytes"),
            respond_in,
        )
    };
    let declared = header_str(req, header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                ApiError::new(ErrorCode::RequestTimeout, format!("body: {e}"), respond_in)
            }
            e => ApiError::new(
                ErrorCode::BadRequest,
                format!("body: cannot be read: {e}"),
                respond_in,
            ),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}
