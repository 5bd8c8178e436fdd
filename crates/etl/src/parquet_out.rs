//! Typed column buffers and the Parquet file they become (Snappy, one row group per
//! buffer flush, every column optional).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type};

use crate::{EtlError, FastMap};
use sluice_core::options::DecimalSeparator;
use sluice_core::schema::{ColumnType, Field, Schema};
use sluice_core::values::{parse_bool, parse_float, parse_integer, parse_timestamp, timestamp_feature};
use sluice_profile::{ColumnProfile, Profile};

/// Rows per row group: large enough for good compression and fast scans, small enough
/// that one group's buffers stay a fraction of a Lambda's memory.
pub const ROW_GROUP_ROWS: usize = 100_000;

enum Values {
    Boolean(Vec<bool>),
    Integer(Vec<i64>),
    Float(Vec<f64>),
    Timestamp(Vec<i64>),
    /// Every value's bytes one after the other, and where each ends: one allocation per
    /// row group, not one per value.
    String {
        bytes: Vec<u8>,
        ends: Vec<usize>,
    },
    /// Every row's elements one after the other; `repetition_levels` marks where rows start.
    Vector {
        elements: Vec<f32>,
        repetition_levels: Vec<i16>,
    },
}

struct Column {
    values: Values,
    /// Scalars: 1 where the row has a value, 0 for null. Vectors: 1 per element.
    definition_levels: Vec<i16>,
}

/// The rows of one row group, column by column.
pub struct Columns {
    columns: Vec<Column>,
    rows: usize,
    /// How the texts of number cells write their decimals.
    decimal: DecimalSeparator,
}

impl Columns {
    pub fn new(schema: &Schema, decimal: DecimalSeparator) -> Self {
        let columns = schema
            .fields
            .iter()
            .map(|field| Column {
                values: match field.column_type {
                    ColumnType::Boolean => Values::Boolean(Vec::new()),
                    ColumnType::Integer => Values::Integer(Vec::new()),
                    ColumnType::Float => Values::Float(Vec::new()),
                    ColumnType::Timestamp => Values::Timestamp(Vec::new()),
                    ColumnType::String => Values::String { bytes: Vec::new(), ends: Vec::new() },
                    ColumnType::Vector => Values::Vector { elements: Vec::new(), repetition_levels: Vec::new() },
                },
                definition_levels: Vec::new(),
            })
            .collect();
        Self { columns, rows: 0, decimal }
    }

    /// Appends the current row's cell of column `index` read from `text`; `false`, and
    /// nothing appended, when `text` is not a value of the column's type.
    pub fn push_text(&mut self, index: usize, text: &str) -> bool {
        let column = &mut self.columns[index];
        let pushed = match &mut column.values {
            Values::Boolean(v) => parse_bool(text).map(|x| v.push(x)),
            Values::Integer(v) => parse_integer(text).map(|x| v.push(x)),
            Values::Float(v) => parse_float(text, self.decimal).map(|x| v.push(x)),
            Values::Timestamp(v) => parse_timestamp(text).map(|x| v.push(x)),
            Values::String { bytes, ends } => {
                bytes.extend_from_slice(text.as_bytes());
                ends.push(bytes.len());
                Some(())
            }
            // Vectors come from images, never from text cells.
            Values::Vector { .. } => None,
        };
        if pushed.is_some() {
            column.definition_levels.push(1);
        }
        pushed.is_some()
    }

    /// Appends a null as the current row's cell of column `index`.
    pub fn push_null(&mut self, index: usize) {
        self.columns[index].definition_levels.push(0);
    }

    /// Appends `values` as the current row's cell of column `index`, a vector column.
    pub fn push_vector(&mut self, index: usize, values: &[f32]) {
        let column = &mut self.columns[index];
        let Values::Vector { elements, repetition_levels } = &mut column.values else {
            unreachable!("only images have vectors, and they go to their vector column");
        };
        elements.extend_from_slice(values);
        repetition_levels.extend((0..values.len()).map(|i| i16::from(i > 0)));
        column.definition_levels.extend(std::iter::repeat_n(1, values.len()));
    }

    /// Takes back the cells pushed for a row that is not ending (one of its cells failed).
    pub fn abandon_row(&mut self) {
        for column in &mut self.columns {
            if column.definition_levels.len() == self.rows {
                continue;
            }
            if column.definition_levels.pop() == Some(1) {
                match &mut column.values {
                    Values::Boolean(v) => drop(v.pop()),
                    Values::Integer(v) | Values::Timestamp(v) => drop(v.pop()),
                    Values::Float(v) => drop(v.pop()),
                    Values::String { bytes, ends } => {
                        ends.pop();
                        bytes.truncate(ends.last().copied().unwrap_or(0));
                    }
                    Values::Vector { .. } => unreachable!("vectors come whole, from images"),
                }
            }
        }
    }

    /// Ends the row whose cells were [`push`](Self::push)ed, one per column.
    pub fn end_row(&mut self) {
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Profiles the buffered rows: numbers (timestamps in seconds since the epoch) by their
    /// distribution, booleans and strings by their most frequent values, counting at most
    /// `max_distinct` different values per column (the rest go to "other").
    pub fn profile(&self, fields: &[Field], max_distinct: usize) -> Profile {
        let mut numbers = Vec::new();
        let columns = fields
            .iter()
            .zip(&self.columns)
            .map(|(field, column)| {
                let (name, kind) = (field.name.as_str(), field.column_type.as_str());
                let nulls = column.definition_levels.iter().filter(|&&level| level == 0).count() as u64;
                let categorical = |frequencies: BTreeMap<String, u64>, untracked| {
                    ColumnProfile::categorical(name, kind, frequencies, untracked, nulls)
                };
                match &column.values {
                    Values::Float(values) => ColumnProfile::numeric(name, kind, values, nulls),
                    Values::Integer(values) | Values::Timestamp(values) => {
                        let as_number: fn(i64) -> f64 =
                            if field.column_type == ColumnType::Timestamp { timestamp_feature } else { |v| v as f64 };
                        numbers.clear();
                        numbers.extend(values.iter().map(|&v| as_number(v)));
                        ColumnProfile::numeric(name, kind, &numbers, nulls)
                    }
                    Values::Boolean(values) => {
                        let trues = values.iter().filter(|&&v| v).count() as u64;
                        let counts = [("true", trues), ("false", values.len() as u64 - trues)];
                        categorical(counts.iter().filter(|(_, n)| *n > 0).map(|&(v, n)| (v.to_owned(), n)).collect(), 0)
                    }
                    Values::String { bytes, ends } => {
                        let mut frequencies: FastMap<&[u8], u64> = FastMap::default();
                        let mut untracked = 0;
                        let mut start = 0;
                        for &end in ends {
                            let value = &bytes[start..end];
                            start = end;
                            if let Some(n) = frequencies.get_mut(value) {
                                *n += 1;
                            } else if frequencies.len() < max_distinct {
                                frequencies.insert(value, 1);
                            } else {
                                untracked += 1;
                            }
                        }
                        let frequencies = frequencies
                            .into_iter()
                            .map(|(value, n)| (String::from_utf8_lossy(value).into_owned(), n))
                            .collect();
                        categorical(frequencies, untracked)
                    }
                    // Images profile their pixels themselves (see `process_image`).
                    Values::Vector { .. } => categorical(BTreeMap::new(), 0),
                }
            })
            .collect();
        Profile { rows: self.rows as u64, columns }
    }

    fn clear(&mut self) {
        self.rows = 0;
        for column in &mut self.columns {
            column.definition_levels.clear();
            match &mut column.values {
                Values::Boolean(v) => v.clear(),
                Values::Integer(v) | Values::Timestamp(v) => v.clear(),
                Values::Float(v) => v.clear(),
                Values::String { bytes, ends } => {
                    bytes.clear();
                    ends.clear();
                }
                Values::Vector { elements, repetition_levels } => {
                    elements.clear();
                    repetition_levels.clear();
                }
            }
        }
    }
}

/// `required group <name> (LIST) { repeated group list { required float element; } }`:
/// the standard three-level list that pyarrow and pandas read as an array column.
fn vector_type(name: &str) -> parquet::errors::Result<Arc<Type>> {
    let element =
        Type::primitive_type_builder("element", PhysicalType::FLOAT).with_repetition(Repetition::REQUIRED).build()?;
    let list = Type::group_type_builder("list")
        .with_repetition(Repetition::REPEATED)
        .with_fields(vec![Arc::new(element)])
        .build()?;
    let group = Type::group_type_builder(name)
        .with_repetition(Repetition::REQUIRED)
        .with_logical_type(Some(LogicalType::List))
        .with_fields(vec![Arc::new(list)])
        .build()?;
    Ok(Arc::new(group))
}

/// The Parquet file being written to `W`, a row group at a time.
pub struct ParquetSink<W: Write + Send> {
    writer: SerializedFileWriter<W>,
}

fn failed(err: parquet::errors::ParquetError) -> EtlError {
    EtlError::Parquet(err.to_string())
}

impl<W: Write + Send> ParquetSink<W> {
    /// A file of `schema`'s columns; `rarely_repeat[i]` says that column `i`'s values mostly
    /// occur once (columns past its end are assumed to repeat).
    pub fn new(schema: &Schema, rarely_repeat: &[bool], output: W) -> Result<Self, EtlError> {
        let fields = schema
            .fields
            .iter()
            .map(|field| {
                let (physical, logical) = match field.column_type {
                    ColumnType::Boolean => (PhysicalType::BOOLEAN, None),
                    ColumnType::Integer => (PhysicalType::INT64, None),
                    ColumnType::Float => (PhysicalType::DOUBLE, None),
                    ColumnType::Timestamp => {
                        (PhysicalType::INT64, Some(LogicalType::timestamp(true, TimeUnit::MICROS)))
                    }
                    ColumnType::String => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
                    ColumnType::Vector => return vector_type(&field.name),
                };
                Type::primitive_type_builder(&field.name, physical)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(logical)
                    .build()
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        let root = Type::group_type_builder("schema").with_fields(fields).build().map_err(failed)?;
        // Dictionaries pay off for repeated values; floats and timestamps rarely repeat, nor
        // do the columns `rarely_repeat` names, and encoding them twice (dictionary first,
        // plain when it overflows) costs time for nothing.
        let properties = schema
            .fields
            .iter()
            .zip(rarely_repeat.iter().chain(std::iter::repeat(&false)))
            .filter(|&(field, &rare)| rare || matches!(field.column_type, ColumnType::Float | ColumnType::Timestamp))
            .fold(WriterProperties::builder(), |builder, (field, _)| {
                builder.set_column_dictionary_enabled(ColumnPath::from(field.name.as_str()), false)
            })
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("sluice-etl {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(output, Arc::new(root), Arc::new(properties)).map_err(failed)?;
        Ok(Self { writer })
    }

    /// Writes the buffered rows as one row group and empties the buffers.
    pub fn write_row_group(&mut self, columns: &mut Columns) -> Result<(), EtlError> {
        if columns.rows() == 0 {
            return Ok(());
        }
        let mut row_group = self.writer.next_row_group().map_err(failed)?;
        for column in &columns.columns {
            let mut writer = row_group.next_column().map_err(failed)?.expect("one writer per schema column");
            let levels = Some(column.definition_levels.as_slice());
            match &column.values {
                Values::Boolean(v) => writer.typed::<BoolType>().write_batch(v, levels, None),
                Values::Integer(v) | Values::Timestamp(v) => writer.typed::<Int64Type>().write_batch(v, levels, None),
                Values::Float(v) => writer.typed::<DoubleType>().write_batch(v, levels, None),
                Values::String { bytes, ends } => {
                    // Each value a slice of one shared copy of the buffer: no allocation per value.
                    let shared = Bytes::copy_from_slice(bytes);
                    let mut start = 0;
                    let values: Vec<ByteArray> = ends
                        .iter()
                        .map(|&end| {
                            let value = ByteArray::from(shared.slice(start..end));
                            start = end;
                            value
                        })
                        .collect();
                    writer.typed::<ByteArrayType>().write_batch(&values, levels, None)
                }
                Values::Vector { elements, repetition_levels } => {
                    writer.typed::<FloatType>().write_batch(elements, levels, Some(repetition_levels))
                }
            }
            .map_err(failed)?;
            writer.close().map_err(failed)?;
        }
        row_group.close().map_err(failed)?;
        columns.clear();
        Ok(())
    }

    pub fn finish(self) -> Result<W, EtlError> {
        self.writer.into_inner().map_err(failed)
    }
}
