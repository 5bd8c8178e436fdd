//! `manifest.json` in the model bundle: everything needed to serve and to judge a model
//! besides the ONNX graph itself (schema: `docs/model-bundle.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pipeline::FeaturePipeline;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Regression,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub model_name: String,
    pub model_version: String,
    pub task: Task,
    pub algorithm: String,
    /// The column the model predicts.
    pub target: String,
    /// The ONNX graph's input (`features`, float32 `[rows, pipeline width]`) and outputs.
    pub onnx_input: String,
    pub onnx_outputs: Vec<String>,
    /// Class labels in output order (classification).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_labels: Vec<String>,
    pub pipeline: FeaturePipeline,
    /// Where the training data came from (channel files).
    pub training_data: Vec<String>,
    pub hyperparameters: BTreeMap<String, String>,
    pub seed: u64,
    /// Versions of what produced the bundle.
    pub library_versions: BTreeMap<String, String>,
}

pub const MANIFEST_FORMAT_VERSION: u32 = 1;
