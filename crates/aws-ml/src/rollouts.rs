//! Rollouts on AWS: the rules of `sluice_model::rollout` applied to the registry and the
//! catalog. One rollout runs per model at a time; its record (`PRODUCTION` /
//! `ROLLOUT#<model>`, beside the production record) is what serving reads to route requests, and every change to it is a conditional write,
//! so duplicate starts make one rollout and concurrent enders (a person, the checker) end
//! it once. Ending writes the record first and then the registry: a retry of an ending that
//! failed half-way finds the record ended the same way and applies the approval again.
//!
//! The candidate waits as `PendingManualApproval` while it is rolled out, so the production
//! rule (the highest approved version) keeps serving production until it is promoted.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sluice_aws::settings::{SettingsError, Vars, parsed_or};
use sluice_aws::{Catalog, StoreError};
use sluice_core::ModelName;
use sluice_core::model_event::{EventKind, ModelEvent};
use sluice_model::registry::Approval;
use sluice_model::rollout::{Decision, Figures, Guards, Rollout, RolloutPolicy, RolloutStatus, VersionFigures, decide};
use time::OffsetDateTime;

use crate::{ModelRegistry, Operators};

/// How a model's candidates are rolled out: the stack's default (template parameters),
/// a model's own (`PUT /models/{model}/rollout-settings`), or a request's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSettings {
    pub policy: RolloutPolicy,
    #[serde(default)]
    pub guards: Guards,
}

impl RolloutSettings {
    pub fn validate(&self) -> Result<(), String> {
        self.policy.validate()?;
        self.guards.validate()
    }

    /// The stack's default: `ROLLOUT_MODE` (`immediate`, `shadow` or `canary`),
    /// `ROLLOUT_FRACTION` (of traffic, default 1) and `ROLLOUT_GUARDS` (JSON, the guards
    /// that differ from the defaults), from the template's parameters.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, SettingsError> {
        let fraction: f64 = parsed_or(vars, "ROLLOUT_FRACTION", 1.0)?;
        let mode: String = parsed_or(vars, "ROLLOUT_MODE", "immediate".to_owned())?;
        let policy = match mode.as_str() {
            "immediate" => RolloutPolicy::Immediate,
            "shadow" => RolloutPolicy::Shadow { fraction },
            "canary" => RolloutPolicy::Canary { fraction },
            _ => return Err(SettingsError::Invalid { name: "ROLLOUT_MODE", value: mode }),
        };
        policy
            .validate()
            .map_err(|_| SettingsError::Invalid { name: "ROLLOUT_FRACTION", value: fraction.to_string() })?;
        let guards_text = parsed_or(vars, "ROLLOUT_GUARDS", "{}".to_owned())?;
        let guards = serde_json::from_str::<Guards>(&guards_text)
            .ok()
            .filter(|guards| guards.validate().is_ok())
            .ok_or(SettingsError::Invalid { name: "ROLLOUT_GUARDS", value: guards_text })?;
        Ok(Self { policy, guards })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{0}")]
    NotFound(String),
    /// The model's state forbids it (a rollout running, the version rejected…).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a rollout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Promote,
    RollBack,
    Abort,
}

impl Ending {
    const ALL: [Self; 3] = [Self::Promote, Self::RollBack, Self::Abort];

    fn status(self) -> RolloutStatus {
        match self {
            Self::Promote => RolloutStatus::Promoted,
            Self::RollBack => RolloutStatus::RolledBack,
            Self::Abort => RolloutStatus::Aborted,
        }
    }

    /// The ending a rollout's status records; `None` while it runs.
    fn of(status: RolloutStatus) -> Option<Self> {
        Self::ALL.into_iter().find(|ending| ending.status() == status)
    }
}

pub struct Rollouts {
    registry: ModelRegistry,
    operators: Operators,
    defaults: RolloutSettings,
}

fn corrupt(model: &ModelName, err: serde_json::Error) -> StoreError {
    StoreError { service: "DynamoDB", operation: "GetItem", message: format!("rollout record of {model}: {err}") }
}

impl Rollouts {
    pub fn new(registry: ModelRegistry, operators: Operators, defaults: RolloutSettings) -> Self {
        Self { registry, operators, defaults }
    }

    fn catalog(&self) -> &Catalog {
        self.registry.catalog()
    }

    /// The model's own settings, or the stack's.
    pub async fn settings(&self, model: &ModelName) -> Result<RolloutSettings, StoreError> {
        match self.catalog().rollout_settings(model.as_str()).await? {
            Some(document) => serde_json::from_str(&document).map_err(|e| corrupt(model, e)),
            None => Ok(self.defaults.clone()),
        }
    }

    pub async fn set_settings(&self, model: &ModelName, settings: &RolloutSettings) -> Result<(), RolloutError> {
        settings.validate().map_err(RolloutError::Invalid)?;
        let document = serde_json::to_string(settings).expect("settings serialise");
        Ok(self.catalog().put_rollout_settings(model.as_str(), &document).await?)
    }

    /// The model's running or last rollout.
    pub async fn current(&self, model: &ModelName) -> Result<Option<Rollout>, StoreError> {
        let document = self.catalog().rollout_document(model.as_str()).await?;
        document.map(|d| serde_json::from_str(&d).map_err(|e| corrupt(model, e))).transpose()
    }

    /// Starts rolling `version` out against production with `settings`; `started_by` says
    /// who (`gate`, `api`). The same start repeated returns the rollout the first made. An
    /// `immediate` policy promotes at once.
    pub async fn start(
        &self,
        model: &ModelName,
        version: i64,
        settings: &RolloutSettings,
        started_by: &str,
        at: OffsetDateTime,
    ) -> Result<Rollout, RolloutError> {
        settings.validate().map_err(RolloutError::Invalid)?;
        let candidate = self
            .registry
            .version(model, version)
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("model {model} has no version {version}")))?;
        if candidate.approval == Approval::Rejected {
            return Err(RolloutError::Conflict(format!("version {version} is rejected")));
        }
        let current = self.current(model).await?;
        if let Some(unfinished) = current.clone().filter(|r| r.status != RolloutStatus::Running && !r.applied) {
            // The last ending failed half-way: finish it (it may move production) before
            // anything replaces it.
            self.finish_ending(model, unfinished).await?;
        }
        let production = self.catalog().production(model.as_str()).await?.ok_or_else(|| {
            RolloutError::Conflict(format!(
                "model {model} has no production version to roll out against: approve version {version} instead"
            ))
        })?;
        if let Some(running) = current.filter(|r| r.status == RolloutStatus::Running) {
            if running.candidate == version {
                // A repeated immediate start whose first call stopped after recording it.
                if running.policy == RolloutPolicy::Immediate {
                    let reason = "immediate policy".to_owned();
                    return self.end(model, Some(version), Ending::Promote, reason, None, at).await;
                }
                return Ok(running);
            }
            return Err(RolloutError::Conflict(format!(
                "a rollout of version {} is running: promote or abort it first",
                running.candidate
            )));
        }
        if version <= production.version {
            return Err(RolloutError::Conflict(format!(
                "version {version} is not newer than production (version {})",
                production.version
            )));
        }
        let bundle = candidate
            .bundle_uri
            .ok_or_else(|| RolloutError::Conflict(format!("version {version} has no bundle to serve")))?;
        let rollout = Rollout {
            candidate: version,
            bundle,
            production: production.version,
            policy: settings.policy,
            guards: settings.guards.clone(),
            started_at: at,
            started_by: started_by.to_owned(),
            status: RolloutStatus::Running,
            ended_at: None,
            reason: None,
            figures: None,
            applied: false,
        };
        let document = serde_json::to_string(&rollout).expect("rollouts serialise");
        if !self.catalog().start_rollout(model.as_str(), version, &document).await? {
            // A concurrent duplicate started it, or this version was rolled out before.
            return match self.current(model).await? {
                Some(current) if current.candidate == version && current.status == RolloutStatus::Running => {
                    Ok(current)
                }
                Some(current) => Err(RolloutError::Conflict(format!(
                    "version {} was rolled out after this one (status {:?})",
                    current.candidate, current.status
                ))),
                None => Err(RolloutError::Conflict("the rollout could not be recorded".into())),
            };
        }
        let event = ModelEvent {
            time: at,
            ..ModelEvent::new(
                EventKind::RolloutStarted,
                format!("rollout of version {version} against version {} started ({started_by})", production.version),
            )
        }
        .version(version)
        .details(
            json!({ "policy": rollout.policy, "guards": rollout.guards, "production_version": production.version }),
        );
        self.catalog().append_event(model.as_str(), &event, Some(&format!("rollout {version} started"))).await?;
        tracing::info!(%model, version, policy = ?rollout.policy, "rollout started");
        if rollout.policy == RolloutPolicy::Immediate {
            return self.end(model, Some(version), Ending::Promote, "immediate policy".into(), None, at).await;
        }
        Ok(rollout)
    }

    /// Ends the running rollout (of `candidate`, when given): the record first, then the
    /// candidate's approval (promote: approved, so it becomes production; roll back:
    /// rejected; abort: unchanged), the event log and the operators.
    pub async fn end(
        &self,
        model: &ModelName,
        candidate: Option<i64>,
        ending: Ending,
        reason: String,
        figures: Option<VersionFigures>,
        at: OffsetDateTime,
    ) -> Result<Rollout, RolloutError> {
        let current = self.current(model).await?.ok_or_else(|| no_rollout(model))?;
        if candidate.is_some_and(|c| c != current.candidate) {
            return Err(RolloutError::Conflict(format!("the rollout is of version {}", current.candidate)));
        }
        let ended = match current.status {
            RolloutStatus::Running => {
                let ended = Rollout {
                    status: ending.status(),
                    ended_at: Some(at),
                    reason: Some(reason),
                    figures: figures.or(current.figures.clone()),
                    ..current
                };
                let document = serde_json::to_string(&ended).expect("rollouts serialise");
                let (running, status) = (RolloutStatus::Running.as_str(), ended.status.as_str());
                if !self.catalog().update_rollout(model.as_str(), ended.candidate, running, status, &document).await? {
                    // Ended meanwhile by someone else: that ending stands.
                    return self.settled(model, ending).await;
                }
                ended
            }
            // The retry of an ending that failed half-way applies the rest again.
            status if status == ending.status() => current,
            status => return Err(RolloutError::Conflict(format!("the rollout already ended: {status:?}"))),
        };
        self.apply(model, ended, ending).await
    }

    /// Finishes an ending whose effects were not all done (its ender failed half-way).
    pub async fn finish_ending(&self, model: &ModelName, ended: Rollout) -> Result<Rollout, RolloutError> {
        match Ending::of(ended.status) {
            Some(ending) => self.apply(model, ended, ending).await,
            None => Ok(ended),
        }
    }

    async fn settled(&self, model: &ModelName, ending: Ending) -> Result<Rollout, RolloutError> {
        let current = self.current(model).await?.ok_or_else(|| no_rollout(model))?;
        if current.status == ending.status() {
            return self.apply(model, current, ending).await;
        }
        Err(RolloutError::Conflict(format!("the rollout already ended: {:?}", current.status)))
    }

    /// The registry, production, the event log and the operators after `ended`; then the
    /// record says it is done. Each step is safe to repeat.
    async fn apply(&self, model: &ModelName, ended: Rollout, ending: Ending) -> Result<Rollout, RolloutError> {
        if ended.applied {
            return Ok(ended);
        }
        let version = ended.candidate;
        let approval = match ending {
            Ending::Promote => Some(Approval::Approved),
            Ending::RollBack => Some(Approval::Rejected),
            Ending::Abort => None,
        };
        if let Some(approval) = approval {
            self.registry.set_approval(model, version, approval).await?;
            self.registry.publish_production(model).await?;
        }
        let reason = ended.reason.clone().unwrap_or_default();
        let (kind, message) = match ending {
            Ending::Promote => (EventKind::RolloutPromoted, format!("version {version} promoted: {reason}")),
            Ending::RollBack => {
                (EventKind::RolledBack, format!("version {version} rolled back and rejected: {reason}"))
            }
            Ending::Abort => (EventKind::RolloutAborted, format!("rollout of version {version} aborted: {reason}")),
        };
        let at = ended.ended_at.unwrap_or_else(OffsetDateTime::now_utc);
        let event = ModelEvent { time: at, ..ModelEvent::new(kind, message.clone()) }
            .version(version)
            .details(json!({ "production_version": ended.production, "reason": reason, "figures": ended.figures }));
        self.catalog().append_event(model.as_str(), &event, Some(&format!("rollout {version} ended"))).await?;
        if ending != Ending::Abort {
            let figures = serde_json::to_string_pretty(&ended.figures).expect("figures serialise");
            self.operators
                .notify(&format!("Sluice: {model} {message}"), &format!("{message}\n\nFigures:\n{figures}"))
                .await?;
        }
        let applied = Rollout { applied: true, ..ended };
        let document = serde_json::to_string(&applied).expect("rollouts serialise");
        let status = applied.status.as_str();
        self.catalog().update_rollout(model.as_str(), version, status, status, &document).await?;
        tracing::info!(%model, version, ?ending, %reason, "rollout ended");
        Ok(applied)
    }

    /// One check of a running rollout with its figures so far: promotes or rolls back when
    /// the rule says so, otherwise records the figures (for `GET …/rollouts`).
    pub async fn check(
        &self,
        model: &ModelName,
        rollout: &Rollout,
        (production, candidate): (Figures, Figures),
        now: OffsetDateTime,
    ) -> Result<Decision, RolloutError> {
        let elapsed = (now - rollout.started_at).whole_seconds().max(0) as u64;
        let decision = decide(&rollout.guards, &production, &candidate, elapsed);
        let figures = VersionFigures { production, candidate, checked_at: now };
        match &decision {
            Decision::Continue(why) => {
                let checked = Rollout { reason: Some(why.clone()), figures: Some(figures), ..rollout.clone() };
                let document = serde_json::to_string(&checked).expect("rollouts serialise");
                let running = RolloutStatus::Running.as_str();
                self.catalog().update_rollout(model.as_str(), rollout.candidate, running, running, &document).await?;
            }
            Decision::Promote(why) => {
                self.end(model, Some(rollout.candidate), Ending::Promote, why.clone(), Some(figures), now).await?;
            }
            Decision::RollBack(why) => {
                self.end(model, Some(rollout.candidate), Ending::RollBack, why.clone(), Some(figures), now).await?;
            }
        }
        Ok(decision)
    }
}

fn no_rollout(model: &ModelName) -> RolloutError {
    RolloutError::NotFound(format!("model {model} has no rollout"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_stacks_default_comes_from_the_template_parameters() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let defaults = RolloutSettings::from_vars(&vars(&[])).unwrap();
        assert_eq!(defaults, RolloutSettings { policy: RolloutPolicy::Immediate, guards: Guards::default() });
        let shadow = RolloutSettings::from_vars(&vars(&[
            ("ROLLOUT_MODE", "shadow"),
            ("ROLLOUT_FRACTION", "0.5"),
            ("ROLLOUT_GUARDS", r#"{"min_requests": 20}"#),
        ]))
        .unwrap();
        assert_eq!(shadow.policy, RolloutPolicy::Shadow { fraction: 0.5 });
        assert_eq!((shadow.guards.min_requests, shadow.guards.min_agreement), (20, 0.9));
        for bad in [
            vec![("ROLLOUT_MODE", "blue-green")],
            vec![("ROLLOUT_MODE", "canary"), ("ROLLOUT_FRACTION", "2")],
            vec![("ROLLOUT_GUARDS", r#"{"min_requets": 20}"#)],
        ] {
            assert!(RolloutSettings::from_vars(&vars(&bad)).is_err(), "{bad:?}");
        }
    }
}
