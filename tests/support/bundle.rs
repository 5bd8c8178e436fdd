//! Model bundles made with the trainer's own network and ONNX export, for tests that serve
//! models without training one.

use std::collections::BTreeMap;

use sluice_aws::{AwsClients, Catalog};
use sluice_aws_ml::{ModelRegistry, ModelVersion};
use sluice_core::ModelName;
use sluice_localcloud::template::Stack;
use sluice_model::pipeline::{FeaturePipeline, FeatureStep};
use sluice_model::registry::Approval;
use sluice_model::{Bundle, MANIFEST_FORMAT_VERSION, Manifest, Task};
use sluice_trainer::network::{Head, Network};
use sluice_trainer::onnx;
use sluice_trainer::rng::Rng;

/// `petal` (numeric, mean 2, std 0.5) and `colour` (blue, red, or unknown): four features.
pub fn flower_pipeline() -> FeaturePipeline {
    FeaturePipeline {
        steps: vec![
            FeatureStep::Standardize { column: "petal".into(), mean: 2.0, std: 0.5 },
            FeatureStep::OneHot { column: "colour".into(), categories: vec!["blue".into(), "red".into()] },
        ],
        null_numbers: Default::default(),
    }
}

pub fn flower_manifest(model: &str, task: Task, class_labels: &[&str], output: &str) -> Manifest {
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        model_name: model.into(),
        model_version: "test".into(),
        task,
        algorithm: "mlp".into(),
        target: "kind".into(),
        onnx_input: onnx::INPUT.into(),
        onnx_outputs: vec![output.into()],
        class_labels: class_labels.iter().map(|c| (*c).to_owned()).collect(),
        pipeline: flower_pipeline(),
        training_data: vec![],
        hyperparameters: BTreeMap::from([("exclude".into(), "id".into())]),
        seed: 1,
        library_versions: BTreeMap::new(),
    }
}

/// A three-class classifier (iris, rose, tulip) on the flower pipeline; `seed` varies the
/// weights, so two seeds are two different versions.
pub fn flower_classifier(seed: u64) -> (Network, Manifest) {
    let network = Network::new(4, &[8], Head::Classes(3), &mut Rng::new(seed));
    (network, flower_manifest("flowers", Task::Classification, &["iris", "rose", "tulip"], "probabilities"))
}

/// The bundle of `network`: the exported graph, the manifest and a metrics file.
pub fn flower_bundle(network: &Network, manifest: &Manifest) -> Bundle {
    let metrics = serde_json::from_value(serde_json::json!({
        "primary_metric": {"name": "accuracy", "value": 0.9}, "validation": {"accuracy": 0.9}
    }))
    .expect("metrics parse");
    Bundle { manifest: manifest.clone(), onnx: onnx::export(network, "test"), metrics: Some(metrics), baseline: None }
}

/// `model.tar.gz` bytes of [`flower_bundle`].
pub fn bundle_bytes(network: &Network, manifest: &Manifest) -> Vec<u8> {
    flower_bundle(network, manifest).to_tar_gz()
}

/// The stack's model registry, configured as the template configures `register`.
pub fn registry(clients: &AwsClients, stack: &Stack) -> ModelRegistry {
    let table = &stack.tables.iter().find(|t| t.logical_id == "CatalogTable").expect("catalog table").name;
    let environment = &stack.function("RegisterFunction").expect("register function").environment;
    ModelRegistry::new(
        clients,
        Catalog::new(clients.dynamodb.clone(), table),
        &environment["MODEL_GROUP_PREFIX"],
        "trainer",
    )
}

/// Stores `network` as a bundle under `training/flowers/` in the stack's artifacts bucket
/// and registers it as a version of `flowers` (approved or waiting), then records
/// production, as `register` would.
pub async fn register_flowers(clients: &AwsClients, stack: &Stack, network: &Network, approved: bool) -> ModelVersion {
    let (_, manifest) = flower_classifier(0);
    register_bundle(clients, stack, &flower_bundle(network, &manifest), approved).await
}

/// Stores `bundle` under `training/<model>/` in the stack's artifacts bucket, registers it
/// (approved or waiting) and records production.
pub async fn register_bundle(clients: &AwsClients, stack: &Stack, bundle: &Bundle, approved: bool) -> ModelVersion {
    let model = ModelName::parse(&bundle.manifest.model_name).expect("a valid name");
    let bucket = &stack.buckets.iter().find(|b| b.logical_id == "ArtifactsBucket").expect("artifacts bucket").name;
    let key = format!("training/{model}/job-{}/output/model.tar.gz", uuid::Uuid::now_v7().simple());
    let bytes = bundle.to_tar_gz();
    clients.s3.put_object().bucket(bucket).key(&key).body(bytes.into()).send().await.expect("bundle stored");
    let registry = registry(clients, stack);
    let approval = if approved { Approval::Approved } else { Approval::PendingManualApproval };
    let version = registry
        .register(&model, &format!("s3://{bucket}/{key}"), approval, "a test version", Default::default(), None)
        .await
        .expect("registered");
    registry.publish_production(&model).await.expect("production recorded");
    version
}
