//! HTTP pull and push (`GET /sync`, `POST /sync`) with reqwest: MessagePack both ways,
//! the token as a bearer header, answers read with a size cap and decoded as untrusted.

use std::time::Duration;

use atomsync_proto::wire::{PullResponse, PushRequest, PushResponse, decode_error};
use atomsync_proto::{Encoding, WireError};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Client, Response, Url};

use crate::ClientError;

/// The most a pull asks for per page.
pub(crate) const PULL_LIMIT: u64 = 1000;

/// How long one request may take before the attempt counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long establishing a TCP (and TLS) connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read: a server bounds a page by its body limit (8 MiB by default,
/// and always at least one document, so at most about one value over it); the cap keeps a
/// hostile server from filling memory.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The HTTP side of one connection.
pub(crate) struct HttpApi {
    client: Client,
    url: Url,
    token: Option<String>,
}

impl HttpApi {
    pub(crate) fn new(client: Client, url: Url, token: Option<String>) -> HttpApi {
        HttpApi { client, url, token }
    }

    /// One page of changes of `group` after `since`; `full`: a later page of a full pull
    /// (PROTOCOL.md section 8), read below the floor without a reset.
    pub(crate) async fn pull(
        &self,
        group: &str,
        since: u64,
        full: bool,
    ) -> Result<PullResponse, ClientError> {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("group", group)
            .append_pair("since", &since.to_string())
            .append_pair("limit", &PULL_LIMIT.to_string());
        if full {
            url.query_pairs_mut().append_pair("full", "true");
        }
        let request = self.authorized(self.client.get(url));
        let (body, encoding) = self.send(request).await?;
        PullResponse::decode(&body, encoding).map_err(|e| protocol("pull", &e))
    }

    /// Pushes changes.
    pub(crate) async fn push(&self, push: &PushRequest) -> Result<PushResponse, ClientError> {
        let request = self
            .authorized(self.client.post(self.url.clone()))
            .header(CONTENT_TYPE, Encoding::MsgPack.content_type())
            .body(push.encode(Encoding::MsgPack));
        let (body, encoding) = self.send(request).await?;
        PushResponse::decode(&body, encoding).map_err(|e| protocol("push", &e))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let request = request
            .header(ACCEPT, Encoding::MsgPack.content_type())
            .timeout(REQUEST_TIMEOUT);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a 200 gives its body and encoding, anything else the error it
    /// stands for.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(Vec<u8>, Encoding), ClientError> {
        let mut response = request.send().await.map_err(|e| network(&e))?;
        let encoding = response_encoding(&response);
        let status = response.status().as_u16();
        let body = read_capped(&mut response).await?;
        if status == 200 {
            Ok((body, encoding))
        } else {
            Err(status_error(status, &body, encoding))
        }
    }
}

/// The encoding the server answered in (JSON when it does not say).
fn response_encoding(response: &Response) -> Encoding {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Json)
}

async fn read_capped(response: &mut Response) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::Protocol(format!(
                "an answer over {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error for a non-200 answer, from its `{error, message}` body when it has one.
pub(crate) fn status_error(status: u16, body: &[u8], encoding: Encoding) -> ClientError {
    match decode_error(body, encoding) {
        Ok(error) if error.code.status() == status => ClientError::from_wire(&error),
        _ => {
            let text = String::from_utf8_lossy(body.get(..200).unwrap_or(body)).into_owned();
            match status {
                401 => ClientError::Unauthorized(format!("HTTP 401 {text}")),
                403 => ClientError::Forbidden(format!("HTTP 403 {text}")),
                _ => ClientError::Server {
                    status,
                    code: "http".to_owned(),
                    message: text,
                },
            }
        }
    }
}

/// A reqwest error with its causes (reqwest's own text leaves out why the connection failed).
pub(crate) fn network(error: &(dyn std::error::Error + 'static)) -> ClientError {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Wrappers often repeat their cause's text: say each thing once.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    ClientError::Network(text)
}

fn protocol(what: &str, error: &WireError) -> ClientError {
    ClientError::Protocol(format!("{what} answer: {}", error.message))
}
