//! The predict function fed with real API Gateway HTTP API events, against moto: the
//! catalog's production record, the bundles in S3, the predictions table and the capture
//! stream.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use predict::Predict;
use serde_json::{Value, json};
use sluice_aws::Catalog;
use sluice_core::ModelName;
use sluice_core::capture::{CandidateRoute, CaptureRecord, CapturedPrediction};
use sluice_model::registry::Approval;
use sluice_model::rollout::{Guards, Rollout, RolloutPolicy, RolloutStatus};
use sluice_tests::bundle::{flower_classifier, register_flowers, registry};
use sluice_tests::{TestStack, captured, table_items};
use sluice_trainer::network::Network;
use time::OffsetDateTime;

struct Fixture {
    stack: TestStack,
    predict: Predict,
}

impl Fixture {
    async fn new(environment: &[(&str, &str)]) -> Self {
        let stack = TestStack::provision().await;
        let mut variables = stack.environment("PredictFunction");
        for (name, value) in environment {
            variables.insert((*name).to_owned(), (*value).to_owned());
        }
        let predict = Predict::from_settings(&stack.clients, &variables).unwrap();
        Self { predict, stack }
    }

    /// Registers `network` as a version of `flowers`, approved or waiting; its number.
    async fn register(&self, network: &Network, approved: bool) -> i64 {
        register_flowers(&self.stack.clients, &self.stack.stack, network, approved).await.version
    }

    async fn captured(&self) -> Vec<CaptureRecord> {
        captured(&self.stack.clients, self.stack.bucket("CaptureBucket")).await
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
    let lines: Vec<_> = fixture
        .captured()
        .await
        .into_iter()
        .map(|record| match record {
            CaptureRecord::Prediction(prediction) => prediction,
            other => panic!("a prediction: {other:?}"),
        })
        .collect();
    assert_eq!(lines.len(), 3, "one capture line per row");
    assert_eq!(lines[1].input, json!({"petal": 1.1, "colour": "blue", "kind": "iris"}));
    assert_eq!(lines[1].output["prediction"], predictions[1]["prediction"]);
    assert_eq!(lines[1].prediction_id, predictions[1]["prediction_id"].as_str().unwrap());
    assert_eq!((lines[0].version, lines[0].model.as_str()), (1, "flowers"));
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
    assert!(fixture.captured().await.is_empty());
}

#[tokio::test]
async fn a_newly_approved_version_is_served_without_a_redeploy() {
    let fixture = Fixture::new(&[("MODEL_REFRESH_SECONDS", "0")]).await;
    let (first, _) = flower_classifier(1);
    fixture.register(&first, true).await;
    let (_, body) = fixture.send(event("predict-rows.json")).await;
    assert_eq!(body["version"], 1);

    let (second, _) = flower_classifier(2);
    let version = fixture.register(&second, false).await;
    let (_, body) = fixture.send(event("predict-rows.json")).await;
    assert_eq!(body["version"], 1, "a version waiting for approval is not served");
    let registry = registry(&fixture.stack.clients, &fixture.stack.stack);
    let flowers = ModelName::parse("flowers").unwrap();
    registry.set_approval(&flowers, version, Approval::Approved).await.unwrap();
    registry.publish_production(&flowers).await.unwrap();
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

    let feedback: Vec<_> = fixture
        .captured()
        .await
        .into_iter()
        .filter_map(|record| match record {
            CaptureRecord::Feedback(feedback) => Some(feedback),
            CaptureRecord::Prediction(_) => None,
        })
        .collect();
    assert_eq!(feedback.len(), 1, "{feedback:?}");
    assert_eq!((feedback[0].prediction_id.as_str(), &feedback[0].truth), (id.as_str(), &json!("rose")));
    assert_eq!(feedback[0].output.as_ref().unwrap()["prediction"], body["predictions"][1]["prediction"]);
}

#[tokio::test]
async fn the_production_versions_inputs_describe_a_request_row() {
    let fixture = Fixture::new(&[]).await;
    let (status, body) = fixture.send(event("get-inputs.json")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");

    let (network, _) = flower_classifier(11);
    fixture.register(&network, true).await;
    let (status, body) = fixture.send(event("get-inputs.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "model": "flowers", "version": 1, "task": "classification", "target": "kind",
            "class_labels": ["iris", "rose", "tulip"],
            "inputs": [
                {"kind": "number", "name": "petal", "mean": 2.0},
                {"kind": "category", "name": "colour", "categories": ["blue", "red"]}
            ]
        })
    );
    // Nothing is predicted or recorded by describing the inputs.
    assert!(table_items(&fixture.stack.clients, fixture.stack.table("PredictionsTable")).await.is_empty());
}

impl Fixture {
    /// Records a running rollout of `candidate` against version 1 with `policy` (as
    /// `sluice_aws_ml::Rollouts` does), aborting the one running.
    async fn roll_out(&self, candidate: i64, bundle: &str, policy: RolloutPolicy) {
        let rollout = Rollout {
            candidate,
            bundle: bundle.to_owned(),
            production: 1,
            policy,
            guards: Guards::default(),
            started_at: OffsetDateTime::now_utc(),
            started_by: "test".into(),
            status: RolloutStatus::Running,
            ended_at: None,
            reason: None,
            figures: None,
            applied: false,
        };
        let catalog = Catalog::new(self.stack.clients.dynamodb.clone(), self.stack.table("CatalogTable"));
        let document = serde_json::to_string(&rollout).unwrap();
        if let Some(running) = catalog.rollout_document("flowers").await.unwrap() {
            // The one running ends (aborted), so this one can start.
            let running: Rollout = serde_json::from_str(&running).unwrap();
            let ended = Rollout { status: RolloutStatus::Aborted, ..running.clone() };
            let ended = serde_json::to_string(&ended).unwrap();
            catalog.update_rollout("flowers", running.candidate, "running", "aborted", &ended).await.unwrap();
        }
        assert!(catalog.start_rollout("flowers", candidate, &document).await.unwrap());
    }

    /// The capture lines of one answered request.
    async fn lines_of(&self, request_id: &str) -> Vec<CapturedPrediction> {
        let lines = self.captured().await.into_iter().filter_map(|record| match record {
            CaptureRecord::Prediction(line) if line.prediction_id.starts_with(request_id) => Some(line),
            _ => None,
        });
        lines.collect()
    }
}

/// The answers without their prediction ids, to compare two requests.
fn answers(body: &Value) -> Vec<Value> {
    let mut predictions = body["predictions"].as_array().unwrap().clone();
    for prediction in &mut predictions {
        prediction.as_object_mut().unwrap().remove("prediction_id");
    }
    predictions
}

#[tokio::test]
async fn during_a_rollout_the_candidate_shadows_or_answers_and_never_breaks_a_request() {
    let fixture = Fixture::new(&[("MODEL_REFRESH_SECONDS", "0")]).await;
    fixture.register(&flower_classifier(1).0, true).await;
    let candidate =
        register_flowers(&fixture.stack.clients, &fixture.stack.stack, &flower_classifier(2).0, false).await;
    let bundle = candidate.bundle_uri.clone().unwrap();
    let (_, alone) = fixture.send(event("predict-rows.json")).await;

    // Shadow: production's answer, unchanged; the candidate's beside it in the capture.
    fixture.roll_out(candidate.version, &bundle, RolloutPolicy::Shadow { fraction: 1.0 }).await;
    let (status, shadowed) = fixture.send(event("predict-rows.json")).await;
    assert_eq!((status, shadowed["version"].as_i64()), (200, Some(1)), "{shadowed}");
    assert_eq!(answers(&shadowed), answers(&alone), "a shadow never changes the answer");
    let lines = fixture.lines_of(shadowed["request_id"].as_str().unwrap()).await;
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let run = line.rollout.as_ref().expect("the candidate's run is recorded");
        assert_eq!((run.candidate, run.route, &run.error), (2, CandidateRoute::Shadow, &None));
        assert!(run.output.as_ref().unwrap()["probabilities"].is_object(), "{run:?}");
    }

    // Canary over every caller: the candidate answers, and says so.
    fixture.roll_out(candidate.version, &bundle, RolloutPolicy::Canary { fraction: 1.0 }).await;
    let (status, canary) = fixture.send(event("predict-rows.json")).await;
    assert_eq!((status, canary["version"].as_i64()), (200, Some(2)), "{canary}");

    // A candidate (another version: a version's bundle never changes, and serving keeps a
    // loaded one) whose bundle is gone: production answers both ways, the failure is the
    // candidate's.
    let broken = register_flowers(&fixture.stack.clients, &fixture.stack.stack, &flower_classifier(3).0, false).await;
    for policy in [RolloutPolicy::Canary { fraction: 1.0 }, RolloutPolicy::Shadow { fraction: 1.0 }] {
        fixture.roll_out(broken.version, "s3://no-such-bucket/model.tar.gz", policy).await;
        let (status, body) = fixture.send(event("predict-rows.json")).await;
        assert_eq!((status, body["version"].as_i64()), (200, Some(1)), "{policy:?}: {body}");
        assert_eq!(answers(&body), answers(&alone));
        let lines = fixture.lines_of(body["request_id"].as_str().unwrap()).await;
        let run = lines[0].rollout.as_ref().unwrap();
        assert!(run.error.as_deref().unwrap().contains("no-such-bucket"), "{run:?}");
    }
}
