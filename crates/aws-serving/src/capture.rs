//! The prediction capture's way in: a Firehose delivery stream that batches the lines into
//! compressed objects under `capture/date=…/hour=…/` in the capture bucket, so a million
//! predictions a day make a few hundred objects, not a million.

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use sluice_aws::{AwsClients, StoreError};
use sluice_core::capture::CaptureRecord;

/// Firehose's limits on one `PutRecordBatch` and one record.
const MAX_RECORDS_PER_CALL: usize = 500;
const MAX_BYTES_PER_CALL: usize = 4 * 1024 * 1024;
const MAX_RECORD_BYTES: usize = 1000 * 1024;

#[derive(Debug, Clone)]
pub struct CaptureStream {
    client: aws_sdk_firehose::Client,
    stream: String,
}

impl CaptureStream {
    pub fn new(clients: &AwsClients, stream: impl Into<String>) -> Self {
        Self { client: aws_sdk_firehose::Client::new(&clients.config), stream: stream.into() }
    }

    /// Sends the records, one line each, in as few calls as Firehose's limits allow; the
    /// records Firehose refuses (throttling) are sent once more. A record over Firehose's
    /// 1000 KiB limit cannot be captured and is left out with a warning.
    pub async fn put(&self, records: impl IntoIterator<Item = CaptureRecord>) -> Result<(), StoreError> {
        let mut batch: Vec<Record> = Vec::new();
        let mut batch_bytes = 0;
        for record in records {
            let line = record.to_line();
            if line.len() > MAX_RECORD_BYTES {
                tracing::warn!(
                    model = record.model(),
                    bytes = line.len(),
                    "capture line over Firehose's record limit; not captured"
                );
                continue;
            }
            if batch.len() == MAX_RECORDS_PER_CALL || batch_bytes + line.len() > MAX_BYTES_PER_CALL {
                self.send(std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
            batch_bytes += line.len();
            batch.push(Record::builder().data(Blob::new(line)).build().expect("data is set"));
        }
        if !batch.is_empty() {
            self.send(batch).await?;
        }
        Ok(())
    }

    async fn send(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let mut pending = records;
        for attempt in 1..=2 {
            let output = self
                .client
                .put_record_batch()
                .delivery_stream_name(&self.stream)
                .set_records(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| StoreError::new("Firehose", "PutRecordBatch", e))?;
            if output.failed_put_count() == 0 {
                return Ok(());
            }
            let failed: Vec<Record> = output
                .request_responses()
                .iter()
                .zip(&pending)
                .filter(|(response, _)| response.error_code().is_some())
                .map(|(_, record)| record.clone())
                .collect();
            tracing::warn!(attempt, failed = failed.len(), "Firehose refused capture records");
            pending = failed;
        }
        Err(StoreError {
            service: "Firehose",
            operation: "PutRecordBatch",
            message: format!("{} records refused twice", pending.len()),
        })
    }
}
