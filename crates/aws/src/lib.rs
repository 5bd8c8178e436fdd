//! The thin AWS layer. Clients are built once per container from `aws-config`, which honours
//! `AWS_ENDPOINT_URL`, so the same code talks to AWS, moto or LocalStack. Each store wraps
//! one resource and speaks domain types; no SDK type leaks out of this crate.

pub mod blocking;
mod catalog;
mod clients;
mod curated_zone;
pub mod http_api;
mod model_records;
mod on_failure;
mod raw_zone;
pub mod settings;

pub use catalog::{
    Catalog, Claim, IdempotencyRecord, ProfilePointer, RetrainPlan, StoredResponse, VersionedSchema, partitions,
};
pub use clients::AwsClients;
pub use curated_zone::CuratedZone;
pub use model_records::{EpisodeState, MonitorState, ProductionRecord, TrainingJobRecord};
pub use on_failure::{FailureContext, OnFailureRecord};
pub use raw_zone::{PresignedPut, RawObjectInfo, RawZone};

/// A failed call to an AWS service, with the SDK's full error chain in the message.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} failed: {message}")]
pub struct StoreError {
    pub service: &'static str,
    pub operation: &'static str,
    pub message: String,
}

impl StoreError {
    pub fn new(service: &'static str, operation: &'static str, err: impl std::error::Error) -> Self {
        Self { service, operation, message: error_chain(err) }
    }
}

/// When an EventBridge event happened (its `time`), or now if it says no readable time.
/// Decisions an event causes are made at this time, not at delivery, so that a repeated
/// delivery of one event makes the same decisions.
pub fn event_time(event: &serde_json::Value) -> time::OffsetDateTime {
    event["time"]
        .as_str()
        .and_then(|text| time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc)
}

/// An SDK error with its whole source chain; the top level alone is often just "service error".
pub fn error_chain(err: impl std::error::Error) -> String {
    aws_sdk_s3::error::DisplayErrorContext(err).to_string()
}

/// The whole object at an `s3://bucket/key` URI, refused before it is read when it is
/// larger than `max_bytes` (what the caller can hold).
pub async fn read_s3_uri(s3: &aws_sdk_s3::Client, uri: &str, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
    let failed = |message: String| StoreError { service: "S3", operation: "GetObject", message };
    let (bucket, key) = uri
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| failed(format!("{uri} is not an s3:// URI")))?;
    let object =
        s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| StoreError::new("S3", "GetObject", e))?;
    let size = object.content_length().unwrap_or_default().max(0) as u64;
    if size > max_bytes {
        return Err(failed(format!("{uri} is {size} bytes; at most {max_bytes} can be read here")));
    }
    let bytes = object.body.collect().await.map_err(|e| failed(e.to_string()))?;
    Ok(bytes.into_bytes().to_vec())
}

/// Deletes one object; deleting a key that does not exist succeeds, as in S3.
async fn delete_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), StoreError> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|err| StoreError::new("S3", "DeleteObject", err))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_dated_by_its_own_time() {
        let event = serde_json::json!({"time": "2026-11-22T10:00:00Z", "detail-type": "Scheduled Event"});
        assert_eq!(event_time(&event), time::macros::datetime!(2026-11-22 10:00:00 UTC));
        // No time, or not one: now.
        let before = time::OffsetDateTime::now_utc();
        for event in [serde_json::json!({}), serde_json::json!({"time": "yesterday"})] {
            let at = event_time(&event);
            assert!(at >= before && at <= time::OffsetDateTime::now_utc(), "{event}");
        }
    }
}
