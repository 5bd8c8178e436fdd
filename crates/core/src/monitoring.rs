//! What watches a production model: the CloudWatch metrics `monitor` and `predict` publish
//! for it, the alarms on them, and what remediation does when each alarm fires. Written
//! once here so the function that creates the alarms and the one that answers them agree
//! (names and defaults: `docs/monitoring.md`).

/// Dimension every per-model metric carries.
pub const MODEL_DIMENSION: &str = "Model";

/// 1 when the latest monitoring window found drift in a feature or in the predictions.
pub const DRIFT_DETECTED: &str = "DriftDetected";
/// The largest Jensen–Shannon distance among drifting features (0 when none drifts).
pub const DRIFT_SCORE: &str = "DriftScore";
pub const DRIFTING_FEATURES: &str = "DriftingFeatures";
/// Predictions compared in the window.
pub const MONITORED_PREDICTIONS: &str = "MonitoredPredictions";
/// Classification: live accuracy from feedback, and how far below the validation accuracy.
pub const LIVE_ACCURACY: &str = "LiveAccuracy";
pub const ACCURACY_DROP: &str = "AccuracyDrop";
/// Regression: live RMSE from feedback, and its relative increase over the validation RMSE.
pub const LIVE_RMSE: &str = "LiveRmse";
pub const RMSE_INCREASE: &str = "RmseIncrease";
/// Per request: 1 when the service failed it (not the caller), else 0; the average is the
/// error rate.
pub const SERVER_ERRORS: &str = "ServerErrors";

/// Per prediction request, dimensions `Function`, `Model`, `Version`: 1 per request, and the
/// milliseconds the model took.
pub const REQUESTS: &str = "Requests";
pub const INFERENCE_LATENCY: &str = "InferenceLatency";
/// The dimension naming the version that answered.
pub const VERSION_DIMENSION: &str = "Version";

/// The longest look back at a model's serving metrics, in hours (two weeks: CloudWatch
/// keeps 1-minute data for 15 days).
pub const MAX_METRICS_HOURS: usize = 336;

/// The resolution of a look back of `hours` at the serving metrics: at most a few hundred
/// points, never finer than a minute.
pub fn metrics_period_seconds(hours: usize) -> i32 {
    match hours {
        0..=3 => 60,
        4..=24 => 300,
        _ => 3600,
    }
}

/// Every metric here grows worse upwards.
pub const COMPARISON: &str = "GreaterThanOrEqualToThreshold";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Average,
    Maximum,
}

impl Statistic {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Average => "Average",
            Self::Maximum => "Maximum",
        }
    }
}

/// What remediation does when an alarm goes into ALARM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Retrain on newer data: the world or the model's quality moved.
    Retrain,
    /// Tell the operators: retraining does not fix a failing service.
    Notify,
}

/// One alarm on one model's metric.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    /// `<prefix><model>-<kind>`.
    pub name: String,
    pub description: String,
    pub metric: &'static str,
    pub statistic: Statistic,
    pub period_seconds: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    /// Compared with [`COMPARISON`].
    pub threshold: f64,
    /// CloudWatch's `TreatMissingData`.
    pub treat_missing_data: &'static str,
    pub response: Response,
}

/// Thresholds of the alarms (template parameters in AWS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmThresholds {
    /// Seconds between monitoring runs: drift and quality are published once a run.
    pub monitor_period_seconds: i32,
    /// Accuracy points below validation (classification) …
    pub accuracy_drop: f64,
    /// … or relative RMSE increase (regression) that counts as degraded.
    pub rmse_increase: f64,
    /// Share of requests the service fails.
    pub error_rate: f64,
}

impl Default for AlarmThresholds {
    fn default() -> Self {
        Self { monitor_period_seconds: 900, accuracy_drop: 0.1, rmse_increase: 0.5, error_rate: 0.05 }
    }
}

/// The model's task decides which quality metric it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityMetric {
    Accuracy,
    Rmse,
}

/// The alarms covering one production model. Drift and quality come from one monitoring
/// run per period and hold their state when a run has too little data to say anything
/// (missing data is ignored); the error rate is judged over three 5-minute periods, two
/// of which must breach, and silence (no traffic) is fine.
pub fn alarms(prefix: &str, model: &str, quality: QualityMetric, thresholds: &AlarmThresholds) -> Vec<AlarmSpec> {
    let monitored = |kind: &str, metric, threshold, description: String| AlarmSpec {
        name: format!("{prefix}{model}-{kind}"),
        description,
        metric,
        statistic: Statistic::Maximum,
        period_seconds: thresholds.monitor_period_seconds,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        threshold,
        treat_missing_data: "ignore",
        response: Response::Retrain,
    };
    let quality = match quality {
        QualityMetric::Accuracy => monitored(
            "quality",
            ACCURACY_DROP,
            thresholds.accuracy_drop,
            format!(
                "Sluice: live accuracy of {model} is {} or more below its validation accuracy",
                thresholds.accuracy_drop
            ),
        ),
        QualityMetric::Rmse => monitored(
            "quality",
            RMSE_INCREASE,
            thresholds.rmse_increase,
            format!(
                "Sluice: live RMSE of {model} is {:.0}% or more above its validation RMSE",
                thresholds.rmse_increase * 100.0
            ),
        ),
    };
    vec![
        monitored("drift", DRIFT_DETECTED, 1.0, format!("Sluice: the inputs or predictions of {model} drifted")),
        quality,
        AlarmSpec {
            name: format!("{prefix}{model}-errors"),
            description: format!("Sluice: {model} fails {:.0}% or more of its requests", thresholds.error_rate * 100.0),
            metric: SERVER_ERRORS,
            statistic: Statistic::Average,
            period_seconds: 300,
            evaluation_periods: 3,
            datapoints_to_alarm: 2,
            threshold: thresholds.error_rate,
            treat_missing_data: "notBreaching",
            response: Response::Notify,
        },
    ]
}

/// What to do about an alarm on `metric` (from its notification's trigger).
pub fn response_to(metric: &str) -> Response {
    match metric {
        DRIFT_DETECTED | ACCURACY_DROP | RMSE_INCREASE => Response::Retrain,
        _ => Response::Notify,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longer_look_backs_at_serving_metrics_have_coarser_points() {
        assert_eq!(metrics_period_seconds(1), 60);
        assert_eq!(metrics_period_seconds(3), 60);
        assert_eq!(metrics_period_seconds(24), 300);
        assert_eq!(metrics_period_seconds(MAX_METRICS_HOURS), 3600);
        for hours in 1..=MAX_METRICS_HOURS {
            assert!(hours * 3600 / metrics_period_seconds(hours) as usize <= MAX_METRICS_HOURS, "{hours} h");
        }
    }

    #[test]
    fn every_model_gets_drift_quality_and_error_alarms() {
        let specs = alarms("prod-", "iris", QualityMetric::Accuracy, &AlarmThresholds::default());
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["prod-iris-drift", "prod-iris-quality", "prod-iris-errors"]);
        assert_eq!(specs[1].metric, ACCURACY_DROP);
        let regression = alarms("prod-", "price", QualityMetric::Rmse, &AlarmThresholds::default());
        assert_eq!(regression[1].metric, RMSE_INCREASE);
    }

    #[test]
    fn drift_and_quality_retrain_errors_only_notify() {
        for spec in alarms("p-", "m", QualityMetric::Rmse, &AlarmThresholds::default()) {
            assert_eq!(response_to(spec.metric), spec.response, "{}", spec.name);
        }
        assert_eq!(response_to("CPUUtilization"), Response::Notify);
    }
}
