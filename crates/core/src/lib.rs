//! Domain types shared by every part of Sluice. Nothing here knows about AWS: the names,
//! keys and records defined here are the contracts that functions, the trainer and the
//! local cloud agree on.

pub mod catalog;
pub mod checksum;
pub mod dataset;
pub mod ingest;
pub mod metrics;

pub use catalog::{CatalogEntry, IngestSource, IngestStatus};
pub use checksum::Sha256Digest;
pub use dataset::{DatasetName, InvalidDatasetName};
pub use ingest::{IngestId, InvalidIngestId, raw_object_key};
