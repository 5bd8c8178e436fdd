//! The contract between the trainer, the registry and serving: the model bundle's manifest
//! and the feature pipeline it records. The trainer fits the pipeline and `predict` applies
//! the same code to requests, so training and serving cannot drift apart.

pub mod frame;
pub mod hyperparameters;
pub mod manifest;
pub mod pipeline;
pub mod tuning;

pub use frame::{Column, Frame};
pub use manifest::{MANIFEST_FORMAT_VERSION, Manifest, Task};
pub use pipeline::{FeaturePipeline, PipelineError};
