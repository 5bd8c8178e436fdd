//! `model.tar.gz` as SageMaker writes it (see `docs/model-bundle.md`).

use std::io::Read;

use sluice_model::Manifest;

/// No bundle file is allowed to inflate beyond this: a small archive must not exhaust
/// the memory of the function unpacking it.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is not a readable tar.gz: {0}")]
    Archive(String),
    #[error("the bundle has no {0}")]
    Missing(&'static str),
    #[error("{file} in the bundle is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { file: String },
    #[error("{file} in the bundle is not valid: {message}")]
    Invalid { file: &'static str, message: String },
    #[error("the model cannot be served: {0}")]
    Model(String),
}

#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub onnx: Vec<u8>,
    pub metrics: Option<serde_json::Value>,
    pub baseline: Option<serde_json::Value>,
}

impl Bundle {
    pub fn from_tar_gz(bytes: &[u8]) -> Result<Self, BundleError> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let (mut manifest, mut onnx, mut metrics, mut baseline) = (None, None, None, None);
        for entry in archive.entries().map_err(|e| BundleError::Archive(e.to_string()))? {
            let entry = entry.map_err(|e| BundleError::Archive(e.to_string()))?;
            let path = entry.path().map_err(|e| BundleError::Archive(e.to_string()))?;
            let name = path.to_string_lossy().trim_start_matches("./").to_owned();
            let slot = match name.as_str() {
                "manifest.json" => &mut manifest,
                "model.onnx" => &mut onnx,
                "metrics.json" => &mut metrics,
                "baseline.json" => &mut baseline,
                _ => continue,
            };
            let mut content = Vec::new();
            entry
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut content)
                .map_err(|e| BundleError::Archive(e.to_string()))?;
            if content.len() as u64 > MAX_FILE_BYTES {
                return Err(BundleError::TooLarge { file: name });
            }
            *slot = Some(content);
        }
        let json = |file: &'static str, bytes: Vec<u8>| {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| BundleError::Invalid { file, message: e.to_string() })
        };
        let manifest = manifest.ok_or(BundleError::Missing("manifest.json"))?;
        let manifest: Manifest = serde_json::from_slice(&manifest)
            .map_err(|e| BundleError::Invalid { file: "manifest.json", message: e.to_string() })?;
        Ok(Self {
            manifest,
            onnx: onnx.ok_or(BundleError::Missing("model.onnx"))?,
            metrics: metrics.map(|m| json("metrics.json", m)).transpose()?,
            baseline: baseline.map(|b| json("baseline.json", b)).transpose()?,
        })
    }
}
