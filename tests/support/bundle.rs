//! Model bundles made with the trainer's own network and ONNX export, for tests that serve
//! models without training one.

use std::collections::BTreeMap;

use sluice_model::pipeline::{FeaturePipeline, FeatureStep};
use sluice_model::{MANIFEST_FORMAT_VERSION, Manifest, Task};
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

pub fn tar_gz(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, format!("./{name}"), &bytes[..]).expect("in-memory archive");
    }
    archive.into_inner().and_then(|encoder| encoder.finish()).expect("in-memory archive")
}

/// `model.tar.gz` bytes: the exported network, the manifest and a metrics file.
pub fn bundle_bytes(network: &Network, manifest: &Manifest) -> Vec<u8> {
    tar_gz(&[
        ("manifest.json", serde_json::to_vec(manifest).expect("manifests serialise")),
        ("model.onnx", onnx::export(network, "test")),
        (
            "metrics.json",
            br#"{"primary_metric": {"name": "accuracy", "value": 0.9}, "validation": {"accuracy": 0.9}}"#.to_vec(),
        ),
    ])
}

/// Stores `network` as a bundle under `training/flowers/` in `artifacts_bucket` and
/// registers it in `group` (approved or waiting), as `register` would. Returns the
/// package ARN.
pub async fn register_flowers(
    clients: &sluice_aws::AwsClients,
    group: &str,
    artifacts_bucket: &str,
    network: &Network,
    approved: bool,
) -> String {
    let (_, manifest) = flower_classifier(0);
    let key = format!("training/flowers/job-{}/output/model.tar.gz", uuid::Uuid::now_v7().simple());
    let bytes = bundle_bytes(network, &manifest);
    clients.s3.put_object().bucket(artifacts_bucket).key(&key).body(bytes.into()).send().await.expect("bundle stored");
    let sagemaker = sluice_aws_ml::SageMaker::new(clients);
    sagemaker.ensure_group(group, "flowers").await.expect("group exists");
    let uri = format!("s3://{artifacts_bucket}/{key}");
    sagemaker.register(group, "trainer", &uri, approved, Default::default()).await.expect("version registered")
}
