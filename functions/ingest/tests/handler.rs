//! The handler fed with real API Gateway HTTP API (payload 2.0) events, against moto.

use std::collections::HashSet;
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use ingest::Ingest;
use serde_json::Value;
use sluice_tests::{TestStack, assert_nothing_written, object_bytes, object_keys, string_attribute, table_items};

fn event(name: &str) -> Value {
    let path = format!("{}/tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn request(event: Value) -> ApiGatewayV2httpRequest {
    serde_json::from_value(event).expect("a real API Gateway event deserialises")
}

fn json_body(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

fn handler(stack: &TestStack) -> Ingest {
    Ingest::from_settings(&stack.clients, &stack.environment("IngestFunction")).unwrap()
}

#[tokio::test]
async fn csv_event_is_stored_unchanged_and_catalogued() {
    let stack = TestStack::provision().await;
    let ingest = handler(&stack);
    let event = event("post-records-csv.json");
    let sent = event["body"].as_str().unwrap().to_owned();

    let response = ingest.handle(request(event)).await;
    assert_eq!(response.status_code, 201, "{:?}", response.body);
    let body = json_body(&response);
    assert_eq!(body["status"], "RECEIVED");
    assert_eq!(body["row_count"], 12);

    let key = body["key"].as_str().unwrap();
    assert!(
        key.starts_with("iris/ingest_date=") && key.ends_with(&format!("/{}.csv", body["ingest_id"].as_str().unwrap())),
        "{key}"
    );
    let (stored, content_type) = object_bytes(&stack.clients, stack.bucket("RawBucket"), key).await;
    assert_eq!(stored, sent.as_bytes());
    assert_eq!(content_type.as_deref(), Some("text/csv"));

    let items = table_items(&stack.clients, stack.table("CatalogTable")).await;
    assert_eq!(items.len(), 1);
    assert_eq!(string_attribute(&items[0], "status"), "RECEIVED");
    assert_eq!(string_attribute(&items[0], "key"), key);
}

#[tokio::test]
async fn base64_image_event_is_decoded_before_storing() {
    let stack = TestStack::provision().await;
    let event = event("post-records-png.json");
    let png = base64::engine::general_purpose::STANDARD.decode(event["body"].as_str().unwrap()).unwrap();

    let response = handler(&stack).handle(request(event)).await;
    assert_eq!(response.status_code, 201, "{:?}", response.body);
    let body = json_body(&response);
    assert!(body.get("row_count").is_none(), "images have no row count");
    let (stored, _) = object_bytes(&stack.clients, stack.bucket("RawBucket"), body["key"].as_str().unwrap()).await;
    assert_eq!(stored, png);
}

#[tokio::test]
async fn path_traversal_in_the_dataset_is_refused() {
    let stack = TestStack::provision().await;
    let response = handler(&stack).handle(request(event("post-records-traversal.json"))).await;
    assert_eq!(response.status_code, 400);
    let body = json_body(&response);
    assert_eq!(body["error"]["code"], "invalid_dataset");
    assert!(body["error"]["message"].as_str().unwrap().contains("../x"));
    assert_eq!(body["request_id"], "CzEzJhY2IAMEbXw=");
    assert_nothing_written(&stack, "traversal").await;
}

#[tokio::test]
async fn get_returns_the_entry_and_404s_for_unknown_ids() {
    let stack = TestStack::provision().await;
    let ingest = handler(&stack);
    let created = json_body(&ingest.handle(request(event("post-records-csv.json"))).await);

    let mut get = event("get-ingest.json");
    let response = ingest.handle(request(get.clone())).await;
    assert_eq!(response.status_code, 404);
    assert_eq!(json_body(&response)["error"]["code"], "not_found");

    get["pathParameters"]["id"] = created["ingest_id"].clone();
    let response = ingest.handle(request(get.clone())).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(json_body(&response), created);

    get["pathParameters"]["id"] = "not-a-uuid".into();
    let response = ingest.handle(request(get)).await;
    assert_eq!(response.status_code, 400);
    assert_eq!(json_body(&response)["error"]["code"], "invalid_ingest_id");
}

#[tokio::test]
async fn upload_event_returns_a_presigned_url_and_records_the_wait() {
    let stack = TestStack::provision().await;
    let response = handler(&stack).handle(request(event("post-uploads.json"))).await;
    assert_eq!(response.status_code, 201, "{:?}", response.body);
    let body = json_body(&response);
    assert_eq!(body["status"], "AWAITING_UPLOAD");
    assert_eq!(body["upload"]["method"], "PUT");
    let url = body["upload"]["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let encoded_key = body["key"].as_str().unwrap().replace('=', "%3D");
    assert!(url.contains(&encoded_key), "the URL is bound to the key: {url}");
    assert!(url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type"), "and to the size: {url}");
    assert_eq!(body["upload"]["headers"]["content-length"], "362");
    assert!(object_keys(&stack.clients, stack.bucket("RawBucket")).await.is_empty(), "nothing uploaded yet");
}

#[tokio::test]
async fn a_failed_catalog_write_removes_the_stored_object() {
    let stack = TestStack::provision().await;
    let mut environment = stack.environment("IngestFunction");
    environment.insert("CATALOG_TABLE".into(), "no-such-table".into());
    let ingest = Ingest::from_settings(&stack.clients, &environment).unwrap();

    let response = ingest.handle(request(event("post-records-csv.json"))).await;
    assert_eq!(response.status_code, 500);
    let body = json_body(&response);
    assert_eq!(body["error"]["code"], "internal_error");
    assert!(!body.to_string().contains("no-such-table"), "internals stay in the logs: {body}");
    assert_nothing_written(&stack, "failed catalog write").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_idempotency_key_write_once() {
    let stack = TestStack::provision().await;
    let ingest = Arc::new(handler(&stack));
    let mut event = event("post-records-csv.json");
    event["headers"]["idempotency-key"] = "order-42".into();

    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let (ingest, request) = (Arc::clone(&ingest), request(event.clone()));
            tokio::spawn(async move { ingest.handle(request).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for attempt in attempts {
        let response = attempt.await.unwrap();
        match response.status_code {
            201 => {
                ids.insert(json_body(&response)["ingest_id"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(json_body(&response)["error"]["code"], "request_in_progress"),
            other => panic!("unexpected {other}: {:?}", response.body),
        }
    }
    assert_eq!(ids.len(), 1, "every success names the same ingest");
    assert_eq!(object_keys(&stack.clients, stack.bucket("RawBucket")).await.len(), 1);

    // Once finished, a retry is a replay.
    let replay = ingest.handle(request(event)).await;
    assert_eq!(replay.status_code, 201);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert!(ids.contains(json_body(&replay)["ingest_id"].as_str().unwrap()));
}

#[tokio::test]
async fn the_datasets_with_objects_are_listed_by_name() {
    let stack = TestStack::provision().await;
    let ingest = handler(&stack);
    assert_eq!(listed(&ingest).await, serde_json::json!({"datasets": []}));
    for dataset in ["iris", "cars"] {
        let mut posted = event("post-records-csv.json");
        posted["pathParameters"]["dataset"] = dataset.into();
        assert_eq!(ingest.handle(request(posted)).await.status_code, 201);
    }
    // A second object in a dataset lists it once.
    assert_eq!(ingest.handle(request(event("post-records-csv.json"))).await.status_code, 201);
    assert_eq!(listed(&ingest).await, serde_json::json!({"datasets": [{"dataset": "cars"}, {"dataset": "iris"}]}));
}

async fn listed(ingest: &Ingest) -> Value {
    let response = ingest.handle(request(event("list-datasets.json"))).await;
    assert_eq!(response.status_code, 200, "{:?}", response.body);
    json_body(&response)
}
