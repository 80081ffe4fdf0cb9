//! `GET /metrics`: every counter of [`crate::metrics`] in the Prometheus text format.
//!
//! Behind the admin token when one is configured (`Authorization: Bearer`, as the admin
//! API); open otherwise, like `/healthz`: the figures name no group, key or user. 404 when
//! `[metrics] enabled = false`.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use atomsync_proto::ErrorCode;

use super::AppState;
use super::admin::admit;
use super::error::ApiError;
use super::request::response_encoding;

/// The text format's content type (version 0.0.4, what every Prometheus scrapes).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn metrics(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let enc = response_encoding(&req);
    if state.admin_token.is_some() {
        admit(&req, &state, enc)?;
    }
    let Some(metrics) = crate::metrics::get() else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "metrics: off on this server ([metrics] enabled = false)",
            enc,
        ));
    };
    // Read at scrape time: the registry knows, and nothing on a hot path has to count.
    metrics
        .groups_open
        .set(i64::try_from(state.registry.len()).unwrap_or(i64::MAX));
    Ok(HttpResponse::Ok()
        .content_type(TEXT_FORMAT)
        .body(metrics.render()))
}
