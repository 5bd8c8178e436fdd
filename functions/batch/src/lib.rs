//! The `batch` function: S3 `ObjectCreated` under `input/<model>/…` (CSV or Parquet) →
//! `output/<model>/….predictions.csv` from the model's production version. The file is
//! streamed to local disk and read in chunks, so memory stays bounded whatever its size.
//! Each output row carries the input's row number and the columns the model does not use
//! (ids, labels) as its keys. Rows that do not fit the model go to
//! `output/<model>/….errors.ndjson` with the reason; they never fail the file. A replayed
//! event writes the same outputs again.

mod rows;

use std::path::{Path, PathBuf};

use aws_lambda_events::s3::S3Event;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::json;
use sluice_aws::settings::{SettingsError, Vars, parsed_or, required};
use sluice_aws::{AwsClients, StoreError};
use sluice_aws_serving::{CatalogModels, model_cache};
use sluice_core::metrics::{Metric, Unit, publish};
use sluice_core::{ModelName, percent_decode};
use sluice_serving::{CacheError, ModelCache};
use tokio::io::AsyncWriteExt;

pub use rows::{FileSummary, InputFormat, predict_file};

const INPUT_PREFIX: &str = "input/";
const OUTPUT_PREFIX: &str = "output/";

#[derive(Debug, thiserror::Error)]
pub enum BatchFailure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(sluice_serving::SourceError),
    #[error("scratch file {path}: {source}")]
    Scratch { path: String, source: std::io::Error },
}

/// Where a batch input goes, from its key `input/<model>/<name>.<csv|parquet>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchJob {
    pub model: String,
    /// The key below `input/<model>/`, without the extension.
    pub stem: String,
    pub format: Result<InputFormat, String>,
}

impl BatchJob {
    pub fn parse(key: &str) -> Option<Self> {
        let (model, rest) = key.strip_prefix(INPUT_PREFIX)?.split_once('/')?;
        if rest.is_empty() || rest.ends_with('/') {
            return None;
        }
        let (stem, extension) = rest.rsplit_once('.').unwrap_or((rest, ""));
        let format = match extension.to_ascii_lowercase().as_str() {
            "csv" => Ok(InputFormat::Csv),
            "parquet" => Ok(InputFormat::Parquet),
            other => Err(format!("batch inputs are .csv or .parquet files, not {other:?}")),
        };
        Some(Self { model: model.to_owned(), stem: stem.to_owned(), format })
    }

    pub fn output_key(&self) -> String {
        format!("{OUTPUT_PREFIX}{}/{}.predictions.csv", self.model, self.stem)
    }

    pub fn errors_key(&self) -> String {
        format!("{OUTPUT_PREFIX}{}/{}.errors.ndjson", self.model, self.stem)
    }
}

pub struct Batch {
    cache: ModelCache<CatalogModels>,
    metrics_namespace: String,
    s3: aws_sdk_s3::Client,
    chunk_rows: usize,
    scratch: PathBuf,
}

impl Batch {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        Ok(Self {
            cache: model_cache(clients, vars)?,
            metrics_namespace: required(vars, "METRICS_NAMESPACE")?,
            s3: clients.s3.clone(),
            chunk_rows: parsed_or(vars, "BATCH_CHUNK_ROWS", 5000)?,
            scratch: std::env::temp_dir(),
        })
    }

    /// Rows read and predicted at a time (`BATCH_CHUNK_ROWS`, default 5000).
    pub fn with_chunk_rows(mut self, chunk_rows: usize) -> Self {
        self.chunk_rows = chunk_rows.max(1);
        self
    }

    pub async fn handle(&self, event: S3Event) -> Result<(), BatchFailure> {
        for record in &event.records {
            let bucket = record.s3.bucket.name.clone().unwrap_or_default();
            let key = percent_decode(record.s3.object.key.as_deref().unwrap_or_default());
            match BatchJob::parse(&key) {
                Some(job) => self.run(&bucket, &key, &job).await?,
                None => tracing::info!(%key, "not a batch input; ignored"),
            }
        }
        Ok(())
    }

    async fn run(&self, bucket: &str, key: &str, job: &BatchJob) -> Result<(), BatchFailure> {
        let refuse = |reason: String| async move {
            tracing::warn!(%key, %reason, "batch input refused");
            self.put(bucket, &job.errors_key(), json!({ "row": null, "error": reason }).to_string().into_bytes()).await
        };
        let format = match (&job.format, ModelName::parse(&job.model)) {
            (Err(reason), _) => return refuse(reason.clone()).await,
            (_, Err(invalid)) => return refuse(invalid.to_string()).await,
            (Ok(format), Ok(_)) => *format,
        };
        let serving = match self.cache.get(&job.model).await {
            Ok(serving) => serving,
            Err(CacheError::Source(err)) => return Err(BatchFailure::Source(err)),
            Err(other) => return refuse(other.to_string()).await,
        };

        let id = uuid::Uuid::now_v7().simple().to_string();
        let (input, output, errors) =
            (self.scratch_file(&id, "input"), self.scratch_file(&id, "csv"), self.scratch_file(&id, "errors"));
        let result = async {
            self.download(bucket, key, &input).await?;
            let summary = predict_file(&serving.predictor, format, &input, &output, &errors, self.chunk_rows)
                .map_err(|source| BatchFailure::Scratch { path: input.display().to_string(), source })?;
            self.upload(bucket, &job.output_key(), &output).await?;
            if summary.rows_rejected > 0 || summary.file_error.is_some() {
                self.upload(bucket, &job.errors_key(), &errors).await?;
            }
            Ok::<_, BatchFailure>(summary)
        }
        .await;
        for path in [&input, &output, &errors] {
            let _ = std::fs::remove_file(path);
        }
        let summary = result?;
        tracing::info!(%key, version = serving.version, rows = summary.rows_predicted, rejected = summary.rows_rejected, "batch done");
        publish(
            &self.metrics_namespace,
            &[("Function", "batch"), ("Model", &job.model)],
            &[
                Metric { name: "BatchRowsPredicted".into(), unit: Unit::Count, value: summary.rows_predicted as f64 },
                Metric { name: "BatchRowsRejected".into(), unit: Unit::Count, value: summary.rows_rejected as f64 },
            ],
        );
        Ok(())
    }

    fn scratch_file(&self, id: &str, kind: &str) -> PathBuf {
        self.scratch.join(format!("sluice-batch-{id}.{kind}"))
    }

    /// Streams an object to a local file, chunk by chunk.
    async fn download(&self, bucket: &str, key: &str, path: &Path) -> Result<(), BatchFailure> {
        let scratch = |source: std::io::Error| BatchFailure::Scratch { path: path.display().to_string(), source };
        let mut object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::new("S3", "GetObject", e))?;
        let mut file = tokio::fs::File::create(path).await.map_err(scratch)?;
        while let Some(chunk) = object.body.try_next().await.map_err(|e| StoreError {
            service: "S3",
            operation: "GetObject",
            message: e.to_string(),
        })? {
            file.write_all(&chunk).await.map_err(scratch)?;
        }
        file.flush().await.map_err(scratch)
    }

    async fn upload(&self, bucket: &str, key: &str, path: &Path) -> Result<(), BatchFailure> {
        let body = ByteStream::from_path(path).await.map_err(|e| BatchFailure::Scratch {
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| StoreError::new("S3", "PutObject", e))?;
        Ok(())
    }

    async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<(), BatchFailure> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| StoreError::new("S3", "PutObject", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_keys_name_the_model_and_the_outputs() {
        let job = BatchJob::parse("input/iris/2026/11/scores.csv").unwrap();
        assert_eq!(
            (job.model.as_str(), job.stem.as_str(), job.format.clone()),
            ("iris", "2026/11/scores", Ok(InputFormat::Csv))
        );
        assert_eq!(job.output_key(), "output/iris/2026/11/scores.predictions.csv");
        assert_eq!(job.errors_key(), "output/iris/2026/11/scores.errors.ndjson");
        assert_eq!(BatchJob::parse("input/iris/x.PARQUET").unwrap().format, Ok(InputFormat::Parquet));
        assert!(BatchJob::parse("input/iris/x.xlsx").unwrap().format.is_err());
        for ignored in ["output/iris/x.csv", "input/iris/", "input/x.csv", "other/iris/x.csv"] {
            assert_eq!(BatchJob::parse(ignored), None, "{ignored}");
        }
    }
}
