//! Rows of an object as text cells, whatever its format. CSV is re-read on each pass
//! rather than held as cells, so a large file costs its bytes plus one row at a time.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use serde_json::Value;
use sluice_formats::ContentKind;

use crate::EtlError;

pub struct RawTable<'a> {
    pub header: Vec<String>,
    source: Source<'a>,
}

enum Source<'a> {
    Csv { body: &'a [u8], delimiter: u8 },
    Rows(Vec<Vec<Option<String>>>),
}

/// How to read a dataset's tabular files.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub csv_delimiter: Option<u8>,
    /// The xlsx sheet to read; the first one if unset.
    pub sheet: Option<String>,
}

impl<'a> RawTable<'a> {
    pub fn read(kind: ContentKind, body: &'a [u8], options: &ReadOptions) -> Result<Self, EtlError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        match kind {
            ContentKind::Csv => {
                let delimiter = options.csv_delimiter.unwrap_or(b',');
                let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(body);
                let header = reader.headers().map_err(|err| EtlError::Parse(err.to_string()))?;
                Ok(Self {
                    header: header.iter().map(|h| h.trim().to_owned()).collect(),
                    source: Source::Csv { body, delimiter },
                })
            }
            ContentKind::Xlsx => read_xlsx(body, options.sheet.as_deref()),
            ContentKind::Json => {
                let value: Value =
                    serde_json::from_slice(body).map_err(|err| EtlError::Parse(format!("JSON: {err}")))?;
                let records = match value {
                    Value::Array(records) => records,
                    object @ Value::Object(_) => vec![object],
                    _ => return Err(EtlError::Parse("JSON body must be an array of objects or one object".into())),
                };
                Ok(from_json_records(records.into_iter().map(Ok))?)
            }
            ContentKind::Ndjson => {
                let text =
                    std::str::from_utf8(body).map_err(|err| EtlError::Parse(format!("NDJSON is not UTF-8: {err}")))?;
                let records =
                    text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()).map(|(index, line)| {
                        serde_json::from_str(line)
                            .map_err(|err| EtlError::Parse(format!("NDJSON line {}: {err}", index + 1)))
                    });
                from_json_records(records)
            }
            ContentKind::Png | ContentKind::Jpeg => Err(EtlError::Parse("images are not tables".into())),
        }
    }

    /// Calls `row` with each data row's 1-based number and its cells (`None` where a
    /// record has no value for a column).
    pub fn for_each_row(&self, mut row: impl FnMut(u64, &[Option<&str>])) -> Result<(), EtlError> {
        match &self.source {
            Source::Csv { body, delimiter } => {
                let mut reader = csv::ReaderBuilder::new().delimiter(*delimiter).flexible(true).from_reader(*body);
                let mut record = csv::ByteRecord::new();
                let mut number = 0;
                while reader.read_byte_record(&mut record).map_err(|err| EtlError::Parse(format!("CSV: {err}")))? {
                    number += 1;
                    let mut cells = Vec::with_capacity(record.len());
                    for field in record.iter() {
                        let text = std::str::from_utf8(field)
                            .map_err(|_| EtlError::Parse(format!("CSV row {number} is not valid UTF-8")))?;
                        cells.push(Some(text));
                    }
                    row(number, &cells);
                }
            }
            Source::Rows(rows) => {
                let mut cells = Vec::with_capacity(self.header.len());
                for (index, values) in rows.iter().enumerate() {
                    cells.clear();
                    cells.extend(values.iter().map(Option::as_deref));
                    row(index as u64 + 1, &cells);
                }
            }
        }
        Ok(())
    }
}

fn read_xlsx<'a>(body: &'a [u8], sheet: Option<&str>) -> Result<RawTable<'a>, EtlError> {
    let invalid = |err: String| EtlError::Parse(format!("xlsx: {err}"));
    let mut workbook = Xlsx::new(Cursor::new(body)).map_err(|err| invalid(err.to_string()))?;
    let range = match sheet {
        Some(name) => workbook.worksheet_range(name).map_err(|err| invalid(format!("sheet {name:?}: {err}")))?,
        None => workbook
            .worksheet_range_at(0)
            .ok_or_else(|| invalid("the workbook has no worksheets".into()))?
            .map_err(|err| invalid(err.to_string()))?,
    };
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| invalid("the sheet is empty".into()))?
        .iter()
        .map(|c| c.to_string().trim().to_owned())
        .collect();
    let cell_text = |cell: &Data| match cell {
        Data::Empty => None,
        // Whole numbers stored as floats (Excel has no integers) read back as integers.
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(format!("{}", *f as i64)),
        Data::DateTime(dt) => excel_serial_to_iso(dt.as_f64()),
        other => Some(other.to_string()),
    };
    let rows = rows.map(|row| row.iter().map(cell_text).collect()).collect();
    Ok(RawTable { header, source: Source::Rows(rows) })
}

/// Objects become rows over the union of their keys, in first-seen order. Nested values
/// are kept as their JSON text.
fn from_json_records<'a>(records: impl Iterator<Item = Result<Value, EtlError>>) -> Result<RawTable<'a>, EtlError> {
    let mut header: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    for (index, record) in records.enumerate() {
        let Value::Object(object) = record? else {
            return Err(EtlError::Parse(format!("JSON record {} is not an object", index + 1)));
        };
        for key in object.keys() {
            if !header.contains(key) {
                header.push(key.clone());
            }
        }
        objects.push(object);
    }
    let rows = objects
        .into_iter()
        .map(|object| {
            header
                .iter()
                .map(|key| match object.get(key) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                })
                .collect()
        })
        .collect();
    Ok(RawTable { header, source: Source::Rows(rows) })
}

/// Excel stores date-times as days since 1899-12-30 (fractions are the time of day).
fn excel_serial_to_iso(serial: f64) -> Option<String> {
    const UNIX_EPOCH_SERIAL: f64 = 25_569.0;
    let seconds = ((serial - UNIX_EPOCH_SERIAL) * 86_400.0).round() as i64;
    let datetime = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    datetime.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).ok()
}
