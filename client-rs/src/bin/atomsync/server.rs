//! [`Server`]: where the server is and how to ask it things over HTTP. Requests go out in
//! MessagePack (the canonical encoding: values arrive as stored, nothing is reformatted)
//! and answers are decoded as untrusted input with the `atomsync-proto` readers.
//!
//! `--server` takes the clients' URL (`http://127.0.0.1:8090/sync`), the bare server
//! (`http://127.0.0.1:8090`, `127.0.0.1:8090`), the WebSocket URL (`ws://…/sync/ws`), or
//! any of these under a path prefix a reverse proxy adds (`https://example.com/atomsync`).

use std::time::Duration;

use atomsync_proto::wire::{
    DocAnswer, GroupInfo, GroupsPage, PullResponse, PushRequest, PushResponse, decode_error,
};
use atomsync_proto::{Encoding, WireError};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Client, RequestBuilder, Url};

use crate::error::CliError;
use atomsync_client::RootCertificate;

/// A rustls connector trusting the Mozilla roots and `root` (as the client library does).
fn ws_connector(root: &RootCertificate) -> Result<tokio_tungstenite::Connector, CliError> {
    let bad = |e: String| CliError::Input(format!("--ca-cert: {e}"));
    let mut store =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in root.ders() {
        store
            .add(der.to_vec().into())
            .map_err(|e| bad(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(store)
    .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
        config,
    )))
}

/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request may take, answer included (a pull page of 10,000 documents, a
/// push of 1,000, on a busy server).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest answer read: far above any page the server builds (bounded by its body
/// limit), low enough that a wrong or hostile server cannot fill memory.
const MAX_ANSWER_BYTES: usize = 256 << 20;

/// A server and the tokens to use on it.
pub struct Server {
    client: Client,
    /// The server's root, without a trailing slash: `http://127.0.0.1:8090`.
    base: Url,
    token: Option<String>,
    admin_token: Option<String>,
    /// The WebSocket's TLS connector when `--ca-cert` names a root of its own.
    connector: Option<tokio_tungstenite::Connector>,
}

impl Server {
    /// A server from the `--server` URL (see the module doc for the forms it takes).
    pub fn new(
        url: &str,
        token: Option<String>,
        admin_token: Option<String>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Server, CliError> {
        let base = base_url(url)?;
        // reqwest and tungstenite are built without a default TLS crypto provider;
        // installing one twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root = ca_cert
            .map(RootCertificate::from_pem_file)
            .transpose()
            .map_err(|e| CliError::Input(format!("--ca-cert: {e}")))?;
        let mut builder = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let mut connector = None;
        if let Some(root) = &root {
            let certs = root
                .ders()
                .map(reqwest::Certificate::from_der)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::Input(format!("--ca-cert: {e}")))?;
            builder = builder.tls_certs_merge(certs);
            connector = Some(ws_connector(root)?);
        }
        let client = builder
            .build()
            .map_err(|e| CliError::Network(format!("cannot start an HTTP client: {e}")))?;
        Ok(Server {
            client,
            base,
            token: token.filter(|t| !t.is_empty()),
            admin_token: admin_token.filter(|t| !t.is_empty()),
            connector,
        })
    }

    /// `base` + `path`, e.g. `/sync`.
    pub fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", self.base.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }

    /// The WebSocket URL, `ws://…/sync/ws` (`wss` for `https`).
    pub fn ws_url(&self) -> Url {
        let mut url = self.url("/sync/ws");
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // Both schemes are special and of the same kind, so the change cannot fail.
        let _ = url.set_scheme(scheme);
        url
    }

    /// The user token, for the WebSocket.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The WebSocket's TLS connector (`None`: tokio-tungstenite's, the Mozilla roots).
    pub fn connector(&self) -> Option<tokio_tungstenite::Connector> {
        self.connector.clone()
    }

    /// `GET /sync/doc`: one document, `None` inside when never written.
    pub async fn doc(&self, group: &str, key: &str) -> Result<DocAnswer, CliError> {
        let mut url = self.url("/sync/doc");
        url.query_pairs_mut()
            .append_pair("group", group)
            .append_pair("key", key);
        let (body, enc) = self.send(self.get(url, false)).await?;
        DocAnswer::decode(&body, enc).map_err(answer_error)
    }

    /// `POST /sync`.
    pub async fn push(&self, push: &PushRequest) -> Result<PushResponse, CliError> {
        let request = self
            .authorized(self.client.post(self.url("/sync")), false)
            .header(CONTENT_TYPE, Encoding::MsgPack.content_type())
            .body(push.encode(Encoding::MsgPack));
        let (body, enc) = self.send(request).await?;
        PushResponse::decode(&body, enc).map_err(answer_error)
    }

    /// `GET /sync`: one page after `since`; `full` marks the later pages of a full pull
    /// (PROTOCOL.md section 8).
    pub async fn pull(
        &self,
        group: &str,
        since: u64,
        limit: u32,
        full: bool,
    ) -> Result<PullResponse, CliError> {
        let mut url = self.url("/sync");
        url.query_pairs_mut()
            .append_pair("group", group)
            .append_pair("since", &since.to_string())
            .append_pair("limit", &limit.to_string());
        if full {
            url.query_pairs_mut().append_pair("full", "true");
        }
        let (body, enc) = self.send(self.get(url, false)).await?;
        PullResponse::decode(&body, enc).map_err(answer_error)
    }

    /// `GET /admin/groups`: one page of groups after `after`.
    pub async fn groups(&self, after: Option<&str>, limit: u32) -> Result<GroupsPage, CliError> {
        let mut url = self.url("/admin/groups");
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after);
        }
        let (body, enc) = self.send(self.get(url, true)).await?;
        GroupsPage::decode(&body, enc).map_err(answer_error)
    }

    /// `GET /admin/groups/{g}`.
    pub async fn group(&self, group: &str) -> Result<GroupInfo, CliError> {
        let mut url = self.url("/admin/groups");
        url.path_segments_mut()
            .map_err(|()| CliError::Input("--server: cannot hold a path".into()))?
            .push(group);
        let (body, enc) = self.send(self.get(url, true)).await?;
        GroupInfo::decode(&body, enc).map_err(answer_error)
    }

    /// `GET /admin/groups/{g}/docs`.
    pub async fn docs(
        &self,
        group: &str,
        after: Option<&str>,
        prefix: &str,
        tombstones: bool,
    ) -> Result<atomsync_proto::wire::DocsPage, CliError> {
        let mut url = self.url("/admin/groups");
        url.path_segments_mut()
            .map_err(|()| CliError::Input("--server: cannot hold a path".into()))?
            .push(group)
            .push("docs");
        url.query_pairs_mut()
            .append_pair("limit", "1000")
            .append_pair("prefix", prefix)
            .append_pair("tombstones", if tombstones { "true" } else { "false" });
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after);
        }
        let (body, enc) = self.send(self.get(url, true)).await?;
        atomsync_proto::wire::DocsPage::decode(&body, enc).map_err(answer_error)
    }

    fn get(&self, url: Url, admin: bool) -> RequestBuilder {
        self.authorized(self.client.get(url), admin)
    }

    /// Adds the answer encoding, the timeout and the token: the admin token for the admin
    /// API (else the user token, so one `--token` can serve an operator who has only one).
    fn authorized(&self, request: RequestBuilder, admin: bool) -> RequestBuilder {
        let request = request
            .header(ACCEPT, Encoding::MsgPack.content_type())
            .timeout(REQUEST_TIMEOUT);
        let token = if admin {
            self.admin_token.as_ref().or(self.token.as_ref())
        } else {
            self.token.as_ref()
        };
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a 200 gives its body and encoding, anything else the error it
    /// stands for.
    async fn send(&self, request: RequestBuilder) -> Result<(Vec<u8>, Encoding), CliError> {
        let mut response = request.send().await.map_err(|e| self.network(&e))?;
        let status = response.status().as_u16();
        let encoding = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Encoding::from_content_type);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.network(&e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(CliError::Protocol(format!(
                    "an answer over {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        match encoding {
            Some(encoding) if status == 200 => Ok((body, encoding)),
            _ => Err(status_error(status, &body, encoding)),
        }
    }

    /// A network failure, with its causes and the server it was for.
    fn network(&self, error: &reqwest::Error) -> CliError {
        let mut text = String::new();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = cause {
            let part = e.to_string();
            // reqwest's wrappers repeat their causes, and name the URL: say each thing once.
            if !text.contains(&part) && !part.starts_with("error sending request") {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&part);
            }
            cause = e.source();
        }
        // rustls says why it refused a certificate; an unknown issuer is a certificate no
        // public authority signed (a company CA, a test certificate).
        let hint = if text.contains("certificate") {
            " (a certificate no public authority signed: trust its CA with --ca-cert FILE or \
             ATOMSYNC_CA_CERT)"
        } else if error.is_connect() {
            " (is the server running? set it with --server or ATOMSYNC_SERVER)"
        } else {
            ""
        };
        CliError::Network(format!("cannot reach {}: {text}{hint}", self.base))
    }
}

/// The error a non-200 answer stands for: the protocol's `{error, message}` when the body
/// holds one, else the status and the start of the body.
fn status_error(status: u16, body: &[u8], encoding: Option<Encoding>) -> CliError {
    if let Some(encoding) = encoding
        && let Ok(error) = decode_error(body, encoding)
    {
        return CliError::Server { error };
    }
    if status == 200 {
        return CliError::Protocol("an answer in neither MessagePack nor JSON".into());
    }
    let text = String::from_utf8_lossy(body.get(..200).unwrap_or(body));
    let text = text.trim();
    CliError::Protocol(format!(
        "HTTP {status}{}{text} (is --server an Atomsync server?)",
        if text.is_empty() { "" } else { ": " }
    ))
}

fn answer_error(error: WireError) -> CliError {
    CliError::Protocol(format!("unexpected answer: {}", error.message))
}

/// The server's root from any accepted form of `--server`.
pub fn base_url(given: &str) -> Result<Url, CliError> {
    let bad = |why: &str| CliError::Input(format!("--server {given:?}: {why}"));
    let trimmed = given.trim();
    if trimmed.is_empty() {
        return Err(bad("is empty"));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        other => return Err(bad(&format!("{other}: is not http, https, ws or wss"))),
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "must not have a query or fragment (give the token with --token)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not hold credentials (give the token with --token)",
        ));
    }
    let _ = url.set_scheme(scheme);
    let mut path = url.path().trim_end_matches('/').to_owned();
    for endpoint in ["/sync/ws", "/sync"] {
        if let Some(root) = path.strip_suffix(endpoint) {
            path = root.to_owned();
            break;
        }
    }
    url.set_path(if path.is_empty() { "/" } else { &path });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(given: &str) -> String {
        base_url(given).unwrap().to_string()
    }

    #[test]
    fn every_form_of_the_server_url_finds_its_root() {
        for given in [
            "http://127.0.0.1:8090/sync",
            "http://127.0.0.1:8090/sync/",
            "http://127.0.0.1:8090",
            "http://127.0.0.1:8090/",
            "127.0.0.1:8090",
            "ws://127.0.0.1:8090/sync/ws",
        ] {
            assert_eq!(root(given), "http://127.0.0.1:8090/", "{given}");
        }
        assert_eq!(root("localhost:8090"), "http://localhost:8090/");
        assert_eq!(
            root("wss://example.com/atomsync/sync/ws"),
            "https://example.com/atomsync"
        );
        assert_eq!(
            root("https://example.com/atomsync/"),
            "https://example.com/atomsync"
        );
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let server = Server::new("https://example.com/atomsync/sync", None, None, None).unwrap();
        assert_eq!(
            server.url("/sync").as_str(),
            "https://example.com/atomsync/sync"
        );
        assert_eq!(
            server.ws_url().as_str(),
            "wss://example.com/atomsync/sync/ws"
        );
        let server = Server::new("127.0.0.1:8090", None, None, None).unwrap();
        assert_eq!(
            server.url("/sync/doc").as_str(),
            "http://127.0.0.1:8090/sync/doc"
        );
        assert_eq!(server.ws_url().as_str(), "ws://127.0.0.1:8090/sync/ws");
    }

    #[test]
    fn unusable_urls_say_why() {
        for (given, why) in [
            ("", "is empty"),
            ("ftp://h/", "is not http"),
            ("http://h:8090/sync?token=x", "query"),
            ("http://u:p@h/", "credentials"),
            ("http://", "empty host"),
        ] {
            let err = base_url(given).unwrap_err().to_string();
            assert!(
                err.contains(why) && err.starts_with("--server"),
                "{given}: {err}"
            );
        }
    }

    #[test]
    fn non_protocol_answers_are_named() {
        let err = status_error(502, b"<html>Bad Gateway</html>", None).to_string();
        assert!(
            err.contains("HTTP 502") && err.contains("Bad Gateway"),
            "{err}"
        );
        let body = br#"{"error":"not_found","message":"path: /x is not an Atomsync endpoint"}"#;
        let err = status_error(404, body, Some(Encoding::Json)).to_string();
        assert_eq!(
            err,
            "server: not_found (404): path: /x is not an Atomsync endpoint"
        );
    }
}
