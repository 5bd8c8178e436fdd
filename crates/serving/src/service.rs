//! The serving use case, shared by every way predictions are asked for (the API, the
//! prediction queue): find the model's production predictor, check and predict the rows,
//! give every row a prediction id, record the request, publish metrics. Recording never
//! fails or slows a prediction beyond a deadline: a store that fails is logged and counted.
//!
//! The stores are behind [`ModelSource`] and [`PredictionSink`], so the use case has no
//! AWS in it; `sluice-aws-serving` implements both for AWS.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_core::ModelName;
use sluice_core::capture::{CandidateRun, CaptureRecord, CapturedPrediction, PredictionId};
use sluice_core::metrics::{Metric, Unit, publish};
use sluice_core::monitoring::{INFERENCE_LATENCY, MODEL_DIMENSION, REQUESTS, SERVER_ERRORS, VERSION_DIMENSION};
use sluice_formats::{ContentKind, image_pixels};
use sluice_model::pipeline::FeatureStep;
use sluice_model::rollout::{Route, route};
use time::OffsetDateTime;

use crate::cache::{CacheError, CandidateServing, ModelCache, ModelSource, Serving, SourceError};
use crate::{InputError, Prediction, Predictor, RowPrediction};

/// One answered request, as it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    pub request_id: String,
    pub time: OffsetDateTime,
    pub model: String,
    /// The version that answered.
    pub version: i64,
    pub rows: Vec<RecordedRow>,
    pub latency_ms: f64,
}

/// One predicted row as it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRow {
    /// The input as sent.
    pub input: Value,
    /// The output as answered.
    pub output: Value,
    /// What a rollout's candidate did with the row.
    pub candidate: Option<CandidateRun>,
}

impl PredictionRecord {
    /// The capture lines of this request, one per row.
    pub fn capture(&self) -> impl Iterator<Item = CaptureRecord> + '_ {
        self.rows.iter().enumerate().map(|(row, recorded)| {
            CaptureRecord::Prediction(CapturedPrediction {
                prediction_id: PredictionId { request_id: self.request_id.clone(), row }.to_string(),
                time: self.time,
                model: self.model.clone(),
                version: self.version,
                input: recorded.input.clone(),
                output: recorded.output.clone(),
                latency_ms: self.latency_ms,
                rollout: recorded.candidate.clone(),
            })
        })
    }
}

/// Where answered requests are recorded (lookup by id, and the capture monitoring reads).
pub trait PredictionSink: Send + Sync {
    fn record(&self, record: &PredictionRecord) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// What a request asks to be predicted.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// JSON object rows, `column: value`.
    Rows(&'a [Value]),
    /// One image, for image models: it becomes the row the model was trained on.
    Image { kind: ContentKind, bytes: &'a [u8] },
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

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("\"rows\" is empty")]
    NoRows,
    #[error("{rows} rows in one request; the limit is {max} (send several requests, or use batch)")]
    TooManyRows { rows: usize, max: usize },
    #[error("{0}")]
    InvalidRow(InputError),
    #[error("{0}")]
    InvalidImage(String),
    #[error("this model takes JSON rows, not an image")]
    NotAnImageModel,
    #[error("model {0} has no production version")]
    NoProduction(String),
    #[error("the model cannot be served: {0}")]
    ModelUnavailable(String),
    #[error(transparent)]
    Source(SourceError),
}

impl ServeError {
    /// Whether the fault is the service's (it counts towards the model's error rate), not
    /// the caller's.
    pub fn is_server_error(&self) -> bool {
        matches!(self, Self::ModelUnavailable(_) | Self::Source(_))
    }
}

impl From<CacheError> for ServeError {
    fn from(err: CacheError) -> Self {
        match err {
            CacheError::NoProduction(model) => Self::NoProduction(model),
            CacheError::Source(source) => Self::Source(source),
            CacheError::Bundle { .. } => Self::ModelUnavailable(err.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub max_rows: usize,
    /// CloudWatch namespace of the metrics (one per stack).
    pub metrics_namespace: String,
    /// Recording waits this long at most.
    pub record_deadline: Duration,
}

pub struct PredictionService<S, R> {
    cache: ModelCache<S>,
    sink: R,
    settings: ServiceSettings,
}

impl<S: ModelSource, R: PredictionSink> PredictionService<S, R> {
    pub fn new(cache: ModelCache<S>, sink: R, settings: ServiceSettings) -> Self {
        Self { cache, sink, settings }
    }

    pub fn sink(&self) -> &R {
        &self.sink
    }

    /// The predictor of `model`'s production version, as `serve` would use it.
    pub async fn production(&self, model: &ModelName) -> Result<Serving, ServeError> {
        // Boxed: the stores' SDK futures nest deep enough to reach the compiler's type
        // layout limit in a function's async main.
        Ok(Box::pin(self.cache.get(model.as_str())).await?)
    }

    /// Predicts with `model`'s production version (or, during a rollout, as its policy
    /// routes the request: `caller` keeps a canary caller on one version; without it the
    /// request id decides), records the request and publishes the request's metrics,
    /// including the model's error indicator the error-rate alarm reads.
    pub async fn serve(&self, model: &ModelName, input: Input<'_>, caller: Option<&str>) -> Result<Served, ServeError> {
        let result = self.predict_and_record(model, input, caller).await;
        let server_error = match &result {
            Ok(_) => false,
            Err(err) if err.is_server_error() => true,
            // The caller's mistake says nothing about the model's health.
            Err(_) => return result,
        };
        publish(
            &self.settings.metrics_namespace,
            &[(MODEL_DIMENSION, model.as_str())],
            &[Metric { name: SERVER_ERRORS.into(), unit: Unit::Count, value: f64::from(u8::from(server_error)) }],
        );
        result
    }

    async fn predict_and_record(
        &self,
        model: &ModelName,
        input: Input<'_>,
        caller: Option<&str>,
    ) -> Result<Served, ServeError> {
        if let Input::Rows(rows) = input {
            if rows.is_empty() {
                return Err(ServeError::NoRows);
            }
            if rows.len() > self.settings.max_rows {
                return Err(ServeError::TooManyRows { rows: rows.len(), max: self.settings.max_rows });
            }
        }
        let serving = self.production(model).await?;
        let request_id = uuid::Uuid::now_v7().simple().to_string();
        let rows = rows_for(&serving.predictor, input)?;
        let routed = serving.candidate.as_ref().map(|c| (c, route(&c.policy, caller, &request_id)));
        let (version, predictions, latency_ms, candidate_runs) = match routed {
            Some((candidate, Route::Candidate)) => match candidate.try_predict(input) {
                Ok((predictions, latency_ms)) => {
                    self.publish_candidate_metrics(model, candidate.version, Some(latency_ms));
                    let run = CandidateRun::canary(candidate.version, None);
                    (candidate.version, predictions, latency_ms, vec![Some(run); rows.len()])
                }
                // The candidate failed: production answers, and the failure is the
                // candidate's error in its figures.
                Err(error) => {
                    let (predictions, latency_ms) = predict(&serving.predictor, &rows)?;
                    self.publish_candidate_metrics(model, candidate.version, None);
                    let run = CandidateRun::canary(candidate.version, Some(error));
                    (serving.version, predictions, latency_ms, vec![Some(run); rows.len()])
                }
            },
            Some((candidate, Route::ProductionAndShadow)) => {
                let (predictions, latency_ms) = predict(&serving.predictor, &rows)?;
                // The shadow never changes the answer nor fails the request.
                let runs = match candidate.try_predict(input) {
                    Ok((shadowed, shadow_ms)) => {
                        self.publish_candidate_metrics(model, candidate.version, Some(shadow_ms));
                        shadowed.iter().map(|p| Some(CandidateRun::shadow(candidate.version, p, shadow_ms))).collect()
                    }
                    Err(error) => {
                        self.publish_candidate_metrics(model, candidate.version, None);
                        vec![Some(CandidateRun::failed_shadow(candidate.version, error)); rows.len()]
                    }
                };
                (serving.version, predictions, latency_ms, runs)
            }
            Some((_, Route::Production)) | None => {
                let (predictions, latency_ms) = predict(&serving.predictor, &rows)?;
                (serving.version, predictions, latency_ms, vec![None; rows.len()])
            }
        };

        let outputs: Vec<Value> =
            predictions.iter().map(|p| serde_json::to_value(p).expect("predictions serialise")).collect();
        let answered = outputs
            .iter()
            .enumerate()
            .map(|(row, output)| {
                let mut answer = output.clone();
                answer["prediction_id"] = PredictionId { request_id: request_id.clone(), row }.to_string().into();
                answer
            })
            .collect();
        let record = PredictionRecord {
            request_id: request_id.clone(),
            time: OffsetDateTime::now_utc(),
            model: model.to_string(),
            version,
            rows: rows
                .iter()
                .cloned()
                .zip(outputs)
                .zip(candidate_runs)
                .map(|((input, output), candidate)| RecordedRow { input, output, candidate })
                .collect(),
            latency_ms,
        };
        let recording = Box::pin(self.sink.record(&record));
        let recorded = match tokio::time::timeout(self.settings.record_deadline, recording).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::error!(%model, %request_id, error = %err, "prediction not recorded");
                false
            }
            Err(_) => {
                tracing::error!(%model, %request_id, deadline = ?self.settings.record_deadline, "prediction not recorded in time");
                false
            }
        };
        self.publish_prediction_metrics(model, version, &predictions, latency_ms, recorded);
        Ok(Served { version, request_id, predictions: answered, latency_ms })
    }

    /// A rollout candidate's run (shadow or canary): its latency, or an error (EMF,
    /// dimension `Version`).
    fn publish_candidate_metrics(&self, model: &ModelName, version: i64, latency_ms: Option<f64>) {
        let mut metrics = vec![
            Metric { name: "CandidateRuns".into(), unit: Unit::Count, value: 1.0 },
            Metric {
                name: "CandidateErrors".into(),
                unit: Unit::Count,
                value: f64::from(u8::from(latency_ms.is_none())),
            },
        ];
        if let Some(latency_ms) = latency_ms {
            metrics.push(Metric { name: "CandidateLatency".into(), unit: Unit::Milliseconds, value: latency_ms });
        }
        let version = version.to_string();
        publish(
            &self.settings.metrics_namespace,
            &[("Function", "predict"), (MODEL_DIMENSION, model.as_str()), (VERSION_DIMENSION, &version)],
            &metrics,
        );
    }

    /// Latency, rows and predicted class counts for the model and version (EMF).
    fn publish_prediction_metrics(
        &self,
        model: &ModelName,
        version: i64,
        predictions: &[RowPrediction],
        latency_ms: f64,
        recorded: bool,
    ) {
        let mut metrics = vec![
            Metric { name: REQUESTS.into(), unit: Unit::Count, value: 1.0 },
            Metric { name: "Rows".into(), unit: Unit::Count, value: predictions.len() as f64 },
            Metric { name: INFERENCE_LATENCY.into(), unit: Unit::Milliseconds, value: latency_ms },
            Metric { name: "RecordingErrors".into(), unit: Unit::Count, value: if recorded { 0.0 } else { 1.0 } },
        ];
        let mut classes: BTreeMap<&str, f64> = BTreeMap::new();
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
        publish(
            &self.settings.metrics_namespace,
            &[("Function", "predict"), (MODEL_DIMENSION, model.as_str()), (VERSION_DIMENSION, &version)],
            &metrics,
        );
    }
}

impl CandidateServing {
    /// The candidate's predictions and time on `input`, or why it could not answer.
    fn try_predict(&self, input: Input<'_>) -> Result<(Vec<RowPrediction>, f64), String> {
        let predictor = self.predictor.as_ref().map_err(Clone::clone)?;
        let rows = rows_for(predictor, input).map_err(|e| e.to_string())?;
        predict(predictor, &rows).map_err(|e| e.to_string())
    }
}

/// The rows `predictor` is asked about: JSON rows as sent, an image as the row its model
/// was trained on.
fn rows_for<'a>(predictor: &Predictor, input: Input<'a>) -> Result<Cow<'a, [Value]>, ServeError> {
    match input {
        Input::Rows(rows) => Ok(Cow::Borrowed(rows)),
        Input::Image { kind, bytes } => Ok(Cow::Owned(vec![image_row_for(predictor, kind, bytes)?])),
    }
}

/// Checks and predicts `rows`, timed.
fn predict(predictor: &Predictor, rows: &[Value]) -> Result<(Vec<RowPrediction>, f64), ServeError> {
    let started = Instant::now();
    let predictions = predictor
        .predict(rows)
        .map_err(|e| ServeError::ModelUnavailable(e.to_string()))?
        .map_err(ServeError::InvalidRow)?;
    Ok((predictions, started.elapsed().as_secs_f64() * 1000.0))
}

/// The single row an image model gets from an image body: its pixels, sized as in training.
fn image_row_for(predictor: &Predictor, kind: ContentKind, bytes: &[u8]) -> Result<Value, ServeError> {
    let [FeatureStep::Vector { column, length }] = predictor.manifest.pipeline.steps.as_slice() else {
        return Err(ServeError::NotAnImageModel);
    };
    let side = (*length as f64).sqrt().round() as u32;
    if (side * side) as usize != *length {
        return Err(ServeError::ModelUnavailable(format!(
            "the model takes {length} pixels, which is not a square image"
        )));
    }
    let pixels = image_pixels(kind, bytes, side, side).map_err(|e| ServeError::InvalidImage(e.to_string()))?;
    Ok(json!({ column: pixels }))
}
