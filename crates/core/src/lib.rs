//! Domain types shared by every part of Sluice. Nothing here knows about AWS: the names,
//! keys and records defined here are the contracts that functions, the trainer and the
//! local cloud agree on.

pub mod capture;
pub mod catalog;
pub mod checksum;
pub mod dataset;
mod encoding;
pub mod ingest;
pub mod metrics;
pub mod model_event;
pub mod monitoring;
pub mod options;
pub mod remediation;
pub mod schema;
pub mod values;

pub use catalog::{CatalogEntry, IngestSource, IngestStatus, Processing};
pub use checksum::Sha256Digest;
pub use dataset::{DatasetName, InvalidName, ModelName};
pub use encoding::percent_decode;
pub use ingest::{CuratedKeys, IngestId, InvalidIngestId, RawKey, dataset_profile_key, raw_object_key};
