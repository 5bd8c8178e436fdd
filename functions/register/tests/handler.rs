//! The register function fed with real EventBridge training-job events, against moto: the
//! gate's decisions as they land in the registry, the catalog's production record and the
//! model's event log, and what duplicates of one event do.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use register::{Outcome, Register};
use serde_json::Value;
use sluice_aws::Catalog;
use sluice_aws_ml::{ChannelSource, ModelRegistry, SageMaker, TrainingSpec};
use sluice_core::ModelName;
use sluice_core::model_event::EventKind;
use sluice_model::metrics::{PrimaryMetric, ProductionScore};
use sluice_model::registry::Approval;
use sluice_model::{Bundle, Metrics, Task};
use sluice_tests::TestStack;
use sluice_tests::bundle::{flower_manifest, registry};

struct Fixture {
    stack: TestStack,
    register: Arc<Register>,
    sagemaker: SageMaker,
    registry: ModelRegistry,
    catalog: Catalog,
}

fn iris() -> ModelName {
    ModelName::parse("iris").unwrap()
}

/// A candidate's metrics: `accuracy`, and production's on the same rows when scored.
fn metrics(accuracy: f64, production: Option<(i64, f64)>) -> Metrics {
    Metrics {
        primary_metric: PrimaryMetric { name: "accuracy".into(), value: accuracy, higher_is_better: true },
        validation: BTreeMap::from([("accuracy".into(), accuracy), ("f1_macro".into(), accuracy)]),
        train: BTreeMap::new(),
        rows: None,
        training: None,
        onnx_max_abs_difference: None,
        production: production.map(|(version, accuracy)| ProductionScore {
            version,
            validation: BTreeMap::from([("accuracy".into(), accuracy)]),
            error: None,
        }),
    }
}

impl Fixture {
    async fn new(environment: &[(&str, &str)]) -> Self {
        let stack = TestStack::provision().await;
        let mut variables = stack.environment("RegisterFunction");
        for (name, value) in environment {
            variables.insert((*name).to_owned(), (*value).to_owned());
        }
        let register = Arc::new(Register::from_settings(&stack.clients, &variables).unwrap());
        let catalog = Catalog::new(stack.clients.dynamodb.clone(), stack.table("CatalogTable"));
        Self {
            register,
            sagemaker: SageMaker::new(&stack.clients),
            registry: registry(&stack.clients, &stack.stack),
            catalog,
            stack,
        }
    }

    /// A finished training job on the emulator whose bundle has `metrics`.
    async fn job(&self, name: &str, metrics: Metrics) -> String {
        let bucket = self.stack.bucket("ArtifactsBucket");
        let spec = TrainingSpec {
            image: "trainer".into(),
            role_arn: "arn:aws:iam::123456789012:role/training".into(),
            channels: vec![("train".into(), ChannelSource::Prefix("s3://curated/data/iris/".into()))],
            output_path: format!("s3://{bucket}/training/iris"),
            instance_type: "ml.m5.large".into(),
            instance_count: 1,
            max_runtime_seconds: 600,
            hyperparameters: HashMap::from([("model_name".into(), "iris".into()), ("dataset".into(), "iris".into())]),
            metric_regexes: vec![],
            tags: vec![],
            kms_key_arn: None,
            network: Default::default(),
        };
        self.sagemaker.start_training(name, &spec).await.unwrap();
        let bundle = Bundle {
            manifest: flower_manifest("iris", Task::Classification, &["a", "b"], "probabilities"),
            onnx: b"not needed to register".to_vec(),
            metrics: Some(metrics),
            baseline: None,
        };
        let key = format!("training/iris/{name}/output/model.tar.gz");
        let body = bundle.to_tar_gz();
        self.stack.clients.s3.put_object().bucket(bucket).key(&key).body(body.into()).send().await.unwrap();
        name.to_owned()
    }

    async fn handle(&self, job: &str, status: &str) -> Outcome {
        self.register.handle(&event(job, status)).await.unwrap()
    }

    async fn statuses(&self) -> Vec<(i64, Approval)> {
        let versions = self.registry.versions(&iris()).await.unwrap().unwrap_or_default();
        versions.into_iter().map(|v| (v.version, v.approval)).collect()
    }

    async fn production(&self) -> Option<i64> {
        self.catalog.production("iris").await.unwrap().map(|p| p.version)
    }

    async fn events(&self) -> Vec<(EventKind, String)> {
        let events = self.catalog.events("iris", None, 100).await.unwrap();
        events.into_iter().map(|e| (e.kind, e.message)).collect()
    }
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

fn approval(outcome: &Outcome) -> Approval {
    match outcome {
        Outcome::Registered { approval, .. } => *approval,
        other => panic!("not registered: {other:?}"),
    }
}

#[tokio::test]
async fn the_gate_approves_only_versions_that_beat_production_on_the_same_rows() {
    let fixture = Fixture::new(&[]).await;
    let first = fixture.job(&unique("first"), metrics(0.90, None)).await;
    assert_eq!(approval(&fixture.handle(&first, "Completed").await), Approval::Approved, "the first version");
    assert_eq!(fixture.production().await, Some(1), "recorded in the catalog");

    let worse = fixture.job(&unique("worse"), metrics(0.85, Some((1, 0.90)))).await;
    assert_eq!(approval(&fixture.handle(&worse, "Completed").await), Approval::PendingManualApproval);

    // Higher than production's own validation score, but production was never scored on
    // this version's rows: a person compares.
    let unscored = fixture.job(&unique("unscored"), metrics(0.99, None)).await;
    let outcome = fixture.handle(&unscored, "Completed").await;
    assert!(
        matches!(&outcome, Outcome::Registered { approval: Approval::PendingManualApproval, reason, .. } if reason.contains("not scored")),
        "{outcome:?}"
    );

    let better = fixture.job(&unique("better"), metrics(0.95, Some((1, 0.90)))).await;
    assert_eq!(approval(&fixture.handle(&better, "Completed").await), Approval::Approved);
    assert_eq!(fixture.production().await, Some(4), "the better version is production");

    use Approval::*;
    assert_eq!(
        fixture.statuses().await,
        vec![(4, Approved), (3, PendingManualApproval), (2, PendingManualApproval), (1, Approved)]
    );
    let kinds: Vec<EventKind> = fixture.events().await.into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == EventKind::Registered).count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == EventKind::Promoted).count(), 2, "v1, then v4: {kinds:?}");
}

#[tokio::test]
async fn a_margin_keeps_small_improvements_for_a_person_to_judge() {
    let fixture = Fixture::new(&[("APPROVAL_MARGIN", "0.02")]).await;
    let first = fixture.job(&unique("base"), metrics(0.90, None)).await;
    fixture.handle(&first, "Completed").await;
    let slightly = fixture.job(&unique("slightly"), metrics(0.91, Some((1, 0.90)))).await;
    let outcome = fixture.handle(&slightly, "Completed").await;
    assert!(
        matches!(&outcome, Outcome::Registered { approval: Approval::PendingManualApproval, reason, .. } if reason.contains("margin 0.02")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_replayed_event_registers_nothing_new() {
    let fixture = Fixture::new(&[]).await;
    let job = fixture.job(&unique("replayed"), metrics(0.9, None)).await;
    fixture.handle(&job, "Completed").await;
    assert_eq!(fixture.handle(&job, "Completed").await, Outcome::AlreadyRegistered { job: job.clone() });
    assert_eq!(fixture.statuses().await.len(), 1);
}

#[tokio::test]
async fn concurrent_duplicates_of_one_event_register_one_version() {
    let fixture = Fixture::new(&[]).await;
    let job = fixture.job(&unique("duplicated"), metrics(0.9, None)).await;
    let mut deliveries = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (register, event) = (Arc::clone(&fixture.register), event(&job, "Completed"));
        deliveries.spawn(async move { register.handle(&event).await.unwrap() });
    }
    let outcomes = deliveries.join_all().await;
    let registered = outcomes.iter().filter(|o| matches!(o, Outcome::Registered { .. })).count();
    assert_eq!(registered, 1, "{outcomes:?}");
    assert_eq!(fixture.statuses().await.len(), 1);
    let registered_events = fixture.events().await.iter().filter(|(k, _)| *k == EventKind::Registered).count();
    assert_eq!(registered_events, 1);
}

#[tokio::test]
async fn a_failed_job_is_logged_with_the_trainers_reason_once() {
    let fixture = Fixture::new(&[]).await;
    let job = unique("failed");
    assert_eq!(fixture.handle(&job, "Failed").await, Outcome::FailureReported { job: job.clone() });
    assert_eq!(fixture.handle(&job, "Failed").await, Outcome::AlreadyRegistered { job: job.clone() }, "a replay");
    assert!(matches!(fixture.handle(&job, "InProgress").await, Outcome::Ignored { .. }));
    let events = fixture.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, EventKind::TrainingFailed);
    assert!(events[0].1.contains("target column \"species\" is not in the training data"), "{}", events[0].1);
    assert!(fixture.statuses().await.is_empty());
}

#[tokio::test]
async fn a_finished_tuning_job_registers_its_best_trial() {
    let fixture = Fixture::new(&[]).await;
    let best = fixture.job(&unique("tuned-007"), metrics(0.96, None)).await;
    let tuning = unique("tuned");
    let outcome = fixture.register.handle(&tuning_event(&tuning, &best, "Completed")).await.unwrap();
    assert!(
        matches!(outcome, Outcome::Registered { approval: Approval::Approved, value, .. } if value == 0.96),
        "{outcome:?}"
    );
    let versions = fixture.registry.versions(&iris()).await.unwrap().unwrap();
    assert_eq!(versions[0].get("training_job"), Some(best.as_str()));
    assert_eq!(versions[0].get("tuning_job"), Some(tuning.as_str()));

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
