//! The local cloud: everything needed to run Sluice's functions on one machine with no AWS
//! account and no Docker.
//!
//! - [`moto`] starts a local AWS endpoint (moto server) and guarantees it stops.
//! - [`template`] reads `template.yaml`, the single source of truth for what exists.
//! - [`provision`] creates the template's buckets and tables on the endpoint.
//! - [`api`] serves the template's HTTP API routes on localhost, handing each request to a
//!   function as the API Gateway event it would receive in AWS.
//! - [`client`] talks HTTP to that API and to presigned URLs.
//! - [`events`] delivers S3 notifications to functions as Lambda's asynchronous invoke
//!   does, with its retries and its on-failure destination.
//! - [`training`] runs SageMaker training and tuning jobs with the trainer as a process.
//! - [`schedule`] fires the template's `rate(…)` schedules.
//! - [`queues`] runs SQS event source mappings, with partial batch failures.
//! - [`topics`] delivers the messages of SNS topics to the functions subscribed to them.
//! - [`alarms`] evaluates CloudWatch alarms and sends their SNS notifications.
//! - [`clock`] lets schedules, alarm periods and delivery buffers run faster than real time.
//! - [`firehose`] delivers Firehose streams' records to S3 in buffered, named, compressed
//!   objects.
//! - [`emf`] turns the functions' Embedded Metric Format lines into CloudWatch metrics on
//!   the endpoint, as CloudWatch Logs does in AWS.
//!
//! Functions are reached through [`Functions`], which takes and returns JSON exactly as the
//! Lambda service does, so later event sources (S3, SNS, EventBridge, schedules) plug in
//! the same way.

pub mod alarms;
pub mod api;
pub mod client;
pub mod clock;
pub mod emf;
pub mod events;
pub mod firehose;
pub mod moto;
pub mod provision;
pub mod queues;
pub mod schedule;
pub mod template;
pub mod topics;
pub mod training;

use std::future::Future;
use std::pin::Pin;

/// Invokes a function by its logical id with a JSON event, as Lambda's Invoke does.
pub trait Functions: Send + Sync + 'static {
    fn invoke(
        &self,
        function: &str,
        event: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, InvokeError>> + Send + '_>>;
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("function {0} has no local implementation")]
    UnknownFunction(String),
    #[error("function {function} could not read its event: {message}")]
    BadEvent { function: String, message: String },
    /// The handler returned an error (Lambda's `Unhandled` function error).
    #[error("function {function} failed: {message}")]
    Failed { function: String, error_type: String, message: String },
}
