//! WebSocket sessions (`GET /sync/ws`): being written; see issue 4.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use crate::http::{ApiError, AppState};

/// Upgrades a request to a WebSocket session.
pub async fn upgrade(
    req: HttpRequest,
    _body: Payload,
    _state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        atomsync_proto::ErrorCode::NotFound,
        "path: /sync/ws is not served yet",
        crate::http::request::response_encoding(&req),
    ))
}
