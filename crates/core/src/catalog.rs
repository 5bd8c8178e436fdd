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
}

impl IngestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "AWAITING_UPLOAD",
            Self::Received => "RECEIVED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AWAITING_UPLOAD" => Some(Self::AwaitingUpload),
            "RECEIVED" => Some(Self::Received),
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
}

impl IngestSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::PresignedUpload => "presigned_upload",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(Self::Api),
            "presigned_upload" => Some(Self::PresignedUpload),
            _ => None,
        }
    }
}

/// One ingested object as the catalog records it (schema: `docs/catalog.md`).
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn statuses_and_sources_round_trip() {
        for status in [IngestStatus::AwaitingUpload, IngestStatus::Received] {
            assert_eq!(IngestStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for source in [IngestSource::Api, IngestSource::PresignedUpload] {
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
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["received_at"], "2026-03-07T12:00:00Z");
        assert_eq!(json["status"], "AWAITING_UPLOAD");
        assert!(json.get("size_bytes").is_none());
        assert_eq!(serde_json::from_value::<CatalogEntry>(json).unwrap(), entry);
    }
}
