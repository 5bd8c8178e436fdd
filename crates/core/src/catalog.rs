use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{DatasetName, IngestId};

/// Where an ingested object is in its life. Later stages (ETL) move it forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IngestStatus {
    /// A presigned upload URL was issued; the object has not arrived yet.
    AwaitingUpload,
    /// The object is stored unchanged in the raw zone.
    Received,
    /// The ETL wrote its curated Parquet, rejected rows and profile.
    Processed,
    /// The ETL could not process the object; `failure_reason` says why.
    Failed,
}

impl IngestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "AWAITING_UPLOAD",
            Self::Received => "RECEIVED",
            Self::Processed => "PROCESSED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AWAITING_UPLOAD" => Some(Self::AwaitingUpload),
            "RECEIVED" => Some(Self::Received),
            "PROCESSED" => Some(Self::Processed),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// How the object reached the raw zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestSource {
    /// The body of `POST /datasets/{dataset}/records`.
    Api,
    /// A client PUT to a presigned URL from `POST /datasets/{dataset}/uploads`.
    PresignedUpload,
    /// Written to the raw bucket directly, bypassing the API.
    S3,
}

impl IngestSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::PresignedUpload => "presigned_upload",
            Self::S3 => "s3",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(Self::Api),
            "presigned_upload" => Some(Self::PresignedUpload),
            "s3" => Some(Self::S3),
            _ => None,
        }
    }
}

/// One ingested object as the catalog records it (schema: `docs/data-lake.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub dataset: DatasetName,
    pub ingest_id: IngestId,
    pub bucket: String,
    pub key: String,
    pub content_type: String,
    pub status: IngestStatus,
    pub source: IngestSource,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Unknown until the object has arrived (presigned uploads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Hex SHA-256 of the stored bytes; unknown until the object has arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Data rows (header excluded) where counting is cheap; absent for images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_count: Option<u64>,
    /// Ground-truth label sent with an image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What the ETL made of the object, once it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing: Option<Processing>,
}

/// The ETL's result for one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Processing {
    #[serde(with = "time::serde::rfc3339")]
    pub processed_at: OffsetDateTime,
    /// Rows read; `rows_in = rows_out + rows_rejected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_rejected: Option<u64>,
    /// Curated-bucket keys of the outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curated_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn statuses_and_sources_round_trip() {
        for status in
            [IngestStatus::AwaitingUpload, IngestStatus::Received, IngestStatus::Processed, IngestStatus::Failed]
        {
            assert_eq!(IngestStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for source in [IngestSource::Api, IngestSource::PresignedUpload, IngestSource::S3] {
            assert_eq!(IngestSource::parse(source.as_str()), Some(source));
            assert_eq!(serde_json::to_value(source).unwrap(), source.as_str());
        }
    }

    #[test]
    fn entry_json_uses_rfc3339_and_omits_unknowns() {
        let entry = CatalogEntry {
            dataset: DatasetName::parse("iris").unwrap(),
            ingest_id: "0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11".parse().unwrap(),
            bucket: "raw".into(),
            key: "iris/ingest_date=2026-03-07/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11.csv".into(),
            content_type: "text/csv".into(),
            status: IngestStatus::AwaitingUpload,
            source: IngestSource::PresignedUpload,
            received_at: datetime!(2026-03-07 12:00:00 UTC),
            size_bytes: None,
            sha256: None,
            row_count: None,
            label: None,
            processing: None,
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["received_at"], "2026-03-07T12:00:00Z");
        assert_eq!(json["status"], "AWAITING_UPLOAD");
        assert!(json.get("size_bytes").is_none());
        assert_eq!(serde_json::from_value::<CatalogEntry>(json).unwrap(), entry);
    }
}
