//! Serving through the local cloud: a registered model answers the prediction queue
//! (the SQS event source mapping with partial batch failures) and batch files.

use crate::local_cloud;

use std::time::Duration;

use serde_json::json;
use sluice_cli::LocalCloud;
use sluice_core::capture::CaptureRecord;
use sluice_tests::bundle::{flower_classifier, register_flowers};
use sluice_tests::{captured, object_bytes, object_keys};

/// Registers a flower classifier as the approved version 1 of `flowers`.
async fn register(cloud: &LocalCloud) {
    register_flowers(&cloud.clients, &cloud.stack, &flower_classifier(9).0, true).await;
}

async fn queue_url(cloud: &LocalCloud, logical_id: &str) -> String {
    let name = cloud.resource_name(logical_id).unwrap();
    cloud.clients.sqs.get_queue_url().queue_name(name).send().await.unwrap().queue_url.unwrap()
}

/// Polls `probe` every 100 ms until it returns something (bounded: 30 s).
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, probe: impl Fn() -> F) -> T {
    for _ in 0..300 {
        if let Some(found) = probe().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 30 s");
}

#[tokio::test]
async fn the_prediction_queue_serves_good_messages_and_dead_letters_bad_ones() {
    let cloud = local_cloud::start().await;
    register(&cloud).await;
    let queue = queue_url(&cloud, "PredictionQueue").await;
    let dead_letters = queue_url(&cloud, "PredictionDeadLetterQueue").await;
    let good = json!({"model": "flowers", "rows": [{"petal": 2.2, "colour": "blue"}]});
    for body in [good.to_string(), "{\"model\": \"flowers\", \"rows\": [".to_owned()] {
        cloud.clients.sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    }

    let capture = cloud.resource_name("CaptureBucket").unwrap();
    let lines = eventually("the good message's capture", || async {
        Some(captured(&cloud.clients, capture).await).filter(|lines| !lines.is_empty())
    })
    .await;
    let CaptureRecord::Prediction(line) = &lines[0] else { panic!("a prediction: {lines:?}") };
    assert_eq!(line.input, good["rows"][0]);

    let dead = eventually("the bad message's dead-lettering", || async {
        let received = cloud.clients.sqs.receive_message().queue_url(&dead_letters).send().await.unwrap();
        received.messages.unwrap_or_default().into_iter().next()
    })
    .await;
    assert_eq!(dead.body(), Some("{\"model\": \"flowers\", \"rows\": ["));
    assert_eq!(captured(&cloud.clients, capture).await.len(), 1, "the bad message recorded nothing");
}

#[tokio::test]
async fn a_file_under_the_batch_input_prefix_gets_its_predictions() {
    let cloud = local_cloud::start().await;
    register(&cloud).await;
    let bucket = cloud.resource_name("BatchBucket").unwrap();
    let csv = "id,petal,colour\n7,2.5,red\n8,oops,red\n";
    cloud
        .clients
        .s3
        .put_object()
        .bucket(bucket)
        .key("input/flowers/today.csv")
        .body(csv.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();

    let output = eventually("the batch output", || async {
        let object = cloud
            .clients
            .s3
            .get_object()
            .bucket(bucket)
            .key("output/flowers/today.predictions.csv")
            .send()
            .await
            .ok()?;
        Some(String::from_utf8(object.body.collect().await.ok()?.to_vec()).unwrap())
    })
    .await;
    assert!(output.starts_with("row,id,prediction,") && output.lines().count() == 2, "{output}");
    let errors = object_bytes(&cloud.clients, bucket, "output/flowers/today.errors.ndjson").await.0;
    assert!(String::from_utf8(errors).unwrap().contains("\"row\":2"));
    // Outputs under output/ do not trigger the function again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let keys = object_keys(&cloud.clients, bucket).await;
    assert_eq!(keys.len(), 3, "{keys:?}");
}
