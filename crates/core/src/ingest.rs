use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::DatasetName;

/// Identifies one ingested object. A UUIDv7, so ids sort by arrival time and the raw zone
/// lists in the order data came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IngestId(uuid::Uuid);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ingest id {0:?}: expected a UUID such as 0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11")]
pub struct InvalidIngestId(pub String);

impl IngestId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl FromStr for IngestId {
    type Err = InvalidIngestId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical hyphenated form: ids appear in S3 keys and URLs, one spelling each.
        if s.len() != 36 {
            return Err(InvalidIngestId(s.to_owned()));
        }
        uuid::Uuid::try_parse(s).map(Self).map_err(|_| InvalidIngestId(s.to_owned()))
    }
}

impl fmt::Display for IngestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl TryFrom<String> for IngestId {
    type Error = InvalidIngestId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<IngestId> for String {
    fn from(value: IngestId) -> Self {
        value.to_string()
    }
}

/// Key of an object in the raw zone: `<dataset>/ingest_date=<YYYY-MM-DD>/<ingest id>.<ext>`.
///
/// Hive-style partitions let Athena and the ETL prune by date; the ingest id makes the key
/// unique, so a replayed write can only ever overwrite itself.
pub fn raw_object_key(dataset: &DatasetName, received_at: OffsetDateTime, id: IngestId, extension: &str) -> String {
    let date =
        received_at.date().format(format_description!("[year]-[month]-[day]")).expect("a calendar date always formats");
    format!("{dataset}/ingest_date={date}/{id}.{extension}")
}

/// The parts of a raw-zone key, recovered from an S3 event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawKey {
    pub dataset: DatasetName,
    /// `YYYY-MM-DD`
    pub date: String,
    pub ingest_id: IngestId,
    pub extension: String,
}

impl RawKey {
    /// Parses `<dataset>/ingest_date=<YYYY-MM-DD>/<ingest id>.<ext>`; anything else is not
    /// an object the ingestion API could have written.
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.split('/');
        let (dataset, partition, file) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let date = partition.strip_prefix("ingest_date=")?;
        let valid_date = date.len() == 10
            && date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        let (id, extension) = file.split_once('.')?;
        Some(Self {
            dataset: DatasetName::parse(dataset).ok()?,
            date: valid_date.then(|| date.to_owned())?,
            ingest_id: id.parse().ok()?,
            extension: extension.to_owned(),
        })
    }

    /// Curated-zone keys for this object's outputs.
    pub fn curated(&self) -> CuratedKeys {
        let (dataset, date, id) = (&self.dataset, &self.date, self.ingest_id);
        CuratedKeys {
            data: format!("data/{dataset}/ingest_date={date}/{id}.parquet"),
            rejected: format!("rejected/{dataset}/ingest_date={date}/{id}.ndjson"),
            profile: format!("profiles/{dataset}/ingest_date={date}/{id}.json"),
        }
    }
}

/// Where the ETL writes an object's outputs. Named by ingest id, so a replay overwrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CuratedKeys {
    pub data: String,
    pub rejected: String,
    pub profile: String,
}

/// A version of the merged profile of a whole dataset, as written by the ETL run that merged
/// `ingest_id` into it; the catalog's profile pointer says which version is current. Named
/// by both, so writers racing for the same version never overwrite each other.
pub fn dataset_profile_key(dataset: &DatasetName, version: u64, ingest_id: IngestId) -> String {
    format!("profiles/{dataset}/dataset/v{version:012}-{ingest_id}.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = IngestId::generate();
        assert_eq!(id.to_string().parse::<IngestId>().unwrap(), id);
    }

    #[test]
    fn ids_are_time_ordered() {
        let first = IngestId::generate();
        let second = IngestId::generate();
        assert!(first.to_string() < second.to_string());
    }

    #[test]
    fn only_canonical_uuids_are_ids() {
        for bad in [
            "",
            "abc",
            "../../etc/passwd",
            "0192f5c47d3e7a109c1b5e2f8a9d0c11",
            "{0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11}",
        ] {
            assert!(bad.parse::<IngestId>().is_err(), "{bad}");
        }
        assert!("0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11".parse::<IngestId>().is_ok());
    }

    #[test]
    fn raw_keys_carry_dataset_date_and_id() {
        let id: IngestId = "0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11".parse().unwrap();
        let key = raw_object_key(&DatasetName::parse("iris").unwrap(), datetime!(2026-03-07 23:59:59 UTC), id, "csv");
        assert_eq!(key, "iris/ingest_date=2026-03-07/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11.csv");
        let parsed = RawKey::parse(&key).unwrap();
        assert_eq!(
            (parsed.dataset.as_str(), parsed.date.as_str(), parsed.ingest_id, parsed.extension.as_str()),
            ("iris", "2026-03-07", id, "csv")
        );
        assert_eq!(
            parsed.curated().data,
            "data/iris/ingest_date=2026-03-07/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11.parquet"
        );
    }

    #[test]
    fn keys_outside_the_raw_layout_are_not_raw_keys() {
        for key in [
            "notes.txt",
            "iris/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11.csv",
            "iris/ingest_date=2026-3-7/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11.csv",
            "Iris/ingest_date=2026-03-07/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11.csv",
            "iris/ingest_date=2026-03-07/not-an-id.csv",
            "iris/ingest_date=2026-03-07/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11",
            "iris/ingest_date=2026-03-07/x/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11.csv",
        ] {
            assert_eq!(RawKey::parse(key), None, "{key}");
        }
    }
}
