//! SageMaker (training and tuning jobs, the model registry), the training use case shared
//! by the API, the schedule and remediation, and SNS (operator notifications), behind types
//! that speak Sluice's terms. Kept apart from `sluice-aws` so functions that never train or
//! register (ingest, ETL, predict) do not carry the SageMaker SDK.

mod jobs;
mod operators;
pub mod registry;
pub mod rollouts;
pub mod training;

pub use jobs::{ChannelSource, JobNetwork, SageMaker, TrainingJob, TrainingSpec};
pub use operators::Operators;
pub use registry::{ModelRegistry, ModelVersion, ProductionChange};
pub use rollouts::{Ending, RolloutError, RolloutSettings, Rollouts};
pub use training::{StartedJob, TrainError, TrainingService, TrainingSettings, Trigger};

use sluice_aws::StoreError;

fn failed(operation: &'static str, err: impl std::error::Error) -> StoreError {
    StoreError { service: "SageMaker", operation, message: sluice_aws::error_chain(err) }
}
