//! The predict function fed with real API Gateway HTTP API events, against moto: the model
//! registry, the bundles in S3, the predictions table and the capture bucket.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use predict::Predict;
use serde_json::{Value, json};
use sluice_aws_ml::SageMaker;
use sluice_tests::bundle::{flower_classifier, register_flowers};
use sluice_tests::{TestStack, object_bytes, object_keys, table_items};
use sluice_trainer::network::Network;

struct Fixture {
    stack: TestStack,
    predict: Predict,
    sagemaker: SageMaker,
    group: String,
}

impl Fixture {
    async fn new(environment: &[(&str, &str)]) -> Self {
        let stack = TestStack::provision().await;
        let mut variables = stack.environment("PredictFunction");
        for (name, value) in environment {
            variables.insert((*name).to_owned(), (*value).to_owned());
        }
        let predict = Predict::from_settings(&stack.clients, &variables).unwrap();
        let group = format!("{}flowers", variables["MODEL_GROUP_PREFIX"]);
        Self { predict, sagemaker: SageMaker::new(&stack.clients), group, stack }
    }

    /// Registers `network` as a version of `flowers`, approved or waiting.
    async fn register(&self, network: &Network, approved: bool) -> String {
        register_flowers(&self.stack.clients, &self.group, self.stack.bucket("ArtifactsBucket"), network, approved)
            .await
    }

    async fn send(&self, event: Value) -> (i64, Value) {
        let request: ApiGatewayV2httpRequest = serde_json::from_value(event).expect("a real API Gateway event");
        let response = self.predict.handle(request).await;
        (response.status_code, json_body(&response))
    }
}

fn json_body(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

fn event(name: &str) -> Value {
    let path = format!("{}/tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn with_body(mut event: Value, body: &Value) -> Value {
    event["body"] = body.to_string().into();
    event
}

fn for_prediction(name: &str, id: &str) -> Value {
    let text = serde_json::to_string(&event(name)).unwrap().replace("PREDICTION_ID", id);
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn predictions_come_from_production_and_are_recorded() {
    let fixture = Fixture::new(&[]).await;
    let (status, body) = fixture.send(event("predict-rows.json")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");

    let (network, _) = flower_classifier(11);
    fixture.register(&network, true).await;
    let (status, body) = fixture.send(event("predict-rows.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["model"].as_str(), body["version"].as_i64()), (Some("flowers"), Some(1)));
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 3);
    let request_id = body["request_id"].as_str().unwrap();
    for (row, prediction) in predictions.iter().enumerate() {
        assert_eq!(prediction["prediction_id"], format!("{request_id}-{row}"));
        let probabilities = prediction["probabilities"].as_object().unwrap();
        let total: f64 = probabilities.values().map(|p| p.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{prediction}");
        let best = probabilities.iter().max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap())).unwrap();
        assert_eq!(prediction["prediction"], best.0.as_str());
    }

    let items = table_items(&fixture.stack.clients, fixture.stack.table("PredictionsTable")).await;
    assert_eq!(items.len(), 1, "one item per request");
    let keys = object_keys(&fixture.stack.clients, fixture.stack.bucket("CaptureBucket")).await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("predictions/flowers/date=") && keys[0].contains("/hour="), "{keys:?}");
    let (capture, _) = object_bytes(&fixture.stack.clients, fixture.stack.bucket("CaptureBucket"), &keys[0]).await;
    let lines: Vec<Value> =
        String::from_utf8(capture).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["input"], json!({"petal": 1.1, "colour": "blue", "kind": "iris"}));
    assert_eq!(lines[1]["output"]["prediction"], predictions[1]["prediction"]);
    assert_eq!((lines[0]["version"].as_i64(), lines[0]["model"].as_str()), (Some(1), Some("flowers")));
}

#[tokio::test]
async fn bad_requests_are_refused_by_row_and_field_and_not_recorded() {
    let fixture = Fixture::new(&[("MAX_ROWS", "2")]).await;
    let (network, _) = flower_classifier(5);
    fixture.register(&network, true).await;
    let base = event("predict-rows.json");
    let cases = [
        (
            json!({"rows": [{"petal": 1.0, "colour": "red"}, {"colour": "red"}]}),
            400,
            "row 1: column \"petal\" is missing",
        ),
        (json!({"rows": [{"petal": "tall", "colour": "red"}]}), 400, "column \"petal\" must be a number"),
        (json!({"rows": [{"petal": 1.0, "colour": "red", "stem": 1}]}), 400, "unknown column \"stem\""),
        (json!({"rows": [{}, {}, {}]}), 413, "3 rows in one request; the limit is 2"),
        (json!({"rows": []}), 400, "\"rows\" is empty"),
        (json!([1, 2]), 400, "the body must be {\"rows\""),
    ];
    for (body, status, words) in cases {
        let (got, answer) = fixture.send(with_body(base.clone(), &body)).await;
        assert_eq!(got, status, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message:?} should mention {words:?}");
    }
    let mut csv = base.clone();
    csv["headers"]["content-type"] = "text/csv".into();
    assert_eq!(fixture.send(csv).await.0, 415);
    let mut unknown = with_body(base.clone(), &json!({"rows": [{"petal": 1.0, "colour": "red"}]}));
    unknown["pathParameters"]["model"] = "roses".into();
    assert_eq!(fixture.send(unknown).await.0, 404);

    assert!(table_items(&fixture.stack.clients, fixture.stack.table("PredictionsTable")).await.is_empty());
    assert!(object_keys(&fixture.stack.clients, fixture.stack.bucket("CaptureBucket")).await.is_empty());
}

#[tokio::test]
async fn a_newly_approved_version_is_served_without_a_redeploy() {
    let fixture = Fixture::new(&[("MODEL_REFRESH_SECONDS", "0")]).await;
    let (first, _) = flower_classifier(1);
    fixture.register(&first, true).await;
    let (_, body) = fixture.send(event("predict-rows.json")).await;
    assert_eq!(body["version"], 1);

    let (second, _) = flower_classifier(2);
    let arn = fixture.register(&second, false).await;
    let (_, body) = fixture.send(event("predict-rows.json")).await;
    assert_eq!(body["version"], 1, "a version waiting for approval is not served");
    fixture.sagemaker.set_approval(&arn, true).await.unwrap();
    let (_, body) = fixture.send(event("predict-rows.json")).await;
    assert_eq!(body["version"], 2, "{body}");
}

#[tokio::test]
async fn feedback_is_stored_beside_its_prediction() {
    let fixture = Fixture::new(&[]).await;
    let (network, _) = flower_classifier(3);
    fixture.register(&network, true).await;
    let (_, body) = fixture.send(event("predict-rows.json")).await;
    let id = body["predictions"][1]["prediction_id"].as_str().unwrap().to_owned();

    for unknown in ["0192f5c47d3e7a109c1b5e2f8a9d0c11-0", &format!("{}-9", &id[..32]), "nonsense"] {
        let (status, answer) = fixture.send(for_prediction("feedback.json", unknown)).await;
        assert_eq!(status, 404, "{unknown}: {answer}");
    }
    let refused = with_body(for_prediction("feedback.json", &id), &json!({"truth": {"a": 1}}));
    assert_eq!(fixture.send(refused).await.0, 400);

    let (status, answer) = fixture.send(for_prediction("feedback.json", &id)).await;
    assert_eq!(status, 201, "{answer}");
    let (status, stored) = fixture.send(for_prediction("get-prediction.json", &id)).await;
    assert_eq!(status, 200);
    assert_eq!(stored["feedback"], "rose");
    assert_eq!(stored["input"], json!({"petal": 1.1, "colour": "blue", "kind": "iris"}));
    assert_eq!(stored["output"]["prediction"], body["predictions"][1]["prediction"]);

    let keys = object_keys(&fixture.stack.clients, fixture.stack.bucket("CaptureBucket")).await;
    let feedback: Vec<&String> = keys.iter().filter(|k| k.starts_with("feedback/flowers/")).collect();
    assert_eq!(feedback.len(), 1, "{keys:?}");
    let (bytes, _) = object_bytes(&fixture.stack.clients, fixture.stack.bucket("CaptureBucket"), feedback[0]).await;
    let line: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((line["prediction_id"].as_str(), line["truth"].as_str()), (Some(id.as_str()), Some("rose")));
}
