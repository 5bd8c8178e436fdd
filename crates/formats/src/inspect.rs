use std::io::Cursor;

use calamine::{Reader, Xlsx};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use serde_json::Value;

use crate::ContentKind;

/// Largest image accepted, in pixels. A few kilobytes of PNG can claim gigapixels; refusing
/// them before decoding keeps a hostile upload from exhausting the function's memory.
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;

/// What a cheap look at a valid body found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspection {
    /// Data rows, header excluded. `None` where rows do not apply (images).
    pub rows: Option<u64>,
    /// `(width, height)` of an image.
    pub image_size: Option<(u32, u32)>,
}

/// Why a body is not a valid instance of its declared format. Messages say where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the body is empty")]
    Empty,
    #[error("CSV line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error("CSV has no header row")]
    CsvNoHeader,
    #[error("JSON line {line}, column {column}: {message}")]
    Json { line: usize, column: usize, message: String },
    #[error("JSON record {record} is not an object")]
    JsonRecordNotObject { record: usize },
    #[error("JSON body must be an array of objects or a single object")]
    JsonNotRecords,
    #[error("NDJSON line {line}: {message}")]
    Ndjson { line: usize, message: String },
    #[error("not a valid xlsx workbook: {0}")]
    Xlsx(String),
    #[error("{format} image does not decode: {message}")]
    Image { format: &'static str, message: String },
    #[error("{format} image is {width}x{height} pixels, more than the {max} allowed")]
    ImageTooLarge { format: &'static str, width: u32, height: u32, max: u64 },
    #[error("header column {column}: {message}")]
    Header { column: usize, message: String },
    #[error("no data rows: the body has a header but no records")]
    NoRows,
}

/// Checks that `body` is a well-formed instance of `kind` and counts its rows.
pub fn inspect(kind: ContentKind, body: &[u8]) -> Result<Inspection, FormatError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::Empty);
    }
    let rows = match kind {
        ContentKind::Csv => csv_rows(body)?,
        ContentKind::Xlsx => xlsx_rows(body)?,
        ContentKind::Json => json_rows(body)?,
        ContentKind::Ndjson => ndjson_rows(body)?,
        ContentKind::Png | ContentKind::Jpeg => {
            let image = decode_image(kind, body)?;
            return Ok(Inspection { rows: None, image_size: Some((image.width(), image.height())) });
        }
    };
    if rows == 0 {
        return Err(FormatError::NoRows);
    }
    Ok(Inspection { rows: Some(rows), image_size: None })
}

fn strip_utf8_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

fn csv_rows(body: &[u8]) -> Result<u64, FormatError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(strip_utf8_bom(body));
    let header = reader.headers().map_err(csv_error)?.clone();
    if header.is_empty() {
        return Err(FormatError::CsvNoHeader);
    }
    check_header(header.iter())?;
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    while reader.read_record(&mut record).map_err(csv_error)? {
        rows += 1;
    }
    Ok(rows)
}

fn csv_error(err: csv::Error) -> FormatError {
    let line = err.position().map_or(0, csv::Position::line);
    let message = match err.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("expected {expected_len} fields (as many as the header), found {len}")
        }
        csv::ErrorKind::Utf8 { err, .. } => format!("not valid UTF-8 ({err})"),
        _ => err.to_string(),
    };
    FormatError::Csv { line, message }
}

/// Column names become Parquet columns downstream, so they must be present and unique.
fn check_header<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), FormatError> {
    let mut seen = std::collections::HashSet::new();
    for (index, name) in names.enumerate() {
        let column = index + 1;
        let name = name.trim();
        if name.is_empty() {
            return Err(FormatError::Header { column, message: "empty column name".into() });
        }
        if !seen.insert(name.to_owned()) {
            return Err(FormatError::Header { column, message: format!("duplicate column name {name:?}") });
        }
    }
    Ok(())
}

fn xlsx_rows(body: &[u8]) -> Result<u64, FormatError> {
    let mut workbook = Xlsx::new(Cursor::new(body)).map_err(|err| FormatError::Xlsx(err.to_string()))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| FormatError::Xlsx("the workbook has no worksheets".into()))?
        .map_err(|err| FormatError::Xlsx(err.to_string()))?;
    let mut rows = range.rows();
    let header = rows.next().ok_or(FormatError::NoRows)?;
    let names: Vec<String> = header.iter().map(ToString::to_string).collect();
    check_header(names.iter().map(String::as_str))?;
    Ok(rows.count() as u64)
}

fn json_rows(body: &[u8]) -> Result<u64, FormatError> {
    let value: Value = serde_json::from_slice(strip_utf8_bom(body)).map_err(|err| FormatError::Json {
        line: err.line(),
        column: err.column(),
        message: json_message(&err),
    })?;
    match value {
        Value::Array(records) => {
            if let Some(index) = records.iter().position(|record| !record.is_object()) {
                return Err(FormatError::JsonRecordNotObject { record: index + 1 });
            }
            Ok(records.len() as u64)
        }
        Value::Object(_) => Ok(1),
        _ => Err(FormatError::JsonNotRecords),
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

fn ndjson_rows(body: &[u8]) -> Result<u64, FormatError> {
    let mut rows = 0;
    for (index, line) in strip_utf8_bom(body).split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line_number = index + 1;
        let value: Value = serde_json::from_slice(line)
            .map_err(|err| FormatError::Ndjson { line: line_number, message: json_message(&err) })?;
        if !value.is_object() {
            return Err(FormatError::Ndjson { line: line_number, message: "not a JSON object".into() });
        }
        rows += 1;
    }
    Ok(rows)
}

/// Decodes a PNG or JPEG, refusing images over [`MAX_IMAGE_PIXELS`] before decoding them.
pub fn decode_image(kind: ContentKind, body: &[u8]) -> Result<DynamicImage, FormatError> {
    let (format, name) = match kind {
        ContentKind::Png => (ImageFormat::Png, "PNG"),
        ContentKind::Jpeg => (ImageFormat::Jpeg, "JPEG"),
        other => return Err(FormatError::Image { format: "image", message: format!("{other} is not an image type") }),
    };
    let decode_error = |err: image::ImageError| FormatError::Image { format: name, message: err.to_string() };
    let (width, height) =
        ImageReader::with_format(Cursor::new(body), format).into_dimensions().map_err(decode_error)?;
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(FormatError::ImageTooLarge { format: name, width, height, max: MAX_IMAGE_PIXELS });
    }
    // The header can lie about the size; limits make the decoder stop rather than allocate.
    let mut reader = ImageReader::with_format(Cursor::new(body), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 4);
    reader.limits(limits);
    reader.decode().map_err(decode_error)
}

/// An image as a model sees it: grayscale, resized to `width × height`, row-major, scaled to
/// [0, 1]. The ETL stores this for training and `predict` computes it for requests, so
/// both see the same pixels.
pub fn image_pixels(kind: ContentKind, body: &[u8], width: u32, height: u32) -> Result<Vec<f32>, FormatError> {
    let image = decode_image(kind, body)?;
    let gray = image::imageops::resize(&image.to_luma8(), width, height, image::imageops::FilterType::Triangle);
    Ok(gray.as_raw().iter().map(|&p| f32::from(p) / 255.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../samples/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    #[test]
    fn counts_csv_rows_excluding_header_and_bom() {
        let body = b"\xEF\xBB\xBFa,b\n1,2\n3,\"x,y\"\n";
        assert_eq!(inspect(ContentKind::Csv, body).unwrap().rows, Some(2));
    }

    #[test]
    fn csv_with_a_short_row_names_the_line() {
        let err = inspect(ContentKind::Csv, b"a,b,c\n1,2,3\n4,5\n").unwrap_err();
        assert_eq!(
            err,
            FormatError::Csv { line: 3, message: "expected 3 fields (as many as the header), found 2".into() }
        );
    }

    #[test]
    fn csv_header_problems_are_named() {
        assert_eq!(
            inspect(ContentKind::Csv, b"a,,c\n1,2,3\n").unwrap_err(),
            FormatError::Header { column: 2, message: "empty column name".into() }
        );
        assert!(matches!(inspect(ContentKind::Csv, b"a,a\n1,2\n").unwrap_err(), FormatError::Header { column: 2, .. }));
        assert_eq!(inspect(ContentKind::Csv, b"a,b\n").unwrap_err(), FormatError::NoRows);
    }

    #[test]
    fn csv_that_is_not_utf8_is_rejected_with_its_line() {
        let err = inspect(ContentKind::Csv, b"a,b\n1,2\n\xff\xfe,3\n").unwrap_err();
        assert!(matches!(err, FormatError::Csv { line: 3, .. }), "{err:?}");
    }

    #[test]
    fn whitespace_only_bodies_are_empty() {
        for kind in [ContentKind::Csv, ContentKind::Json, ContentKind::Png] {
            assert_eq!(inspect(kind, b"").unwrap_err(), FormatError::Empty);
            assert_eq!(inspect(kind, b" \n\t").unwrap_err(), FormatError::Empty);
        }
    }

    #[test]
    fn json_arrays_objects_and_their_errors() {
        assert_eq!(inspect(ContentKind::Json, br#"[{"a":1},{"a":2}]"#).unwrap().rows, Some(2));
        assert_eq!(inspect(ContentKind::Json, br#"{"a":1}"#).unwrap().rows, Some(1));
        assert_eq!(
            inspect(ContentKind::Json, br#"[{"a":1},2]"#).unwrap_err(),
            FormatError::JsonRecordNotObject { record: 2 }
        );
        assert_eq!(inspect(ContentKind::Json, b"42").unwrap_err(), FormatError::JsonNotRecords);
        assert_eq!(inspect(ContentKind::Json, b"[]").unwrap_err(), FormatError::NoRows);
        let err = inspect(ContentKind::Json, b"[\n{\"a\":1},\n{\"a\" 2}\n]").unwrap_err();
        assert!(matches!(err, FormatError::Json { line: 3, column: 6, .. }), "{err:?}");
        assert!(!err.to_string().contains(" at line "), "location is said once: {err}");
    }

    #[test]
    fn ndjson_counts_objects_and_names_the_bad_line() {
        assert_eq!(inspect(ContentKind::Ndjson, b"{\"a\":1}\r\n\n{\"a\":2}\n").unwrap().rows, Some(2));
        let err = inspect(ContentKind::Ndjson, b"{\"a\":1}\n{\"a\":\n").unwrap_err();
        assert!(matches!(err, FormatError::Ndjson { line: 2, .. }), "{err:?}");
        let err = inspect(ContentKind::Ndjson, b"{\"a\":1}\n[1]\n").unwrap_err();
        assert_eq!(err, FormatError::Ndjson { line: 2, message: "not a JSON object".into() });
    }

    #[test]
    fn xlsx_rows_come_from_the_first_sheet() {
        assert_eq!(inspect(ContentKind::Xlsx, &fixture("iris.xlsx")).unwrap().rows, Some(12));
    }

    #[test]
    fn xlsx_that_is_not_a_workbook_is_rejected() {
        assert!(matches!(inspect(ContentKind::Xlsx, b"a,b\n1,2\n").unwrap_err(), FormatError::Xlsx(_)));
        let mut truncated = fixture("iris.xlsx");
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(inspect(ContentKind::Xlsx, &truncated).unwrap_err(), FormatError::Xlsx(_)));
    }

    #[test]
    fn images_decode_and_report_their_size() {
        assert_eq!(inspect(ContentKind::Png, &fixture("digit-7.png")).unwrap().image_size, Some((28, 28)));
        assert_eq!(inspect(ContentKind::Jpeg, &fixture("digit-3.jpg")).unwrap().image_size, Some((28, 28)));
    }

    #[test]
    fn images_that_do_not_decode_are_rejected() {
        let png = fixture("digit-7.png");
        assert!(matches!(inspect(ContentKind::Jpeg, &png).unwrap_err(), FormatError::Image { format: "JPEG", .. }));
        assert!(matches!(
            inspect(ContentKind::Png, b"\x89PNG\r\n\x1a\nnot really").unwrap_err(),
            FormatError::Image { .. }
        ));
        let mut truncated = png.clone();
        truncated.truncate(png.len() - 20);
        assert!(matches!(inspect(ContentKind::Png, &truncated).unwrap_err(), FormatError::Image { .. }));
    }

    #[test]
    fn decompression_bombs_are_refused_before_decoding() {
        // 7000x7000 grayscale zeros: 49 megapixels in a 50 KB file.
        let bomb = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bomb-7000x7000.png")).unwrap();
        assert_eq!(
            inspect(ContentKind::Png, &bomb).unwrap_err(),
            FormatError::ImageTooLarge { format: "PNG", width: 7000, height: 7000, max: MAX_IMAGE_PIXELS }
        );
    }
}
