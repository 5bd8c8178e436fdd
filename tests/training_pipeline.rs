//! Ingest → ETL → training API → SageMaker job (run locally by the runner) → register →
//! model registry, end to end through the local runner.

use crate::local_cloud;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use sluice_cli::LocalCloud;
use sluice_localcloud::client::{HttpClient, HttpResponse};
use sluice_model::{Bundle, BundleLimits, Contents, Metrics};

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

    /// `metrics.json` from a bundle in the artifacts bucket.
    async fn bundle_metrics(&self, key: &str) -> Metrics {
        let bucket = self.cloud.resource_name("ArtifactsBucket").unwrap();
        let object = self.cloud.clients.s3.get_object().bucket(bucket).key(key).send().await.unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        let bundle = Bundle::from_tar_gz(&bytes, BundleLimits::for_memory(1 << 30), Contents::WithoutModel).unwrap();
        bundle.metrics.expect("the bundle has metrics.json")
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

/// Two instances train one model: each gets whole objects of the dataset (three ingests,
/// three objects), the hosts run as two trainer processes on loopback, and the first host's
/// bundle counts every host's training rows.
#[tokio::test]
async fn a_multi_instance_job_trains_one_model_on_every_hosts_shard() {
    let cloud = Cloud::start().await;
    for rows in [100, 110, 120] {
        cloud.ingest_and_wait("petals", flowers(rows)).await;
    }
    let request = json!({"dataset": "petals", "target": "kind", "algorithm": "linear", "instance_count": 2});
    let started = cloud.send(Method::POST, "/models/petals/train", request.to_string()).await;
    assert_eq!(started.status, 202, "{}", String::from_utf8_lossy(&started.body));
    let job = started.json()["job_name"].as_str().unwrap().to_owned();
    let sagemaker = aws_sdk_sagemaker::Client::new(&cloud.cloud.clients.config);
    let described = sagemaker.describe_training_job().training_job_name(&job).send().await.unwrap();
    assert_eq!(described.resource_config().and_then(|r| r.instance_count()), Some(2));
    assert_eq!(described.enable_inter_container_traffic_encryption(), Some(true));
    let train = described.input_data_config().iter().find(|c| c.channel_name() == Some("train")).unwrap();
    let distribution = train.data_source().and_then(|d| d.s3_data_source()).and_then(|s| s.s3_data_distribution_type());
    assert_eq!(distribution, Some(&aws_sdk_sagemaker::types::S3DataDistribution::ShardedByS3Key));

    let model = cloud.model_until("petals", |m| m["production_version"].is_number()).await;
    let version = &model["versions"][0];
    assert!(version["metrics"]["accuracy"].as_f64().unwrap() > 0.9, "{model}");
    let bucket = cloud.cloud.resource_name("ArtifactsBucket").unwrap();
    let key = version["bundle"].as_str().unwrap().strip_prefix(&format!("s3://{bucket}/")).unwrap();
    let rows = cloud.bundle_metrics(key).await.rows.expect("row counts");
    // `flowers` repeats itself every 100 rows and the ETL drops repeated rows: 100 rows per
    // object. The first host (objects 1 and 3) holds out a fifth of its 200 rows; the second
    // trains on all of its 100.
    assert_eq!((rows.train, rows.validation), (260, 40), "{rows:?}");
}

#[tokio::test]
async fn a_training_request_becomes_an_approved_production_version() {
    let cloud = Cloud::start().await;
    cloud.ingest_and_wait("flowers", flowers(200)).await;

    let refused = [
        (json!({"dataset": "nothing", "target": "kind"}), "no processed data"),
        (json!({"dataset": "flowers", "target": "colour"}), "not a column"),
        (json!({"dataset": "flowers", "target": "kind", "hyperparameters": {"epochs": "lots"}}), "epochs"),
        (
            json!({"dataset": "flowers", "target": "kind", "task": "classification", "tuning": {"ranges": {"l2": {"min": 1, "max": 0.1}}}}),
            "min 1 is greater than max 0.1",
        ),
        (
            json!({"dataset": "flowers", "target": "kind", "tuning": {"objective": "speed", "ranges": {"l2": {"min": 0, "max": 1}}}}),
            "validation:speed",
        ),
        (json!({"dataset": "flowers", "target": "kind", "algorithm": "gbt", "instance_count": 2}), "one instance"),
        (
            json!({"dataset": "flowers", "target": "kind", "task": "classification", "instance_count": 2,
                   "tuning": {"ranges": {"algorithm": {"values": ["linear", "gbt"]}}}}),
            "tuning range of algorithm",
        ),
        (json!({"dataset": "flowers", "target": "kind", "instance_count": 0}), "at least 1"),
    ];
    for (request, words) in refused {
        let response = cloud.send(Method::POST, "/models/flowers/train", request.to_string()).await;
        assert_eq!(response.status, 400, "{request}");
        let message = response.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(words), "{message:?} should mention {words:?}");
    }
    // Cost guards: an instance type outside the stack's allow-list, more trials than its budget.
    let over_limit = [
        (json!({"dataset": "flowers", "target": "kind", "instance_type": "ml.p4d.24xlarge"}), "ml.p4d.24xlarge"),
        (
            json!({"dataset": "flowers", "target": "kind", "task": "classification",
                   "tuning": {"max_jobs": 100, "ranges": {"l2": {"min": 0, "max": 1}}}}),
            "MaxTuningJobs",
        ),
        (json!({"dataset": "flowers", "target": "kind", "instance_count": 9}), "MaxTrainingInstances"),
    ];
    for (request, words) in over_limit {
        let response = cloud.send(Method::POST, "/models/flowers/train", request.to_string()).await;
        assert_eq!(response.status, 400, "{request}");
        let error = &response.json()["error"];
        assert_eq!(error["code"], "over_limit", "{error}");
        assert!(error["message"].as_str().unwrap_or_default().contains(words), "{error} should mention {words:?}");
    }
    let unknown = cloud.send(Method::GET, "/models/flowers", Vec::new()).await;
    assert_eq!(unknown.status, 404, "nothing was started or registered by the refused requests");

    let request = json!({
        "dataset": "flowers",
        "target": "kind",
        "hyperparameters": {"epochs": "100", "seed": "3"},
        "retrain_every_days": 7,
    });
    let started = cloud.send(Method::POST, "/models/flowers/train", request.to_string()).await;
    assert_eq!(started.status, 202, "{}", String::from_utf8_lossy(&started.body));
    let job = started.json()["job_name"].as_str().unwrap().to_owned();
    // The container has no network, and the job names its stack (the register rule's filter).
    let sagemaker = aws_sdk_sagemaker::Client::new(&cloud.cloud.clients.config);
    let described = sagemaker.describe_training_job().training_job_name(&job).send().await.unwrap();
    assert_eq!(described.enable_network_isolation(), Some(true));
    let stack = described.hyper_parameters().and_then(|h| h.get(sluice_model::hyperparameters::STACK)).cloned();
    assert_eq!(stack.as_deref(), Some(cloud.cloud.stack.name.as_str()));

    let model = cloud.model_until("flowers", |m| m["production_version"].is_number()).await;
    let version = &model["versions"][0];
    assert_eq!(version["status"], "Approved", "the first version is approved: {model}");
    assert_eq!(version["production"], true);
    assert_eq!(version["training_job"], job.as_str());
    assert_eq!(version["primary_metric"], "accuracy");
    assert!(version["metrics"]["accuracy"].as_f64().unwrap() > 0.9, "{model}");
    let bundle = version["bundle"].as_str().unwrap();
    assert!(bundle.ends_with(&format!("/{job}/output/model.tar.gz")), "{bundle}");

    // The production version serves: a clear rose and a clear tulip, and a bad row refused.
    let rows = json!({"rows": [{"x1": -1.6, "x2": 0.1}, {"x1": 1.7, "x2": -0.2}]});
    let predicted = cloud.send(Method::POST, "/models/flowers/predict", rows.to_string()).await;
    assert_eq!(predicted.status, 200, "{}", String::from_utf8_lossy(&predicted.body));
    let predicted = predicted.json();
    assert_eq!(predicted["version"], version["version"]);
    assert_eq!(predicted["predictions"][0]["prediction"], "rose", "{predicted}");
    assert_eq!(predicted["predictions"][1]["prediction"], "tulip", "{predicted}");
    let bad = cloud.send(Method::POST, "/models/flowers/predict", json!({"rows": [{"x1": 1}]}).to_string()).await;
    assert_eq!(bad.status, 400);
    let id = predicted["predictions"][0]["prediction_id"].as_str().unwrap();
    let feedback =
        cloud.send(Method::POST, &format!("/predictions/{id}/feedback"), json!({"truth": "rose"}).to_string()).await;
    assert_eq!(feedback.status, 201, "{}", String::from_utf8_lossy(&feedback.body));

    // What predict published comes back from CloudWatch as the model's serving metrics.
    let series = |metrics: &Value, metric: &str, stat: &str| -> Option<f64> {
        let mut found = metrics["series"].as_array()?.iter().filter(|s| s["metric"] == metric && s["stat"] == stat);
        let first = found.next()?;
        assert!(found.next().is_none(), "one series of {metric} {stat} per version: {metrics}");
        Some(first["points"].as_array()?.iter().filter_map(|p| p[1].as_f64()).sum())
    };
    let mut metrics = Value::Null;
    for _ in 0..100 {
        metrics = cloud.send(Method::GET, "/models/flowers/metrics?hours=1", Vec::new()).await.json();
        if series(&metrics, "Requests", "Sum").is_some_and(|requests| requests >= 1.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(metrics["period_seconds"], 60, "{metrics}");
    // At least the answered request (a refused one is the caller's, not counted): a CI run
    // under load once counted it twice, in Requests and ServerErrors alike, as a retried
    // PutMetricData would (metrics are at-least-once, like everything else here).
    let requests = series(&metrics, "Requests", "Sum").unwrap_or_default();
    assert!(requests >= 1.0, "{metrics}");
    assert!(series(&metrics, "InferenceLatency", "Average").is_some_and(|ms| ms > 0.0), "{metrics}");
    assert_eq!(series(&metrics, "ServerErrors", "Sum"), Some(0.0), "{metrics}");
    assert_eq!(series(&metrics, "ServerErrors", "SampleCount"), Some(requests), "every answered request: {metrics}");
    let refused = cloud.send(Method::GET, "/models/flowers/metrics?hours=999", Vec::new()).await;
    assert_eq!(refused.status, 400);

    // The same data again cannot beat production: it waits for a person.
    let second = cloud.send(Method::POST, "/models/flowers/train", request.to_string()).await;
    assert_eq!(second.status, 202);
    let model = cloud.model_until("flowers", |m| m["versions"].as_array().is_some_and(|v| v.len() == 2)).await;
    let newest = &model["versions"][0];
    assert_eq!(newest["status"], "PendingManualApproval", "{model}");
    assert_eq!(model["production_version"], version["version"]);
    // The trainer scored production on the candidate's own validation rows; the gate
    // compared the two there.
    assert!(newest["gate_reason"].as_str().unwrap().contains("does not beat production"), "{newest}");
    let bucket = cloud.cloud.resource_name("ArtifactsBucket").unwrap();
    let newest_bundle = newest["bundle"].as_str().unwrap().strip_prefix(&format!("s3://{bucket}/")).unwrap();
    let scored = cloud.bundle_metrics(newest_bundle).await.production.expect("production was scored");
    assert_eq!(scored.version, version["version"].as_i64().unwrap());
    assert_eq!(scored.error, None);
    assert!(scored.validation["accuracy"] > 0.9, "{scored:?}");

    let path = format!("/models/flowers/versions/{}/approve", newest["version"]);
    let approved = cloud.send(Method::POST, &path, Vec::new()).await;
    assert_eq!(approved.status, 200, "{}", String::from_utf8_lossy(&approved.body));
    assert_eq!(approved.json()["production"], true);
    // A decision changes the approval only: the version's metrics and provenance stay.
    for field in ["metrics", "primary_metric", "training_job", "dataset", "trained_at", "gate_reason"] {
        assert!(!newest[field].is_null(), "{field}: {newest}");
        assert_eq!(approved.json()[field], newest[field], "{field}");
    }
    let listed = cloud.send(Method::GET, "/models", Vec::new()).await.json();
    let flowers = listed["models"].as_array().unwrap().iter().find(|m| m["model"] == "flowers").unwrap().clone();
    assert_eq!(flowers["production_version"], newest["version"]);
    assert_eq!(flowers["versions"], 2);

    // Every step is on the model's timeline.
    let events = cloud.send(Method::GET, "/models/flowers/events", Vec::new()).await.json();
    let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["training_started", "trained", "registered", "promoted", "decided"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert_eq!(kinds.iter().filter(|k| **k == "promoted").count(), 2, "v1, then v2 approved by hand: {kinds:?}");

    // A bundle trained elsewhere comes in through the import route: checked by loading it,
    // stored, and left for a person to approve.
    let key = bundle.strip_prefix(&format!("s3://{bucket}/")).unwrap();
    let object = cloud.cloud.clients.s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    let trained = object.body.collect().await.unwrap().into_bytes();
    let cloud = &cloud;
    let import = |body: Bytes, model: &str| {
        let url = format!("{}/models/{model}/versions", cloud.cloud.api.url());
        async move { cloud.client.send(Method::POST, &url, &[("content-type", "application/gzip")], body).await.unwrap() }
    };
    for (body, model, status, words) in [
        (Bytes::from_static(b"not a bundle"), "flowers", 400, "not a readable tar.gz"),
        (trained.clone(), "roses", 400, "the manifest is for model \"flowers\", not roses"),
    ] {
        let response = import(body, model).await;
        assert_eq!(response.status, status);
        let message = response.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(words), "{message:?} should mention {words:?}");
    }
    let imported = import(trained, "flowers").await;
    assert_eq!(imported.status, 201, "{}", String::from_utf8_lossy(&imported.body));
    let imported = imported.json();
    assert_eq!(
        (imported["status"].as_str(), imported["source"].as_str()),
        (Some("PendingManualApproval"), Some("import"))
    );
    assert_eq!(imported["version"], 3);
    assert!(imported["bundle"].as_str().unwrap().contains("/imports/flowers/"), "{imported}");
    assert!(imported["metrics"]["accuracy"].as_f64().is_some(), "{imported}");

    // The daily schedule retrains the model once its seven days are up, and not before.
    let environment =
        &cloud.cloud.stack.functions.iter().find(|f| f.logical_id == "ModelsFunction").unwrap().environment;
    let models = models::Models::from_settings(&cloud.cloud.clients, environment).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let early = models.retrain_due(now + time::Duration::days(6)).await.unwrap();
    assert_eq!(early["started"].as_array().map(Vec::len), Some(0), "{early}");
    let due = models.retrain_due(now + time::Duration::days(8)).await.unwrap();
    assert_eq!(due["started"][0]["model"], "flowers", "{due}");
    let retrained = due["started"][0]["job_name"].as_str().unwrap().to_owned();
    cloud.model_until("flowers", |m| m["versions"][0]["training_job"] == retrained.as_str()).await;
    let again = models.retrain_due(now + time::Duration::days(9)).await.unwrap();
    assert_eq!(again["started"].as_array().map(Vec::len), Some(0), "the plan restarts its clock: {again}");
}

#[tokio::test]
async fn a_failed_training_job_is_visible_through_the_api_with_the_trainers_reason() {
    let cloud = Cloud::start().await;
    cloud.ingest_and_wait("petals", flowers(40)).await;
    // Valid to the API, impossible for the trainer: the target is text.
    let request = json!({"dataset": "petals", "target": "kind", "task": "regression"});
    let started = cloud.send(Method::POST, "/models/petals/train", request.to_string()).await;
    assert_eq!(started.status, 202, "{}", String::from_utf8_lossy(&started.body));
    let model = cloud
        .model_until("petals", |m| {
            m["recent_events"].as_array().is_some_and(|events| events.iter().any(|e| e["kind"] == "training_failed"))
        })
        .await;
    assert_eq!(model["versions"], json!([]), "{model}");
    let failure = model["recent_events"].as_array().unwrap().iter().find(|e| e["kind"] == "training_failed").unwrap();
    assert!(
        failure["message"].as_str().unwrap().contains("regression needs a numeric target"),
        "the trainer's own reason: {failure}"
    );
}

#[tokio::test]
async fn a_tuning_job_runs_its_trials_and_registers_the_best() {
    let cloud = Cloud::start().await;
    cloud.ingest_and_wait("tulips", flowers(120)).await;

    let request = json!({
        "dataset": "tulips",
        "target": "kind",
        "hyperparameters": {"epochs": "60"},
        "tuning": {
            "objective": "validation:log_loss",
            "max_jobs": 3,
            "parallel_jobs": 2,
            "ranges": {"learning_rate": {"min": 0.001, "max": 0.3, "scaling": "logarithmic"}, "algorithm": {"values": ["linear", "mlp"]}},
        },
    });
    let started = cloud.send(Method::POST, "/models/tulips/train", request.to_string()).await;
    assert_eq!(started.status, 202, "{}", String::from_utf8_lossy(&started.body));
    let started = started.json();
    assert_eq!((started["kind"].as_str(), started["objective"]["maximize"].as_bool()), (Some("tuning"), Some(false)));
    let tuning = started["job_name"].as_str().unwrap().to_owned();
    assert!(tuning.len() <= 32, "{tuning}");

    let model = cloud.model_until("tulips", |m| m["production_version"].is_number()).await;
    let versions = model["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "only the best trial is registered: {model}");
    let version = &versions[0];
    assert_eq!(version["tuning_job"], tuning.as_str());
    let best = version["training_job"].as_str().unwrap();
    assert!(best.starts_with(&format!("{tuning}-")), "{best} is one of the trials");
    let sagemaker = aws_sdk_sagemaker::Client::new(&cloud.cloud.clients.config);
    let trials = sagemaker.list_training_jobs().name_contains(&tuning).send().await.unwrap();
    let trials: Vec<&str> = trials.training_job_summaries().iter().filter_map(|t| t.training_job_name()).collect();
    assert_eq!(trials.len(), 3, "every trial is recorded: {trials:?}");
    // The registered trial has the lowest log loss of all the trials' bundles.
    let best_loss = version["metrics"]["log_loss"].as_f64().unwrap();
    for trial in trials {
        let bundle = format!("training/tulips/{trial}/output/model.tar.gz");
        let loss = cloud.bundle_metrics(&bundle).await.validation["log_loss"];
        assert!(best_loss <= loss, "{best} ({best_loss}) is not better than {trial} ({loss})");
    }
}
