//! Training data: every Parquet file of a channel, read into one frame.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::basic::{ConvertedType, Repetition, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::errors::{ParquetError, Result as ParquetResult};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;
use sluice_core::values::timestamp_feature;
use sluice_model::{Column, Frame};

use crate::TrainError;

/// Parquet files under `dir`, at any depth, in path order (so a run is repeatable).
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(|e| TrainError::Data(format!("{}: {e}", current.display())))?;
        for entry in entries {
            let path = entry.map_err(|e| TrainError::Data(e.to_string()))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the Parquet files into one frame, column by column: each leaf column of each row
/// group is decoded in one call into its values and definition levels, then turned into
/// the frame's column (numbers as f64, text, or float vectors from image rows).
pub fn read_frame(files: &[PathBuf]) -> Result<Frame, TrainError> {
    let mut frame = Frame::default();
    for path in files {
        let unreadable = |e: &dyn std::fmt::Display| TrainError::Data(format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(|e| unreadable(&e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| unreadable(&e))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let fields = schema.root_schema().get_fields();
        let mut columns: Vec<(String, Column)> = fields
            .iter()
            .map(|field| {
                let column = if field.is_group() {
                    Column::Vector(Vec::new())
                } else if matches!(
                    field.get_physical_type(),
                    PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY
                ) {
                    Column::Categorical(Vec::new())
                } else {
                    Column::Numeric(Vec::new())
                };
                (field.name().to_owned(), column)
            })
            .collect();
        for group in 0..reader.num_row_groups() {
            let row_group = reader.get_row_group(group).map_err(|e| unreadable(&e))?;
            let rows = usize::try_from(row_group.metadata().num_rows()).unwrap_or(0);
            let mut previous_root = None;
            for leaf in 0..schema.num_columns() {
                let root = schema.get_column_root_idx(leaf);
                if previous_root.replace(root) == Some(root) {
                    continue; // A record's later fields: its first one gave the rows (nulls).
                }
                let descriptor = schema.column(leaf);
                let nullable = schema.get_column_root(leaf).get_basic_info().repetition() == Repetition::OPTIONAL;
                let column_reader = row_group.get_column_reader(leaf).map_err(|e| unreadable(&e))?;
                read_leaf(column_reader, &descriptor, nullable, rows, &mut columns[root].1)
                    .map_err(|e| unreadable(&e))?;
            }
        }
        frame.append(Frame { columns }).map_err(TrainError::Data)?;
    }
    Ok(frame)
}

/// Appends one row group's `rows` values of a leaf column to `column`; `nullable`: whether
/// the top-level field the leaf belongs to is optional.
fn read_leaf(
    reader: ColumnReader,
    leaf: &ColumnDescriptor,
    nullable: bool,
    rows: usize,
    column: &mut Column,
) -> ParquetResult<()> {
    // Every number becomes a feature in f64; times are seconds since the epoch, as in the
    // data profiles and at serving time.
    let scale = match leaf.converted_type() {
        ConvertedType::DECIMAL => 10f64.powi(-leaf.type_scale()),
        _ => 1.0,
    };
    let long = |v: i64| match leaf.converted_type() {
        ConvertedType::TIMESTAMP_MICROS => timestamp_feature(v),
        ConvertedType::TIMESTAMP_MILLIS => timestamp_feature(v.saturating_mul(1000)),
        _ => v as f64 * scale,
    };
    let int = |v: i32| match leaf.converted_type() {
        ConvertedType::DATE => f64::from(v) * 86_400.0,
        _ => f64::from(v) * scale,
    };
    let before = column.len();
    match (reader, &mut *column) {
        (ColumnReader::BoolColumnReader(r), Column::Numeric(out)) => {
            scalars(r, leaf, rows, out, |v| f64::from(u8::from(v)))
        }
        (ColumnReader::Int32ColumnReader(r), Column::Numeric(out)) => scalars(r, leaf, rows, out, int),
        (ColumnReader::Int64ColumnReader(r), Column::Numeric(out)) => scalars(r, leaf, rows, out, long),
        (ColumnReader::Int96ColumnReader(r), Column::Numeric(out)) => {
            scalars(r, leaf, rows, out, |v| timestamp_feature(v.to_micros()))
        }
        (ColumnReader::FloatColumnReader(r), Column::Numeric(out)) => scalars(r, leaf, rows, out, f64::from),
        (ColumnReader::DoubleColumnReader(r), Column::Numeric(out)) => scalars(r, leaf, rows, out, |v| v),
        (ColumnReader::ByteArrayColumnReader(r), Column::Categorical(out)) => {
            scalars(r, leaf, rows, out, |v| String::from_utf8_lossy(v.data()).into_owned())
        }
        (ColumnReader::FixedLenByteArrayColumnReader(r), Column::Categorical(out)) => {
            scalars(r, leaf, rows, out, |v| String::from_utf8_lossy(v.data()).into_owned())
        }
        (ColumnReader::FloatColumnReader(r), Column::Vector(out)) if leaf.max_rep_level() == 1 => {
            vectors(r, leaf, nullable, rows, out, |v| v)
        }
        (ColumnReader::DoubleColumnReader(r), Column::Vector(out)) if leaf.max_rep_level() == 1 => {
            vectors(r, leaf, nullable, rows, out, |v| v as f32)
        }
        (_, column) => {
            // A group of anything but a list of numbers (a record, a list of text) is no feature.
            column.extend_nulls(rows);
            Ok(())
        }
    }?;
    // NaN and infinities are missing values, as for scikit-learn's imputers; the feature
    // pipeline fills them like nulls.
    if let Column::Numeric(values) = column {
        for value in &mut values[before..] {
            if value.is_some_and(|v| !v.is_finite()) {
                *value = None;
            }
        }
    }
    Ok(())
}

/// One row group's worth of a leaf column: its values, and the definition level of each
/// record (where the column is optional) and repetition level (where it is a list).
struct Leaf<T> {
    values: Vec<T>,
    definitions: Vec<i16>,
    repetitions: Vec<i16>,
}

/// Every record of the row group at once.
fn records<T: DataType>(
    mut reader: ColumnReaderImpl<T>,
    leaf: &ColumnDescriptor,
    rows: usize,
) -> ParquetResult<Leaf<T::T>> {
    let mut read = Leaf { values: Vec::with_capacity(rows), definitions: Vec::new(), repetitions: Vec::new() };
    let mut records = 0;
    while records < rows {
        let definitions = (leaf.max_def_level() > 0).then_some(&mut read.definitions);
        let repetitions = (leaf.max_rep_level() > 0).then_some(&mut read.repetitions);
        let (more, _, _) = reader.read_records(rows - records, definitions, repetitions, &mut read.values)?;
        if more == 0 {
            return Err(ParquetError::General(format!("column {} ends after {records} of {rows} rows", leaf.path())));
        }
        records += more;
    }
    Ok(read)
}

fn scalars<T: DataType, V>(
    reader: ColumnReaderImpl<T>,
    leaf: &ColumnDescriptor,
    rows: usize,
    out: &mut Vec<Option<V>>,
    convert: impl Fn(T::T) -> V,
) -> ParquetResult<()> {
    let Leaf { values, definitions, .. } = records(reader, leaf, rows)?;
    if definitions.is_empty() {
        out.extend(values.into_iter().map(|v| Some(convert(v))));
    } else {
        let mut values = values.into_iter();
        let present = leaf.max_def_level();
        out.extend(definitions.iter().map(|&d| if d == present { values.next().map(&convert) } else { None }));
    }
    Ok(())
}

/// Lists of numbers: a repetition level of 0 starts a row; an element is there where the
/// definition level is the maximum (a null element, one below it if elements are optional,
/// counts as 0). A list that is itself null (`nullable`, level 0) is a null row.
fn vectors<T: DataType>(
    reader: ColumnReaderImpl<T>,
    leaf: &ColumnDescriptor,
    nullable: bool,
    rows: usize,
    out: &mut Vec<Option<Vec<f32>>>,
    convert: impl Fn(T::T) -> f32,
) -> ParquetResult<()> {
    let Leaf { values, definitions, repetitions } = records(reader, leaf, rows)?;
    let element = leaf.max_def_level();
    let null_element = (leaf.self_type().get_basic_info().repetition() == Repetition::OPTIONAL).then(|| element - 1);
    let mut values = values.into_iter();
    for (&definition, &repetition) in definitions.iter().zip(&repetitions) {
        if repetition == 0 {
            out.push((!(nullable && definition == 0)).then(Vec::new));
        }
        let value = if definition == element {
            values.next().map(&convert)
        } else {
            (Some(definition) == null_element).then_some(0.0)
        };
        if let (Some(Some(row)), Some(value)) = (out.last_mut(), value) {
            row.push(value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sluice_core::options::DatasetOptions;
    use sluice_etl::{ROW_GROUP_ROWS, process_image, process_table};
    use sluice_formats::ContentKind;

    use super::*;

    fn written(dir: &Path, name: &str, parquet: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, parquet).unwrap();
        path
    }

    /// Curated Parquet as the ETL writes it, over two row groups, with a null in every
    /// column: each kind of value arrives as the feature serving computes from it.
    #[test]
    fn curated_parquet_reads_into_typed_columns() {
        let dir = std::env::temp_dir().join(format!("sluice-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut csv = String::from("n,x,flag,city,at,day\n");
        for i in 0..ROW_GROUP_ROWS + 2 {
            csv.push_str(&format!(
                "{i},{}.5,{},c{},2026-11-22T10:00:{:02}Z,2026-11-{:02}\n",
                i % 7,
                i % 2 == 0,
                i % 3,
                i % 60,
                1 + i % 28
            ));
        }
        csv.push_str(",,,,,\n");
        let table = process_table(ContentKind::Csv, csv.as_bytes(), None, &DatasetOptions::default()).unwrap();
        assert_eq!(table.rejected, Vec::new());
        let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/digit-7.png")).unwrap();
        let options = DatasetOptions { image_size: Some([4, 3]), ..DatasetOptions::default() };
        let image = process_image(ContentKind::Png, &png, Some("7"), None, &options).unwrap();

        let frame = read_frame(&[written(&dir, "table.parquet", &table.parquet)]).unwrap();
        let images = read_frame(&[written(&dir, "image.parquet", &image.parquet)]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let rows = ROW_GROUP_ROWS + 3;
        assert_eq!(frame.rows(), rows);
        let numbers = |name: &str| match frame.column(name) {
            Some(Column::Numeric(values)) => values.clone(),
            other => panic!("{name}: {other:?}"),
        };
        // Row ROW_GROUP_ROWS + 1 is in the second row group.
        let last = ROW_GROUP_ROWS + 1;
        assert_eq!(numbers("n")[last], Some(last as f64));
        assert_eq!(numbers("x")[last], Some((last % 7) as f64 + 0.5));
        assert_eq!(numbers("flag")[..2], [Some(1.0), Some(0.0)]);
        assert_eq!(numbers("at")[1], Some(timestamp_feature(1_795_341_601_000_000)));
        assert_eq!(numbers("day")[0], Some(1_793_491_200.0));
        let Some(Column::Categorical(cities)) = frame.column("city") else { panic!("city is text") };
        assert_eq!(cities[last].as_deref(), Some(format!("c{}", last % 3).as_str()));
        for name in ["n", "x", "flag", "at", "day"] {
            assert_eq!(numbers(name)[rows - 1], None, "{name}");
        }
        assert_eq!(cities[rows - 1], None);

        let Some(Column::Vector(pixels)) = images.column("pixels") else { panic!("pixels are a vector") };
        assert_eq!(pixels.len(), 1);
        assert_eq!(pixels[0].as_ref().map(Vec::len), Some(12));
        let Some(Column::Categorical(labels)) = images.column("label") else { panic!("label is text") };
        assert_eq!(labels, &[Some("7".to_owned())]);
    }

    /// Files written elsewhere (pandas, Spark) may hold NaN where a value is missing.
    #[test]
    fn nan_and_infinities_are_missing_values() {
        use parquet::data_type::DoubleType;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;

        let schema = std::sync::Arc::new(parse_message_type("message m { required double x; }").unwrap());
        let mut parquet = Vec::new();
        let mut writer = SerializedFileWriter::new(&mut parquet, schema, Default::default()).unwrap();
        let mut row_group = writer.next_row_group().unwrap();
        let mut column = row_group.next_column().unwrap().unwrap();
        column.typed::<DoubleType>().write_batch(&[1.5, f64::NAN, f64::INFINITY, -2.0], None, None).unwrap();
        column.close().unwrap();
        row_group.close().unwrap();
        writer.close().unwrap();

        let dir = std::env::temp_dir().join(format!("sluice-nan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let frame = read_frame(&[written(&dir, "nan.parquet", &parquet)]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(frame.column("x"), Some(&Column::Numeric(vec![Some(1.5), None, None, Some(-2.0)])));
    }
}
