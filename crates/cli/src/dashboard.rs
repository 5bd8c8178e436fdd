//! The web dashboard: a few static pages embedded in the binary, served on loopback, whose
//! calls to `/api/…` are forwarded to the API (signed with the user's credentials when it is
//! a deployed stack's), like `kubectl proxy` or `mlflow ui`. There is no second endpoint to
//! secure and no second auth system: the dashboard can do exactly what its user's
//! credentials let the API do, through the API's own checks.
//!
//! Because a forwarding proxy on localhost acts with the user's credentials, it only answers
//! what the user's own browser tab sends: the `Host` must be the loopback address it listens
//! on (a DNS-rebinding page cannot reach it), and every call that changes something must
//! carry the `x-sluice-dashboard` header, which another site's page cannot add without a
//! CORS preflight this server never grants.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::client::{Api, CliError};

/// The pages: one document, its script and its styles (plain HTML, JavaScript and CSS; no
/// build step, no framework, no request to anywhere but this server).
const ASSETS: [(&str, &str, &str); 3] = [
    ("/", "text/html; charset=utf-8", include_str!("../dashboard/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_str!("../dashboard/app.js")),
    ("/app.css", "text/css; charset=utf-8", include_str!("../dashboard/app.css")),
];

/// Only this server's own assets and API; charts are inline SVG.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The header the dashboard's own script sends with every API call.
pub const DASHBOARD_HEADER: &str = "x-sluice-dashboard";

/// API Gateway's own body limit: nothing larger could reach the API anyway.
const MAX_FORWARDED_BODY: usize = 10 * 1024 * 1024;

/// The dashboard being served, until dropped.
pub struct Dashboard {
    address: SocketAddr,
    server: JoinHandle<()>,
}

impl Dashboard {
    /// Serves the dashboard on `address` (a loopback address; port 0 picks a free one),
    /// forwarding its API calls through `api`.
    pub async fn serve(address: SocketAddr, api: Api) -> Result<Self, CliError> {
        let listener = TcpListener::bind(address).await.map_err(|err| {
            CliError::Usage(format!(
                "cannot serve the dashboard on {address}: {err} (choose another port with --dashboard-port or --port)"
            ))
        })?;
        let address = listener.local_addr().map_err(|err| CliError::Usage(err.to_string()))?;
        let api = Arc::new(api);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let api = Arc::clone(&api);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let api = Arc::clone(&api);
                        async move { Ok::<_, std::convert::Infallible>(answer(&api, address, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { address, server })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(api: &Api, address: SocketAddr, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if !is_own_host(request.headers().get(HOST), address) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the dashboard answers only http://127.0.0.1 or localhost at its own port",
        );
    }
    let path = request.uri().path().to_owned();
    if let Some(api_path) = path.strip_prefix("/api/") {
        return forward(api, api_path, request).await;
    }
    if request.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "the pages are read with GET");
    }
    match ASSETS.iter().find(|(asset, _, _)| *asset == path) {
        Some((_, content_type, body)) => Response::builder()
            .header(CONTENT_TYPE, *content_type)
            .header(CONTENT_SECURITY_POLICY, POLICY)
            .header(CACHE_CONTROL, "no-cache")
            .header("x-content-type-options", "nosniff")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("a valid response"),
        None => error(StatusCode::NOT_FOUND, "not_found", &format!("no page {path}")),
    }
}

/// Whether `Host` names the address the dashboard listens on, as the browser reached it.
fn is_own_host(host: Option<&HeaderValue>, address: SocketAddr) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else { return false };
    let port = address.port();
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|name| host == format!("{name}:{port}"))
}

/// Sends the request on to the API as `/<api_path>?<query>` and answers with what it said.
async fn forward(api: &Api, api_path: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let changes_something = request.method() != Method::GET;
    if changes_something && !request.headers().contains_key(DASHBOARD_HEADER) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("calls that change something must come from the dashboard's own page ({DASHBOARD_HEADER} header)"),
        );
    }
    let method = request.method().clone();
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = match request.uri().query() {
        Some(query) => format!("/{api_path}?{query}"),
        None => format!("/{api_path}"),
    };
    let body = match Limited::new(request.into_body(), MAX_FORWARDED_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the API takes at most {MAX_FORWARDED_BODY} bytes; send larger files with `sluice ingest`"),
            );
        }
    };
    match api.exchange(method, &path, content_type.as_deref(), body).await {
        Ok((status, body)) => Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json")
            .header(CACHE_CONTROL, "no-store")
            .body(Full::new(body))
            .expect("a valid response"),
        // The API could not be reached or the request not signed: the dashboard says why.
        Err(err) => error(StatusCode::BAD_GATEWAY, "api_unreachable", &err.to_string()),
    }
}

/// An error in the API's own shape, so the page shows every error one way.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "error": { "code": code, "message": message } });
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}
