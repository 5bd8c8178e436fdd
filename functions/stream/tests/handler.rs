//! The stream function fed with a real SQS event, against moto.

use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;
use sluice_tests::bundle::{flower_classifier, register_flowers};
use sluice_tests::{TestStack, object_bytes, object_keys};
use stream::Stream;

#[tokio::test]
async fn good_messages_are_served_and_bad_ones_returned() {
    let stack = TestStack::provision().await;
    let variables = stack.environment("StreamFunction");
    let group = format!("{}flowers", variables["MODEL_GROUP_PREFIX"]);
    register_flowers(&stack.clients, &group, stack.bucket("ArtifactsBucket"), &flower_classifier(4).0, true).await;

    let stream = Stream::from_settings(&stack.clients, &variables).unwrap();
    let path = format!("{}/tests/events/sqs-batch.json", env!("CARGO_MANIFEST_DIR"));
    let event: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let response = stream.handle(event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["2e1424d4-f796-459a-8184-9c92662be6da", "a8c3f1d2-5e6b-4c7d-9e8f-0a1b2c3d4e5f"]);

    let keys = object_keys(&stack.clients, stack.bucket("CaptureBucket")).await;
    assert_eq!(keys.len(), 1, "only the good message is recorded: {keys:?}");
    let (capture, _) = object_bytes(&stack.clients, stack.bucket("CaptureBucket"), &keys[0]).await;
    let lines: Vec<Value> =
        String::from_utf8(capture).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["input"]["petal"], 2.4);
    assert_eq!(lines[0]["version"], 1);
}
