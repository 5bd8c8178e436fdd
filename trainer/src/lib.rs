//! The Sluice trainer: reads curated Parquet, fits the feature pipeline and a model (linear,
//! MLP or gradient-boosted trees), evaluates it on held-out rows, exports it to ONNX (checked
//! against the in-memory model with tract) and writes the model bundle. `contract` maps this
//! onto SageMaker's training container layout.

pub mod cluster;
pub mod contract;
pub mod data;
pub mod gbt;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod network;
pub mod onnx;
pub mod rng;
pub mod train;

/// Largest difference allowed between the exported graph and the trained network, relative
/// to the scale of the network's outputs (see [`onnx::ExportCheck`]): f32 arithmetic in a
/// different order differs by a few parts in a million of the values it works on, whether
/// they are probabilities, prices in the hundred thousands or rates in the ten-thousandths.
pub const ONNX_TOLERANCE: f32 = 1e-4;

/// Why a run failed; the message goes to `/opt/ml/output/failure`.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Input(String),
    #[error("cannot read training data: {0}")]
    Data(String),
    #[error("export failed: {0}")]
    Export(String),
    #[error("cannot write the model: {0}")]
    Output(String),
    #[error("distributed training: {0}")]
    Cluster(#[from] cluster::ClusterError),
}
