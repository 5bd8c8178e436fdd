//! The record Lambda sends to an asynchronous invocation's on-failure destination once it
//! gives up on an event (retries exhausted, or the event grew too old). The local cloud
//! writes it and the functions that clean up after a failure read it: one shape for both.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnFailureRecord {
    pub version: String,
    pub timestamp: String,
    pub request_context: FailureContext,
    /// The event the function was invoked with.
    pub request_payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_context: Option<Value>,
    /// The last attempt's error: `{"errorType": …, "errorMessage": …}`; absent when Lambda
    /// gave up without invoking again (the event grew too old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_payload: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureContext {
    pub request_id: String,
    pub function_arn: String,
    /// `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    pub approximate_invoke_count: u32,
}

impl OnFailureRecord {
    /// Why the function gave up, for a person: the condition, the attempts, the last error
    /// (a timeout or running out of memory reads as Lambda reported it).
    pub fn reason(&self) -> String {
        let context = &self.request_context;
        let error = self.response_payload.as_ref().map(|payload| {
            let text = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
            match (text("errorType"), text("errorMessage")) {
                (kind, message) if kind.is_empty() => message,
                (kind, message) => format!("{kind}: {message}"),
            }
        });
        let attempts = context.approximate_invoke_count;
        match error {
            Some(error) if !error.is_empty() => {
                format!("gave up after {attempts} attempt(s) ({}): {error}", context.condition)
            }
            _ => format!("gave up after {attempts} attempt(s) ({})", context.condition),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Lambda sends it after a timeout on every attempt.
    const TIMED_OUT: &str = r#"{"version":"1.0","timestamp":"2026-11-22T10:00:00.000Z","requestContext":{"requestId":"c9f8","functionArn":"arn:aws:lambda:us-east-1:123456789012:function:etl:$LATEST","condition":"RetriesExhausted","approximateInvokeCount":3},"requestPayload":{"Records":[]},"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"responsePayload":{"errorMessage":"2026-11-22T10:00:00.000Z c9f8 Task timed out after 300.00 seconds"}}"#;

    #[test]
    fn the_reason_says_why_and_how_often() {
        let record: OnFailureRecord = serde_json::from_str(TIMED_OUT).unwrap();
        assert_eq!(
            record.reason(),
            "gave up after 3 attempt(s) (RetriesExhausted): 2026-11-22T10:00:00.000Z c9f8 Task timed out after 300.00 seconds"
        );
        let aged = OnFailureRecord {
            request_context: FailureContext { condition: "EventAgeExceeded".into(), ..record.request_context.clone() },
            response_payload: None,
            ..record
        };
        assert_eq!(aged.reason(), "gave up after 3 attempt(s) (EventAgeExceeded)");
    }
}
