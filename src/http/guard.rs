//! Which web pages and which host names may reach the server (PROTOCOL.md section 5).
//!
//! Browsers attach no token of their own, but any page a user visits can open a WebSocket
//! to a server on the user's machine, and a DNS name an attacker controls can be pointed
//! at 127.0.0.1 after the page loaded (DNS rebinding). So:
//!
//! - a WebSocket upgrade whose `Origin` is neither the server's own (the origin whose
//!   authority is the request's `Host`) nor one of `[server] allowed_origins` is refused
//!   with 403, auth on or off ([`check_upgrade_origin`]);
//! - on a loopback bind, a request whose `Host` is not a loopback name or address is
//!   refused with 403 ([`loopback_hosts_only`]).
//!
//! Clients that send no `Origin` (native clients, curl) pass the first; HTTP/1.0 clients
//! that send no `Host` pass the second (a browser always sends it).

use std::net::{IpAddr, Ipv6Addr};

use actix_web::HttpRequest;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use atomsync_proto::ErrorCode;

use super::error::ApiError;
use super::request::response_encoding;
use crate::auth::Auth;

/// Checks one `allowed_origins` entry: `scheme://host` or `scheme://host:port`, nothing
/// after the authority (an origin has no path), e.g. `https://app.example`.
pub fn check_origin_entry(origin: &str) -> Result<(), String> {
    match Origin::parse(origin) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{origin:?} is not an origin; write scheme://host[:port], e.g. \"https://app.example\""
        )),
    }
}

/// An origin, lower-cased, with its port made explicit.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, authority) = text.split_once("://")?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok || authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_authority(authority)?;
        let port = port.or(match scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        });
        Some(Origin { scheme, host, port })
    }
}

/// `host[:port]` (`[v6]:port` for IPv6) as a lower-case host and the port, if given.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) => Some(digits.parse::<u16>().ok()?),
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Whether a page of `origin` may open a WebSocket on a request for `host`: the same
/// authority (a `Host` without a port counts as the origin scheme's default port, as it
/// does behind a TLS proxy), or listed in `allowed` (lower case).
fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(parsed) = Origin::parse(origin) else {
        // `null` (sandboxed frames, file: pages) and anything malformed: only if listed.
        return allowed.iter().any(|a| a.eq_ignore_ascii_case(origin));
    };
    let same_authority = host
        .and_then(split_authority)
        .is_some_and(|(name, port)| name == parsed.host && port.or(parsed.port) == parsed.port);
    same_authority
        || allowed.iter().any(|entry| {
            Origin::parse(entry).is_some_and(|listed| {
                listed.scheme == parsed.scheme
                    && listed.host == parsed.host
                    && listed.port == parsed.port
            })
        })
}

/// Whether `host` (a `Host` header: name or address, with or without a port) names this
/// machine's loopback: `localhost`, a name under `.localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    let Some((name, _)) = split_authority(host) else {
        return false;
    };
    let name = name.strip_suffix('.').unwrap_or(&name);
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// 403 for a WebSocket upgrade from a page of a foreign origin (not the server's own,
/// not listed in `allowed_origins`). An upgrade without `Origin` passes.
pub fn check_upgrade_origin(req: &HttpRequest, auth: &Auth) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("<not text>");
    if origin_allowed(
        origin,
        header_str(req, header::HOST),
        auth.allowed_origins(),
    ) {
        return Ok(());
    }
    tracing::info!(origin, "websocket refused: foreign origin");
    Err(ApiError::new(
        ErrorCode::Forbidden,
        format!("Origin: {origin:?} is not this server's origin nor in [server] allowed_origins"),
        response_encoding(req),
    ))
}

/// Whether `host` names one of the `allowed` origins' hosts: the public name of a reverse
/// proxy in front of a loopback-bound server, which the operator listed.
fn is_listed_host(host: &str, allowed: &[String]) -> bool {
    let Some((name, _)) = split_authority(host) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|entry| Origin::parse(entry))
        .any(|origin| origin.host == name)
}

/// Middleware for a server bound to a loopback address: 403 for a request whose `Host`
/// is not a loopback name (nor the host of an allowed origin, e.g. a reverse proxy's
/// public name), the mark of a DNS-rebinding page.
pub async fn loopback_hosts_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let listed = |host: &str| {
        req.app_data::<actix_web::web::Data<super::AppState>>()
            .is_some_and(|state| is_listed_host(host, state.auth.current().allowed_origins()))
    };
    let refused = match header_str(req.request(), header::HOST) {
        None => None,
        Some(host) if is_loopback_host(host) || listed(host) => None,
        Some(host) => Some(host.to_owned()),
    };
    match refused {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(host) => {
            tracing::info!(
                host,
                "request refused: not a loopback Host on a loopback bind"
            );
            let err = ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "Host: {host:?} is not a loopback name; this server listens on loopback only"
                ),
                response_encoding(req.request()),
            );
            let response = actix_web::ResponseError::error_response(&err);
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_in_the_config_are_checked() {
        for ok in [
            "https://app.example",
            "http://127.0.0.1:8090",
            "http://[::1]:3000",
            "chrome-extension://abcdef",
        ] {
            check_origin_entry(ok).unwrap();
        }
        for bad in [
            "app.example",
            "https://app.example/",
            "https://app.example/path",
            "https://",
            "https://a:99999",
            "https://u@app.example",
            "null",
            "1http://x",
        ] {
            assert!(check_origin_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_servers_own_origin_passes() {
        let none: &[String] = &[];
        assert!(origin_allowed(
            "http://127.0.0.1:8090",
            Some("127.0.0.1:8090"),
            none
        ));
        assert!(origin_allowed(
            "http://LOCALHOST:8090",
            Some("localhost:8090"),
            none
        ));
        assert!(origin_allowed(
            "http://sync.example",
            Some("sync.example:80"),
            none
        ));
        // Behind a TLS proxy the Host carries no port.
        assert!(origin_allowed(
            "https://sync.example",
            Some("sync.example"),
            none
        ));
        assert!(origin_allowed(
            "http://[::1]:8090",
            Some("[::1]:8090"),
            none
        ));
        // Another port is another origin.
        assert!(!origin_allowed(
            "http://127.0.0.1:9000",
            Some("127.0.0.1:8090"),
            none
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("127.0.0.1:8090"),
            none
        ));
        assert!(!origin_allowed("null", Some("127.0.0.1:8090"), none));
        assert!(!origin_allowed("http://127.0.0.1:8090", None, none));
    }

    #[test]
    fn listed_origins_pass() {
        let allowed = vec![
            "https://app.example".to_owned(),
            "http://x.test:81".to_owned(),
        ];
        assert!(origin_allowed(
            "https://app.example",
            Some("127.0.0.1:1"),
            &allowed
        ));
        assert!(origin_allowed(
            "https://APP.example:443",
            Some("127.0.0.1:1"),
            &allowed
        ));
        assert!(origin_allowed(
            "http://x.test:81",
            Some("127.0.0.1:1"),
            &allowed
        ));
        assert!(!origin_allowed(
            "http://app.example",
            Some("127.0.0.1:1"),
            &allowed
        ));
        assert!(!origin_allowed(
            "https://app.example.evil",
            Some("h"),
            &allowed
        ));
        assert!(!origin_allowed(
            "http://x.test",
            Some("127.0.0.1:1"),
            &allowed
        ));
    }

    #[test]
    fn a_listed_origin_names_a_host_too() {
        let allowed = vec!["https://sync.example".to_owned()];
        assert!(is_listed_host("sync.example", &allowed));
        assert!(is_listed_host("SYNC.example:443", &allowed));
        assert!(!is_listed_host("evil.example", &allowed));
        assert!(!is_listed_host("sync.example.evil", &allowed));
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:8090",
            "LOCALHOST.:1",
            "app.localhost:3000",
            "127.0.0.1",
            "127.1.2.3:8090",
            "[::1]:8090",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8090",
            "localhost.evil.example",
            "10.0.0.1:8090",
            "0.0.0.0",
            "[::2]:1",
            "127.0.0.1.nip.io",
            "",
            "localhost:99999",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
