//! The browser client, served by the server itself: `GET /atomsync.js` (the ES module) and
//! `GET /` or `GET /demo/` (the todo demo). Both are embedded in the binary at build time,
//! so a single executable is the whole deployment.
//!
//! `GET /sw.js` is the demo's service worker, which keeps the page and the module available
//! for a reload while the server is down.
//!
//! Caching: `Cache-Control: no-cache` with a strong `ETag`, so browsers revalidate on every
//! load (cheap: 304) and never run a stale client against a newer server.
//!
//! With auth on these need a token like every path but `/healthz` (PROTOCOL.md section 5):
//! the demo passes its `?token=` on to the module and the service worker it loads.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::error::ApiError;
use super::request::{identify, response_encoding};

const CLIENT_JS: &str = include_str!("../../client-js/atomsync.js");
const DEMO_HTML: &str = include_str!("../../client-js/demo/index.html");
const DEMO_SW: &str = include_str!("../../client-js/demo/sw.js");
const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Registers the asset routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let routes: [(&str, &'static str, &'static str); 5] = [
        ("/atomsync.js", CLIENT_JS, JS),
        ("/sw.js", DEMO_SW, JS),
        ("/", DEMO_HTML, HTML),
        ("/demo/", DEMO_HTML, HTML),
        ("/demo", DEMO_HTML, HTML),
    ];
    for (path, body, content_type) in routes {
        cfg.service(
            web::resource(path)
                .wrap(actix_web::middleware::Compress::default())
                .route(
                    web::get().to(move |req: HttpRequest, state: Data<AppState>| async move {
                        identify(&req, &state.auth, response_encoding(&req))?;
                        Ok::<_, ApiError>(asset(&req, body, content_type))
                    }),
                )
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
