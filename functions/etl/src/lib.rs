//! The `etl` function: S3 `ObjectCreated` on the raw zone → curated Parquet, rejected rows
//! and a profile, and the catalog entry moved to `PROCESSED` or `FAILED`.
//!
//! Bad data is an outcome, not an error: the entry says `FAILED` and why, and the event is
//! done. Errors are for what a retry can fix (an AWS call failed) or what nobody can
//! (a key outside the raw layout); they fail the invocation, Lambda retries it, and after
//! the retries the event goes to the on-failure queue. The function reads that queue too:
//! an object the ETL gave up on (errors, a timeout, running out of memory) is marked
//! `FAILED` with Lambda's reason, so no entry stays `RECEIVED` unexplained.

use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sqs::SqsEvent;
use sluice_aws::blocking::MultipartWriter;
use sluice_aws::settings::{SettingsError, Vars, required};
use sluice_aws::{AwsClients, Catalog, CuratedZone, OnFailureRecord, RawZone, StoreError, VersionedSchema};
use sluice_core::metrics::{Metric, Unit, publish};
use sluice_core::options::DatasetOptions;
use sluice_core::schema::Schema;
use sluice_core::{
    CatalogEntry, CuratedKeys, DatasetName, IngestId, IngestSource, IngestStatus, Processing, RawKey, Sha256Digest,
    dataset_profile_key, percent_decode,
};
use sluice_etl::{EtlError, TableSummary, convert_table, process_image};
use sluice_formats::ContentKind;
use sluice_profile::Profile;
use time::OffsetDateTime;

/// How often the ETL re-reads the dataset schema when another object changed it meanwhile.
const SCHEMA_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum EtlFailure {
    #[error("object key {0:?} is not in the raw zone layout <dataset>/ingest_date=<YYYY-MM-DD>/<ingest id>.<ext>")]
    UnexpectedKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the schema of dataset {0} changed under every one of {SCHEMA_ATTEMPTS} attempts")]
    SchemaContention(DatasetName),
    #[error("the dataset profile {0} does not parse: {1}")]
    CorruptProfile(String, String),
    #[error("the profile of dataset {0} changed under every one of {PROFILE_ATTEMPTS} attempts")]
    ProfileContention(DatasetName),
    #[error("cannot read the object or write its outputs: {0}")]
    Output(String),
    #[error("the event is neither an S3 notification nor an SQS batch of on-failure records: {0}")]
    UnexpectedEvent(String),
}

pub struct Etl {
    clients: AwsClients,
    curated: CuratedZone,
    catalog: Catalog,
}

impl Etl {
    /// Reads `CURATED_BUCKET` and `CATALOG_TABLE`; the raw bucket comes with each event.
    pub fn from_settings(clients: AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        Ok(Self {
            curated: CuratedZone::new(clients.s3.clone(), required(vars, "CURATED_BUCKET")?),
            catalog: Catalog::new(clients.dynamodb.clone(), required(vars, "CATALOG_TABLE")?),
            clients,
        })
    }

    /// S3 notifications from the raw bucket, or the on-failure queue's records of events
    /// the function gave up on.
    pub async fn handle_event(&self, event: serde_json::Value) -> Result<(), EtlFailure> {
        let unexpected = |err: serde_json::Error| EtlFailure::UnexpectedEvent(err.to_string());
        if event["Records"][0]["eventSource"] == "aws:sqs" {
            self.handle_failures(serde_json::from_value(event).map_err(unexpected)?).await
        } else {
            self.handle(serde_json::from_value(event).map_err(unexpected)?).await
        }
    }

    /// Marks each object in the given-up events `FAILED` with Lambda's reason, unless an
    /// attempt finished it after all.
    pub async fn handle_failures(&self, event: SqsEvent) -> Result<(), EtlFailure> {
        for message in event.records {
            let body = message.body.unwrap_or_default();
            let record: OnFailureRecord = match serde_json::from_str(&body) {
                Ok(record) => record,
                Err(err) => {
                    // Retrying cannot make it readable; it stays in the logs to look at.
                    tracing::error!(error = %err, %body, "not an on-failure record");
                    continue;
                }
            };
            let reason = format!("the ETL {}", record.reason());
            let Ok(s3_event) = serde_json::from_value::<S3Event>(record.request_payload) else {
                tracing::error!(%reason, "the on-failure record carries no S3 event");
                continue;
            };
            for s3_record in s3_event.records {
                let (Some(bucket), Some(key)) = (s3_record.s3.bucket.name, s3_record.s3.object.key) else { continue };
                self.give_up(&bucket, &s3_event_key(&key), &reason).await?;
            }
        }
        Ok(())
    }

    async fn give_up(&self, bucket: &str, key: &str, reason: &str) -> Result<(), EtlFailure> {
        let Some(raw_key) = RawKey::parse(key) else {
            tracing::error!(%key, %reason, "gave up on an object outside the raw layout; it has no catalog entry");
            return Ok(());
        };
        let entry = match self.catalog.ingest(&raw_key.dataset, raw_key.ingest_id).await? {
            Some(entry) if matches!(entry.status, IngestStatus::Processed | IngestStatus::Failed) => return Ok(()),
            Some(entry) => entry,
            None => new_entry(&raw_key, bucket, key, None),
        };
        self.fail(entry, &raw_key, reason.to_owned()).await
    }

    pub async fn handle(&self, event: S3Event) -> Result<(), EtlFailure> {
        for record in event.records {
            let created = record.event_name.as_deref().is_some_and(|name| name.starts_with("ObjectCreated"));
            let (Some(bucket), Some(key)) = (record.s3.bucket.name, record.s3.object.key) else { continue };
            if created {
                self.process(&bucket, &s3_event_key(&key)).await?;
            }
        }
        Ok(())
    }

    async fn process(&self, bucket: &str, key: &str) -> Result<(), EtlFailure> {
        let raw_key = RawKey::parse(key).ok_or_else(|| EtlFailure::UnexpectedKey(key.to_owned()))?;
        let dataset = raw_key.dataset.clone();
        let options = self.catalog.options(&dataset).await?;
        let raw_zone = RawZone::new(self.clients.s3.clone(), bucket);
        let object = raw_zone.head(key).await?;
        let mut entry = match self.catalog.ingest(&dataset, raw_key.ingest_id).await? {
            Some(entry) => entry,
            None => new_entry(&raw_key, bucket, key, object.content_type.as_deref()),
        };
        entry.size_bytes = Some(object.size);
        entry.label = entry.label.or(object.label);
        let max_bytes = options.limits.max_object_bytes;
        if object.size > max_bytes {
            let reason =
                format!("the object is {} bytes, over the dataset limit max_object_bytes = {max_bytes}", object.size);
            return self.fail(entry, &raw_key, reason).await;
        }
        let Some(kind) = ContentKind::from_extension(&raw_key.extension) else {
            return self.fail(entry, &raw_key, format!("unsupported file extension {:?}", raw_key.extension)).await;
        };
        let keys = raw_key.curated();
        let source = Source { raw_zone, key: key.to_owned(), kind, keys: keys.clone() };
        let converted = if kind.is_image() {
            self.convert_image(&dataset, &source, entry.label.as_deref(), &options).await?
        } else {
            self.convert_table(&dataset, &source, entry.sha256.is_none(), &options).await?
        };
        let converted = match converted {
            Ok(converted) => converted,
            Err(err) => return self.fail(entry, &raw_key, err.to_string()).await,
        };
        if let Some(digest) = converted.sha256 {
            entry.sha256 = Some(digest.hex);
        }
        let summary = converted.summary;
        let profile = serde_json::to_vec(&summary.profile).expect("profiles serialise");
        self.curated.put(&keys.profile, profile, "application/json").await?;
        self.merge_into_dataset_profile(&dataset, raw_key.ingest_id, &summary.profile).await?;

        if !kind.is_image() {
            entry.row_count = Some(summary.rows_in);
        }
        entry.status = IngestStatus::Processed;
        entry.processing = Some(Processing {
            processed_at: OffsetDateTime::now_utc(),
            rows_in: Some(summary.rows_in),
            rows_out: Some(summary.rows_out),
            rows_rejected: Some(summary.rows_rejected),
            curated_key: Some(keys.data),
            rejected_key: (summary.rows_rejected > 0).then_some(keys.rejected),
            profile_key: Some(keys.profile),
            failure_reason: None,
        });
        self.catalog.put_entry(&entry).await?;
        let (rows_in, rows_out, rows_rejected) = (summary.rows_in, summary.rows_out, summary.rows_rejected);
        tracing::info!(%dataset, ingest_id = %entry.ingest_id, rows_in, rows_out, rows_rejected, "processed");
        publish(
            "Sluice",
            &[("Function", "etl"), ("Dataset", dataset.as_str())],
            &[
                Metric { name: "ObjectsProcessed".into(), unit: Unit::Count, value: 1.0 },
                Metric { name: "RowsIn".into(), unit: Unit::Count, value: rows_in as f64 },
                Metric { name: "RowsOut".into(), unit: Unit::Count, value: rows_out as f64 },
                Metric { name: "RowsRejected".into(), unit: Unit::Count, value: rows_rejected as f64 },
            ],
        );
        Ok(())
    }

    /// Streams a table from the raw zone into the curated zone on a blocking thread: the
    /// object is read as it downloads (the inference prefix, then all of it), Parquet and
    /// rejected rows go out as multipart uploads, so memory holds a row group, not the
    /// object. The uploads are completed only once the schema they were written under is
    /// stored; a concurrent change to the schema aborts them and converts again.
    async fn convert_table(
        &self,
        dataset: &DatasetName,
        source: &Source,
        with_sha256: bool,
        options: &DatasetOptions,
    ) -> Result<Result<Converted, EtlError>, EtlFailure> {
        let handle = tokio::runtime::Handle::current();
        for _ in 0..SCHEMA_ATTEMPTS {
            let stored = self.catalog.schema(dataset).await?;
            let current = stored.as_ref().map(|s| s.schema.clone());
            let (source_copy, curated, options, handle) =
                (source.clone(), self.curated.clone(), options.clone(), handle.clone());
            let streamed = tokio::task::spawn_blocking(move || {
                stream_table(&source_copy, &curated, current.as_ref(), &options, with_sha256, &handle)
            })
            .await
            .expect("the conversion thread does not panic");
            let streamed = match streamed {
                Ok(streamed) => streamed,
                Err(EtlError::Output(reason) | EtlError::Parquet(reason)) => return Err(EtlFailure::Output(reason)),
                Err(err) => return Ok(Err(err)),
            };
            let schema_stored = self.store_schema(dataset, stored, &streamed.summary.schema).await?;
            let finished = tokio::task::spawn_blocking(move || streamed.settle(schema_stored))
                .await
                .expect("the upload thread does not panic")?;
            if let Some(converted) = finished {
                return Ok(Ok(converted));
            }
        }
        Err(EtlFailure::SchemaContention(dataset.clone()))
    }

    /// Whether `schema`, which an object was converted under, is the dataset's: it is if it
    /// is the stored one or if storing it over `stored` succeeds. False when another object
    /// changed the schema meanwhile: the object is converted again.
    async fn store_schema(
        &self,
        dataset: &DatasetName,
        stored: Option<VersionedSchema>,
        schema: &Schema,
    ) -> Result<bool, EtlFailure> {
        if stored.as_ref().map(|s| &s.schema) == Some(schema) {
            return Ok(true);
        }
        Ok(self.catalog.save_schema(dataset, schema, stored.map(|s| s.version)).await?)
    }

    /// An image is decoded in memory (its size is capped), then written as one row.
    async fn convert_image(
        &self,
        dataset: &DatasetName,
        source: &Source,
        label: Option<&str>,
        options: &DatasetOptions,
    ) -> Result<Result<Converted, EtlError>, EtlFailure> {
        let body = source.raw_zone.get(&source.key).await?;
        for _ in 0..SCHEMA_ATTEMPTS {
            let stored = self.catalog.schema(dataset).await?;
            let outcome = match process_image(source.kind, &body, label, stored.as_ref().map(|s| &s.schema), options) {
                Ok(outcome) => outcome,
                Err(err) => return Ok(Err(err)),
            };
            if self.store_schema(dataset, stored, &outcome.schema).await? {
                self.curated.put(&source.keys.data, outcome.parquet, PARQUET).await?;
                self.curated.delete(&source.keys.rejected).await?;
                let summary = TableSummary {
                    schema: outcome.schema,
                    profile: outcome.profile,
                    rows_in: outcome.rows_in,
                    rows_out: outcome.rows_out,
                    rows_rejected: 0,
                };
                return Ok(Ok(Converted { summary, sha256: Some(Sha256Digest::of(&body)) }));
            }
        }
        Err(EtlFailure::SchemaContention(dataset.clone()))
    }

    /// Records why the object could not be processed and removes any outputs an earlier
    /// run left for it, so the curated zone never holds data the catalog calls failed.
    async fn fail(&self, mut entry: CatalogEntry, raw_key: &RawKey, reason: String) -> Result<(), EtlFailure> {
        let keys = raw_key.curated();
        for key in [&keys.data, &keys.rejected, &keys.profile] {
            self.curated.delete(key).await?;
        }
        if self.catalog.is_profiled(&raw_key.dataset, entry.ingest_id).await? {
            // Only a replay that fails where an earlier run succeeded gets here (the dataset's
            // schema changed in between); merged counts cannot be taken back out.
            tracing::warn!(dataset = %raw_key.dataset, ingest_id = %entry.ingest_id, "the failed object stays counted in the dataset profile");
        }
        tracing::warn!(dataset = %raw_key.dataset, ingest_id = %entry.ingest_id, %reason, "object failed");
        entry.status = IngestStatus::Failed;
        entry.processing = Some(Processing {
            processed_at: OffsetDateTime::now_utc(),
            rows_in: None,
            rows_out: None,
            rows_rejected: None,
            curated_key: None,
            rejected_key: None,
            profile_key: None,
            failure_reason: Some(reason),
        });
        self.catalog.put_entry(&entry).await?;
        publish(
            "Sluice",
            &[("Function", "etl"), ("Dataset", raw_key.dataset.as_str())],
            &[Metric { name: "ObjectsFailed".into(), unit: Unit::Count, value: 1.0 }],
        );
        Ok(())
    }

    /// Adds this object's profile to the dataset's merged profile: read the current
    /// version, merge, write the next version under a key no other writer uses, then move
    /// the catalog's pointer to it and mark the object merged in one conditional
    /// transaction. A writer that lost the race to another object reads again and retries;
    /// a replayed object finds its marker and stops. One object costs one profile read and
    /// one write, whatever the dataset's size.
    async fn merge_into_dataset_profile(
        &self,
        dataset: &DatasetName,
        ingest_id: IngestId,
        profile: &Profile,
    ) -> Result<(), EtlFailure> {
        for attempt in 0..PROFILE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            if self.catalog.is_profiled(dataset, ingest_id).await? {
                return Ok(());
            }
            let pointer = self.catalog.profile_pointer(dataset).await?;
            let merged = match &pointer {
                None => profile.clone(),
                Some(current) => match self.curated.get(&current.key).await? {
                    Some(bytes) => serde_json::from_slice::<Profile>(&bytes)
                        .map_err(|err| EtlFailure::CorruptProfile(current.key.clone(), err.to_string()))?
                        .merge(profile),
                    // Replaced and removed since the pointer was read: read again.
                    None => continue,
                },
            };
            let version = pointer.as_ref().map_or(1, |p| p.version + 1);
            let key = dataset_profile_key(dataset, version, ingest_id);
            self.curated
                .put(&key, serde_json::to_vec(&merged).expect("profiles serialise"), "application/json")
                .await?;
            if self.catalog.advance_profile(dataset, pointer.as_ref().map(|p| p.version), &key, ingest_id).await? {
                if let Some(previous) = pointer {
                    self.curated.delete(&previous.key).await?;
                }
                return Ok(());
            }
            self.curated.delete(&key).await?;
        }
        Err(EtlFailure::ProfileContention(dataset.clone()))
    }
}

/// How often the ETL tries to add an object to its dataset's profile while other objects
/// of the dataset are being added at the same moment.
const PROFILE_ATTEMPTS: u32 = 60;

/// A random wait that grows with the attempt, so writers that collided spread out.
fn backoff(attempt: u32) -> std::time::Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    std::time::Duration::from_millis(5 + random % (25 * u64::from(attempt.min(8))))
}

const PARQUET: &str = "application/vnd.apache.parquet";
const NDJSON: &str = "application/x-ndjson";

/// The raw object being processed and where its outputs go.
#[derive(Clone)]
struct Source {
    raw_zone: RawZone,
    key: String,
    kind: ContentKind,
    keys: CuratedKeys,
}

/// A converted object whose data and rejected rows are in the curated zone.
struct Converted {
    summary: TableSummary,
    /// Computed when the catalog entry had none (objects that did not come through the API).
    sha256: Option<Sha256Digest>,
}

/// A table converted into uploads that are not visible yet.
struct Streamed {
    summary: TableSummary,
    parquet: MultipartWriter,
    rejected: MultipartWriter,
    sha256: Option<Sha256Digest>,
}

impl Streamed {
    /// Completes the uploads if the schema was stored (and removes a rejected-rows object an
    /// earlier run left when there are none now), or aborts them. Blocks.
    fn settle(self, schema_stored: bool) -> Result<Option<Converted>, EtlFailure> {
        if !schema_stored {
            self.parquet.abort()?;
            self.rejected.abort()?;
            return Ok(None);
        }
        self.parquet.finish()?;
        if self.summary.rows_rejected > 0 {
            self.rejected.finish()?;
        } else {
            self.rejected.remove()?;
        }
        Ok(Some(Converted { summary: self.summary, sha256: self.sha256 }))
    }
}

/// One conversion attempt on the blocking thread.
fn stream_table(
    source: &Source,
    curated: &CuratedZone,
    schema: Option<&Schema>,
    options: &DatasetOptions,
    with_sha256: bool,
    handle: &tokio::runtime::Handle,
) -> Result<Streamed, EtlError> {
    let mut open = || {
        source
            .raw_zone
            .blocking_reader(&source.key, handle)
            .map(|reader| Box::new(reader) as Box<dyn std::io::Read>)
            .map_err(std::io::Error::other)
    };
    let sha256 = with_sha256
        .then(|| open().and_then(Sha256Digest::of_reader))
        .transpose()
        .map_err(|err| EtlError::Output(format!("cannot read the object: {err}")))?;
    let parquet = curated.multipart_writer(&source.keys.data, PARQUET, handle.clone());
    let mut rejected = curated.multipart_writer(&source.keys.rejected, NDJSON, handle.clone());
    match convert_table(source.kind, &mut open, schema, options, parquet, &mut rejected) {
        Ok((summary, parquet)) => Ok(Streamed { summary, parquet, rejected, sha256 }),
        Err(err) => {
            // The Parquet writer went down with the conversion; its parts, if any, are
            // removed by the bucket's lifecycle rule for incomplete uploads.
            let _ = rejected.abort();
            Err(err)
        }
    }
}

/// The entry of an object that arrived in the raw zone without going through the API.
fn new_entry(raw_key: &RawKey, bucket: &str, key: &str, stored_content_type: Option<&str>) -> CatalogEntry {
    let kind = ContentKind::from_extension(&raw_key.extension);
    CatalogEntry {
        dataset: raw_key.dataset.clone(),
        ingest_id: raw_key.ingest_id,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        content_type: kind.map_or_else(|| stored_content_type.unwrap_or_default().to_owned(), |k| k.mime().to_owned()),
        status: IngestStatus::Received,
        source: IngestSource::S3,
        received_at: OffsetDateTime::now_utc(),
        size_bytes: None,
        sha256: None,
        row_count: None,
        label: None,
        processing: None,
    }
}

/// S3 event keys are URL-encoded, with `+` for spaces.
fn s3_event_key(encoded: &str) -> String {
    percent_decode(&encoded.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_url_decoded() {
        assert_eq!(s3_event_key("iris%2Fingest_date%3D2026-11-22%2Fx+y.csv"), "iris/ingest_date=2026-11-22/x y.csv");
        assert_eq!(s3_event_key("iris/ingest_date%3D2026-11-22/a%2B.csv"), "iris/ingest_date=2026-11-22/a+.csv");
    }
}
