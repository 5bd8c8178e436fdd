//! A model's timeline: every model-level step appended to one log per model in the catalog
//! (trained, registered with the gate's reason, promoted, drift, alarm, retraining started
//! or skipped). `GET /models/{model}/events` serves it (schema: `docs/api.md`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A training or tuning job was started (by a request, the schedule or remediation).
    TrainingStarted,
    /// A job finished and wrote a bundle.
    Trained,
    /// A job failed; the message is the trainer's reason.
    TrainingFailed,
    /// A version entered the registry, with the gate's decision and reason.
    Registered,
    /// A person approved or rejected a version.
    Decided,
    /// Another version became production.
    Promoted,
    /// No version is production any more.
    Withdrawn,
    /// Monitoring found drift (the drifting features are in the details).
    DriftDetected,
    /// An alarm on the model went into ALARM.
    Alarm,
    RetrainingStarted,
    RetrainingSkipped,
    /// A rollout of a candidate version began (its policy and guards in the details).
    RolloutStarted,
    /// Every guard was green: the candidate became production.
    RolloutPromoted,
    /// A guard was red: the candidate was rejected (the figures in the details).
    RolledBack,
    /// A person ended a rollout; the candidate keeps its state.
    RolloutAborted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub kind: EventKind,
    /// The version the event is about, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// One sentence for people.
    pub message: String,
    /// Figures for scripts and the dashboard (job names, metrics, drifting features…).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

impl ModelEvent {
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        Self { time: OffsetDateTime::now_utc(), kind, version: None, message: message.into(), details: Value::Null }
    }

    pub fn version(mut self, version: i64) -> Self {
        self.version = Some(version);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}
