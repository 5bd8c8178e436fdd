//! Real-time output storage. Every request's predictions go to DynamoDB (one item per
//! request, expiring after the retention, for lookup by id and for feedback) and to the
//! capture bucket as JSON lines partitioned by model, date and hour (what monitoring reads).
//! Ground truth sent back later is stored beside the prediction it belongs to and captured
//! the same way.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use sluice_aws::StoreError;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const PREDICTION_SK: &str = "PREDICTION";
/// DynamoDB items stop at 400 KB; bigger requests keep their rows in the capture only.
const MAX_ROWS_IN_ITEM_BYTES: usize = 300 * 1024;

/// One prediction request, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    pub request_id: String,
    pub time: OffsetDateTime,
    pub model: String,
    pub version: i64,
    /// Per row: the input as sent and the output as answered.
    pub rows: Vec<(Value, Value)>,
    pub latency_ms: f64,
}

/// A row's prediction id: `<request id>-<row>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictionId {
    pub request_id: String,
    pub row: usize,
}

impl PredictionId {
    pub fn parse(id: &str) -> Option<Self> {
        let (request_id, row) = id.rsplit_once('-')?;
        let valid = request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Self { request_id: request_id.to_owned(), row: row.parse().ok().filter(|_| valid)? })
    }
}

impl std::fmt::Display for PredictionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.request_id, self.row)
    }
}

/// What is stored about one row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPrediction {
    pub id: PredictionId,
    pub model: String,
    pub version: i64,
    pub time: String,
    /// The row's input and output, unless the request was too big for the item.
    pub row: Option<(Value, Value)>,
    pub feedback: Option<Value>,
}

pub struct PredictionLog {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub table: String,
    pub capture_bucket: String,
    pub retention_days: i64,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// `<kind>/<model>/date=YYYY-MM-DD/hour=HH/<name>`: the partitions monitoring reads by.
pub fn capture_key(kind: &str, model: &str, at: OffsetDateTime, name: &str) -> String {
    format!(
        "{kind}/{model}/date={:04}-{:02}-{:02}/hour={:02}/{name}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour()
    )
}

impl PredictionLog {
    /// Writes the DynamoDB item and the capture object at the same time.
    pub async fn record(&self, record: &PredictionRecord) -> Result<(), StoreError> {
        let time = record.time.format(&Rfc3339).expect("UTC times format as RFC 3339");
        let expires_at = (record.time + time::Duration::days(self.retention_days)).unix_timestamp();
        let lines: String = record
            .rows
            .iter()
            .enumerate()
            .map(|(row, (input, output))| {
                let id = PredictionId { request_id: record.request_id.clone(), row };
                let line = json!({
                    "prediction_id": id.to_string(), "request_id": record.request_id, "time": time,
                    "model": record.model, "version": record.version, "input": input, "output": output,
                    "latency_ms": record.latency_ms,
                });
                format!("{line}\n")
            })
            .collect();
        let key = capture_key("predictions", &record.model, record.time, &format!("{}.jsonl", record.request_id));
        let rows = Value::Array(record.rows.iter().map(|(i, o)| json!({ "input": i, "output": o })).collect());
        let rows = rows.to_string();

        let mut item = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&record.request_id))
            .item("sk", s(PREDICTION_SK))
            .item("model", s(&record.model))
            .item("version", n(record.version))
            .item("time", s(&time))
            .item("row_count", n(record.rows.len()))
            .item("latency_ms", n(record.latency_ms))
            .item("capture_key", s(&key))
            .item("expires_at", n(expires_at));
        if rows.len() <= MAX_ROWS_IN_ITEM_BYTES {
            item = item.item("rows", s(rows));
        }
        let capture = self
            .s3
            .put_object()
            .bucket(&self.capture_bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(lines.into_bytes().into())
            .send();
        let (stored, captured) = tokio::join!(item.send(), capture);
        stored.map_err(|e| StoreError::new("DynamoDB", "PutItem", e))?;
        captured.map_err(|e| StoreError::new("S3", "PutObject", e))?;
        Ok(())
    }

    async fn items(&self, request_id: &str) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(request_id))
            .send()
            .await
            .map_err(|e| StoreError::new("DynamoDB", "Query", e))?;
        Ok(output.items().to_vec())
    }

    /// The stored prediction for one row, with its feedback if any arrived.
    pub async fn get(&self, id: &PredictionId) -> Result<Option<StoredPrediction>, StoreError> {
        let items = self.items(&id.request_id).await?;
        let text = |item: &HashMap<String, AttributeValue>, name: &str| match item.get(name) {
            Some(AttributeValue::S(value)) => value.clone(),
            Some(AttributeValue::N(value)) => value.clone(),
            _ => String::new(),
        };
        let Some(prediction) = items.iter().find(|item| text(item, "sk") == PREDICTION_SK) else { return Ok(None) };
        let row_count: usize = text(prediction, "row_count").parse().unwrap_or_default();
        if id.row >= row_count {
            return Ok(None);
        }
        let row = serde_json::from_str::<Value>(&text(prediction, "rows"))
            .ok()
            .and_then(|rows| rows.get(id.row).map(|r| (r["input"].clone(), r["output"].clone())));
        let feedback_sk = format!("FEEDBACK#{}", id.row);
        let feedback = items
            .iter()
            .find(|item| text(item, "sk") == feedback_sk)
            .and_then(|item| serde_json::from_str(&text(item, "truth")).ok());
        Ok(Some(StoredPrediction {
            id: id.clone(),
            model: text(prediction, "model"),
            version: text(prediction, "version").parse().unwrap_or_default(),
            time: text(prediction, "time"),
            row,
            feedback,
        }))
    }

    /// Stores the true label or value for a row's prediction (a later one replaces it).
    pub async fn feedback(
        &self,
        prediction: &StoredPrediction,
        truth: &Value,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let time = now.format(&Rfc3339).expect("UTC times format as RFC 3339");
        let id = prediction.id.to_string();
        let line = json!({
            "prediction_id": id, "time": time, "model": prediction.model, "version": prediction.version,
            "truth": truth, "prediction_time": prediction.time,
            "output": prediction.row.as_ref().map(|(_, output)| output),
        });
        let key = capture_key("feedback", &prediction.model, now, &format!("{id}.json"));
        let item = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&prediction.id.request_id))
            .item("sk", s(format!("FEEDBACK#{}", prediction.id.row)))
            .item("truth", s(truth.to_string()))
            .item("time", s(&time))
            .item("expires_at", n((now + time::Duration::days(self.retention_days)).unix_timestamp()))
            .send();
        let capture = self
            .s3
            .put_object()
            .bucket(&self.capture_bucket)
            .key(&key)
            .content_type("application/json")
            .body(line.to_string().into_bytes().into())
            .send();
        let (stored, captured) = tokio::join!(item, capture);
        stored.map_err(|e| StoreError::new("DynamoDB", "PutItem", e))?;
        captured.map_err(|e| StoreError::new("S3", "PutObject", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_ids_round_trip_and_refuse_anything_else() {
        let id = PredictionId { request_id: "0192f5c47d3e7a109c1b5e2f8a9d0c11".into(), row: 7 };
        assert_eq!(PredictionId::parse(&id.to_string()), Some(id));
        for bad in ["", "abc-1", "0192f5c47d3e7a109c1b5e2f8a9d0c11", "0192f5c47d3e7a109c1b5e2f8a9d0c1z-1", "../x-1"] {
            assert_eq!(PredictionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn captures_are_partitioned_by_model_date_and_hour() {
        let at = time::macros::datetime!(2026-11-22 04:05:06 UTC);
        assert_eq!(
            capture_key("predictions", "iris", at, "r.jsonl"),
            "predictions/iris/date=2026-11-22/hour=04/r.jsonl"
        );
    }
}
