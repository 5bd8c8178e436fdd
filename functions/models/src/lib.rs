//! The `models` function: the training, registry and model-health API.
//!
//! - `POST /models/{model}/train`: validates the request against the dataset's schema and
//!   the trainer's hyperparameters, then starts a SageMaker training job, or a tuning job
//!   when the request has a `tuning` block (`sluice_aws_ml::TrainingService`).
//! - `GET /models`, `GET /models/{model}`: models, their versions and which is production.
//! - `POST /models/{model}/versions/{version}/approve|reject`: the manual side of the gate.
//! - `POST /models/{model}/rollouts`: rolls an approved-by-gate or waiting version out
//!   against production (shadow, canary or immediate; `sluice_model::rollout`); `GET` shows
//!   the running or last rollout with its figures; `POST …/rollouts/promote|abort` end it by
//!   hand. `GET|PUT /models/{model}/rollout-settings`: the model's own policy and guards.
//! - `POST /models/{model}/versions`: import a bundle trained elsewhere, checked by loading it.
//! - `GET /models/{model}/events`: the model's timeline.
//! - `GET /models/{model}/drift`: the latest drift report; `?since=` the history.
//! - `GET /models/{model}/metrics`: requests, latency and error rate over time (CloudWatch).
//! - The daily schedule (EventBridge): starts the retraining plans that are due.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use serde_json::{Value, json};
use sluice_aws::http_api::{BodyError, body_bytes, error_response, json_response, path_parameter, query_count};
use sluice_aws::settings::{SettingsError, Vars, function_memory_bytes, parsed_or, required};
use sluice_aws::{AwsClients, Catalog, StoreError};
use sluice_aws_ml::registry::{metadata, metrics_metadata};
use sluice_aws_ml::{
    Ending, ModelRegistry, ModelVersion, Operators, RolloutError, RolloutSettings, Rollouts, TrainError,
    TrainingService, TrainingSettings, Trigger,
};
use sluice_core::model_event::{EventKind, ModelEvent};
use sluice_core::monitoring::{MAX_METRICS_HOURS, metrics_period_seconds};
use sluice_core::{InvalidName, ModelName};
use sluice_model::registry::Approval;
use sluice_model::rollout::{Guards, RolloutPolicy, RolloutStatus};
use sluice_model::{Bundle, BundleLimits, Contents};
use sluice_serving::Predictor;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const ROUTE_TRAIN: &str = "POST /models/{model}/train";
pub const ROUTE_LIST: &str = "GET /models";
pub const ROUTE_GET: &str = "GET /models/{model}";
pub const ROUTE_APPROVE: &str = "POST /models/{model}/versions/{version}/approve";
pub const ROUTE_REJECT: &str = "POST /models/{model}/versions/{version}/reject";
pub const ROUTE_IMPORT: &str = "POST /models/{model}/versions";
pub const ROUTE_EVENTS: &str = "GET /models/{model}/events";
pub const ROUTE_DRIFT: &str = "GET /models/{model}/drift";
pub const ROUTE_METRICS: &str = "GET /models/{model}/metrics";
pub const ROUTE_START_ROLLOUT: &str = "POST /models/{model}/rollouts";
pub const ROUTE_GET_ROLLOUT: &str = "GET /models/{model}/rollouts";
pub const ROUTE_PROMOTE_ROLLOUT: &str = "POST /models/{model}/rollouts/promote";
pub const ROUTE_ABORT_ROLLOUT: &str = "POST /models/{model}/rollouts/abort";
pub const ROUTE_GET_ROLLOUT_SETTINGS: &str = "GET /models/{model}/rollout-settings";
pub const ROUTE_PUT_ROLLOUT_SETTINGS: &str = "PUT /models/{model}/rollout-settings";

mod metrics;

use metrics::ModelMetrics;

/// Lambda's 6 MB synchronous payload carries a base64 body of about this many bytes.
const MAX_IMPORT_BYTES: usize = 4 * 1024 * 1024;
/// Most events or drift summaries one request returns.
const MAX_PAGE: usize = 500;
/// Events shown with a model.
const RECENT_EVENTS: usize = 5;
/// A drift report of the widest data set (every feature's figures) is well below this.
const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;

const SCHEDULED_EVENT: &str = "Scheduled Event";
/// Rollout requests and settings are a few hundred bytes.
const MAX_SMALL_BODY_BYTES: usize = 16 * 1024;
/// A person's reason for ending a rollout, as kept in the record and the event log.
const MAX_REASON_CHARS: usize = 500;

/// Failures the function reports to Lambda rather than to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ModelsFailure {
    #[error("neither an API request nor the retraining schedule: {0}")]
    UnknownEvent(serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("invalid model bundle: {0}")]
    InvalidBundle(String),
    /// More than the stack allows (instance types, tuning trials): a cost guard.
    #[error("{0}")]
    OverLimit(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    NotFound(String),
    /// The model's state forbids it now (a rollout running, a version rejected).
    #[error("{0}")]
    Conflict(String),
    #[error("no route {0}")]
    RouteNotFound(String),
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl From<RolloutError> for ApiError {
    fn from(err: RolloutError) -> Self {
        match err {
            RolloutError::NotFound(what) => Self::NotFound(what),
            RolloutError::Conflict(why) => Self::Conflict(why),
            RolloutError::Invalid(why) => Self::InvalidRequest(why),
            RolloutError::Store(store) => Self::Store(store),
        }
    }
}

impl From<TrainError> for ApiError {
    fn from(err: TrainError) -> Self {
        match err {
            TrainError::InvalidName(invalid) => Self::InvalidName(invalid),
            TrainError::Invalid(_) => Self::InvalidRequest(err.to_string()),
            TrainError::OverLimit(limit) => Self::OverLimit(limit),
            TrainError::Store(store) => Self::Store(store),
        }
    }
}

impl ApiError {
    fn status(&self) -> u16 {
        match self {
            Self::InvalidName(_) | Self::InvalidRequest(_) | Self::InvalidBundle(_) | Self::OverLimit(_) => 400,
            Self::PayloadTooLarge(_) => 413,
            Self::NotFound(_) | Self::RouteNotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Store(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_name",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidBundle(_) => "invalid_bundle",
            Self::OverLimit(_) => "over_limit",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::RouteNotFound(_) => "route_not_found",
            Self::Store(_) => "internal_error",
        }
    }
}

pub struct Models {
    s3: aws_sdk_s3::Client,
    registry: ModelRegistry,
    training: TrainingService,
    artifacts_bucket: String,
    limits: BundleLimits,
    metrics: ModelMetrics,
    rollouts: Rollouts,
}

impl Models {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        let catalog = Catalog::new(clients.dynamodb.clone(), required(vars, "CATALOG_TABLE")?);
        let settings = TrainingSettings::from_vars(vars)?;
        let registry = ModelRegistry::new(
            clients,
            catalog.clone(),
            &parsed_or(vars, "MODEL_GROUP_PREFIX", "sluice-".to_owned())?,
            &settings.trainer_image,
        );
        Ok(Self {
            s3: clients.s3.clone(),
            rollouts: Rollouts::new(
                registry.clone(),
                Operators::new(clients, required(vars, "OPERATORS_TOPIC_ARN")?),
                RolloutSettings::from_vars(vars)?,
            ),
            registry,
            artifacts_bucket: settings.artifacts_bucket.clone(),
            training: TrainingService::new(clients, catalog, settings),
            limits: BundleLimits::for_memory(function_memory_bytes(vars)?),
            metrics: ModelMetrics::new(clients, required(vars, "METRICS_NAMESPACE")?),
        })
    }

    fn catalog(&self) -> &Catalog {
        self.registry.catalog()
    }

    /// The function's one entry point: the retraining schedule's EventBridge event, or an
    /// API request.
    pub async fn handle_event(&self, event: Value) -> Result<Value, ModelsFailure> {
        if event["detail-type"] == SCHEDULED_EVENT {
            let now = sluice_aws::event_time(&event);
            return Ok(self.retrain_due(now).await?);
        }
        let request: ApiGatewayV2httpRequest = serde_json::from_value(event).map_err(ModelsFailure::UnknownEvent)?;
        serde_json::to_value(self.handle(request).await).map_err(ModelsFailure::UnknownEvent)
    }

    pub async fn handle(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let route = request.route_key.clone().unwrap_or_default();
        let request_id = request.request_context.request_id.clone().unwrap_or_default();
        let result = match route.as_str() {
            ROUTE_TRAIN => self.train(&request).await,
            ROUTE_LIST => self.list().await,
            ROUTE_GET => self.get(&request).await,
            ROUTE_APPROVE => self.decide(&request, Approval::Approved).await,
            ROUTE_REJECT => self.decide(&request, Approval::Rejected).await,
            ROUTE_IMPORT => self.import(&request).await,
            ROUTE_EVENTS => self.events(&request).await,
            ROUTE_DRIFT => self.drift(&request).await,
            ROUTE_METRICS => self.metrics(&request).await,
            ROUTE_START_ROLLOUT => self.start_rollout(&request).await,
            ROUTE_GET_ROLLOUT => self.rollout(&request).await,
            ROUTE_PROMOTE_ROLLOUT => self.end_rollout(&request, Ending::Promote).await,
            ROUTE_ABORT_ROLLOUT => self.end_rollout(&request, Ending::Abort).await,
            ROUTE_GET_ROLLOUT_SETTINGS => self.rollout_settings(&request).await,
            ROUTE_PUT_ROLLOUT_SETTINGS => self.put_rollout_settings(&request).await,
            _ => Err(ApiError::RouteNotFound(route.clone())),
        };
        result.unwrap_or_else(|err| {
            if let ApiError::Store(store) = &err {
                tracing::error!(%route, %request_id, error = %store, "request failed");
            }
            error_response(err.status(), err.code(), &err.to_string(), &request_id)
        })
    }

    async fn train(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let body = request.body.as_deref().unwrap_or_default();
        let started = self.training.start(&model, body, OffsetDateTime::now_utc(), Trigger::Api, None).await?;
        Ok(json_response(202, &started.answer))
    }

    /// Starts every scheduled retraining that is due, with the request it was planned with.
    /// One model's failure (say, its dataset was deleted) does not hold up the others. Two
    /// deliveries of one schedule event start each job once.
    pub async fn retrain_due(&self, now: OffsetDateTime) -> Result<Value, StoreError> {
        let (mut started, mut failed) = (Vec::new(), Vec::new());
        for plan in self.catalog().retrain_plans().await?.into_iter().filter(|plan| plan.is_due(now)) {
            let result = match ModelName::parse(&plan.model) {
                Ok(model) => {
                    // Keyed by the plan's last start: duplicate schedule events start one job.
                    let key = format!("schedule {} {}", plan.model, plan.last_started);
                    self.training.start(&model, &plan.request, now, Trigger::Schedule, Some(&key)).await
                }
                Err(err) => Err(err.into()),
            };
            match result {
                Ok(job) => started.push(job.answer),
                Err(err) => {
                    tracing::error!(model = %plan.model, error = %err, "scheduled retraining could not start");
                    failed.push(json!({ "model": plan.model, "error": err.to_string() }));
                }
            }
        }
        Ok(json!({ "started": started, "failed": failed }))
    }

    async fn production_version(&self, model: &ModelName) -> Result<Option<i64>, StoreError> {
        Ok(self.catalog().production(model.as_str()).await?.map(|p| p.version))
    }

    async fn list(&self) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let mut models = Vec::new();
        for model in self.registry.models().await? {
            let versions = self.registry.summaries(&model).await?.unwrap_or_default();
            models.push(json!({
                "model": model,
                "versions": versions.len(),
                "production_version": self.production_version(&model).await?,
            }));
        }
        Ok(json_response(200, &json!({ "models": models })))
    }

    /// A model: its versions, which is production, and its latest events (a model whose
    /// first training failed has no version, but its events say why).
    async fn get(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let versions = self.registry.versions(&model).await?;
        let recent = self.catalog().recent_events(model.as_str(), RECENT_EVENTS).await?;
        if versions.is_none() && recent.is_empty() {
            return Err(ApiError::NotFound(format!("model {model} is unknown: no versions and no training jobs")));
        }
        let production_version = self.production_version(&model).await?;
        let versions: Vec<Value> =
            versions.unwrap_or_default().iter().map(|v| version_json(v, production_version)).collect();
        Ok(json_response(
            200,
            &json!({ "model": model, "production_version": production_version, "versions": versions,
                     "recent_events": recent }),
        ))
    }

    /// Registers a model trained elsewhere: the body is a bundle (`model.tar.gz` with
    /// `model.onnx`, `manifest.json`, optionally `metrics.json` and `baseline.json`). It is
    /// loaded and run once before anything is stored; the version waits for a person's
    /// approval.
    async fn import(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let bytes = body_bytes(request, MAX_IMPORT_BYTES).map_err(|err| match err {
            BodyError::TooLarge { .. } => ApiError::PayloadTooLarge(err.to_string()),
            BodyError::InvalidBase64(_) => ApiError::InvalidBundle(err.to_string()),
        })?;
        let bundle = Bundle::from_tar_gz(&bytes, self.limits, Contents::All)
            .map_err(|e| ApiError::InvalidBundle(e.to_string()))?;
        if bundle.manifest.model_name != model.as_str() {
            return Err(ApiError::InvalidBundle(format!(
                "the manifest is for model {:?}, not {model}",
                bundle.manifest.model_name
            )));
        }
        Predictor::load(&bundle).map_err(|e| ApiError::InvalidBundle(e.to_string()))?;

        let key = format!("imports/{model}/{}/model.tar.gz", uuid::Uuid::now_v7());
        self.s3
            .put_object()
            .bucket(&self.artifacts_bucket)
            .key(&key)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| StoreError::new("S3", "PutObject", e))?;
        let bundle_uri = format!("s3://{}/{key}", self.artifacts_bucket);
        let mut entries = bundle.metrics.as_ref().map(metrics_metadata).unwrap_or_default();
        entries.insert(metadata::SOURCE.into(), "import".into());
        entries.insert(metadata::IMPORTED_VERSION.into(), bundle.manifest.model_version.clone());
        let reason = "imported: a person decides";
        let imported =
            self.registry.register(&model, &bundle_uri, Approval::PendingManualApproval, reason, entries, None).await?;
        let event = ModelEvent::new(
            EventKind::Registered,
            format!("version {} imported ({}); waiting for a person", imported.version, bundle.manifest.model_version),
        )
        .version(imported.version)
        .details(json!({ "source": "import", "bundle": bundle_uri }));
        self.catalog().append_event(model.as_str(), &event, None).await?;
        tracing::info!(%model, %bundle_uri, version = imported.version, "imported a version");
        Ok(json_response(201, &version_json(&imported, self.production_version(&model).await?)))
    }

    async fn decide(
        &self,
        request: &ApiGatewayV2httpRequest,
        approval: Approval,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let version: i64 = path_parameter(request, "version")
            .parse()
            .map_err(|_| ApiError::InvalidRequest("version must be a whole number".into()))?;
        let decided = self
            .registry
            .set_approval(&model, version, approval)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("model {model} has no version {version}")))?;
        let event = ModelEvent::new(EventKind::Decided, format!("version {version} {} by hand", approval.as_str()))
            .version(version)
            .details(json!({ "approval": approval.as_str() }));
        self.catalog().append_event(model.as_str(), &event, None).await?;
        let production = self.registry.publish_production(&model).await?;
        // A person's decision on a rollout's candidate ends its rollout the same way, so
        // serving stops routing to it and the checker cannot overrule the person.
        let running = self.rollouts.current(&model).await?.filter(|r| r.status == RolloutStatus::Running);
        if running.is_some_and(|r| r.candidate == version) {
            let (ending, reason) = match approval {
                Approval::Approved => (Ending::Promote, "approved by hand"),
                _ => (Ending::RollBack, "rejected by hand"),
            };
            let ended =
                self.rollouts.end(&model, Some(version), ending, reason.into(), None, OffsetDateTime::now_utc());
            match ended.await {
                Ok(_) | Err(RolloutError::Conflict(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        tracing::info!(%model, version, approval = approval.as_str(), "version decided by hand");
        Ok(json_response(200, &version_json(&decided, production.production.map(|p| p.version))))
    }

    async fn events(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let since = query_time(request, "since")?;
        let limit = query_count(request, "limit", MAX_PAGE, MAX_PAGE).map_err(ApiError::InvalidRequest)?;
        let events = self.catalog().events(model.as_str(), since, limit).await?;
        Ok(json_response(200, &json!({ "model": model, "events": events })))
    }

    /// The model's serving metrics over the last `?hours=` (default 24).
    async fn metrics(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let hours = query_count(request, "hours", 24, MAX_METRICS_HOURS).map_err(ApiError::InvalidRequest)?;
        let period = metrics_period_seconds(hours);
        let end = OffsetDateTime::now_utc();
        let start = end - time::Duration::hours(hours as i64);
        let series = self.metrics.series(model.as_str(), start, end, period).await?;
        Ok(json_response(
            200,
            &json!({
                "model": model,
                "start": start.format(&Rfc3339).unwrap_or_default(),
                "end": end.format(&Rfc3339).unwrap_or_default(),
                "period_seconds": period,
                "series": series,
            }),
        ))
    }

    /// Starts a rollout: `{"version": N}`, optionally with `policy` and `guards` for this
    /// rollout only (the model's settings otherwise).
    async fn start_rollout(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Start {
            version: i64,
            policy: Option<RolloutPolicy>,
            guards: Option<Guards>,
        }
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let start: Start = small_json(request, "{\"version\": N, \"policy\"?: {…}, \"guards\"?: {…}}")?;
        let defaults = self.rollouts.settings(&model).await?;
        let settings = RolloutSettings {
            policy: start.policy.unwrap_or(defaults.policy),
            guards: start.guards.unwrap_or(defaults.guards),
        };
        let rollout = self.rollouts.start(&model, start.version, &settings, "api", OffsetDateTime::now_utc()).await?;
        Ok(json_response(201, &json!({ "model": model, "rollout": rollout })))
    }

    async fn rollout(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let rollout = self
            .rollouts
            .current(&model)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("model {model} has had no rollout")))?;
        Ok(json_response(200, &json!({ "model": model, "rollout": rollout })))
    }

    /// Promotes or aborts the running rollout by hand: `{"reason": "…"}` is optional.
    async fn end_rollout(
        &self,
        request: &ApiGatewayV2httpRequest,
        ending: Ending,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct End {
            reason: Option<String>,
        }
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let end: End = if request.body.as_deref().unwrap_or_default().trim().is_empty() {
            End { reason: None }
        } else {
            small_json(request, "{\"reason\"?: \"…\"}")?
        };
        let reason = match end.reason {
            Some(reason) => format!("by hand: {}", reason.chars().take(MAX_REASON_CHARS).collect::<String>()),
            None => "by hand".to_owned(),
        };
        let rollout = self.rollouts.end(&model, None, ending, reason, None, OffsetDateTime::now_utc()).await?;
        Ok(json_response(200, &json!({ "model": model, "rollout": rollout })))
    }

    async fn rollout_settings(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let settings = self.rollouts.settings(&model).await?;
        Ok(json_response(200, &json!({ "model": model, "settings": settings })))
    }

    async fn put_rollout_settings(
        &self,
        request: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let settings: RolloutSettings = small_json(request, "{\"policy\": {\"mode\": …}, \"guards\"?: {…}}")?;
        self.rollouts.set_settings(&model, &settings).await?;
        Ok(json_response(200, &json!({ "model": model, "settings": settings })))
    }

    /// The latest drift report in full, or with `?since=` the summaries from then on.
    async fn drift(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let since = query_time(request, "since")?;
        if since.is_some() {
            let summaries = self.catalog().drift_summaries(model.as_str(), since, MAX_PAGE).await?;
            return Ok(json_response(200, &json!({ "model": model, "reports": summaries })));
        }
        let summaries = self.catalog().drift_summaries(model.as_str(), None, 1).await?;
        let latest = summaries.first().ok_or_else(|| {
            ApiError::NotFound(format!("model {model} has no drift report yet (monitoring runs on a schedule)"))
        })?;
        let uri = latest["report"].as_str().unwrap_or_default();
        let report = sluice_aws::read_s3_uri(&self.s3, uri, MAX_REPORT_BYTES).await?;
        let report: Value = serde_json::from_slice(&report).map_err(|e| StoreError {
            service: "S3",
            operation: "GetObject",
            message: format!("{uri}: {e}"),
        })?;
        Ok(json_response(200, &report))
    }
}

/// A small JSON body (at most [`MAX_SMALL_BODY_BYTES`], base64 or not) as `T`; `shape`
/// says what is expected when it is not.
fn small_json<T: serde::de::DeserializeOwned>(request: &ApiGatewayV2httpRequest, shape: &str) -> Result<T, ApiError> {
    let bytes = body_bytes(request, MAX_SMALL_BODY_BYTES).map_err(|err| match err {
        BodyError::TooLarge { .. } => ApiError::PayloadTooLarge(err.to_string()),
        BodyError::InvalidBase64(_) => ApiError::InvalidRequest(err.to_string()),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidRequest(format!("the body must be {shape}: {e}")))
}

/// An RFC 3339 time from the query string, if given.
fn query_time(request: &ApiGatewayV2httpRequest, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    request
        .query_string_parameters
        .first(name)
        .map(|text| {
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                ApiError::InvalidRequest(format!("{name} must be an RFC 3339 time such as 2026-11-22T10:00:00Z"))
            })
        })
        .transpose()
}

fn version_json(version: &ModelVersion, production_version: Option<i64>) -> Value {
    let metrics: BTreeMap<&str, f64> = version.metrics().collect();
    json!({
        "version": version.version,
        "status": version.approval.as_str(),
        "production": Some(version.version) == production_version,
        "bundle": version.bundle_uri,
        "source": version.get(metadata::SOURCE).unwrap_or("training"),
        "training_job": version.get(metadata::TRAINING_JOB),
        "tuning_job": version.get(metadata::TUNING_JOB),
        "dataset": version.get(metadata::DATASET),
        "trained_at": version.get(metadata::TRAINED_AT),
        "primary_metric": version.get(metadata::PRIMARY_METRIC),
        "gate_reason": version.description,
        "metrics": metrics,
        "arn": version.arn,
    })
}
