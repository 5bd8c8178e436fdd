//! The `predict` function: real-time predictions from a model's production version.
//!
//! - `POST /models/{model}/predict`: `{"rows": [{column: value, …}]}`, or an image body
//!   (`image/png`, `image/jpeg`) for image models. Each row gets a prediction (label with
//!   class probabilities, or a value) and a prediction id; every request is recorded
//!   (DynamoDB for lookup and feedback, S3 capture for monitoring).
//! - `GET /predictions/{id}`: a recorded prediction, with its feedback.
//! - `POST /predictions/{id}/feedback`: `{"truth": label or value}`, the ground truth.

mod cache;
mod log;

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use serde_json::{Value, json};
use sluice_aws::http_api::{BodyError, body_bytes, error_response, json_response, path_parameter};
use sluice_aws::settings::{SettingsError, Vars, parsed_or, required};
use sluice_aws::{AwsClients, StoreError};
use sluice_core::metrics::{Metric, Unit, publish};
use sluice_core::{InvalidName, ModelName};
use sluice_formats::{ContentKind, image_pixels};
use sluice_model::pipeline::FeatureStep;
use sluice_serving::{InputError, Prediction, Predictor};
use time::OffsetDateTime;

pub use cache::{CacheError, ModelCache, ModelSource, Production, Registry};
pub use log::{PredictionId, PredictionLog, PredictionRecord, StoredPrediction, capture_key};

pub const ROUTE_PREDICT: &str = "POST /models/{model}/predict";
pub const ROUTE_GET_PREDICTION: &str = "GET /predictions/{id}";
pub const ROUTE_FEEDBACK: &str = "POST /predictions/{id}/feedback";

const METRICS_NAMESPACE: &str = "Sluice";
/// Lambda's 6 MB synchronous payload, less base64's growth for image bodies.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Recording waits this long at most: a slow store must not hold up the answer.
const RECORD_DEADLINE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidRow(InputError),
    #[error("{rows} rows in one request; the limit is {max} (send several requests, or use batch)")]
    TooManyRows { rows: usize, max: usize },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotFound(String),
    #[error("no route {0}")]
    RouteNotFound(String),
    #[error("the model cannot be served: {0}")]
    ModelUnavailable(String),
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl ApiError {
    fn status(&self) -> u16 {
        match self {
            Self::InvalidName(_) | Self::InvalidRequest(_) | Self::InvalidRow(_) => 400,
            Self::NotFound(_) | Self::RouteNotFound(_) => 404,
            Self::TooManyRows { .. } | Self::PayloadTooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::ModelUnavailable(_) | Self::Store(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_name",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidRow(_) => "invalid_row",
            Self::TooManyRows { .. } => "too_many_rows",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::NotFound(_) => "not_found",
            Self::RouteNotFound(_) => "route_not_found",
            Self::ModelUnavailable(_) => "model_unavailable",
            Self::Store(_) => "internal_error",
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(err: CacheError) -> Self {
        match err {
            CacheError::NoProduction(_) => Self::NotFound(err.to_string()),
            CacheError::Store(store) => Self::Store(store),
            CacheError::Bundle { .. } => Self::ModelUnavailable(err.to_string()),
        }
    }
}

/// What a request's rows got.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub version: i64,
    pub request_id: String,
    /// Per row: the prediction, probabilities and prediction id, as answered.
    pub predictions: Vec<Value>,
    pub latency_ms: f64,
}

pub struct Predict<S = Registry> {
    cache: ModelCache<S>,
    log: PredictionLog,
    max_rows: usize,
}

impl Predict<Registry> {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        let log = PredictionLog {
            dynamodb: clients.dynamodb.clone(),
            s3: clients.s3.clone(),
            table: required(vars, "PREDICTIONS_TABLE")?,
            capture_bucket: required(vars, "CAPTURE_BUCKET")?,
            retention_days: parsed_or(vars, "PREDICTION_RETENTION_DAYS", 30)?,
        };
        Ok(Self::new(ModelCache::from_settings(clients, vars)?, log, parsed_or(vars, "MAX_ROWS", 1000)?))
    }
}

impl<S: ModelSource> Predict<S> {
    pub fn new(cache: ModelCache<S>, log: PredictionLog, max_rows: usize) -> Self {
        Self { cache, log, max_rows }
    }

    pub async fn handle(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let route = request.route_key.clone().unwrap_or_default();
        let request_id = request.request_context.request_id.clone().unwrap_or_default();
        let result = match route.as_str() {
            ROUTE_PREDICT => self.predict(&request).await,
            ROUTE_GET_PREDICTION => self.get(&request).await,
            ROUTE_FEEDBACK => self.feedback(&request).await,
            _ => Err(ApiError::RouteNotFound(route.clone())),
        };
        result.unwrap_or_else(|err| {
            if err.status() >= 500 {
                tracing::error!(%route, %request_id, error = %err, source = ?err, "request failed");
            }
            publish(
                METRICS_NAMESPACE,
                &[("Function", "predict"), ("ErrorKind", err.code())],
                &[Metric { name: "Errors".into(), unit: Unit::Count, value: 1.0 }],
            );
            error_response(err.status(), err.code(), &err.to_string(), &request_id)
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
        let rows = match image {
            None => self.json_rows(&body)?,
            Some(_) => Vec::new(),
        };
        let served = self.serve(&model, rows, image.map(|kind| (kind, body.as_slice()))).await?;
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

    /// Predicts JSON rows (as the API and the queue send them) with the model's production
    /// version, records them and publishes the metrics.
    pub async fn predict_rows(&self, model: &ModelName, rows: Vec<Value>) -> Result<Served, ApiError> {
        if rows.is_empty() {
            return Err(ApiError::InvalidRequest("\"rows\" is empty".into()));
        }
        if rows.len() > self.max_rows {
            return Err(ApiError::TooManyRows { rows: rows.len(), max: self.max_rows });
        }
        self.serve(model, rows, None).await
    }

    async fn serve(
        &self,
        model: &ModelName,
        rows: Vec<Value>,
        image: Option<(ContentKind, &[u8])>,
    ) -> Result<Served, ApiError> {
        // Boxed: the registry's SDK futures nest deep enough to reach the compiler's type
        // layout limit in the function's async main.
        let serving = Box::pin(self.cache.get(model.as_str())).await?;
        let rows = match image {
            Some((kind, body)) => vec![image_row(&serving.predictor, kind, body)?],
            None => rows,
        };
        let started = Instant::now();
        let predictions = serving
            .predictor
            .predict(&rows)
            .map_err(|e| ApiError::ModelUnavailable(e.to_string()))?
            .map_err(ApiError::InvalidRow)?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;

        let request_id = uuid::Uuid::now_v7().simple().to_string();
        let answered: Vec<Value> = predictions
            .iter()
            .enumerate()
            .map(|(row, prediction)| {
                let mut answer = serde_json::to_value(prediction).expect("predictions serialise");
                answer["prediction_id"] = PredictionId { request_id: request_id.clone(), row }.to_string().into();
                answer
            })
            .collect();
        let record = PredictionRecord {
            request_id: request_id.clone(),
            time: OffsetDateTime::now_utc(),
            model: model.to_string(),
            version: serving.version,
            // An image is recorded as its pixels: what the model saw.
            rows: rows
                .into_iter()
                .zip(predictions.iter().map(|p| serde_json::to_value(p).expect("serialises")))
                .collect(),
            latency_ms,
        };
        let recorded = match tokio::time::timeout(RECORD_DEADLINE, self.log.record(&record)).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::error!(%model, %request_id, error = %err, "prediction not recorded");
                false
            }
            Err(_) => {
                tracing::error!(%model, %request_id, "prediction not recorded within {RECORD_DEADLINE:?}");
                false
            }
        };
        publish_prediction_metrics(model, serving.version, &predictions, latency_ms, recorded);
        Ok(Served { version: serving.version, request_id, predictions: answered, latency_ms })
    }

    fn json_rows(&self, body: &[u8]) -> Result<Vec<Value>, ApiError> {
        let mut request: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::InvalidRequest(format!("the body is not JSON: {e}")))?;
        let Some(Value::Array(rows)) = request.get_mut("rows").map(Value::take) else {
            return Err(ApiError::InvalidRequest("the body must be {\"rows\": [{column: value, …}, …]}".into()));
        };
        if rows.is_empty() {
            return Err(ApiError::InvalidRequest("\"rows\" is empty".into()));
        }
        if rows.len() > self.max_rows {
            return Err(ApiError::TooManyRows { rows: rows.len(), max: self.max_rows });
        }
        Ok(rows)
    }

    async fn stored(&self, request: &ApiGatewayV2httpRequest) -> Result<StoredPrediction, ApiError> {
        let id = path_parameter(request, "id");
        let not_found = || ApiError::NotFound(format!("no prediction {id:?}"));
        let parsed = PredictionId::parse(id).ok_or_else(not_found)?;
        self.log.get(&parsed).await?.ok_or_else(not_found)
    }

    async fn get(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let stored = self.stored(request).await?;
        Ok(json_response(200, &stored_json(&stored)))
    }

    async fn feedback(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let body: Value = serde_json::from_str(request.body.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::InvalidRequest(format!("the body is not JSON: {e}")))?;
        let truth = match &body["truth"] {
            truth @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => truth.clone(),
            Value::Null => {
                return Err(ApiError::InvalidRequest("the body must be {\"truth\": the true label or value}".into()));
            }
            other => return Err(ApiError::InvalidRequest(format!("truth must be a label or a number, not {other}"))),
        };
        let mut stored = self.stored(request).await?;
        self.log.feedback(&stored, &truth, OffsetDateTime::now_utc()).await?;
        stored.feedback = Some(truth);
        Ok(json_response(201, &stored_json(&stored)))
    }
}

/// The single row an image model gets from an image body: its pixels, sized as in training.
fn image_row(predictor: &Predictor, kind: ContentKind, body: &[u8]) -> Result<Value, ApiError> {
    let [FeatureStep::Vector { column, length }] = predictor.manifest.pipeline.steps.as_slice() else {
        return Err(ApiError::UnsupportedMediaType("this model takes JSON rows, not an image".into()));
    };
    let side = (*length as f64).sqrt().round() as u32;
    if (side * side) as usize != *length {
        return Err(ApiError::ModelUnavailable(format!(
            "the model takes {length} pixels, which is not a square image"
        )));
    }
    let pixels = image_pixels(kind, body, side, side).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    Ok(json!({ column: pixels }))
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

/// Latency, rows and predicted class counts for the model and version (EMF).
fn publish_prediction_metrics(
    model: &ModelName,
    version: i64,
    predictions: &[sluice_serving::RowPrediction],
    latency_ms: f64,
    recorded: bool,
) {
    let mut metrics = vec![
        Metric { name: "Requests".into(), unit: Unit::Count, value: 1.0 },
        Metric { name: "Rows".into(), unit: Unit::Count, value: predictions.len() as f64 },
        Metric { name: "InferenceLatency".into(), unit: Unit::Milliseconds, value: latency_ms },
        Metric { name: "RecordingErrors".into(), unit: Unit::Count, value: if recorded { 0.0 } else { 1.0 } },
    ];
    let mut classes: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    for prediction in predictions {
        if let Prediction::Label(label) = &prediction.prediction {
            *classes.entry(label).or_default() += 1.0;
        }
    }
    metrics.extend(classes.into_iter().map(|(label, count)| Metric {
        name: format!("Predicted:{label}").into(),
        unit: Unit::Count,
        value: count,
    }));
    let version = version.to_string();
    publish(METRICS_NAMESPACE, &[("Function", "predict"), ("Model", model.as_str()), ("Version", &version)], &metrics);
}
