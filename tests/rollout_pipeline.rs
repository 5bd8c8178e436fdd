//! Safe rollout end to end through the local cloud on an accelerated clock: a candidate
//! that answers like production is shadowed and promoted by the monitor's checks; a broken
//! one (the same network with its class labels rotated, so every label it answers is
//! wrong) is shadowed, rolled back and rejected, and production never changes answers.

use crate::local_cloud;

use std::time::Duration;

use serde_json::{Value, json};
use sluice_cli::LocalCloud;
use sluice_localcloud::client::HttpClient;
use sluice_model::Task;
use sluice_tests::bundle::{flower_bundle, flower_classifier, flower_manifest, register_bundle};

/// Not `flowers`, the other tests' model: moto's GetMetricData drops the namespace filter
/// when a query has dimensions, so this test's hundreds of predictions under the same
/// model name would count in a concurrent test's metrics of another stack.
const MODEL: &str = "blooms";

struct Api {
    client: HttpClient,
    url: String,
}

impl Api {
    fn new(cloud: &LocalCloud) -> Self {
        Self { client: HttpClient::default(), url: cloud.api.url() }
    }

    async fn call(&self, method: http::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = self.client.send(method, &url, &[("content-type", "application/json")], body).await.unwrap();
        (response.status.as_u16(), response.json())
    }

    async fn predict(&self, petal: f64) -> Value {
        let rows = json!({"rows": [{"petal": petal, "colour": if petal > 2.0 { "red" } else { "blue" }}]});
        let (status, body) = self.call(http::Method::POST, &format!("/models/{MODEL}/predict"), Some(rows)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Sends predictions until the rollout has ended and all its ending did is done (the
    /// monitor checks it on its schedule); bounded: 3 minutes.
    async fn until_rollout_ends(&self, candidate: i64) -> Value {
        for i in 0..1800 {
            let (_, before) = self.call(http::Method::GET, &format!("/models/{MODEL}/rollouts"), None).await;
            let answer = self.predict(1.0 + f64::from(i % 30) / 10.0).await;
            let (_, body) = self.call(http::Method::GET, &format!("/models/{MODEL}/rollouts"), None).await;
            if body["rollout"]["status"] == "running" && before["rollout"]["status"] == "running" {
                assert_ne!(answer["version"], candidate, "a shadowed candidate never answers: {answer}");
            }
            if body["rollout"]["applied"] == true {
                return body["rollout"].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the rollout of version {candidate} did not end within 3 minutes");
    }
}

#[tokio::test]
async fn a_good_candidate_is_promoted_from_shadow_and_a_broken_one_rolled_back() {
    // Latency in a debug build beside moto is not what this test judges: its guard is
    // opened wide (the rule itself has unit tests).
    let guards = r#"{"min_requests": 30, "min_duration_seconds": 5, "max_latency_ratio": 1000}"#;
    let parameters = [("RolloutMode", "shadow"), ("RolloutGuards", guards), ("ModelRefreshSeconds", "1")];
    let cloud = local_cloud::start_with(&parameters, 120.0).await;
    let api = Api::new(&cloud);
    let (network, _) = flower_classifier(3);
    let labels = ["iris", "rose", "tulip"];
    let manifest = flower_manifest(MODEL, Task::Classification, &labels, "probabilities");
    let bundle = flower_bundle(&network, &manifest);
    register_bundle(&cloud.clients, &cloud.stack, &bundle, true).await;
    // Version 2: the same weights, so it agrees with production on every row.
    let good = register_bundle(&cloud.clients, &cloud.stack, &bundle, false).await;

    let (status, body) =
        api.call(http::Method::POST, &format!("/models/{MODEL}/rollouts"), Some(json!({"version": 9}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = api
        .call(http::Method::POST, &format!("/models/{MODEL}/rollouts"), Some(json!({"version": good.version})))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rollout"]["policy"], json!({"mode": "shadow", "fraction": 1.0}), "the stack's default");
    let (status, body) =
        api.call(http::Method::POST, &format!("/models/{MODEL}/rollouts"), Some(json!({"version": 1}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "one rollout at a time: {body}");

    let promoted = api.until_rollout_ends(good.version).await;
    assert_eq!(promoted["status"], "promoted", "{promoted}");
    let candidate = &promoted["figures"]["candidate"];
    assert!(
        candidate["compared"].as_u64().unwrap() >= 30 && candidate["agreed"] == candidate["compared"],
        "{promoted}"
    );
    let (_, model) = api.call(http::Method::GET, &format!("/models/{MODEL}"), None).await;
    assert_eq!(model["production_version"], good.version, "{model}");

    // Version 3: version 2's network with its labels rotated — quick, confident and wrong.
    let rotated = flower_manifest(MODEL, Task::Classification, &["rose", "tulip", "iris"], "probabilities");
    assert_eq!(manifest.class_labels, labels);
    let broken = register_bundle(&cloud.clients, &cloud.stack, &flower_bundle(&network, &rotated), false).await;
    let (status, body) = api
        .call(http::Method::POST, &format!("/models/{MODEL}/rollouts"), Some(json!({"version": broken.version})))
        .await;
    assert_eq!(status, 201, "{body}");
    let rolled_back = api.until_rollout_ends(broken.version).await;
    assert_eq!(rolled_back["status"], "rolled_back", "{rolled_back}");
    assert!(rolled_back["reason"].as_str().unwrap().contains("agrees with production on 0.0000"), "{rolled_back}");

    let (_, model) = api.call(http::Method::GET, &format!("/models/{MODEL}"), None).await;
    assert_eq!(model["production_version"], good.version, "production stayed: {model}");
    let versions = model["versions"].as_array().unwrap();
    let status_of = |version: i64| versions.iter().find(|v| v["version"] == version).unwrap()["status"].clone();
    assert_eq!(status_of(broken.version), "Rejected");
    assert_eq!(status_of(good.version), "Approved");

    let (_, events) = api.call(http::Method::GET, &format!("/models/{MODEL}/events"), None).await;
    let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    let order = ["rollout_started", "rollout_promoted", "promoted", "rollout_started", "rolled_back"];
    let mut position = 0;
    for kind in &kinds {
        if position < order.len() && *kind == order[position] {
            position += 1;
        }
    }
    assert_eq!(position, order.len(), "the rollouts happened in order: {kinds:?}");
    let (status, _) = api.call(http::Method::POST, &format!("/models/{MODEL}/rollouts/promote"), None).await;
    assert_eq!(status, 409, "the rollout ended another way");
}
