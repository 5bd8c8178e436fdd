//! Serves the template's HTTP API routes on localhost. Each request becomes the API Gateway
//! HTTP API event (payload format 2.0) the function receives in AWS, and the function's
//! response becomes the HTTP response, with API Gateway's own limits applied.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use sluice_core::percent_decode;

use crate::Functions;
use crate::template::Stack;

/// API Gateway refuses request bodies over 10 MB.
pub const API_GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;
/// Lambda refuses synchronous invocations whose event is over 6 MB.
pub const LAMBDA_MAX_EVENT: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter(String),
    /// `{name+}`: the rest of the path.
    Greedy(String),
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    route_key: String,
    segments: Vec<Segment>,
    function: String,
}

/// The routes of every function's `HttpApi` events.
#[derive(Debug, Clone)]
pub struct Routes(Vec<Route>);

/// A request matched to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub route_key: String,
    pub function: String,
    pub path_parameters: HashMap<String, String>,
}

impl Routes {
    pub fn from_stack(stack: &Stack) -> Self {
        let mut routes = Vec::new();
        for function in &stack.functions {
            for route in &function.http_routes {
                let segments = route
                    .path
                    .trim_start_matches('/')
                    .split('/')
                    .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => match name.strip_suffix('+') {
                            Some(greedy) => Segment::Greedy(greedy.to_owned()),
                            None => Segment::Parameter(name.to_owned()),
                        },
                        None => Segment::Literal(segment.to_owned()),
                    })
                    .collect();
                routes.push(Route {
                    method: route.method.clone(),
                    route_key: route.route_key(),
                    segments,
                    function: function.logical_id.clone(),
                });
            }
        }
        Self(routes)
    }

    pub fn route_keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|r| r.route_key.as_str())
    }

    /// Matches like API Gateway: the method (or `ANY`) and every literal segment exactly;
    /// parameters take one percent-decoded segment, greedy ones the rest.
    pub fn find(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        'routes: for route in &self.0 {
            if route.method != method && route.method != "ANY" {
                continue;
            }
            let mut path_parameters = HashMap::new();
            for (index, segment) in route.segments.iter().enumerate() {
                match segment {
                    Segment::Greedy(name) => {
                        path_parameters
                            .insert(name.clone(), percent_decode(&parts[index.min(parts.len())..].join("/")));
                        break;
                    }
                    _ if index >= parts.len() => continue 'routes,
                    Segment::Literal(literal) if literal != parts[index] => continue 'routes,
                    Segment::Literal(_) => {}
                    Segment::Parameter(name) => {
                        path_parameters.insert(name.clone(), percent_decode(parts[index]));
                    }
                }
            }
            let greedy = matches!(route.segments.last(), Some(Segment::Greedy(_)));
            if !greedy && route.segments.len() != parts.len() {
                continue;
            }
            return Some(RouteMatch {
                route_key: route.route_key.clone(),
                function: route.function.clone(),
                path_parameters,
            });
        }
        None
    }
}

/// Media types API Gateway passes as text; any other body arrives base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else { return false };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/x-ndjson"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
        )
}

/// Parts of an HTTP request that go into the event.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: &'a str,
}

/// The API Gateway HTTP API event (payload format 2.0) for a request.
pub fn event(request: &HttpRequest<'_>, matched: &RouteMatch) -> Value {
    let now = OffsetDateTime::now_utc();
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for name in request.headers.keys() {
        let values: Vec<&str> = request.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        if name == http::header::COOKIE {
            cookies.extend(values.iter().flat_map(|v| v.split("; ")).map(str::to_owned));
        } else {
            headers.insert(name.as_str().to_owned(), values.join(",").into());
        }
    }
    let mut query = serde_json::Map::new();
    for pair in request.query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name), percent_decode(value));
        match query.get_mut(&name) {
            Some(Value::String(existing)) => *existing = format!("{existing},{value}"),
            _ => {
                query.insert(name, value.into());
            }
        }
    }
    let content_type = request.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let (body, is_base64) = match std::str::from_utf8(request.body) {
        _ if request.body.is_empty() => (Value::Null, false),
        Ok(text) if is_text(content_type) => (text.into(), false),
        _ => (base64::engine::general_purpose::STANDARD.encode(request.body).into(), true),
    };
    let request_id = uuid::Uuid::now_v7().to_string();
    let mut event = json!({
        "version": "2.0",
        "routeKey": matched.route_key,
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": crate::template::ACCOUNT_ID,
            "apiId": "local",
            "domainName": request.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost"),
            "domainPrefix": "local",
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": request.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": request_id,
            "routeKey": matched.route_key,
            "stage": "$default",
            "time": now.format(format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000")).expect("formats"),
            "timeEpoch": now.unix_timestamp_nanos() / 1_000_000,
        },
        "pathParameters": matched.path_parameters,
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = cookies.into();
    }
    if !query.is_empty() {
        event["queryStringParameters"] = query.into();
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

/// The HTTP response for a function's result, as API Gateway builds it.
pub fn response(result: &Value) -> Response<Full<Bytes>> {
    // A result without statusCode is a plain body with status 200 (format 2.0 inference).
    let Some(status) = result.get("statusCode").and_then(Value::as_u64) else {
        return plain(StatusCode::OK, "application/json", result.to_string());
    };
    let body = match result.get("body") {
        Some(Value::String(text)) if result.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default()
        }
        Some(Value::String(text)) => text.clone().into_bytes(),
        _ => Vec::new(),
    };
    let mut builder = Response::builder().status(u16::try_from(status).unwrap_or(502));
    for (name, value) in result.get("headers").and_then(Value::as_object).into_iter().flatten() {
        if let Some(value) = value.as_str() {
            builder = builder.header(name, value);
        }
    }
    for (name, values) in result.get("multiValueHeaders").and_then(Value::as_object).into_iter().flatten() {
        for value in values.as_array().into_iter().flatten().filter_map(Value::as_str) {
            builder = builder.header(name, value);
        }
    }
    for cookie in result.get("cookies").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        builder = builder.header(http::header::SET_COOKIE, cookie);
    }
    builder.body(Full::new(Bytes::from(body))).unwrap_or_else(|err| {
        plain(
            StatusCode::BAD_GATEWAY,
            "application/json",
            json!({"message": format!("invalid function response: {err}")}).to_string(),
        )
    })
}

fn plain(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn gateway_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    plain(status, "application/json", json!({ "message": message }).to_string())
}

async fn dispatch(
    request: Request<Incoming>,
    peer: SocketAddr,
    routes: &Routes,
    functions: &dyn Functions,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Some(matched) = routes.find(parts.method.as_str(), parts.uri.path()) else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let body = match Limited::new(body, API_GATEWAY_MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let source_ip = peer.ip().to_string();
    let http_request = HttpRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &body,
        source_ip: &source_ip,
    };
    let event = event(&http_request, &matched);
    if event.to_string().len() > LAMBDA_MAX_EVENT {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Too Long");
    }
    match functions.invoke(&matched.function, event).await {
        Ok(result) => response(&result),
        Err(err) => {
            tracing::error!(function = %matched.function, error = %err, "invocation failed");
            gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// Serves HTTP/1.1 on `listener` until the returned task is aborted, each request answered
/// by `handle` (given the peer's address). An accept that fails (out of file descriptors,
/// say) is retried after a pause, not at once, which would spin.
pub fn serve_http<H, F>(listener: TcpListener, handle: H) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handle = Arc::clone(&handle);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = handle(request, peer);
                    async move { Ok::<_, std::convert::Infallible>(answer.await) }
                });
                if let Err(err) =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                {
                    tracing::debug!(error = %err, "connection closed with an error");
                }
            });
        }
    })
}

/// The API served on a loopback port until dropped.
pub struct ApiServer {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// Binds `address` (port 0 picks a free one) and serves the stack's routes.
    pub async fn start(address: SocketAddr, stack: &Stack, functions: Arc<dyn Functions>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let routes = Arc::new(Routes::from_stack(stack));
        let task = serve_http(listener, move |request, peer| {
            let (routes, functions) = (Arc::clone(&routes), Arc::clone(&functions));
            async move { dispatch(request, peer, &routes, functions.as_ref()).await }
        });
        Ok(Self { address, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Function, HttpRoute};

    fn stack() -> Stack {
        let route = |method: &str, path: &str| HttpRoute { method: method.into(), path: path.into() };
        Stack {
            name: "t".into(),
            buckets: vec![],
            tables: vec![],
            queues: vec![],
            topics: vec![],
            delivery_streams: vec![],
            functions: vec![
                Function {
                    logical_id: "Ingest".into(),
                    binary: "ingest".into(),
                    environment: HashMap::new(),
                    http_routes: vec![
                        route("POST", "/datasets/{dataset}/records"),
                        route("GET", "/datasets/{dataset}/ingests/{id}"),
                    ],
                    s3_triggers: vec![],
                    event_patterns: vec![],
                    schedules: vec![],
                    queue_sources: vec![],
                    sns_topics: vec![],
                    async_invoke: Default::default(),
                },
                Function {
                    logical_id: "Files".into(),
                    binary: "files".into(),
                    environment: HashMap::new(),
                    http_routes: vec![route("ANY", "/files/{path+}")],
                    s3_triggers: vec![],
                    event_patterns: vec![],
                    schedules: vec![],
                    queue_sources: vec![],
                    sns_topics: vec![],
                    async_invoke: Default::default(),
                },
            ],
        }
    }

    #[test]
    fn matches_method_literals_and_parameters() {
        let routes = Routes::from_stack(&stack());
        let matched = routes.find("GET", "/datasets/iris/ingests/abc").unwrap();
        assert_eq!(matched.route_key, "GET /datasets/{dataset}/ingests/{id}");
        assert_eq!(matched.function, "Ingest");
        assert_eq!(
            matched.path_parameters,
            HashMap::from([("dataset".into(), "iris".into()), ("id".into(), "abc".into())])
        );
        assert!(routes.find("GET", "/datasets/iris/records").is_none(), "wrong method");
        assert!(routes.find("POST", "/datasets/iris/records/extra").is_none(), "extra segment");
        assert!(routes.find("POST", "/datasets/records").is_none(), "missing segment");
    }

    #[test]
    fn parameters_are_percent_decoded_and_may_be_empty() {
        let routes = Routes::from_stack(&stack());
        let matched = routes.find("POST", "/datasets/..%2Fx/records").unwrap();
        assert_eq!(matched.path_parameters["dataset"], "../x");
        assert_eq!(routes.find("POST", "/datasets/%2e%2e/records").unwrap().path_parameters["dataset"], "..");
        assert_eq!(routes.find("POST", "/datasets//records").unwrap().path_parameters["dataset"], "");
    }

    #[test]
    fn greedy_parameters_take_the_rest_of_the_path() {
        let routes = Routes::from_stack(&stack());
        let matched = routes.find("DELETE", "/files/a/b/c.txt").unwrap();
        assert_eq!(matched.path_parameters["path"], "a/b/c.txt");
    }

    #[test]
    fn events_follow_payload_format_2() {
        let routes = Routes::from_stack(&stack());
        let matched = routes.find("POST", "/datasets/iris/records").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "image/png".parse().unwrap());
        headers.insert("cookie", "a=1; b=2".parse().unwrap());
        let request = HttpRequest {
            method: "POST",
            path: "/datasets/iris/records",
            query: "x=1&x=2&y=%20",
            headers: &headers,
            body: &[0x89, b'P', b'N', b'G'],
            source_ip: "127.0.0.1",
        };
        let event = event(&request, &matched);
        assert_eq!(event["routeKey"], "POST /datasets/{dataset}/records");
        assert_eq!(event["pathParameters"]["dataset"], "iris");
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "iVBORw==");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["queryStringParameters"], json!({"x": "1,2", "y": " "}));
        assert_eq!(event["requestContext"]["http"]["method"], "POST");

        // The event is what the Rust runtime's own type reads.
        let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest = serde_json::from_value(event).unwrap();
        assert_eq!(typed.route_key.as_deref(), Some("POST /datasets/{dataset}/records"));
        assert_eq!(typed.headers["content-type"], "image/png");
    }

    #[test]
    fn text_bodies_are_passed_as_text() {
        let routes = Routes::from_stack(&stack());
        let matched = routes.find("POST", "/datasets/iris/records").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/csv".parse().unwrap());
        let request = HttpRequest {
            method: "POST",
            path: "/datasets/iris/records",
            query: "",
            headers: &headers,
            body: b"a,b\n1,2\n",
            source_ip: "127.0.0.1",
        };
        let event = event(&request, &matched);
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["body"], "a,b\n1,2\n");
    }

    #[test]
    fn responses_carry_status_headers_and_decoded_bodies() {
        let result = json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-one": "1"},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "body": "eyJvayI6dHJ1ZX0=",
            "isBase64Encoded": true,
        });
        let response = response(&result);
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-one"], "1");
        assert_eq!(response.headers().get_all("x-many").iter().count(), 2);
        let body = futures_body(response);
        assert_eq!(body, br#"{"ok":true}"#);
    }

    fn futures_body(response: Response<Full<Bytes>>) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async { response.into_body().collect().await.unwrap().to_bytes().to_vec() })
    }
}
