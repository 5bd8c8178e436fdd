//! Ingest → ETL → training API → SageMaker job (run locally by the runner) → register →
//! model registry, end to end through the local runner.

#[path = "local_cloud.rs"]
mod local_cloud;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use sluice_cli::LocalCloud;
use sluice_localcloud::client::{HttpClient, HttpResponse};

struct Cloud {
    cloud: LocalCloud,
    client: HttpClient,
}

impl Cloud {
    async fn start() -> Self {
        Self { cloud: local_cloud::start().await, client: HttpClient::default() }
    }

    async fn send(&self, method: Method, path: &str, body: impl Into<Bytes>) -> HttpResponse {
        let url = format!("{}{path}", self.cloud.api.url());
        self.client.send(method, &url, &[("content-type", "application/json")], body).await.expect("request completes")
    }

    /// Polls `GET /models/{model}` until `done` holds (bounded: 60 s).
    async fn model_until(&self, model: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let response = self.send(Method::GET, &format!("/models/{model}"), Vec::new()).await;
            last = response.json();
            if response.status == 200 && done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("model {model} did not reach the expected state within 60 s; last answer: {last}");
    }

    async fn ingest_and_wait(&self, dataset: &str, csv: String) {
        let url = format!("{}/datasets/{dataset}/records", self.cloud.api.url());
        let created = self.client.send(Method::POST, &url, &[("content-type", "text/csv")], csv).await.unwrap().json();
        let id = created["ingest_id"].as_str().unwrap().to_owned();
        for _ in 0..300 {
            let entry = self.send(Method::GET, &format!("/datasets/{dataset}/ingests/{id}"), Vec::new()).await.json();
            if entry["status"] == "PROCESSED" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("ingest {id} was not processed");
    }
}

/// Two noisy classes, separable on x1.
fn flowers(rows: usize) -> String {
    let mut csv = String::from("x1,x2,kind\n");
    for r in 0..rows {
        let class = r % 2;
        let jitter = ((r * 7919) % 100) as f64 / 100.0 - 0.5;
        let x1 = if class == 0 { -1.5 } else { 1.5 } + jitter;
        csv.push_str(&format!("{x1:.3},{:.3},{}\n", jitter * 3.0, if class == 0 { "rose" } else { "tulip" }));
    }
    csv
}

#[tokio::test]
async fn a_training_request_becomes_an_approved_production_version() {
    let cloud = Cloud::start().await;
    cloud.ingest_and_wait("flowers", flowers(200)).await;

    let refused = [
        (json!({"dataset": "nothing", "target": "kind"}), "no processed data"),
        (json!({"dataset": "flowers", "target": "colour"}), "not a column"),
        (json!({"dataset": "flowers", "target": "kind", "hyperparameters": {"epochs": "lots"}}), "epochs"),
        (json!({"dataset": "flowers", "target": "kind", "tuning": {"max_jobs": 4}}), "tuning"),
    ];
    for (request, words) in refused {
        let response = cloud.send(Method::POST, "/models/flowers/train", request.to_string()).await;
        assert_eq!(response.status, 400, "{request}");
        let message = response.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(words), "{message:?} should mention {words:?}");
    }
    let unknown = cloud.send(Method::GET, "/models/flowers", Vec::new()).await;
    assert_eq!(unknown.status, 404, "nothing was started or registered by the refused requests");

    let request = json!({"dataset": "flowers", "target": "kind", "hyperparameters": {"epochs": "100", "seed": "3"}});
    let started = cloud.send(Method::POST, "/models/flowers/train", request.to_string()).await;
    assert_eq!(started.status, 202, "{}", String::from_utf8_lossy(&started.body));
    let job = started.json()["job_name"].as_str().unwrap().to_owned();

    let model = cloud.model_until("flowers", |m| m["production_version"].is_number()).await;
    let version = &model["versions"][0];
    assert_eq!(version["status"], "Approved", "the first version is approved: {model}");
    assert_eq!(version["production"], true);
    assert_eq!(version["training_job"], job.as_str());
    assert_eq!(version["primary_metric"], "accuracy");
    assert!(version["metrics"]["accuracy"].as_f64().unwrap() > 0.9, "{model}");
    let bundle = version["bundle"].as_str().unwrap();
    assert!(bundle.ends_with(&format!("/{job}/output/model.tar.gz")), "{bundle}");

    // The same data again cannot beat production: it waits for a person.
    let second = cloud.send(Method::POST, "/models/flowers/train", request.to_string()).await;
    assert_eq!(second.status, 202);
    let model = cloud.model_until("flowers", |m| m["versions"].as_array().is_some_and(|v| v.len() == 2)).await;
    let newest = &model["versions"][0];
    assert_eq!(newest["status"], "PendingManualApproval", "{model}");
    assert_eq!(model["production_version"], version["version"]);

    let path = format!("/models/flowers/versions/{}/approve", newest["version"]);
    let approved = cloud.send(Method::POST, &path, Vec::new()).await;
    assert_eq!(approved.status, 200, "{}", String::from_utf8_lossy(&approved.body));
    assert_eq!(approved.json()["production"], true);
    let listed = cloud.send(Method::GET, "/models", Vec::new()).await.json();
    let flowers = listed["models"].as_array().unwrap().iter().find(|m| m["model"] == "flowers").unwrap().clone();
    assert_eq!(flowers["production_version"], newest["version"]);
    assert_eq!(flowers["versions"], 2);
}
