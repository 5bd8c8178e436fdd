//! S3 → function delivery. The emulator sends each bucket notification to a queue of ours
//! (moto supports S3 → SQS); a poller takes the S3 event from the queue and invokes the
//! function the way Lambda's asynchronous invoke does: on failure it retries up to the
//! function's `MaximumRetryAttempts`, then sends an invocation record to its `OnFailure`
//! queue. Unlike Lambda, retries follow at once instead of after minutes.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};
use serde_json::{Value, json};
use sluice_aws::{AwsClients, FailureContext, OnFailureRecord};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinHandle;

use crate::template::{ACCOUNT_ID, AsyncInvoke, REGION, Stack};
use crate::{Functions, InvokeError};

#[derive(Debug, thiserror::Error)]
#[error("cannot set up event delivery for {what}: {message}")]
pub struct DeliveryError {
    pub what: String,
    pub message: String,
}

/// Pollers that deliver the stack's S3 events until dropped.
pub struct EventDelivery {
    pollers: Vec<JoinHandle<()>>,
}

impl Drop for EventDelivery {
    fn drop(&mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
    }
}

/// A queue whose messages become asynchronous invocations of one function.
pub(crate) struct Route {
    pub(crate) function: String,
    pub(crate) queue_url: String,
    pub(crate) async_invoke: AsyncInvoke,
}

impl EventDelivery {
    pub async fn start(
        clients: &AwsClients,
        stack: &Stack,
        functions: Arc<dyn Functions>,
    ) -> Result<Self, DeliveryError> {
        let mut routes = Vec::new();
        let mut notifications: BTreeMap<String, Vec<QueueConfiguration>> = BTreeMap::new();
        for function in &stack.functions {
            for (index, trigger) in function.s3_triggers.iter().enumerate() {
                let queue = format!("{}-{}-s3-{index}", stack.name, function.logical_id);
                let failed = |err: String| DeliveryError { what: format!("queue {queue}"), message: err };
                let created = clients.sqs.create_queue().queue_name(&queue).send().await;
                let queue_url = created.map_err(|e| failed(sluice_aws::error_chain(e)))?.queue_url.unwrap_or_default();
                let filter = trigger.prefix.as_ref().map(|prefix| {
                    let rule = FilterRule::builder().name(FilterRuleName::Prefix).value(prefix).build();
                    NotificationConfigurationFilter::builder()
                        .key(S3KeyFilter::builder().filter_rules(rule).build())
                        .build()
                });
                let configuration = QueueConfiguration::builder()
                    .queue_arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue}"))
                    .set_events(Some(trigger.events.iter().map(|e| Event::from(e.as_str())).collect()))
                    .set_filter(filter)
                    .build()
                    .map_err(|e| failed(e.to_string()))?;
                notifications.entry(trigger.bucket.clone()).or_default().push(configuration);
                routes.push(Route {
                    function: function.logical_id.clone(),
                    queue_url,
                    async_invoke: function.async_invoke.clone(),
                });
            }
        }
        for (bucket, configurations) in notifications {
            clients
                .s3
                .put_bucket_notification_configuration()
                .bucket(&bucket)
                .notification_configuration(
                    NotificationConfiguration::builder().set_queue_configurations(Some(configurations)).build(),
                )
                .send()
                .await
                .map_err(|e| DeliveryError { what: format!("bucket {bucket}"), message: sluice_aws::error_chain(e) })?;
        }
        let mut pollers = Vec::new();
        for route in routes {
            let dead_letter_url = dead_letter_url(&clients.sqs, &route.async_invoke).await?;
            let (sqs, functions) = (clients.sqs.clone(), Arc::clone(&functions));
            pollers.push(tokio::spawn(poll(sqs, route, dead_letter_url, functions, s3_event)));
        }
        Ok(Self { pollers })
    }
}

/// Invokes the route's function with the event `to_event` makes of each message body (none:
/// nothing to deliver), then deletes the message, until aborted.
pub(crate) async fn poll(
    sqs: aws_sdk_sqs::Client,
    route: Route,
    dead_letter_url: Option<String>,
    functions: Arc<dyn Functions>,
    to_event: impl Fn(&str) -> Option<Value>,
) {
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&route.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(queue = %route.queue_url, error = %sluice_aws::error_chain(err), "receive failed");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        for message in messages {
            if let Some(event) = to_event(message.body().unwrap_or_default()) {
                invoke_async(&route, &event, dead_letter_url.as_deref(), &sqs, functions.as_ref()).await;
            }
            if let Some(receipt) = message.receipt_handle() {
                let deleted = sqs.delete_message().queue_url(&route.queue_url).receipt_handle(receipt).send().await;
                if let Err(err) = deleted {
                    tracing::warn!(error = %sluice_aws::error_chain(err), "could not delete a delivered event");
                }
            }
        }
    }
}

/// Invokes `function` as Lambda's asynchronous invoke does: retries, then the on-failure
/// queue (by URL) if the function has one.
pub(crate) async fn invoke_with_retries(
    function: &str,
    async_invoke: &AsyncInvoke,
    event: &Value,
    dead_letter_url: Option<&str>,
    sqs: &aws_sdk_sqs::Client,
    functions: &dyn Functions,
) {
    let route = Route { function: function.to_owned(), queue_url: String::new(), async_invoke: async_invoke.clone() };
    invoke_async(&route, event, dead_letter_url, sqs, functions).await;
}

/// The URL of a function's on-failure queue, if it has one.
pub(crate) async fn dead_letter_url(
    sqs: &aws_sdk_sqs::Client,
    async_invoke: &AsyncInvoke,
) -> Result<Option<String>, DeliveryError> {
    let Some(name) = &async_invoke.on_failure_queue else { return Ok(None) };
    let output = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| DeliveryError { what: format!("queue {name}"), message: sluice_aws::error_chain(e) })?;
    Ok(output.queue_url)
}

async fn invoke_async(
    route: &Route,
    event: &Value,
    dead_letter_url: Option<&str>,
    sqs: &aws_sdk_sqs::Client,
    functions: &dyn Functions,
) {
    let attempts = route.async_invoke.maximum_retry_attempts + 1;
    let mut last_error = None;
    for attempt in 1..=attempts {
        match functions.invoke(&route.function, event.clone()).await {
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(function = %route.function, attempt, error = %err, "asynchronous invocation failed");
                last_error = Some(err);
            }
        }
    }
    let Some(dead_letter_url) = dead_letter_url else { return };
    let (error_type, message) = match last_error {
        Some(InvokeError::Failed { error_type, message, .. }) => (error_type, message),
        Some(other) => ("Runtime.Error".to_owned(), other.to_string()),
        None => return,
    };
    let record = OnFailureRecord {
        version: "1.0".into(),
        timestamp: OffsetDateTime::now_utc().format(&Rfc3339).expect("UTC times format"),
        request_context: FailureContext {
            request_id: uuid::Uuid::now_v7().to_string(),
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}:$LATEST", route.function),
            condition: "RetriesExhausted".into(),
            approximate_invoke_count: attempts,
        },
        request_payload: event.clone(),
        response_context: Some(
            json!({ "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" }),
        ),
        response_payload: Some(json!({ "errorType": error_type, "errorMessage": message })),
    };
    let body = serde_json::to_string(&record).expect("records serialise");
    if let Err(err) = sqs.send_message().queue_url(dead_letter_url).message_body(body).send().await {
        tracing::error!(error = %sluice_aws::error_chain(err), "could not send to the on-failure destination");
    }
}

/// The S3 event in a notification message, completed to the shape S3 sends.
fn s3_event(body: &str) -> Option<Value> {
    let mut event: Value = serde_json::from_str(body).ok()?;
    // S3 first sends an `s3:TestEvent` with no records when a notification is set up.
    event.get("Records")?;
    complete_s3_event(&mut event);
    Some(event)
}

/// Adds the fields S3 always sends and moto leaves out, so handlers get the event shape
/// they get in AWS (and typed deserialisers that require those fields accept it).
fn complete_s3_event(event: &mut Value) {
    let Some(records) = event.get_mut("Records").and_then(Value::as_array_mut) else { return };
    for (index, record) in records.iter_mut().enumerate() {
        let Some(record) = record.as_object_mut() else { continue };
        record.entry("userIdentity").or_insert_with(|| json!({ "principalId": "AWS:LOCAL" }));
        record.entry("requestParameters").or_insert_with(|| json!({ "sourceIPAddress": "127.0.0.1" }));
        record
            .entry("responseElements")
            .or_insert_with(|| json!({ "x-amz-request-id": format!("LOCAL{index:011}"), "x-amz-id-2": "local" }));
        if let Some(s3) = record.get_mut("s3").and_then(Value::as_object_mut) {
            if let Some(bucket) = s3.get_mut("bucket").and_then(Value::as_object_mut) {
                bucket.entry("ownerIdentity").or_insert_with(|| json!({ "principalId": "LOCAL" }));
            }
            if let Some(object) = s3.get_mut("object").and_then(Value::as_object_mut) {
                let sequencer = format!("{:016X}", OffsetDateTime::now_utc().unix_timestamp_nanos() as u64);
                object.entry("sequencer").or_insert_with(|| json!(sequencer));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event exactly as moto 5.2 puts it on the queue.
    const MOTO_EVENT: &str = r#"{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T01:32:43.060Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "4oR4PPjd",
               "bucket": {"name": "bucket-one", "arn": "arn:aws:s3:::bucket-one"},
               "object": {"key": "iris%2Fingest_date%3D2026-11-22%2Fx+y.csv", "size": 4, "eTag": "34ff2335"}}}]}"#;

    #[test]
    fn moto_events_are_completed_to_the_shape_s3_sends() {
        let mut event: Value = serde_json::from_str(MOTO_EVENT).unwrap();
        assert!(
            serde_json::from_value::<aws_lambda_events::s3::S3Event>(event.clone()).is_err(),
            "moto's own shape is incomplete"
        );
        complete_s3_event(&mut event);
        let typed: aws_lambda_events::s3::S3Event = serde_json::from_value(event).unwrap();
        let record = &typed.records[0];
        assert_eq!(
            record.s3.object.key.as_deref(),
            Some("iris%2Fingest_date%3D2026-11-22%2Fx+y.csv"),
            "keys stay encoded"
        );
        assert_eq!(record.s3.bucket.name.as_deref(), Some("bucket-one"));
    }
}
