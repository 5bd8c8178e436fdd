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

/// The lines packed into Firehose records of at most `limit` bytes. Firehose bills each
/// record rounded up to 5 KB, so a request's rows in one record cost one round-up, not one
/// each. A line longer than a record can hold cannot be captured: it is left out with a
/// warning.
fn records(lines: impl IntoIterator<Item = CaptureRecord>, limit: usize) -> Vec<Vec<u8>> {
    let mut records: Vec<Vec<u8>> = Vec::new();
    for record in lines {
        let line = record.to_line();
        if line.len() > limit {
            tracing::warn!(
                model = record.model(),
                bytes = line.len(),
                "capture line over Firehose's record limit; not captured"
            );
            continue;
        }
        match records.last_mut() {
            Some(current) if current.len() + line.len() <= limit => current.extend_from_slice(line.as_bytes()),
            _ => records.push(line.into_bytes()),
        }
    }
    records
}

#[derive(Debug, Clone)]
pub struct CaptureStream {
    client: aws_sdk_firehose::Client,
    stream: String,
}

impl CaptureStream {
    pub fn new(clients: &AwsClients, stream: impl Into<String>) -> Self {
        Self { client: aws_sdk_firehose::Client::new(&clients.config), stream: stream.into() }
    }

    /// Sends the lines in as few Firehose records and calls as its limits allow (see
    /// [`records`]); the records Firehose refuses (throttling) are sent once more.
    pub async fn put(&self, lines: impl IntoIterator<Item = CaptureRecord>) -> Result<(), StoreError> {
        let records = records(lines, MAX_RECORD_BYTES);
        let mut batch: Vec<Record> = Vec::new();
        let mut batch_bytes = 0;
        for record in records {
            if batch.len() == MAX_RECORDS_PER_CALL || batch_bytes + record.len() > MAX_BYTES_PER_CALL {
                self.send(std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
            batch_bytes += record.len();
            batch.push(Record::builder().data(Blob::new(record)).build().expect("data is set"));
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

#[cfg(test)]
mod tests {
    use sluice_core::capture::CapturedFeedback;

    use super::*;

    fn line(truth: &str) -> CaptureRecord {
        CaptureRecord::Feedback(CapturedFeedback {
            prediction_id: "p".into(),
            time: time::OffsetDateTime::UNIX_EPOCH,
            model: "m".into(),
            version: 1,
            truth: truth.into(),
            output: None,
        })
    }

    #[test]
    fn lines_share_records_up_to_the_limit_and_oversized_ones_are_dropped() {
        let one = line("a").to_line().len();
        let packed = records((0..5).map(|_| line("a")), one * 2);
        assert_eq!(packed.iter().map(Vec::len).collect::<Vec<_>>(), [2 * one, 2 * one, one]);
        assert!(packed.iter().all(|r| r.ends_with(b"\n")), "records end at a line");
        let huge = line(&"x".repeat(1000));
        assert_eq!(records([line("a"), huge, line("b")], one * 2).len(), 1, "the huge line is left out");
    }
}
