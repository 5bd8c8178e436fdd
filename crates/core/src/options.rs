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
        Ok(())
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
}
