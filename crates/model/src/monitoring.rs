//! One monitoring window of one production version: the captured predictions and feedback
//! of that version, folded into bounded-memory counts on its baseline's buckets, then
//! judged by the drift rule (`sluice_profile::drift`) and by live quality. Pure: `monitor`
//! reads the capture and publishes; everything decided about the data is decided here.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::capture::CaptureRecord;
use sluice_core::values::numeric_text;
use sluice_profile::drift::{DriftPolicy, FeatureDrift, LiveColumn, Verdict, compare, report};

use crate::manifest::{Manifest, Task};
use crate::metrics::{Baseline, Metrics, mean_intensity, vector_profile_name};
use crate::pipeline::FeatureStep;

/// Feedback needed before live quality is judged (fewer rows say little about accuracy).
pub const MIN_FEEDBACK: u64 = 30;
/// Predictions whose feedback a window tells apart: ground truth sent again for one
/// prediction replaces the earlier one instead of counting twice. Past this many (a few
/// megabytes), new predictions' feedback is left out.
const MAX_FEEDBACK_TRACKED: usize = 100_000;

/// A model's own monitoring settings, given in its training request (`"monitoring"`);
/// what it leaves out comes from the stack's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringOverrides {
    pub min_samples: Option<u64>,
    pub alpha: Option<f64>,
    pub distance_threshold: Option<f64>,
}

impl MonitoringOverrides {
    /// `defaults` with these overrides, or why they are out of range.
    pub fn apply(&self, defaults: DriftPolicy) -> Result<DriftPolicy, String> {
        let policy = DriftPolicy {
            min_samples: self.min_samples.unwrap_or(defaults.min_samples),
            alpha: self.alpha.unwrap_or(defaults.alpha),
            distance_threshold: self.distance_threshold.unwrap_or(defaults.distance_threshold),
            ..defaults
        };
        if policy.min_samples == 0 {
            return Err("monitoring.min_samples must be at least 1".into());
        }
        // Written so that NaN fails too.
        if !(policy.alpha > 0.0 && policy.alpha < 1.0) {
            return Err("monitoring.alpha must be between 0 and 1".into());
        }
        if !(policy.distance_threshold > 0.0 && policy.distance_threshold <= 1.0) {
            return Err("monitoring.distance_threshold must be in (0, 1]".into());
        }
        Ok(policy)
    }
}

/// How a feature's captured value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Number,
    Category,
    /// A vector (image pixels), compared as its mean intensity.
    Vector,
}

struct Feature {
    column: String,
    reading: Reading,
    live: LiveColumn,
}

/// Live quality from the feedback that arrived in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// `accuracy` (classification) or `rmse` (regression).
    pub metric: String,
    pub feedback: u64,
    pub live: Option<f64>,
    /// The same metric on the version's validation rows.
    pub validation: Option<f64>,
    /// Accuracy points lost, or the relative RMSE increase; `None` below [`MIN_FEEDBACK`]
    /// (whether it is too much is the quality alarm's threshold).
    pub degradation: Option<f64>,
}

/// What one window says about one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub verdict: Verdict,
    pub predictions: u64,
    /// Every feature, drifting ones first, then by distance.
    pub features: Vec<FeatureDrift>,
    pub drifting: Vec<String>,
    /// The model's own output distribution against its validation predictions.
    pub prediction: Option<FeatureDrift>,
    pub quality: Quality,
}

impl WindowReport {
    /// The largest distance among drifting features (the prediction included).
    pub fn drift_score(&self) -> f64 {
        self.features
            .iter()
            .chain(&self.prediction)
            .filter(|f| f.verdict == Verdict::Drift)
            .filter_map(|f| f.distance)
            .fold(0.0, f64::max)
    }
}

/// Counts of one version's window, built record by record.
pub struct ModelWindow {
    version: i64,
    task: Task,
    features: Vec<Feature>,
    prediction: Option<LiveColumn>,
    predictions: u64,
    /// Per prediction id, the latest feedback's score: 1 or 0 when classifying (right or
    /// wrong), the squared error when regressing.
    feedback: HashMap<String, f64>,
    validation_metric: Option<f64>,
}

impl ModelWindow {
    /// A window for `version`, compared against its baseline. Features are the pipeline's
    /// input columns that the baseline profiled; a feature without a baseline column
    /// cannot be compared and is left out.
    pub fn new(version: i64, manifest: &Manifest, baseline: &Baseline, metrics: Option<&Metrics>) -> Self {
        let features = manifest
            .pipeline
            .steps
            .iter()
            .filter_map(|step| {
                let (column, reading, profiled) = match step {
                    FeatureStep::Standardize { column, .. } => (column, Reading::Number, column.clone()),
                    FeatureStep::OneHot { column, .. } => (column, Reading::Category, column.clone()),
                    FeatureStep::Vector { column, .. } => (column, Reading::Vector, vector_profile_name(column)),
                };
                let profile = baseline.data.column(&profiled)?;
                Some(Feature { column: column.clone(), reading, live: LiveColumn::for_baseline(profile) })
            })
            .collect();
        let metric = quality_metric(manifest.task);
        Self {
            version,
            task: manifest.task,
            features,
            prediction: baseline.predictions.as_ref().map(LiveColumn::for_baseline),
            predictions: 0,
            feedback: HashMap::new(),
            validation_metric: metrics.and_then(|m| m.validation.get(metric).copied()),
        }
    }

    /// Counts a capture line if it is about this version.
    pub fn add(&mut self, record: &CaptureRecord) {
        match record {
            CaptureRecord::Prediction(prediction) if prediction.version == self.version => {
                self.predictions += 1;
                for feature in &mut self.features {
                    let value = &prediction.input[feature.column.as_str()];
                    add_value(&mut feature.live, feature.reading, value);
                }
                if let Some(live) = &mut self.prediction {
                    let reading = match self.task {
                        Task::Classification => Reading::Category,
                        Task::Regression => Reading::Number,
                    };
                    add_value(live, reading, &prediction.output["prediction"]);
                }
            }
            CaptureRecord::Feedback(feedback) if feedback.version == self.version => {
                let predicted = feedback.output.as_ref().map_or(&Value::Null, |o| &o["prediction"]);
                let score = match self.task {
                    Task::Classification => label(&feedback.truth)
                        .zip(label(predicted))
                        .map(|(truth, predicted)| f64::from(u8::from(truth == predicted))),
                    Task::Regression => feedback
                        .truth
                        .as_f64()
                        .zip(predicted.as_f64())
                        .map(|(truth, predicted)| (truth - predicted).powi(2)),
                };
                let known = self.feedback.contains_key(&feedback.prediction_id);
                if let Some(score) = score
                    && (known || self.feedback.len() < MAX_FEEDBACK_TRACKED)
                {
                    self.feedback.insert(feedback.prediction_id.clone(), score);
                }
            }
            _ => {}
        }
    }

    pub fn predictions(&self) -> u64 {
        self.predictions
    }

    /// Judges the window: each feature and the predictions by the drift rule, quality by
    /// the feedback. Below the policy's minimum of predictions nothing is claimed.
    pub fn report(&self, policy: &DriftPolicy) -> WindowReport {
        let tested = self.features.len().max(1);
        let drift = report(self.features.iter().map(|f| compare(&f.live, policy, tested)).collect());
        let prediction = self.prediction.as_ref().map(|live| compare(live, policy, 1));
        let prediction_drifts = prediction.as_ref().is_some_and(|p| p.verdict == Verdict::Drift);
        let verdict = if self.predictions < policy.min_samples {
            Verdict::InsufficientData
        } else if drift.verdict == Verdict::Drift || prediction_drifts {
            Verdict::Drift
        } else {
            Verdict::NoDrift
        };
        WindowReport {
            verdict,
            predictions: self.predictions,
            features: drift.features,
            drifting: drift.drifting,
            prediction,
            quality: self.quality(),
        }
    }

    fn quality(&self) -> Quality {
        let metric = quality_metric(self.task);
        let count = self.feedback.len() as u64;
        let mean = self.feedback.values().sum::<f64>() / count.max(1) as f64;
        let live = (count > 0).then(|| match self.task {
            Task::Classification => mean,
            Task::Regression => mean.sqrt(),
        });
        let enough = count >= MIN_FEEDBACK;
        let degradation = match (live.filter(|_| enough), self.validation_metric) {
            (Some(live), Some(validation)) => Some(match self.task {
                Task::Classification => validation - live,
                Task::Regression if validation > 0.0 => live / validation - 1.0,
                Task::Regression => 0.0,
            }),
            _ => None,
        };
        Quality { metric: metric.to_owned(), feedback: count, live, validation: self.validation_metric, degradation }
    }
}

fn quality_metric(task: Task) -> &'static str {
    match task {
        Task::Classification => "accuracy",
        Task::Regression => "rmse",
    }
}

/// A JSON value as serving reads it for the feature's kind: numbers (booleans as 0/1, texts
/// as `numeric_text` reads them) for numeric features, strings for categorical ones, arrays of numbers for vectors. A value
/// of another kind reaches the live column as one it counts as unexpected (NaN for a
/// number, a number for a category).
fn add_value(live: &mut LiveColumn, reading: Reading, value: &Value) {
    const WRONG: f64 = f64::NAN;
    match (reading, value) {
        (Reading::Category, Value::Null) => live.add_category(None),
        (Reading::Category, Value::String(text)) => live.add_category(Some(text)),
        (Reading::Category, _) => live.add_number(Some(0.0)),
        (_, Value::Null) => live.add_number(None),
        (Reading::Number, Value::Number(n)) => live.add_number(n.as_f64()),
        (Reading::Number, Value::Bool(b)) => live.add_number(Some(f64::from(u8::from(*b)))),
        // Text as serving reads it: a CSV cell "5.1" is the number 5.1.
        (Reading::Number, Value::String(text)) => live.add_number(numeric_text(text).unwrap_or(Some(WRONG))),
        (Reading::Vector, Value::Array(items)) => {
            let pixels: Option<Vec<f32>> = items.iter().map(|i| i.as_f64().map(|v| v as f32)).collect();
            live.add_number(Some(pixels.map_or(WRONG, |p| mean_intensity(&p))));
        }
        _ => live.add_number(Some(WRONG)),
    }
}

/// A class label as text: numbers as the trainer names classes (no needless `.0`).
pub(crate) fn label(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => {
            let v = n.as_f64()?;
            Some(if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { v.to_string() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use sluice_core::capture::{CapturedFeedback, CapturedPrediction};
    use sluice_profile::{ColumnProfile, Profile};
    use time::OffsetDateTime;

    use super::*;
    use crate::manifest::MANIFEST_FORMAT_VERSION;
    use crate::metrics::{PREDICTION_COLUMN, PrimaryMetric};
    use crate::pipeline::FeaturePipeline;

    fn manifest() -> Manifest {
        Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            model_name: "flowers".into(),
            model_version: "job".into(),
            task: Task::Classification,
            algorithm: "linear".into(),
            target: "kind".into(),
            onnx_input: "features".into(),
            onnx_outputs: vec!["probabilities".into()],
            class_labels: vec!["rose".into(), "tulip".into()],
            pipeline: FeaturePipeline {
                steps: vec![
                    FeatureStep::Standardize { column: "petal".into(), mean: 0.0, std: 1.0 },
                    FeatureStep::OneHot { column: "colour".into(), categories: vec!["red".into(), "blue".into()] },
                ],
                null_numbers: Default::default(),
            },
            training_data: vec![],
            hyperparameters: BTreeMap::new(),
            seed: 1,
            library_versions: BTreeMap::new(),
        }
    }

    /// petal evenly over [0, 10), colour red or blue, predictions half rose half tulip.
    fn baseline() -> Baseline {
        let petals: Vec<f64> = (0..1000).map(|i| f64::from(i % 100) / 10.0).collect();
        let colours = BTreeMap::from([("red".to_owned(), 500), ("blue".to_owned(), 500)]);
        let labels = BTreeMap::from([("rose".to_owned(), 100), ("tulip".to_owned(), 100)]);
        Baseline {
            data: Profile {
                rows: 1000,
                columns: vec![
                    ColumnProfile::numeric("petal", "float", &petals, 0),
                    ColumnProfile::categorical("colour", "string", colours, 0, 0),
                ],
            },
            predictions: Some(ColumnProfile::categorical(PREDICTION_COLUMN, "string", labels, 0, 0)),
        }
    }

    fn metrics() -> Metrics {
        Metrics {
            primary_metric: PrimaryMetric { name: "accuracy".into(), value: 0.9, higher_is_better: true },
            validation: BTreeMap::from([("accuracy".into(), 0.9)]),
            train: BTreeMap::new(),
            rows: None,
            training: None,
            onnx_max_abs_difference: None,
            production: None,
        }
    }

    fn prediction(version: i64, petal: f64, colour: &str, label: &str) -> CaptureRecord {
        CaptureRecord::Prediction(CapturedPrediction {
            prediction_id: "p".into(),
            time: OffsetDateTime::UNIX_EPOCH,
            model: "flowers".into(),
            version,
            input: json!({"petal": petal, "colour": colour}),
            output: json!({"prediction": label}),
            latency_ms: 1.0,
            rollout: None,
        })
    }

    fn feedback(id: u64, truth: &str, predicted: &str) -> CaptureRecord {
        CaptureRecord::Feedback(CapturedFeedback {
            prediction_id: format!("p-{id}"),
            time: OffsetDateTime::UNIX_EPOCH,
            model: "flowers".into(),
            version: 3,
            truth: json!(truth),
            output: Some(json!({"prediction": predicted})),
        })
    }

    fn window() -> ModelWindow {
        ModelWindow::new(3, &manifest(), &baseline(), Some(&metrics()))
    }

    #[test]
    fn traffic_like_the_baseline_is_no_drift() {
        let mut window = window();
        for i in 0..500 {
            let label = if i % 2 == 0 { "rose" } else { "tulip" };
            window.add(&prediction(3, f64::from(i % 100) / 10.0, if i % 2 == 0 { "red" } else { "blue" }, label));
        }
        let report = window.report(&DriftPolicy::default());
        assert_eq!(report.verdict, Verdict::NoDrift, "{report:#?}");
        assert_eq!(report.predictions, 500);
    }

    /// Predictions sent as CSV text (`"5.1"`) are monitored as the numbers serving read.
    #[test]
    fn numbers_sent_as_text_are_numbers() {
        let mut window = window();
        for i in 0..500 {
            let label = if i % 2 == 0 { "rose" } else { "tulip" };
            let CaptureRecord::Prediction(mut record) =
                prediction(3, 0.0, if i % 2 == 0 { "red" } else { "blue" }, label)
            else {
                unreachable!()
            };
            record.input["petal"] = json!(format!("{}", f64::from(i % 100) / 10.0));
            window.add(&CaptureRecord::Prediction(record));
        }
        let report = window.report(&DriftPolicy::default());
        assert_eq!(report.verdict, Verdict::NoDrift, "{report:#?}");
        let petal = report.features.iter().find(|f| f.name == "petal").unwrap();
        assert_eq!(petal.unexpected_values, 0, "{petal:#?}");
    }

    #[test]
    fn a_shifted_feature_is_named_first() {
        let mut window = window();
        for i in 0..500 {
            let label = if i % 2 == 0 { "rose" } else { "tulip" };
            window.add(&prediction(
                3,
                20.0 + f64::from(i % 100) / 10.0,
                if i % 2 == 0 { "red" } else { "blue" },
                label,
            ));
        }
        let report = window.report(&DriftPolicy::default());
        assert_eq!(report.verdict, Verdict::Drift);
        assert_eq!(report.drifting, ["petal"]);
        assert_eq!(report.features[0].name, "petal");
        assert!(report.drift_score() > 0.5, "{}", report.drift_score());
    }

    #[test]
    fn other_versions_and_too_few_rows_claim_nothing() {
        let mut window = window();
        for i in 0..50 {
            window.add(&prediction(3, 99.0 + f64::from(i), "green", "rose"));
            window.add(&prediction(2, 1.0, "red", "rose"));
        }
        let report = window.report(&DriftPolicy::default());
        assert_eq!(report.predictions, 50, "version 2's rows are not version 3's");
        assert_eq!(report.verdict, Verdict::InsufficientData);
        assert_eq!(report.drift_score(), 0.0);
    }

    #[test]
    fn live_accuracy_needs_enough_feedback() {
        let mut window = window();
        for i in 0..(MIN_FEEDBACK - 1) {
            window.add(&feedback(i, "rose", if i % 2 == 0 { "rose" } else { "tulip" }));
        }
        assert_eq!(window.report(&DriftPolicy::default()).quality.degradation, None);
        window.add(&feedback(MIN_FEEDBACK, "rose", "tulip"));
        let quality = window.report(&DriftPolicy::default()).quality;
        assert_eq!(quality.feedback, MIN_FEEDBACK);
        let live = quality.live.unwrap();
        assert!((live - 0.5).abs() < 0.02, "{live}");
        assert!((quality.degradation.unwrap() - (0.9 - live)).abs() < 1e-12);
    }

    #[test]
    fn feedback_sent_again_replaces_the_earlier_instead_of_counting_twice() {
        let mut window = window();
        for _ in 0..100 {
            window.add(&feedback(1, "rose", "tulip"));
        }
        assert_eq!(window.report(&DriftPolicy::default()).quality.feedback, 1);
    }

    #[test]
    fn monitoring_overrides_are_checked() {
        let defaults = DriftPolicy::default();
        let policy = MonitoringOverrides { min_samples: Some(20), ..Default::default() }.apply(defaults).unwrap();
        assert_eq!((policy.min_samples, policy.alpha), (20, defaults.alpha));
        for bad in [
            MonitoringOverrides { min_samples: Some(0), ..Default::default() },
            MonitoringOverrides { alpha: Some(1.5), ..Default::default() },
            MonitoringOverrides { distance_threshold: Some(f64::NAN), ..Default::default() },
        ] {
            assert!(bad.apply(defaults).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numeric_labels_match_however_they_are_spelled() {
        assert_eq!(label(&json!(7)), label(&json!("7")));
        assert_eq!(label(&json!(7.0)), Some("7".into()));
        assert_eq!(label(&json!(null)), None);
    }
}
