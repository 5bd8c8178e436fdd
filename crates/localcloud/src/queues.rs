//! SQS event source mappings, which the emulator does not run: a poller per mapping
//! receives up to `BatchSize` messages, invokes the function synchronously with the SQS
//! event, and deletes what succeeded. With `ReportBatchItemFailures` only the messages the
//! function names come back; otherwise a failed invocation returns the whole batch. Failed
//! messages become visible again at once (Lambda waits out the visibility timeout), so the
//! queue's redrive policy moves a message that keeps failing to its dead-letter queue
//! after `maxReceiveCount` receives.

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{Value, json};
use sluice_aws::AwsClients;
use tokio::task::JoinHandle;

use crate::Functions;
use crate::events::DeliveryError;
use crate::template::{QueueSource, REGION, Stack};

/// Pollers for the stack's SQS event sources, until dropped.
pub struct QueueSources {
    pollers: Vec<JoinHandle<()>>,
}

impl Drop for QueueSources {
    fn drop(&mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
    }
}

impl QueueSources {
    pub async fn start(
        clients: &AwsClients,
        stack: &Stack,
        functions: Arc<dyn Functions>,
    ) -> Result<Self, DeliveryError> {
        let mut pollers = Vec::new();
        for function in &stack.functions {
            for source in &function.queue_sources {
                let url = clients
                    .sqs
                    .get_queue_url()
                    .queue_name(&source.queue)
                    .send()
                    .await
                    .map_err(|e| DeliveryError {
                        what: format!("queue {}", source.queue),
                        message: sluice_aws::error_chain(e),
                    })?
                    .queue_url
                    .unwrap_or_default();
                let poller = Poller {
                    sqs: clients.sqs.clone(),
                    function: function.logical_id.clone(),
                    source: source.clone(),
                    url,
                    functions: Arc::clone(&functions),
                };
                pollers.push(tokio::spawn(poller.run()));
            }
        }
        Ok(Self { pollers })
    }
}

struct Poller {
    sqs: aws_sdk_sqs::Client,
    function: String,
    source: QueueSource,
    url: String,
    functions: Arc<dyn Functions>,
}

impl Poller {
    async fn run(self) {
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(self.source.batch_size.clamp(1, 10) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .wait_time_seconds(1)
                .send()
                .await;
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(err) => {
                    tracing::warn!(queue = %self.source.queue, error = %sluice_aws::error_chain(err), "receive failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let event = sqs_event(&messages, &self.source.queue_arn);
            let failed: HashSet<String> = match self.functions.invoke(&self.function, event).await {
                Ok(response) if self.source.report_failures => response["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect(),
                Ok(_) => HashSet::new(),
                Err(err) => {
                    tracing::warn!(function = %self.function, error = %err, "queue batch failed; it returns to the queue");
                    messages.iter().filter_map(|m| m.message_id().map(str::to_owned)).collect()
                }
            };
            for message in &messages {
                let Some(receipt) = message.receipt_handle() else { continue };
                let result = if failed.contains(message.message_id().unwrap_or_default()) {
                    self.sqs
                        .change_message_visibility()
                        .queue_url(&self.url)
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(sluice_aws::error_chain)
                } else {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(sluice_aws::error_chain)
                };
                if let Err(error) = result {
                    tracing::warn!(queue = %self.source.queue, %error, "could not settle a message");
                }
            }
        }
    }
}

/// The event Lambda's SQS event source mapping sends.
fn sqs_event(messages: &[Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            let attributes: serde_json::Map<String, Value> = message
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), Value::from(value.as_str())))
                .collect();
            json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}
