//! The inference engines. tract (pure Rust, no shared library) is the default; with the
//! `ort` feature, ONNX Runtime (loaded at run time from `ORT_DYLIB_PATH`) runs the graphs
//! tract cannot load, or all of them when `SLUICE_INFERENCE_ENGINE=ort`.

use std::sync::Arc;

use tract_onnx::prelude::*;

use sluice_model::BundleError;

pub enum Engine {
    Tract {
        plan: Arc<TypedRunnableModel>,
        output: usize,
    },
    #[cfg(feature = "ort")]
    Ort {
        session: std::sync::Mutex<ort::session::Session>,
        input: String,
        output: String,
    },
}

fn model_error(err: impl std::fmt::Display) -> BundleError {
    BundleError::Model(format!("{err:#}"))
}

/// Which engine runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// tract, or ONNX Runtime for a graph tract cannot load (when built with `ort`).
    Tract,
    /// ONNX Runtime only.
    Ort,
}

impl EngineChoice {
    /// From `SLUICE_INFERENCE_ENGINE`: `tract` (default) or `ort`.
    pub fn from_env() -> Result<Self, BundleError> {
        match std::env::var("SLUICE_INFERENCE_ENGINE").as_deref() {
            Err(_) | Ok("" | "tract") => Ok(Self::Tract),
            Ok("ort") if cfg!(feature = "ort") => Ok(Self::Ort),
            Ok(other) => Err(BundleError::Model(format!(
                "SLUICE_INFERENCE_ENGINE={other:?}: this build runs tract{}",
                if cfg!(feature = "ort") { " or ort" } else { " (build with the ort feature for ONNX Runtime)" }
            ))),
        }
    }
}

impl Engine {
    pub fn load(
        onnx: &[u8],
        input: &str,
        output: &str,
        width: usize,
        choice: EngineChoice,
    ) -> Result<Self, BundleError> {
        if choice == EngineChoice::Ort {
            return Self::ort(onnx, input, output);
        }
        match Self::tract(onnx, output, width) {
            Ok(engine) => Ok(engine),
            #[cfg(feature = "ort")]
            Err(tract) => Self::ort(onnx, input, output)
                .map_err(|ort| BundleError::Model(format!("tract: {tract}; ONNX Runtime: {ort}"))),
            #[cfg(not(feature = "ort"))]
            Err(tract) => {
                let _ = input;
                Err(tract)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Tract { .. } => "tract",
            #[cfg(feature = "ort")]
            Self::Ort { .. } => "ort",
        }
    }

    /// Loads and optimises the graph for any number of rows of `width` features.
    fn tract(onnx: &[u8], wanted: &str, width: usize) -> Result<Self, BundleError> {
        let mut model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).map_err(model_error)?;
        let rows = model.symbols.sym("rows");
        model =
            model.with_input_fact(0, f32::fact([TDim::from(rows), TDim::from(width)]).into()).map_err(model_error)?;
        let typed = model.into_optimized().map_err(model_error)?;
        let outlets = typed.output_outlets().map_err(model_error)?;
        let names: Vec<String> = outlets
            .iter()
            .map(|&outlet| typed.outlet_label(outlet).unwrap_or(&typed.node(outlet.node).name).to_owned())
            .collect();
        let output = names.iter().position(|name| name == wanted).ok_or_else(|| {
            BundleError::Model(format!("the graph has no output {wanted:?} (it has {})", names.join(", ")))
        })?;
        Ok(Self::Tract { plan: typed.into_runnable().map_err(model_error)?, output })
    }

    #[cfg(feature = "ort")]
    fn ort(onnx: &[u8], input: &str, output: &str) -> Result<Self, BundleError> {
        static ENVIRONMENT: std::sync::OnceLock<Result<ort::environment::Environment, String>> =
            std::sync::OnceLock::new();
        // Loaded from an explicit path so a missing library is an error, not a panic.
        let environment = ENVIRONMENT
            .get_or_init(|| {
                let path = std::env::var("ORT_DYLIB_PATH")
                    .map_err(|_| "ORT_DYLIB_PATH does not name the libonnxruntime library".to_owned())?;
                let builder = ort::init_from(&path).map_err(|e| format!("{path}: {e}"))?;
                builder.with_name("sluice").build().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| BundleError::Model(format!("ONNX Runtime could not start: {e}")))?;
        let session = ort::session::Session::builder(environment)
            .and_then(|mut builder| builder.commit_from_memory(onnx))
            .map_err(model_error)?;
        let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        if !names.contains(&output) {
            return Err(BundleError::Model(format!(
                "the graph has no output {output:?} (it has {})",
                names.join(", ")
            )));
        }
        Ok(Self::Ort { session: std::sync::Mutex::new(session), input: input.to_owned(), output: output.to_owned() })
    }

    #[cfg(not(feature = "ort"))]
    fn ort(_onnx: &[u8], _input: &str, _output: &str) -> Result<Self, BundleError> {
        Err(BundleError::Model("this build has no ONNX Runtime (build with the ort feature)".into()))
    }

    /// Runs `rows × width` features; the wanted output, row-major.
    pub fn run(&self, features: Vec<f32>, rows: usize, width: usize) -> Result<Vec<f32>, BundleError> {
        match self {
            Self::Tract { plan, output } => {
                let input = tract_ndarray::Array2::from_shape_vec((rows, width), features).map_err(model_error)?;
                let outputs = plan.run(tvec!(Tensor::from(input).into())).map_err(model_error)?;
                let view = outputs[*output].to_plain_array_view::<f32>().map_err(model_error)?;
                Ok(view.iter().copied().collect())
            }
            #[cfg(feature = "ort")]
            Self::Ort { session, input, output } => {
                let tensor = ort::value::Tensor::from_array(([rows, width], features)).map_err(model_error)?;
                let mut session = session.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let outputs = session.run(ort::inputs![input.as_str() => tensor]).map_err(model_error)?;
                let (_, values) = outputs[output.as_str()].try_extract_tensor::<f32>().map_err(model_error)?;
                Ok(values.to_vec())
            }
        }
    }
}
