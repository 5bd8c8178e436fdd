//! Images become one row each: the label (if the ingest carried one) and the pixels,
//! grayscale, resized and scaled to [0, 1], so the trainer reads images like tables.

use std::collections::BTreeMap;

use image::imageops::FilterType;
use sluice_formats::{ContentKind, decode_image};
use sluice_profile::{ColumnProfile, Profile};

use crate::parquet_out::{Cell, Columns, ParquetSink};
use crate::schema::{ColumnType, Field, Schema};
use crate::{DatasetOptions, EtlError, Outcome};

pub const DEFAULT_IMAGE_SIZE: [u32; 2] = [28, 28];

/// The schema of an image dataset: `label` then `pixel_0000` … in row-major order.
pub fn image_schema(width: u32, height: u32) -> Schema {
    let mut fields = vec![Field { name: "label".into(), column_type: ColumnType::String }];
    fields.extend((0..width * height).map(|i| Field { name: format!("pixel_{i:04}"), column_type: ColumnType::Float }));
    Schema { fields }
}

pub fn process_image(
    kind: ContentKind,
    body: &[u8],
    label: Option<&str>,
    dataset_schema: Option<&Schema>,
    options: &DatasetOptions,
) -> Result<Outcome, EtlError> {
    let [width, height] = options.image_size.unwrap_or(DEFAULT_IMAGE_SIZE);
    let schema = image_schema(width, height);
    if let Some(existing) = dataset_schema
        && *existing != schema
    {
        return Err(EtlError::Schema(format!(
            "the dataset's schema is not that of {width}x{height} images (is it a table dataset, or another image size?)"
        )));
    }
    let image = decode_image(kind, body).map_err(|err| EtlError::Image(err.to_string()))?;
    let gray = image::imageops::resize(&image.to_luma8(), width, height, FilterType::Triangle);
    let pixels: Vec<f64> = gray.as_raw().iter().map(|&p| f64::from(p) / 255.0).collect();

    let mut cells = vec![label.map_or(Cell::Null, Cell::String)];
    cells.extend(pixels.iter().map(|&p| Cell::Float(p)));
    let mut columns = Columns::new(&schema);
    columns.push_row(&cells);
    let mut sink = ParquetSink::new(&schema)?;
    sink.write_row_group(&mut columns)?;

    // Pixel columns are summarised as one intensity column: a profile of 784 histograms
    // per image would dwarf the image.
    let labels: BTreeMap<String, u64> = label.map(|l| (l.to_owned(), 1)).into_iter().collect();
    let mean_intensity = pixels.iter().sum::<f64>() / pixels.len() as f64;
    let profile = Profile {
        rows: 1,
        columns: vec![
            ColumnProfile::categorical("label", "string", labels, 0, u64::from(label.is_none())),
            ColumnProfile::numeric("mean_intensity", "float", &[mean_intensity], 0),
        ],
    };
    Ok(Outcome { schema, parquet: sink.finish()?, rejected: Vec::new(), profile, rows_in: 1, rows_out: 1 })
}
