//! SNS → function delivery, which the emulator does not do (its SNS never invokes Lambda).
//! Each `SNS` event of a function gets a queue of ours subscribed to the topic (the
//! emulator delivers SNS → SQS, wrapping each message in the SNS JSON envelope); a poller
//! turns each envelope into the event Lambda receives from SNS and invokes the function the
//! way SNS does, asynchronously: with the function's retries and on-failure destination.

use std::sync::Arc;

use serde_json::{Value, json};
use sluice_aws::AwsClients;
use tokio::task::JoinHandle;

use crate::Functions;
use crate::events::{DeliveryError, Route, dead_letter_url, poll};
use crate::template::{ACCOUNT_ID, REGION, Stack};

/// Pollers that deliver the stack's SNS messages to its functions until dropped.
pub struct SnsDelivery {
    pollers: Vec<JoinHandle<()>>,
}

impl Drop for SnsDelivery {
    fn drop(&mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
    }
}

impl SnsDelivery {
    pub async fn start(
        clients: &AwsClients,
        stack: &Stack,
        functions: Arc<dyn Functions>,
    ) -> Result<Self, DeliveryError> {
        let sns = aws_sdk_sns::Client::new(&clients.config);
        let mut pollers = Vec::new();
        for function in &stack.functions {
            for (index, topic_arn) in function.sns_topics.iter().enumerate() {
                let queue = format!("{}-{}-sns-{index}", stack.name, function.logical_id);
                let failed = |what: &str, message: String| DeliveryError { what: what.to_owned(), message };
                let created = clients.sqs.create_queue().queue_name(&queue).send().await;
                let queue_url = created
                    .map_err(|e| failed(&format!("queue {queue}"), sluice_aws::error_chain(e)))?
                    .queue_url
                    .unwrap_or_default();
                // Not raw delivery: the envelope carries what the Lambda event needs
                // (message id, subject, timestamp, signature).
                let subscribed = sns
                    .subscribe()
                    .topic_arn(topic_arn)
                    .protocol("sqs")
                    .endpoint(format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue}"))
                    .send()
                    .await
                    .map_err(|e| failed(&format!("subscription to {topic_arn}"), sluice_aws::error_chain(e)))?;
                let subscription_arn = subscribed.subscription_arn.unwrap_or_default();
                let route = Route {
                    function: function.logical_id.clone(),
                    queue_url,
                    async_invoke: function.async_invoke.clone(),
                };
                let dead_letter_url = dead_letter_url(&clients.sqs, &function.async_invoke).await?;
                let to_event = move |body: &str| lambda_sns_event(body, &subscription_arn);
                pollers.push(tokio::spawn(poll(
                    clients.sqs.clone(),
                    route,
                    dead_letter_url,
                    Arc::clone(&functions),
                    to_event,
                )));
                tracing::info!(function = %function.logical_id, topic = %topic_arn, "SNS delivery ready");
            }
        }
        Ok(Self { pollers })
    }
}

/// The event Lambda receives for one SNS message, made from the envelope SNS delivers to a
/// queue. Lambda spells two envelope fields differently (`SigningCertUrl`, `UnsubscribeUrl`)
/// and sends `Subject: null` when the message has none. Anything but a notification (a
/// subscription confirmation) is not delivered.
fn lambda_sns_event(envelope: &str, subscription_arn: &str) -> Option<Value> {
    let envelope: Value = match serde_json::from_str(envelope) {
        Ok(envelope) => envelope,
        Err(err) => {
            tracing::warn!(%subscription_arn, error = %err, "SNS message is not an SNS envelope; not delivered");
            return None;
        }
    };
    if envelope["Type"] != "Notification" {
        return None;
    }
    let topic_arn = envelope["TopicArn"].as_str().unwrap_or_default();
    let region = topic_arn.split(':').nth(3).unwrap_or(REGION);
    Some(json!({
        "Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": subscription_arn,
            "Sns": {
                "Type": "Notification",
                "MessageId": envelope["MessageId"],
                "TopicArn": topic_arn,
                "Subject": envelope["Subject"],
                "Message": envelope["Message"],
                "Timestamp": envelope["Timestamp"],
                "SignatureVersion": envelope["SignatureVersion"],
                "Signature": envelope["Signature"],
                "SigningCertUrl": envelope["SigningCertURL"],
                // The emulator's unsubscribe URL names a made-up subscription; Lambda's names
                // the one that delivered the message.
                "UnsubscribeUrl": format!(
                    "https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription_arn}"
                ),
                "MessageAttributes": envelope.get("MessageAttributes").cloned().unwrap_or_else(|| json!({})),
            },
        }],
    }))
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::sns::SnsEvent;

    use super::*;

    const SUBSCRIPTION: &str = "arn:aws:sns:us-east-1:123456789012:s-Topic:26e8ab08-db0b-4240-b395-6d2c6a728826";

    /// An envelope exactly as moto 5.2 puts it on a subscribed queue (keys sorted, indented).
    const MOTO_ENVELOPE: &str = r#"{
  "Message": "{\"a\":1}",
  "MessageAttributes": {
    "k": {
      "Type": "String",
      "Value": "v"
    }
  },
  "MessageId": "ff3b4fb2-9cbd-46b7-a286-cf38527a2928",
  "Signature": "m1LKE1+P6A4DXTYwpviVG/bBeCvnc0AQKmupNjqAs6mH5xG8MxDrTPNerBFRtyN0O5l92eqn9ofCL4Buq97nHpdK0O9JfdEqXtq87SUHYySSNivo3aPqvnA4/TG1AvM32tOhEcd4xtMsdKKyoYyJHDq0efsIrkbjaiPj0AlUYXUm3cY5IXqiXUjpjcMmWs9jnoW1/5x7G1or5y/DlNpQod0j2xAGFoWQC80ZFOBHfnl6B/l2x4NaVEkRTKEJDBQLu34mElNn2X6QKBjRXkbnhI+TpgPXMu+5af+9ue7tQi5e196t3BNe7HC/1Ev+v5kqURFW+si5rqW3OE/CpfEYnQ==",
  "SignatureVersion": "2",
  "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0bc2ca4f62764e0a98d905319facbbec.pem",
  "Subject": "ALARM: \"x\" in US East (N. Virginia)",
  "Timestamp": "2026-11-22T13:03:56.107Z",
  "TopicArn": "arn:aws:sns:us-east-1:123456789012:s-Topic",
  "Type": "Notification",
  "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:s-Topic:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"
}"#;

    #[test]
    fn envelopes_become_the_event_lambda_receives() {
        let event = lambda_sns_event(MOTO_ENVELOPE, SUBSCRIPTION).unwrap();
        let sns = &event["Records"][0]["Sns"];
        // Lambda's spelling, which typed deserialisers also accept in the envelope's.
        assert!(sns.get("SigningCertUrl").is_some() && sns.get("SigningCertURL").is_none(), "{sns}");
        assert!(sns.get("UnsubscribeUrl").is_some() && sns.get("UnsubscribeURL").is_none(), "{sns}");

        let typed: SnsEvent = serde_json::from_value(event.clone()).unwrap();
        let record = &typed.records[0];
        assert_eq!(record.event_source, "aws:sns");
        assert_eq!(record.event_version, "1.0");
        assert_eq!(record.event_subscription_arn, SUBSCRIPTION);
        let message = &record.sns;
        assert_eq!(message.sns_message_type, "Notification");
        assert_eq!(message.message_id, "ff3b4fb2-9cbd-46b7-a286-cf38527a2928");
        assert_eq!(message.topic_arn, "arn:aws:sns:us-east-1:123456789012:s-Topic");
        assert_eq!(message.subject.as_deref(), Some("ALARM: \"x\" in US East (N. Virginia)"));
        assert_eq!(message.message, r#"{"a":1}"#);
        assert_eq!(message.timestamp.to_rfc3339(), "2026-11-22T13:03:56.107+00:00");
        assert_eq!(message.signature_version, "2");
        assert!(message.signing_cert_url.ends_with(".pem"));
        assert_eq!(
            message.unsubscribe_url,
            format!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={SUBSCRIPTION}")
        );
        assert_eq!(message.message_attributes["k"].data_type, "String");
        assert_eq!(message.message_attributes["k"].value, "v");
    }

    #[test]
    fn a_message_without_subject_or_attributes_has_a_null_subject_and_no_attributes() {
        let mut envelope: Value = serde_json::from_str(MOTO_ENVELOPE).unwrap();
        let fields = envelope.as_object_mut().unwrap();
        fields.remove("Subject");
        fields.remove("MessageAttributes");
        let event = lambda_sns_event(&envelope.to_string(), SUBSCRIPTION).unwrap();
        assert_eq!(event["Records"][0]["Sns"]["Subject"], Value::Null);
        assert_eq!(event["Records"][0]["Sns"]["MessageAttributes"], json!({}));
        let typed: SnsEvent = serde_json::from_value(event).unwrap();
        assert_eq!(typed.records[0].sns.subject, None);
    }

    #[test]
    fn only_notifications_are_delivered() {
        let confirmation = MOTO_ENVELOPE.replace(r#""Type": "Notification""#, r#""Type": "SubscriptionConfirmation""#);
        assert_eq!(lambda_sns_event(&confirmation, SUBSCRIPTION), None);
        assert_eq!(lambda_sns_event("not json", SUBSCRIPTION), None);
    }
}
