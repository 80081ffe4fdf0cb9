//! [`ApiError`]: every HTTP error answer, in one place. The code → status table lives with
//! the codes themselves ([`ErrorCode::status`]), the code and message of a failed request
//! with [`RequestError`] (shared with WebSocket); this turns them into the
//! `{"error": CODE, "message": TEXT}` body in the response encoding.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use atomsync_proto::wire::encode_error;
use atomsync_proto::{Encoding, ErrorCode, WireError};

use crate::error::RequestError;

/// An error answer: what went wrong, and the encoding to say it in.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// The code and message.
    pub error: WireError,
    /// The response encoding.
    pub encoding: Encoding,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>, encoding: Encoding) -> ApiError {
        ApiError {
            error: WireError {
                code,
                message: message.into(),
            },
            encoding,
        }
    }

    /// A request that applied nothing ([`RequestError`]), answered in `encoding`.
    pub fn from_request(error: impl Into<RequestError>, encoding: Encoding) -> ApiError {
        ApiError {
            error: error.into().to_wire(),
            encoding,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.error.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.error.code == ErrorCode::RequestTimeout {
            // What is left of a late body may never come: the connection is not reused.
            response.force_close();
        }
        response
            .content_type(self.encoding.content_type())
            .body(encode_error(&self.error, self.encoding))
    }
}
