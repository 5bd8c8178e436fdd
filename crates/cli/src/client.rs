//! The API client behind the `sluice` commands: one HTTPS transport, requests authenticated
//! by an [`Authenticate`] (nothing for the local cloud, SigV4 for a deployed stack), the API's
//! JSON errors turned into [`CliError`]s that say what to do, and the presigned upload of
//! large files.

use std::future::Future;
use std::io::IsTerminal;
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningError, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::progress::Progress;

/// What `sluice` exits with; scripts rely on these (documented in `sluice --help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The API answered with an error (or a `sluice local` command failed).
    ApiError = 1,
    /// The command line is wrong (clap's own errors exit 2 too).
    Usage = 2,
    /// The API cannot be reached: endpoint down, stack or its output not found, no or refused credentials.
    Unreachable = 3,
    /// `--wait` ended in FAILED.
    Failed = 4,
}

/// An error answer from the API (or from S3 for a presigned upload).
#[derive(Debug, thiserror::Error)]
#[error("the API answered {} {code}: {message}\n  what to do: {hint}{}", status.as_u16(), request_id.as_deref().map(|id| format!("\n  request id: {id}")).unwrap_or_default())]
pub struct ApiFailure {
    pub status: StatusCode,
    /// The API's error code (`invalid_request`, `not_found`, …).
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// What to do about it.
    pub hint: &'static str,
    /// The API's JSON error document (null when the answer was not JSON).
    pub body: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Api(Box<ApiFailure>),
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the API at {url}: {message}\n  what to do: {hint}")]
    Unreachable { url: String, message: String, hint: &'static str },
    /// S3 refused the PUT to a presigned upload URL.
    #[error(
        "the presigned upload was refused ({status}): {message}\n  what to do: run the command again (the URL may have expired, or the file changed size while it was read)"
    )]
    UploadRefused { status: StatusCode, message: String },
    #[error("{message}\n  what to do: {hint}")]
    Aws { message: String, hint: String },
    /// `--wait` saw the work end in FAILED.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            Self::Api(failure) if is_denied(failure.status) => Exit::Unreachable,
            Self::Api(_) | Self::UploadRefused { .. } => Exit::ApiError,
            Self::Usage(_) => Exit::Usage,
            Self::Unreachable { .. } | Self::Aws { .. } => Exit::Unreachable,
            Self::Failed(_) => Exit::Failed,
        }
    }

    /// The API's own error document, for `--json`.
    pub fn api_body(&self) -> Option<&Value> {
        match self {
            Self::Api(failure) => Some(&failure.body),
            _ => None,
        }
    }
}

/// 401/403 come from API Gateway's IAM authorizer, never from Sluice's functions: a
/// credentials problem.
fn is_denied(status: StatusCode) -> bool {
    matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
}

/// An error answer as a [`CliError`]: Sluice's `{"error": {"code", "message"}, "request_id"}`,
/// or API Gateway's own `{"message"}`.
fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code =
        json["error"]["code"].as_str().unwrap_or_else(|| status.canonical_reason().unwrap_or("error")).to_owned();
    let message = json["error"]["message"]
        .as_str()
        .or_else(|| json["message"].as_str())
        .map_or_else(|| String::from_utf8_lossy(body).trim().to_owned(), str::to_owned);
    let request_id = json["request_id"].as_str().filter(|id| !id.is_empty()).map(str::to_owned);
    let hint = match (status.as_u16(), code.as_str()) {
        (401 | 403, _) => {
            "check your AWS credentials (aws sts get-caller-identity; aws sso login for SSO profiles) and that they may call execute-api:Invoke on this API's routes (docs/security.md)"
        }
        (404, "route_not_found") | (404, "Not Found") => {
            "this API does not serve that route: is the endpoint a Sluice API, and as new as this sluice?"
        }
        (404, _) => {
            "check the names you gave (`sluice models` lists the models; a dataset exists once something was ingested into it); if they are right, it does not exist yet, as the message says"
        }
        (413, "too_many_rows") => "send fewer rows per request (or score whole files through the stack's batch bucket)",
        (429, _) => "the API is throttling requests (training: 1 a second); wait a moment and run the command again",
        (500.., _) => {
            "the API failed: run the command again; if it persists, read the function's log for the request id (the terminal of `sluice local up`, or CloudWatch Logs)"
        }
        _ => "correct what the message names and run the command again",
    };
    CliError::Api(Box::new(ApiFailure { status, code, message, request_id, hint, body: json }))
}

/// An error and its sources, each said once: `client error (Connect): tcp connect error:
/// Connection refused (os error 111)`.
fn causes(err: impl std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How requests to the API are authenticated.
pub trait Authenticate: Send + Sync {
    /// Adds whatever the API needs to accept `request` (headers), just before it is sent.
    fn authenticate<'a>(&'a self, request: &'a mut Request<Bytes>) -> BoxFuture<'a, Result<(), CliError>>;
}

/// The local cloud's API checks no signatures (it listens on loopback only).
pub struct Unsigned;

impl Authenticate for Unsigned {
    fn authenticate<'a>(&'a self, _request: &'a mut Request<Bytes>) -> BoxFuture<'a, Result<(), CliError>> {
        Box::pin(async { Ok(()) })
    }
}

/// SigV4 for `execute-api` with the credentials of the standard AWS chain (environment,
/// profiles, SSO, process, IMDS), refreshed when they are about to expire.
pub struct SigV4 {
    provider: SharedCredentialsProvider,
    region: String,
    credentials: Mutex<Option<Credentials>>,
}

/// The service name API Gateway's IAM authorizer checks signatures for.
const EXECUTE_API: &str = "execute-api";

impl SigV4 {
    pub fn new(config: &SdkConfig) -> Result<Self, CliError> {
        let provider =
            config.credentials_provider().ok_or_else(|| no_credentials("no credentials provider is configured"))?;
        let region = config.region().ok_or_else(no_region)?.to_string();
        Ok(Self { provider, region, credentials: Mutex::new(None) })
    }

    async fn credentials(&self) -> Result<Credentials, CliError> {
        let fresh = |c: &Credentials| c.expiry().is_none_or(|at| at > SystemTime::now() + Duration::from_secs(60));
        if let Some(cached) = self.credentials.lock().expect("not poisoned").as_ref().filter(|c| fresh(c)) {
            return Ok(cached.clone());
        }
        let credentials = self.provider.provide_credentials().await.map_err(|err| no_credentials(&causes(err)))?;
        *self.credentials.lock().expect("not poisoned") = Some(credentials.clone());
        Ok(credentials)
    }
}

impl Authenticate for SigV4 {
    fn authenticate<'a>(&'a self, request: &'a mut Request<Bytes>) -> BoxFuture<'a, Result<(), CliError>> {
        Box::pin(async move {
            let credentials = self.credentials().await?;
            sign_request(request, &credentials, &self.region, EXECUTE_API, SystemTime::now()).map_err(|err| {
                CliError::Usage(format!("cannot sign the request to {}: {}", request.uri(), causes(err)))
            })
        })
    }
}

/// Signs `request` with SigV4 (the AWS SDK's signer): adds `x-amz-date`, the session token
/// if any, and `authorization`, covering the method, path, query, headers and body.
pub fn sign_request(
    request: &mut Request<Bytes>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), SigningError> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .expect("every field is set")
        .into();
    let uri = request.uri().to_string();
    let headers = request.headers().iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let signable = SignableRequest::new(request.method().as_str(), uri, headers, SignableBody::Bytes(request.body()))?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

fn no_credentials(reason: &str) -> CliError {
    CliError::Aws {
        message: format!("no usable AWS credentials: {reason}"),
        hint: "configure credentials as for the AWS CLI (aws configure, aws sso login, AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)".into(),
    }
}

fn no_region() -> CliError {
    CliError::Aws {
        message: "no AWS region is configured".into(),
        hint: "pass --region, set AWS_REGION, or set a region in your AWS profile".into(),
    }
}

/// Where the API is: a URL (the local cloud's by default), or a deployed stack's `ApiUrl`
/// output, with the AWS profile and region to find and sign for it.
#[derive(Debug, Clone)]
pub enum Target {
    Endpoint(String),
    Stack { name: String, profile: Option<String>, region: Option<String> },
}

/// The `template.yaml` output holding the API's base URL.
const API_URL_OUTPUT: &str = "ApiUrl";

/// Loads the AWS configuration the standard way (AWS_ENDPOINT_URL honoured), with an
/// explicit profile and region when given.
async fn aws_config(profile: Option<&str>, region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// The stack's API URL, from CloudFormation `DescribeStacks`.
async fn stack_api_url(config: &SdkConfig, stack: &str) -> Result<String, CliError> {
    let region = config.region().ok_or_else(no_region)?;
    let output = aws_sdk_cloudformation::Client::new(config).describe_stacks().stack_name(stack).send().await.map_err(
        |err| {
            // The service's own words ("Stack with id x does not exist") when it answered.
            let message = match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                _ => causes(err),
            };
            CliError::Aws {
                message: format!("cannot read stack {stack} in {region}: {message}"),
                hint: format!(
                    "check the stack name and region (aws cloudformation describe-stacks --stack-name {stack} --region {region}) and your credentials (aws sts get-caller-identity)"
                ),
            }
        },
    )?;
    let outputs = output.stacks().first().map(|s| s.outputs()).unwrap_or_default();
    outputs
        .iter()
        .find(|o| o.output_key() == Some(API_URL_OUTPUT))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .ok_or_else(|| CliError::Aws {
            message: format!("stack {stack} in {region} has no {API_URL_OUTPUT} output"),
            hint: "is it a Sluice stack, and finished deploying? (sam deploy creates the output)".into(),
        })
}

/// The HTTP client: HTTP/1.1, and HTTPS with the system's root certificates.
#[derive(Clone)]
pub struct Http(Client<HttpsConnector<HttpConnector>, UnsyncBoxBody<Bytes, std::io::Error>>);

impl Http {
    fn new() -> Result<Self, CliError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|err| CliError::Aws {
                message: format!("cannot load the system's root certificates: {err}"),
                hint: "install the CA certificates (e.g. the ca-certificates package) or set SSL_CERT_FILE".into(),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self(Client::builder(TokioExecutor::new()).build(connector)))
    }

    async fn send(
        &self,
        request: Request<UnsyncBoxBody<Bytes, std::io::Error>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let response = self.0.request(request).await.map_err(causes)?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(causes)?.to_bytes();
        Ok((status, body))
    }
}

/// Path segments and query values are percent-encoded, so a name cannot change the route.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn encode(component: &str) -> String {
    utf8_percent_encode(component, COMPONENT).to_string()
}

/// The API at one base URL.
pub struct Api {
    base: String,
    http: Http,
    auth: Box<dyn Authenticate>,
}

impl Api {
    pub async fn connect(target: &Target) -> Result<Self, CliError> {
        let http = Http::new()?;
        match target {
            Target::Endpoint(url) => {
                Ok(Self { base: url.trim_end_matches('/').to_owned(), http, auth: Box::new(Unsigned) })
            }
            Target::Stack { name, profile, region } => {
                let config = aws_config(profile.as_deref(), region.as_deref()).await;
                let auth = SigV4::new(&config)?;
                let base = stack_api_url(&config, name).await?;
                Ok(Self { base: base.trim_end_matches('/').to_owned(), http, auth: Box::new(auth) })
            }
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(Method::POST, path, Some("application/json"), Bytes::from(body.to_string())).await
    }

    /// One API call: the answer's JSON, or the API's error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Value, CliError> {
        let (status, body) = self.exchange(method, path, content_type, body).await?;
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|err| {
            CliError::Api(Box::new(ApiFailure {
                status,
                code: "invalid_response".into(),
                message: format!(
                    "the answer is not JSON ({err}): {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
                request_id: None,
                hint: "is the endpoint a Sluice API?",
                body: Value::Null,
            }))
        })
    }

    /// One API call as it went: the status and body of whatever the API answered (errors
    /// included); only a request that could not be authenticated or sent is an error.
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), CliError> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url).header(http::header::ACCEPT, "application/json");
        if let Some(content_type) = content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        let mut request =
            request.body(body).map_err(|err| CliError::Usage(format!("invalid request to {url}: {err}")))?;
        self.auth.authenticate(&mut request).await?;
        let request = request.map(|body| Full::new(body).map_err(|never| match never {}).boxed_unsync());
        self.http.send(request).await.map_err(|message| CliError::Unreachable {
            url: self.base.clone(),
            message,
            hint: if self.base.contains("127.0.0.1") || self.base.contains("localhost") {
                "start the local cloud (sluice local up), or point at another API with --endpoint URL or --stack NAME"
            } else {
                "check the network and the URL (--endpoint, SLUICE_API or the stack's ApiUrl output)"
            },
        })
    }

    /// PUTs a file to a presigned S3 URL with exactly the signed headers, streaming it from
    /// disk with a progress line on a terminal.
    pub async fn upload(&self, url: &str, headers: &HeaderMap, file: &Path, size: u64) -> Result<(), CliError> {
        let unreadable = |err: std::io::Error| CliError::Usage(format!("cannot read {}: {err}", file.display()));
        let opened = tokio::fs::File::open(file).await.map_err(unreadable)?;
        let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        let progress = Progress::new(std::io::stderr().is_terminal());
        let body = Upload { file: opened, buffer: BytesMut::new(), sent: 0, size, name, progress };
        let mut request = Request::builder().method(Method::PUT).uri(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(body.boxed_unsync())
            .map_err(|err| CliError::Usage(format!("invalid upload URL {url}: {err}")))?;
        let (status, body) = self.http.send(request).await.map_err(|message| CliError::Unreachable {
            url: url.split('?').next().unwrap_or(url).to_owned(),
            message,
            hint: "check the network; the upload URL expires after the stack's UploadUrlTtlSeconds",
        })?;
        if !status.is_success() {
            // S3 answers in XML; its message is all there is to show.
            let message = String::from_utf8_lossy(&body).trim().to_owned();
            return Err(CliError::UploadRefused { status, message });
        }
        Ok(())
    }
}

/// A file streamed as a request body in chunks, counting what was handed to the connection.
struct Upload {
    file: tokio::fs::File,
    buffer: BytesMut,
    sent: u64,
    size: u64,
    name: String,
    progress: Progress,
}

const UPLOAD_CHUNK: usize = 256 * 1024;

impl Body for Upload {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        this.buffer.reserve(UPLOAD_CHUNK);
        let read = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut this.file), cx, &mut this.buffer));
        Poll::Ready(match read {
            Ok(0) => {
                this.progress.finish();
                None
            }
            Ok(n) => {
                this.sent += n as u64;
                this.progress.show(&format!(
                    "uploading {} {} / {} ({:.0}%)",
                    this.name,
                    mib(this.sent),
                    mib(this.size),
                    100.0 * this.sent as f64 / this.size.max(1) as f64
                ));
                Some(Ok(Frame::data(this.buffer.split().freeze())))
            }
            Err(err) => Some(Err(err)),
        })
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size.saturating_sub(self.sent))
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
