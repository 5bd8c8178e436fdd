//! Images become one row each: the label (if the ingest carried one) and the pixels,
//! grayscale, resized and scaled to [0, 1] in one list column, so the trainer reads images
//! like tables.

use std::collections::BTreeMap;

use sluice_formats::{ContentKind, image_pixels};
use sluice_profile::{ColumnProfile, Profile};

use sluice_core::options::{DEFAULT_IMAGE_SIZE, DatasetOptions};
use sluice_core::schema::{ColumnType, Field, Schema};

use crate::parquet_out::{Columns, ParquetSink};
use crate::{EtlError, Outcome};

/// The schema of an image dataset: `label`, and `pixels` (row-major, width × height values).
pub fn image_schema() -> Schema {
    Schema {
        fields: vec![
            Field { name: "label".into(), column_type: ColumnType::String },
            Field { name: "pixels".into(), column_type: ColumnType::Vector },
        ],
    }
}

pub fn process_image(
    kind: ContentKind,
    body: &[u8],
    label: Option<&str>,
    dataset_schema: Option<&Schema>,
    options: &DatasetOptions,
) -> Result<Outcome, EtlError> {
    let [width, height] = options.image_size.unwrap_or(DEFAULT_IMAGE_SIZE);
    let schema = image_schema();
    if let Some(existing) = dataset_schema
        && *existing != schema
    {
        return Err(EtlError::Schema("the dataset holds tables, not images".into()));
    }
    let pixels = image_pixels(kind, body, width, height).map_err(|err| EtlError::Image(err.to_string()))?;

    let mut columns = Columns::new(&schema, options.decimal_separator);
    match label {
        Some(label) => assert!(columns.push_text(0, label), "any text is a string"),
        None => columns.push_null(0),
    }
    columns.push_vector(1, &pixels);
    columns.end_row();
    let mut sink = ParquetSink::new(&schema, &[], Vec::new())?;
    sink.write_row_group(&mut columns)?;

    // Pixels are profiled as the image's mean intensity: a histogram per pixel would dwarf
    // the image, and a shift in brightness is the drift images usually show.
    let labels: BTreeMap<String, u64> = label.map(|l| (l.to_owned(), 1)).into_iter().collect();
    let mean_intensity = pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / pixels.len() as f64;
    let profile = Profile {
        rows: 1,
        columns: vec![
            ColumnProfile::categorical("label", "string", labels, 0, u64::from(label.is_none())),
            ColumnProfile::numeric("mean_intensity", "float", &[mean_intensity], 0),
        ],
    };
    Ok(Outcome { schema, parquet: sink.finish()?, rejected: Vec::new(), profile, rows_in: 1, rows_out: 1 })
}
