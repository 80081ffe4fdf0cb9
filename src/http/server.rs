//! The HTTP server: actix's HTTP/1 service, over connections that [`crate::conn`] accepts,
//! counts and can abort.
//!
//! Built on actix-server and actix-http directly rather than actix-web's `HttpServer`,
//! because `HttpServer` hands actix the accepted socket itself: a connection whose peer
//! never reads could not be freed without holding a duplicate of every socket's
//! descriptor (two descriptors per connection). Here each socket is wrapped in a
//! [`Guarded`] stream before actix sees it. The rest is what `HttpServer::listen` does,
//! and, with `[server.tls]`, what `HttpServer::listen_rustls_0_23` does: the TLS handshake
//! runs over the guarded stream, so a connection stalled in its handshake is timed out and
//! aborted like any other.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, Protocol, Request};
use actix_server::Server;
use actix_service::{
    IntoServiceFactory, ServiceFactory, ServiceFactoryExt, fn_service, map_config,
};
use actix_web::dev::{AppConfig, Extensions, ServiceResponse};
use actix_web::rt::net::TcpStream;
use actix_web::{App, middleware, web};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::AppState;
use crate::conn::{self, ConnHandle, Connections, Guarded};

/// How the server listens.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// Worker threads; 0: one per core.
    pub workers: usize,
    /// A first request's head must arrive within this (actix answers 408 itself).
    pub request_timeout: Duration,
    /// How long an idle connection is kept for a next request.
    pub keep_alive: Duration,
    /// In-flight requests get this long to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// The listener is on a loopback address: requests must name a loopback `Host`.
    pub loopback: bool,
}

/// The server for `listener`, not yet running: every route of [`super::configure`] over
/// `state`, with the access log, the request deadlines and (on a loopback bind) the `Host`
/// check; HTTPS when `tls` is given.
pub fn build(
    listener: TcpListener,
    state: web::Data<AppState>,
    connections: Connections,
    listen: Listen,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(listen.shutdown_grace.as_secs())
        // actix stops accepting at its own per-worker limit, which would leave new
        // connections waiting in the backlog; ours refuses them at once instead.
        .max_concurrent_connections(connections.limit().saturating_add(1024));
    if listen.workers > 0 {
        builder = builder.workers(listen.workers);
    }
    let builder = match tls {
        None => builder.listen("atomsync", listener, move || {
            accept(connections.clone()).and_then(http::<Guarded>(state.clone(), listen, addr))
        })?,
        Some(mut tls) => {
            // HTTP/1.1 only, as over plain TCP; saying so lets clients skip h2.
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            let acceptor = TlsAcceptor::from(Arc::new(tls));
            builder.listen("atomsync", listener, move || {
                let acceptor = acceptor.clone();
                accept(connections.clone())
                    .and_then(fn_service(
                        move |(io, protocol, peer): Accepted<Guarded>| {
                            let handshake = acceptor.accept(io);
                            async move {
                                let tls = handshake.await.map_err(DispatchError::Io)?;
                                Ok::<_, DispatchError>((tls, protocol, peer))
                            }
                        },
                    ))
                    .and_then(http::<TlsStream<Guarded>>(state.clone(), listen, addr))
            })?
        }
    };
    Ok(builder.run())
}

/// A connection handed to actix's HTTP service: the stream, its protocol, its peer.
type Accepted<T> = (T, Protocol, Option<SocketAddr>);

/// Accepts a socket into [`Connections`] (refused at once past the limit), guarded.
fn accept(
    connections: Connections,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = Accepted<Guarded>,
    Error = DispatchError,
    InitError = (),
> + Clone {
    fn_service(move |io: TcpStream| {
        // Small frames (a pushed answer, a live change) must leave at once, not wait for
        // Nagle's algorithm to collect more: latency is the product.
        let _ = io.set_nodelay(true);
        let peer = io.peer_addr().ok();
        let accepted = connections.accept(io);
        async move {
            match accepted {
                Some(guarded) => Ok((guarded, Protocol::Http1, peer)),
                None => Err(DispatchError::Io(std::io::Error::other(
                    "refused: too many open connections",
                ))),
            }
        }
    })
}

/// A stream the HTTP service runs over, plain or TLS: either way over a [`Guarded`]
/// socket, whose connection the handlers can reach (to abort it, or to time its request).
pub(super) trait Served: AsyncRead + AsyncWrite + Unpin + 'static {
    fn guarded(&self) -> &Guarded;
}

impl Served for Guarded {
    fn guarded(&self) -> &Guarded {
        self
    }
}

impl Served for TlsStream<Guarded> {
    fn guarded(&self) -> &Guarded {
        self.get_ref().0
    }
}

/// Every route, with the access log, the request deadlines and (on a loopback bind) the
/// `Host` check.
fn routes(
    state: web::Data<AppState>,
    listen: Listen,
) -> impl ServiceFactory<
    Request,
    Config = AppConfig,
    Response = ServiceResponse<impl MessageBody + 'static>,
    Error = actix_web::Error,
    InitError = (),
> + 'static {
    App::new()
        .app_data(state)
        .configure(super::configure)
        .wrap(middleware::from_fn(conn::deadline::request_deadline))
        .wrap(middleware::Condition::new(
            listen.loopback,
            middleware::from_fn(super::guard::loopback_hosts_only),
        ))
        // Outermost: every answer is logged and counted, the guards' refusals too.
        .wrap(middleware::from_fn(super::access::access))
        .into_factory()
}

/// actix's HTTP/1 service with every route, over streams of type `T`; WebSocket upgrades
/// leave it for a session of their own ([`super::upgrade`]).
fn http<T: Served>(
    state: web::Data<AppState>,
    listen: Listen,
    addr: SocketAddr,
) -> impl ServiceFactory<Accepted<T>, Config = (), Response = (), Error = DispatchError, InitError = ()>
{
    let app = routes(state.clone(), listen);
    let upgrades = super::upgrade::service::<T, _, _>(move || routes(state.clone(), listen));
    HttpService::build()
        .keep_alive(listen.keep_alive)
        .client_request_timeout(listen.request_timeout)
        // A closing connection may linger a second for the peer to read the end.
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(addr)
        .on_connect_ext(|io: &T, data: &mut Extensions| {
            data.insert(ConnHandle(io.guarded().conn().clone()));
        })
        .upgrade(upgrades)
        .finish(map_config(
            app.map_err(|err: actix_web::Error| err.error_response()),
            |_| AppConfig::default(),
        ))
}
