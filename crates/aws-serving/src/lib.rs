//! The serving use case (`sluice-serving`) wired to AWS: production versions come from the
//! catalog (one read), bundles from S3, and answered requests go to the predictions table
//! (lookup by id, feedback) and to the capture stream (Firehose → the capture bucket,
//! which monitoring reads). `predict`, `stream` and `batch` build what they need here.

mod capture;
mod log;

use std::time::Duration;

pub use capture::CaptureStream;
pub use log::{PredictionLog, StoredPrediction};
use sluice_aws::settings::{SettingsError, Vars, function_memory_bytes, parsed_or, required};
use sluice_aws::{AwsClients, Catalog, StoreError};
use sluice_model::BundleLimits;
use sluice_model::rollout::{Rollout, RolloutStatus};
use sluice_serving::{Candidate, ModelCache, ModelSource, PredictionService, Production, ServiceSettings, SourceError};

/// Recording waits this long at most: a slow store must not hold up the answer.
const RECORD_DEADLINE: Duration = Duration::from_millis(500);

fn source_error(err: StoreError) -> SourceError {
    SourceError(err.to_string())
}

/// Production versions as the catalog records them, and their bundles in S3.
pub struct CatalogModels {
    catalog: Catalog,
    s3: aws_sdk_s3::Client,
    /// The largest bundle this function fetches (its inflation cap: a bundle's compressed
    /// bytes are never more).
    max_bundle_bytes: u64,
}

impl ModelSource for CatalogModels {
    /// The production record and the rollout record, read together (two reads, once per
    /// `MODEL_REFRESH_SECONDS`, not per request). The rollout is best effort: a rollout
    /// record that cannot be read or parsed leaves production serving alone.
    async fn production(&self, model: &str) -> Result<Option<Production>, SourceError> {
        let (record, rollout) = tokio::join!(self.catalog.production(model), self.catalog.rollout_document(model));
        let rollout = match rollout.map_err(|e| e.to_string()).and_then(|document| {
            document.map(|d| serde_json::from_str::<Rollout>(&d).map_err(|e| e.to_string())).transpose()
        }) {
            Ok(rollout) => rollout,
            Err(err) => {
                tracing::error!(%model, error = %err, "rollout record unreadable; serving production alone");
                None
            }
        };
        Ok(record.map_err(source_error)?.map(|p| Production {
            candidate: rollout
                .filter(|r| r.status == RolloutStatus::Running && r.production == p.version)
                .map(|r| Candidate { version: r.candidate, bundle_uri: r.bundle, policy: r.policy }),
            version: p.version,
            bundle_uri: p.bundle_uri,
        }))
    }

    async fn bundle(&self, uri: &str) -> Result<Vec<u8>, SourceError> {
        sluice_aws::read_s3_uri(&self.s3, uri, self.max_bundle_bytes).await.map_err(source_error)
    }
}

/// Each model's production predictor, refreshed every `MODEL_REFRESH_SECONDS` (30), with
/// bundles capped below this function's memory.
pub fn model_cache(clients: &AwsClients, vars: &dyn Vars) -> Result<ModelCache<CatalogModels>, SettingsError> {
    let limits = BundleLimits::for_memory(function_memory_bytes(vars)?);
    let source = CatalogModels {
        catalog: Catalog::new(clients.dynamodb.clone(), required(vars, "CATALOG_TABLE")?),
        s3: clients.s3.clone(),
        max_bundle_bytes: limits.inflated_bytes,
    };
    let staleness = Duration::from_secs(parsed_or(vars, "MODEL_REFRESH_SECONDS", 30)?);
    Ok(ModelCache::new(source, staleness, limits))
}

pub type Service = PredictionService<CatalogModels, PredictionLog>;

/// The serving use case as `predict` and `stream` run it.
pub fn prediction_service(clients: &AwsClients, vars: &dyn Vars) -> Result<Service, SettingsError> {
    let log = PredictionLog {
        dynamodb: clients.dynamodb.clone(),
        capture: CaptureStream::new(clients, required(vars, "CAPTURE_STREAM")?),
        table: required(vars, "PREDICTIONS_TABLE")?,
        retention_days: parsed_or(vars, "PREDICTION_RETENTION_DAYS", 30)?,
    };
    let settings = ServiceSettings {
        max_rows: parsed_or(vars, "MAX_ROWS", 1000)?,
        metrics_namespace: required(vars, "METRICS_NAMESPACE")?,
        record_deadline: RECORD_DEADLINE,
    };
    Ok(PredictionService::new(model_cache(clients, vars)?, log, settings))
}
