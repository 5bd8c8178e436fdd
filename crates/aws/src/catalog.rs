use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use sluice_core::options::DatasetOptions;
use sluice_core::schema::Schema;
use sluice_core::{CatalogEntry, DatasetName, IngestId, IngestSource, IngestStatus, Processing};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::StoreError;

/// How long a claimed idempotency key blocks retries before a crashed attempt is presumed dead.
const IN_PROGRESS_SECONDS: i64 = 60;
/// How long a completed request can be replayed by key (the table's TTL removes it after).
const RETENTION_SECONDS: i64 = 24 * 60 * 60;

/// The catalog table (schema: `docs/data-lake.md`): one item per ingested object, and one per
/// idempotency key, both under the dataset's partition.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

/// The catalog's partition keys (`pk`). `template.yaml` limits functions to some of them
/// (`dynamodb:LeadingKeys`), so these are the names its IAM conditions match.
pub mod partitions {
    /// A dataset's items: `DATASET#<dataset>`.
    pub const DATASET_PREFIX: &str = "DATASET#";
    /// A model's records and timeline: `MODEL#<model>`.
    pub const MODEL_PREFIX: &str = "MODEL#";
    /// Every model's production record.
    pub const PRODUCTION: &str = "PRODUCTION";
    /// All retraining plans share one partition, so the schedule reads them with one query.
    pub const RETRAIN: &str = "RETRAIN";
}

/// A model retrained every `every_days` days with the same training request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrainPlan {
    pub model: String,
    /// The training request body, as first sent.
    pub request: String,
    pub every_days: u32,
    pub last_started: OffsetDateTime,
}

impl RetrainPlan {
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        now >= self.last_started + time::Duration::days(i64::from(self.every_days))
    }
}

/// A request made under an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub dataset: DatasetName,
    /// Hash of the client's key: bounded length, no odd characters in the sort key.
    pub key_hash: String,
    /// Hash of what the request asked for, so a key reused for another request is caught.
    pub fingerprint: String,
}

/// The response a completed request gave, replayed verbatim to retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key and must complete or release it.
    Acquired,
    /// An earlier request with this key finished.
    Completed { fingerprint: String, response: StoredResponse },
    /// An earlier request with this key is still running.
    InProgress,
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn dataset_pk(dataset: &DatasetName) -> AttributeValue {
    s(format!("{}{dataset}", partitions::DATASET_PREFIX))
}

fn ingest_sk(id: IngestId) -> AttributeValue {
    s(format!("INGEST#{id}"))
}

fn idempotency_sk(key_hash: &str) -> AttributeValue {
    s(format!("IDEMPOTENCY#{key_hash}"))
}

const SCHEMA_SK: &str = "SCHEMA";
const OPTIONS_SK: &str = "OPTIONS";
/// The pointer to the dataset's merged profile.
const PROFILE_SK: &str = "PROFILE";

/// The marker that an object's profile is part of the dataset's merged profile.
fn profiled_sk(id: IngestId) -> AttributeValue {
    s(format!("PROFILED#{id}"))
}

/// Where a dataset's merged profile is, and its version (for optimistic updates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePointer {
    pub version: u64,
    /// Curated-zone key of the profile object of this version.
    pub key: String,
}

/// A dataset's schema and the version it was stored under (for optimistic updates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedSchema {
    pub schema: Schema,
    pub version: u64,
}

impl Catalog {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { dynamodb, table: table.into() }
    }

    /// Claims an idempotency key with a conditional write, so of two concurrent requests
    /// with one key exactly one proceeds.
    pub async fn claim(&self, record: &IdempotencyRecord, now: OffsetDateTime) -> Result<Claim, StoreError> {
        let now_s = now.unix_timestamp();
        let item = HashMap::from([
            ("pk".to_owned(), dataset_pk(&record.dataset)),
            ("sk".to_owned(), idempotency_sk(&record.key_hash)),
            ("entity".to_owned(), s("idempotency")),
            ("status".to_owned(), s("IN_PROGRESS")),
            ("fingerprint".to_owned(), s(&record.fingerprint)),
            ("in_progress_until".to_owned(), n(now_s + IN_PROGRESS_SECONDS)),
            ("expires_at".to_owned(), n(now_s + RETENTION_SECONDS)),
        ]);
        let condition = "attribute_not_exists(pk) OR expires_at < :now \
                         OR (#status = :in_progress AND in_progress_until < :now)";
        let values = vec![(":now", n(now_s)), (":in_progress", s("IN_PROGRESS"))];
        if self.put_if(item, condition, &[("#status", "status")], values).await? {
            Ok(Claim::Acquired)
        } else {
            self.existing_claim(record).await
        }
    }

    async fn existing_claim(&self, record: &IdempotencyRecord) -> Result<Claim, StoreError> {
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", dataset_pk(&record.dataset))
            .key("sk", idempotency_sk(&record.key_hash))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "GetItem", err))?
            .item
            // Deleted between our write and this read: the other attempt gave up, so it is ours
            // to retry, which the client does by sending the request again.
            .ok_or_else(|| corrupt("idempotency record vanished while being read; retry the request"))?;
        if string(&item, "status")? != "COMPLETED" {
            return Ok(Claim::InProgress);
        }
        Ok(Claim::Completed {
            fingerprint: string(&item, "fingerprint")?,
            response: StoredResponse {
                status: number(&item, "response_status")?,
                body: string(&item, "response_body")?,
            },
        })
    }

    /// Records an ingest, and in the same transaction marks its idempotency key completed with
    /// the response to replay, so the catalog never has one without the other.
    pub async fn record(
        &self,
        entry: &CatalogEntry,
        completing: Option<(&IdempotencyRecord, &StoredResponse)>,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(entry_item(entry)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|err| StoreError::new("DynamoDB", "TransactWriteItems", err))?;
        let mut transaction =
            self.dynamodb.transact_write_items().transact_items(TransactWriteItem::builder().put(put).build());
        if let Some((record, response)) = completing {
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", dataset_pk(&record.dataset))
                .key("sk", idempotency_sk(&record.key_hash))
                .update_expression("SET #status = :completed, response_status = :code, response_body = :body")
                .condition_expression("#status = :in_progress AND fingerprint = :fingerprint")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":completed", s("COMPLETED"))
                .expression_attribute_values(":in_progress", s("IN_PROGRESS"))
                .expression_attribute_values(":fingerprint", s(&record.fingerprint))
                .expression_attribute_values(":code", n(response.status))
                .expression_attribute_values(":body", s(&response.body))
                .build()
                .map_err(|err| StoreError::new("DynamoDB", "TransactWriteItems", err))?;
            transaction = transaction.transact_items(TransactWriteItem::builder().update(update).build());
        }
        transaction.send().await.map_err(|err| StoreError::new("DynamoDB", "TransactWriteItems", err))?;
        Ok(())
    }

    /// Gives up a claim after a failed attempt, so the client's retry can run.
    pub async fn release(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("pk", dataset_pk(&record.dataset))
            .key("sk", idempotency_sk(&record.key_hash))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s("IN_PROGRESS"))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "DeleteItem", err))?;
        Ok(())
    }

    /// Writes an entry whole, replacing what was there (the ETL's update after processing).
    pub async fn put_entry(&self, entry: &CatalogEntry) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entry_item(entry)))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "PutItem", err))?;
        Ok(())
    }

    /// Remembers how a model is retrained on schedule: the training request (as sent) and
    /// how many days apart; `last_started` is when a job last started from it.
    pub async fn save_retrain_plan(&self, plan: &RetrainPlan) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(partitions::RETRAIN))
            .item("sk", s(format!("MODEL#{}", plan.model)))
            .item("entity", s("retrain_plan"))
            .item("model", s(&plan.model))
            .item("request", s(&plan.request))
            .item("every_days", AttributeValue::N(plan.every_days.to_string()))
            .item("last_started", s(plan.last_started.format(&Rfc3339).expect("UTC times format as RFC 3339")))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "PutItem", err))?;
        Ok(())
    }

    /// Every model's retraining plan.
    pub async fn retrain_plans(&self) -> Result<Vec<RetrainPlan>, StoreError> {
        let items = self.query_range(s(partitions::RETRAIN), "MODEL#", None, None, false).await?;
        items
            .iter()
            .map(|item| {
                let last_started = string(item, "last_started")?;
                Ok(RetrainPlan {
                    model: string(item, "model")?,
                    request: string(item, "request")?,
                    every_days: number(item, "every_days")?,
                    last_started: OffsetDateTime::parse(&last_started, &Rfc3339)
                        .map_err(|e| corrupt(format!("last_started {last_started:?}: {e}")))?,
                })
            })
            .collect()
    }

    /// Every ingest entry of a dataset.
    pub async fn ingests(&self, dataset: &DatasetName) -> Result<Vec<CatalogEntry>, StoreError> {
        let items = self.query_range(dataset_pk(dataset), "INGEST#", None, None, false).await?;
        items.iter().map(entry_from_item).collect()
    }

    pub async fn schema(&self, dataset: &DatasetName) -> Result<Option<VersionedSchema>, StoreError> {
        let Some(item) = self.dataset_item(dataset, SCHEMA_SK).await? else { return Ok(None) };
        let schema = serde_json::from_str(&string(&item, "schema")?).map_err(|err| corrupt(err.to_string()))?;
        Ok(Some(VersionedSchema { schema, version: number(&item, "version")? }))
    }

    /// Stores `schema` as the dataset's, if the stored version is still `expected` (`None`:
    /// no schema yet). Returns false when another writer got there first.
    pub async fn save_schema(
        &self,
        dataset: &DatasetName,
        schema: &Schema,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), dataset_pk(dataset)),
            ("sk".to_owned(), s(SCHEMA_SK)),
            ("entity".to_owned(), s("schema")),
            (
                "schema".to_owned(),
                s(schema.to_stored_json().map_err(|message| StoreError {
                    service: "DynamoDB",
                    operation: "PutItem",
                    message,
                })?),
            ),
            ("version".to_owned(), n(expected.map_or(1, |v| v + 1))),
        ]);
        match expected {
            None => self.put_if(item, "attribute_not_exists(pk)", &[], Vec::new()).await,
            Some(version) => self.put_if(item, "version = :expected", &[], vec![(":expected", n(version))]).await,
        }
    }

    /// The dataset's options, or the defaults if it has none.
    pub async fn options(&self, dataset: &DatasetName) -> Result<DatasetOptions, StoreError> {
        match self.dataset_item(dataset, OPTIONS_SK).await? {
            None => Ok(DatasetOptions::default()),
            Some(item) => serde_json::from_str(&string(&item, "options")?).map_err(|err| corrupt(err.to_string())),
        }
    }

    pub async fn save_options(&self, dataset: &DatasetName, options: &DatasetOptions) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", dataset_pk(dataset))
            .item("sk", s(OPTIONS_SK))
            .item("entity", s("options"))
            .item("options", s(serde_json::to_string(options).expect("options serialise")))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "PutItem", err))?;
        Ok(())
    }

    pub async fn profile_pointer(&self, dataset: &DatasetName) -> Result<Option<ProfilePointer>, StoreError> {
        let Some(item) = self.dataset_item(dataset, PROFILE_SK).await? else { return Ok(None) };
        Ok(Some(ProfilePointer { version: number(&item, "version")?, key: string(&item, "key")? }))
    }

    /// Whether the object's profile is already in the dataset's merged profile.
    pub async fn is_profiled(&self, dataset: &DatasetName, id: IngestId) -> Result<bool, StoreError> {
        Ok(self.item(dataset_pk(dataset), profiled_sk(id)).await?.is_some())
    }

    /// In one transaction: points the dataset's profile at `key` as the version after
    /// `expected` (`None`: no profile yet), and marks the object as merged into it. False
    /// when another writer moved the pointer first or the object was merged already: the
    /// caller reads both again.
    pub async fn advance_profile(
        &self,
        dataset: &DatasetName,
        expected: Option<u64>,
        key: &str,
        id: IngestId,
    ) -> Result<bool, StoreError> {
        let invalid = |err| StoreError::new("DynamoDB", "TransactWriteItems", err);
        let pointer = HashMap::from([
            ("pk".to_owned(), dataset_pk(dataset)),
            ("sk".to_owned(), s(PROFILE_SK)),
            ("entity".to_owned(), s("profile")),
            ("key".to_owned(), s(key)),
            ("version".to_owned(), n(expected.map_or(1, |v| v + 1))),
        ]);
        let mut move_pointer = Put::builder().table_name(&self.table).set_item(Some(pointer));
        move_pointer = match expected {
            None => move_pointer.condition_expression("attribute_not_exists(pk)"),
            Some(version) => move_pointer
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(version)),
        };
        let marker = HashMap::from([
            ("pk".to_owned(), dataset_pk(dataset)),
            ("sk".to_owned(), profiled_sk(id)),
            ("entity".to_owned(), s("profiled")),
        ]);
        let mark = Put::builder()
            .table_name(&self.table)
            .set_item(Some(marker))
            .condition_expression("attribute_not_exists(pk)");
        let result = self
            .dynamodb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(move_pointer.build().map_err(invalid)?).build())
            .transact_items(TransactWriteItem::builder().put(mark.build().map_err(invalid)?).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(err)) if err.err().is_transaction_canceled_exception() => Ok(false),
            Err(err) => Err(StoreError::new("DynamoDB", "TransactWriteItems", err)),
        }
    }

    async fn dataset_item(
        &self,
        dataset: &DatasetName,
        sort_key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        self.item(dataset_pk(dataset), s(sort_key)).await
    }

    pub async fn ingest(&self, dataset: &DatasetName, id: IngestId) -> Result<Option<CatalogEntry>, StoreError> {
        self.item(dataset_pk(dataset), ingest_sk(id)).await?.as_ref().map(entry_from_item).transpose()
    }
}

fn entry_item(entry: &CatalogEntry) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_owned(), dataset_pk(&entry.dataset)),
        ("sk".to_owned(), ingest_sk(entry.ingest_id)),
        ("entity".to_owned(), s("ingest")),
        ("dataset".to_owned(), s(entry.dataset.as_str())),
        ("ingest_id".to_owned(), s(entry.ingest_id.to_string())),
        ("bucket".to_owned(), s(&entry.bucket)),
        ("key".to_owned(), s(&entry.key)),
        ("content_type".to_owned(), s(&entry.content_type)),
        ("status".to_owned(), s(entry.status.as_str())),
        ("source".to_owned(), s(entry.source.as_str())),
        ("received_at".to_owned(), s(entry.received_at.format(&Rfc3339).expect("UTC times format as RFC 3339"))),
    ]);
    if let Some(size) = entry.size_bytes {
        item.insert("size_bytes".to_owned(), n(size));
    }
    if let Some(sha256) = &entry.sha256 {
        item.insert("sha256".to_owned(), s(sha256));
    }
    if let Some(rows) = entry.row_count {
        item.insert("row_count".to_owned(), n(rows));
    }
    if let Some(label) = &entry.label {
        item.insert("label".to_owned(), s(label));
    }
    if let Some(processing) = &entry.processing {
        let processed_at = processing.processed_at.format(&Rfc3339).expect("UTC times format as RFC 3339");
        item.insert("processed_at".to_owned(), s(processed_at));
        let numbers = [
            ("rows_in", processing.rows_in),
            ("rows_out", processing.rows_out),
            ("rows_rejected", processing.rows_rejected),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                item.insert(name.to_owned(), n(value));
            }
        }
        let strings = [
            ("curated_key", &processing.curated_key),
            ("rejected_key", &processing.rejected_key),
            ("profile_key", &processing.profile_key),
            ("failure_reason", &processing.failure_reason),
        ];
        for (name, value) in strings {
            if let Some(value) = value {
                item.insert(name.to_owned(), s(value));
            }
        }
    }
    item
}

fn entry_from_item(item: &HashMap<String, AttributeValue>) -> Result<CatalogEntry, StoreError> {
    let status = string(item, "status")?;
    let source = string(item, "source")?;
    let received_at = string(item, "received_at")?;
    Ok(CatalogEntry {
        dataset: DatasetName::parse(&string(item, "dataset")?).map_err(|err| corrupt(err.to_string()))?,
        ingest_id: string(item, "ingest_id")?
            .parse()
            .map_err(|err: sluice_core::InvalidIngestId| corrupt(err.to_string()))?,
        bucket: string(item, "bucket")?,
        key: string(item, "key")?,
        content_type: string(item, "content_type")?,
        status: IngestStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status:?}")))?,
        source: IngestSource::parse(&source).ok_or_else(|| corrupt(format!("unknown source {source:?}")))?,
        received_at: OffsetDateTime::parse(&received_at, &Rfc3339).map_err(|err| corrupt(err.to_string()))?,
        size_bytes: optional_number(item, "size_bytes")?,
        sha256: optional_string(item, "sha256")?,
        row_count: optional_number(item, "row_count")?,
        label: optional_string(item, "label")?,
        processing: match optional_string(item, "processed_at")? {
            None => None,
            Some(at) => Some(Processing {
                processed_at: OffsetDateTime::parse(&at, &Rfc3339).map_err(|err| corrupt(err.to_string()))?,
                rows_in: optional_number(item, "rows_in")?,
                rows_out: optional_number(item, "rows_out")?,
                rows_rejected: optional_number(item, "rows_rejected")?,
                curated_key: optional_string(item, "curated_key")?,
                rejected_key: optional_string(item, "rejected_key")?,
                profile_key: optional_string(item, "profile_key")?,
                failure_reason: optional_string(item, "failure_reason")?,
            }),
        },
    })
}

pub(crate) fn optional_string(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<Option<String>, StoreError> {
    item.get(name).map(|_| string(item, name)).transpose()
}

pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError { service: "DynamoDB", operation: "read catalog item", message: message.into() }
}

pub(crate) fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(corrupt(format!("attribute {name} is missing or not a string"))),
    }
}

pub(crate) fn number<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => {
            value.parse().map_err(|_| corrupt(format!("attribute {name} = {value} is out of range")))
        }
        _ => Err(corrupt(format!("attribute {name} is missing or not a number"))),
    }
}

pub(crate) fn optional_number<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<Option<T>, StoreError> {
    item.get(name).map(|_| number(item, name)).transpose()
}
