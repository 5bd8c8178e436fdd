//! Messages to the operators' SNS topic.

use sluice_aws::{AwsClients, StoreError};

/// Messages to the operators' topic.
#[derive(Debug, Clone)]
pub struct Operators {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Operators {
    pub fn new(clients: &AwsClients, topic_arn: impl Into<String>) -> Self {
        Self { client: aws_sdk_sns::Client::new(&clients.config), topic_arn: topic_arn.into() }
    }

    pub async fn notify(&self, subject: &str, message: &str) -> Result<(), StoreError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject.chars().take(100).collect::<String>())
            .message(message)
            .send()
            .await
            .map_err(|e| StoreError { service: "SNS", operation: "Publish", message: sluice_aws::error_chain(e) })?;
        Ok(())
    }
}
