//! The ETL's domain logic, free of AWS: an object's bytes in, typed Parquet, rejected rows
//! and a profile out.
//!
//! Tables are streamed through the readers of `sluice-formats` (which cap every dimension of
//! the object as they parse, under the dataset's limits): first the inference prefix, to
//! infer column types (see [`INFERENCE_ROWS`]), then the whole object, each cell parsed once
//! into typed column buffers that are profiled and written as a row group when full, so
//! memory holds one row group and 12–17 bytes per row for duplicate detection
//! ([`seen_rows`]), not the object. Nothing is dropped
//! silently: a row that fails conversion, or repeats an earlier row exactly, goes to the
//! rejected rows with its row number and reason, and `rows_in = rows_out + rejected`.

mod image_rows;
mod parquet_out;
mod seen_rows;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Write};
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use sluice_formats::{ContentKind, ReadOptions, read_table, recycle};
use sluice_profile::Profile;

pub use image_rows::process_image;
pub use parquet_out::ROW_GROUP_ROWS;
use parquet_out::{Columns, ParquetSink};
use seen_rows::SeenRows;
use sluice_core::options::{DatasetOptions, DecimalSeparator};
use sluice_core::schema::{ColumnType, Field, Schema};
use sluice_core::values::{normalise, parse_bool, parse_float, parse_integer, parse_timestamp};
use xxhash_rust::xxh3::{xxh3_64_with_seed, xxh3_128};

/// Hash maps on the per-value path. One-shot xxh3 is several times faster than the default
/// SipHash on short keys; these maps are per object and hold no keys chosen to collide
/// that could matter beyond that object's own processing time.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<OneShotHasher>>;

#[derive(Default)]
pub(crate) struct OneShotHasher(u64);

impl Hasher for OneShotHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Distinct values counted per column and row group; further new values are counted as
/// "other", so a column of unique ids costs bounded time and memory.
const MAX_TRACKED_DISTINCT: usize = 10_000;

/// Rows of a CSV or xlsx table its column types are inferred from (DuckDB samples about as
/// many): enough for a confident vote, and the inference reads no further. A later value a
/// column's type does not take is a rejected row with the reason.
const INFERENCE_ROWS: u64 = 20_000;

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
    /// Reading the object or writing an output failed: worth a retry, unlike the others.
    #[error("{0}")]
    Output(String),
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

/// What processing one object produced, in memory (images, tests, the bench).
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

/// What converting a table produced, its rows having gone to the writers.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSummary {
    /// The dataset schema after this object (new, unchanged, or evolved).
    pub schema: Schema,
    pub profile: Profile,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_rejected: u64,
}

/// Opens the object from its start, each time it is called: the ETL reads a table's
/// inference prefix (a JSON table's records) twice.
pub type Open<'a> = dyn FnMut() -> std::io::Result<Box<dyn Read + 'a>> + 'a;

/// Converts a tabular object held in memory; see [`convert_table`].
pub fn process_table(
    kind: ContentKind,
    body: &[u8],
    dataset_schema: Option<&Schema>,
    options: &DatasetOptions,
) -> Result<Outcome, EtlError> {
    let mut open = || Ok(Box::new(body) as Box<dyn Read>);
    let mut rejected_lines = Vec::new();
    let (summary, parquet) = convert_table(kind, &mut open, dataset_schema, options, Vec::new(), &mut rejected_lines)?;
    let rejected = rejected_lines
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("rejected rows are written as JSON lines"))
        .collect();
    Ok(Outcome {
        schema: summary.schema,
        parquet,
        rejected,
        profile: summary.profile,
        rows_in: summary.rows_in,
        rows_out: summary.rows_out,
    })
}

/// Converts a tabular object (CSV, xlsx, JSON, NDJSON) under the dataset's schema, or under
/// the schema inferred from it when the dataset has none yet. The object is read as a
/// stream (`open`), its inference prefix twice; Parquet row groups go to `parquet` as they
/// fill and rejected rows to `rejected` as JSON lines, so memory holds a row group, not the
/// object.
pub fn convert_table<P: Write + Send>(
    kind: ContentKind,
    open: &mut Open<'_>,
    dataset_schema: Option<&Schema>,
    options: &DatasetOptions,
    parquet: P,
    rejected: &mut dyn Write,
) -> Result<(TableSummary, P), EtlError> {
    let read_options = ReadOptions::from(options);
    let mut table = Table { kind, open, options: &read_options };
    let (header, votes) = type_votes(&mut table, options.decimal_separator)?;
    let schema = match dataset_schema {
        None => Schema {
            fields: header
                .iter()
                .zip(&votes)
                .map(|(name, vote)| Field { name: name.clone(), column_type: vote.decide() })
                .collect(),
        },
        Some(existing) => {
            let fields = header
                .iter()
                .zip(&votes)
                .map(|(name, vote)| {
                    let decided = vote.decide();
                    let column_type = match existing.field(name) {
                        Some(field) => field_type(field.column_type, decided, vote, options.evolve_schema),
                        None => decided,
                    };
                    Field { name: name.clone(), column_type }
                })
                .collect();
            existing.reconcile(&Schema { fields }, options.evolve_schema).map_err(EtlError::Schema)?
        }
    };
    schema.to_stored_json().map_err(EtlError::Schema)?;
    convert(&mut table, &header, &votes, schema, options.decimal_separator, parquet, rejected)
}

/// The type this object's column is converted to, given the dataset's type for it. A type
/// the dataset's holds is stored as the dataset's; an evolving dataset widens (an integer
/// column that meets decimals becomes a float column, so no row is lost); otherwise the
/// column keeps the dataset's type while most of its values fit it, and the few that do not
/// become rejected rows. Only a column that mostly does not fit has changed type.
fn field_type(existing: ColumnType, decided: ColumnType, vote: &TypeVotes, evolve: bool) -> ColumnType {
    if existing.holds(decided) {
        existing
    } else if evolve && existing.widen(decided) != ColumnType::String {
        existing.widen(decided)
    } else if vote.mostly_fit(existing) {
        existing
    } else {
        decided
    }
}

/// An object to read, as often as the ETL needs to.
struct Table<'o, 'a> {
    kind: ContentKind,
    open: &'o mut Open<'a>,
    options: &'o ReadOptions,
}

impl Table<'_, '_> {
    /// Calls `row` with the header so far, each data row's number and its cells, until the
    /// table ends or `row` breaks.
    fn for_each_row(
        &mut self,
        mut row: impl FnMut(&[String], u64, &[Option<&str>]) -> ControlFlow<()>,
    ) -> Result<(), EtlError> {
        let input = (self.open)().map_err(|err| EtlError::Output(format!("cannot read the object: {err}")))?;
        read_table(self.kind, input, self.options, &mut row).map_err(|err| match err {
            // The source failing mid-read is infrastructure, not the data.
            sluice_formats::FormatError::Read(reason) => EtlError::Output(format!("cannot read the object: {reason}")),
            other => EtlError::Parse(other.to_string()),
        })
    }
}

/// A column's first values sampled to tell whether its values repeat: few enough that
/// even the widest table's samples are small (2,000 columns: 16 MB).
const REPETITION_SAMPLE: usize = 1_000;

/// Counts, per column, how many non-null values parse as each type, and samples whether
/// its values repeat.
#[derive(Default, Clone)]
struct TypeVotes {
    values: u64,
    booleans: u64,
    integers: u64,
    floats: u64,
    timestamps: u64,
    sampled: usize,
    /// The distinct values among the `sampled` first ones, as hashes.
    distinct: FastMap<u64, ()>,
}

impl TypeVotes {
    fn add(&mut self, text: &str, decimal: DecimalSeparator) {
        self.values += 1;
        self.booleans += u64::from(parse_bool(text).is_some());
        let integer = parse_integer(text).is_some();
        self.integers += u64::from(integer);
        self.floats += u64::from(integer || parse_float(text, decimal).is_some());
        self.timestamps += u64::from(!integer && parse_timestamp(text).is_some());
        if self.sampled < REPETITION_SAMPLE {
            self.sampled += 1;
            self.distinct.insert(xxh3_64_with_seed(text.as_bytes(), 0), ());
        }
    }

    /// Whether most of the sampled values occur only once (ids, free text, measurements):
    /// a Parquet dictionary for such a column costs time and saves no space.
    fn rarely_repeat(&self) -> bool {
        self.distinct.len() * 2 > self.sampled
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
        } else if agreed(self.integers) && self.floats == self.integers {
            // Integer only when no value needs a decimal: integers widen to floats without
            // loss, so one `97.5` among whole numbers makes a float column, not a rejected row.
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

/// The object's header, and per column how the values of its inference prefix parse.
///
/// CSV and xlsx tables have their columns in their first row, so types are inferred from
/// the first [`INFERENCE_ROWS`] rows and the read stops there. JSON records can bring a new
/// key in their last record, so those are read to the end for their columns, and every
/// record votes.
fn type_votes(table: &mut Table<'_, '_>, decimal: DecimalSeparator) -> Result<(Vec<String>, Vec<TypeVotes>), EtlError> {
    let kind = table.kind;
    let columns_in_first_row = matches!(kind, ContentKind::Csv | ContentKind::Xlsx);
    let mut votes: Vec<TypeVotes> = Vec::new();
    let mut final_header = Vec::new();
    let mut rows = 0;
    table.for_each_row(|header, _, cells| {
        rows += 1;
        if header.len() != final_header.len() {
            final_header = header.to_vec();
            votes.resize(header.len(), TypeVotes::default());
        }
        // A ragged CSV row is a rejected row; its cells say nothing about the columns' types.
        if kind != ContentKind::Csv || cells.len() == header.len() {
            for (vote, cell) in votes.iter_mut().zip(cells) {
                if let Some(text) = cell.and_then(normalise) {
                    vote.add(text, decimal);
                }
            }
        }
        if columns_in_first_row && rows >= INFERENCE_ROWS { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })?;
    if final_header.is_empty() {
        return Err(EtlError::Parse("the table has no columns".into()));
    }
    Ok((final_header, votes))
}

/// A 128-bit xxh3 of the row's cells, each written with its null marker and length so
/// that no two different rows serialise alike. At 128 bits, collisions among even billions
/// of rows are negligible: a row is only called a duplicate when it is one.
fn row_fingerprint(cells: &[Option<&str>], buffer: &mut Vec<u8>) -> u128 {
    buffer.clear();
    for &cell in cells {
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

fn convert<P: Write + Send>(
    table: &mut Table<'_, '_>,
    header: &[String],
    votes: &[TypeVotes],
    schema: Schema,
    decimal: DecimalSeparator,
    parquet: P,
    rejected_out: &mut dyn Write,
) -> Result<(TableSummary, P), EtlError> {
    // For each schema column, where it is in this object (absent columns are all null).
    let kind = table.kind;
    let positions: Vec<Option<usize>> =
        schema.fields.iter().map(|f| header.iter().position(|h| *h == f.name)).collect();
    let rarely_repeat: Vec<bool> = positions.iter().map(|p| p.is_some_and(|i| votes[i].rarely_repeat())).collect();
    let mut sink = ParquetSink::new(&schema, &rarely_repeat, parquet)?;
    let mut columns = Columns::new(&schema, decimal);
    let mut profile: Option<Profile> = None;
    let mut seen = SeenRows::default();
    let mut fingerprint_buffer = Vec::new();
    // A row's cells normalised, in an allocation every row reuses.
    let mut spare_cells = Vec::new();
    let (mut rows_in, mut rows_out, mut rows_rejected) = (0, 0, 0);
    let mut failure = None;
    let mut reject = |row: RejectedRow| -> Result<(), EtlError> {
        rows_rejected += 1;
        let mut line = serde_json::to_vec(&row).expect("rejected rows serialise");
        line.push(b'\n');
        rejected_out.write_all(&line).map_err(|err| EtlError::Output(format!("cannot write rejected rows: {err}")))
    };
    let mut flush = |columns: &mut Columns, profile: &mut Option<Profile>| -> Result<(), EtlError> {
        let part = columns.profile(&schema.fields, MAX_TRACKED_DISTINCT);
        *profile = Some(match profile.take() {
            Some(merged) => merged.merge(&part),
            None => part,
        });
        sink.write_row_group(columns)
    };

    table.for_each_row(|_, number, raw| {
        rows_in += 1;
        // JSON records read before a key first appeared lack its cell: null, like a missing key.
        let padded = kind != ContentKind::Csv && raw.len() < header.len();
        if raw.len() != header.len() && !padded {
            let reason = format!("expected {} fields (as many as the header), found {}", header.len(), raw.len());
            failure = reject(rejected(header, number, reason, raw)).err();
            return failure_stops(&failure);
        }
        let mut cells = recycle(std::mem::take(&mut spare_cells));
        cells.extend((0..header.len()).map(|position| normalised_cell(raw, position)));
        let fingerprint = row_fingerprint(&cells, &mut fingerprint_buffer);
        // The lookup waits for memory: its slot is fetched while the cells convert.
        seen.prefetch(fingerprint);
        let invalid = schema.fields.iter().zip(&positions).enumerate().find_map(|(index, (field, position))| {
            let Some(text) = position.and_then(|position| cells[position]) else {
                columns.push_null(index);
                return None;
            };
            let invalid = !columns.push_text(index, text);
            invalid.then(|| format!("column {:?}: {text:?} is not a valid {}", field.name, field.column_type.as_str()))
        });
        // A row that repeats an earlier one is rejected as the duplicate it is, even when it
        // does not convert either.
        let reason = match (seen.first(fingerprint), invalid) {
            (Ok(first), _) => Some(format!("exact duplicate of row {first}")),
            (Err(_), Some(reason)) => Some(reason),
            (Err(vacancy), None) => {
                // Past u32::MAX rows an object would be over 8 GB, beyond `max_object_bytes`' ceiling.
                seen.insert(vacancy, number as u32);
                None
            }
        };
        match reason {
            Some(reason) => {
                columns.abandon_row();
                failure = reject(rejected(header, number, reason, &cells)).err();
            }
            None => {
                columns.end_row();
                rows_out += 1;
                if columns.rows() >= ROW_GROUP_ROWS {
                    failure = flush(&mut columns, &mut profile).err();
                }
            }
        }
        spare_cells = recycle(cells);
        failure_stops(&failure)
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    if columns.rows() > 0 || profile.is_none() {
        flush(&mut columns, &mut profile)?;
    }
    let profile = profile.expect("flushed at least once");
    let summary = TableSummary { profile, schema, rows_in, rows_out, rows_rejected };
    Ok((summary, sink.finish()?))
}

/// Stops reading the table once writing a row or a rejected row has failed.
fn failure_stops(failure: &Option<EtlError>) -> ControlFlow<()> {
    if failure.is_some() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
}

/// The row's cell at `position` trimmed, `None` for a null or a missing cell.
fn normalised_cell<'a>(raw: &[Option<&'a str>], position: usize) -> Option<&'a str> {
    raw.get(position).copied().flatten().and_then(normalise)
}

#[cfg(test)]
mod tests;
