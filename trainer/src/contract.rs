//! SageMaker's training-container contract: where inputs are and where outputs go.
//! `SLUICE_SAGEMAKER_ROOT` moves `/opt/ml` elsewhere so the trainer runs as a plain process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::TrainError;
use crate::cluster::Cluster;

pub struct Contract {
    root: PathBuf,
    job: String,
    leader: Option<String>,
}

/// `/opt/ml/input/config/resourceconfig.json` (only what the trainer uses).
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceConfig {
    pub current_host: String,
    pub hosts: Vec<String>,
}

impl Contract {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), job: String::new(), leader: None }
    }

    /// SageMaker names the job in `TRAINING_JOB_NAME`; `SLUICE_CLUSTER_LEADER` (`host:port`)
    /// says where the first host of a multi-instance job listens when its name is not an
    /// address (the local cloud runs every host on loopback).
    pub fn from_env() -> Self {
        let root = std::env::var_os("SLUICE_SAGEMAKER_ROOT").map_or_else(|| PathBuf::from("/opt/ml"), PathBuf::from);
        let job = std::env::var("TRAINING_JOB_NAME").unwrap_or_default();
        Self::new(root).in_job(job, std::env::var("SLUICE_CLUSTER_LEADER").ok())
    }

    pub fn in_job(self, job: impl Into<String>, leader: Option<String>) -> Self {
        Self { job: job.into(), leader, ..self }
    }

    /// This host's place among the job's hosts, connected to the others.
    pub fn cluster(&self) -> Result<Cluster, TrainError> {
        let Some(resources) = self.resource_config()? else { return Ok(Cluster::solo()) };
        let leader = self
            .leader
            .as_deref()
            .map(|address| {
                address.parse().map_err(|e| TrainError::Input(format!("SLUICE_CLUSTER_LEADER {address:?}: {e}")))
            })
            .transpose()?;
        Ok(Cluster::join(&resources, leader, &self.job)?)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Hyperparameters as SageMaker passes them: every value a string. Numbers and booleans
    /// written by hand are accepted too and turned into their text.
    pub fn hyperparameters(&self) -> Result<BTreeMap<String, String>, TrainError> {
        let path = self.root.join("input/config/hyperparameters.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(err) => return Err(TrainError::Input(format!("{}: {err}", path.display()))),
        };
        let values: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
            .map_err(|err| TrainError::Input(format!("{} is not a JSON object: {err}", path.display())))?;
        Ok(values
            .into_iter()
            .map(|(name, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (name, text)
            })
            .collect())
    }

    pub fn resource_config(&self) -> Result<Option<ResourceConfig>, TrainError> {
        let path = self.root.join("input/config/resourceconfig.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|err| TrainError::Input(format!("{}: {err}", path.display()))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(TrainError::Input(format!("{}: {err}", path.display()))),
        }
    }

    pub fn channel(&self, name: &str) -> PathBuf {
        self.root.join("input/data").join(name)
    }

    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    pub fn failure_file(&self) -> PathBuf {
        self.root.join("output/failure")
    }
}
