//! [`Options`]: where and how one synced atom syncs (server URL, token, conflict resolver),
//! and the endpoints derived from the URL.

use std::fmt;
use std::sync::Arc;

use reqwest::Url;

use crate::{ClientError, RootCertificate, Value};

/// Decides a conflict: called with the key, the local value that lost (`None` for a local
/// delete) and the server's current value (`None` when the server has it deleted or never
/// had it). `Some(v)` pushes `v` on top of the server's version; `None` lets the server
/// win.
///
/// It runs on a blocking thread of the sync engine; it must not block for long, and it
/// must not call back into the atom it resolves for.
pub type Resolver =
    Arc<dyn Fn(&str, Option<&Value>, Option<&Value>) -> Option<Value> + Send + Sync>;

/// How a synced atom reaches its server.
///
/// ```
/// use atomsync_client::{Options, Value};
/// let options = Options::new("http://localhost:8090/sync")
///     .token("abc123")
///     .resolver(|_key, local, _current| local.cloned());   // local wins
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    pub(crate) resolver: Option<Resolver>,
    pub(crate) roots: Vec<RootCertificate>,
}

impl Options {
    /// Options for the server's sync endpoint, e.g. `http://localhost:8090/sync` (or
    /// `https://`). Pull and push use that URL, the WebSocket the same path + `/ws`.
    pub fn new(url: impl Into<String>) -> Options {
        Options {
            url: url.into(),
            token: None,
            resolver: None,
            roots: Vec::new(),
        }
    }

    /// Trusts `root` (a CA, or a self-signed server certificate) for an `https://` URL,
    /// beside the usual roots: for a server whose certificate no public authority signed.
    /// Both HTTPS and WSS use it. Can be called several times.
    ///
    /// ```no_run
    /// use atomsync_client::{Options, RootCertificate};
    /// let options = Options::new("https://localhost:8443/sync")
    ///     .add_root_certificate(RootCertificate::from_pem_file("ca.pem")?);
    /// # Ok::<(), atomsync_client::ClientError>(())
    /// ```
    pub fn add_root_certificate(mut self, root: RootCertificate) -> Options {
        if !self.roots.contains(&root) {
            self.roots.push(root);
        }
        self
    }

    /// The bearer token sent with every request (needed when the server has users).
    pub fn token(mut self, token: impl Into<String>) -> Options {
        self.token = Some(token.into());
        self
    }

    /// The conflict resolver; without one the server's value wins every conflict.
    pub fn resolver(
        mut self,
        resolver: impl Fn(&str, Option<&Value>, Option<&Value>) -> Option<Value> + Send + Sync + 'static,
    ) -> Options {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// The connection these options sync over: atoms with the same URL and token share one.
    pub(crate) fn connection_key(&self) -> ConnectionKey {
        ConnectionKey {
            url: self.url.clone(),
            token: self.token.clone(),
            roots: self.roots.clone(),
        }
    }

    /// Whether `other` syncs the same way (the resolver compared by identity).
    pub(crate) fn same_as(&self, other: &Options) -> bool {
        let same_resolver = match (&self.resolver, &other.resolver) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.url == other.url
            && self.token == other.token
            && self.roots == other.roots
            && same_resolver
    }
}

impl fmt::Debug for Options {
    // Hand-written so that a token never reaches a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("resolver", &self.resolver.is_some())
            .field("roots", &self.roots.len())
            .finish()
    }
}

/// What identifies one connection of the engine: the server URL, the token and the roots
/// its TLS trusts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct ConnectionKey {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    pub(crate) roots: Vec<RootCertificate>,
}

impl fmt::Debug for ConnectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// The two endpoints of a server: `.../sync` for HTTP and `.../sync/ws` for the WebSocket.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) http: Url,
    pub(crate) ws: Url,
}

impl Endpoints {
    /// Derives both endpoints from the sync URL; an unusable URL is an error before any
    /// network traffic.
    pub(crate) fn parse(url: &str) -> Result<Endpoints, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let http = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        let ws_scheme = match http.scheme() {
            "http" => "ws",
            "https" => "wss",
            _ => return Err(invalid("must start with http:// or https://")),
        };
        if http.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        if http.query().is_some() || http.fragment().is_some() {
            return Err(invalid("must not carry a query or fragment"));
        }
        let mut ws = http.clone();
        ws.set_scheme(ws_scheme)
            .map_err(|()| invalid("cannot be turned into a WebSocket URL"))?;
        let path = format!("{}/ws", http.path().trim_end_matches('/'));
        ws.set_path(&path);
        Ok(Endpoints { http, ws })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_sync_url() {
        let endpoints = Endpoints::parse("http://localhost:8090/sync").unwrap();
        assert_eq!(endpoints.http.as_str(), "http://localhost:8090/sync");
        assert_eq!(endpoints.ws.as_str(), "ws://localhost:8090/sync/ws");
        let endpoints = Endpoints::parse("https://example.com/app/sync/").unwrap();
        assert_eq!(endpoints.ws.as_str(), "wss://example.com/app/sync/ws");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "",
            "localhost:8090",
            "ftp://x/sync",
            "http://x/sync?group=a",
            "not a url",
        ] {
            assert!(
                matches!(Endpoints::parse(url), Err(ClientError::InvalidUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let text = format!("{:?}", Options::new("http://x/sync").token("secret"));
        assert!(!text.contains("secret"), "{text}");
    }
}
