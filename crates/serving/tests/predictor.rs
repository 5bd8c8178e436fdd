//! Bundles made by the trainer's own export, loaded and served.

use serde_json::json;
use sluice_model::Task;
use sluice_model::bundle::pack;
use sluice_model::pipeline::FeatureStep;
use sluice_model::{Bundle, BundleError, BundleLimits, Contents, NullNumbers};
use sluice_serving::{Prediction, Predictor};
use sluice_tests::bundle::{flower_bundle, flower_classifier, flower_manifest, flower_pipeline};
use sluice_trainer::gbt::{Ensemble, Node, Tree};
use sluice_trainer::network::{Head, Network};
use sluice_trainer::rng::Rng;

fn bundle(network: &Network, manifest: &sluice_model::Manifest) -> Bundle {
    flower_bundle(network, manifest)
}

fn classifier() -> (Network, sluice_model::Manifest) {
    flower_classifier(7)
}

fn manifest(task: Task, class_labels: &[&str], output: &str) -> sluice_model::Manifest {
    flower_manifest("flowers", task, class_labels, output)
}

/// Gradient-boosted trees on the flower pipeline, which passes a missing petal on as NaN:
/// three classes (a tree per class) or a regression, splitting on the petal (missing values
/// left in one tree, right in another) and on the colour red.
fn flower_trees(head: Head) -> (Ensemble, Bundle) {
    let petal = |threshold: f32, missing_left: bool, low: f32, high: f32| Tree {
        nodes: vec![
            Node::Split { column: 0, threshold, missing_left, left: 1, right: 2 },
            Node::Leaf(low),
            Node::Leaf(high),
        ],
    };
    let red = |value: f32| Tree {
        nodes: vec![
            Node::Split { column: 2, threshold: 0.5, missing_left: true, left: 1, right: 2 },
            Node::Leaf(0.0),
            Node::Leaf(value),
        ],
    };
    let trees = vec![petal(0.0, true, 1.0, -1.0), red(2.0), petal(1.0, false, -0.5, 0.5)];
    let ensemble = Ensemble { inputs: 4, head, trees };
    let mut manifest = match head {
        Head::Classes(_) => manifest(Task::Classification, &["iris", "rose", "tulip"], "probabilities"),
        Head::Regression { .. } => manifest(Task::Regression, &[], "prediction"),
    };
    manifest.algorithm = "gbt".into();
    manifest.pipeline.null_numbers = NullNumbers::Missing;
    let onnx = sluice_trainer::onnx::export_trees(&ensemble, "test");
    (ensemble, Bundle { manifest, onnx, metrics: None, baseline: None })
}

/// Flower rows, every seventh without a petal.
fn flower_rows(count: u32) -> Vec<serde_json::Value> {
    (0..count)
        .map(|i| {
            let colour = ["red", "blue", "green"][i as usize % 3];
            let petal = if i % 7 == 3 { serde_json::Value::Null } else { json!(f64::from(i) / 10.0) };
            json!({"petal": petal, "colour": colour})
        })
        .collect()
}

#[test]
fn tree_ensembles_are_served_like_networks_missing_values_included() {
    let rows = flower_rows(21);
    for head in [Head::Classes(3), Head::Regression { mean: 0.0, std: 1.0 }] {
        let (ensemble, bundle) = flower_trees(head);
        let predictor = Predictor::load(&bundle).unwrap();
        let predictions = predictor.predict(&rows).unwrap().unwrap();
        let frame = sluice_model::Frame {
            columns: vec![
                ("petal".into(), sluice_model::Column::Numeric(rows.iter().map(|r| r["petal"].as_f64()).collect())),
                (
                    "colour".into(),
                    sluice_model::Column::Categorical(
                        rows.iter().map(|r| r["colour"].as_str().map(str::to_owned)).collect(),
                    ),
                ),
            ],
        };
        let features = bundle.manifest.pipeline.transform(&frame).unwrap();
        assert!(features[3 * 4].is_nan(), "a missing petal reaches the trees as NaN");
        let expected = ensemble.predict(&features, rows.len());
        for (row, prediction) in predictions.iter().enumerate() {
            match (&prediction.prediction, head) {
                (Prediction::Value(value), Head::Regression { .. }) => {
                    assert!((value - f64::from(expected[row])).abs() < 1e-5, "row {row}: {value}")
                }
                (Prediction::Label(_), Head::Classes(_)) => {
                    let probabilities = prediction.probabilities.as_ref().unwrap();
                    for (class, label) in ["iris", "rose", "tulip"].iter().enumerate() {
                        assert!((probabilities[*label] - expected[row * 3 + class]).abs() <= 1e-5, "row {row}");
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn predictions_match_the_network_the_trainer_exported() {
    let (network, manifest) = classifier();
    let predictor = Predictor::load(&bundle(&network, &manifest)).unwrap();
    let rows =
        [json!({"petal": 2.5, "colour": "red"}), json!({"petal": null, "colour": "green", "kind": "rose", "id": 7})];
    let predictions = predictor.predict(&rows).unwrap().unwrap();

    let features = flower_pipeline()
        .transform(&sluice_model::Frame {
            columns: vec![
                ("petal".into(), sluice_model::Column::Numeric(vec![Some(2.5), None])),
                ("colour".into(), sluice_model::Column::Categorical(vec![Some("red".into()), Some("green".into())])),
            ],
        })
        .unwrap();
    let expected = network.predict(&features, 2);
    for (row, prediction) in predictions.iter().enumerate() {
        let probabilities = prediction.probabilities.as_ref().unwrap();
        for (class, label) in ["iris", "rose", "tulip"].iter().enumerate() {
            assert!((probabilities[*label] - expected[row * 3 + class]).abs() <= 1e-5);
        }
        let best = (0..3).max_by(|&a, &b| expected[row * 3 + a].total_cmp(&expected[row * 3 + b])).unwrap();
        assert_eq!(prediction.prediction, Prediction::Label(["iris", "rose", "tulip"][best].into()));
    }
}

#[test]
fn regression_models_predict_values() {
    let network = Network::new(4, &[], Head::Regression { mean: 10.0, std: 2.0 }, &mut Rng::new(3));
    let manifest = manifest(Task::Regression, &[], "prediction");
    let predictor = Predictor::load(&bundle(&network, &manifest)).unwrap();
    let prediction = &predictor.predict(&[json!({"petal": 1.0, "colour": "blue"})]).unwrap().unwrap()[0];
    let features = [-2.0, 1.0, 0.0, 0.0];
    let expected = f64::from(network.predict(&features, 1)[0]);
    assert!(matches!(prediction.prediction, Prediction::Value(v) if (v - expected).abs() < 1e-4), "{prediction:?}");
    assert_eq!(prediction.probabilities, None);
}

#[test]
fn rows_that_do_not_fit_are_refused_by_row_and_field() {
    let (network, manifest) = classifier();
    let predictor = Predictor::load(&bundle(&network, &manifest)).unwrap();
    let cases = [
        (json!([{"petal": 1.0, "colour": "red"}, {"colour": "red"}]), 1, "petal", "is missing"),
        (json!([{"petal": 1.0, "colour": "red", "stem": 3}]), 0, "stem", "unknown column \"stem\""),
        (json!([{"petal": "long", "colour": "red"}]), 0, "petal", "must be a number"),
        (json!([{"petal": 1.0, "colour": 4}]), 0, "colour", "must be a string"),
    ];
    for (rows, row, field, words) in cases {
        let error = predictor.predict(rows.as_array().unwrap()).unwrap().unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (row, Some(field)), "{error}");
        assert!(error.message.contains(words), "{error}");
    }
    let error = predictor.predict(&[json!([1, 2])]).unwrap().unwrap_err();
    assert!(error.message.contains("JSON object"), "{error}");
}

#[test]
fn values_sent_as_they_were_ingested_mean_what_they_meant_in_training() {
    let (network, manifest) = classifier();
    let predictor = Predictor::load(&bundle(&network, &manifest)).unwrap();
    let predict = |petal: serde_json::Value| {
        predictor.predict(&[json!({"petal": petal, "colour": "red"})]).unwrap().unwrap().remove(0)
    };
    // A timestamp column was trained on seconds since the epoch: its ISO text is that number.
    assert_eq!(predict(json!("1970-01-02")), predict(json!(86_400.0)));
    assert_eq!(predict(json!("1970-01-01T00:00:02.5Z")), predict(json!(2.5)));
    assert_eq!(predict(json!(" 2.5 ")), predict(json!(2.5)), "a number in quotes, as a CSV holds it");
    assert_eq!(predict(json!("TRUE")), predict(json!(true)));
    assert_eq!(predict(json!("NA")), predict(json!(null)), "the ETL's null tokens are nulls");
}

#[test]
fn bundles_that_cannot_serve_are_refused_when_loaded() {
    let (network, manifest_ok) = classifier();
    let wrong_output = manifest(Task::Classification, &["iris", "rose", "tulip"], "scores");
    let error = Predictor::load(&bundle(&network, &wrong_output)).unwrap_err();
    assert!(error.to_string().contains("no output \"scores\" (it has probabilities)"), "{error}");

    let two_classes = manifest(Task::Classification, &["iris", "rose"], "probabilities");
    let error = Predictor::load(&bundle(&network, &two_classes)).unwrap_err();
    assert!(error.to_string().contains("gives 3 values per row; the manifest's task needs 2"), "{error}");

    let mut wider = manifest_ok.clone();
    wider.pipeline.steps.push(FeatureStep::Standardize { column: "stem".into(), mean: 0.0, std: 1.0 });
    assert!(matches!(Predictor::load(&bundle(&network, &wider)), Err(BundleError::Model(_))));

    let read = |bytes: &[u8]| Bundle::from_tar_gz(bytes, BundleLimits::for_memory(1 << 30), Contents::All);
    assert!(matches!(read(b"not gzip"), Err(BundleError::Archive(_))));
    let manifest_json = serde_json::to_vec(&manifest_ok).unwrap();
    let garbage = pack([("manifest.json", manifest_json.as_slice()), ("model.onnx", b"junk".as_slice())]).unwrap();
    assert!(matches!(Predictor::load(&read(&garbage).unwrap()), Err(BundleError::Model(_))));
}

/// Needs ONNX Runtime's library: `ORT_DYLIB_PATH` (scripts/test.sh points it at the one in
/// the project's Python environment).
#[cfg(feature = "ort")]
#[test]
fn onnx_runtime_predicts_what_tract_predicts() {
    use sluice_serving::EngineChoice;
    let (network, manifest) = classifier();
    let bundles = [
        bundle(&network, &manifest),
        flower_trees(Head::Classes(3)).1,
        flower_trees(Head::Regression { mean: 0.0, std: 1.0 }).1,
    ];
    let rows = flower_rows(50);
    for bundle in bundles {
        let tract = Predictor::load_with(&bundle, EngineChoice::Tract).unwrap();
        let ort = Predictor::load_with(&bundle, EngineChoice::Ort).unwrap();
        assert_eq!((tract.engine(), ort.engine()), ("tract", "ort"));
        let (a, b) = (tract.predict(&rows).unwrap().unwrap(), ort.predict(&rows).unwrap().unwrap());
        for (a, b) in a.iter().zip(&b) {
            match (&a.prediction, &b.prediction) {
                (Prediction::Value(a), Prediction::Value(b)) => assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0)),
                (a, b) => assert_eq!(a, b, "{}", bundle.manifest.algorithm),
            }
            for (label, p) in a.probabilities.iter().flatten() {
                assert!((p - b.probabilities.as_ref().unwrap()[label]).abs() <= 1e-5);
            }
        }
    }
}
