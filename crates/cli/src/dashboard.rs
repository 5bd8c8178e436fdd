//! The web dashboard: a few static pages embedded in the binary, served on loopback, whose
//! calls to `/api/…` are forwarded to the API (signed with the user's credentials when it is
//! a deployed stack's), like `kubectl proxy` or `mlflow ui`. There is no second endpoint to
//! secure and no second auth system: the dashboard can do exactly what its user's
//! credentials let the API do, through the API's own checks.
//!
//! Because a forwarding proxy on localhost acts with the user's credentials, it only answers
//! the user's own browser tab, as Jupyter does: every API call must carry the random token
//! of this run (printed in the dashboard's URL, `?token=`; the page sends it in the
//! `x-sluice-dashboard` header), so another local user or process cannot borrow the
//! credentials, and a web page cannot either (a cross-site request cannot add the header
//! without a CORS preflight, which is never granted). The `Host` must be the loopback address
//! it listens on, so a DNS-rebinding page does not even get the pages.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use sluice_localcloud::api::serve_http;

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

/// The header carrying the run's token on every API call the page makes.
pub const DASHBOARD_HEADER: &str = "x-sluice-dashboard";

/// API Gateway's own body limit: nothing larger could reach the API anyway.
const MAX_FORWARDED_BODY: usize = 10 * 1024 * 1024;

/// The dashboard being served, until dropped.
pub struct Dashboard {
    address: SocketAddr,
    token: String,
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
        let token = new_token()?;
        let shared = Arc::new((api, token.clone()));
        let server = serve_http(listener, move |request, _| {
            let shared = Arc::clone(&shared);
            async move {
                let (api, token) = &*shared;
                answer(api, token, address, request).await
            }
        });
        Ok(Self { address, token, server })
    }

    /// The address to open, with this run's token.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.address, self.token)
    }
}

/// 128 random bits, hex: this run's token.
fn new_token() -> Result<String, CliError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|err| CliError::Usage(format!("no randomness for the dashboard's token: {err}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(api: &Api, token: &str, address: SocketAddr, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if !is_own_host(request.headers().get(HOST), address) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the dashboard answers only http://127.0.0.1 or localhost at its own port",
        );
    }
    let path = request.uri().path().to_owned();
    if let Some(api_path) = path.strip_prefix("/api/") {
        let sent = request.headers().get(DASHBOARD_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
        if !same_secret(sent, token.as_bytes()) {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "open the dashboard with the URL it printed (with ?token=): API calls need this run's token",
            );
        }
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
    ["127.0.0.1", "localhost"].iter().any(|name| host == format!("{name}:{port}"))
}

/// Compares in time that does not depend on where the two differ.
fn same_secret(sent: &[u8], expected: &[u8]) -> bool {
    sent.len() == expected.len() && sent.iter().zip(expected).fold(0, |differ, (a, b)| differ | (a ^ b)) == 0
}

/// Sends the request on to the API as `/<api_path>?<query>` and answers with what it said.
async fn forward(api: &Api, api_path: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = match request.uri().query() {
        Some(query) => format!("/{api_path}?{query}"),
        None => format!("/{api_path}"),
    };
    let body = match Limited::new(request.into_body(), MAX_FORWARDED_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the API takes at most {MAX_FORWARDED_BODY} bytes; send larger files with `sluice ingest`"),
            );
        }
        Err(err) => return error(StatusCode::BAD_REQUEST, "unreadable_body", &format!("cannot read the body: {err}")),
    };
    match api.exchange(method, &path, content_type.as_deref(), body).await {
        Ok((status, body)) => Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json")
            .header(CACHE_CONTROL, "no-store")
            .body(Full::new(body))
            .expect("a valid response"),
        // The API could not be reached, or the request not signed: the dashboard says why.
        Err(err @ CliError::Unreachable { .. }) => error(StatusCode::BAD_GATEWAY, "api_unreachable", &err.to_string()),
        Err(err) => error(StatusCode::BAD_GATEWAY, "cannot_sign", &err.to_string()),
    }
}

/// An error in the API's own shape, so the page shows every error one way.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "error": { "code": code, "message": message } });
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}
