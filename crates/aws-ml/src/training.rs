//! The training use case: a training request (`POST /models/{model}/train`, a scheduled
//! plan, or remediation repeating the production version's request) is validated against
//! the dataset's schema and the trainer's hyperparameters, then becomes one SageMaker
//! training job, or a tuning job when it has a `tuning` block. One code path for all three,
//! so a retraining is exactly the training a person asked for, on newer data.
//!
//! The job gets the production version's bundle as a `production` channel, so the trainer
//! scores production on the candidate's validation rows and the gate compares the two on
//! the same data.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Value, json};
use sluice_aws::settings::{SettingsError, Vars, parsed_or, required};
use sluice_aws::{AwsClients, Catalog, RetrainPlan, StoreError, TrainingJobRecord};
use sluice_core::model_event::{EventKind, ModelEvent};
use sluice_core::{DatasetName, IngestStatus, InvalidName, ModelName};
use sluice_model::hyperparameters::Hyperparameters;
use sluice_model::monitoring::MonitoringOverrides;
use sluice_model::tuning::{REPORTED_METRICS, TuningBudget, TuningRequest};
use sluice_profile::drift::DriftPolicy;
use time::OffsetDateTime;

use crate::jobs::{ChannelSource, JobNetwork, SageMaker, TRAIN_CHANNEL, TrainingSpec};

/// SageMaker's limits on job names.
const TRAINING_JOB_NAME_LIMIT: usize = 63;
const TUNING_JOB_NAME_LIMIT: usize = 32;

/// `POST /models/{model}/train` (schema: `docs/api.md`).
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
    /// Instances that train the model together, each on its share of the data set's objects.
    #[serde(default)]
    instance_count: Option<u32>,
    #[serde(default)]
    tuning: Option<TuningRequest>,
    /// Retrain with this same request every so many days (the schedule checks daily).
    #[serde(default)]
    retrain_every_days: Option<u32>,
    /// Train only on data ingested at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    data_since: Option<OffsetDateTime>,
    /// How this model's drift is judged, where it differs from the stack's defaults (the
    /// monitor reads it from the production version's request).
    #[serde(default)]
    monitoring: Option<MonitoringOverrides>,
}

/// Who asked for the training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Api,
    Schedule,
    Remediation,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Schedule => "schedule",
            Self::Remediation => "remediation",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error("invalid training request: {0}")]
    Invalid(String),
    /// A valid request that asks for more than the stack allows (instance types, trials).
    #[error("{0}")]
    OverLimit(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: impl Into<String>) -> TrainError {
    TrainError::Invalid(message.into())
}

/// A job that was started, and the answer the API gives for it.
#[derive(Debug, Clone, PartialEq)]
pub struct StartedJob {
    pub job_name: String,
    pub answer: Value,
}

#[derive(Debug, Clone)]
pub struct TrainingSettings {
    pub curated_bucket: String,
    pub artifacts_bucket: String,
    pub trainer_image: String,
    pub role_arn: String,
    /// The stack that starts the jobs, passed to them as the `stack` hyperparameter.
    pub stack_name: String,
    pub instance_type: String,
    /// The instance types a request may ask for (`TrainingInstanceTypes`; the IAM policy
    /// allows no others).
    pub allowed_instance_types: Vec<String>,
    /// Most instances one job may use (`MaxTrainingInstances`).
    pub max_instances: u32,
    pub tuning_budget: TuningBudget,
    pub max_runtime_seconds: i32,
    /// Encrypts the training volumes and the model artifacts (`DataKeyArn`).
    pub kms_key_arn: Option<String>,
    /// Subnets and security groups to run training in (`TrainingSubnetIds`,
    /// `TrainingSecurityGroupIds`), or none.
    pub network: JobNetwork,
}

/// A comma-separated list, empty entries left out.
fn list(vars: &dyn Vars, name: &str) -> Vec<String> {
    vars.var(name).unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl TrainingSettings {
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, SettingsError> {
        let instance_type = parsed_or(vars, "TRAINING_INSTANCE_TYPE", "ml.m5.large".to_owned())?;
        let mut allowed_instance_types = list(vars, "TRAINING_INSTANCE_TYPES");
        if allowed_instance_types.is_empty() {
            allowed_instance_types.push(instance_type.clone());
        }
        let (subnets, security_groups) = (list(vars, "TRAINING_SUBNET_IDS"), list(vars, "TRAINING_SECURITY_GROUP_IDS"));
        // SageMaker needs both or neither; one alone is a configuration mistake.
        if subnets.is_empty() != security_groups.is_empty() {
            let missing = if subnets.is_empty() { "TRAINING_SUBNET_IDS" } else { "TRAINING_SECURITY_GROUP_IDS" };
            return Err(SettingsError::Missing(missing));
        }
        Ok(Self {
            curated_bucket: required(vars, "CURATED_BUCKET")?,
            artifacts_bucket: required(vars, "ARTIFACTS_BUCKET")?,
            trainer_image: required(vars, "TRAINER_IMAGE")?,
            role_arn: required(vars, "SAGEMAKER_ROLE_ARN")?,
            stack_name: required(vars, "STACK_NAME")?,
            instance_type,
            allowed_instance_types,
            max_instances: parsed_or(vars, "MAX_TRAINING_INSTANCES", 4)?,
            tuning_budget: TuningBudget {
                max_jobs: parsed_or(vars, "MAX_TUNING_JOBS", 20)?,
                parallel_jobs: parsed_or(vars, "MAX_PARALLEL_TRAINING_JOBS", 4)?,
            },
            max_runtime_seconds: parsed_or(vars, "TRAINING_MAX_RUNTIME_SECONDS", 3600)?,
            kms_key_arn: vars.var("TRAINING_KMS_KEY_ARN").filter(|key| !key.is_empty()),
            network: JobNetwork { subnets, security_groups },
        })
    }

    /// The instance type a request trains on: the one it asks for, or the stack's default,
    /// as long as the stack allows it (a fleet of the largest GPUs is the costliest mistake
    /// a caller could make).
    fn instance_type(&self, requested: Option<String>) -> Result<String, TrainError> {
        let instance_type = requested.unwrap_or_else(|| self.instance_type.clone());
        if self.allowed_instance_types.contains(&instance_type) {
            Ok(instance_type)
        } else {
            Err(TrainError::OverLimit(format!(
                "instance type {instance_type:?} is not allowed in this stack (allowed: {}; TrainingInstanceTypes)",
                self.allowed_instance_types.join(", ")
            )))
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainingService {
    sagemaker: SageMaker,
    catalog: Catalog,
    s3: aws_sdk_s3::Client,
    settings: TrainingSettings,
}

impl TrainingService {
    pub fn new(clients: &AwsClients, catalog: Catalog, settings: TrainingSettings) -> Self {
        Self { sagemaker: SageMaker::new(clients), catalog, s3: clients.s3.clone(), settings }
    }

    /// Validates a training request (`body`, JSON) and starts its job. With
    /// `retrain_every_days`, the request is kept (or, started by the schedule, its time
    /// moved on) so the schedule starts it again when it is due; remediation's retraining
    /// leaves the plan alone.
    ///
    /// Starts caused by an event that can be delivered twice (the schedule, an alarm) pass
    /// the occurrence's `key` and time as `now`: the job is then named after them, so a
    /// repeated start finds its job and starts no second one.
    pub async fn start(
        &self,
        model: &ModelName,
        body: &str,
        now: OffsetDateTime,
        trigger: Trigger,
        key: Option<&str>,
    ) -> Result<StartedJob, TrainError> {
        let training: TrainRequest = serde_json::from_str(body).map_err(|err| invalid(err.to_string()))?;
        if training.retrain_every_days.is_some_and(|days| !(1..=366).contains(&days)) {
            return Err(invalid("retrain_every_days must be between 1 and 366"));
        }
        if let Some(monitoring) = &training.monitoring {
            monitoring.apply(DriftPolicy::default()).map_err(invalid)?;
        }
        let dataset = DatasetName::parse(&training.dataset)?;
        let instance_type = self.settings.instance_type(training.instance_type)?;
        let schema = self
            .catalog
            .schema(&dataset)
            .await?
            .ok_or_else(|| invalid(format!("dataset {dataset} has no processed data yet (no schema)")))?;
        if schema.schema.field(&training.target).is_none() {
            let columns: Vec<&str> = schema.schema.fields.iter().map(|f| f.name.as_str()).collect();
            return Err(invalid(format!(
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
        // The registry records it with the version; remediation finds new data by it.
        hyperparameters.insert("dataset".into(), dataset.to_string());
        hyperparameters.insert(sluice_model::hyperparameters::STACK.into(), self.settings.stack_name.clone());
        for (name, value) in [("task", &training.task), ("algorithm", &training.algorithm)] {
            if let Some(value) = value {
                hyperparameters.insert(name.into(), value.clone());
            }
        }
        let production = self.catalog.production(model.as_str()).await?;
        match &production {
            Some(production) => hyperparameters.insert("production_version".into(), production.version.to_string()),
            None => hyperparameters.remove("production_version"),
        };
        let parsed = Hyperparameters::parse(hyperparameters.clone()).map_err(TrainError::Invalid)?;
        let instance_count = training.instance_count.unwrap_or(1);
        if let Some(reason) = parsed.algorithm.instances_refused(instance_count) {
            return Err(invalid(reason));
        }
        if instance_count > self.settings.max_instances {
            return Err(TrainError::OverLimit(format!(
                "instance_count {instance_count} is more than this stack allows ({}; MaxTrainingInstances)",
                self.settings.max_instances
            )));
        }
        let budget = self.settings.tuning_budget;
        let plan = training.tuning.map(|tuning| tuning.plan(&hyperparameters, budget)).transpose().map_err(invalid)?;
        if let Some(plan) = &plan {
            if let Some(reason) = plan.instances_refused(instance_count) {
                return Err(invalid(reason));
            }
            budget.admits(plan).map_err(TrainError::OverLimit)?;
        }

        let limit = if plan.is_some() { TUNING_JOB_NAME_LIMIT } else { TRAINING_JOB_NAME_LIMIT };
        let job_name = job_name(model, now, limit, key);
        hyperparameters.insert("model_version".into(), job_name.clone());
        let data = match training.data_since {
            None => ChannelSource::Prefix(format!("s3://{}/data/{dataset}/", self.settings.curated_bucket)),
            Some(since) => self.data_since(model, &dataset, since, &job_name).await?,
        };
        let mut channels = vec![(TRAIN_CHANNEL.to_owned(), data)];
        if let Some(production) = &production {
            channels.push(("production".to_owned(), ChannelSource::Prefix(production.bundle_uri.clone())));
        }
        let spec = TrainingSpec {
            image: self.settings.trainer_image.clone(),
            role_arn: self.settings.role_arn.clone(),
            channels,
            output_path: format!("s3://{}/training/{model}", self.settings.artifacts_bucket),
            instance_type,
            instance_count: i32::try_from(instance_count).unwrap_or(i32::MAX),
            max_runtime_seconds: self.settings.max_runtime_seconds,
            hyperparameters: hyperparameters.into_iter().collect::<HashMap<_, _>>(),
            metric_regexes: REPORTED_METRICS
                .iter()
                .map(|(metric, _)| ((*metric).to_owned(), format!("{metric}=([-0-9.eE+]+)")))
                .collect(),
            tags: vec![("sluice:model".into(), model.to_string()), ("sluice:dataset".into(), dataset.to_string())],
            kms_key_arn: self.settings.kms_key_arn.clone(),
            network: self.settings.network.clone(),
        };
        let mut answer = json!({ "model": model, "dataset": dataset, "job_name": job_name, "status": "InProgress" });
        let (kind, created) = match &plan {
            Some(plan) => {
                answer["objective"] = json!({ "metric": plan.objective.metric, "maximize": plan.objective.maximize });
                answer["max_jobs"] = plan.max_jobs.into();
                ("tuning", self.sagemaker.start_tuning(&job_name, &spec, plan).await?)
            }
            None => ("training", self.sagemaker.start_training(&job_name, &spec).await?),
        };
        if !created {
            tracing::info!(%model, %job_name, "the job exists already: a repeated start");
        }
        answer["kind"] = kind.into();
        if let Some(since) = training.data_since {
            answer["data_since"] = time_json(since);
        }
        let record = TrainingJobRecord {
            model: model.to_string(),
            job_name: job_name.clone(),
            kind: kind.to_owned(),
            dataset: dataset.clone(),
            started_at: now,
            request: body.to_owned(),
            trigger: trigger.as_str().to_owned(),
        };
        self.catalog.put_training_job(&record).await?;
        let event = ModelEvent::new(
            EventKind::TrainingStarted,
            format!("{kind} job {job_name} started on dataset {dataset} ({})", trigger.as_str()),
        )
        .details(json!({ "job_name": job_name, "kind": kind, "dataset": dataset, "trigger": trigger.as_str(),
                         "data_since": training.data_since.map(time_json), "production_version": production.map(|p| p.version) }));
        // Just after `now`, the occurrence that caused the start (an alarm's state change is
        // logged at its own time): the timeline reads cause, then effect.
        let event = ModelEvent { time: now + time::Duration::microseconds(1), ..event };
        self.catalog.append_event(model.as_str(), &event, Some(&job_name)).await?;
        if let Some(every_days) = training.retrain_every_days.filter(|_| trigger != Trigger::Remediation) {
            let plan =
                RetrainPlan { model: model.to_string(), request: body.to_owned(), every_days, last_started: now };
            self.catalog.save_retrain_plan(&plan).await?;
            answer["retrain_every_days"] = every_days.into();
        }
        tracing::info!(%model, %dataset, %job_name, kind, trigger = trigger.as_str(), "job started");
        Ok(StartedJob { job_name, answer })
    }

    /// A manifest channel of the dataset's curated objects ingested at or after `since`.
    async fn data_since(
        &self,
        model: &ModelName,
        dataset: &DatasetName,
        since: OffsetDateTime,
        job_name: &str,
    ) -> Result<ChannelSource, TrainError> {
        let keys: Vec<String> = self
            .catalog
            .ingests(dataset)
            .await?
            .into_iter()
            .filter(|entry| entry.status == IngestStatus::Processed && entry.received_at >= since)
            .filter_map(|entry| {
                let processing = entry.processing?;
                processing.rows_out.filter(|&rows| rows > 0)?;
                processing.curated_key
            })
            .collect();
        if keys.is_empty() {
            return Err(invalid(format!(
                "dataset {dataset} has no processed data ingested since {}",
                time_json(since).as_str().unwrap_or_default()
            )));
        }
        let bucket = &self.settings.curated_bucket;
        let mut manifest = vec![json!({ "prefix": format!("s3://{bucket}/") })];
        manifest.extend(keys.into_iter().map(Value::from));
        let key = format!("training/{model}/manifests/{job_name}.json");
        self.s3
            .put_object()
            .bucket(&self.settings.artifacts_bucket)
            .key(&key)
            .content_type("application/json")
            .body(Value::Array(manifest).to_string().into_bytes().into())
            .send()
            .await
            .map_err(|e| StoreError::new("S3", "PutObject", e))?;
        Ok(ChannelSource::Manifest(format!("s3://{}/{key}", self.settings.artifacts_bucket)))
    }
}

fn time_json(at: OffsetDateTime) -> Value {
    at.format(&time::format_description::well_known::Rfc3339).map_or(Value::Null, Value::from)
}

/// `<model>-<yyyymmdd-hhmmss>-<4 hex>` within `limit` characters, the model name cut short
/// if need be. The hex is random, or from `key` (the same key and time, the same name).
fn job_name(model: &ModelName, at: OffsetDateTime, limit: usize, key: Option<&str>) -> String {
    let stamp =
        at.format(time::macros::format_description!("[year][month][day]-[hour][minute][second]")).expect("formats");
    let suffix = match key {
        Some(key) => sluice_core::Sha256Digest::of(key.as_bytes()).hex[..4].to_owned(),
        None => uuid::Uuid::now_v7().simple().to_string()[28..].to_owned(),
    };
    let prefix: String = model.as_str().chars().take(limit - stamp.len() - suffix.len() - 2).collect();
    format!("{}-{stamp}-{suffix}", prefix.trim_end_matches(['-', '_']).replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<TrainingSettings, SettingsError> {
        let mut env: HashMap<String, String> = [
            ("CURATED_BUCKET", "curated"),
            ("ARTIFACTS_BUCKET", "artifacts"),
            ("TRAINER_IMAGE", "trainer"),
            ("SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/training"),
            ("STACK_NAME", "sluice"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        TrainingSettings::from_vars(&env)
    }

    #[test]
    fn only_the_stacks_instance_types_are_trained_on() {
        let settings = settings(&[
            ("TRAINING_INSTANCE_TYPE", "ml.m5.large"),
            ("TRAINING_INSTANCE_TYPES", "ml.m5.large, ml.c5.xlarge"),
        ])
        .unwrap();
        assert_eq!(settings.instance_type(None).unwrap(), "ml.m5.large");
        assert_eq!(settings.instance_type(Some("ml.c5.xlarge".into())).unwrap(), "ml.c5.xlarge");
        let refused = settings.instance_type(Some("ml.p4d.24xlarge".into())).unwrap_err();
        assert!(matches!(refused, TrainError::OverLimit(_)));
        let message = refused.to_string();
        assert!(message.contains("ml.p4d.24xlarge") && message.contains("ml.m5.large, ml.c5.xlarge"), "{message}");
    }

    #[test]
    fn without_an_allow_list_only_the_default_type_is_allowed() {
        let settings = settings(&[("TRAINING_INSTANCE_TYPE", "ml.c5.xlarge")]).unwrap();
        assert_eq!(settings.allowed_instance_types, ["ml.c5.xlarge"]);
        assert!(settings.instance_type(Some("ml.m5.large".into())).is_err());
    }

    #[test]
    fn a_vpc_needs_subnets_and_security_groups() {
        assert_eq!(settings(&[]).unwrap().network, JobNetwork::default());
        let network =
            settings(&[("TRAINING_SUBNET_IDS", "subnet-1,subnet-2"), ("TRAINING_SECURITY_GROUP_IDS", "sg-1")])
                .unwrap()
                .network;
        assert_eq!((network.subnets.len(), network.security_groups.len()), (2, 1));
        assert!(settings(&[("TRAINING_SUBNET_IDS", "subnet-1")]).is_err());
        assert!(settings(&[("TRAINING_SECURITY_GROUP_IDS", "sg-1")]).is_err());
    }

    #[test]
    fn job_names_fit_sagemaker_rules() {
        let at = time::macros::datetime!(2026-11-22 10:15:01 UTC);
        let iris = ModelName::parse("iris-species").unwrap();
        let name = job_name(&iris, at, TRAINING_JOB_NAME_LIMIT, None);
        assert!(name.starts_with("iris-species-20261122-101501-"), "{name}");
        let keyed = job_name(&iris, at, TRAINING_JOB_NAME_LIMIT, Some("alarm@10:15"));
        assert_eq!(
            keyed,
            job_name(&iris, at, TRAINING_JOB_NAME_LIMIT, Some("alarm@10:15")),
            "the same key, the same name"
        );
        assert_ne!(keyed, job_name(&iris, at, TRAINING_JOB_NAME_LIMIT, Some("alarm@10:30")));
        for limit in [TRAINING_JOB_NAME_LIMIT, TUNING_JOB_NAME_LIMIT] {
            let long = job_name(&ModelName::parse(&"m".repeat(63)).unwrap(), at, limit, None);
            assert!(long.len() <= limit, "{long}");
            assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
    }
}
