//! The ETL's domain logic, free of AWS: an object's bytes in, typed Parquet, rejected rows
//! and a profile out.
//!
//! Tables are read twice: once to infer column types, once to convert, deduplicate and
//! write row groups, so memory holds the input plus one row group. Nothing is dropped
//! silently: a row that fails conversion, or repeats an earlier row exactly, goes to the
//! rejected list with its row number and reason, and `rows_in = rows_out + rejected`.

mod image_rows;
mod parquet_out;
mod source;
pub mod values;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};
use sluice_formats::ContentKind;
use sluice_profile::{ColumnProfile, Profile};

pub use image_rows::process_image;
pub use parquet_out::ROW_GROUP_ROWS;
use parquet_out::{Cell, Columns, ParquetSink};
use sluice_core::options::{DatasetOptions, DecimalSeparator};
use sluice_core::schema::{ColumnType, Field, Schema};
use source::RawTable;
pub use source::ReadOptions;
use values::{normalise, parse_bool, parse_float, parse_integer, parse_timestamp};
use xxhash_rust::xxh3::{xxh3_64_with_seed, xxh3_128};

/// Hash maps on the per-row path. One-shot xxh3 is several times faster than the default
/// SipHash on short keys; these maps are per object and hold no keys chosen to collide
/// that could matter beyond that object's own processing time.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<OneShotHasher>>;

#[derive(Default)]
struct OneShotHasher(u64);

impl Hasher for OneShotHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    /// Row fingerprints are xxh3 output already: folding the halves is enough.
    fn write_u128(&mut self, value: u128) {
        self.0 ^= (value as u64) ^ ((value >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Distinct values counted per column and row group; further new values are counted as
/// "other", so a column of unique ids costs bounded time and memory.
const MAX_TRACKED_DISTINCT: usize = 10_000;

/// Share of a column's non-null values that must parse as a type for it to be inferred;
/// the rest become rejected rows rather than turning the column into text.
const INFERENCE_AGREEMENT: f64 = 0.99;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtlError {
    #[error("cannot parse the object: {0}")]
    Parse(String),
    #[error("schema mismatch: {0}")]
    Schema(String),
    #[error("cannot write Parquet: {0}")]
    Parquet(String),
    #[error("image: {0}")]
    Image(String),
}

/// A row that did not make it into the curated data, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// 1-based data row (header excluded) in the object.
    pub row: u64,
    pub reason: String,
    /// The row's cells by column name, as read (trimmed; nulls absent).
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// What processing one object produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The dataset schema after this object (new, unchanged, or evolved).
    pub schema: Schema,
    pub parquet: Vec<u8>,
    pub rejected: Vec<RejectedRow>,
    pub profile: Profile,
    pub rows_in: u64,
    pub rows_out: u64,
}

/// Converts a tabular object (CSV, xlsx, JSON, NDJSON) to Parquet under the dataset's
/// schema, or under the schema inferred from it when the dataset has none yet.
pub fn process_table(
    kind: ContentKind,
    body: &[u8],
    dataset_schema: Option<&Schema>,
    options: &DatasetOptions,
) -> Result<Outcome, EtlError> {
    let table = RawTable::read(kind, body, &read_options(options))?;
    check_header(&table.header)?;
    let (votes, rows) = type_votes(&table, options.decimal_separator)?;
    let schema = match dataset_schema {
        None => Schema {
            fields: table
                .header
                .iter()
                .zip(&votes)
                .map(|(name, vote)| Field { name: name.clone(), column_type: vote.decide() })
                .collect(),
        },
        Some(existing) => {
            // A column keeps the dataset's type while most of its values fit it; the few
            // that do not become rejected rows. Only a column that mostly does not fit has
            // changed type.
            let fields = table
                .header
                .iter()
                .zip(&votes)
                .map(|(name, vote)| {
                    let column_type = match existing.field(name) {
                        Some(field) if vote.mostly_fit(field.column_type) => field.column_type,
                        _ => vote.decide(),
                    };
                    Field { name: name.clone(), column_type }
                })
                .collect();
            existing.reconcile(&Schema { fields }, options.evolve_schema).map_err(EtlError::Schema)?
        }
    };
    convert(&table, schema, options.decimal_separator, rows)
}

fn read_options(options: &DatasetOptions) -> ReadOptions {
    ReadOptions { csv_delimiter: options.csv_delimiter.map(|c| c as u8), sheet: options.sheet.clone() }
}

fn check_header(header: &[String]) -> Result<(), EtlError> {
    if header.is_empty() {
        return Err(EtlError::Parse("no columns".into()));
    }
    for (index, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(EtlError::Parse(format!("column {} has no name", index + 1)));
        }
        if header[..index].contains(name) {
            return Err(EtlError::Parse(format!("column name {name:?} appears twice")));
        }
    }
    Ok(())
}

/// Counts, per column, how many non-null values parse as each type.
#[derive(Default, Clone)]
struct TypeVotes {
    values: u64,
    booleans: u64,
    integers: u64,
    floats: u64,
    timestamps: u64,
}

impl TypeVotes {
    fn add(&mut self, text: &str, decimal: DecimalSeparator) {
        self.values += 1;
        self.booleans += u64::from(parse_bool(text).is_some());
        let integer = parse_integer(text).is_some();
        self.integers += u64::from(integer);
        self.floats += u64::from(integer || parse_float(text, decimal).is_some());
        self.timestamps += u64::from(!integer && parse_timestamp(text).is_some());
    }

    /// Whether at least half of the values parse as `column_type`.
    fn mostly_fit(&self, column_type: ColumnType) -> bool {
        let fitting = match column_type {
            ColumnType::Boolean => self.booleans,
            ColumnType::Integer => self.integers,
            ColumnType::Float => self.floats,
            ColumnType::Timestamp => self.timestamps,
            ColumnType::String => self.values,
            ColumnType::Vector => 0,
        };
        fitting * 2 >= self.values
    }

    fn decide(&self) -> ColumnType {
        let agreed = |count: u64| self.values > 0 && count as f64 >= self.values as f64 * INFERENCE_AGREEMENT;
        if agreed(self.booleans) {
            ColumnType::Boolean
        } else if agreed(self.integers) {
            ColumnType::Integer
        } else if agreed(self.floats) {
            ColumnType::Float
        } else if agreed(self.timestamps) {
            ColumnType::Timestamp
        } else {
            ColumnType::String
        }
    }
}

/// Per column, how its values parse; and how many rows there are.
fn type_votes(table: &RawTable<'_>, decimal: DecimalSeparator) -> Result<(Vec<TypeVotes>, usize), EtlError> {
    let mut votes = vec![TypeVotes::default(); table.header.len()];
    let mut rows = 0;
    table.for_each_row(|_, cells| {
        rows += 1;
        if cells.len() != votes.len() {
            return;
        }
        for (vote, cell) in votes.iter_mut().zip(cells) {
            if let Some(text) = cell.and_then(normalise) {
                vote.add(text, decimal);
            }
        }
    })?;
    Ok((votes, rows))
}

fn convert_cell<'a>(text: &'a str, column_type: ColumnType, decimal: DecimalSeparator) -> Option<Cell<'a>> {
    match column_type {
        ColumnType::Boolean => parse_bool(text).map(Cell::Boolean),
        ColumnType::Integer => parse_integer(text).map(Cell::Integer),
        ColumnType::Float => parse_float(text, decimal).map(Cell::Float),
        ColumnType::Timestamp => parse_timestamp(text).map(Cell::Timestamp),
        ColumnType::String => Some(Cell::String(text)),
        // Vectors come from images, never from text cells.
        ColumnType::Vector => None,
    }
}

/// A 128-bit xxh3 of the row's cells, each written with its null marker and length so
/// that no two different rows serialise alike. At 128 bits, collisions among even billions
/// of rows are negligible: a row is only called a duplicate when it is one.
fn row_fingerprint(cells: &[Option<&str>], buffer: &mut Vec<u8>) -> u128 {
    buffer.clear();
    for cell in cells {
        match cell {
            None => buffer.push(0),
            Some(text) => {
                buffer.push(1);
                buffer.extend_from_slice(&(text.len() as u64).to_le_bytes());
                buffer.extend_from_slice(text.as_bytes());
            }
        }
    }
    xxh3_128(buffer)
}

fn rejected(header: &[String], row: u64, reason: String, cells: &[Option<&str>]) -> RejectedRow {
    let values = header
        .iter()
        .zip(cells)
        .filter_map(|(name, cell)| cell.map(|text| (name.clone(), serde_json::Value::from(text))))
        .collect();
    RejectedRow { row, reason, values }
}

fn convert(table: &RawTable<'_>, schema: Schema, decimal: DecimalSeparator, rows: usize) -> Result<Outcome, EtlError> {
    // For each schema column, where it is in this object (absent columns are all null).
    let positions: Vec<Option<usize>> =
        schema.fields.iter().map(|f| table.header.iter().position(|h| *h == f.name)).collect();
    let mut sink = ParquetSink::new(&schema)?;
    let mut columns = Columns::new(&schema);
    let mut profiler = Profiler::new(&schema);
    // Sized once: growing a map of millions of rows would briefly need twice the memory.
    let mut seen: FastMap<u128, u64> = FastMap::with_capacity_and_hasher(rows, Default::default());
    let mut fingerprint_buffer = Vec::new();
    let mut rejects = Vec::new();
    let (mut rows_in, mut rows_out) = (0, 0);
    let mut failure = None;

    table.for_each_row(|number, raw| {
        if failure.is_some() {
            return;
        }
        rows_in += 1;
        if raw.len() != table.header.len() {
            let reason = format!("expected {} fields (as many as the header), found {}", table.header.len(), raw.len());
            rejects.push(rejected(&table.header, number, reason, raw));
            return;
        }
        let normalised: Vec<Option<&str>> = raw.iter().map(|c| c.and_then(normalise)).collect();
        let fingerprint = row_fingerprint(&normalised, &mut fingerprint_buffer);
        if let Some(first) = seen.get(&fingerprint) {
            rejects.push(rejected(&table.header, number, format!("exact duplicate of row {first}"), &normalised));
            return;
        }
        let mut cells = Vec::with_capacity(schema.fields.len());
        for (field, position) in schema.fields.iter().zip(&positions) {
            let text = position.and_then(|p| normalised[p]);
            match text {
                None => cells.push(Cell::Null),
                Some(text) => match convert_cell(text, field.column_type, decimal) {
                    Some(cell) => cells.push(cell),
                    None => {
                        let reason =
                            format!("column {:?}: {text:?} is not a valid {}", field.name, field.column_type.as_str());
                        rejects.push(rejected(&table.header, number, reason, &normalised));
                        return;
                    }
                },
            }
        }
        seen.insert(fingerprint, number);
        profiler.add(&cells);
        columns.push_row(&cells);
        rows_out += 1;
        if columns.rows() >= ROW_GROUP_ROWS
            && let Err(err) = sink.write_row_group(&mut columns)
        {
            failure = Some(err);
        }
        if profiler.rows >= ROW_GROUP_ROWS as u64 {
            profiler.flush();
        }
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    sink.write_row_group(&mut columns)?;
    Ok(Outcome { profile: profiler.finish(), schema, parquet: sink.finish()?, rejected: rejects, rows_in, rows_out })
}

/// Builds the profile a row group at a time and merges the groups.
struct Profiler {
    fields: Vec<Field>,
    rows: u64,
    numbers: Vec<Vec<f64>>,
    frequencies: Vec<FastMap<String, u64>>,
    /// Values not counted individually (see [`MAX_TRACKED_DISTINCT`]).
    untracked: Vec<u64>,
    nulls: Vec<u64>,
    merged: Option<Profile>,
}

impl Profiler {
    fn new(schema: &Schema) -> Self {
        let n = schema.fields.len();
        Self {
            fields: schema.fields.clone(),
            rows: 0,
            numbers: vec![Vec::new(); n],
            frequencies: vec![FastMap::default(); n],
            untracked: vec![0; n],
            nulls: vec![0; n],
            merged: None,
        }
    }

    fn add(&mut self, cells: &[Cell<'_>]) {
        self.rows += 1;
        for (index, cell) in cells.iter().enumerate() {
            let frequencies = &mut self.frequencies[index];
            let untracked = &mut self.untracked[index];
            let mut count = |text: &str| {
                if let Some(n) = frequencies.get_mut(text) {
                    *n += 1;
                } else if frequencies.len() < MAX_TRACKED_DISTINCT {
                    frequencies.insert(text.to_owned(), 1);
                } else {
                    *untracked += 1;
                }
            };
            match *cell {
                Cell::Null => self.nulls[index] += 1,
                Cell::Integer(v) => self.numbers[index].push(v as f64),
                Cell::Float(v) => self.numbers[index].push(v),
                // Timestamps are profiled in seconds since the epoch.
                Cell::Timestamp(v) => self.numbers[index].push(v as f64 / 1e6),
                Cell::Boolean(v) => count(if v { "true" } else { "false" }),
                Cell::String(v) => count(v),
                // Images profile their pixels themselves (see `process_image`).
                Cell::Vector(_) => {}
            }
        }
    }

    fn flush(&mut self) {
        let columns = self
            .fields
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let nulls = std::mem::take(&mut self.nulls[index]);
                let untracked = std::mem::take(&mut self.untracked[index]);
                let name = field.name.as_str();
                let kind = field.column_type.as_str();
                match field.column_type {
                    ColumnType::Boolean | ColumnType::String | ColumnType::Vector => {
                        let frequencies = std::mem::take(&mut self.frequencies[index]).into_iter().collect();
                        ColumnProfile::categorical(name, kind, frequencies, untracked, nulls)
                    }
                    _ => ColumnProfile::numeric(name, kind, &std::mem::take(&mut self.numbers[index]), nulls),
                }
            })
            .collect();
        let part = Profile { rows: std::mem::take(&mut self.rows), columns };
        self.merged = Some(match self.merged.take() {
            Some(merged) => merged.merge(&part),
            None => part,
        });
    }

    fn finish(mut self) -> Profile {
        if self.rows > 0 || self.merged.is_none() {
            self.flush();
        }
        self.merged.expect("flushed at least once")
    }
}

#[cfg(test)]
mod tests;
