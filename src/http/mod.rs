//! HTTP: the routes, and the state every handler shares.
//!
//! - [`sync`]: pull, push and health (PROTOCOL.md section 4).
//! - [`doc`]: one document by key (`GET /sync/doc`), beside the contract.
//! - [`admin`]: the admin API (`/admin/...`), behind the admin token.
//! - [`request`]: content negotiation, the token, the body within its limit.
//! - [`error`]: [`ApiError`], the one way an error is answered.
//! - [`assets`]: the browser client module and the demo page.
//! - [`server`]: the HTTP server over guarded connections.
//! - [`guard`]: the `Origin` and `Host` checks against foreign pages and DNS rebinding.
//! - [`metrics`]: `GET /metrics`, the Prometheus scrape.
//! - [`access`]: the access log line and request count of every request.
//!
//! Unknown paths answer 404 and known paths with another method 405, both with the
//! protocol's error body.

pub mod access;
pub mod admin;
pub mod assets;
pub mod doc;
pub mod error;
pub mod guard;
pub mod metrics;
pub mod request;
pub mod server;
pub mod sync;
mod upgrade;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, middleware, web};
use atomsync_proto::{ErrorCode, Limits};
use tokio::sync::watch;

pub use error::ApiError;

use crate::actors::Registry;
use crate::auth::SharedAuth;
use crate::storage::Storage;

/// What every handler and WebSocket session shares.
pub struct AppState {
    /// Group name → group actor.
    pub registry: Registry,
    /// Pushes, reads (pull, catch-up) and health.
    pub storage: Storage,
    /// Users, their groups and the allowed origins; replaced on a config reload.
    pub auth: SharedAuth,
    /// Value limits.
    pub limits: Limits,
    /// Largest body or frame.
    pub max_body_bytes: usize,
    /// Turns true when the server starts shutting down: sessions close their sockets.
    pub shutdown: watch::Receiver<bool>,
    /// The `[admin]` token; `None` turns the admin API off.
    pub admin_token: Option<admin::AdminToken>,
    /// WebSocket pings, silence and close timings.
    pub liveness: crate::ws::Liveness,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Gzip where bodies are large and compressible (pulls, the client module), never on
    // the WebSocket: wrapping its body stream costs every live frame a copy.
    cfg.service(
        web::resource("/sync")
            .wrap(middleware::Compress::default())
            .route(web::get().to(sync::pull))
            .route(web::post().to(sync::push))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/sync/doc")
            .wrap(middleware::Compress::default())
            .route(web::get().to(doc::get))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/admin/server")
            .route(web::get().to(admin::server))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/admin/groups")
            .route(web::get().to(admin::groups))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/admin/groups/{group}")
            .route(web::get().to(admin::group))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/admin/groups/{group}/docs")
            .wrap(middleware::Compress::default())
            .route(web::get().to(admin::docs))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/sync/ws")
            .route(web::get().to(crate::ws::upgrade))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics::metrics))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(sync::health))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .configure(assets::configure)
    .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("path: {} is not an Atomsync endpoint", req.path()),
        request::response_encoding(&req),
    ))
}

pub(crate) fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(HttpRequest) -> std::future::Ready<HttpResponse> + Clone + 'static {
    move |req: HttpRequest| {
        let err = ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "method: {} is not allowed on {}; use {allow}",
                req.method(),
                req.path()
            ),
            request::response_encoding(&req),
        );
        let mut response = actix_web::ResponseError::error_response(&err);
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(response)
    }
}
