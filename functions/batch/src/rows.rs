//! A batch file, chunk by chunk: rows are read from a local CSV or Parquet file, the
//! model's feature columns are typed as its pipeline expects, rows that do not fit are set
//! aside with the reason, and the rest are predicted together and written as CSV.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Map, Value, json};
use sluice_core::values::{normalise, numeric_feature};
use sluice_model::pipeline::FeatureStep;
use sluice_serving::{Prediction, Predictor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSummary {
    pub rows_predicted: usize,
    pub rows_rejected: usize,
    /// A problem with the whole file (unreadable, a feature column missing): no rows predicted.
    pub file_error: Option<String>,
}

/// One input row: its number (1-based, as a person counts data rows), the columns the model
/// takes, and the others, passed through as the output row's keys.
struct InputRow {
    number: usize,
    features: Result<Map<String, Value>, (Option<String>, String)>,
    keys: Map<String, Value>,
}

/// Predicts every row of `input` into `output` (CSV) and `errors` (JSON lines).
pub fn predict_file(
    predictor: &Predictor,
    format: InputFormat,
    input: &Path,
    output: &Path,
    errors: &Path,
    chunk_rows: usize,
) -> std::io::Result<FileSummary> {
    let mut sink = Sink::new(predictor, output, errors)?;
    let result = match format {
        InputFormat::Csv => read_csv(predictor, input, chunk_rows, &mut sink),
        InputFormat::Parquet => read_parquet(predictor, input, chunk_rows, &mut sink),
    };
    if let Err(message) = result {
        sink.summary.file_error = Some(message.clone());
        writeln!(sink.errors, "{}", json!({ "row": null, "error": message }))?;
    }
    sink.finish()
}

fn steps(predictor: &Predictor) -> &[FeatureStep] {
    &predictor.manifest.pipeline.steps
}

fn step_column(step: &FeatureStep) -> &str {
    match step {
        FeatureStep::Standardize { column, .. }
        | FeatureStep::OneHot { column, .. }
        | FeatureStep::Vector { column, .. } => column,
    }
}

/// A CSV cell typed as the pipeline step expects; `Err` names what is wrong.
fn typed_cell(step: &FeatureStep, cell: &str) -> Result<Value, String> {
    let column = step_column(step);
    if cell.is_empty() {
        return Ok(Value::Null);
    }
    match step {
        // Read as the ETL read the column when the model was trained.
        FeatureStep::Standardize { .. } => match numeric_feature(cell) {
            Some(number) => Ok(json!(number)),
            None if normalise(cell).is_none() => Ok(Value::Null),
            None => {
                Err(format!("column {column:?} must be a number, a boolean or an ISO date or timestamp, not {cell:?}"))
            }
        },
        FeatureStep::OneHot { .. } => Ok(Value::String(cell.to_owned())),
        FeatureStep::Vector { .. } => serde_json::from_str::<Value>(cell)
            .ok()
            .filter(Value::is_array)
            .ok_or_else(|| format!("column {column:?} must be a JSON list of numbers")),
    }
}

fn read_csv(predictor: &Predictor, input: &Path, chunk_rows: usize, sink: &mut Sink) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_path(input).map_err(|e| e.to_string())?;
    let headers: Vec<String> =
        reader.headers().map_err(|e| format!("CSV header: {e}"))?.iter().map(str::to_owned).collect();
    let steps = steps(predictor);
    // For each feature step, its column's position in the file.
    let positions: Vec<usize> = steps
        .iter()
        .map(|step| {
            let column = step_column(step);
            headers.iter().position(|h| h == column).ok_or_else(|| format!("the file has no column {column:?}"))
        })
        .collect::<Result<_, _>>()?;
    let features: BTreeSet<&str> = steps.iter().map(step_column).collect();
    sink.set_keys(headers.iter().filter(|h| !features.contains(h.as_str())).cloned().collect())?;
    let mut chunk = Vec::with_capacity(chunk_rows);
    for (index, record) in reader.records().enumerate() {
        let number = index + 1;
        let row = match record {
            Err(err) => InputRow { number, features: Err((None, err.to_string())), keys: Map::new() },
            Ok(record) => {
                let keys = headers
                    .iter()
                    .zip(record.iter())
                    .filter(|(h, _)| !features.contains(h.as_str()))
                    .map(|(h, v)| (h.clone(), Value::String(v.to_owned())))
                    .collect();
                let features = steps
                    .iter()
                    .zip(&positions)
                    .map(|(step, &at)| {
                        let column = step_column(step);
                        typed_cell(step, record.get(at).unwrap_or_default())
                            .map(|value| (column.to_owned(), value))
                            .map_err(|message| (Some(column.to_owned()), message))
                    })
                    .collect();
                InputRow { number, features, keys }
            }
        };
        chunk.push(row);
        if chunk.len() == chunk_rows {
            sink.predict(predictor, std::mem::take(&mut chunk)).map_err(|e| e.to_string())?;
        }
    }
    sink.predict(predictor, chunk).map_err(|e| e.to_string())
}

fn read_parquet(predictor: &Predictor, input: &Path, chunk_rows: usize, sink: &mut Sink) -> Result<(), String> {
    let file = File::open(input).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let columns: Vec<String> = schema.root_schema().get_fields().iter().map(|f| f.name().to_owned()).collect();
    let features: BTreeSet<&str> = steps(predictor).iter().map(step_column).collect();
    if let Some(missing) = features.iter().find(|f| !columns.iter().any(|c| c == *f)) {
        return Err(format!("the file has no column {missing:?}"));
    }
    sink.set_keys(columns.iter().filter(|c| !features.contains(c.as_str())).cloned().collect())?;
    let mut chunk = Vec::with_capacity(chunk_rows);
    // The row iterator reads one row group at a time.
    for (index, row) in reader.get_row_iter(None).map_err(|e| e.to_string())?.enumerate() {
        let number = index + 1;
        let row = match row {
            Err(err) => InputRow { number, features: Err((None, err.to_string())), keys: Map::new() },
            Ok(row) => {
                let Value::Object(all) = row.to_json_value() else { unreachable!("a Parquet row is an object") };
                let (features, keys) = all.into_iter().partition(|(name, _)| features.contains(name.as_str()));
                InputRow { number, features: Ok(features), keys }
            }
        };
        chunk.push(row);
        if chunk.len() == chunk_rows {
            sink.predict(predictor, std::mem::take(&mut chunk)).map_err(|e| e.to_string())?;
        }
    }
    sink.predict(predictor, chunk).map_err(|e| e.to_string())
}

/// A row that fits the model: its number, its features and its pass-through keys.
type GoodRow = (usize, Map<String, Value>, Map<String, Value>);

/// The output CSV and the errors file, written as chunks are predicted.
struct Sink {
    output: csv::Writer<BufWriter<File>>,
    errors: BufWriter<File>,
    labels: Vec<String>,
    keys: Vec<String>,
    summary: FileSummary,
}

impl Sink {
    fn new(predictor: &Predictor, output: &Path, errors: &Path) -> std::io::Result<Self> {
        Ok(Self {
            output: csv::Writer::from_writer(BufWriter::new(File::create(output)?)),
            errors: BufWriter::new(File::create(errors)?),
            labels: predictor.manifest.class_labels.clone(),
            keys: Vec::new(),
            summary: FileSummary::default(),
        })
    }

    /// The header: `row`, the pass-through key columns, `prediction`, a probability per class.
    fn set_keys(&mut self, keys: Vec<String>) -> Result<(), String> {
        let mut header = vec!["row".to_owned()];
        header.extend(keys.iter().cloned());
        header.push("prediction".to_owned());
        header.extend(self.labels.iter().map(|label| format!("probability:{label}")));
        self.keys = keys;
        self.output.write_record(&header).map_err(|e| e.to_string())
    }

    fn reject(&mut self, number: usize, field: Option<String>, message: &str) -> std::io::Result<()> {
        self.summary.rows_rejected += 1;
        writeln!(self.errors, "{}", json!({ "row": number, "field": field, "error": message }))
    }

    fn predict(&mut self, predictor: &Predictor, rows: Vec<InputRow>) -> std::io::Result<()> {
        let mut good: Vec<GoodRow> = Vec::with_capacity(rows.len());
        for row in rows {
            match row.features {
                Err((field, message)) => self.reject(row.number, field, &message)?,
                Ok(features) => {
                    let value = Value::Object(features);
                    match predictor.check_row(&value) {
                        Err(err) => self.reject(row.number, err.field, &err.message)?,
                        Ok(()) => {
                            let Value::Object(features) = value else { unreachable!() };
                            good.push((row.number, features, row.keys));
                        }
                    }
                }
            }
        }
        // What the per-row check cannot see (a vector of the wrong length) fails the whole
        // call, naming the row: set it aside and predict the rest again.
        loop {
            if good.is_empty() {
                return Ok(());
            }
            let inputs: Vec<Value> = good.iter().map(|(_, features, _)| Value::Object(features.clone())).collect();
            match predictor.predict(&inputs) {
                Err(err) => return Err(std::io::Error::other(err.to_string())),
                Ok(Err(input)) => {
                    let (number, _, _) = good.remove(input.row.min(good.len() - 1));
                    self.reject(number, input.field, &input.message)?;
                }
                Ok(Ok(predictions)) => {
                    for ((number, _, keys), prediction) in good.iter().zip(predictions) {
                        let mut record = vec![number.to_string()];
                        record.extend(self.keys.iter().map(|k| match keys.get(k) {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        }));
                        record.push(match &prediction.prediction {
                            Prediction::Label(label) => label.clone(),
                            Prediction::Value(value) => value.to_string(),
                        });
                        let probabilities = prediction.probabilities.unwrap_or_default();
                        record.extend(
                            self.labels.iter().map(|l| probabilities.get(l).map(|p| p.to_string()).unwrap_or_default()),
                        );
                        self.output.write_record(&record)?;
                    }
                    self.summary.rows_predicted += good.len();
                    return Ok(());
                }
            }
        }
    }

    fn finish(mut self) -> std::io::Result<FileSummary> {
        self.output.flush()?;
        self.errors.flush()?;
        Ok(self.summary)
    }
}
