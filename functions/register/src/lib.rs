//! The `register` function: EventBridge "SageMaker Training Job State Change" (or "…
//! HyperParameter Tuning Job State Change", whose best trial is registered) → a model
//! package in the model's group, approved only if it beats production on the primary
//! metric by the configured margin. Failed jobs are reported to the operators' topic.
//! A replayed event finds its package already registered and changes nothing.

use std::fmt;
use std::io::Read;

use serde_json::Value;
use sluice_aws::settings::{SettingsError, Vars, parsed_or, required};
use sluice_aws::{AwsClients, StoreError};
use sluice_aws_ml::{ModelPackage, Operators, SageMaker, VersionMetrics};
use sluice_core::ModelName;

pub const TRAINING_STATE_CHANGE: &str = "SageMaker Training Job State Change";
pub const TUNING_STATE_CHANGE: &str = "SageMaker HyperParameter Tuning Job State Change";

#[derive(Debug, thiserror::Error)]
pub enum RegisterFailure {
    #[error("event is not a SageMaker training or tuning job state change: {0}")]
    NotATrainingEvent(String),
    #[error("training job {job}: {message}")]
    Bundle { job: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Registered {
        model: String,
        approved: bool,
        primary_metric: String,
        value: f64,
        production_value: Option<f64>,
    },
    AlreadyRegistered {
        job: String,
    },
    /// A tuning trial (the tuning job's best is registered instead) or a status that is
    /// neither success nor failure.
    Ignored {
        job: String,
        reason: String,
    },
    FailureReported {
        job: String,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Registered { model, approved, primary_metric, value, .. } => {
                write!(f, "registered {model} ({primary_metric} {value}); approved: {approved}")
            }
            Self::AlreadyRegistered { job } => write!(f, "{job} was already registered"),
            Self::Ignored { job, reason } => write!(f, "{job} ignored: {reason}"),
            Self::FailureReported { job } => write!(f, "{job} failed; operators notified"),
        }
    }
}

pub struct Register {
    s3: sluice_aws::AwsClients,
    sagemaker: SageMaker,
    operators: Operators,
    trainer_image: String,
    group_prefix: String,
    /// How much better than production a version must be to be approved automatically.
    approval_margin: f64,
}

impl Register {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        Ok(Self {
            s3: clients.clone(),
            sagemaker: SageMaker::new(clients),
            operators: Operators::new(clients, required(vars, "OPERATORS_TOPIC_ARN")?),
            trainer_image: required(vars, "TRAINER_IMAGE")?,
            group_prefix: parsed_or(vars, "MODEL_GROUP_PREFIX", "sluice-".to_owned())?,
            approval_margin: parsed_or(vars, "APPROVAL_MARGIN", 0.0)?,
        })
    }

    pub async fn handle(&self, event: &Value) -> Result<Outcome, RegisterFailure> {
        let detail = &event["detail"];
        let (job, status, model) = match event["detail-type"].as_str() {
            Some(TRAINING_STATE_CHANGE) => {
                (&detail["TrainingJobName"], &detail["TrainingJobStatus"], &detail["HyperParameters"]["model_name"])
            }
            Some(TUNING_STATE_CHANGE) => (
                &detail["HyperParameterTuningJobName"],
                &detail["HyperParameterTuningJobStatus"],
                &detail["TrainingJobDefinition"]["StaticHyperParameters"]["model_name"],
            ),
            _ => return Err(RegisterFailure::NotATrainingEvent(event["detail-type"].to_string())),
        };
        let job = job.as_str().ok_or_else(|| RegisterFailure::NotATrainingEvent("no job name".into()))?.to_owned();
        let model = model.as_str().unwrap_or("?");
        match status.as_str().unwrap_or_default() {
            "Completed" if detail.get("HyperParameterTuningJobName").is_some() => {
                // The event may carry the best trial; otherwise the tuning job knows it.
                let best = match detail["BestTrainingJob"]["TrainingJobName"].as_str() {
                    Some(best) => Some(best.to_owned()),
                    None => self.sagemaker.best_training_job(&job).await?,
                };
                match best {
                    Some(best) => self.register(&best, Some(&job)).await,
                    None => self.report_failure(&job, model, "Completed", "no trial finished with the objective").await,
                }
            }
            "Completed" => self.register(&job, None).await,
            status @ ("Failed" | "Stopped") => {
                let reason = detail["FailureReason"].as_str().unwrap_or("no reason given");
                self.report_failure(&job, model, status, reason).await
            }
            other => Ok(Outcome::Ignored { job, reason: format!("status {other}") }),
        }
    }

    async fn report_failure(
        &self,
        job: &str,
        model: &str,
        status: &str,
        reason: &str,
    ) -> Result<Outcome, RegisterFailure> {
        self.operators
            .notify(&format!("Sluice: training of {model} {status}"), &format!("Job {job} {status}: {reason}"))
            .await?;
        tracing::warn!(%job, %reason, "training failed; operators notified");
        Ok(Outcome::FailureReported { job: job.to_owned() })
    }

    /// Registers a finished training job: one started on its own, or the best trial of
    /// `tuning_job`.
    async fn register(&self, job_name: &str, tuning_job: Option<&str>) -> Result<Outcome, RegisterFailure> {
        let job = self.sagemaker.training_job(job_name).await?;
        if job.tuning_job_arn.is_some() && tuning_job.is_none() {
            return Ok(Outcome::Ignored { job: job.name, reason: "a tuning trial".into() });
        }
        let bundle_error = |message: String| RegisterFailure::Bundle { job: job_name.to_owned(), message };
        let model = job
            .hyperparameters
            .get("model_name")
            .and_then(|m| ModelName::parse(m).ok())
            .ok_or_else(|| bundle_error("no valid model_name hyperparameter".into()))?;
        let bundle_uri = job.model_artifacts.clone().ok_or_else(|| bundle_error("no model artifacts".into()))?;
        let metrics = self.bundle_metrics(&bundle_uri).await.map_err(bundle_error)?;

        let group = format!("{}{model}", self.group_prefix);
        self.sagemaker.ensure_group(&group, &format!("Sluice model {model}")).await?;
        let packages = self.sagemaker.packages(&group).await?;
        if packages.iter().any(|p| p.metadata.get("training_job").map(String::as_str) == Some(job_name)) {
            return Ok(Outcome::AlreadyRegistered { job: job_name.to_owned() });
        }
        let VersionMetrics { primary_metric: name, value, higher_is_better, mut metadata } =
            VersionMetrics::from_json(&metrics).map_err(bundle_error)?;
        let production_value = production_metric(&packages, &name);
        let approved = match production_value {
            None => true,
            Some(current) if higher_is_better => value > current + self.approval_margin,
            Some(current) => value < current - self.approval_margin,
        };

        metadata.insert("training_job".to_owned(), job_name.to_owned());
        if let Some(dataset) = job.hyperparameters.get("dataset") {
            metadata.insert("dataset".into(), dataset.clone());
        }
        if let Some(tuning_job) = tuning_job {
            metadata.insert("tuning_job".into(), tuning_job.to_owned());
        }
        self.sagemaker.register(&group, &self.trainer_image, &bundle_uri, approved, metadata).await?;
        tracing::info!(%model, job = job_name, %name, value, ?production_value, approved, "registered");
        Ok(Outcome::Registered { model: model.to_string(), approved, primary_metric: name, value, production_value })
    }

    /// `metrics.json` from the bundle (`model.tar.gz`) at `uri`.
    async fn bundle_metrics(&self, uri: &str) -> Result<Value, String> {
        let bytes = sluice_aws::read_s3_uri(&self.s3.s3, uri).await.map_err(|e| e.to_string())?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for entry in archive.entries().map_err(|e| format!("{uri} is not a tar.gz: {e}"))? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let path = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
            if path.trim_start_matches("./") == "metrics.json" {
                let mut text = String::new();
                entry.read_to_string(&mut text).map_err(|e| e.to_string())?;
                return serde_json::from_str(&text).map_err(|e| format!("metrics.json: {e}"));
            }
        }
        Err(format!("{uri} has no metrics.json"))
    }
}

/// The production version's value of `metric`, if there is a production version.
fn production_metric(packages: &[ModelPackage], metric: &str) -> Option<f64> {
    let production = packages.iter().filter(|p| p.approval == "Approved").max_by_key(|p| p.version)?;
    production.metadata.get(&format!("metric:{metric}"))?.parse().ok()
}
