//! The access log and the request metrics: one line and one count per HTTP request.
//!
//! [`access`] wraps every route. After the response it logs, at target
//! `atomsync::access`, one line with the method, the route (the matched pattern, such as
//! `/admin/groups/{group}`: never the path or the query, where a `?token=` would be), the
//! status, the group and number of changes when the handler noted them ([`note`]), the
//! bytes in and out, and the duration; and counts the request in
//! `atomsync_http_requests_total{route, status}`. An error answer adds its message (messages
//! never hold a token). 5xx answers log at `warn`, the rest at `info`; an operator who wants
//! no access lines sets `--log info,atomsync::access=warn`.
//!
//! A WebSocket upgrade is one request here (status 101, its duration the handshake's);
//! the session logs its own line when it ends (`crate::ws`), never one per frame.

use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};

/// What a handler tells the access log about its request.
#[derive(Debug, Clone, Default)]
pub struct Note {
    /// The group the request was about.
    pub group: Option<String>,
    /// Changes pushed (a push), or sent back (a pull, a catch-up page).
    pub changes: Option<usize>,
    /// Bytes of the body the handler produced, before any compression.
    pub bytes_out: Option<usize>,
}

/// Notes `group` and `changes` for the access line of `req`.
pub fn note(req: &HttpRequest, group: &str, changes: Option<usize>) {
    let mut ext = req.extensions_mut();
    let entry = ext.get_or_insert_with(Note::default);
    entry.group = Some(group.to_owned());
    if changes.is_some() {
        entry.changes = changes;
    }
}

/// Notes the size of the body a handler produced (before compression hides it).
pub fn note_bytes(req: &HttpRequest, bytes: usize) {
    req.extensions_mut()
        .get_or_insert_with(Note::default)
        .bytes_out = Some(bytes);
}

/// The middleware: runs the request, then logs and counts it.
pub async fn access(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let bytes_in = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let method = req.method().clone();
    let response = next.call(req).await;
    let took = started.elapsed();
    match &response {
        Ok(res) => {
            let request = res.request();
            let route = request.match_pattern();
            let note = request
                .extensions()
                .get::<Note>()
                .cloned()
                .unwrap_or_default();
            let bytes_out =
                note.bytes_out
                    .map(|n| n as u64)
                    .or(match res.response().body().size() {
                        BodySize::Sized(n) => Some(n),
                        BodySize::None => Some(0),
                        BodySize::Stream => None,
                    });
            let line = Line {
                method: method.as_str(),
                route: route_label(route.as_deref()),
                status: res.status().as_u16(),
                note: &note,
                bytes_in,
                bytes_out,
                took,
                error: res.response().error().map(|e| e.to_string()),
            };
            line.emit();
        }
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            let line = Line {
                method: method.as_str(),
                route: "other",
                status,
                note: &Note::default(),
                bytes_in,
                bytes_out: None,
                took,
                error: Some(e.to_string()),
            };
            line.emit();
        }
    }
    response
}

/// The route as logged and counted: the matched pattern; the browser client's modules
/// as one route each (`/atomsync/{module}.js`, `/inspect/{module}.js`), not one per file;
/// `other` for a path no route matched.
fn route_label(pattern: Option<&str>) -> &str {
    match pattern {
        None => "other",
        Some(p) if p.starts_with("/atomsync/") => "/atomsync/{module}.js",
        Some(p) if p.starts_with("/inspect/") => "/inspect/{module}.js",
        Some(p) => p,
    }
}

/// One request, as logged and counted.
struct Line<'a> {
    method: &'a str,
    route: &'a str,
    status: u16,
    note: &'a Note,
    bytes_in: u64,
    bytes_out: Option<u64>,
    took: Duration,
    error: Option<String>,
}

impl Line<'_> {
    fn emit(&self) {
        if let Some(m) = crate::metrics::get() {
            m.request(self.method, self.route, self.status, self.took);
        }
        // Milliseconds with microsecond precision: readable, and a number in JSON.
        let ms = self.took.as_micros() as f64 / 1000.0;
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "atomsync::access",
                    method = self.method,
                    route = self.route,
                    status = self.status,
                    group = self.note.group.as_deref(),
                    changes = self.note.changes,
                    bytes_in = self.bytes_in,
                    bytes_out = self.bytes_out,
                    ms,
                    error = self.error.as_deref(),
                    "request"
                )
            };
        }
        if self.status >= 500 {
            line!(warn);
        } else {
            line!(info);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn routes_are_patterns_and_modules_share_one() {
        assert_eq!(
            route_label(Some("/admin/groups/{group}")),
            "/admin/groups/{group}"
        );
        assert_eq!(
            route_label(Some("/atomsync/atom.js")),
            "/atomsync/{module}.js"
        );
        assert_eq!(route_label(Some("/atomsync.js")), "/atomsync.js");
        assert_eq!(
            route_label(Some("/inspect/render.js")),
            "/inspect/{module}.js"
        );
        assert_eq!(route_label(Some("/inspect")), "/inspect");
        assert_eq!(route_label(None), "other");
    }
}
