//! Property harness over what `predict` parses from a request: any JSON rows give
//! predictions or an input error naming the row, never a panic; and any bytes given as a
//! model bundle are refused or loaded, never a panic. Short and seeded in the tests;
//! `scripts/fuzz.sh` runs it long.

#[path = "../../../scripts/fuzz_runner.rs"]
mod fuzz_runner;

use fuzz_runner::runner;
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_model::{Bundle, BundleLimits, Contents};
use sluice_serving::Predictor;
use sluice_tests::bundle::{flower_bundle, flower_classifier};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9 :.TZ-]{0,24}".prop_map(Value::from),
        Just(json!("2026-11-22T10:15:01Z")),
        Just(json!("NA")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn row() -> impl Strategy<Value = Value> {
    let petal = prop_oneof![value(), any::<f64>().prop_map(|f| json!(f))];
    let colour = prop_oneof![value(), "[a-z]{0,8}".prop_map(Value::from)];
    (petal, colour, proptest::option::of(("[a-z]{1,6}", value()))).prop_map(|(petal, colour, extra)| {
        let mut row = json!({"petal": petal, "colour": colour});
        if let Some((key, value)) = extra {
            row[key] = value;
        }
        row
    })
}

#[test]
fn request_rows_give_predictions_or_a_row_error() {
    let (network, manifest) = flower_classifier(7);
    let predictor = Predictor::load(&flower_bundle(&network, &manifest)).unwrap();
    runner()
        .run(&proptest::collection::vec(prop_oneof![row(), value()], 0..8), |rows| {
            match predictor.predict(&rows) {
                Ok(Ok(predictions)) => prop_assert_eq!(predictions.len(), rows.len()),
                Ok(Err(error)) => prop_assert!(error.row < rows.len().max(1), "{error}"),
                Err(_) => {}
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_bytes_as_a_bundle_are_refused_or_loaded() {
    let limits = BundleLimits::for_memory(64 << 20);
    runner()
        .run(&proptest::collection::vec(any::<u8>(), 0..4096), |bytes| {
            let _ = Bundle::from_tar_gz(&bytes, limits, Contents::All);
            let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
            gzip.extend_from_slice(&bytes);
            let _ = Bundle::from_tar_gz(&gzip, limits, Contents::All);
            Ok(())
        })
        .unwrap();
}
