//! The stream function fed with a real SQS event, against moto.

use aws_lambda_events::sqs::SqsEvent;
use sluice_core::capture::CaptureRecord;
use sluice_tests::bundle::{flower_classifier, register_flowers};
use sluice_tests::{TestStack, captured};
use stream::Stream;

#[tokio::test]
async fn good_messages_are_served_and_bad_ones_returned() {
    let stack = TestStack::provision().await;
    let variables = stack.environment("StreamFunction");
    register_flowers(&stack.clients, &stack.stack, &flower_classifier(4).0, true).await;

    let stream = Stream::from_settings(&stack.clients, &variables).unwrap();
    let path = format!("{}/tests/events/sqs-batch.json", env!("CARGO_MANIFEST_DIR"));
    let event: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let response = stream.handle(event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["2e1424d4-f796-459a-8184-9c92662be6da", "a8c3f1d2-5e6b-4c7d-9e8f-0a1b2c3d4e5f"]);

    let lines = captured(&stack.clients, stack.bucket("CaptureBucket")).await;
    assert_eq!(lines.len(), 2, "only the good message's two rows are recorded: {lines:?}");
    let CaptureRecord::Prediction(first) = &lines[0] else { panic!("a prediction: {lines:?}") };
    assert_eq!(first.input["petal"], 2.4);
    assert_eq!(first.version, 1);
}
