//! Serving a model bundle. `Bundle` unpacks `model.tar.gz`; `Predictor` loads its ONNX
//! graph with tract once (optimised for any number of rows), turns JSON rows into features
//! with the manifest's pipeline (the trainer's own code) and predicts. Loading runs the
//! graph once, so a bundle that cannot serve is refused when it is loaded (or imported),
//! not on a user's request.

mod bundle;
mod engine;
mod predictor;

pub use bundle::{Bundle, BundleError};
pub use engine::EngineChoice;
pub use predictor::{InputError, Prediction, Predictor, RowPrediction};
