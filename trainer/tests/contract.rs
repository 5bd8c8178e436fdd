//! The SageMaker training-container contract: the `train` binary on a temporary `/opt/ml`
//! with string hyperparameters, curated Parquet in its channels, the bundle it writes, and
//! the failure file when the input is wrong.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use sluice_core::options::DatasetOptions;
use sluice_etl::process_table;
use sluice_formats::ContentKind;
use sluice_model::Manifest;

struct OptMl(PathBuf);

impl OptMl {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("sluice-trainer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("input/config")).unwrap();
        Self(root)
    }

    fn hyperparameters(&self, pairs: &[(&str, &str)]) -> &Self {
        let map: serde_json::Map<String, Value> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
        std::fs::write(self.0.join("input/config/hyperparameters.json"), Value::Object(map).to_string()).unwrap();
        self
    }

    /// Writes `csv` through the ETL, as curated Parquet, into a channel.
    fn channel(&self, name: &str, file: &str, csv: &str) -> &Self {
        let outcome = process_table(ContentKind::Csv, csv.as_bytes(), None, &DatasetOptions::default()).unwrap();
        let dir = self.0.join("input/data").join(name).join("ingest_date=2026-11-22");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), outcome.parquet).unwrap();
        self
    }

    /// The `train` binary on this `/opt/ml`.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_train"));
        command.env("SLUICE_SAGEMAKER_ROOT", &self.0);
        command
    }

    fn train(&self) -> Output {
        self.command().output().unwrap()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
}

impl Drop for OptMl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two noisy, mostly separable classes in two numeric features and a categorical one.
fn classification_csv(rows: usize) -> String {
    let mut csv = String::from("x1,x2,colour,label\n");
    let mut state = 17_u64;
    let mut noise = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    };
    for r in 0..rows {
        let class = r % 2;
        let centre = if class == 0 { -1.0 } else { 1.0 };
        let colour = ["red", "green", "blue"][r % 3];
        csv.push_str(&format!(
            "{:.4},{:.4},{colour},{}\n",
            centre + noise(),
            noise() * 2.0,
            if class == 0 { "cat" } else { "dog" }
        ));
    }
    csv
}

fn regression_csv(rows: usize) -> String {
    let mut csv = String::from("a,b,y\n");
    for r in 0..rows {
        let (a, b) = (r as f64 / rows as f64, ((r * 7) % 13) as f64);
        csv.push_str(&format!("{a:.5},{b},{:.5}\n", 3.0 * a - 0.5 * b + 10.0));
    }
    csv
}

/// Three classes in two numbers (one sometimes missing) and a colour that matters for one.
fn three_class_csv(rows: usize) -> String {
    let mut csv = String::from("x1,x2,colour,kind\n");
    for r in 0..rows {
        let class = r % 3;
        let wobble = ((r * 37) % 17) as f64 / 17.0 - 0.5;
        let x2 = if r % 7 == 0 { String::new() } else { format!("{:.3}", wobble * 3.0) };
        let colour = if class == 2 { "red" } else { ["green", "blue"][r % 2] };
        csv.push_str(&format!("{:.3},{x2},{colour},{}\n", class as f64 + wobble, ["iris", "rose", "tulip"][class]));
    }
    csv
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn trains_a_classifier_and_writes_the_bundle() {
    let ml = OptMl::new("classifier");
    ml.hyperparameters(&[("target", "label"), ("algorithm", "linear"), ("epochs", "200"), ("seed", "7")]).channel(
        "train",
        "part-0.parquet",
        &classification_csv(300),
    );
    let output = ml.train();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = stdout(&output);
    let accuracy: f64 = printed
        .lines()
        .find_map(|line| line.strip_prefix("validation:accuracy="))
        .expect("the metric line SageMaker reads")
        .parse()
        .unwrap();
    assert!(accuracy > 0.9, "{printed}");
    assert!(printed.contains("validation:roc_auc="), "binary problems report ROC-AUC");

    for file in ["model.onnx", "manifest.json", "metrics.json", "baseline.json"] {
        assert!(ml.path("model").join(file).is_file(), "{file} is in the bundle");
    }
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(ml.path("model/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.class_labels, ["cat", "dog"]);
    assert_eq!(manifest.pipeline.columns(), ["x1", "x2", "colour"]);
    assert_eq!(manifest.seed, 7);
    assert_eq!(manifest.hyperparameters["epochs"], "200", "hyperparameters are recorded as given");
    let metrics: Value = serde_json::from_slice(&std::fs::read(ml.path("model/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["primary_metric"]["name"], "accuracy");
    assert!(metrics["onnx_max_abs_difference"].as_f64().unwrap() <= 1e-4);
    assert_eq!(metrics["rows"]["validation"], 60, "a stratified 20% holdout");
    let baseline: Value = serde_json::from_slice(&std::fs::read(ml.path("model/baseline.json")).unwrap()).unwrap();
    assert_eq!(baseline["rows"], 240);
    assert!(!ml.path("output/failure").exists());
}

#[test]
fn trains_an_mlp_regressor_with_a_validation_channel() {
    let ml = OptMl::new("regressor");
    ml.hyperparameters(&[("target", "y"), ("algorithm", "mlp"), ("hidden_units", "16"), ("epochs", "300")])
        .channel("train", "a.parquet", &regression_csv(400))
        .channel("validation", "b.parquet", &regression_csv(97));
    let output = ml.train();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metrics: Value = serde_json::from_slice(&std::fs::read(ml.path("model/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["rows"]["validation"], 97, "the validation channel is the holdout");
    assert!(metrics["validation"]["r2"].as_f64().unwrap() > 0.95, "{metrics}");
    assert_eq!(metrics["primary_metric"]["name"], "rmse");
    assert_eq!(metrics["primary_metric"]["higher_is_better"], false);
}

fn failure(ml: &OptMl) -> String {
    let output = ml.train();
    assert!(!output.status.success(), "the run must fail");
    assert!(!ml.path("model/model.onnx").exists(), "no bundle from a failed run");
    std::fs::read_to_string(ml.path("output/failure")).expect("the failure file is written")
}

/// `regression_csv` with its target multiplied by `scale`.
fn scaled_regression_csv(rows: usize, scale: f64) -> String {
    let mut csv = String::from("a,b,y\n");
    for r in 0..rows {
        let (a, b) = (r as f64 / rows as f64, ((r * 7) % 13) as f64);
        csv.push_str(&format!("{a:.5},{b},{:e}\n", (3.0 * a - 0.5 * b + 10.0) * scale));
    }
    csv
}

#[test]
fn regressions_train_and_export_whatever_the_targets_scale() {
    for (scale, name) in [(1e4, "targets-1e5"), (1e-5, "targets-1e-4")] {
        for algorithm in ["linear", "mlp"] {
            let ml = OptMl::new(&format!("{name}-{algorithm}"));
            ml.hyperparameters(&[("target", "y"), ("algorithm", algorithm), ("epochs", "200"), ("seed", "3")]).channel(
                "train",
                "a.parquet",
                &scaled_regression_csv(300, scale),
            );
            let output = ml.train();
            assert!(output.status.success(), "{name} {algorithm}: {}", String::from_utf8_lossy(&output.stderr));
            let metrics: Value =
                serde_json::from_slice(&std::fs::read(ml.path("model/metrics.json")).unwrap()).unwrap();
            assert!(metrics["validation"]["r2"].as_f64().unwrap() > 0.9, "{name} {algorithm}: {metrics}");
        }
    }
}

fn metrics_of(ml: &OptMl) -> Value {
    serde_json::from_slice(&std::fs::read(ml.path("model/metrics.json")).unwrap()).unwrap()
}

/// Trees for each task, with the trainer's own tract check passing on every export: a
/// regression of targets around 10^5 (and 10^-4), two classes, and three.
#[test]
fn trains_gradient_boosted_trees_for_each_task() {
    for (scale, name) in [(1e4, "gbt-targets-1e5"), (1e-5, "gbt-targets-1e-4")] {
        let ml = OptMl::new(name);
        ml.hyperparameters(&[("target", "y"), ("algorithm", "gbt"), ("min_samples_leaf", "5")]).channel(
            "train",
            "a.parquet",
            &scaled_regression_csv(400, scale),
        );
        let output = ml.train();
        assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
        let metrics = metrics_of(&ml);
        assert!(metrics["validation"]["r2"].as_f64().unwrap() > 0.95, "{name}: {metrics}");
        let rounds = stdout(&output).lines().find_map(|l| l.strip_prefix("train:epochs=")).unwrap().to_owned();
        assert!(rounds.parse::<usize>().unwrap() >= 1, "{name}: the rounds kept are printed");
    }

    let binary = OptMl::new("gbt-binary");
    binary.hyperparameters(&[("target", "label"), ("algorithm", "gbt")]).channel(
        "train",
        "a.parquet",
        &classification_csv(300),
    );
    let output = binary.train();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout(&output).contains("validation:roc_auc="));
    assert!(metrics_of(&binary)["validation"]["accuracy"].as_f64().unwrap() > 0.9);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(binary.path("model/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.algorithm, "gbt");
    assert_eq!(manifest.onnx_outputs, ["probabilities"]);
    assert_eq!(manifest.pipeline.null_numbers, sluice_model::NullNumbers::Missing, "trees route missing numbers");

    let three = OptMl::new("gbt-three");
    three.hyperparameters(&[("target", "kind"), ("algorithm", "gbt"), ("learning_rate", "0.2")]).channel(
        "train",
        "a.parquet",
        &three_class_csv(300),
    );
    let output = three.train();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metrics = metrics_of(&three);
    assert!(metrics["validation"]["accuracy"].as_f64().unwrap() > 0.9, "{metrics}");
    assert!(metrics["onnx_max_abs_difference"].as_f64().unwrap() <= 1e-4);
}

#[test]
fn bad_input_fails_with_the_reason_in_the_failure_file() {
    let missing_target = OptMl::new("no-target");
    missing_target.hyperparameters(&[("epochs", "5")]).channel("train", "p.parquet", &classification_csv(20));
    assert!(failure(&missing_target).contains("target"));

    let unknown_column = OptMl::new("unknown-column");
    unknown_column.hyperparameters(&[("target", "species")]).channel("train", "p.parquet", &classification_csv(20));
    let reason = failure(&unknown_column);
    assert!(reason.contains("\"species\"") && reason.contains("x1, x2, colour, label"), "{reason}");

    let empty_channel = OptMl::new("empty");
    empty_channel.hyperparameters(&[("target", "label")]);
    std::fs::create_dir_all(empty_channel.path("input/data/train")).unwrap();
    assert!(failure(&empty_channel).contains("no rows"));

    let bad_number = OptMl::new("bad-number");
    bad_number.hyperparameters(&[("target", "label"), ("epochs", "many")]).channel(
        "train",
        "p.parquet",
        &classification_csv(20),
    );
    assert_eq!(failure(&bad_number), "hyperparameter epochs = \"many\" is not a whole number");

    let typo = OptMl::new("typo");
    typo.hyperparameters(&[("target", "label"), ("epoch", "5")]).channel("train", "p.parquet", &classification_csv(20));
    assert!(failure(&typo).contains("unknown hyperparameter \"epoch\""));
}

/// The hosts of one job on loopback, each a `train` process with its own `/opt/ml`.
struct Job {
    hosts: Vec<OptMl>,
    leader: String,
}

impl Job {
    fn new(name: &str, hosts: usize, hyperparameters: &[(&str, &str)]) -> Self {
        let names: Vec<String> = (1..=hosts).map(|i| format!("algo-{i}")).collect();
        let hosts = names
            .iter()
            .map(|host| {
                let ml = OptMl::new(&format!("{name}-{host}"));
                ml.hyperparameters(hyperparameters);
                let resources =
                    serde_json::json!({"current_host": host, "hosts": names, "network_interface_name": "lo"});
                std::fs::write(ml.path("input/config/resourceconfig.json"), resources.to_string()).unwrap();
                ml
            })
            .collect();
        let leader = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        Self { hosts, leader }
    }

    /// Runs every host at once; their outputs in host order.
    fn train(&self) -> Vec<Output> {
        let children: Vec<_> = self
            .hosts
            .iter()
            .map(|ml| {
                ml.command()
                    .env("SLUICE_CLUSTER_LEADER", &self.leader)
                    .env("TRAINING_JOB_NAME", "contract-job")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children.into_iter().map(|child| child.wait_with_output().unwrap()).collect()
    }
}

/// Two hosts, each with half of the training rows, train the model one host trains on all of
/// them: the same pipeline statistics, the same optimum (linear), the same metrics on the
/// same validation rows. Only the first host writes the model.
#[test]
fn hosts_of_a_multi_instance_job_train_one_model_on_all_their_rows() {
    let rows = classification_csv(400);
    let lines: Vec<&str> = rows.lines().collect();
    let (header, body) = (lines[0], &lines[1..]);
    let part = |range: std::ops::Range<usize>| format!("{header}\n{}\n", body[range].join("\n"));
    for algorithm in ["linear", "mlp"] {
        let hyperparameters = [("target", "label"), ("algorithm", algorithm), ("epochs", "40"), ("hidden_units", "8")];
        let single = OptMl::new(&format!("single-{algorithm}"));
        single
            .hyperparameters(&hyperparameters)
            .channel("train", "a.parquet", &part(0..150))
            .channel("train", "b.parquet", &part(150..300))
            .channel("validation", "v.parquet", &part(300..400));
        let output = single.train();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

        let job = Job::new(algorithm, 2, &hyperparameters);
        job.hosts[0].channel("train", "a.parquet", &part(0..150)).channel("validation", "v.parquet", &part(300..400));
        job.hosts[1].channel("train", "b.parquet", &part(150..300));
        let outputs = job.train();
        for (ml, output) in job.hosts.iter().zip(&outputs) {
            let reason = std::fs::read_to_string(ml.path("output/failure")).unwrap_or_default();
            assert!(output.status.success(), "{algorithm}: {reason} {}", String::from_utf8_lossy(&output.stderr));
        }
        assert!(!job.hosts[1].path("model/model.onnx").exists(), "only the first host writes the model");
        let (one, two) = (metrics_of(&single), metrics_of(&job.hosts[0]));
        assert_eq!(two["rows"]["train"], 300, "{two}");
        assert_eq!(one["rows"], two["rows"]);
        let manifest: Manifest =
            serde_json::from_slice(&std::fs::read(job.hosts[0].path("model/manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest.training_data.len(), 3, "{:?}", manifest.training_data);
        let (a, b) = (one["validation"]["log_loss"].as_f64().unwrap(), two["validation"]["log_loss"].as_f64().unwrap());
        // Linear: the one optimum, to the solver's tolerance. MLP: other minibatches, the same quality.
        let tolerance = if algorithm == "linear" { 1e-4 } else { 0.1 };
        assert!((a - b).abs() < tolerance, "{algorithm}: log loss {a} on one host, {b} on two");
        assert!(two["validation"]["accuracy"].as_f64().unwrap() > 0.8, "{two}");
    }
}

/// A host that cannot train fails the job on every host, with its reason.
#[test]
fn a_host_that_fails_fails_every_host_with_its_reason() {
    let job = Job::new("failing", 3, &[("target", "label")]);
    job.hosts[0].channel("train", "a.parquet", &classification_csv(60));
    job.hosts[1].channel("train", "b.parquet", &classification_csv(60));
    std::fs::create_dir_all(job.hosts[2].path("input/data/train")).unwrap();
    let outputs = job.train();
    for (ml, output) in job.hosts.iter().zip(&outputs) {
        assert!(!output.status.success());
        let reason = std::fs::read_to_string(ml.path("output/failure")).unwrap();
        assert!(reason.contains("channel train of algo-3 has no rows"), "{reason}");
    }
}

/// Runs `model` (in `ml`'s folder) with onnxruntime on `rows × columns` features and fails
/// unless it agrees with tract within the export check's relative tolerance.
fn assert_onnxruntime_agrees(name: &str, ml: &OptMl, model: &[u8], features: &[f32], rows: usize, columns: usize) {
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = project.join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh", python.display());
    let model_path = ml.path("checked.onnx");
    std::fs::write(&model_path, model).unwrap();
    let expected = sluice_trainer::onnx::run_with_tract(model, features, rows, columns).unwrap();
    let case = serde_json::json!({ "rows": rows, "columns": columns, "features": features, "expected": expected, "tolerance": 1e-4 });
    let case_path = ml.path("case.json");
    std::fs::write(&case_path, case.to_string()).unwrap();
    let output = Command::new(&python)
        .arg(project.join("trainer/tests/onnxruntime_parity.py"))
        .arg(&model_path)
        .arg(&case_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name}: onnxruntime differs from tract by {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The bundle's model gives the same outputs in onnxruntime as in tract (which the trainer
/// already checked against the trained model).
#[test]
fn exported_models_agree_in_onnxruntime() {
    let cases = [
        ("ort-linear", [("target", "label"), ("algorithm", "linear")], classification_csv(200)),
        ("ort-mlp", [("target", "y"), ("algorithm", "mlp")], regression_csv(200)),
        ("ort-gbt-binary", [("target", "label"), ("algorithm", "gbt")], classification_csv(200)),
        ("ort-gbt-three", [("target", "kind"), ("algorithm", "gbt")], three_class_csv(300)),
        ("ort-gbt-1e5", [("target", "y"), ("algorithm", "gbt")], scaled_regression_csv(300, 1e4)),
        ("ort-gbt-1e-4", [("target", "y"), ("algorithm", "gbt")], scaled_regression_csv(300, 1e-5)),
    ];
    for (name, hyperparameters, csv) in cases {
        let ml = OptMl::new(name);
        ml.hyperparameters(&hyperparameters).channel("train", "p.parquet", &csv);
        assert!(ml.train().status.success(), "{name}");
        let manifest: Manifest =
            serde_json::from_slice(&std::fs::read(ml.path("model/manifest.json")).unwrap()).unwrap();
        let (rows, columns) = (17, manifest.pipeline.width());
        // Where the pipeline leaves missing numbers as NaN (trees), every seventh value is
        // missing (null in the JSON case).
        let missing = manifest.pipeline.null_numbers == sluice_model::NullNumbers::Missing;
        let features: Vec<f32> = (0..rows * columns)
            .map(|i| if missing && i % 7 == 3 { f32::NAN } else { ((i * 37 % 101) as f32 / 50.0) - 1.0 })
            .collect();
        let model = std::fs::read(ml.path("model/model.onnx")).unwrap();
        assert_onnxruntime_agrees(name, &ml, &model, &features, rows, columns);
    }
}

/// Ensembles whose every leaf value is positive: onnxruntime's special path for a binary
/// classifier voting for one class only would output `(1 − s, s)` untransformed; the export
/// keeps clear of it.
#[test]
fn tree_ensembles_with_only_positive_votes_agree_in_onnxruntime() {
    use sluice_trainer::gbt::{Ensemble, Node, Tree};
    use sluice_trainer::network::Head;
    let tree = |low: f32, high: f32| Tree {
        nodes: vec![
            Node::Split { column: 0, threshold: 0.0, missing_left: false, left: 1, right: 2 },
            Node::Leaf(low),
            Node::Split { column: 1, threshold: 0.5, missing_left: true, left: 3, right: 4 },
            Node::Leaf(high),
            Node::Leaf(high * 2.0),
        ],
    };
    let features = [-1.0, 0.0, 1.0, 0.0, 1.0, 1.0, f32::NAN, f32::NAN, 2.0, f32::NAN];
    for (name, head, trees) in [
        ("ort-positive-binary", Head::Classes(2), vec![tree(0.5, 1.5), tree(0.25, 0.75)]),
        ("ort-positive-three", Head::Classes(3), vec![tree(0.5, 1.5), tree(0.25, 0.75), tree(0.1, 0.2)]),
        ("ort-positive-regression", Head::Regression { mean: 0.0, std: 1.0 }, vec![tree(2e5, 3e5), tree(10.0, 20.0)]),
    ] {
        let ml = OptMl::new(name);
        let model = sluice_trainer::onnx::export_trees(&Ensemble { inputs: 2, head, trees }, "test");
        assert_onnxruntime_agrees(name, &ml, &model, &features, 5, 2);
    }
}

#[test]
fn production_is_scored_on_the_candidates_validation_rows() {
    let first = OptMl::new("production-first");
    first.hyperparameters(&[("target", "label"), ("epochs", "200"), ("seed", "7")]).channel(
        "train",
        "part-0.parquet",
        &classification_csv(300),
    );
    assert!(first.train().status.success());
    let production = sluice_model::bundle::pack_dir(&first.path("model")).unwrap();

    let second = OptMl::new("production-second");
    second
        .hyperparameters(&[("target", "label"), ("epochs", "200"), ("seed", "8"), ("production_version", "4")])
        .channel("train", "part-0.parquet", &classification_csv(300));
    std::fs::create_dir_all(second.path("input/data/production")).unwrap();
    std::fs::write(second.path("input/data/production/model.tar.gz"), &production).unwrap();
    let output = second.train();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metrics: sluice_model::Metrics =
        serde_json::from_slice(&std::fs::read(second.path("model/metrics.json")).unwrap()).unwrap();
    let scored = metrics.production.expect("production was scored");
    assert_eq!((scored.version, scored.error.as_deref()), (4, None));
    assert!(scored.validation["accuracy"] > 0.9, "{scored:?}");
    assert!(stdout(&output).contains("production:accuracy="));
    let baseline: sluice_model::Baseline =
        serde_json::from_slice(&std::fs::read(second.path("model/baseline.json")).unwrap()).unwrap();
    assert!(baseline.predictions.is_some(), "the baseline profiles the model's own predictions");

    // A production version that cannot score the new rows is recorded, not a failed run.
    let third = OptMl::new("production-broken");
    third.hyperparameters(&[("target", "label"), ("epochs", "50"), ("production_version", "4")]).channel(
        "train",
        "part-0.parquet",
        &classification_csv(100),
    );
    std::fs::create_dir_all(third.path("input/data/production")).unwrap();
    std::fs::write(third.path("input/data/production/model.tar.gz"), b"not a bundle").unwrap();
    let output = third.train();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metrics: sluice_model::Metrics =
        serde_json::from_slice(&std::fs::read(third.path("model/metrics.json")).unwrap()).unwrap();
    let scored = metrics.production.unwrap();
    assert!(scored.error.as_deref().is_some_and(|e| e.contains("tar.gz")), "{scored:?}");
}
