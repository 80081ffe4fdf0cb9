//! The browser client, served by the server itself: `GET /atomsync.js` (the ES module) and
//! `GET /` or `GET /demo/` (the todo demo). Both are embedded in the binary at build time,
//! so a single executable is the whole deployment.
//!
//! Caching: `Cache-Control: no-cache` with a strong `ETag`, so browsers revalidate on every
//! load (cheap: 304) and never run a stale client against a newer server.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

const CLIENT_JS: &str = include_str!("../../client-js/atomsync.js");
const DEMO_HTML: &str = include_str!("../../client-js/demo/index.html");

/// Registers the asset routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/atomsync.js")
            .route(web::get().to(|req: HttpRequest| async move {
                asset(&req, CLIENT_JS, "text/javascript; charset=utf-8")
            }))
            .default_service(web::to(super::method_not_allowed("GET"))),
    );
    for path in ["/", "/demo/", "/demo"] {
        cfg.service(
            web::resource(path)
                .route(web::get().to(|req: HttpRequest| async move {
                    asset(&req, DEMO_HTML, "text/html; charset=utf-8")
                }))
                .default_service(web::to(super::method_not_allowed("GET"))),
        );
    }
}

fn asset(req: &HttpRequest, body: &'static str, content_type: &'static str) -> HttpResponse {
    let etag = format!("\"{:016x}\"", fnv1a(body.as_bytes()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, etag));
    if fresh {
        response.finish()
    } else {
        response.content_type(content_type).body(body)
    }
}

/// FNV-1a: a stable content hash for the ETag (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
