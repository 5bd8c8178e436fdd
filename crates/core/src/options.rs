//! A dataset's configuration: how its objects are read and whether its schema may evolve.

use serde::{Deserialize, Serialize};

/// `[width, height]` images are resized to unless the dataset says otherwise.
pub const DEFAULT_IMAGE_SIZE: [u32; 2] = [28, 28];

/// How numbers are written in a dataset's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DecimalSeparator {
    #[default]
    #[serde(rename = ".")]
    Point,
    #[serde(rename = ",")]
    Comma,
}

/// How a dataset's objects are read and how its schema may change (the dataset config).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetOptions {
    /// Accept new columns and widen types instead of rejecting the object.
    pub evolve_schema: bool,
    pub decimal_separator: DecimalSeparator,
    /// CSV field delimiter, one ASCII character (default `,`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv_delimiter: Option<char>,
    /// xlsx sheet to read (default: the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// `[width, height]` images are resized to (default [`DEFAULT_IMAGE_SIZE`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<[u32; 2]>,
    /// How large an object of this dataset may be in each dimension.
    pub limits: TableLimits,
}

/// The most a dataset's objects may hold in each dimension. The readers enforce every
/// limit while they parse, before anything the size of the dimension is allocated, so no
/// object can make a function run out of memory; an object over a limit is refused at
/// ingest (4xx) or marked `FAILED` by the ETL, with the limit named in the reason.
///
/// The defaults keep one object well inside the ETL function's 2 GB. `max_columns` is also
/// what keeps a dataset's schema inside one catalog item (see [`MAX_COLUMNS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableLimits {
    /// Columns of a table; for JSON, distinct keys over all records.
    pub max_columns: usize,
    /// Bytes of one cell's text (and of one column name: see [`MAX_COLUMN_NAME_BYTES`]).
    pub max_field_bytes: usize,
    /// Bytes of one row: a CSV record or an NDJSON line, a JSON record's text.
    pub max_row_bytes: usize,
    /// Nesting depth of a JSON value inside a record (a record's fields are depth 1).
    pub max_depth: usize,
    /// Cells of an xlsx sheet, counted as they stream; a cell whose coordinates lie past
    /// `max_columns` is refused before any row is built.
    pub max_xlsx_cells: u64,
    /// Bytes of an xlsx workbook's parts after decompression.
    pub max_decompressed_bytes: u64,
    /// Bytes of an object as stored (presigned uploads are bound to it; the ETL checks it).
    pub max_object_bytes: u64,
}

/// The ceiling of `max_columns`: a schema of this many columns with names of
/// [`MAX_COLUMN_NAME_BYTES`] serialises to well under DynamoDB's 400 KB item limit, so a
/// schema always fits in its catalog item (a test in `schema` proves it).
pub const MAX_COLUMNS: usize = 2_000;

/// Column names longer than this are refused: they become Parquet column names and are
/// stored in the schema item.
pub const MAX_COLUMN_NAME_BYTES: usize = 128;

impl Default for TableLimits {
    fn default() -> Self {
        Self {
            max_columns: MAX_COLUMNS,
            max_field_bytes: 256 * 1024,
            max_row_bytes: 4 * 1024 * 1024,
            max_depth: 32,
            max_xlsx_cells: 20_000_000,
            max_decompressed_bytes: 256 * 1024 * 1024,
            max_object_bytes: 512 * 1024 * 1024,
        }
    }
}

impl TableLimits {
    fn validate(&self) -> Result<(), String> {
        let in_range = |name: &str, value: u64, max: u64| {
            if (1..=max).contains(&value) { Ok(()) } else { Err(format!("limits.{name} must be between 1 and {max}")) }
        };
        in_range("max_columns", self.max_columns as u64, MAX_COLUMNS as u64)?;
        in_range("max_row_bytes", self.max_row_bytes as u64, 64 * 1024 * 1024)?;
        in_range("max_field_bytes", self.max_field_bytes as u64, self.max_row_bytes as u64)?;
        in_range("max_depth", self.max_depth as u64, 128)?;
        in_range("max_xlsx_cells", self.max_xlsx_cells, 100_000_000)?;
        in_range("max_decompressed_bytes", self.max_decompressed_bytes, 1024 * 1024 * 1024)?;
        in_range("max_object_bytes", self.max_object_bytes, 5 * 1024 * 1024 * 1024)
    }
}

impl DatasetOptions {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(delimiter) = self.csv_delimiter
            && (!delimiter.is_ascii() || delimiter == '"' || delimiter == '\n' || delimiter == '\r')
        {
            return Err(format!(
                "csv_delimiter {delimiter:?} must be one ASCII character other than a quote or newline"
            ));
        }
        let side_ok = |side: u32| (1..=1024).contains(&side);
        if let Some([width, height]) = self.image_size
            && !(side_ok(width) && side_ok(height))
        {
            return Err(format!("image_size [{width}, {height}] must be between 1 and 1024 on each side"));
        }
        self.limits.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_validated() {
        assert!(DatasetOptions::default().validate().is_ok());
        assert!(DatasetOptions { csv_delimiter: Some('"'), ..Default::default() }.validate().is_err());
        assert!(DatasetOptions { image_size: Some([0, 28]), ..Default::default() }.validate().is_err());
        let parsed: DatasetOptions = serde_json::from_str(r#"{"evolve_schema":true,"decimal_separator":","}"#).unwrap();
        assert_eq!(parsed.decimal_separator, DecimalSeparator::Comma);
        assert!(serde_json::from_str::<DatasetOptions>(r#"{"evolve":true}"#).is_err(), "unknown keys are refused");
    }

    #[test]
    fn limits_default_per_field_and_stay_within_their_ceilings() {
        let parsed: DatasetOptions = serde_json::from_str(r#"{"limits":{"max_columns":50}}"#).unwrap();
        assert_eq!(parsed.limits, TableLimits { max_columns: 50, ..TableLimits::default() });
        assert!(parsed.validate().is_ok());
        let too_wide = DatasetOptions {
            limits: TableLimits { max_columns: MAX_COLUMNS + 1, ..Default::default() },
            ..Default::default()
        };
        assert_eq!(too_wide.validate().unwrap_err(), "limits.max_columns must be between 1 and 2000");
        let field_over_row = TableLimits { max_field_bytes: 2048, max_row_bytes: 1024, ..Default::default() };
        assert!(DatasetOptions { limits: field_over_row, ..Default::default() }.validate().is_err());
        assert!(serde_json::from_str::<DatasetOptions>(r#"{"limits":{"columns":5}}"#).is_err());
    }
}
