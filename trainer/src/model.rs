//! What training produced, whichever the algorithm: a network (linear or MLP) or a tree
//! ensemble. Its `predict` computes what its exported graph computes, so the export check,
//! the metrics and the baseline treat every algorithm alike.

use crate::gbt::Ensemble;
use crate::network::Network;
use crate::onnx;

#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    Network(Network),
    Trees(Ensemble),
}

impl Model {
    pub fn inputs(&self) -> usize {
        match self {
            Self::Network(network) => network.inputs(),
            Self::Trees(ensemble) => ensemble.inputs,
        }
    }

    /// Class probabilities (`rows × classes`) or predictions in target units (`rows × 1`).
    pub fn predict(&self, x: &[f32], rows: usize) -> Vec<f32> {
        match self {
            Self::Network(network) => network.predict(x, rows),
            Self::Trees(ensemble) => ensemble.predict(x, rows),
        }
    }

    /// The model as an ONNX graph from `features` to the head's output.
    pub fn export(&self, producer_version: &str) -> Vec<u8> {
        match self {
            Self::Network(network) => onnx::export(network, producer_version),
            Self::Trees(ensemble) => onnx::export_trees(ensemble, producer_version),
        }
    }
}
