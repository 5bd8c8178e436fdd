//! The `stream` function: prediction requests arriving on an SQS queue, one message each
//! (`{"model": "iris", "rows": [{…}]}`), served by the production version and recorded
//! exactly as `POST /models/{model}/predict` records them. A message that cannot be served
//! is reported in `batchItemFailures`, so only it returns to the queue, and the queue's
//! redrive policy moves it to the dead-letter queue after a few receives.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;
use serde_json::Value;
use sluice_aws::AwsClients;
use sluice_aws::settings::{SettingsError, Vars};
use sluice_aws_serving::{Service, prediction_service};
use sluice_core::{InvalidName, ModelName};
use sluice_serving::{Input, ServeError, Served};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictionRequest {
    model: String,
    rows: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("the message is not {{\"model\": …, \"rows\": […]}}: {0}")]
    Malformed(String),
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Refused(#[from] ServeError),
}

pub struct Stream {
    service: Service,
}

impl Stream {
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        Ok(Self { service: prediction_service(clients, vars)? })
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in &event.records {
            let id = message.message_id.clone().unwrap_or_default();
            match self.serve(message).await {
                Ok(served) => {
                    tracing::info!(message_id = %id, request_id = %served.request_id, rows = served.predictions.len(), "served");
                }
                Err(err) => {
                    tracing::warn!(message_id = %id, error = %err, "message not served; returned to the queue");
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        response
    }

    pub async fn serve(&self, message: &SqsMessage) -> Result<Served, MessageError> {
        let body = message.body.as_deref().unwrap_or_default();
        let request: PredictionRequest =
            serde_json::from_str(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
        let model = ModelName::parse(&request.model)?;
        Ok(self.service.serve(&model, Input::Rows(&request.rows), None).await?)
    }
}
