//! Export to ONNX with standard ops only (Gemm, Relu, Softmax, Mul, Add), which tract and
//! onnxruntime both run. The feature pipeline stays outside the graph: it is applied in
//! Rust from the manifest, by the same code in training and serving.

use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Tensor as TensorType};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType,
};
use tract_onnx::prelude::*;

use crate::network::{Head, Network};

pub const INPUT: &str = "features";
const OPSET: i64 = 13;
const IR_VERSION: i64 = 8;

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
        Head::Classes(_) => {
            let axis =
                AttributeProto { name: "axis".into(), r#type: AttributeType::Int as i32, i: 1, ..Default::default() };
            nodes.push(node("Softmax", &[&current], name, vec![axis]));
        }
        Head::Regression { mean, std } => {
            initializers.push(initializer("target_std", &[1], &[std]));
            initializers.push(initializer("target_mean", &[1], &[mean]));
            nodes.push(node("Mul", &[&current, "target_std"], "scaled", Vec::new()));
            nodes.push(node("Add", &["scaled", "target_mean"], name, Vec::new()));
        }
    }
    let graph = GraphProto {
        name: "sluice".into(),
        node: nodes,
        initializer: initializers,
        input: vec![matrix_value(INPUT, network.inputs())],
        output: vec![matrix_value(name, outputs)],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "sluice-trainer".into(),
        producer_version: producer_version.to_owned(),
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
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

/// The largest absolute difference between the exported graph (run by tract) and the
/// in-memory network on the same features.
/// How far the exported graph's outputs are from the trained network's on the same rows.
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

/// Runs the exported graph in tract on `features` and compares it with the network.
pub fn check_export(network: &Network, model: &[u8], features: &[f32], rows: usize) -> TractResult<ExportCheck> {
    let exported = run_with_tract(model, features, rows, network.inputs())?;
    let expected = network.predict(features, rows);
    if exported.len() != expected.len() {
        let message = format!("the graph gives {} values, the network {}", exported.len(), expected.len());
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
            let model = export(&network, "test");
            let check = check_export(&network, &model, &features, 25).unwrap();
            assert!(check.within(crate::ONNX_TOLERANCE), "{hidden:?} {head:?}: {check:?}");
        }
    }

    #[test]
    fn regressions_at_any_scale_pass_the_export_check() {
        for (mean, std) in [(250_000.0, 80_000.0), (3e-4, 1e-4), (0.0, 1.0), (-1e6, 5e5)] {
            let (network, features) = random_network(&[8], Head::Regression { mean, std });
            let model = export(&network, "test");
            let check = check_export(&network, &model, &features, 25).unwrap();
            assert!(check.within(crate::ONNX_TOLERANCE), "mean {mean}, std {std}: {check:?}");
        }
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
