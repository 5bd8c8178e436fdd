//! The register function fed with real EventBridge training-job events, against moto.

use std::collections::HashMap;

use register::{Outcome, Register};
use serde_json::{Value, json};
use sluice_aws_ml::{SageMaker, TrainingSpec};
use sluice_tests::TestStack;

struct Fixture {
    stack: TestStack,
    register: Register,
    sagemaker: SageMaker,
    group: String,
}

impl Fixture {
    async fn new(environment: &[(&str, &str)]) -> Self {
        let stack = TestStack::provision().await;
        let mut variables = stack.environment("RegisterFunction");
        for (name, value) in environment {
            variables.insert((*name).to_owned(), (*value).to_owned());
        }
        let register = Register::from_settings(&stack.clients, &variables).unwrap();
        let sagemaker = SageMaker::new(&stack.clients);
        // Each test its own model, so groups never meet on the shared emulator.
        let group = format!("{}iris", variables["MODEL_GROUP_PREFIX"]);
        Self { stack, register, sagemaker, group }
    }

    /// A finished training job on the emulator whose bundle reports `accuracy`.
    async fn job(&self, name: &str, accuracy: f64) -> String {
        let bucket = self.stack.bucket("ArtifactsBucket");
        let spec = TrainingSpec {
            image: "trainer".into(),
            role_arn: "arn:aws:iam::123456789012:role/training".into(),
            channels: vec![("train".into(), "s3://curated/data/iris/".into())],
            output_path: format!("s3://{bucket}/training/iris"),
            instance_type: "ml.m5.large".into(),
            instance_count: 1,
            max_runtime_seconds: 600,
            hyperparameters: HashMap::from([("model_name".into(), "iris".into()), ("dataset".into(), "iris".into())]),
            metric_regexes: vec![],
            tags: vec![],
        };
        self.sagemaker.start_training(name, &spec).await.unwrap();
        let metrics = json!({
            "primary_metric": {"name": "accuracy", "value": accuracy, "higher_is_better": true},
            "validation": {"accuracy": accuracy, "f1_macro": accuracy},
        });
        let key = format!("training/iris/{name}/output/model.tar.gz");
        self.stack.clients.s3.put_object().bucket(bucket).key(&key).body(bundle(&metrics).into()).send().await.unwrap();
        name.to_owned()
    }

    async fn handle(&self, job: &str, status: &str) -> Outcome {
        self.register.handle(&event(job, status)).await.unwrap()
    }

    async fn statuses(&self) -> Vec<(i64, String)> {
        let packages = self.sagemaker.packages(&self.group).await.unwrap();
        packages.into_iter().map(|p| (p.version, p.approval)).collect()
    }
}

fn bundle(metrics: &Value) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut archive = tar::Builder::new(encoder);
    let bytes = metrics.to_string().into_bytes();
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "./metrics.json", &bytes[..]).unwrap();
    archive.into_inner().unwrap().finish().unwrap()
}

fn event(job: &str, status: &str) -> Value {
    let path = format!("{}/tests/events/training-job-state-change.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap().replace("JOB_NAME", job);
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["detail"]["TrainingJobStatus"] = status.into();
    if status == "Failed" {
        event["detail"]["FailureReason"] =
            "AlgorithmError: target column \"species\" is not in the training data".into();
    }
    event
}

fn tuning_event(tuning_job: &str, best: &str, status: &str) -> Value {
    let path = format!("{}/tests/events/tuning-job-state-change.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap().replace("TUNING_JOB", tuning_job).replace("BEST_JOB", best);
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["detail"]["HyperParameterTuningJobStatus"] = status.into();
    event
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

#[tokio::test]
async fn the_gate_approves_the_first_and_better_versions_only() {
    let fixture = Fixture::new(&[]).await;
    let first = fixture.job(&unique("first"), 0.90).await;
    assert!(matches!(
        fixture.handle(&first, "Completed").await,
        Outcome::Registered { approved: true, production_value: None, .. }
    ));

    let worse = fixture.job(&unique("worse"), 0.85).await;
    assert!(
        matches!(fixture.handle(&worse, "Completed").await, Outcome::Registered { approved: false, production_value: Some(p), .. } if p == 0.90)
    );

    let better = fixture.job(&unique("better"), 0.95).await;
    assert!(matches!(fixture.handle(&better, "Completed").await, Outcome::Registered { approved: true, .. }));

    assert_eq!(
        fixture.statuses().await,
        vec![(3, "Approved".to_owned()), (2, "PendingManualApproval".to_owned()), (1, "Approved".to_owned())]
    );
}

#[tokio::test]
async fn a_margin_keeps_small_improvements_for_a_person_to_judge() {
    let fixture = Fixture::new(&[("APPROVAL_MARGIN", "0.02")]).await;
    let first = fixture.job(&unique("base"), 0.90).await;
    fixture.handle(&first, "Completed").await;
    let slightly = fixture.job(&unique("slightly"), 0.91).await;
    assert!(matches!(fixture.handle(&slightly, "Completed").await, Outcome::Registered { approved: false, .. }));
}

#[tokio::test]
async fn a_replayed_event_registers_nothing_new() {
    let fixture = Fixture::new(&[]).await;
    let job = fixture.job(&unique("replayed"), 0.9).await;
    fixture.handle(&job, "Completed").await;
    assert_eq!(fixture.handle(&job, "Completed").await, Outcome::AlreadyRegistered { job: job.clone() });
    assert_eq!(fixture.statuses().await.len(), 1);
}

#[tokio::test]
async fn failed_jobs_are_reported_and_not_registered() {
    let fixture = Fixture::new(&[]).await;
    let job = unique("failed");
    assert_eq!(fixture.handle(&job, "Failed").await, Outcome::FailureReported { job: job.clone() });
    assert!(matches!(fixture.handle(&job, "InProgress").await, Outcome::Ignored { .. }));
}

#[tokio::test]
async fn a_finished_tuning_job_registers_its_best_trial() {
    let fixture = Fixture::new(&[]).await;
    let best = fixture.job(&unique("tuned-007"), 0.96).await;
    let tuning = unique("tuned");
    let outcome = fixture.register.handle(&tuning_event(&tuning, &best, "Completed")).await.unwrap();
    assert!(matches!(outcome, Outcome::Registered { approved: true, value, .. } if value == 0.96), "{outcome:?}");
    let packages = fixture.sagemaker.packages(&fixture.group).await.unwrap();
    assert_eq!(packages[0].metadata["training_job"], best);
    assert_eq!(packages[0].metadata["tuning_job"], tuning);

    let replayed = fixture.register.handle(&tuning_event(&tuning, &best, "Completed")).await.unwrap();
    assert_eq!(replayed, Outcome::AlreadyRegistered { job: best });
}

#[tokio::test]
async fn a_failed_tuning_job_is_reported() {
    let fixture = Fixture::new(&[]).await;
    let tuning = unique("doomed");
    let mut event = tuning_event(&tuning, "none", "Failed");
    event["detail"]["FailureReason"] = "all training jobs failed".into();
    assert_eq!(fixture.register.handle(&event).await.unwrap(), Outcome::FailureReported { job: tuning });
    assert!(fixture.statuses().await.is_empty());
}
