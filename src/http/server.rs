//! The HTTP server: actix's HTTP/1 service, over connections that [`crate::conn`] accepts,
//! counts and can abort.
//!
//! Built on actix-server and actix-http directly rather than actix-web's `HttpServer`,
//! because `HttpServer` hands actix the accepted socket itself: a connection whose peer
//! never reads could not be freed without holding a duplicate of every socket's
//! descriptor (two descriptors per connection). Here each socket is wrapped in a
//! [`Guarded`] stream before actix sees it. The rest is what `HttpServer::listen` does.

use std::net::TcpListener;
use std::time::Duration;

use actix_http::{HttpService, Protocol};
use actix_server::Server;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::{AppConfig, Extensions};
use actix_web::rt::net::TcpStream;
use actix_web::{App, middleware, web};

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
/// `state`, with the request deadlines and (on a loopback bind) the `Host` check.
pub fn build(
    listener: TcpListener,
    state: web::Data<AppState>,
    connections: Connections,
    listen: Listen,
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
    let server = builder
        .listen("atomsync", listener, move || {
            let app = App::new()
                .app_data(state.clone())
                .configure(super::configure)
                .wrap(middleware::from_fn(conn::deadline::request_deadline))
                .wrap(middleware::Condition::new(
                    listen.loopback,
                    middleware::from_fn(super::guard::loopback_hosts_only),
                ));
            let http = HttpService::build()
                .keep_alive(listen.keep_alive)
                .client_request_timeout(listen.request_timeout)
                // A closing connection may linger a second for the peer to read the end.
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .on_connect_ext(|io: &Guarded, data: &mut Extensions| {
                    data.insert(ConnHandle(io.conn().clone()));
                })
                .finish(map_config(
                    app.into_factory()
                        .map_err(|err: actix_web::Error| err.error_response()),
                    |_| AppConfig::default(),
                ));
            let connections = connections.clone();
            fn_service(move |io: TcpStream| {
                // Small frames (a pushed answer, a live change) must leave at once, not
                // wait for Nagle's algorithm to collect more: latency is the product.
                let _ = io.set_nodelay(true);
                let peer = io.peer_addr().ok();
                let accepted = connections.accept(io);
                async move {
                    match accepted {
                        Some(guarded) => Ok((guarded, Protocol::Http1, peer)),
                        None => Err(actix_http::error::DispatchError::Io(std::io::Error::other(
                            "refused: too many open connections",
                        ))),
                    }
                }
            })
            .and_then(http)
        })?
        .run();
    Ok(server)
}
