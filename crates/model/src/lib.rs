//! The contract between the trainer, the registry and serving: the model bundle (its
//! manifest, metrics and baseline, one reader and one packer), the feature pipeline it
//! records, and the registry's rules (which version is production, the approval gate, how a
//! candidate is rolled out).
//! The trainer fits the pipeline and `predict` applies the same code to requests, so
//! training and serving cannot drift apart.

pub mod bundle;
pub mod frame;
pub mod hyperparameters;
pub mod manifest;
pub mod metrics;
pub mod monitoring;
pub mod pipeline;
pub mod registry;
pub mod rollout;
pub mod tuning;

pub use bundle::{Bundle, BundleError, BundleLimits, Contents};
pub use frame::{Column, Frame};
pub use manifest::{MANIFEST_FORMAT_VERSION, Manifest, Task};
pub use metrics::{Baseline, Metrics};
pub use pipeline::{FeaturePipeline, FrameSummary, Moments, NullNumbers, PipelineError};
pub use registry::{Approval, GateDecision};
