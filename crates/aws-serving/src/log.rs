//! Real-time output storage. Every answered request goes to DynamoDB (one item per request,
//! expiring after the retention, for lookup by id and for feedback) and to the capture
//! stream (one line per row, what monitoring reads). Ground truth sent back later is stored
//! beside the prediction it belongs to and captured the same way.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use sluice_aws::StoreError;
use sluice_core::capture::{CaptureRecord, CapturedFeedback, PredictionId};
use sluice_serving::{PredictionRecord, PredictionSink, SourceError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::capture::CaptureStream;

const PREDICTION_SK: &str = "PREDICTION";
/// DynamoDB items stop at 400 KB; bigger requests keep their rows in the capture only.
const MAX_ROWS_IN_ITEM_BYTES: usize = 300 * 1024;

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
    pub capture: CaptureStream,
    pub table: String,
    pub retention_days: i64,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl PredictionSink for PredictionLog {
    /// Writes the DynamoDB item and sends the capture lines at the same time.
    async fn record(&self, record: &PredictionRecord) -> Result<(), SourceError> {
        let time = record.time.format(&Rfc3339).expect("UTC times format as RFC 3339");
        let expires_at = (record.time + time::Duration::days(self.retention_days)).unix_timestamp();
        let rows =
            Value::Array(record.rows.iter().map(|row| json!({ "input": row.input, "output": row.output })).collect());
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
            .item("expires_at", n(expires_at));
        if rows.len() <= MAX_ROWS_IN_ITEM_BYTES {
            item = item.item("rows", s(rows));
        }
        let (stored, captured) = tokio::join!(item.send(), self.capture.put(record.capture()));
        stored.map_err(|e| SourceError(StoreError::new("DynamoDB", "PutItem", e).to_string()))?;
        captured.map_err(|e| SourceError(e.to_string()))
    }
}

impl PredictionLog {
    async fn item(
        &self,
        request_id: &str,
        sort_key: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(request_id))
            .key("sk", s(sort_key))
            .send()
            .await
            .map_err(|e| StoreError::new("DynamoDB", "GetItem", e))?;
        Ok(output.item)
    }

    /// The stored prediction for one row, with its feedback if any arrived.
    pub async fn get(&self, id: &PredictionId) -> Result<Option<StoredPrediction>, StoreError> {
        let text = |item: &HashMap<String, AttributeValue>, name: &str| match item.get(name) {
            Some(AttributeValue::S(value)) => value.clone(),
            Some(AttributeValue::N(value)) => value.clone(),
            _ => String::new(),
        };
        let Some(prediction) = self.item(&id.request_id, PREDICTION_SK.to_owned()).await? else { return Ok(None) };
        let row_count: usize = text(&prediction, "row_count").parse().unwrap_or_default();
        if id.row >= row_count {
            return Ok(None);
        }
        let row = serde_json::from_str::<Value>(&text(&prediction, "rows"))
            .ok()
            .and_then(|rows| rows.get(id.row).map(|r| (r["input"].clone(), r["output"].clone())));
        let feedback = self
            .item(&id.request_id, format!("FEEDBACK#{}", id.row))
            .await?
            .and_then(|item| serde_json::from_str(&text(&item, "truth")).ok());
        Ok(Some(StoredPrediction {
            id: id.clone(),
            model: text(&prediction, "model"),
            version: text(&prediction, "version").parse().unwrap_or_default(),
            time: text(&prediction, "time"),
            row,
            feedback,
        }))
    }

    /// Stores the true label or value for a row's prediction (a later one replaces it) and
    /// captures it for live accuracy.
    pub async fn feedback(
        &self,
        prediction: &StoredPrediction,
        truth: &Value,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let time = now.format(&Rfc3339).expect("UTC times format as RFC 3339");
        let line = CaptureRecord::Feedback(CapturedFeedback {
            prediction_id: prediction.id.to_string(),
            time: now,
            model: prediction.model.clone(),
            version: prediction.version,
            truth: truth.clone(),
            output: prediction.row.as_ref().map(|(_, output)| output.clone()),
        });
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
        let (stored, captured) = tokio::join!(item, self.capture.put([line]));
        stored.map_err(|e| StoreError::new("DynamoDB", "PutItem", e))?;
        captured
    }
}
