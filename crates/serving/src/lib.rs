//! Serving a model bundle, and the serving use case. `Predictor` loads a bundle's ONNX
//! graph with tract once (optimised for any number of rows), turns JSON rows into features
//! with the manifest's pipeline (the trainer's own code) and predicts; loading runs the
//! graph once, so a bundle that cannot serve is refused when it is loaded (or imported),
//! not on a user's request. `ModelCache` keeps each model's production predictor;
//! `PredictionService` is what `predict` and `stream` call, with the stores behind traits.

mod cache;
mod engine;
mod predictor;
mod service;

pub use cache::{CacheError, Candidate, CandidateServing, ModelCache, ModelSource, Production, Serving, SourceError};
pub use engine::EngineChoice;
pub use predictor::{InputColumn, InputError, Prediction, Predictor, RowPrediction};
pub use service::{
    Input, PredictionRecord, PredictionService, PredictionSink, RecordedRow, ServeError, Served, ServiceSettings,
};
