//! Training data: every Parquet file of a channel, read into one frame.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::basic::Type as PhysicalType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
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

enum Kind {
    Numeric,
    Categorical,
    Vector,
}

pub fn read_frame(files: &[PathBuf]) -> Result<Frame, TrainError> {
    let mut frame = Frame::default();
    for path in files {
        let unreadable = |e: &dyn std::fmt::Display| TrainError::Data(format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(|e| unreadable(&e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| unreadable(&e))?;
        let schema = reader.metadata().file_metadata().schema();
        let mut columns: Vec<(String, Kind, Column)> = schema
            .get_fields()
            .iter()
            .map(|field| {
                let kind = if field.is_group() {
                    Kind::Vector
                } else {
                    match field.get_physical_type() {
                        PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY => Kind::Categorical,
                        _ => Kind::Numeric,
                    }
                };
                let column = match kind {
                    Kind::Numeric => Column::Numeric(Vec::new()),
                    Kind::Categorical => Column::Categorical(Vec::new()),
                    Kind::Vector => Column::Vector(Vec::new()),
                };
                (field.name().to_owned(), kind, column)
            })
            .collect();
        for row in reader.get_row_iter(None).map_err(|e| unreadable(&e))? {
            let row = row.map_err(|e| unreadable(&e))?;
            for ((_, field), (_, _, column)) in row.get_column_iter().zip(columns.iter_mut()) {
                match column {
                    Column::Numeric(values) => values.push(number(field)),
                    Column::Categorical(values) => values.push(match field {
                        Field::Null => None,
                        Field::Str(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    }),
                    Column::Vector(values) => values.push(vector(field)),
                }
            }
        }
        let part = Frame { columns: columns.into_iter().map(|(name, _, column)| (name, column)).collect() };
        frame.append(part).map_err(TrainError::Data)?;
    }
    Ok(frame)
}

fn number(field: &Field) -> Option<f64> {
    Some(match *field {
        Field::Bool(b) => f64::from(u8::from(b)),
        Field::Byte(v) => f64::from(v),
        Field::Short(v) => f64::from(v),
        Field::Int(v) => f64::from(v),
        Field::Long(v) => v as f64,
        Field::UByte(v) => f64::from(v),
        Field::UShort(v) => f64::from(v),
        Field::UInt(v) => f64::from(v),
        Field::ULong(v) => v as f64,
        Field::Float(v) => f64::from(v),
        Field::Double(v) => v,
        // Times are seconds since the epoch, as in the data profiles and at serving time.
        Field::TimestampMicros(v) => timestamp_feature(v),
        Field::TimestampMillis(v) => timestamp_feature(v * 1000),
        Field::Date(days) => f64::from(days) * 86_400.0,
        _ => return None,
    })
}

fn vector(field: &Field) -> Option<Vec<f32>> {
    let Field::ListInternal(list) = field else { return None };
    Some(
        list.elements()
            .iter()
            .map(|element| match *element {
                Field::Float(v) => v,
                Field::Double(v) => v as f32,
                _ => 0.0,
            })
            .collect(),
    )
}
