//! The formats Sluice accepts, and the checks an object passes before it may enter the raw
//! zone. Everything here works on bytes in memory: no I/O, no AWS.

mod content;
mod inspect;

pub use content::{ContentKind, UnsupportedContentType};
pub use inspect::{FormatError, Inspection, MAX_IMAGE_PIXELS, decode_image, image_pixels, inspect};
