//! The batch function fed with a real S3 event, against moto.

use aws_lambda_events::s3::S3Event;
use batch::Batch;
use serde_json::Value;
use sluice_core::options::DatasetOptions;
use sluice_formats::ContentKind;
use sluice_tests::bundle::{flower_classifier, register_flowers};
use sluice_tests::{TestStack, object_bytes, object_keys};

async fn stack_with_flowers() -> (TestStack, Batch) {
    let stack = TestStack::provision().await;
    let variables = stack.environment("BatchFunction");
    register_flowers(&stack.clients, &stack.stack, &flower_classifier(8).0, true).await;
    let batch = Batch::from_settings(&stack.clients, &variables).unwrap();
    (stack, batch)
}

/// Puts `body` at `key` in the batch bucket and hands the function the S3 event for it.
async fn drop_file(stack: &TestStack, batch: &Batch, key: &str, body: Vec<u8>) {
    let bucket = stack.bucket("BatchBucket");
    stack.clients.s3.put_object().bucket(bucket).key(key).body(body.into()).send().await.unwrap();
    let path = format!("{}/tests/events/object-created.json", env!("CARGO_MANIFEST_DIR"));
    // Keys arrive URL-encoded in S3 events.
    let text =
        std::fs::read_to_string(path).unwrap().replace("BUCKET", bucket).replace("KEY", &key.replace('=', "%3D"));
    let event: S3Event = serde_json::from_str(&text).unwrap();
    batch.handle(event).await.unwrap();
}

async fn text(stack: &TestStack, key: &str) -> String {
    String::from_utf8(object_bytes(&stack.clients, stack.bucket("BatchBucket"), key).await.0).unwrap()
}

const CSV: &str = "id,petal,colour,kind\na-1,2.5,red,rose\nb-2,tall,blue,iris\nc-3,,green,\nd-4,1.0,blue,iris\n";

#[tokio::test]
async fn a_csv_file_gets_predictions_in_chunks_and_its_bad_rows_reported() {
    let (stack, mut batch) = stack_with_flowers().await;
    batch = batch.with_chunk_rows(2);
    drop_file(&stack, &batch, "input/flowers/day=2026-11-22/scores.csv", CSV.as_bytes().to_vec()).await;

    let output = text(&stack, "output/flowers/day=2026-11-22/scores.predictions.csv").await;
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(
        lines[0], "row,id,kind,prediction,probability:iris,probability:rose,probability:tulip",
        "input keys pass through"
    );
    assert_eq!(lines.len(), 4, "three good rows: {output}");
    assert!(
        lines[1].starts_with("1,a-1,rose,") && lines[2].starts_with("3,c-3,,") && lines[3].starts_with("4,d-4,iris,")
    );
    let prediction = lines[1].split(',').nth(3).unwrap();
    assert!(["iris", "rose", "tulip"].contains(&prediction), "{prediction}");

    let errors: Vec<Value> = text(&stack, "output/flowers/day=2026-11-22/scores.errors.ndjson")
        .await
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0]["row"].as_u64(), errors[0]["field"].as_str()), (Some(2), Some("petal")));
    assert!(errors[0]["error"].as_str().unwrap().contains("must be a number"), "{errors:?}");

    // A replayed event writes the same outputs again.
    drop_file(&stack, &batch, "input/flowers/day=2026-11-22/scores.csv", CSV.as_bytes().to_vec()).await;
    assert_eq!(text(&stack, "output/flowers/day=2026-11-22/scores.predictions.csv").await, output);
}

#[tokio::test]
async fn parquet_files_are_read_row_group_by_row_group() {
    let (stack, batch) = stack_with_flowers().await;
    let csv = "id,petal,colour\n1,2.5,red\n2,1.5,blue\n";
    let parquet =
        sluice_etl::process_table(ContentKind::Csv, csv.as_bytes(), None, &DatasetOptions::default()).unwrap().parquet;
    drop_file(&stack, &batch, "input/flowers/scores.parquet", parquet).await;
    let output = text(&stack, "output/flowers/scores.predictions.csv").await;
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 3, "{output}");
    assert!(lines[0].starts_with("row,id,prediction,") && lines[1].starts_with("1,1,"), "{output}");
}

#[tokio::test]
async fn files_that_cannot_be_scored_are_explained_not_retried() {
    let (stack, batch) = stack_with_flowers().await;
    drop_file(&stack, &batch, "input/flowers/notes.txt", b"hello".to_vec()).await;
    drop_file(&stack, &batch, "input/roses/scores.csv", CSV.as_bytes().to_vec()).await;
    drop_file(&stack, &batch, "input/flowers/short.csv", b"id,colour\n1,red\n".to_vec()).await;
    drop_file(&stack, &batch, "elsewhere/flowers/x.csv", CSV.as_bytes().to_vec()).await;
    let keys = object_keys(&stack.clients, stack.bucket("BatchBucket")).await;
    let reason = |key: &str| {
        let stack = &stack;
        let key = key.to_owned();
        async move { text(stack, &key).await }
    };
    assert!(reason("output/flowers/notes.errors.ndjson").await.contains("not \\\"txt\\\""));
    assert!(reason("output/roses/scores.errors.ndjson").await.contains("model roses has no production version"));
    assert!(reason("output/flowers/short.errors.ndjson").await.contains("the file has no column \\\"petal\\\""));
    assert!(!keys.iter().any(|k| k.starts_with("output/flowers/x")), "{keys:?}");
}
