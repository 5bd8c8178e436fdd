//! The Sluice trainer: reads curated Parquet, fits the feature pipeline and a model,
//! evaluates it on held-out rows, exports it to ONNX (checked against the in-memory model
//! with tract) and writes the model bundle. `contract` maps this onto SageMaker's training
//! container layout.

pub mod network;
pub mod onnx;
pub mod rng;
