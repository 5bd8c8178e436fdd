//! The `remediate` function: CloudWatch alarm → SNS → here. Each notification is read as
//! CloudWatch's standard alarm JSON and decided by `sluice_core::remediation::decide`:
//! only a transition into ALARM of a model's drift or quality alarm retrains, and only
//! when curated data newer than the production version's training arrived; an error-rate
//! alarm tells the operators.
//!
//! **Exactly one retraining per drift episode**: SNS delivers at least once and alarms
//! flap, so the model's remediation episode is opened with a conditional write; of any
//! number of concurrent notifications one wins, and the episode then holds for the
//! cooldown (`RETRAIN_COOLDOWN_HOURS`), or, when it waits for data, until newer data
//! arrives. Retraining is the production version's own training request, started through
//! the same code path as `POST /models/{model}/train`, on the recent data window.
//!
//! CloudWatch notifies only when an alarm changes state, so an alarm this function does not
//! act on (it waits for data, or an episode holds) is set back to OK: while the breach
//! lasts it fires again a period later and is decided afresh.
//!
//! A malformed message is an error: Lambda retries it twice and then hands it to the
//! function's dead-letter queue; it never loops.

use aws_lambda_events::sns::SnsEvent;
use serde::Serialize;
use serde_json::{Value, json};
use sluice_aws::settings::{SettingsError, Vars, parsed_or, required};
use sluice_aws::{AwsClients, Catalog, EpisodeState, ProductionRecord, StoreError};
use sluice_aws_ml::{Operators, TrainError, TrainingService, TrainingSettings, Trigger};
use sluice_core::model_event::{EventKind, ModelEvent};
use sluice_core::remediation::{AlarmNotification, DataState, Decision, decide};
use sluice_core::{IngestStatus, ModelName};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// How long a handler may hold an episode it opened before a retry may take it over.
const EPISODE_LEASE: Duration = Duration::minutes(5);
/// How long an operators' notification about one alarm transition is remembered.
const NOTICE_RETENTION: Duration = Duration::days(7);

#[derive(Debug, thiserror::Error)]
pub enum RemediateFailure {
    #[error("message {message_id} is not a CloudWatch alarm notification: {reason}")]
    Malformed { message_id: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("retraining {model} could not start: {reason}")]
    Training { model: String, reason: String },
}

/// What one notification led to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ignored {
        reason: String,
    },
    /// Another delivery of this notification (or of this episode) is handled already.
    Duplicate {
        model: String,
    },
    Notified {
        model: String,
    },
    WaitingForData {
        model: String,
        reason: String,
    },
    RetrainingStarted {
        model: String,
        job: String,
    },
}

pub struct Remediate {
    catalog: Catalog,
    alarms: aws_sdk_cloudwatch::Client,
    training: TrainingService,
    operators: Operators,
    cooldown: Duration,
    /// Retraining uses the data of the last so many days; 0: only what arrived after the
    /// production version was trained.
    window_days: i64,
}

impl Remediate {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        let catalog = Catalog::new(clients.dynamodb.clone(), required(vars, "CATALOG_TABLE")?);
        Ok(Self {
            training: TrainingService::new(clients, catalog.clone(), TrainingSettings::from_vars(vars)?),
            catalog,
            alarms: aws_sdk_cloudwatch::Client::new(&clients.config),
            operators: Operators::new(clients, required(vars, "OPERATORS_TOPIC_ARN")?),
            cooldown: Duration::hours(parsed_or(vars, "RETRAIN_COOLDOWN_HOURS", 24)?),
            window_days: parsed_or(vars, "RETRAIN_WINDOW_DAYS", 30)?,
        })
    }

    pub async fn handle(&self, event: SnsEvent) -> Result<Vec<Outcome>, RemediateFailure> {
        let mut outcomes = Vec::new();
        for record in &event.records {
            let message_id = record.sns.message_id.clone();
            let notification: AlarmNotification = serde_json::from_str(&record.sns.message).map_err(|err| {
                tracing::error!(%message_id, error = %err, "not a CloudWatch alarm notification");
                RemediateFailure::Malformed { message_id: message_id.clone(), reason: err.to_string() }
            })?;
            let outcome = self.remediate(&notification, OffsetDateTime::now_utc()).await?;
            tracing::info!(alarm = %notification.alarm_name, ?outcome, "notification handled");
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn remediate(
        &self,
        notification: &AlarmNotification,
        now: OffsetDateTime,
    ) -> Result<Outcome, RemediateFailure> {
        let Some(model) = notification.model().and_then(|m| ModelName::parse(m).ok()) else {
            return Ok(Outcome::Ignored {
                reason: format!("alarm {} watches no Sluice model", notification.alarm_name),
            });
        };
        let production = self.catalog.production(model.as_str()).await?;
        let data = match &production {
            Some(production) => Some(self.data_state(production).await?),
            None => None,
        };
        let decision = decide(notification, data);
        if let Decision::Ignore(reason) = decision {
            return Ok(Outcome::Ignored { reason });
        }
        let outcome = match (decision, production, data) {
            (Decision::Retrain, Some(production), Some(data)) => {
                self.episode(&model, notification, &production, data, now, Ok(())).await?
            }
            (Decision::WaitForData(reason), Some(production), Some(data)) => {
                self.episode(&model, notification, &production, data, now, Err(reason)).await?
            }
            (_, production, _) => {
                let what = if production.is_some() { "the service fails requests" } else { "no production version" };
                return self.notify_once(&model, notification, now, what).await;
            }
        };
        if matches!(outcome, Outcome::WaitingForData { .. } | Outcome::Duplicate { .. }) {
            self.rearm(notification, &outcome).await;
        }
        Ok(outcome)
    }

    /// Logs a transition into ALARM that this delivery acts on (duplicates are not logged).
    async fn log_alarm(&self, model: &ModelName, notification: &AlarmNotification) -> Result<(), StoreError> {
        let alarm = ModelEvent {
            time: occurrence_time(notification),
            ..ModelEvent::new(
                EventKind::Alarm,
                format!("alarm {} is in ALARM: {}", notification.alarm_name, notification.new_state_reason),
            )
        }
        .details(json!({ "alarm": notification.alarm_name, "metric": notification.trigger.metric_name,
                         "reason": notification.new_state_reason }));
        self.catalog.append_event(model.as_str(), &alarm, Some(&notification.occurrence())).await
    }

    /// Sets an alarm that was not acted on back to OK. CloudWatch notifies only on
    /// transitions: an alarm left in ALARM while the drift lasts would never call again, so
    /// data that arrives later, or the end of the cooldown, would go unnoticed. Re-armed, it
    /// fires again at its next breaching period and remediation decides afresh.
    async fn rearm(&self, notification: &AlarmNotification, outcome: &Outcome) {
        let reason = match outcome {
            Outcome::WaitingForData { .. } => {
                "Sluice remediation: waiting for new data; re-armed so a lasting breach calls again"
            }
            _ => "Sluice remediation: an episode is in hand; re-armed so a lasting breach calls again after it",
        };
        let set = self
            .alarms
            .set_alarm_state()
            .alarm_name(&notification.alarm_name)
            .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
            .state_reason(reason)
            .send()
            .await;
        if let Err(err) = set {
            tracing::warn!(alarm = %notification.alarm_name, error = %sluice_aws::error_chain(err), "alarm not re-armed");
        }
    }

    /// When production was trained and the newest curated data of its dataset.
    async fn data_state(&self, production: &ProductionRecord) -> Result<DataState, StoreError> {
        let latest_data = match &production.dataset {
            None => None,
            Some(dataset) => self
                .catalog
                .ingests(dataset)
                .await?
                .into_iter()
                .filter(|entry| entry.status == IngestStatus::Processed)
                .filter_map(|entry| entry.processing.filter(|p| p.rows_out.unwrap_or_default() > 0))
                .map(|processing| processing.processed_at)
                .max(),
        };
        Ok(DataState { trained_at: production.trained_at, latest_data })
    }

    /// Opens the model's episode and either retrains or waits for data; duplicates of the
    /// notification, and later alarms while the episode holds, find it open and do nothing.
    async fn episode(
        &self,
        model: &ModelName,
        notification: &AlarmNotification,
        production: &ProductionRecord,
        data: DataState,
        now: OffsetDateTime,
        retrain: Result<(), String>,
    ) -> Result<Outcome, RemediateFailure> {
        if !self.catalog.open_episode(model.as_str(), now, EPISODE_LEASE, data.latest_data).await? {
            return Ok(Outcome::Duplicate { model: model.to_string() });
        }
        if let Err(err) = self.log_alarm(model, notification).await {
            let _ = self.catalog.abandon_episode(model.as_str()).await;
            return Err(err.into());
        }
        let started = match retrain {
            Ok(()) => self.retrain(model, production, notification).await,
            Err(reason) => Err(NotRetrained::Skip(reason)),
        };
        let started = match started {
            Ok(job) => Ok(job),
            Err(NotRetrained::Skip(reason)) => Err(reason),
            Err(NotRetrained::Fail(err)) => {
                // Let Lambda's retry of this notification open the episode again at once.
                if let Err(abandon) = self.catalog.abandon_episode(model.as_str()).await {
                    tracing::error!(%model, error = %abandon, "could not abandon the episode");
                }
                return Err(err);
            }
        };
        let (state, outcome, event, subject) = match started {
            Ok(job) => (
                EpisodeState::Retraining,
                Outcome::RetrainingStarted { model: model.to_string(), job: job.clone() },
                ModelEvent::new(
                    EventKind::RetrainingStarted,
                    format!("retraining {job} started after alarm {}", notification.alarm_name),
                )
                .details(json!({ "job_name": job, "alarm": notification.alarm_name })),
                format!("Sluice: retraining {model} ({})", notification.alarm_name),
            ),
            Err(reason) => (
                EpisodeState::WaitingForData,
                Outcome::WaitingForData { model: model.to_string(), reason: reason.clone() },
                ModelEvent::new(EventKind::RetrainingSkipped, format!("no retraining: {reason}"))
                    .details(json!({ "alarm": notification.alarm_name, "reason": reason })),
                format!("Sluice: {model} needs new data ({})", notification.alarm_name),
            ),
        };
        self.catalog
            .settle_episode(model.as_str(), state, now + self.cooldown, data.latest_data, &event.details)
            .await?;
        self.catalog.append_event(model.as_str(), &event.version(production.version), None).await?;
        let drift = self.catalog.drift_summaries(model.as_str(), None, 1).await?.into_iter().next();
        let message = operators_message(notification, Some(production), &outcome, drift.as_ref());
        self.operators.notify(&subject, &message).await?;
        Ok(outcome)
    }

    /// Starts the production version's own training request again, on the recent data. The
    /// job is named after the alarm's state change, so the retry of a delivery that failed
    /// after starting it finds it instead of starting a second one.
    async fn retrain(
        &self,
        model: &ModelName,
        production: &ProductionRecord,
        notification: &AlarmNotification,
    ) -> Result<String, NotRetrained> {
        let now = occurrence_time(notification);
        let skip = |reason: String| NotRetrained::Skip(reason);
        let job = production
            .training_job
            .as_deref()
            .ok_or_else(|| skip("the production version was imported; retrain it where it was trained".into()))?;
        let record = self
            .catalog
            .training_job(model.as_str(), job)
            .await
            .map_err(|e| NotRetrained::Fail(e.into()))?
            .ok_or_else(|| skip(format!("the request that trained production ({job}) is not recorded")))?;
        let mut request = match serde_json::from_str::<Value>(&record.request) {
            Ok(Value::Object(request)) => request,
            _ => return Err(skip(format!("the recorded request of {job} is not a JSON object"))),
        };
        request.remove("retrain_every_days");
        let since =
            if self.window_days > 0 { Some(now - Duration::days(self.window_days)) } else { production.trained_at };
        if let Some(since) = since {
            request.insert("data_since".into(), since.format(&Rfc3339).expect("UTC times format").into());
        }
        let body = Value::Object(request).to_string();
        match self.training.start(model, &body, now, Trigger::Remediation, Some(&notification.occurrence())).await {
            Ok(started) => Ok(started.job_name),
            Err(TrainError::Store(err)) => Err(NotRetrained::Fail(err.into())),
            Err(invalid) => Err(skip(invalid.to_string())),
        }
    }

    /// Tells the operators about an alarm transition once, however often it is delivered.
    async fn notify_once(
        &self,
        model: &ModelName,
        notification: &AlarmNotification,
        now: OffsetDateTime,
        what: &str,
    ) -> Result<Outcome, RemediateFailure> {
        let claim = format!("NOTICE#{}", notification.occurrence());
        if !self.catalog.claim_once(model.as_str(), &claim, now, EPISODE_LEASE).await? {
            return Ok(Outcome::Duplicate { model: model.to_string() });
        }
        if let Err(err) = self.log_alarm(model, notification).await {
            let _ = self.catalog.release_claim(model.as_str(), &claim).await;
            return Err(err.into());
        }
        let outcome = Outcome::Notified { model: model.to_string() };
        let message = operators_message(notification, None, &outcome, None);
        let subject = format!("Sluice: {} is in ALARM ({what})", notification.alarm_name);
        if let Err(err) = self.operators.notify(&subject, &message).await {
            let _ = self.catalog.release_claim(model.as_str(), &claim).await;
            return Err(err.into());
        }
        self.catalog.complete_claim(model.as_str(), &claim, now + NOTICE_RETENTION).await?;
        Ok(outcome)
    }
}

/// Why no job was started: decided (tell the operators) or a failure (retry).
enum NotRetrained {
    Skip(String),
    Fail(RemediateFailure),
}

/// When the alarm changed state (CloudWatch writes `2026-11-22T10:16:03.207+0000`): the
/// same in every delivery of one notification, so what it names (log entries, the job) is
/// the same too. Now, if the time does not parse.
fn occurrence_time(notification: &AlarmNotification) -> OffsetDateTime {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    OffsetDateTime::parse(&notification.state_change_time, &format)
        .or_else(|_| OffsetDateTime::parse(&notification.state_change_time, &Rfc3339))
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

/// What the operators read: the alarm, what was done and why, and where the data drifted.
fn operators_message(
    notification: &AlarmNotification,
    production: Option<&ProductionRecord>,
    outcome: &Outcome,
    drift: Option<&Value>,
) -> String {
    let mut lines = vec![
        format!("Alarm {} went from {} to ALARM.", notification.alarm_name, notification.old_state_value),
        format!("Reason: {}", notification.new_state_reason),
    ];
    if let Some(production) = production {
        lines.push(format!("Model {} version {} is production.", production.model, production.version));
    }
    lines.push(match outcome {
        Outcome::RetrainingStarted { job, .. } => {
            format!("Retraining started: job {job}; the register gate decides whether it replaces production.")
        }
        Outcome::WaitingForData { reason, .. } => {
            format!(
                "No retraining: {reason}. Ingest fresh labelled data; remediation retries when the alarm fires again."
            )
        }
        Outcome::Notified { .. } => "Retraining would not fix this; look at the function's errors and logs.".into(),
        Outcome::Ignored { reason } => format!("Nothing done: {reason}."),
        Outcome::Duplicate { .. } => "Already handled.".into(),
    });
    if let Some(drift) = drift {
        lines.push(format!(
            "Latest monitoring window ({} to {}): {} over {} predictions.",
            drift["window_start"].as_str().unwrap_or("?"),
            drift["window_end"].as_str().unwrap_or("?"),
            drift["verdict"].as_str().unwrap_or("?"),
            drift["predictions"]
        ));
        for feature in drift["top_features"].as_array().into_iter().flatten().filter(|f| f["verdict"] == "drift") {
            lines.push(format!(
                "  {}: {} statistic {}, p {}, distance {} (threshold {}), n = {}",
                feature["feature"].as_str().unwrap_or("?"),
                feature["test"].as_str().unwrap_or("?"),
                number(&feature["statistic"]),
                number(&feature["p_value"]),
                number(&feature["distance"]),
                number(&feature["threshold"]),
                feature["n"]
            ));
        }
    }
    lines.join("\n")
}

fn number(value: &Value) -> String {
    value.as_f64().map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}
