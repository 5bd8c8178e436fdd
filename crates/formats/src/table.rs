//! Tables read as a stream of rows of text cells, whatever the format, with every
//! dimension capped while parsing: ingest validates with these readers and the ETL converts
//! with them, so what ingest accepts is what the ETL can read.
//!
//! - CSV goes through `csv-core` into one row buffer of `max_row_bytes` and a field-end
//!   buffer of `max_columns`: a longer row or a wider one stops the read at that row.
//! - NDJSON is read a line at a time, each line capped at `max_row_bytes` before it is
//!   parsed; JSON arrays are deserialised one record at a time from the reader, each record
//!   capped the same way.
//! - xlsx sheets are read cell by cell as they stream out of the zip; a cell past
//!   `max_columns` or one cell too many is refused before any row exists, and the workbook's
//!   declared part sizes (which the zip reader enforces) are checked first.
//!
//! Rows reach a callback as `(header, row number, cells)`. JSON's header is the union of
//! the keys seen so far, in first-seen order, so it can grow during a read; cells follow
//! the header at the time of the row.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

use calamine::{Data, Reader, Xlsx};
use serde::de::{SeqAccess, Visitor};
use serde_json::Value;
use sluice_core::options::{DatasetOptions, MAX_COLUMN_NAME_BYTES, TableLimits};

use crate::{ContentKind, FormatError};

/// How to read a dataset's tabular objects.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub csv_delimiter: Option<u8>,
    /// The xlsx sheet to read; the first one if unset.
    pub sheet: Option<String>,
    pub limits: TableLimits,
}

impl From<&DatasetOptions> for ReadOptions {
    fn from(options: &DatasetOptions) -> Self {
        Self {
            csv_delimiter: options.csv_delimiter.map(|c| c as u8),
            sheet: options.sheet.clone(),
            limits: options.limits,
        }
    }
}

/// What the row callback gets: the header (as known so far), the 1-based data row number,
/// and the row's cells (`None` where a record has no value for a column).
pub type RowFn<'f> = dyn FnMut(&[String], u64, &[Option<&str>]) -> ControlFlow<()> + 'f;

/// Reads the table in `input` row by row until the end or until `row` breaks.
pub fn read_table(
    kind: ContentKind,
    input: impl Read,
    options: &ReadOptions,
    row: &mut RowFn<'_>,
) -> Result<(), FormatError> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    skip_utf8_bom(&mut input)?;
    let limits = &options.limits;
    match kind {
        ContentKind::Csv => read_csv(input, options.csv_delimiter.unwrap_or(b','), limits, row),
        ContentKind::Ndjson => read_ndjson(input, limits, row),
        ContentKind::Json => read_json(input, limits, row),
        ContentKind::Xlsx => read_xlsx(input, options.sheet.as_deref(), limits, row),
        ContentKind::Png | ContentKind::Jpeg => Err(FormatError::NotATable(kind.to_string())),
    }
}

fn skip_utf8_bom(input: &mut impl BufRead) -> Result<(), FormatError> {
    if input.fill_buf().map_err(io_error)?.starts_with(b"\xEF\xBB\xBF") {
        input.consume(3);
    }
    Ok(())
}

fn io_error(err: std::io::Error) -> FormatError {
    FormatError::Read(err.to_string())
}

fn over(what: &str, limit: u64, at: String) -> FormatError {
    FormatError::Limit { what: what.to_owned(), limit, at }
}

/// Column names become Parquet columns and schema entries: present, unique, short, printable.
fn check_header(names: &[String]) -> Result<(), FormatError> {
    if names.is_empty() {
        return Err(FormatError::NoColumns);
    }
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let column = index + 1;
        let problem = if name.is_empty() {
            "empty column name".to_owned()
        } else if name.len() > MAX_COLUMN_NAME_BYTES {
            format!("column name is {} bytes, more than the {MAX_COLUMN_NAME_BYTES} allowed", name.len())
        } else if name.chars().any(char::is_control) {
            format!("column name {name:?} contains a control character")
        } else if !seen.insert(name.as_str()) {
            format!("duplicate column name {name:?}")
        } else {
            continue;
        };
        return Err(FormatError::Header { column, message: problem });
    }
    Ok(())
}

fn check_field_length(text: &str, limits: &TableLimits, row: u64) -> Result<(), FormatError> {
    if text.len() > limits.max_field_bytes {
        return Err(over("max_field_bytes", limits.max_field_bytes as u64, format!("a cell of row {row}")));
    }
    Ok(())
}

fn read_csv(
    mut input: impl BufRead,
    delimiter: u8,
    limits: &TableLimits,
    row: &mut RowFn<'_>,
) -> Result<(), FormatError> {
    let mut parser = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    // As many field ends as columns allowed: a wider row finds the buffer full.
    let mut ends = vec![0; limits.max_columns];
    let mut output = vec![0; limits.max_row_bytes];
    let mut header: Option<Vec<String>> = None;
    let mut number = 0;
    let (mut written, mut fields) = (0, 0);
    // Whether csv-core has part of a record: then it reads on, whatever the record is.
    let mut mid_record = false;
    let mut spare_cells = Vec::new();
    // Lines read by the plain-line path, which the parser's line count does not see.
    let mut plain_lines = 0;
    // The line a record starts on (blank lines before it are counted in).
    let mut record_line = 1;
    loop {
        if !mid_record {
            record_line = parser.line() + plain_lines;
        }
        if let (false, Some(names)) = (mid_record, &header) {
            let buffer = input.fill_buf().map_err(io_error)?;
            if let Some((length, record)) = plain_line(buffer) {
                plain_lines += 1;
                // csv-core skips blank lines too.
                if !record.is_empty() {
                    number += 1;
                    let text = record_text(record, record_line)?;
                    let mut cells = recycle(std::mem::take(&mut spare_cells));
                    let mut start = 0;
                    for end in memchr::memchr_iter(delimiter, record).chain([record.len()]) {
                        if cells.len() == limits.max_columns {
                            return Err(over("max_columns", limits.max_columns as u64, format!("row {number}")));
                        }
                        cells.push(Some(&text[start..end]));
                        start = end + 1;
                    }
                    if record.len() - (cells.len() - 1) > limits.max_row_bytes {
                        return Err(over("max_row_bytes", limits.max_row_bytes as u64, format!("row {number}")));
                    }
                    if emit_row(row, names, number, record.len(), cells, &mut spare_cells, limits)?.is_break() {
                        return Ok(());
                    }
                }
                input.consume(length);
                continue;
            }
        }
        let chunk = input.fill_buf().map_err(io_error)?;
        let (result, read, out, found) = parser.read_record(chunk, &mut output[written..], &mut ends[fields..]);
        input.consume(read);
        written += out;
        fields += found;
        let where_ = || if header.is_none() { "the header".to_owned() } else { format!("row {}", number + 1) };
        match result {
            csv_core::ReadRecordResult::InputEmpty => {
                mid_record = true;
                continue;
            }
            csv_core::ReadRecordResult::OutputFull => {
                return Err(over("max_row_bytes", limits.max_row_bytes as u64, where_()));
            }
            csv_core::ReadRecordResult::OutputEndsFull => {
                return Err(over("max_columns", limits.max_columns as u64, where_()));
            }
            csv_core::ReadRecordResult::End => {
                return if header.is_some() { Ok(()) } else { Err(FormatError::CsvNoHeader) };
            }
            csv_core::ReadRecordResult::Record => mid_record = false,
        }
        let text = record_text(&output[..written], record_line)?;
        let mut start = 0;
        match &header {
            None => {
                let names: Vec<String> = ends[..fields]
                    .iter()
                    .map(|&end| {
                        let name = text[start..end].trim().to_owned();
                        start = end;
                        name
                    })
                    .collect();
                check_header(&names)?;
                header = Some(names);
            }
            Some(names) => {
                number += 1;
                let mut cells = recycle(std::mem::take(&mut spare_cells));
                for &end in &ends[..fields] {
                    cells.push(Some(&text[start..end]));
                    start = end;
                }
                if emit_row(row, names, number, written, cells, &mut spare_cells, limits)?.is_break() {
                    return Ok(());
                }
            }
        }
        (written, fields) = (0, 0);
    }
}

/// A record's bytes as text; `line` is where it starts, for the error.
fn record_text(bytes: &[u8], line: u64) -> Result<&str, FormatError> {
    std::str::from_utf8(bytes).map_err(|err| FormatError::Csv { line, message: format!("not valid UTF-8 ({err})") })
}

/// Hands a data row, whichever path split it, to `row`, and keeps the cells' allocation in
/// `spare` for the next row. A field can only be over `max_field_bytes` when its record of
/// `record_bytes` is, so only such records have their fields measured.
fn emit_row(
    row: &mut RowFn<'_>,
    names: &[String],
    number: u64,
    record_bytes: usize,
    cells: Vec<Option<&str>>,
    spare: &mut Vec<Option<&str>>,
    limits: &TableLimits,
) -> Result<ControlFlow<()>, FormatError> {
    if record_bytes > limits.max_field_bytes {
        for cell in cells.iter().flatten() {
            check_field_length(cell, limits, number)?;
        }
    }
    let flow = row(names, number, &cells);
    *spare = recycle(cells);
    Ok(flow)
}

/// The record at the start of `buffer` and the bytes its line takes, when it is a plain
/// line: whole in the buffer, with no quote and no carriage return but one right before its
/// `\n`. csv-core reads such a line as its delimiter-separated fields, which a byte search
/// finds many times faster; every other record (quoted fields, bare `\r` line ends, a line
/// longer than the buffer, the last line without `\n`) goes through csv-core.
fn plain_line(buffer: &[u8]) -> Option<(usize, &[u8])> {
    let newline = memchr::memchr(b'\n', buffer)?;
    let line = &buffer[..newline];
    let record = line.strip_suffix(b"\r").unwrap_or(line);
    memchr::memchr2(b'"', b'\r', record).is_none().then_some((newline + 1, record))
}

/// An empty vector of cells in the allocation of `cells`: a row's cells borrow its record,
/// which the next record overwrites, so each row needs a new vector, but not a new
/// allocation (collecting a vector's own iterator into an element type of the same layout
/// reuses its buffer).
pub fn recycle<'b>(mut cells: Vec<Option<&str>>) -> Vec<Option<&'b str>> {
    cells.clear();
    cells.into_iter().map(|_| None).collect()
}

/// The JSON records' keys as columns, in first-seen order, capped at `max_columns`.
struct Columns {
    names: Vec<String>,
    positions: HashMap<String, usize>,
    max: usize,
}

impl Columns {
    fn new(max: usize) -> Self {
        Self { names: Vec::new(), positions: HashMap::new(), max }
    }

    /// The record's cells in column order, adding its new keys as columns.
    fn cells(
        &mut self,
        record: serde_json::Map<String, Value>,
        limits: &TableLimits,
        number: u64,
    ) -> Result<Vec<Option<String>>, FormatError> {
        let mut cells = vec![None; self.names.len()];
        for (key, value) in record {
            let position = match self.positions.get(&key) {
                Some(&position) => position,
                None => {
                    if self.names.len() >= self.max {
                        return Err(over("max_columns", self.max as u64, format!("record {number} (key {key:?})")));
                    }
                    check_header(std::slice::from_ref(&key))
                        .map_err(|err| FormatError::JsonKey { record: number, message: err.to_string() })?;
                    self.positions.insert(key.clone(), self.names.len());
                    self.names.push(key);
                    cells.push(None);
                    self.names.len() - 1
                }
            };
            if depth(&value) > limits.max_depth {
                return Err(over("max_depth", limits.max_depth as u64, format!("record {number}")));
            }
            let text = match value {
                Value::Null => None,
                Value::String(text) => Some(text),
                other => Some(other.to_string()),
            };
            if let Some(text) = &text {
                check_field_length(text, limits, number)?;
            }
            cells[position] = text;
        }
        Ok(cells)
    }

    fn emit(&self, number: u64, cells: &[Option<String>], row: &mut RowFn<'_>) -> ControlFlow<()> {
        let borrowed: Vec<Option<&str>> = cells.iter().map(Option::as_deref).collect();
        row(&self.names, number, &borrowed)
    }
}

/// A record's fields are at depth 1; each array or object inside adds one.
fn depth(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn read_ndjson(mut input: impl BufRead, limits: &TableLimits, row: &mut RowFn<'_>) -> Result<(), FormatError> {
    let mut columns = Columns::new(limits.max_columns);
    let mut line = Vec::new();
    let (mut number, mut line_number) = (0, 0);
    loop {
        line.clear();
        let limit = limits.max_row_bytes as u64 + 1;
        let read = (&mut input).take(limit).read_until(b'\n', &mut line).map_err(io_error)?;
        if read == 0 {
            return if number == 0 { Err(FormatError::NoRows) } else { Ok(()) };
        }
        line_number += 1;
        if line.len() as u64 == limit && !line.ends_with(b"\n") {
            return Err(over("max_row_bytes", limits.max_row_bytes as u64, format!("line {line_number}")));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = serde_json::from_slice(&line)
            .map_err(|err| FormatError::Ndjson { line: line_number, message: json_message(&err) })?;
        let Value::Object(record) = value else {
            return Err(FormatError::Ndjson { line: line_number, message: "not a JSON object".into() });
        };
        number += 1;
        let cells = columns.cells(record, limits, number)?;
        if columns.emit(number, &cells, row).is_break() {
            return Ok(());
        }
    }
}

/// serde_json appends " at line L column C" to its messages; the error already says where.
fn json_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    match full.rfind(" at line ") {
        Some(cut) => full[..cut].to_owned(),
        None => full,
    }
}

/// Counts the bytes read since the last record started and fails the read past the
/// limit, so one huge record stops the parser instead of filling memory.
struct RecordBudget<R> {
    inner: R,
    used: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for RecordBudget<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.used.set(self.used.get() + read as u64);
        if self.used.get() > self.limit {
            return Err(std::io::Error::other(RECORD_TOO_LARGE));
        }
        Ok(read)
    }
}

const RECORD_TOO_LARGE: &str = "record over max_row_bytes";
const STOPPED: &str = "stopped by the caller";

/// Streams a JSON array of objects (or one object) to the callback a record at a time.
fn read_json(mut input: impl BufRead, limits: &TableLimits, row: &mut RowFn<'_>) -> Result<(), FormatError> {
    // Whitespace consumed while looking for the first value, which serde's line and column
    // count then does not see: newlines, and the columns after the last one.
    let (mut skipped_lines, mut skipped_columns) = (0, 0);
    let first = loop {
        let buffer = input.fill_buf().map_err(io_error)?;
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(position) => break buffer[position],
            None if buffer.is_empty() => return Err(FormatError::Empty),
            None => {
                for &byte in buffer {
                    (skipped_lines, skipped_columns) =
                        if byte == b'\n' { (skipped_lines + 1, 0) } else { (skipped_lines, skipped_columns + 1) };
                }
                let length = buffer.len();
                input.consume(length);
            }
        }
    };
    let used = Rc::new(Cell::new(0));
    // The budget is per record; the separators and whitespace between records count toward
    // the next one, hence the slack.
    let limit = limits.max_row_bytes as u64 + 8 * 1024;
    let budget = RecordBudget { inner: input, used: used.clone(), limit };
    // serde_json refuses values nested deeper than 128 while parsing, whatever the limit;
    // `max_depth` (at most 128) is checked on each parsed record.
    let mut deserializer = serde_json::Deserializer::from_reader(budget);
    let mut state =
        JsonState { columns: Columns::new(limits.max_columns), limits, row, used, number: 0, failure: None };
    let parsed = match first {
        b'[' => serde::Deserializer::deserialize_seq(&mut deserializer, &mut state),
        b'{' => {
            let record = serde::Deserialize::deserialize(&mut deserializer);
            record.and_then(|record| state.record(Value::Object(record)).map_err(serde::de::Error::custom))
        }
        _ => return Err(FormatError::JsonNotRecords),
    };
    let ended = parsed.and_then(|()| deserializer.end());
    if let Some(failure) = state.failure {
        return Err(failure);
    }
    match ended {
        Ok(()) if state.number == 0 => Err(FormatError::NoRows),
        Ok(()) => Ok(()),
        Err(err) if err.to_string().contains(STOPPED) => Ok(()),
        Err(err) if err.is_io() && err.to_string().contains(RECORD_TOO_LARGE) => {
            Err(over("max_row_bytes", limits.max_row_bytes as u64, format!("record {}", state.number + 1)))
        }
        Err(err) => Err(FormatError::Json {
            line: err.line() + skipped_lines,
            column: err.column() + if err.line() == 1 { skipped_columns } else { 0 },
            message: json_message(&err),
        }),
    }
}

/// The JSON array visitor's state: the columns so far and the callback.
struct JsonState<'l, 'r, 'f> {
    columns: Columns,
    limits: &'l TableLimits,
    row: &'r mut RowFn<'f>,
    used: Rc<Cell<u64>>,
    number: u64,
    /// A limit or shape error found inside the visitor, which serde can only report as text.
    failure: Option<FormatError>,
}

impl JsonState<'_, '_, '_> {
    fn record(&mut self, value: Value) -> Result<(), String> {
        self.used.set(0);
        self.number += 1;
        let Value::Object(record) = value else {
            return Err(self.fail(FormatError::JsonRecordNotObject { record: self.number as usize }));
        };
        let cells = match self.columns.cells(record, self.limits, self.number) {
            Ok(cells) => cells,
            Err(err) => return Err(self.fail(err)),
        };
        match self.columns.emit(self.number, &cells, self.row) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(STOPPED.to_owned()),
        }
    }

    fn fail(&mut self, err: FormatError) -> String {
        let message = err.to_string();
        self.failure = Some(err);
        message
    }
}

impl<'de> Visitor<'de> for &mut JsonState<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut records: A) -> Result<(), A::Error> {
        self.used.set(0);
        while let Some(value) = records.next_element::<Value>()? {
            self.record(value).map_err(serde::de::Error::custom)?;
        }
        Ok(())
    }
}

fn read_xlsx(
    mut input: impl BufRead,
    sheet: Option<&str>,
    limits: &TableLimits,
    row: &mut RowFn<'_>,
) -> Result<(), FormatError> {
    let invalid = |err: String| FormatError::Xlsx(err);
    // A zip needs random access: the workbook is held as the object it is (already capped
    // by `max_object_bytes`), never as a grid of cells.
    let mut body = Vec::new();
    input.read_to_end(&mut body).map_err(io_error)?;
    check_decompressed_size(&body, limits)?;
    let mut workbook = Xlsx::new(Cursor::new(body)).map_err(|err| invalid(err.to_string()))?;
    let name = match sheet {
        Some(name) => name.to_owned(),
        None => {
            workbook.sheet_names().first().cloned().ok_or_else(|| invalid("the workbook has no worksheets".into()))?
        }
    };
    let mut cells = workbook.worksheet_cells_reader(&name).map_err(|err| invalid(format!("sheet {name:?}: {err}")))?;
    let mut rows = SheetRows { header: None, first_column: 0, current: Vec::new(), current_row: None, number: 0 };
    let mut cells_read = 0u64;
    while let Some(cell) = cells.next_cell().map_err(|err| invalid(err.to_string()))? {
        cells_read += 1;
        if cells_read > limits.max_xlsx_cells {
            return Err(over("max_xlsx_cells", limits.max_xlsx_cells, format!("sheet {name:?}")));
        }
        let (row_index, column) = cell.get_position();
        if rows.current_row != Some(row_index) {
            if rows.flush(row)?.is_break() {
                return Ok(());
            }
            rows.current_row = Some(row_index);
        }
        let Some(text) = cell_text(&Data::from(cell.get_value().clone())) else { continue };
        check_field_length(&text, limits, rows.number + 1)?;
        rows.put(column, text, limits)?;
    }
    // The last row: whether the caller wanted more no longer matters.
    let _ = rows.flush(row)?;
    if rows.header.is_none() {
        return Err(invalid("the sheet is empty".into()));
    }
    Ok(())
}

/// Rows assembled from a sheet's cells, which arrive in row order. Empty rows are skipped;
/// columns count from the header's first column.
struct SheetRows {
    header: Option<Vec<String>>,
    first_column: u32,
    current: Vec<Option<String>>,
    current_row: Option<u32>,
    number: u64,
}

impl SheetRows {
    fn put(&mut self, column: u32, text: String, limits: &TableLimits) -> Result<(), FormatError> {
        if self.header.is_none() && self.current.is_empty() {
            self.first_column = column;
        }
        let row = self.current_row.unwrap_or(0) + 1;
        let offset = column
            .checked_sub(self.first_column)
            .ok_or_else(|| FormatError::Xlsx(format!("row {row} has a value left of the header's first column")))?
            as usize;
        if offset >= limits.max_columns {
            return Err(over("max_columns", limits.max_columns as u64, format!("row {row} of the sheet")));
        }
        if self.current.len() <= offset {
            self.current.resize(offset + 1, None);
        }
        self.current[offset] = Some(text);
        Ok(())
    }

    fn flush(&mut self, row: &mut RowFn<'_>) -> Result<ControlFlow<()>, FormatError> {
        let cells = std::mem::take(&mut self.current);
        if cells.iter().all(Option::is_none) {
            return Ok(ControlFlow::Continue(()));
        }
        match &self.header {
            None => {
                let names: Vec<String> = cells.iter().map(|c| c.as_deref().unwrap_or("").trim().to_owned()).collect();
                check_header(&names)?;
                self.header = Some(names);
                Ok(ControlFlow::Continue(()))
            }
            Some(names) => {
                self.number += 1;
                let borrowed: Vec<Option<&str>> = cells.iter().map(Option::as_deref).collect();
                Ok(row(names, self.number, &borrowed))
            }
        }
    }
}

fn cell_text(cell: &Data) -> Option<String> {
    match cell {
        Data::Empty => None,
        // Whole numbers stored as floats (Excel has no integers) read back as integers.
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(format!("{}", *f as i64)),
        Data::DateTime(dt) => excel_serial_to_iso(dt.as_f64()),
        other => Some(other.to_string()),
    }
}

/// Refuses a workbook whose parts would decompress past the limit. The zip reader stops
/// each part at its declared size, so the declared sizes are what can be read.
fn check_decompressed_size(body: &[u8], limits: &TableLimits) -> Result<(), FormatError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(body))
        .map_err(|err| FormatError::Xlsx(format!("not a zip archive: {err}")))?;
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let part = archive.by_index_raw(index).map_err(|err| FormatError::Xlsx(err.to_string()))?;
        total = total.saturating_add(part.size());
    }
    if total > limits.max_decompressed_bytes {
        return Err(over(
            "max_decompressed_bytes",
            limits.max_decompressed_bytes,
            format!("the workbook ({total} bytes)"),
        ));
    }
    Ok(())
}

/// Excel stores date-times as days since 1899-12-30 (fractions are the time of day).
fn excel_serial_to_iso(serial: f64) -> Option<String> {
    const UNIX_EPOCH_SERIAL: f64 = 25_569.0;
    let seconds = ((serial - UNIX_EPOCH_SERIAL) * 86_400.0).round() as i64;
    let datetime = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    datetime.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).ok()
}
