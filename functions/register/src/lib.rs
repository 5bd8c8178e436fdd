//! The `register` function: EventBridge "SageMaker Training Job State Change" (or "…
//! HyperParameter Tuning Job State Change", whose best trial is registered) → a version in
//! the model's registry group, approved only if the gate says so (`sluice_model::registry`:
//! the candidate beats production on the same validation rows), then production is
//! recorded. A version the gate approves over a production version is rolled out by the
//! model's policy (`sluice_aws_ml::rollouts`) unless that policy is `immediate`. Failed jobs are logged in the model's event log with the trainer's reason and
//! reported to the operators' topic.
//!
//! EventBridge delivers at least once: each job is claimed in the catalog before anything
//! is written, so concurrent duplicates register (or report) it once, and the registration
//! itself is keyed by the job (SageMaker's client token), so the retry of a delivery that
//! failed half-way gets the version the first attempt created.

use std::fmt;

use serde_json::{Value, json};
use sluice_aws::settings::{SettingsError, Vars, function_memory_bytes, parsed_or, required};
use sluice_aws::{AwsClients, Catalog, StoreError};
use sluice_aws_ml::registry::{metadata, metrics_metadata};
use sluice_aws_ml::{ModelRegistry, Operators, RolloutError, RolloutSettings, Rollouts, SageMaker};
use sluice_core::ModelName;
use sluice_core::model_event::{EventKind, ModelEvent};
use sluice_model::registry::{Approval, gate};
use sluice_model::rollout::RolloutPolicy;
use sluice_model::{Bundle, BundleLimits, Contents};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const TRAINING_STATE_CHANGE: &str = "SageMaker Training Job State Change";
pub const TUNING_STATE_CHANGE: &str = "SageMaker HyperParameter Tuning Job State Change";

/// How long a claimed job blocks its duplicates if its handler dies mid-way.
const CLAIM_LEASE: time::Duration = time::Duration::minutes(5);
/// How long a handled job's claim is kept (EventBridge stops retrying within a day).
const CLAIM_RETENTION: time::Duration = time::Duration::days(7);

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
        version: i64,
        approval: Approval,
        reason: String,
        primary_metric: String,
        value: f64,
    },
    /// The job was registered (or is being registered) by another delivery of the event.
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
            Self::Registered { model, version, approval, reason, .. } => {
                write!(f, "registered {model} version {version}: {} ({reason})", approval.as_str())
            }
            Self::AlreadyRegistered { job } => write!(f, "{job} was already registered"),
            Self::Ignored { job, reason } => write!(f, "{job} ignored: {reason}"),
            Self::FailureReported { job } => write!(f, "{job} failed; logged and operators notified"),
        }
    }
}

pub struct Register {
    s3: aws_sdk_s3::Client,
    sagemaker: SageMaker,
    registry: ModelRegistry,
    operators: Operators,
    rollouts: Rollouts,
    /// How much better than production a version must be to be approved automatically.
    approval_margin: f64,
    limits: BundleLimits,
}

impl Register {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        let catalog = Catalog::new(clients.dynamodb.clone(), required(vars, "CATALOG_TABLE")?);
        let registry = ModelRegistry::new(
            clients,
            catalog,
            &parsed_or(vars, "MODEL_GROUP_PREFIX", "sluice-".to_owned())?,
            &required(vars, "TRAINER_IMAGE")?,
        );
        let operators = Operators::new(clients, required(vars, "OPERATORS_TOPIC_ARN")?);
        Ok(Self {
            s3: clients.s3.clone(),
            sagemaker: SageMaker::new(clients),
            rollouts: Rollouts::new(registry.clone(), operators.clone(), RolloutSettings::from_vars(vars)?),
            registry,
            operators,
            approval_margin: parsed_or(vars, "APPROVAL_MARGIN", 0.0)?,
            limits: BundleLimits::for_memory(function_memory_bytes(vars)?),
        })
    }

    fn catalog(&self) -> &Catalog {
        self.registry.catalog()
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
        // Duplicates of one event carry its time: the log keeps one entry per occurrence.
        let at = sluice_aws::event_time(event);
        match status.as_str().unwrap_or_default() {
            "Completed" if detail.get("HyperParameterTuningJobName").is_some() => {
                // The event may carry the best trial; otherwise the tuning job knows it.
                let best = match detail["BestTrainingJob"]["TrainingJobName"].as_str() {
                    Some(best) => Some(best.to_owned()),
                    None => self.sagemaker.best_training_job(&job).await?,
                };
                match best {
                    Some(best) => self.register(&best, Some(&job), at).await,
                    None => {
                        self.report_failure(
                            &job,
                            model.as_str(),
                            "Completed",
                            "no trial finished with the objective",
                            at,
                        )
                        .await
                    }
                }
            }
            "Completed" => self.register(&job, None, at).await,
            status @ ("Failed" | "Stopped") => {
                let reason = detail["FailureReason"].as_str().unwrap_or("no reason given");
                self.report_failure(&job, model.as_str(), status, reason, at).await
            }
            other => Ok(Outcome::Ignored { job, reason: format!("status {other}") }),
        }
    }

    /// Runs `action` for `job` once, however many deliveries of its event arrive at once.
    async fn once<F>(&self, model: &ModelName, job: &str, action: F) -> Result<Outcome, RegisterFailure>
    where
        F: Future<Output = Result<Outcome, RegisterFailure>>,
    {
        let claim = format!("JOB_EVENT#{job}");
        let now = OffsetDateTime::now_utc();
        if !self.catalog().claim_once(model.as_str(), &claim, now, CLAIM_LEASE).await? {
            return Ok(Outcome::AlreadyRegistered { job: job.to_owned() });
        }
        match action.await {
            Ok(outcome) => {
                self.catalog().complete_claim(model.as_str(), &claim, now + CLAIM_RETENTION).await?;
                Ok(outcome)
            }
            Err(err) => {
                // Let the retry of this delivery take the job at once.
                if let Err(release) = self.catalog().release_claim(model.as_str(), &claim).await {
                    tracing::error!(%job, error = %release, "could not release the claim");
                }
                Err(err)
            }
        }
    }

    async fn report_failure(
        &self,
        job: &str,
        model: Option<&str>,
        status: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<Outcome, RegisterFailure> {
        let Some(model) = model.and_then(|m| ModelName::parse(m).ok()) else {
            // Not one of Sluice's jobs (no model_name): nothing to log it under.
            self.operators.notify(&format!("Sluice: training job {job} {status}"), reason).await?;
            return Ok(Outcome::FailureReported { job: job.to_owned() });
        };
        self.once(&model, job, async {
            let event = ModelEvent { time: at, ..ModelEvent::new(EventKind::TrainingFailed, reason) }
                .details(json!({ "job_name": job, "status": status, "reason": reason }));
            self.catalog().append_event(model.as_str(), &event, Some(job)).await?;
            self.operators
                .notify(&format!("Sluice: training of {model} {status}"), &format!("Job {job} {status}: {reason}"))
                .await?;
            tracing::warn!(%job, %reason, "training failed; logged and operators notified");
            Ok(Outcome::FailureReported { job: job.to_owned() })
        })
        .await
    }

    /// Registers a finished training job: one started on its own, or the best trial of
    /// `tuning_job`.
    async fn register(
        &self,
        job_name: &str,
        tuning_job: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<Outcome, RegisterFailure> {
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
        self.once(&model, job_name, async {
            let bytes = sluice_aws::read_s3_uri(&self.s3, &bundle_uri, self.limits.inflated_bytes).await?;
            let bundle = Bundle::from_tar_gz(&bytes, self.limits, Contents::WithoutModel)
                .map_err(|e| bundle_error(format!("{bundle_uri}: {e}")))?;
            let metrics = bundle.metrics.ok_or_else(|| bundle_error(format!("{bundle_uri} has no metrics.json")))?;
            let production = self.catalog().production(model.as_str()).await?.map(|p| p.version);
            let mut decision = gate(&metrics, production, self.approval_margin);
            // A version the gate approves over a production version is rolled out by the
            // model's policy; it waits while it is, so production keeps serving.
            let settings = self.rollouts.settings(&model).await?;
            let rolls_out = decision.approval == Approval::Approved
                && production.is_some()
                && settings.policy != RolloutPolicy::Immediate;
            if rolls_out {
                decision.approval = Approval::PendingManualApproval;
                decision.reason = format!("{}; rolled out first ({})", decision.reason, settings.policy);
            }

            let mut entries = metrics_metadata(&metrics);
            entries.insert(metadata::SOURCE.into(), "training".into());
            entries.insert(metadata::TRAINING_JOB.into(), job_name.to_owned());
            if let Some(dataset) = job.hyperparameters.get("dataset") {
                entries.insert(metadata::DATASET.into(), dataset.clone());
            }
            if let Some(created) = job.created_at.and_then(|t| t.format(&Rfc3339).ok()) {
                entries.insert(metadata::TRAINED_AT.into(), created);
            }
            if let Some(tuning_job) = tuning_job {
                entries.insert(metadata::TUNING_JOB.into(), tuning_job.to_owned());
            }
            let primary = &metrics.primary_metric;
            let trained = ModelEvent {
                time: at,
                ..ModelEvent::new(
                    EventKind::Trained,
                    format!("job {job_name} finished: validation {} {:.4}", primary.name, primary.value),
                )
            }
            .details(json!({ "job_name": job_name, "tuning_job": tuning_job, "metrics": metrics }));
            self.catalog().append_event(model.as_str(), &trained, Some(&format!("trained {job_name}"))).await?;

            // Keyed by the job: the retry of a delivery that failed after this call gets the
            // version the first call created, with its decision.
            let version = self
                .registry
                .register(&model, &bundle_uri, decision.approval, &decision.reason, entries, Some(job_name))
                .await?;
            let reason = version.description.clone().unwrap_or(decision.reason);
            let registered = ModelEvent {
                // Just after "trained": one occurrence, so duplicates share the time, in order.
                time: at + time::Duration::microseconds(1),
                ..ModelEvent::new(
                    EventKind::Registered,
                    format!("version {} registered, {}: {reason}", version.version, approval_words(version.approval)),
                )
            }
            .version(version.version)
            .details(json!({ "job_name": job_name, "approval": version.approval.as_str(), "reason": reason,
                             "production_version": production }));
            self.catalog().append_event(model.as_str(), &registered, Some(&format!("registered {job_name}"))).await?;
            if rolls_out {
                match self.rollouts.start(&model, version.version, &settings, "gate", at).await {
                    Ok(_) => {}
                    // Another rollout is running: this version waits for a person.
                    Err(RolloutError::Conflict(why)) => {
                        tracing::warn!(%model, version = version.version, %why, "the gate's rollout did not start");
                    }
                    Err(RolloutError::Store(err)) => return Err(err.into()),
                    Err(err @ (RolloutError::NotFound(_) | RolloutError::Invalid(_))) => {
                        return Err(bundle_error(err.to_string()));
                    }
                }
            }
            self.registry.publish_production(&model).await?;
            tracing::info!(%model, job = job_name, version = version.version, approval = version.approval.as_str(), %reason, "registered");
            Ok(Outcome::Registered {
                model: model.to_string(),
                version: version.version,
                approval: version.approval,
                reason,
                primary_metric: primary.name.clone(),
                value: primary.value,
            })
        })
        .await
    }
}

fn approval_words(approval: Approval) -> &'static str {
    match approval {
        Approval::Approved => "approved",
        Approval::Rejected => "rejected",
        Approval::PendingManualApproval => "waiting for a person",
    }
}
