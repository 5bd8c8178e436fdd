//! The feature pipeline: raw columns in, a dense float matrix out. Fitted on training data
//! (means, standard deviations, category lists) and recorded in the manifest, so serving
//! applies exactly what training learned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::frame::{Column, Frame};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("feature column {0:?} is missing")]
    MissingColumn(String),
    #[error("feature column {column:?} is {found}, but the model expects {expected}")]
    WrongKind { column: String, expected: &'static str, found: &'static str },
    #[error("feature column {column:?}, row {row}: expected {expected} values, found {found}")]
    WrongLength { column: String, row: usize, expected: usize, found: usize },
    #[error("feature column {0:?} has no values to learn from")]
    NoValues(String),
}

/// One input column's transformation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureStep {
    /// `(x - mean) / std`; a null becomes what the pipeline's [`NullNumbers`] says. One output.
    Standardize { column: String, mean: f64, std: f64 },
    /// One output per known category, plus a last one for unknown values and nulls.
    OneHot { column: String, categories: Vec<String> },
    /// A fixed-length vector passed through (nulls become zeros). `length` outputs.
    Vector { column: String, length: usize },
}

/// What a null number becomes in the features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullNumbers {
    /// The training mean (0 once standardised): linear models and networks need a number.
    #[default]
    Mean,
    /// NaN: tree ensembles send missing values down the branch training chose for them,
    /// which keeps what a value's absence says apart from what an average value says.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturePipeline {
    pub steps: Vec<FeatureStep>,
    /// Absent from manifests written before trees were trained: those imputed the mean.
    #[serde(default)]
    pub null_numbers: NullNumbers,
}

fn kind(column: &Column) -> &'static str {
    match column {
        Column::Numeric(_) => "numeric",
        Column::Categorical(_) => "categorical",
        Column::Vector(_) => "a vector",
    }
}

/// Count, mean and sum of squared deviations from the mean of some numbers: what
/// standardising needs, and mergeable, so that hosts holding different rows agree on the
/// statistics of all of them (Chan, Golub and LeVeque's pairwise update).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    pub squares: f64,
}

impl Moments {
    /// In two passes (the mean, then the deviations from it), which loses no precision to
    /// values far from zero.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let squares = values.iter().map(|v| (v - mean).powi(2)).sum();
        Self { count: values.len() as u64, mean, squares }
    }

    /// The moments of both sets of numbers together.
    pub fn merge(self, other: Self) -> Self {
        if other.count == 0 {
            return self;
        }
        if self.count == 0 {
            return other;
        }
        let (a, b) = (self.count as f64, other.count as f64);
        let delta = other.mean - self.mean;
        Self {
            count: self.count + other.count,
            mean: self.mean + delta * b / (a + b),
            squares: self.squares + other.squares + delta * delta * a * b / (a + b),
        }
    }

    /// The population standard deviation.
    pub fn std(&self) -> f64 {
        if self.count == 0 { 0.0 } else { (self.squares / self.count as f64).sqrt() }
    }
}

/// What fitting a column's step needs to know of its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnSummary {
    Numeric(Moments),
    Categorical { counts: BTreeMap<String, u64> },
    Vector { length: Option<usize> },
}

impl ColumnSummary {
    pub fn of(column: &Column) -> Self {
        match column {
            Column::Numeric(values) => {
                Self::Numeric(Moments::of(&values.iter().flatten().copied().collect::<Vec<_>>()))
            }
            Column::Categorical(values) => {
                let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                for value in values.iter().flatten() {
                    match counts.get_mut(value.as_str()) {
                        Some(count) => *count += 1,
                        None => {
                            counts.insert(value.clone(), 1);
                        }
                    }
                }
                Self::Categorical { counts }
            }
            Column::Vector(values) => Self::Vector { length: values.iter().flatten().map(Vec::len).next() },
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Numeric(_) => "numeric",
            Self::Categorical { .. } => "categorical",
            Self::Vector { .. } => "a vector",
        }
    }

    /// The summary of both parts' values.
    fn merge(self, other: Self, column: &str) -> Result<Self, PipelineError> {
        Ok(match (self, other) {
            (Self::Numeric(a), Self::Numeric(b)) => Self::Numeric(a.merge(b)),
            (Self::Categorical { mut counts }, Self::Categorical { counts: more }) => {
                for (value, count) in more {
                    *counts.entry(value).or_default() += count;
                }
                Self::Categorical { counts }
            }
            (Self::Vector { length }, Self::Vector { length: other }) => Self::Vector { length: length.or(other) },
            (a, b) => {
                return Err(PipelineError::WrongKind {
                    column: column.to_owned(),
                    expected: a.kind(),
                    found: b.kind(),
                });
            }
        })
    }
}

/// The feature columns' summaries, from all training rows or from one host's share of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameSummary {
    pub columns: Vec<(String, ColumnSummary)>,
}

impl FrameSummary {
    pub fn of(frame: &Frame, features: &[String]) -> Result<Self, PipelineError> {
        let columns = features
            .iter()
            .map(|name| {
                let column = frame.column(name).ok_or_else(|| PipelineError::MissingColumn(name.clone()))?;
                Ok((name.clone(), ColumnSummary::of(column)))
            })
            .collect::<Result<_, PipelineError>>()?;
        Ok(Self { columns })
    }

    /// Both parts together; a column only one part has keeps that part's summary.
    pub fn merge(mut self, other: Self) -> Result<Self, PipelineError> {
        for (name, summary) in other.columns {
            match self.columns.iter().position(|(n, _)| *n == name) {
                Some(index) => {
                    let mine = std::mem::replace(&mut self.columns[index].1, ColumnSummary::Vector { length: None });
                    self.columns[index].1 = mine.merge(summary, &name)?;
                }
                None => self.columns.push((name, summary)),
            }
        }
        Ok(self)
    }
}

impl FeaturePipeline {
    /// Learns each feature column's transformation from `frame`. Categorical columns keep
    /// their `max_categories` most frequent values.
    pub fn fit(
        frame: &Frame,
        features: &[String],
        max_categories: usize,
        null_numbers: NullNumbers,
    ) -> Result<Self, PipelineError> {
        Self::from_summary(&FrameSummary::of(frame, features)?, max_categories, null_numbers)
    }

    /// Learns each column's transformation from what is known of its values.
    pub fn from_summary(
        summary: &FrameSummary,
        max_categories: usize,
        null_numbers: NullNumbers,
    ) -> Result<Self, PipelineError> {
        let mut steps = Vec::new();
        for (name, column) in &summary.columns {
            let step = match column {
                ColumnSummary::Numeric(moments) => {
                    if moments.count == 0 {
                        return Err(PipelineError::NoValues(name.clone()));
                    }
                    let std = moments.std();
                    FeatureStep::Standardize {
                        column: name.clone(),
                        mean: moments.mean,
                        std: if std > 1e-12 { std } else { 1.0 },
                    }
                }
                ColumnSummary::Categorical { counts } => {
                    let mut ranked: Vec<(&String, &u64)> = counts.iter().collect();
                    ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                    ranked.truncate(max_categories);
                    let mut categories: Vec<String> = ranked.into_iter().map(|(v, _)| v.clone()).collect();
                    categories.sort();
                    FeatureStep::OneHot { column: name.clone(), categories }
                }
                ColumnSummary::Vector { length } => FeatureStep::Vector {
                    column: name.clone(),
                    length: length.ok_or_else(|| PipelineError::NoValues(name.clone()))?,
                },
            };
            steps.push(step);
        }
        Ok(Self { steps, null_numbers })
    }

    /// Outputs per row.
    pub fn width(&self) -> usize {
        self.steps
            .iter()
            .map(|step| match step {
                FeatureStep::Standardize { .. } => 1,
                FeatureStep::OneHot { categories, .. } => categories.len() + 1,
                FeatureStep::Vector { length, .. } => *length,
            })
            .sum()
    }

    /// The input columns, in pipeline order.
    pub fn columns(&self) -> Vec<&str> {
        self.steps
            .iter()
            .map(|step| match step {
                FeatureStep::Standardize { column, .. }
                | FeatureStep::OneHot { column, .. }
                | FeatureStep::Vector { column, .. } => column.as_str(),
            })
            .collect()
    }

    /// The features of every row of `frame`, row-major, `width()` per row.
    pub fn transform(&self, frame: &Frame) -> Result<Vec<f32>, PipelineError> {
        let (rows, width) = (frame.rows(), self.width());
        let mut out = vec![0.0_f32; rows * width];
        let mut offset = 0;
        for step in &self.steps {
            let name = match step {
                FeatureStep::Standardize { column, .. }
                | FeatureStep::OneHot { column, .. }
                | FeatureStep::Vector { column, .. } => column,
            };
            let column = frame.column(name).ok_or_else(|| PipelineError::MissingColumn(name.clone()))?;
            match (step, column) {
                (FeatureStep::Standardize { mean, std, .. }, Column::Numeric(values)) => {
                    let null = match self.null_numbers {
                        NullNumbers::Mean => *mean,
                        NullNumbers::Missing => f64::NAN,
                    };
                    for (row, value) in values.iter().enumerate() {
                        out[row * width + offset] = ((value.unwrap_or(null) - mean) / std) as f32;
                    }
                    offset += 1;
                }
                (FeatureStep::OneHot { categories, .. }, Column::Categorical(values)) => {
                    for (row, value) in values.iter().enumerate() {
                        let slot = value
                            .as_deref()
                            .and_then(|v| categories.binary_search_by(|c| c.as_str().cmp(v)).ok())
                            .unwrap_or(categories.len());
                        out[row * width + offset + slot] = 1.0;
                    }
                    offset += categories.len() + 1;
                }
                (FeatureStep::Vector { length, .. }, Column::Vector(values)) => {
                    for (row, value) in values.iter().enumerate() {
                        if let Some(vector) = value {
                            if vector.len() != *length {
                                return Err(PipelineError::WrongLength {
                                    column: name.clone(),
                                    row,
                                    expected: *length,
                                    found: vector.len(),
                                });
                            }
                            out[row * width + offset..row * width + offset + length].copy_from_slice(vector);
                        }
                    }
                    offset += length;
                }
                (step, column) => {
                    let expected = match step {
                        FeatureStep::Standardize { .. } => "numeric",
                        FeatureStep::OneHot { .. } => "categorical",
                        FeatureStep::Vector { .. } => "a vector",
                    };
                    return Err(PipelineError::WrongKind { column: name.clone(), expected, found: kind(column) });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame {
            columns: vec![
                ("x".into(), Column::Numeric(vec![Some(1.0), Some(3.0), None])),
                ("c".into(), Column::Categorical(vec![Some("b".into()), Some("a".into()), Some("b".into())])),
                ("v".into(), Column::Vector(vec![Some(vec![0.5, 1.0]), None, Some(vec![0.0, 0.25])])),
            ],
        }
    }

    #[test]
    fn fits_and_transforms_each_kind_of_column() {
        let features = ["x".to_owned(), "c".to_owned(), "v".to_owned()];
        let pipeline = FeaturePipeline::fit(&frame(), &features, 10, NullNumbers::Mean).unwrap();
        assert_eq!(pipeline.width(), 1 + 3 + 2);
        assert_eq!(pipeline.steps[0], FeatureStep::Standardize { column: "x".into(), mean: 2.0, std: 1.0 });
        let out = pipeline.transform(&frame()).unwrap();
        assert_eq!(&out[0..6], &[-1.0, 0.0, 1.0, 0.0, 0.5, 1.0]);
        assert_eq!(&out[6..12], &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0], "a null vector becomes zeros");
        assert_eq!(out[12], 0.0, "a null number becomes the mean, standardised to 0");
    }

    #[test]
    fn null_numbers_can_stay_missing_for_trees() {
        let pipeline = FeaturePipeline::fit(&frame(), &["x".to_owned()], 10, NullNumbers::Missing).unwrap();
        let out = pipeline.transform(&frame()).unwrap();
        assert_eq!(out[..2], [-1.0, 1.0]);
        assert!(out[2].is_nan(), "a null number is NaN: {out:?}");
        let json = serde_json::to_value(&pipeline).unwrap();
        assert_eq!(json["null_numbers"], "missing");
        let older = serde_json::json!({"steps": json["steps"]});
        let read: FeaturePipeline = serde_json::from_value(older).unwrap();
        assert_eq!(read.null_numbers, NullNumbers::Mean, "manifests from before the field imputed the mean");
    }

    #[test]
    fn unseen_categories_and_nulls_go_to_the_unknown_slot() {
        let pipeline = FeaturePipeline::fit(&frame(), &["c".to_owned()], 10, NullNumbers::Mean).unwrap();
        let serving = Frame { columns: vec![("c".into(), Column::Categorical(vec![Some("zebra".into()), None]))] };
        assert_eq!(pipeline.transform(&serving).unwrap(), vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn only_the_most_frequent_categories_get_a_slot() {
        let pipeline = FeaturePipeline::fit(&frame(), &["c".to_owned()], 1, NullNumbers::Mean).unwrap();
        assert_eq!(pipeline.steps[0], FeatureStep::OneHot { column: "c".into(), categories: vec!["b".into()] });
    }

    #[test]
    fn mismatched_inputs_are_named() {
        let pipeline = FeaturePipeline::fit(&frame(), &["x".to_owned()], 10, NullNumbers::Mean).unwrap();
        let wrong = Frame { columns: vec![("x".into(), Column::Categorical(vec![Some("1".into())]))] };
        assert_eq!(
            pipeline.transform(&wrong).unwrap_err(),
            PipelineError::WrongKind { column: "x".into(), expected: "numeric", found: "categorical" }
        );
        assert!(matches!(
            FeaturePipeline::fit(&frame(), &["nope".to_owned()], 10, NullNumbers::Mean),
            Err(PipelineError::MissingColumn(_))
        ));
    }

    #[test]
    fn pipelines_round_trip_through_the_manifest_json() {
        let pipeline =
            FeaturePipeline::fit(&frame(), &["x".to_owned(), "c".to_owned()], 10, NullNumbers::Mean).unwrap();
        let json = serde_json::to_string(&pipeline).unwrap();
        assert!(json.contains("\"kind\":\"one_hot\""));
        assert_eq!(serde_json::from_str::<FeaturePipeline>(&json).unwrap(), pipeline);
    }

    /// Hosts that each hold part of the rows fit the pipeline all the rows would give.
    #[test]
    fn merged_summaries_of_parts_fit_the_pipeline_of_the_whole() {
        let whole = Frame {
            columns: vec![
                (
                    "x".into(),
                    Column::Numeric((0..50).map(|i| (i % 7 != 0).then_some(1e5 + f64::from(i) * 0.37)).collect()),
                ),
                ("c".into(), Column::Categorical((0..50).map(|i| Some(format!("c{}", i % 4 + i % 3))).collect())),
                ("v".into(), Column::Vector((0..50).map(|i| (i > 30).then(|| vec![0.5; 3])).collect())),
            ],
        };
        let features: Vec<String> = ["x", "c", "v"].map(String::from).to_vec();
        let expected = FeaturePipeline::fit(&whole, &features, 3, NullNumbers::Mean).unwrap();
        let (first, second) = (whole.take(&(0..20).collect::<Vec<_>>()), whole.take(&(20..50).collect::<Vec<_>>()));
        let merged =
            FrameSummary::of(&first, &features).unwrap().merge(FrameSummary::of(&second, &features).unwrap()).unwrap();
        let fitted = FeaturePipeline::from_summary(&merged, 3, NullNumbers::Mean).unwrap();
        let (FeatureStep::Standardize { mean, std, .. }, FeatureStep::Standardize { mean: m, std: s, .. }) =
            (&fitted.steps[0], &expected.steps[0])
        else {
            panic!("x is standardised")
        };
        assert!((mean - m).abs() < 1e-9 * m.abs() && (std - s).abs() < 1e-9 * s, "{mean} {std} vs {m} {s}");
        assert_eq!(fitted.steps[1..], expected.steps[1..]);
        assert_eq!(Moments::of(&[]).merge(Moments::of(&[2.0, 4.0])), Moments { count: 2, mean: 3.0, squares: 2.0 });
    }

    #[test]
    fn parts_that_disagree_on_a_columns_kind_are_named() {
        let numbers = Frame { columns: vec![("x".into(), Column::Numeric(vec![Some(1.0)]))] };
        let text = Frame { columns: vec![("x".into(), Column::Categorical(vec![Some("1".into())]))] };
        let x = ["x".to_owned()];
        let merged = FrameSummary::of(&numbers, &x).unwrap().merge(FrameSummary::of(&text, &x).unwrap());
        assert_eq!(
            merged.unwrap_err(),
            PipelineError::WrongKind { column: "x".into(), expected: "numeric", found: "categorical" }
        );
    }
}
