//! The agent's HTTP endpoints: `/liveness` and `/readiness` (Felix's health port, 9099 by
//! default) and `/metrics` (Prometheus, 9091 by default), served by hyper on a
//! single-threaded tokio runtime in a thread of their own.
//!
//! Health answers: `204 No Content` when no component is registered, `200 OK` with the
//! component table when every component is live (ready), `503 Service Unavailable` with the
//! table otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::health::Health;
use crate::metrics::Metrics;

/// The pause after a failed accept.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// What an endpoint answers: status, content type, body.
type Answer = (StatusCode, &'static str, String);

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime or thread could not be started.
    #[error("cannot start the HTTP server thread: {source}")]
    Start {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A running server; stopped when dropped.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// The address it listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the thread.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `/liveness` and `/readiness` from `health` on `addr`.
pub fn serve_health(addr: SocketAddr, health: Arc<Health>) -> Result<HttpServer, HttpError> {
    serve(
        addr,
        Arc::new(move |path: &str| {
            let summary = health.summary(Instant::now());
            let good = match path {
                "/liveness" => summary.live,
                "/readiness" => summary.ready,
                _ => {
                    return (
                        StatusCode::NOT_FOUND,
                        "text/plain",
                        "not found\n".to_owned(),
                    );
                }
            };
            if summary.components.is_empty() {
                return (StatusCode::NO_CONTENT, "text/plain", String::new());
            }
            let status = if good {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, "text/plain; charset=utf-8", summary.to_table())
        }),
    )
}

/// Serves `/metrics` from `metrics` on `addr`.
pub fn serve_metrics(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<HttpServer, HttpError> {
    serve(
        addr,
        Arc::new(move |path: &str| match path {
            "/metrics" => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics.encode(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_owned(),
            ),
        }),
    )
}

type Handler = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

fn respond(req: &Request<Incoming>, handler: &Handler) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if req.method() == Method::GET || req.method() == Method::HEAD {
            handler(req.uri().path())
        } else {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "only GET\n".to_owned(),
            )
        };
    let body = if req.method() == Method::HEAD {
        String::new()
    } else {
        body
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

fn serve(addr: SocketAddr, handler: Handler) -> Result<HttpServer, HttpError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| HttpError::Bind { addr, source })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| HttpError::Start { source })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("http-{}", local.port()))
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                tokio::spawn(async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            // Out of descriptors or the like: back off instead of spinning.
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        };
                        let handler = Arc::clone(&handler);
                        tokio::spawn(async move {
                            let service = service_fn(move |req: Request<Incoming>| {
                                let resp = respond(&req, &handler);
                                async move { Ok::<_, Infallible>(resp) }
                            });
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
                let _ = stopped.await;
            });
        })
        .map_err(|source| HttpError::Start { source })?;
    Ok(HttpServer {
        addr: local,
        stop: Some(stop),
        thread: Some(thread),
    })
}
