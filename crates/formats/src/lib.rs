//! The formats Sluice accepts: content types, the streaming table readers ingest and the
//! ETL share (with every dimension capped), and the checks an object passes before it may
//! enter the raw zone. No AWS.

mod content;
mod inspect;
mod table;

pub use content::{ContentKind, UnsupportedContentType};
pub use inspect::{FormatError, Inspection, MAX_IMAGE_PIXELS, decode_image, image_pixels, inspect};
pub use table::{ReadOptions, RowFn, read_table, recycle};
