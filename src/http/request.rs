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

/// The query string's parameters; `Err` with a message naming the parameter when one is
/// not UTF-8 once percent-decoded or is given twice.
///
/// Strict where a form decoder is lenient: a lossy decoder turns `key=%FF` and `key=%C3`
/// alike into the key `"\u{FFFD}"`, so a request would read or list another document than
/// the one asked for; and of `since=1&since=2` one value would win in silence.
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, String> {
    parse_query(req.query_string())
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|part| !part.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = decode_component(name).map_err(|e| format!("query: a parameter's name {e}"))?;
        let value = decode_component(value).map_err(|e| format!("{name}: {e}"))?;
        if pairs.iter().any(|(seen, _)| *seen == name) {
            return Err(format!("{name}: given more than once; give it once"));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// One `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte, and
/// the bytes must be UTF-8.
fn decode_component(text: &str) -> Result<String, String> {
    let spaced = text.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "is not UTF-8 once percent-decoded (byte {} of {text:?})",
            e.utf8_error().valid_up_to()
        )
    })
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
    bearer(req).or_else(|| param(pairs, "token"))
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    header_str(req, header::AUTHORIZATION).and_then(|h| {
        let (scheme, rest) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    })
}

/// The query's parameters, to look for a token in. `Err` with a 401's message when the
/// query cannot be read and no header carries a token: the token may be in it, so
/// "missing" would mislead (a request that needs no token reads the query again and
/// answers its 400).
pub fn token_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, String> {
    match query_pairs(req) {
        Ok(pairs) => Ok(pairs),
        Err(e) if bearer(req).is_none() => Err(format!("token: the query cannot be read: {e}")),
        Err(_) => Ok(Vec::new()),
    }
}

/// Who the request is from (PROTOCOL.md section 5): the token from the header or the query,
/// checked against the configured users; 401 in `respond_in` when auth is on and it fails.
pub fn identify(
    req: &HttpRequest,
    auth: &SharedAuth,
    respond_in: Encoding,
) -> Result<Identity, ApiError> {
    let pairs = match token_pairs(req) {
        Ok(pairs) => pairs,
        Err(message) if auth.current().is_on() => {
            return Err(ApiError::new(ErrorCode::Unauthorized, message, respond_in));
        }
        Err(_) => Vec::new(),
    };
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

#[cfg(test)]
mod tests {
    use super::parse_query;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn queries_decode_as_forms() {
        assert_eq!(
            parse_query("group=todo&key=a+b%2Fc%C3%A9&full").unwrap(),
            pairs(&[("group", "todo"), ("key", "a b/c\u{e9}"), ("full", "")])
        );
        assert_eq!(parse_query("").unwrap(), pairs(&[]));
        assert_eq!(parse_query("&a=1&&").unwrap(), pairs(&[("a", "1")]));
    }

    #[test]
    fn invalid_utf8_and_repeats_are_refused_by_name() {
        for (query, needle) in [
            ("group=g&key=%FF", "key: is not UTF-8"),
            ("key=%C3", "key: is not UTF-8"),
            ("%FF=1", "query: a parameter's name is not UTF-8"),
            ("since=1&since=2", "since: given more than once"),
            ("group=a&limit=3&group=b", "group: given more than once"),
        ] {
            let err = parse_query(query).unwrap_err();
            assert!(err.contains(needle), "{query}: {err}");
        }
    }
}
