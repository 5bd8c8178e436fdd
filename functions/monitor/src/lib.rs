//! The `monitor` function, run on a schedule (`MonitorSchedule`): for every model with a
//! production version, the prediction capture delivered since the model's watermark is
//! compared with the production bundle's baseline (`sluice_model::monitoring`: per-feature
//! and prediction drift by the sample-size-aware rule of `sluice_profile::drift`, and live
//! quality from feedback). Each window gets a drift report in S3 and a summary in the
//! catalog; when it has enough data, its metrics go to CloudWatch, the watermark moves on
//! and drift is logged in the model's event log. Then the alarms are reconciled with the
//! production models.
//!
//! The same pass checks every running rollout (`sluice_aws_ml::rollouts`): the capture
//! since the rollout started is tallied per version (`sluice_model::rollout::Tally`) and
//! the rollout rule promotes, rolls back or waits. A rollout whose production moved
//! underneath it (a person rejected production) is aborted: its figures compare the
//! candidate with a version that no longer serves.
//!
//! A window with too few predictions publishes nothing that could trip an alarm and keeps
//! its start, so the next run sees more data (up to `MONITOR_MAX_WINDOW_HOURS`). A repeated
//! run (the same scheduled event delivered twice) computes the same window from the event's
//! time, writes the same report, and only the run that moves the watermark logs the drift.

mod capture;
mod cloudwatch;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sluice_aws::settings::{SettingsError, Vars, function_memory_bytes, parsed_or, required};
use sluice_aws::{AwsClients, Catalog, MonitorState, ProductionRecord, StoreError};
use sluice_aws_ml::{Ending, ModelRegistry, Operators, RolloutError, RolloutSettings, Rollouts};
use sluice_core::ModelName;
use sluice_core::metrics::{Metric, Unit, publish};
use sluice_core::model_event::{EventKind, ModelEvent};
use sluice_core::monitoring::{
    ACCURACY_DROP, AlarmSpec, AlarmThresholds, DRIFT_DETECTED, DRIFT_SCORE, DRIFTING_FEATURES, LIVE_ACCURACY,
    LIVE_RMSE, MODEL_DIMENSION, MONITORED_PREDICTIONS, QualityMetric, RMSE_INCREASE, VERSION_DIMENSION, alarms,
};
use sluice_model::monitoring::{ModelWindow, MonitoringOverrides, WindowReport};
use sluice_model::rollout::{Decision, Rollout, RolloutStatus, Tally};
use sluice_model::{Bundle, BundleLimits, Contents, Task};
use sluice_profile::drift::{DriftPolicy, FeatureDrift, Verdict};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

pub use capture::{CAPTURE_PREFIX, hour_prefixes};
pub use cloudwatch::AlarmChanges;

/// Features a summary names (the full report has them all).
const SUMMARY_FEATURES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum MonitorFailure {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Capture delivered in the last `settle` is left to the next run (S3 lists an object a
    /// moment after it is written).
    pub settle: Duration,
    /// The longest window: older capture is not looked at.
    pub max_window: Duration,
    pub policy: DriftPolicy,
    pub thresholds: AlarmThresholds,
    pub reports_bucket: String,
    /// Reports live as long as the capture bucket keeps objects; their summaries as long.
    pub report_retention: Duration,
}

/// What a production version is judged by, read from its bundle once per container.
struct Judged {
    manifest: sluice_model::Manifest,
    baseline: Option<sluice_model::Baseline>,
    metrics: Option<sluice_model::Metrics>,
}

pub struct Monitor {
    catalog: Catalog,
    s3: aws_sdk_s3::Client,
    cloudwatch: cloudwatch::CloudWatch,
    capture_bucket: String,
    settings: MonitorSettings,
    limits: BundleLimits,
    bundles: Mutex<HashMap<String, Arc<Judged>>>,
    rollouts: Rollouts,
    metrics_namespace: String,
}

/// One running rollout in this run: its tally of the capture since it started.
struct Checking {
    model: ModelName,
    rollout: Rollout,
    tally: Tally,
}

/// One model's window in this run.
struct Pending {
    production: ProductionRecord,
    state: Option<MonitorState>,
    start: OffsetDateTime,
    policy: DriftPolicy,
    window: ModelWindow,
    judged: Arc<Judged>,
    unreadable: u64,
}

impl Monitor {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        let period_minutes: i32 = parsed_or(vars, "MONITOR_PERIOD_MINUTES", 15)?;
        let defaults = DriftPolicy::default();
        let capture_bucket = required(vars, "CAPTURE_BUCKET")?;
        let catalog = Catalog::new(clients.dynamodb.clone(), required(vars, "CATALOG_TABLE")?);
        let registry = ModelRegistry::new(
            clients,
            catalog.clone(),
            &parsed_or(vars, "MODEL_GROUP_PREFIX", "sluice-".to_owned())?,
            &required(vars, "TRAINER_IMAGE")?,
        );
        Ok(Self {
            rollouts: Rollouts::new(
                registry,
                Operators::new(clients, required(vars, "OPERATORS_TOPIC_ARN")?),
                RolloutSettings::from_vars(vars)?,
            ),
            metrics_namespace: required(vars, "METRICS_NAMESPACE")?,
            catalog,
            s3: clients.s3.clone(),
            cloudwatch: cloudwatch::CloudWatch::new(
                clients,
                required(vars, "METRICS_NAMESPACE")?,
                required(vars, "ALARM_NAME_PREFIX")?,
                required(vars, "ALARM_TOPIC_ARN")?,
            ),
            settings: MonitorSettings {
                settle: Duration::seconds(parsed_or(vars, "CAPTURE_SETTLE_SECONDS", 60)?),
                max_window: Duration::hours(parsed_or(vars, "MONITOR_MAX_WINDOW_HOURS", 24)?),
                policy: DriftPolicy {
                    min_samples: parsed_or(vars, "DRIFT_MIN_SAMPLES", defaults.min_samples)?,
                    distance_threshold: parsed_or(vars, "DRIFT_DISTANCE_THRESHOLD", defaults.distance_threshold)?,
                    ..defaults
                },
                thresholds: AlarmThresholds {
                    monitor_period_seconds: period_minutes * 60,
                    accuracy_drop: parsed_or(vars, "ACCURACY_DROP_THRESHOLD", 0.1)?,
                    rmse_increase: parsed_or(vars, "RMSE_INCREASE_THRESHOLD", 0.5)?,
                    error_rate: parsed_or(vars, "ERROR_RATE_THRESHOLD", 0.05)?,
                },
                reports_bucket: capture_bucket.clone(),
                report_retention: Duration::days(parsed_or(vars, "CAPTURE_RETENTION_DAYS", 90)?),
            },
            capture_bucket,
            limits: BundleLimits::for_memory(function_memory_bytes(vars)?),
            bundles: Mutex::new(HashMap::new()),
        })
    }

    /// One scheduled run. Its time is the event's, so a repeated delivery looks at the
    /// same window.
    pub async fn handle(&self, event: &Value) -> Result<Value, MonitorFailure> {
        let now = sluice_aws::event_time(event);
        let end = window_end(now, self.settings.settle);
        let productions = self.catalog.productions().await?;
        let (mut pending, mut failures) = (Vec::new(), Vec::new());
        for production in &productions {
            match self.prepare(production, now, end).await {
                Ok(Some(model)) => pending.push(model),
                Ok(None) => {}
                Err(err) => failures.push(format!("{}: {err}", production.model)),
            }
        }
        let mut checking = Vec::new();
        for production in &productions {
            match self.running_rollout(production, now).await {
                Ok(Some(check)) => checking.push(check),
                Ok(None) => {}
                Err(err) => failures.push(format!("{} rollout: {err}", production.model)),
            }
        }
        let objects = self.read_window(&mut pending, &mut checking, end).await?;
        let mut results = Vec::new();
        for model in pending {
            let name = model.production.model.clone();
            match self.finish(model, end, now).await {
                Ok(result) => results.push(result),
                Err(err) => failures.push(format!("{name}: {err}")),
            }
        }
        let mut rollouts = Vec::new();
        for check in checking {
            let name = check.model.clone();
            match self.check_rollout(check, now).await {
                Ok(result) => rollouts.push(result),
                Err(err) => failures.push(format!("{name} rollout: {err}")),
            }
        }
        let alarms = self.reconcile_alarms(&productions).await?;
        // One model that cannot be monitored (its bundle unreadable, say) must not stop the
        // others, nor make every run a failure to retry: it is logged, listed and counted.
        for failure in &failures {
            tracing::error!(%failure, "model not monitored");
        }
        tracing::info!(models = results.len(), failed = failures.len(), objects, "monitoring run done");
        Ok(json!({ "window_end": time_text(end), "capture_objects": objects, "models": results, "rollouts": rollouts,
                   "failed": failures,
                   "alarms": { "put": alarms.put, "deleted": alarms.deleted } }))
    }

    /// The model's window for this run, or `None` when there is nothing new to look at.
    async fn prepare(
        &self,
        production: &ProductionRecord,
        now: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        let state = self.catalog.monitor_state(&production.model).await?;
        // A new production version is watched from when it became production (a minute
        // earlier: object times have whole seconds, and other versions' lines are skipped).
        let start = match &state {
            Some(state) if state.version == production.version => state.watermark,
            _ => production.since - Duration::minutes(1),
        }
        .max(now - self.settings.max_window);
        if end <= start {
            return Ok(None);
        }
        let judged = self.judged(&production.bundle_uri).await?;
        let Some(baseline) = &judged.baseline else {
            tracing::warn!(model = %production.model, version = production.version, "the version has no baseline.json; drift cannot be measured");
            return Ok(None);
        };
        let window = ModelWindow::new(production.version, &judged.manifest, baseline, judged.metrics.as_ref());
        Ok(Some(Pending {
            policy: self.policy(production).await?,
            production: production.clone(),
            state,
            start,
            window,
            judged: Arc::clone(&judged),
            unreadable: 0,
        }))
    }

    /// The drift policy of a model: the stack's, with the overrides its production
    /// version's training request gave.
    async fn policy(&self, production: &ProductionRecord) -> Result<DriftPolicy, StoreError> {
        let Some(job) = &production.training_job else { return Ok(self.settings.policy) };
        let Some(record) = self.catalog.training_job(&production.model, job).await? else {
            return Ok(self.settings.policy);
        };
        let overrides = serde_json::from_str::<Value>(&record.request)
            .ok()
            .and_then(|request| serde_json::from_value::<MonitoringOverrides>(request["monitoring"].clone()).ok())
            .unwrap_or_default();
        Ok(overrides.apply(self.settings.policy).unwrap_or(self.settings.policy))
    }

    async fn judged(&self, bundle_uri: &str) -> Result<Arc<Judged>, StoreError> {
        if let Some(judged) = self.bundles.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(bundle_uri) {
            return Ok(Arc::clone(judged));
        }
        let bytes = sluice_aws::read_s3_uri(&self.s3, bundle_uri, self.limits.inflated_bytes).await?;
        let bundle = Bundle::from_tar_gz(&bytes, self.limits, Contents::WithoutModel).map_err(|e| StoreError {
            service: "S3",
            operation: "read bundle",
            message: format!("{bundle_uri}: {e}"),
        })?;
        let judged = Arc::new(Judged { manifest: bundle.manifest, baseline: bundle.baseline, metrics: bundle.metrics });
        self.bundles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(bundle_uri.to_owned(), Arc::clone(&judged));
        Ok(judged)
    }

    /// The model's running rollout, ready to tally; a rollout against a version that is no
    /// longer production is aborted here.
    async fn running_rollout(
        &self,
        production: &ProductionRecord,
        now: OffsetDateTime,
    ) -> Result<Option<Checking>, RolloutError> {
        let model = ModelName::parse(&production.model)
            .map_err(|e| RolloutError::Invalid(format!("production record of {:?}: {e}", production.model)))?;
        let Some(rollout) = self.rollouts.current(&model).await? else { return Ok(None) };
        if rollout.status != RolloutStatus::Running {
            // An ending whose ender failed half-way is finished here, not left silent.
            if !rollout.applied {
                self.rollouts.finish_ending(&model, rollout).await?;
            }
            return Ok(None);
        }
        if rollout.production != production.version {
            let reason = format!(
                "production changed from version {} to version {} during the rollout",
                rollout.production, production.version
            );
            self.rollouts.end(&model, Some(rollout.candidate), Ending::Abort, reason, None, now).await?;
            return Ok(None);
        }
        let task = self.judged(&production.bundle_uri).await?.manifest.task;
        Ok(Some(Checking { tally: Tally::new(&rollout, task), rollout, model }))
    }

    /// Tallies are complete: the rollout rule decides, and the candidate's agreement goes
    /// to CloudWatch (EMF, dimension `Version`).
    async fn check_rollout(&self, check: Checking, now: OffsetDateTime) -> Result<Value, RolloutError> {
        let figures = check.tally.figures();
        let candidate = &figures.1;
        if candidate.compared > 0 {
            let version = check.rollout.candidate.to_string();
            publish(
                &self.metrics_namespace,
                &[("Function", "monitor"), (MODEL_DIMENSION, check.model.as_str()), (VERSION_DIMENSION, &version)],
                &[Metric { name: "RolloutAgreement".into(), unit: Unit::None, value: candidate.agreement() }],
            );
        }
        let decision = self.rollouts.check(&check.model, &check.rollout, figures, now).await?;
        let (outcome, reason) = match decision {
            Decision::Continue(why) => ("continue", why),
            Decision::Promote(why) => ("promote", why),
            Decision::RollBack(why) => ("roll_back", why),
        };
        Ok(json!({ "model": check.model, "candidate": check.rollout.candidate, "decision": outcome, "reason": reason }))
    }

    /// Reads every capture object delivered in any model's window or rollout once, handing
    /// each line to the windows and tallies it belongs to. Returns how many objects were
    /// read.
    async fn read_window(
        &self,
        pending: &mut [Pending],
        checking: &mut [Checking],
        end: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let starts = pending.iter().map(|p| p.start).chain(checking.iter().map(rollout_reading_start));
        let Some(from) = starts.min() else { return Ok(0) };
        let objects = capture::delivered(&self.s3, &self.capture_bucket, from, end).await?;
        for object in &objects {
            let mut interested: Vec<&mut Pending> =
                pending.iter_mut().filter(|p| object.delivered > p.start && object.delivered <= end).collect();
            let mut tallies: Vec<&mut Checking> = checking
                .iter_mut()
                .filter(|c| object.delivered > rollout_reading_start(c) && object.delivered <= end)
                .collect();
            if interested.is_empty() && tallies.is_empty() {
                continue;
            }
            let lines = capture::read(&self.s3, &self.capture_bucket, object, |record| {
                for model in interested.iter_mut().filter(|p| p.production.model == record.model()) {
                    model.window.add(record);
                }
                for check in tallies.iter_mut().filter(|c| c.model.as_str() == record.model()) {
                    check.tally.add(record);
                }
            })
            .await?;
            for model in &mut interested {
                model.unreadable += lines.unreadable;
            }
        }
        Ok(objects.len())
    }

    /// Reports a model's window, and when it had enough data publishes its metrics, moves
    /// its watermark and logs drift.
    async fn finish(&self, model: Pending, end: OffsetDateTime, now: OffsetDateTime) -> Result<Value, StoreError> {
        let name = &model.production.model;
        let report = model.window.report(&model.policy);
        let key = format!("reports/{name}/{}.json", time_text(end));
        let full = json!({
            "model": name,
            "version": model.production.version,
            "window": { "start": time_text(model.start), "end": time_text(end) },
            "generated_at": time_text(now),
            "policy": model.policy,
            "unreadable_lines": model.unreadable,
            "report": report,
        });
        self.s3
            .put_object()
            .bucket(&self.settings.reports_bucket)
            .key(&key)
            .content_type("application/json")
            .body(serde_json::to_vec_pretty(&full).expect("reports serialise").into())
            .send()
            .await
            .map_err(|e| StoreError::new("S3", "PutObject", e))?;
        let summary = summary(&model, &report, end, format!("s3://{}/{key}", self.settings.reports_bucket));
        self.catalog.put_drift_summary(name, end, &summary, end + self.settings.report_retention).await?;

        if report.verdict == Verdict::InsufficientData {
            // Nothing an alarm reads is published, and the window keeps its start: the next
            // run sees these rows and more.
            return Ok(summary);
        }
        // Only the run that moves the watermark owns the window: it alone publishes and logs,
        // so a repeated or overlapping run never reports a window twice.
        let next = MonitorState { watermark: end, version: model.production.version };
        if !self.catalog.advance_monitor(name, model.state.as_ref(), &next).await? {
            return Ok(summary);
        }
        self.cloudwatch.publish(name, end, &self.metrics(&report, model.judged.manifest.task)).await?;
        if report.verdict == Verdict::Drift {
            let event = ModelEvent {
                time: end,
                ..ModelEvent::new(
                    EventKind::DriftDetected,
                    format!("drift in {} over {} predictions", drift_names(&report).join(", "), report.predictions),
                )
            }
            .version(model.production.version)
            .details(summary.clone());
            self.catalog.append_event(name, &event, Some(&format!("drift {}", time_text(end)))).await?;
        }
        Ok(summary)
    }

    /// The metrics of a window with enough predictions; quality only with enough feedback.
    fn metrics(&self, report: &WindowReport, task: Task) -> Vec<(&'static str, f64)> {
        let mut metrics = vec![
            (DRIFT_DETECTED, f64::from(u8::from(report.verdict == Verdict::Drift))),
            (DRIFT_SCORE, report.drift_score()),
            (DRIFTING_FEATURES, report.drifting.len() as f64),
            (MONITORED_PREDICTIONS, report.predictions as f64),
        ];
        if let (Some(live), Some(degradation)) = (report.quality.live, report.quality.degradation) {
            match task {
                Task::Classification => metrics.extend([(LIVE_ACCURACY, live), (ACCURACY_DROP, degradation)]),
                Task::Regression => metrics.extend([(LIVE_RMSE, live), (RMSE_INCREASE, degradation)]),
            }
        }
        metrics
    }

    async fn reconcile_alarms(&self, productions: &[ProductionRecord]) -> Result<AlarmChanges, StoreError> {
        let mut wanted: BTreeMap<String, Vec<AlarmSpec>> = BTreeMap::new();
        for production in productions {
            // A model whose bundle cannot be read keeps its alarms until it can.
            let Ok(judged) = self.judged(&production.bundle_uri).await else { continue };
            let quality = match judged.manifest.task {
                Task::Classification => QualityMetric::Accuracy,
                Task::Regression => QualityMetric::Rmse,
            };
            let specs = alarms(self.cloudwatch.alarm_prefix(), &production.model, quality, &self.settings.thresholds);
            wanted.insert(production.model.clone(), specs);
        }
        let keep: Vec<String> = productions.iter().map(|p| p.model.clone()).collect();
        self.cloudwatch.reconcile(&wanted, &keep).await
    }
}

/// Capture objects a rollout's tally reads: delivered from a minute before it started
/// (object times have whole seconds; the tally skips older lines itself).
fn rollout_reading_start(check: &Checking) -> OffsetDateTime {
    check.rollout.started_at - Duration::minutes(1)
}

/// The end of this run's window: S3 gives objects whole-second times, so the window ends at
/// the last whole second that is over, and an object written later always falls after it.
fn window_end(now: OffsetDateTime, settle: Duration) -> OffsetDateTime {
    let settled = now - settle;
    settled.replace_nanosecond(0).unwrap_or(settled) - Duration::seconds(1)
}

fn time_text(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("UTC times format as RFC 3339")
}

fn drift_names(report: &WindowReport) -> Vec<String> {
    let mut names = report.drifting.clone();
    if report.prediction.as_ref().is_some_and(|p| p.verdict == Verdict::Drift) {
        names.push("the predictions".into());
    }
    names
}

/// A feature's figures as the summary, the event log and the operators see them.
fn condensed(feature: &FeatureDrift) -> Value {
    json!({
        "feature": feature.name,
        "verdict": feature.verdict,
        "test": feature.test,
        "statistic": feature.statistic,
        "p_value": feature.p_value,
        "alpha": feature.alpha,
        "distance": feature.distance,
        "threshold": feature.distance_threshold,
        "n": feature.n,
        "reason": feature.reason,
    })
}

/// The catalog's record of a window: the verdict, the top features, quality, and where the
/// full report is.
fn summary(model: &Pending, report: &WindowReport, end: OffsetDateTime, report_uri: String) -> Value {
    json!({
        "model": model.production.model,
        "version": model.production.version,
        "window_start": time_text(model.start),
        "window_end": time_text(end),
        "verdict": report.verdict,
        "predictions": report.predictions,
        "drifting": report.drifting,
        "drift_score": report.drift_score(),
        "top_features": report.features.iter().take(SUMMARY_FEATURES).map(condensed).collect::<Vec<_>>(),
        "prediction": report.prediction.as_ref().map(condensed),
        "quality": report.quality,
        "report": report_uri,
    })
}
