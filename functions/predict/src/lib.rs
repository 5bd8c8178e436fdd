//! The `predict` function: real-time predictions from a model's production version.
//!
//! - `POST /models/{model}/predict`: `{"rows": [{column: value, …}]}`, or an image body
//!   (`image/png`, `image/jpeg`) for image models. Each row gets a prediction (label with
//!   class probabilities, or a value) and a prediction id; every request is recorded
//!   (DynamoDB for lookup and feedback, the capture stream for monitoring).
//!   During a rollout the model's policy decides which version answers (`x-sluice-caller`
//!   keeps a caller on one version of a canary) and the answer names it.
//! - `GET /models/{model}/predict`: what a request row carries (the production version's
//!   input columns, with categories and example values), for forms and clients.
//! - `GET /predictions/{id}`: a recorded prediction, with its feedback.
//! - `POST /predictions/{id}/feedback`: `{"truth": label or value}`, the ground truth.
//!
//! The serving itself is `sluice-serving`'s use case; this is its HTTP adapter.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use serde_json::{Value, json};
use sluice_aws::http_api::{BodyError, body_bytes, error_response, json_response, path_parameter};
use sluice_aws::settings::{SettingsError, Vars, required};
use sluice_aws::{AwsClients, StoreError};
use sluice_aws_serving::{Service, StoredPrediction, prediction_service};
use sluice_core::capture::PredictionId;
use sluice_core::metrics::{Metric, Unit, publish};
use sluice_core::{InvalidName, ModelName};
use sluice_formats::ContentKind;
use sluice_serving::{Input, ServeError};
use time::OffsetDateTime;

pub const ROUTE_PREDICT: &str = "POST /models/{model}/predict";
pub const ROUTE_INPUTS: &str = "GET /models/{model}/predict";
pub const ROUTE_GET_PREDICTION: &str = "GET /predictions/{id}";
pub const ROUTE_FEEDBACK: &str = "POST /predictions/{id}/feedback";

/// The header naming the caller, for a canary's stickiness (any stable text: a user or
/// session id).
pub const CALLER_HEADER: &str = "x-sluice-caller";

/// Lambda's 6 MB synchronous payload, less base64's growth for image bodies.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// A label or a number, with room to spare; it is stored beside the prediction.
const MAX_FEEDBACK_BYTES: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotFound(String),
    #[error("no route {0}")]
    RouteNotFound(String),
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl ApiError {
    fn status(&self) -> u16 {
        match self {
            Self::InvalidName(_) | Self::InvalidRequest(_) => 400,
            Self::Serve(ServeError::NoRows | ServeError::InvalidRow(_) | ServeError::InvalidImage(_)) => 400,
            Self::Serve(ServeError::NotAnImageModel) | Self::UnsupportedMediaType(_) => 415,
            Self::Serve(ServeError::NoProduction(_)) | Self::NotFound(_) | Self::RouteNotFound(_) => 404,
            Self::Serve(ServeError::TooManyRows { .. }) | Self::PayloadTooLarge(_) => 413,
            Self::Serve(ServeError::ModelUnavailable(_) | ServeError::Source(_)) | Self::Store(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_name",
            Self::InvalidRequest(_) | Self::Serve(ServeError::NoRows | ServeError::InvalidImage(_)) => {
                "invalid_request"
            }
            Self::Serve(ServeError::InvalidRow(_)) => "invalid_row",
            Self::Serve(ServeError::TooManyRows { .. }) => "too_many_rows",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) | Self::Serve(ServeError::NotAnImageModel) => "unsupported_media_type",
            Self::Serve(ServeError::NoProduction(_)) | Self::NotFound(_) => "not_found",
            Self::RouteNotFound(_) => "route_not_found",
            Self::Serve(ServeError::ModelUnavailable(_)) => "model_unavailable",
            Self::Serve(ServeError::Source(_)) | Self::Store(_) => "internal_error",
        }
    }

    /// What the client is told: server-side faults are not described to it.
    fn message(&self) -> String {
        match self {
            Self::Serve(ServeError::Source(_)) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

pub struct Predict {
    service: Service,
    metrics_namespace: String,
}

impl Predict {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        Ok(Self {
            service: prediction_service(clients, vars)?,
            metrics_namespace: required(vars, "METRICS_NAMESPACE")?,
        })
    }

    pub async fn handle(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let route = request.route_key.clone().unwrap_or_default();
        let request_id = request.request_context.request_id.clone().unwrap_or_default();
        let result = match route.as_str() {
            ROUTE_PREDICT => self.predict(&request).await,
            ROUTE_INPUTS => self.inputs(&request).await,
            ROUTE_GET_PREDICTION => self.get(&request).await,
            ROUTE_FEEDBACK => self.feedback(&request).await,
            _ => Err(ApiError::RouteNotFound(route.clone())),
        };
        result.unwrap_or_else(|err| {
            if err.status() >= 500 {
                tracing::error!(%route, %request_id, error = %err, source = ?err, "request failed");
            }
            publish(
                &self.metrics_namespace,
                &[("Function", "predict"), ("ErrorKind", err.code())],
                &[Metric { name: "Errors".into(), unit: Unit::Count, value: 1.0 }],
            );
            error_response(err.status(), err.code(), &err.message(), &request_id)
        })
    }

    async fn predict(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let body = body_bytes(request, MAX_BODY_BYTES).map_err(|err| match err {
            BodyError::TooLarge { .. } => ApiError::PayloadTooLarge(err.to_string()),
            BodyError::InvalidBase64(_) => ApiError::InvalidRequest(err.to_string()),
        })?;
        let content_type = request.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        let image = match ContentKind::from_content_type(content_type) {
            _ if content_type.is_empty() => None,
            Ok(ContentKind::Json) => None,
            Ok(kind) if kind.is_image() => Some(kind),
            _ => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Type {content_type:?}: send application/json rows, or image/png or image/jpeg for image models"
                )));
            }
        };
        // A canary keeps a caller on one version when it names itself.
        let caller = request.headers.get(CALLER_HEADER).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
        let served = match image {
            None => {
                let rows = json_rows(&body)?;
                self.service.serve(&model, Input::Rows(&rows), caller).await?
            }
            Some(kind) => self.service.serve(&model, Input::Image { kind, bytes: &body }, caller).await?,
        };
        Ok(json_response(
            200,
            &json!({
                "model": model,
                "version": served.version,
                "request_id": served.request_id,
                "predictions": served.predictions,
                "latency_ms": served.latency_ms,
            }),
        ))
    }

    async fn inputs(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let serving = self.service.production(&model).await?;
        let manifest = &serving.predictor.manifest;
        Ok(json_response(
            200,
            &json!({
                "model": model,
                "version": serving.version,
                "task": manifest.task,
                "target": manifest.target,
                "class_labels": manifest.class_labels,
                "inputs": serving.predictor.inputs(),
            }),
        ))
    }

    async fn stored(&self, request: &ApiGatewayV2httpRequest) -> Result<StoredPrediction, ApiError> {
        let id = path_parameter(request, "id");
        let not_found = || ApiError::NotFound(format!("no prediction {id:?}"));
        let parsed = PredictionId::parse(id).ok_or_else(not_found)?;
        self.service.sink().get(&parsed).await?.ok_or_else(not_found)
    }

    async fn get(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let stored = self.stored(request).await?;
        Ok(json_response(200, &stored_json(&stored)))
    }

    async fn feedback(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        // Sized before it is parsed: a few kilobytes is all feedback needs.
        let text = request.body.as_deref().unwrap_or_default();
        if text.len() > MAX_FEEDBACK_BYTES {
            return Err(ApiError::PayloadTooLarge(format!("feedback is at most {MAX_FEEDBACK_BYTES} bytes")));
        }
        let body: Value =
            serde_json::from_str(text).map_err(|e| ApiError::InvalidRequest(format!("the body is not JSON: {e}")))?;
        let truth = match &body["truth"] {
            truth @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => truth.clone(),
            Value::Null => {
                return Err(ApiError::InvalidRequest("the body must be {\"truth\": the true label or value}".into()));
            }
            other => return Err(ApiError::InvalidRequest(format!("truth must be a label or a number, not {other}"))),
        };
        let mut stored = self.stored(request).await?;
        self.service.sink().feedback(&stored, &truth, OffsetDateTime::now_utc()).await?;
        stored.feedback = Some(truth);
        Ok(json_response(201, &stored_json(&stored)))
    }
}

/// The rows of a `{"rows": [...]}` body.
fn json_rows(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let mut request: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidRequest(format!("the body is not JSON: {e}")))?;
    match request.get_mut("rows").map(Value::take) {
        Some(Value::Array(rows)) => Ok(rows),
        _ => Err(ApiError::InvalidRequest("the body must be {\"rows\": [{column: value, …}, …]}".into())),
    }
}

fn stored_json(stored: &StoredPrediction) -> Value {
    json!({
        "prediction_id": stored.id.to_string(),
        "model": stored.model,
        "version": stored.version,
        "time": stored.time,
        "input": stored.row.as_ref().map(|(input, _)| input),
        "output": stored.row.as_ref().map(|(_, output)| output),
        "feedback": stored.feedback,
    })
}
