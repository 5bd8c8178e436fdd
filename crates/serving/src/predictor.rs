//! Rows in, predictions out: request rows are checked against the manifest's pipeline
//! (every feature column present, no unknown ones, the right kind of value), transformed
//! by the pipeline and run through the ONNX graph.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use sluice_core::values::{NotNumeric, numeric_text};
use sluice_model::pipeline::FeatureStep;
use sluice_model::{Bundle, BundleError, Column, Frame, Manifest, PipelineError, Task};

use crate::engine::{Engine, EngineChoice};

/// A request row that does not fit the model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("row {row}: {message}")]
pub struct InputError {
    pub row: usize,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Prediction {
    Label(String),
    Value(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowPrediction {
    pub prediction: Prediction,
    /// Class probabilities by label (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<BTreeMap<String, f32>>,
}

/// One column a request row carries, as a client (a form, a script) needs to know it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputColumn {
    /// A number (or a timestamp, sent as a number or as ISO text); `mean` is the training
    /// rows' average, a reasonable example value.
    Number { name: String, mean: f64 },
    /// One of the categories training saw (any other value is accepted, as "unknown").
    Category { name: String, categories: Vec<String> },
    /// Image pixels: send the image itself (`image/png` or `image/jpeg`).
    Image { name: String, length: usize },
}

pub struct Predictor {
    pub manifest: Manifest,
    engine: Engine,
    width: usize,
    /// Columns a row may carry that the model does not use: the target (rows with labels)
    /// and the columns training excluded.
    ignored: BTreeSet<String>,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor").field("model", &self.manifest.model_name).field("width", &self.width).finish()
    }
}

impl Predictor {
    /// Loads and optimises the graph for any number of rows, then predicts one row of zeros
    /// to prove the outputs have the shape the manifest promises.
    pub fn load(bundle: &Bundle) -> Result<Self, BundleError> {
        Self::load_with(bundle, EngineChoice::from_env()?)
    }

    pub fn load_with(bundle: &Bundle, choice: EngineChoice) -> Result<Self, BundleError> {
        let manifest = bundle.manifest.clone();
        let width = manifest.pipeline.width();
        let wanted = manifest
            .onnx_outputs
            .first()
            .cloned()
            .ok_or_else(|| BundleError::Model("the manifest names no ONNX output".into()))?;
        let engine = Engine::load(&bundle.onnx, &manifest.onnx_input, &wanted, width, choice)?;
        let ignored = std::iter::once(manifest.target.clone())
            .chain(
                manifest
                    .hyperparameters
                    .get("exclude")
                    .into_iter()
                    .flat_map(|e| e.split(','))
                    .map(|c| c.trim().to_owned()),
            )
            .collect();
        let predictor = Self { manifest, engine, width, ignored };

        let outputs = predictor.run(vec![0.0; width], 1)?;
        let expected = match predictor.manifest.task {
            Task::Classification => predictor.manifest.class_labels.len(),
            Task::Regression => 1,
        };
        if outputs.len() != expected {
            return Err(BundleError::Model(format!(
                "output {wanted:?} gives {} values per row; the manifest's task needs {expected}",
                outputs.len()
            )));
        }
        Ok(predictor)
    }

    /// The raw output row-major: `rows × outputs per row`.
    fn run(&self, features: Vec<f32>, rows: usize) -> Result<Vec<f32>, BundleError> {
        self.engine.run(features, rows, self.width)
    }

    /// The engine running the graph: `tract` or `ort`.
    pub fn engine(&self) -> &'static str {
        self.engine.name()
    }

    /// Feature columns in pipeline order.
    pub fn columns(&self) -> Vec<&str> {
        self.manifest.pipeline.columns()
    }

    /// What a request row carries, column by column in pipeline order.
    pub fn inputs(&self) -> Vec<InputColumn> {
        self.manifest
            .pipeline
            .steps
            .iter()
            .map(|step| match step {
                FeatureStep::Standardize { column, mean, .. } => {
                    InputColumn::Number { name: column.clone(), mean: *mean }
                }
                FeatureStep::OneHot { column, categories } => {
                    InputColumn::Category { name: column.clone(), categories: categories.clone() }
                }
                FeatureStep::Vector { column, length } => InputColumn::Image { name: column.clone(), length: *length },
            })
            .collect()
    }

    /// Whether one row fits the model (columns present and known, values of the right kind),
    /// without predicting: lets batch jobs set bad rows aside and predict the rest together.
    pub fn check_row(&self, row: &Value) -> Result<(), InputError> {
        self.frame(std::slice::from_ref(row)).map(|_| ())
    }

    /// Predicts JSON object rows. A row that does not fit the model is an `InputError`;
    /// a graph that fails at run time is a `BundleError`.
    pub fn predict(&self, rows: &[Value]) -> Result<Result<Vec<RowPrediction>, InputError>, BundleError> {
        match self.frame(rows) {
            Ok(frame) => self.predict_frame(&frame),
            Err(input) => Ok(Err(input)),
        }
    }

    /// Predicts rows given as columns (the trainer scores production on its validation
    /// rows this way). A column the pipeline needs that is missing or of another kind is
    /// an `InputError`.
    pub fn predict_frame(&self, frame: &Frame) -> Result<Result<Vec<RowPrediction>, InputError>, BundleError> {
        let rows = frame.rows();
        let features = match self.manifest.pipeline.transform(frame) {
            Ok(features) => features,
            Err(err) => {
                let (row, field) = match &err {
                    PipelineError::WrongLength { row, column, .. } => (*row, Some(column.clone())),
                    PipelineError::MissingColumn(column) | PipelineError::WrongKind { column, .. } => {
                        (0, Some(column.clone()))
                    }
                    PipelineError::NoValues(_) => (0, None),
                };
                return Ok(Err(InputError { row, field, message: err.to_string() }));
            }
        };
        let outputs = self.run(features, rows)?;
        let per_row = outputs.len() / rows.max(1);
        Ok(Ok(outputs.chunks(per_row.max(1)).map(|row| self.interpret(row)).collect()))
    }

    fn interpret(&self, output: &[f32]) -> RowPrediction {
        match self.manifest.task {
            Task::Regression => {
                RowPrediction { prediction: Prediction::Value(f64::from(output[0])), probabilities: None }
            }
            Task::Classification => {
                let best = output.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
                let labels = &self.manifest.class_labels;
                RowPrediction {
                    prediction: Prediction::Label(labels[best].clone()),
                    probabilities: Some(labels.iter().cloned().zip(output.iter().copied()).collect()),
                }
            }
        }
    }

    /// Request rows as pipeline columns, each value checked against its step's kind.
    fn frame(&self, rows: &[Value]) -> Result<Frame, InputError> {
        let steps = &self.manifest.pipeline.steps;
        let mut columns: Vec<(String, Column)> = steps
            .iter()
            .map(|step| match step {
                FeatureStep::Standardize { column, .. } => (column.clone(), Column::Numeric(Vec::new())),
                FeatureStep::OneHot { column, .. } => (column.clone(), Column::Categorical(Vec::new())),
                FeatureStep::Vector { column, .. } => (column.clone(), Column::Vector(Vec::new())),
            })
            .collect();
        for (row, value) in rows.iter().enumerate() {
            let error = |field: &str, message: String| InputError { row, field: Some(field.to_owned()), message };
            let object = value.as_object().ok_or_else(|| InputError {
                row,
                field: None,
                message: "a row must be a JSON object of column: value".into(),
            })?;
            if let Some(unknown) =
                object.keys().find(|k| !self.ignored.contains(*k) && !columns.iter().any(|(name, _)| name == *k))
            {
                let known = self.columns().join(", ");
                return Err(error(unknown, format!("unknown column {unknown:?} (the model takes {known})")));
            }
            for (name, column) in &mut columns {
                let value =
                    object.get(name.as_str()).ok_or_else(|| error(name, format!("column {name:?} is missing")))?;
                let wrong = |expected: &str| error(name, format!("column {name:?} must be {expected}, not {value}"));
                match column {
                    Column::Numeric(values) => values.push(match value {
                        Value::Null => None,
                        Value::Number(n) => n.as_f64(),
                        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                        // The value as it was ingested: the ETL's parser reads it, so a
                        // timestamp or a number in quotes means what it meant in training.
                        Value::String(text) => numeric_text(text)
                            .map_err(|NotNumeric| wrong("a number, a boolean or an ISO date or timestamp"))?,
                        _ => return Err(wrong("a number")),
                    }),
                    Column::Categorical(values) => values.push(match value {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        _ => return Err(wrong("a string")),
                    }),
                    Column::Vector(values) => values.push(match value {
                        Value::Null => None,
                        Value::Array(items) => Some(
                            items
                                .iter()
                                .map(|item| item.as_f64().map(|v| v as f32))
                                .collect::<Option<Vec<f32>>>()
                                .ok_or_else(|| wrong("a list of numbers"))?,
                        ),
                        _ => return Err(wrong("a list of numbers")),
                    }),
                }
            }
        }
        Ok(Frame { columns })
    }
}
