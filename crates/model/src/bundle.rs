//! `model.tar.gz`, the model bundle, as SageMaker writes it (schema: `docs/model-bundle.md`).
//!
//! One reader and one packer for everything that handles bundles: the trainer writes the
//! files, the local runner and SageMaker pack the folder, `register` reads the metrics,
//! imports and `predict` read everything, `monitor` reads the baseline.
//!
//! Bundles come from outside (imports) and a few kilobytes of gzip can inflate to
//! gigabytes, so the reader counts every inflated byte against a cap derived from the
//! reading function's memory, caps each file, and reads tar's long-name and PAX headers
//! itself (the `tar` crate reads them whole into memory, whatever size they claim).

use std::io::{self, Read};
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::manifest::Manifest;
use crate::metrics::{Baseline, Metrics};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MODEL_FILE: &str = "model.onnx";
pub const METRICS_FILE: &str = "metrics.json";
pub const BASELINE_FILE: &str = "baseline.json";

/// The longest GNU long name or PAX header accepted: real paths are far shorter.
const MAX_HEADER_EXTENSION_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is not a readable tar.gz: {0}")]
    Archive(String),
    #[error("the bundle has no {0}")]
    Missing(&'static str),
    #[error("{file} in the bundle is larger than {limit} bytes")]
    TooLarge { file: String, limit: u64 },
    #[error("the bundle inflates to more than {0} bytes")]
    Inflates(u64),
    #[error("{file} in the bundle is not valid: {message}")]
    Invalid { file: &'static str, message: String },
    #[error("the model cannot be served: {0}")]
    Model(String),
}

/// How much of a bundle a reader may hold, set below the reading function's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleLimits {
    /// Every byte the archive inflates to, files skipped included.
    pub inflated_bytes: u64,
    pub model_bytes: u64,
    /// Each JSON file (the baseline of a wide data set is the largest).
    pub json_bytes: u64,
}

impl BundleLimits {
    /// Limits for a process with `memory_bytes` of memory: the model may take a quarter
    /// (loading it into an engine takes about as much again), each JSON file a sixteenth
    /// (parsed JSON is a few times its text). Skipped bytes are not held, so the stream as a
    /// whole may inflate to twice the memory: that bounds the time reading takes.
    pub fn for_memory(memory_bytes: u64) -> Self {
        Self { inflated_bytes: 2 * memory_bytes, model_bytes: memory_bytes / 4, json_bytes: memory_bytes / 16 }
    }
}

/// Which files a reader wants: everything but the graph is small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    All,
    /// Manifest, metrics and baseline; `model.onnx` is skipped (and may be absent).
    WithoutModel,
}

#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    /// Empty when read with [`Contents::WithoutModel`].
    pub onnx: Vec<u8>,
    pub metrics: Option<Metrics>,
    pub baseline: Option<Baseline>,
}

impl Bundle {
    pub fn from_tar_gz(bytes: &[u8], limits: BundleLimits, contents: Contents) -> Result<Self, BundleError> {
        let files = read_files(bytes, limits, contents)?;
        let manifest: Manifest = parse(MANIFEST_FILE, files.manifest.ok_or(BundleError::Missing(MANIFEST_FILE))?)?;
        let onnx = match (contents, files.onnx) {
            (Contents::All, None) => return Err(BundleError::Missing(MODEL_FILE)),
            (_, onnx) => onnx.unwrap_or_default(),
        };
        Ok(Self {
            manifest,
            onnx,
            metrics: files.metrics.map(|m| parse(METRICS_FILE, m)).transpose()?,
            baseline: files.baseline.map(|b| parse(BASELINE_FILE, b)).transpose()?,
        })
    }

    /// The bundle's files, named as in the archive.
    pub fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut files = vec![(MANIFEST_FILE, pretty(&self.manifest)), (MODEL_FILE, self.onnx.clone())];
        files.extend(self.metrics.as_ref().map(|metrics| (METRICS_FILE, pretty(metrics))));
        files.extend(self.baseline.as_ref().map(|baseline| (BASELINE_FILE, pretty(baseline))));
        files
    }

    /// Writes the files into `dir` (the trainer's `/opt/ml/model`).
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, bytes) in self.files() {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(())
    }

    /// `model.tar.gz` bytes, packed as SageMaker packs the model folder.
    pub fn to_tar_gz(&self) -> Vec<u8> {
        pack(self.files().iter().map(|(name, bytes)| (*name, bytes.as_slice()))).expect("packing in memory cannot fail")
    }
}

fn pretty(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("bundle files serialise")
}

/// A tar.gz of `files` at the archive root (`./name`), as SageMaker packs `/opt/ml/model`.
pub fn pack<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, format!("./{name}"), bytes)?;
    }
    archive.into_inner()?.finish()
}

/// Every file directly in `dir`, packed with [`pack`] (what SageMaker does with the model
/// folder when a training job ends).
pub fn pack_dir(dir: &Path) -> io::Result<Vec<u8>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path())?));
        }
    }
    files.sort();
    pack(files.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())))
}

fn parse<T: DeserializeOwned>(file: &'static str, bytes: Vec<u8>) -> Result<T, BundleError> {
    serde_json::from_slice(&bytes).map_err(|e| BundleError::Invalid { file, message: e.to_string() })
}

#[derive(Default)]
struct Files {
    manifest: Option<Vec<u8>>,
    onnx: Option<Vec<u8>>,
    metrics: Option<Vec<u8>>,
    baseline: Option<Vec<u8>>,
}

/// Counts inflated bytes and fails, rather than truncating, past the limit.
struct Inflated<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(BundleError::Inflates(self.limit)));
        }
        Ok(n)
    }
}

fn archive_error(err: io::Error) -> BundleError {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<BundleError>()) {
        Some(BundleError::Inflates(limit)) => BundleError::Inflates(*limit),
        _ => BundleError::Archive(err.to_string()),
    }
}

/// Reads at most `limit` bytes of an entry; more is an error naming `file`.
fn read_capped(entry: &mut impl Read, file: &str, limit: u64) -> Result<Vec<u8>, BundleError> {
    let mut content = Vec::new();
    entry.take(limit + 1).read_to_end(&mut content).map_err(archive_error)?;
    if content.len() as u64 > limit {
        return Err(BundleError::TooLarge { file: file.to_owned(), limit });
    }
    Ok(content)
}

/// The `path` record of a PAX extended header (`<length> path=<value>\n` records).
fn pax_path(records: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(records).ok()?;
    text.lines().find_map(|record| record.split_once(' ')?.1.strip_prefix("path=").map(str::to_owned))
}

fn read_files(bytes: &[u8], limits: BundleLimits, contents: Contents) -> Result<Files, BundleError> {
    let inflated = Inflated { inner: flate2::read::GzDecoder::new(bytes), read: 0, limit: limits.inflated_bytes };
    let mut archive = tar::Archive::new(inflated);
    let mut files = Files::default();
    // The name a GNU long-name or PAX header gives the entry after it.
    let mut next_name: Option<String> = None;
    for entry in archive.entries().map_err(archive_error)?.raw(true) {
        let mut entry = entry.map_err(archive_error)?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname() || kind.is_pax_local_extensions() {
            let extension = read_capped(&mut entry, "a tar header extension", MAX_HEADER_EXTENSION_BYTES)?;
            next_name = if kind.is_gnu_longname() {
                Some(String::from_utf8_lossy(extension.strip_suffix(b"\0").unwrap_or(&extension)).into_owned())
            } else {
                if std::str::from_utf8(&extension).is_ok_and(|t| t.lines().any(|r| r.contains(" size="))) {
                    return Err(BundleError::Archive("PAX size records (files over 8 GB) are not supported".into()));
                }
                pax_path(&extension)
            };
            continue;
        }
        if kind.is_gnu_longlink() || kind.is_pax_global_extensions() {
            read_capped(&mut entry, "a tar header extension", MAX_HEADER_EXTENSION_BYTES)?;
            continue;
        }
        let name = match next_name.take() {
            Some(name) => name,
            None => entry.path().map_err(archive_error)?.to_string_lossy().into_owned(),
        };
        if !kind.is_file() {
            continue;
        }
        let name = name.trim_start_matches("./");
        let (slot, limit) = match name {
            MANIFEST_FILE => (&mut files.manifest, limits.json_bytes),
            METRICS_FILE => (&mut files.metrics, limits.json_bytes),
            BASELINE_FILE => (&mut files.baseline, limits.json_bytes),
            MODEL_FILE if contents == Contents::All => (&mut files.onnx, limits.model_bytes),
            // Skipped entries are still inflated, and counted, as the stream moves past them.
            _ => continue,
        };
        *slot = Some(read_capped(&mut entry, name, limit)?);
        let json_read = files.manifest.is_some() && files.metrics.is_some() && files.baseline.is_some();
        if contents == Contents::WithoutModel && json_read {
            // Nothing more is wanted: the rest (the graph, say) is not even inflated.
            break;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::manifest::{MANIFEST_FORMAT_VERSION, Task};
    use crate::pipeline::{FeaturePipeline, FeatureStep};

    const ROOMY: BundleLimits = BundleLimits { inflated_bytes: 1 << 24, model_bytes: 1 << 20, json_bytes: 1 << 20 };

    fn manifest() -> Manifest {
        Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            model_name: "m".into(),
            model_version: "v".into(),
            task: Task::Regression,
            algorithm: "linear".into(),
            target: "y".into(),
            onnx_input: "features".into(),
            onnx_outputs: vec!["prediction".into()],
            class_labels: vec![],
            pipeline: FeaturePipeline {
                steps: vec![FeatureStep::Standardize { column: "x".into(), mean: 0.0, std: 1.0 }],
                null_numbers: Default::default(),
            },
            training_data: vec![],
            hyperparameters: BTreeMap::new(),
            seed: 1,
            library_versions: BTreeMap::new(),
        }
    }

    fn bundle() -> Bundle {
        Bundle { manifest: manifest(), onnx: b"graph".to_vec(), metrics: None, baseline: None }
    }

    /// A raw tar entry: a header of `kind` with `content`, padded to 512-byte blocks.
    fn raw_entry(kind: tar::EntryType, name: &str, content: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_path(name).unwrap();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        let mut block = header.as_bytes().to_vec();
        block.extend_from_slice(content);
        block.resize(block.len().div_ceil(512) * 512, 0);
        block
    }

    fn gzip(raw: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(raw).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn packed_bundles_read_back() {
        let read = Bundle::from_tar_gz(&bundle().to_tar_gz(), ROOMY, Contents::All).unwrap();
        assert_eq!(read.manifest, manifest());
        assert_eq!(read.onnx, b"graph");
        let light = Bundle::from_tar_gz(&bundle().to_tar_gz(), ROOMY, Contents::WithoutModel).unwrap();
        assert!(light.onnx.is_empty(), "the graph is skipped when not wanted");
    }

    #[test]
    fn a_missing_graph_or_manifest_is_named() {
        let no_graph = pack([(MANIFEST_FILE, serde_json::to_vec(&manifest()).unwrap().as_slice())]).unwrap();
        assert!(matches!(Bundle::from_tar_gz(&no_graph, ROOMY, Contents::All), Err(BundleError::Missing(MODEL_FILE))));
        assert!(Bundle::from_tar_gz(&no_graph, ROOMY, Contents::WithoutModel).is_ok());
        let no_manifest = pack([(MODEL_FILE, b"graph".as_slice())]).unwrap();
        assert!(matches!(
            Bundle::from_tar_gz(&no_manifest, ROOMY, Contents::All),
            Err(BundleError::Missing(MANIFEST_FILE))
        ));
    }

    #[test]
    fn a_small_archive_that_inflates_past_the_limit_is_refused() {
        // 64 MiB of zeros gzips to about 64 KiB.
        let zeros = vec![0_u8; 64 << 20];
        let bomb = pack([("padding.bin", zeros.as_slice())]).unwrap();
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        let limits = BundleLimits { inflated_bytes: 8 << 20, ..ROOMY };
        assert!(matches!(Bundle::from_tar_gz(&bomb, limits, Contents::All), Err(BundleError::Inflates(_))));
    }

    #[test]
    fn each_file_is_capped() {
        let big = vec![b' '; 2 << 20];
        let archive = pack([(MANIFEST_FILE, big.as_slice())]).unwrap();
        let refused = Bundle::from_tar_gz(&archive, ROOMY, Contents::All).unwrap_err();
        assert!(matches!(&refused, BundleError::TooLarge { file, .. } if file == MANIFEST_FILE), "{refused}");
    }

    #[test]
    fn huge_long_name_and_pax_headers_are_refused_without_being_held() {
        for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
            let mut raw = raw_entry(kind, "././@LongLink", &vec![b'a'; 1 << 20]);
            raw.extend(vec![0; 1024]);
            let refused = Bundle::from_tar_gz(&gzip(&raw), ROOMY, Contents::All).unwrap_err();
            assert!(matches!(refused, BundleError::TooLarge { .. }), "{kind:?}: {refused}");
        }
    }

    #[test]
    fn long_names_and_pax_paths_name_the_next_entry() {
        let manifest = serde_json::to_vec(&manifest()).unwrap();
        let mut raw = raw_entry(tar::EntryType::GNULongName, "././@LongLink", b"./manifest.json\0");
        raw.extend(raw_entry(tar::EntryType::Regular, "short-name", &manifest));
        raw.extend(raw_entry(tar::EntryType::XHeader, "pax", b"22 path=./model.onnx\n"));
        raw.extend(raw_entry(tar::EntryType::Regular, "other", b"graph"));
        raw.extend(vec![0; 1024]);
        let read = Bundle::from_tar_gz(&gzip(&raw), ROOMY, Contents::All).unwrap();
        assert_eq!(read.onnx, b"graph");
    }

    #[test]
    fn folders_pack_like_sagemaker_packs_the_model_folder() {
        let dir = std::env::temp_dir().join(format!("sluice-bundle-{}", std::process::id()));
        bundle().write_to(&dir).unwrap();
        let read = Bundle::from_tar_gz(&pack_dir(&dir).unwrap(), ROOMY, Contents::All).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read.manifest, manifest());
    }

    #[test]
    fn limits_follow_memory() {
        let limits = BundleLimits::for_memory(1 << 30);
        assert_eq!((limits.model_bytes, limits.json_bytes), (256 << 20, 64 << 20));
    }
}
