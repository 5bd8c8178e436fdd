//! `metrics.json` and `baseline.json`: what a version scored, and what its training data
//! looked like (schemas: `docs/model-bundle.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_profile::{ColumnProfile, Profile};

use crate::frame::{Column, Frame};

/// The name of the baseline's profile of the model's own predictions.
pub const PREDICTION_COLUMN: &str = "prediction";

/// A version's evaluation, written by the trainer and read by the register gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub primary_metric: PrimaryMetric,
    /// Metric name → value on the validation rows (finite values only).
    #[serde(default)]
    pub validation: BTreeMap<String, f64>,
    #[serde(default)]
    pub train: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_max_abs_difference: Option<f64>,
    /// The production version at training time, scored on this version's validation rows:
    /// the gate compares the two on the same data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<ProductionScore>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryMetric {
    pub name: String,
    pub value: f64,
    #[serde(default = "higher_is_better_by_default")]
    pub higher_is_better: bool,
}

fn higher_is_better_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    pub train: u64,
    pub validation: u64,
    pub without_target: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingRun {
    pub epochs: u64,
    pub converged: bool,
    pub final_loss: f64,
}

/// How the production version did on the candidate's validation rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductionScore {
    /// Its version number in the model registry.
    pub version: i64,
    /// Its metrics, named as the candidate's; empty when it could not be scored.
    #[serde(default)]
    pub validation: BTreeMap<String, f64>,
    /// Why it could not be scored (say, the data lost a column it needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Metric values as a map, leaving out the undefined ones (NaN has no JSON form).
pub fn finite_metrics(values: impl IntoIterator<Item = (String, f64)>) -> BTreeMap<String, f64> {
    values.into_iter().filter(|(_, value)| value.is_finite()).collect()
}

/// The training data's profile (features, target and other columns) and of the model's own
/// predictions on its validation rows: what monitoring measures live traffic against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    #[serde(flatten)]
    pub data: Profile,
    /// Predicted labels (classification) or values (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<ColumnProfile>,
}

impl Baseline {
    /// The profile of a frame as monitoring sees rows: numbers, categories, and vectors
    /// (images) as their mean intensity, in a column named by [`vector_profile_name`].
    pub fn profile(frame: &Frame) -> Profile {
        let columns = frame
            .columns
            .iter()
            .map(|(name, column)| match column {
                Column::Numeric(values) => {
                    let present: Vec<f64> = values.iter().flatten().copied().collect();
                    ColumnProfile::numeric(name, "numeric", &present, (values.len() - present.len()) as u64)
                }
                Column::Categorical(values) => {
                    let mut frequencies = BTreeMap::new();
                    for value in values.iter().flatten() {
                        *frequencies.entry(value.clone()).or_insert(0) += 1;
                    }
                    let nulls = values.iter().filter(|v| v.is_none()).count() as u64;
                    ColumnProfile::categorical(name, "string", frequencies, 0, nulls)
                }
                Column::Vector(values) => {
                    let means: Vec<f64> = values.iter().flatten().map(|v| mean_intensity(v)).collect();
                    let nulls = (values.len() - means.len()) as u64;
                    ColumnProfile::numeric(&vector_profile_name(name), "float", &means, nulls)
                }
            })
            .collect();
        Profile { rows: frame.rows() as u64, columns }
    }
}

/// Vectors (image pixels) are profiled as one number per row, their mean: a histogram per
/// pixel would dwarf the data, and a shift in brightness is the drift images usually show.
pub fn mean_intensity(vector: &[f32]) -> f64 {
    vector.iter().map(|&x| f64::from(x)).sum::<f64>() / vector.len().max(1) as f64
}

pub fn vector_profile_name(column: &str) -> String {
    format!("{column}:mean_intensity")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_written_before_the_gate_existed_still_read() {
        let old = r#"{"primary_metric": {"name": "accuracy", "value": 0.9}, "validation": {"accuracy": 0.9},
                      "train": {"accuracy": 1.0}, "rows": {"train": 8, "validation": 2, "without_target": 0},
                      "training": {"epochs": 3, "converged": true, "final_loss": 0.1}, "onnx_max_abs_difference": 0.0}"#;
        let metrics: Metrics = serde_json::from_str(old).unwrap();
        assert!(metrics.primary_metric.higher_is_better);
        assert_eq!(metrics.production, None);
    }

    #[test]
    fn baselines_are_profiles_with_an_optional_prediction_profile() {
        let profile = Profile { rows: 2, columns: vec![ColumnProfile::numeric("x", "float", &[1.0, 2.0], 0)] };
        let old = serde_json::to_string(&profile).unwrap();
        let baseline: Baseline = serde_json::from_str(&old).unwrap();
        assert_eq!(baseline.data, profile);
        assert_eq!(baseline.predictions, None);
        let with_predictions = Baseline { predictions: Some(profile.columns[0].clone()), ..baseline };
        let text = serde_json::to_string(&with_predictions).unwrap();
        assert_eq!(serde_json::from_str::<Baseline>(&text).unwrap(), with_predictions);
    }

    #[test]
    fn undefined_metrics_are_left_out() {
        let map = finite_metrics([("auc".to_owned(), f64::NAN), ("accuracy".to_owned(), 0.5)]);
        assert_eq!(map.keys().collect::<Vec<_>>(), ["accuracy"]);
    }
}
