use std::io::Cursor;
use std::ops::ControlFlow;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::ContentKind;
use crate::table::{ReadOptions, read_table};

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
    #[error("row {row}: expected {expected} fields (as many as the header), found {found}")]
    RaggedRow { row: u64, expected: usize, found: usize },
    #[error("JSON line {line}, column {column}: {message}")]
    Json { line: usize, column: usize, message: String },
    #[error("JSON record {record} is not an object")]
    JsonRecordNotObject { record: usize },
    #[error("JSON record {record}: {message}")]
    JsonKey { record: u64, message: String },
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
    #[error("the table has no columns")]
    NoColumns,
    #[error("no data rows: the body has a header but no records")]
    NoRows,
    #[error("{at} is over the dataset limit {what} = {limit}")]
    Limit { what: String, limit: u64, at: String },
    #[error("{0} is not a table")]
    NotATable(String),
    #[error("cannot read the body: {0}")]
    Read(String),
}

/// Checks that `body` is a well-formed instance of `kind`, within the dataset's limits, with
/// the readers the ETL uses, and counts its rows. CSV rows must be as wide as the header.
pub fn inspect(kind: ContentKind, body: &[u8], options: &ReadOptions) -> Result<Inspection, FormatError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::Empty);
    }
    if kind.is_image() {
        let image = decode_image(kind, body)?;
        return Ok(Inspection { rows: None, image_size: Some((image.width(), image.height())) });
    }
    let mut rows = 0;
    let mut ragged = None;
    read_table(kind, body, options, &mut |header, number, cells| {
        rows = number;
        if kind == ContentKind::Csv && cells.len() != header.len() {
            ragged = Some(FormatError::RaggedRow { row: number, expected: header.len(), found: cells.len() });
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if let Some(err) = ragged {
        return Err(err);
    }
    if rows == 0 {
        return Err(FormatError::NoRows);
    }
    Ok(Inspection { rows: Some(rows), image_size: None })
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

    fn inspect(kind: ContentKind, body: &[u8]) -> Result<Inspection, FormatError> {
        super::inspect(kind, body, &ReadOptions::default())
    }

    #[test]
    fn counts_csv_rows_excluding_header_and_bom() {
        let body = b"\xEF\xBB\xBFa,b\n1,2\n\n3,\"x,y\"\n";
        assert_eq!(inspect(ContentKind::Csv, body).unwrap().rows, Some(2), "blank lines are not rows");
    }

    #[test]
    fn csv_with_a_short_row_names_the_row() {
        let err = inspect(ContentKind::Csv, b"a,b,c\n1,2,3\n4,5\n").unwrap_err();
        assert_eq!(err, FormatError::RaggedRow { row: 2, expected: 3, found: 2 });
        assert_eq!(err.to_string(), "row 2: expected 3 fields (as many as the header), found 2");
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
