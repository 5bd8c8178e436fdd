//! Export to ONNX that tract and onnxruntime both run: networks in standard ops (Gemm, Relu,
//! Softmax, Mul, Add), tree ensembles in `ai.onnx.ml`'s TreeEnsembleClassifier, the one
//! tree op tract implements (it has no TreeEnsembleRegressor). The feature pipeline stays
//! outside the graph: it is applied in Rust from the manifest, by the same code in training
//! and serving.

use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Tensor as TensorType};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType,
};
use tract_onnx::prelude::*;

use crate::gbt::{Ensemble, Node, Tree};
use crate::model::Model;
use crate::network::{Head, Network};

pub const INPUT: &str = "features";
const OPSET: i64 = 13;
const IR_VERSION: i64 = 8;
const ML_DOMAIN: &str = "ai.onnx.ml";
/// TreeEnsembleClassifier's first version; later ones add attributes the export does not use.
const ML_OPSET: i64 = 1;
/// Trees per TreeEnsembleClassifier op (see [`export_trees`]). Measured in tract with 100
/// trees of 31 leaves: 1, 2, 4 and 8 trees per op took 243, 174, 162 and 222 µs for one
/// row, 61, 76, 114 and 178 ms for a thousand, and 168, 31, 13 and 8 ms to load: 4 serves a
/// row at a time best and loads fast.
const TREES_PER_OP: usize = 4;

/// The graph's output name for a head.
pub fn output_name(head: Head) -> &'static str {
    match head {
        Head::Classes(_) => "probabilities",
        Head::Regression { .. } => "prediction",
    }
}

fn initializer(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn int_initializer(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: value, ..Default::default() }
}

fn ints_attribute(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: values, ..Default::default() }
}

fn floats_attribute(name: &str, values: Vec<f32>) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Floats as i32, floats: values, ..Default::default() }
}

fn string_attribute(name: &str, value: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::String as i32, s: value.into(), ..Default::default() }
}

fn strings_attribute(name: &str, values: Vec<&str>) -> AttributeProto {
    let strings = values.into_iter().map(Into::into).collect();
    AttributeProto { name: name.into(), r#type: AttributeType::Strings as i32, strings, ..Default::default() }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.to_owned(),
        name: output.to_owned(),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: vec![output.to_owned()],
        attribute,
        ..Default::default()
    }
}

/// A float tensor `[rows, columns]` with a symbolic row count.
fn matrix_value(name: &str, columns: usize) -> ValueInfoProto {
    let dims = vec![
        Dimension { value: Some(dimension::Value::DimParam("rows".into())), ..Default::default() },
        Dimension { value: Some(dimension::Value::DimValue(columns as i64)), ..Default::default() },
    ];
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(TensorType {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A model of one graph from `features [rows, inputs]` to `output [rows, width]`.
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: usize,
    output: &'static str,
    width: usize,
    /// Whether the graph uses `ai.onnx.ml` ops.
    machine_learning_ops: bool,
}

impl Graph {
    fn encode(self, producer_version: &str) -> Vec<u8> {
        let graph = GraphProto {
            name: "sluice".into(),
            node: self.nodes,
            initializer: self.initializers,
            input: vec![matrix_value(INPUT, self.inputs)],
            output: vec![matrix_value(self.output, self.width)],
            ..Default::default()
        };
        let mut opset_import = vec![OperatorSetIdProto { domain: String::new(), version: OPSET }];
        if self.machine_learning_ops {
            opset_import.push(OperatorSetIdProto { domain: ML_DOMAIN.into(), version: ML_OPSET });
        }
        let model = ModelProto {
            ir_version: IR_VERSION,
            opset_import,
            producer_name: "sluice-trainer".into(),
            producer_version: producer_version.to_owned(),
            graph: Some(graph),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

/// The network as an ONNX model: `features [rows, inputs]` → probabilities or prediction.
pub fn export(network: &Network, producer_version: &str) -> Vec<u8> {
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let mut current = INPUT.to_owned();
    for (index, layer) in network.layers.iter().enumerate() {
        let (weights, bias, output) = (format!("W{index}"), format!("b{index}"), format!("dense{index}"));
        initializers.push(initializer(&weights, &[layer.input, layer.output], &layer.weights));
        initializers.push(initializer(&bias, &[layer.output], &layer.bias));
        nodes.push(node("Gemm", &[&current, &weights, &bias], &output, Vec::new()));
        current = output;
        if index + 1 < network.layers.len() {
            let activated = format!("relu{index}");
            nodes.push(node("Relu", &[&current], &activated, Vec::new()));
            current = activated;
        }
    }
    let outputs = network.layers.last().map_or(0, |l| l.output);
    let name = output_name(network.head);
    match network.head {
        Head::Classes(_) => nodes.push(node("Softmax", &[&current], name, vec![int_attribute("axis", 1)])),
        Head::Regression { mean, std } => {
            initializers.push(initializer("target_std", &[1], &[std]));
            initializers.push(initializer("target_mean", &[1], &[mean]));
            nodes.push(node("Mul", &[&current, "target_std"], "scaled", Vec::new()));
            nodes.push(node("Add", &["scaled", "target_mean"], name, Vec::new()));
        }
    }
    let graph = Graph {
        nodes,
        initializers,
        inputs: network.inputs(),
        output: name,
        width: outputs,
        machine_learning_ops: false,
    };
    graph.encode(producer_version)
}

/// The ensemble as TreeEnsembleClassifier ops of at most `TREES_PER_OP` trees, each the SUM
/// of its leaves' votes per class without `base_values` (the first trees carry the starting
/// scores) or transform, their scores added up (`Sum`).
///
/// tract finds a leaf's votes by walking the op's vote list from its start, so one op
/// holding every tree costs each tree a walk past the votes of the trees before it: time
/// quadratic in the ensemble's size (610 trees on 360 rows: 7.6 s in one op). Small ops keep
/// the walks short; fewer ops keep the graph's per-op cost down.
///
/// k classes: tree `i` votes for class `i % k`, and `Softmax` follows. One score (two
/// classes, regression): the votes go to class 1 of two, never to class 0 alone, because
/// both runtimes special-case a two-class op voting for class 0 only (tract outputs
/// `(1 − s, s)`; onnxruntime skips the transform when every vote is positive). Two classes
/// then get the `Softmax` of `(0, s)`, the logistic of `s`; regression a `Slice` keeping
/// column 1, the prediction.
pub fn export_trees(ensemble: &Ensemble, producer_version: &str) -> Vec<u8> {
    let outputs = ensemble.outputs();
    let (classes, first_class) = if outputs == 1 { (2, 1) } else { (outputs, 0) };
    let mut nodes = Vec::new();
    let mut summed = Vec::new();
    for (op, trees) in ensemble.trees.chunks(TREES_PER_OP).enumerate() {
        let first_tree = op * TREES_PER_OP;
        let class_of = |tree: usize| (first_class + (first_tree + tree) % outputs) as i64;
        let scores = format!("scores{op}");
        let mut trees_op =
            node("TreeEnsembleClassifier", &[INPUT], &format!("label{op}"), tree_attributes(trees, classes, class_of));
        trees_op.domain = ML_DOMAIN.into();
        trees_op.output.push(scores.clone());
        nodes.push(trees_op);
        summed.push(scores);
    }
    let summed: Vec<&str> = summed.iter().map(String::as_str).collect();
    nodes.push(node("Sum", &summed, "scores", Vec::new()));
    let mut initializers = Vec::new();
    let name = output_name(ensemble.head);
    let width = match ensemble.head {
        Head::Classes(classes) => {
            nodes.push(node("Softmax", &["scores"], name, vec![int_attribute("axis", 1)]));
            classes
        }
        Head::Regression { .. } => {
            for (initializer_name, value) in [("score_start", 1), ("score_end", 2), ("score_axis", 1)] {
                initializers.push(int_initializer(initializer_name, &[value]));
            }
            nodes.push(node("Slice", &["scores", "score_start", "score_end", "score_axis"], name, Vec::new()));
            1
        }
    };
    let graph = Graph { nodes, initializers, inputs: ensemble.inputs, output: name, width, machine_learning_ops: true };
    graph.encode(producer_version)
}

/// A TreeEnsembleClassifier's attributes for `trees` (numbered from 0 within the op) over
/// `classes` class labels, each tree's leaves voting for `class_of(tree)`.
fn tree_attributes(trees: &[Tree], classes: usize, class_of: impl Fn(usize) -> i64) -> Vec<AttributeProto> {
    let mut tree_ids = Vec::new();
    let mut node_ids = Vec::new();
    let mut feature_ids = Vec::new();
    let mut modes = Vec::new();
    let mut thresholds = Vec::new();
    let mut true_ids = Vec::new();
    let mut false_ids = Vec::new();
    let mut missing_true = Vec::new();
    let (mut vote_trees, mut vote_nodes, mut vote_classes, mut vote_weights) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (tree_id, tree) in trees.iter().enumerate() {
        for (node_id, node) in tree.nodes.iter().enumerate() {
            tree_ids.push(tree_id as i64);
            node_ids.push(node_id as i64);
            match *node {
                Node::Split { column, threshold, missing_left, left, right } => {
                    feature_ids.push(i64::from(column));
                    modes.push("BRANCH_LEQ");
                    thresholds.push(threshold);
                    true_ids.push(i64::from(left));
                    false_ids.push(i64::from(right));
                    missing_true.push(i64::from(missing_left));
                }
                Node::Leaf(value) => {
                    feature_ids.push(0);
                    modes.push("LEAF");
                    thresholds.push(0.0);
                    true_ids.push(0);
                    false_ids.push(0);
                    missing_true.push(0);
                    vote_trees.push(tree_id as i64);
                    vote_nodes.push(node_id as i64);
                    vote_classes.push(class_of(tree_id));
                    vote_weights.push(value);
                }
            }
        }
    }
    vec![
        ints_attribute("classlabels_int64s", (0..classes as i64).collect()),
        ints_attribute("nodes_treeids", tree_ids),
        ints_attribute("nodes_nodeids", node_ids),
        ints_attribute("nodes_featureids", feature_ids),
        strings_attribute("nodes_modes", modes),
        floats_attribute("nodes_values", thresholds),
        ints_attribute("nodes_truenodeids", true_ids),
        ints_attribute("nodes_falsenodeids", false_ids),
        ints_attribute("nodes_missing_value_tracks_true", missing_true),
        ints_attribute("class_treeids", vote_trees),
        ints_attribute("class_nodeids", vote_nodes),
        ints_attribute("class_ids", vote_classes),
        floats_attribute("class_weights", vote_weights),
        string_attribute("post_transform", "NONE"),
    ]
}

/// Runs an ONNX model with tract on `rows × columns` features; returns its first output.
pub fn run_with_tract(model: &[u8], features: &[f32], rows: usize, columns: usize) -> TractResult<Vec<f32>> {
    let runnable = tract_onnx::onnx()
        .model_for_read(&mut &model[..])?
        .with_input_fact(0, f32::fact([rows, columns]).into())?
        .into_optimized()?
        .into_runnable()?;
    let input = tract_ndarray::Array2::from_shape_vec((rows, columns), features.to_vec())?;
    let outputs = runnable.run(tvec!(Tensor::from(input).into()))?;
    Ok(outputs[0].to_plain_array_view::<f32>()?.iter().copied().collect())
}

/// How far the exported graph's outputs are from the trained model's on the same rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportCheck {
    /// The largest absolute difference between two outputs.
    pub max_abs_difference: f32,
    /// The outputs' scale: the largest magnitude among the network's outputs (at least the
    /// smallest normal f32, so that an all-zero output is not divided by zero).
    pub scale: f32,
}

impl ExportCheck {
    pub fn of(expected: &[f32], exported: &[f32]) -> Self {
        // `f32::max` would skip a NaN; a NaN output must fail the check instead.
        let max_abs_difference = exported
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, |worst, d| if worst.is_nan() || d.is_nan() { f32::NAN } else { worst.max(d) });
        let scale = expected.iter().map(|v| v.abs()).fold(f32::MIN_POSITIVE, f32::max);
        Self { max_abs_difference, scale }
    }

    /// The difference as a share of the scale: what the tolerance is compared with. A NaN
    /// anywhere makes it NaN, which no tolerance accepts.
    pub fn relative_difference(&self) -> f32 {
        self.max_abs_difference / self.scale
    }

    pub fn within(&self, tolerance: f32) -> bool {
        self.relative_difference() <= tolerance
    }
}

/// The export check runs tract on at most this many validation rows: a graph that differs
/// from the model differs on a few thousand rows already, and tract runs trees at about a
/// microsecond per tree and row.
pub const CHECK_ROWS: usize = 5000;

/// Every k-th row of `features` (`columns` each), k as small as keeps at most
/// [`CHECK_ROWS`] rows.
pub fn check_sample(features: &[f32], columns: usize) -> Vec<f32> {
    let step = (features.len() / columns).div_ceil(CHECK_ROWS).max(1);
    features.chunks_exact(columns).step_by(step).flatten().copied().collect()
}

/// Runs the exported graph in tract on `features` and compares it with the model.
pub fn check_export(model: &Model, graph: &[u8], features: &[f32], rows: usize) -> TractResult<ExportCheck> {
    let exported = run_with_tract(graph, features, rows, model.inputs())?;
    let expected = model.predict(features, rows);
    if exported.len() != expected.len() {
        let message = format!("the graph gives {} values, the model {}", exported.len(), expected.len());
        return Err(TractError::msg(message));
    }
    Ok(ExportCheck::of(&expected, &exported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random_network(hidden: &[usize], head: Head) -> (Network, Vec<f32>) {
        let mut rng = Rng::new(9);
        let mut network = Network::new(6, hidden, head, &mut rng);
        for layer in &mut network.layers {
            layer.weights.iter_mut().for_each(|w| *w = rng.normal() as f32);
            layer.bias.iter_mut().for_each(|b| *b = rng.normal() as f32);
        }
        let features = (0..6 * 25).map(|_| rng.normal() as f32).collect();
        (network, features)
    }

    #[test]
    fn exported_graphs_match_the_network_in_tract() {
        let cases = [
            (vec![], Head::Classes(2)),
            (vec![], Head::Classes(4)),
            (vec![8], Head::Classes(3)),
            (vec![8, 4], Head::Regression { mean: 12.5, std: 3.0 }),
            (vec![], Head::Regression { mean: -1.0, std: 0.5 }),
        ];
        for (hidden, head) in cases {
            let (network, features) = random_network(&hidden, head);
            let model = Model::Network(network);
            let check = check_export(&model, &model.export("test"), &features, 25).unwrap();
            assert!(check.within(crate::ONNX_TOLERANCE), "{hidden:?} {head:?}: {check:?}");
        }
    }

    #[test]
    fn regressions_at_any_scale_pass_the_export_check() {
        for (mean, std) in [(250_000.0, 80_000.0), (3e-4, 1e-4), (0.0, 1.0), (-1e6, 5e5)] {
            let (network, features) = random_network(&[8], Head::Regression { mean, std });
            let model = Model::Network(network);
            let check = check_export(&model, &model.export("test"), &features, 25).unwrap();
            assert!(check.within(crate::ONNX_TOLERANCE), "mean {mean}, std {std}: {check:?}");
        }
    }

    /// A tree of random splits (some on missing values, some sending them left) over
    /// `inputs` columns, at most `depth` deep, with leaf values `offset + scale · N(0, 1)`.
    fn random_tree(rng: &mut Rng, inputs: usize, depth: usize, offset: f64, scale: f64) -> Tree {
        fn grow(nodes: &mut Vec<Node>, rng: &mut Rng, inputs: usize, depth: usize, values: (f64, f64)) -> u32 {
            let index = nodes.len();
            nodes.push(Node::Leaf(0.0));
            nodes[index] = if depth == 0 || rng.uniform() < 0.2 {
                Node::Leaf((values.0 + values.1 * rng.normal()) as f32)
            } else {
                let (column, threshold) = ((rng.next_u64() % inputs as u64) as u32, rng.normal() as f32);
                let missing_left = rng.uniform() < 0.5;
                let left = grow(nodes, rng, inputs, depth - 1, values);
                let right = grow(nodes, rng, inputs, depth - 1, values);
                Node::Split { column, threshold, missing_left, left, right }
            };
            index as u32
        }
        let mut nodes = Vec::new();
        grow(&mut nodes, rng, inputs, depth, (offset, scale));
        Tree { nodes }
    }

    #[test]
    fn exported_tree_ensembles_match_in_tract_missing_values_included() {
        let cases = [
            (Head::Classes(2), 0.0, 1.0),
            // Every vote positive: onnxruntime's binary path would skip the transform.
            (Head::Classes(2), 2.0, 0.1),
            (Head::Classes(4), 0.0, 1.0),
            (Head::Regression { mean: 250_000.0, std: 80_000.0 }, 20_000.0, 5_000.0),
            (Head::Regression { mean: 3e-4, std: 1e-4 }, -2e-5, 1e-5),
        ];
        let mut rng = Rng::new(12);
        let (inputs, rows) = (6, 40);
        let features: Vec<f32> =
            (0..inputs * rows).map(|_| if rng.uniform() < 0.1 { f32::NAN } else { rng.normal() as f32 }).collect();
        for (head, offset, scale) in cases {
            // More trees than one op takes.
            let trees = (0..2 * TREES_PER_OP + 3).map(|_| random_tree(&mut rng, inputs, 4, offset, scale)).collect();
            let model = Model::Trees(Ensemble { inputs, head, trees });
            let check = check_export(&model, &model.export("test"), &features, rows).unwrap();
            assert!(check.within(crate::ONNX_TOLERANCE), "{head:?}: {check:?}");
        }
    }

    #[test]
    fn a_regression_ensemble_declares_one_prediction_and_the_ml_domain() {
        let tree = Tree { nodes: vec![Node::Leaf(1.5)] };
        let ensemble = Ensemble { inputs: 3, head: Head::Regression { mean: 0.0, std: 1.0 }, trees: vec![tree] };
        let model = ModelProto::decode(export_trees(&ensemble, "1.0").as_slice()).unwrap();
        let graph = model.graph.unwrap();
        assert_eq!(graph.output.len(), 1);
        assert_eq!(graph.output[0], matrix_value("prediction", 1));
        assert!(model.opset_import.iter().any(|o| o.domain == ML_DOMAIN && o.version == ML_OPSET));
        let prediction = run_with_tract(&export_trees(&ensemble, "1.0"), &[0.0, 1.0, f32::NAN], 1, 3).unwrap();
        assert_eq!(prediction, [1.5], "a lone leaf is a tree too");
    }

    #[test]
    fn the_check_samples_rows_evenly_up_to_its_limit() {
        let columns = 2;
        let rows: Vec<f32> = (0..3 * CHECK_ROWS).flat_map(|row| [row as f32, -(row as f32)]).collect();
        let sample = check_sample(&rows, columns);
        assert_eq!(sample.len() / columns, CHECK_ROWS);
        assert_eq!(sample[..4], [0.0, -0.0, 3.0, -3.0], "every third row");
        assert_eq!(check_sample(&rows[..20], columns), rows[..20], "few rows are all checked");
    }

    #[test]
    fn the_check_is_relative_to_the_outputs_scale() {
        // f32 rounding at 10^5: a difference of 0.0078 is one unit in the last place.
        let large = ExportCheck::of(&[123_456.0, -98_765.4], &[123_456.01, -98_765.4]);
        assert!(large.within(1e-4), "{large:?}");
        let small = ExportCheck::of(&[2e-4, 1e-4], &[2.00001e-4, 1e-4]);
        assert!(small.within(1e-4), "{small:?}");
        let wrong_small = ExportCheck::of(&[2e-4, 1e-4], &[3e-4, 1e-4]);
        assert!(!wrong_small.within(1e-4), "an absolute tolerance would have let 1e-4 through: {wrong_small:?}");
        let wrong_large = ExportCheck::of(&[123_456.0], &[123_500.0]);
        assert!(!wrong_large.within(1e-4), "{wrong_large:?}");
        assert!(ExportCheck::of(&[0.0, 0.0], &[0.0, 0.0]).within(1e-4));
        assert!(!ExportCheck::of(&[1.0], &[f32::NAN]).within(1e-4));
    }

    #[test]
    fn the_graph_declares_its_input_and_output() {
        let (network, _) = random_network(&[], Head::Classes(2));
        let model = ModelProto::decode(export(&network, "1.0").as_slice()).unwrap();
        let graph = model.graph.unwrap();
        assert_eq!(graph.input[0].name, INPUT);
        assert_eq!(graph.output[0].name, "probabilities");
        assert_eq!(model.opset_import[0].version, OPSET);
    }
}
