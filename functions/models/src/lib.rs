//! The `models` function: the training and registry API.
//!
//! - `POST /models/{model}/train`: validates the request against the dataset's schema and
//!   the trainer's hyperparameters, then starts a SageMaker training job, or a tuning job
//!   when the request has a `tuning` block.
//! - `GET /models`, `GET /models/{model}`: models, their versions and which is production.
//! - `POST /models/{model}/versions/{version}/approve|reject`: the manual side of the gate.
//! - `POST /models/{model}/versions`: import a bundle trained elsewhere, checked by loading it.
//! - The daily schedule (EventBridge): starts the retraining plans that are due.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_aws::http_api::{BodyError, body_bytes, error_response, json_response, path_parameter};
use sluice_aws::settings::{SettingsError, Vars, parsed_or, required};
use sluice_aws::{AwsClients, Catalog, RetrainPlan, StoreError};
use sluice_aws_ml::{ModelPackage, SageMaker, TrainingSpec, VersionMetrics};
use sluice_core::{DatasetName, InvalidName, ModelName};
use sluice_model::hyperparameters::Hyperparameters;
use sluice_model::tuning::{REPORTED_METRICS, TuningRequest};
use sluice_serving::{Bundle, Predictor};
use time::OffsetDateTime;

pub const ROUTE_TRAIN: &str = "POST /models/{model}/train";
pub const ROUTE_LIST: &str = "GET /models";
pub const ROUTE_GET: &str = "GET /models/{model}";
pub const ROUTE_APPROVE: &str = "POST /models/{model}/versions/{version}/approve";
pub const ROUTE_REJECT: &str = "POST /models/{model}/versions/{version}/reject";
pub const ROUTE_IMPORT: &str = "POST /models/{model}/versions";

/// Lambda's 6 MB synchronous payload carries a base64 body of about this many bytes.
const MAX_IMPORT_BYTES: usize = 4 * 1024 * 1024;

/// SageMaker's limits on job names.
const TRAINING_JOB_NAME_LIMIT: usize = 63;
const TUNING_JOB_NAME_LIMIT: usize = 32;

const SCHEDULED_EVENT: &str = "Scheduled Event";

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
    #[error("invalid training request: {0}")]
    InvalidRequest(String),
    #[error("invalid model bundle: {0}")]
    InvalidBundle(String),
    #[error("{0}")]
    PayloadTooLarge(String),
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
            Self::InvalidName(_) | Self::InvalidRequest(_) | Self::InvalidBundle(_) => 400,
            Self::PayloadTooLarge(_) => 413,
            Self::NotFound(_) | Self::RouteNotFound(_) => 404,
            Self::Store(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_name",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidBundle(_) => "invalid_bundle",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::NotFound(_) => "not_found",
            Self::RouteNotFound(_) => "route_not_found",
            Self::Store(_) => "internal_error",
        }
    }
}

/// `POST /models/{model}/train`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainRequest {
    dataset: String,
    target: String,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    hyperparameters: BTreeMap<String, Value>,
    #[serde(default)]
    instance_type: Option<String>,
    #[serde(default)]
    tuning: Option<TuningRequest>,
    /// Retrain with this same request every so many days (the schedule checks daily).
    #[serde(default)]
    retrain_every_days: Option<u32>,
}

struct Settings {
    curated_bucket: String,
    artifacts_bucket: String,
    trainer_image: String,
    role_arn: String,
    instance_type: String,
    max_runtime_seconds: i32,
    group_prefix: String,
}

pub struct Models {
    s3: aws_sdk_s3::Client,
    sagemaker: SageMaker,
    catalog: Catalog,
    settings: Settings,
}

impl Models {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        Ok(Self {
            s3: clients.s3.clone(),
            sagemaker: SageMaker::new(clients),
            catalog: Catalog::new(clients.dynamodb.clone(), required(vars, "CATALOG_TABLE")?),
            settings: Settings {
                curated_bucket: required(vars, "CURATED_BUCKET")?,
                artifacts_bucket: required(vars, "ARTIFACTS_BUCKET")?,
                trainer_image: required(vars, "TRAINER_IMAGE")?,
                role_arn: required(vars, "SAGEMAKER_ROLE_ARN")?,
                instance_type: parsed_or(vars, "TRAINING_INSTANCE_TYPE", "ml.m5.large".to_owned())?,
                max_runtime_seconds: parsed_or(vars, "TRAINING_MAX_RUNTIME_SECONDS", 3600)?,
                group_prefix: parsed_or(vars, "MODEL_GROUP_PREFIX", "sluice-".to_owned())?,
            },
        })
    }

    /// The function's one entry point: the retraining schedule's EventBridge event, or an
    /// API request.
    pub async fn handle_event(&self, event: Value) -> Result<Value, ModelsFailure> {
        if event["detail-type"] == SCHEDULED_EVENT {
            return Ok(self.retrain_due(OffsetDateTime::now_utc()).await?);
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
            ROUTE_APPROVE => self.decide(&request, true).await,
            ROUTE_REJECT => self.decide(&request, false).await,
            ROUTE_IMPORT => self.import(&request).await,
            _ => Err(ApiError::RouteNotFound(route.clone())),
        };
        result.unwrap_or_else(|err| {
            if let ApiError::Store(store) = &err {
                tracing::error!(%route, %request_id, error = %store, "request failed");
            }
            error_response(err.status(), err.code(), &err.to_string(), &request_id)
        })
    }

    fn group(&self, model: &ModelName) -> String {
        format!("{}{model}", self.settings.group_prefix)
    }

    async fn train(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let body = request.body.as_deref().unwrap_or_default();
        let answer = self.start(&model, body, OffsetDateTime::now_utc()).await?;
        Ok(json_response(202, &answer))
    }

    /// Starts every scheduled retraining that is due, with the request it was planned with.
    /// One model's failure (say, its dataset was deleted) does not hold up the others.
    pub async fn retrain_due(&self, now: OffsetDateTime) -> Result<Value, StoreError> {
        let (mut started, mut failed) = (Vec::new(), Vec::new());
        for plan in self.catalog.retrain_plans().await?.into_iter().filter(|plan| plan.is_due(now)) {
            let result = match ModelName::parse(&plan.model) {
                Ok(model) => self.start(&model, &plan.request, now).await,
                Err(err) => Err(err.into()),
            };
            match result {
                Ok(answer) => started.push(answer),
                Err(err) => {
                    tracing::error!(model = %plan.model, error = %err, "scheduled retraining could not start");
                    failed.push(json!({ "model": plan.model, "error": err.to_string() }));
                }
            }
        }
        Ok(json!({ "started": started, "failed": failed }))
    }

    /// Validates a training request and starts its job. With `retrain_every_days`, the
    /// request is also kept so the schedule starts it again when it is due.
    async fn start(&self, model: &ModelName, body: &str, now: OffsetDateTime) -> Result<Value, ApiError> {
        let training: TrainRequest =
            serde_json::from_str(body).map_err(|err| ApiError::InvalidRequest(err.to_string()))?;
        if training.retrain_every_days.is_some_and(|days| !(1..=366).contains(&days)) {
            return Err(ApiError::InvalidRequest("retrain_every_days must be between 1 and 366".into()));
        }
        let dataset = DatasetName::parse(&training.dataset)?;
        let schema = self.catalog.schema(&dataset).await?.ok_or_else(|| {
            ApiError::InvalidRequest(format!("dataset {dataset} has no processed data yet (no schema)"))
        })?;
        if schema.schema.field(&training.target).is_none() {
            let columns: Vec<&str> = schema.schema.fields.iter().map(|f| f.name.as_str()).collect();
            return Err(ApiError::InvalidRequest(format!(
                "target {:?} is not a column of dataset {dataset} (columns: {})",
                training.target,
                columns.join(", ")
            )));
        }
        let mut hyperparameters: BTreeMap<String, String> = training
            .hyperparameters
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
            .collect();
        hyperparameters.insert("target".into(), training.target.clone());
        hyperparameters.insert("model_name".into(), model.to_string());
        for (name, value) in [("task", &training.task), ("algorithm", &training.algorithm)] {
            if let Some(value) = value {
                hyperparameters.insert(name.into(), value.clone());
            }
        }
        Hyperparameters::parse(hyperparameters.clone()).map_err(ApiError::InvalidRequest)?;
        let plan = training
            .tuning
            .map(|tuning| tuning.plan(&hyperparameters))
            .transpose()
            .map_err(ApiError::InvalidRequest)?;

        let started_at = now;
        let limit = if plan.is_some() { TUNING_JOB_NAME_LIMIT } else { TRAINING_JOB_NAME_LIMIT };
        let job_name = job_name(model, started_at, limit);
        hyperparameters.insert("model_version".into(), job_name.clone());
        let spec = TrainingSpec {
            image: self.settings.trainer_image.clone(),
            role_arn: self.settings.role_arn.clone(),
            channels: vec![("train".into(), format!("s3://{}/data/{dataset}/", self.settings.curated_bucket))],
            output_path: format!("s3://{}/training/{model}", self.settings.artifacts_bucket),
            instance_type: training.instance_type.unwrap_or_else(|| self.settings.instance_type.clone()),
            instance_count: 1,
            max_runtime_seconds: self.settings.max_runtime_seconds,
            hyperparameters: hyperparameters.into_iter().collect::<HashMap<_, _>>(),
            metric_regexes: REPORTED_METRICS
                .iter()
                .map(|(metric, _)| ((*metric).to_owned(), format!("{metric}=([-0-9.eE+]+)")))
                .collect(),
            tags: vec![("sluice:model".into(), model.to_string()), ("sluice:dataset".into(), dataset.to_string())],
        };
        let mut answer = json!({ "model": model, "dataset": dataset, "job_name": job_name, "status": "InProgress" });
        match &plan {
            Some(plan) => {
                self.sagemaker.start_tuning(&job_name, &spec, plan).await?;
                answer["kind"] = "tuning".into();
                answer["objective"] = json!({ "metric": plan.objective.metric, "maximize": plan.objective.maximize });
                answer["max_jobs"] = plan.max_jobs.into();
            }
            None => {
                self.sagemaker.start_training(&job_name, &spec).await?;
                answer["kind"] = "training".into();
            }
        }
        let kind = answer["kind"].as_str().unwrap_or_default().to_owned();
        self.catalog.put_training_job(model.as_str(), &job_name, &kind, &dataset, started_at).await?;
        if let Some(every_days) = training.retrain_every_days {
            let plan =
                RetrainPlan { model: model.to_string(), request: body.to_owned(), every_days, last_started: now };
            self.catalog.save_retrain_plan(&plan).await?;
            answer["retrain_every_days"] = every_days.into();
        }
        tracing::info!(%model, %dataset, %job_name, kind, "job started");
        Ok(answer)
    }

    async fn list(&self) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let mut models = Vec::new();
        for group in self.sagemaker.groups(&self.settings.group_prefix).await? {
            let Some(name) = group.strip_prefix(&self.settings.group_prefix) else { continue };
            let packages = self.sagemaker.packages(&group).await?;
            models.push(json!({
                "model": name,
                "versions": packages.len(),
                "production_version": production(&packages).map(|p| p.version),
            }));
        }
        Ok(json_response(200, &json!({ "models": models })))
    }

    async fn get(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let packages = self.versions(&model).await?;
        let production_version = production(&packages).map(|p| p.version);
        let versions: Vec<Value> = packages.iter().map(|p| version_json(p, production_version)).collect();
        Ok(json_response(
            200,
            &json!({ "model": model, "production_version": production_version, "versions": versions }),
        ))
    }

    async fn versions(&self, model: &ModelName) -> Result<Vec<ModelPackage>, ApiError> {
        let group = self.group(model);
        if !self.sagemaker.groups(&group).await?.contains(&group) {
            return Err(ApiError::NotFound(format!("model {model} has no registered versions")));
        }
        Ok(self.sagemaker.packages(&group).await?)
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
        let bundle = Bundle::from_tar_gz(&bytes).map_err(|e| ApiError::InvalidBundle(e.to_string()))?;
        if bundle.manifest.model_name != model.as_str() {
            return Err(ApiError::InvalidBundle(format!(
                "the manifest is for model {:?}, not {model}",
                bundle.manifest.model_name
            )));
        }
        Predictor::load(&bundle).map_err(|e| ApiError::InvalidBundle(e.to_string()))?;
        let metrics = bundle
            .metrics
            .as_ref()
            .map(VersionMetrics::from_json)
            .transpose()
            .map_err(|e| ApiError::InvalidBundle(format!("metrics.json: {e}")))?;

        let key = format!("imports/{model}/{}/model.tar.gz", uuid::Uuid::now_v7());
        self.s3
            .put_object()
            .bucket(&self.settings.artifacts_bucket)
            .key(&key)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| StoreError::new("S3", "PutObject", e))?;
        let bundle_uri = format!("s3://{}/{key}", self.settings.artifacts_bucket);
        let mut metadata = metrics.map(|m| m.metadata).unwrap_or_default();
        metadata.insert("source".into(), "import".into());
        metadata.insert("imported_version".into(), bundle.manifest.model_version.clone());
        let group = self.group(&model);
        self.sagemaker.ensure_group(&group, &format!("Sluice model {model}")).await?;
        let arn = self.sagemaker.register(&group, &self.settings.trainer_image, &bundle_uri, false, metadata).await?;
        tracing::info!(%model, %bundle_uri, "imported a version");
        let packages = self.sagemaker.packages(&group).await?;
        let production_version = production(&packages).map(|p| p.version);
        let imported = packages.iter().find(|p| p.arn == arn).ok_or_else(|| {
            ApiError::Store(StoreError {
                service: "SageMaker",
                operation: "ListModelPackages",
                message: format!("the new version {arn} is not listed"),
            })
        })?;
        Ok(json_response(201, &version_json(imported, production_version)))
    }

    async fn decide(
        &self,
        request: &ApiGatewayV2httpRequest,
        approve: bool,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let model = ModelName::parse(path_parameter(request, "model"))?;
        let version: i64 = path_parameter(request, "version")
            .parse()
            .map_err(|_| ApiError::InvalidRequest("version must be a whole number".into()))?;
        let packages = self.versions(&model).await?;
        let package = packages
            .iter()
            .find(|p| p.version == version)
            .ok_or_else(|| ApiError::NotFound(format!("model {model} has no version {version}")))?;
        self.sagemaker.set_approval(&package.arn, approve).await?;
        tracing::info!(%model, version, approve, "version decided by hand");
        let packages = self.sagemaker.packages(&self.group(&model)).await?;
        let production_version = production(&packages).map(|p| p.version);
        let updated = packages.iter().find(|p| p.version == version).expect("still there");
        Ok(json_response(200, &version_json(updated, production_version)))
    }
}

/// Production is the newest approved version.
pub fn production(packages: &[ModelPackage]) -> Option<&ModelPackage> {
    packages.iter().filter(|p| p.approval == "Approved").max_by_key(|p| p.version)
}

fn version_json(package: &ModelPackage, production_version: Option<i64>) -> Value {
    let metrics: BTreeMap<&str, Value> = package
        .metadata
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metric:").map(|name| (name, v.parse::<f64>().map_or_else(|_| json!(v), |n| json!(n))))
        })
        .collect();
    json!({
        "version": package.version,
        "status": package.approval,
        "production": Some(package.version) == production_version,
        "bundle": package.model_data_url,
        "source": package.metadata.get("source").map_or("training", String::as_str),
        "training_job": package.metadata.get("training_job"),
        "tuning_job": package.metadata.get("tuning_job"),
        "dataset": package.metadata.get("dataset"),
        "primary_metric": package.metadata.get("primary_metric"),
        "metrics": metrics,
        "arn": package.arn,
    })
}

/// `<model>-<yyyymmdd-hhmmss>-<4 hex>` within `limit` characters, the model name cut short
/// if need be.
fn job_name(model: &ModelName, at: OffsetDateTime, limit: usize) -> String {
    let stamp =
        at.format(time::macros::format_description!("[year][month][day]-[hour][minute][second]")).expect("formats");
    let suffix = &uuid::Uuid::now_v7().simple().to_string()[28..];
    let prefix: String = model.as_str().chars().take(limit - stamp.len() - suffix.len() - 2).collect();
    format!("{}-{stamp}-{suffix}", prefix.trim_end_matches(['-', '_']).replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_fit_sagemaker_rules() {
        let at = time::macros::datetime!(2026-11-22 10:15:01 UTC);
        let name = job_name(&ModelName::parse("iris_species").unwrap(), at, TRAINING_JOB_NAME_LIMIT);
        assert!(name.starts_with("iris-species-20261122-101501-"), "{name}");
        for limit in [TRAINING_JOB_NAME_LIMIT, TUNING_JOB_NAME_LIMIT] {
            let long = job_name(&ModelName::parse(&"m".repeat(63)).unwrap(), at, limit);
            assert!(long.len() <= limit, "{long}");
            assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
    }

    #[test]
    fn production_is_the_newest_approved_version() {
        let package = |version, approval: &str| ModelPackage {
            arn: format!("arn:{version}"),
            version,
            approval: approval.into(),
            model_data_url: None,
            metadata: HashMap::new(),
        };
        let packages = [package(3, "PendingManualApproval"), package(2, "Approved"), package(1, "Approved")];
        assert_eq!(production(&packages).map(|p| p.version), Some(2));
        assert_eq!(production(&[package(1, "Rejected")]), None);
    }
}
