//! Dense networks: a linear model is one layer, an MLP adds hidden ReLU layers. An MLP trains
//! with Adam on minibatches, stopped when the full training loss stops improving; a linear
//! model is solved exactly instead (`crate::linear`).

use crate::cluster::{Cluster, ClusterError};
use crate::rng::Rng;

/// `y = x · W + b`, `W` stored row-major as `[input][output]` (ONNX Gemm without transpose).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub input: usize,
    pub output: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// What the last layer's outputs mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head {
    /// Softmax over `classes` outputs; cross-entropy loss.
    Classes(usize),
    /// One output in standardised target units; `prediction = output * std + mean`.
    Regression { mean: f32, std: f32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub layers: Vec<Dense>,
    pub head: Head,
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Adam's initial rate; divided by ten on each plateau, down to a thousandth.
    pub learning_rate: f32,
    pub l2: f32,
    pub max_epochs: usize,
    pub batch_size: usize,
    /// Stop when the loss improves by less than this (relative) for `patience` epochs.
    pub tolerance: f64,
    pub patience: usize,
}

/// How training went.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    pub epochs: usize,
    pub converged: bool,
    pub final_loss: f64,
}

impl Dense {
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows * self.output);
        for row in 0..rows {
            out.extend_from_slice(&self.bias);
            let (input, output) = (&x[row * self.input..(row + 1) * self.input], row * self.output);
            for (i, &value) in input.iter().enumerate() {
                if value == 0.0 {
                    continue;
                }
                let weights = &self.weights[i * self.output..(i + 1) * self.output];
                for (o, &w) in weights.iter().enumerate() {
                    out[output + o] += value * w;
                }
            }
        }
        out
    }
}

impl Network {
    /// `hidden` units per hidden layer (empty: a linear model). Hidden layers get He
    /// initialisation; a linear model starts at zero.
    pub fn new(inputs: usize, hidden: &[usize], head: Head, rng: &mut Rng) -> Self {
        let outputs = match head {
            Head::Classes(classes) => classes,
            Head::Regression { .. } => 1,
        };
        let sizes: Vec<usize> =
            std::iter::once(inputs).chain(hidden.iter().copied()).chain(std::iter::once(outputs)).collect();
        let layers = sizes
            .windows(2)
            .map(|pair| {
                let (input, output) = (pair[0], pair[1]);
                let scale = if hidden.is_empty() { 0.0 } else { (2.0 / input as f64).sqrt() };
                let weights = (0..input * output).map(|_| (rng.normal() * scale) as f32).collect();
                Dense { input, output, weights, bias: vec![0.0; output] }
            })
            .collect();
        Self { layers, head }
    }

    /// Takes the first host's initial weights, so that every host of a job starts where it
    /// does (each drew its own).
    pub fn start_as_the_first_host(&mut self, cluster: &mut Cluster) -> Result<(), ClusterError> {
        for layer in &mut self.layers {
            let mut values: Vec<f64> = layer.weights.iter().chain(&layer.bias).map(|&v| f64::from(v)).collect();
            cluster.broadcast(&mut values)?;
            for (parameter, value) in layer.weights.iter_mut().chain(&mut layer.bias).zip(values) {
                *parameter = value as f32;
            }
        }
        Ok(())
    }

    pub fn inputs(&self) -> usize {
        self.layers[0].input
    }

    /// Pre-activation outputs of every layer (the last one is the network's raw output).
    fn activations(&self, x: &[f32], rows: usize) -> Vec<Vec<f32>> {
        let mut outputs: Vec<Vec<f32>> = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            let input: Vec<f32> = match index {
                0 => x.to_vec(),
                _ => outputs[index - 1].iter().map(|&v| v.max(0.0)).collect(),
            };
            outputs.push(layer.forward(&input, rows));
        }
        outputs
    }

    /// What the exported ONNX graph outputs: class probabilities (`rows × classes`) or
    /// predictions in target units (`rows × 1`).
    pub fn predict(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let raw = self.activations(x, rows).pop().expect("at least one layer");
        match self.head {
            Head::Classes(classes) => softmax(&raw, classes),
            Head::Regression { mean, std } => raw.iter().map(|&v| v * std + mean).collect(),
        }
    }

    /// Mean loss over every host's rows plus the L2 penalty. `y` holds class indices or
    /// standardised targets.
    pub fn loss(&self, x: &[f32], y: &[f32], rows: usize, l2: f32, cluster: &mut Cluster) -> Result<f64, ClusterError> {
        let raw = self.activations(x, rows).pop().expect("at least one layer");
        let data = match self.head {
            Head::Classes(classes) => {
                let probabilities = softmax(&raw, classes);
                (0..rows).map(|r| -(f64::from(probabilities[r * classes + y[r] as usize]).max(1e-15)).ln()).sum::<f64>()
            }
            Head::Regression { .. } => raw.iter().zip(y).map(|(&o, &t)| 0.5 * f64::from(o - t).powi(2)).sum::<f64>(),
        };
        let mut sums = [data, rows as f64];
        cluster.sum(&mut sums)?;
        let penalty: f64 = self.layers.iter().flat_map(|l| &l.weights).map(|&w| f64::from(w) * f64::from(w)).sum();
        Ok(sums[0] / sums[1].max(1.0) + 0.5 * f64::from(l2) * penalty)
    }

    /// The loss's gradient summed over the rows, without the penalty: every layer's weights
    /// then its biases, layer after layer, and last the row count. Hosts add these up.
    fn gradient_sums(&self, x: &[f32], y: &[f32], rows: usize) -> Vec<f64> {
        let outputs = self.activations(x, rows);
        let last = outputs.last().expect("at least one layer");
        // d loss / d raw output of the last layer.
        let mut delta: Vec<f32> = match self.head {
            Head::Classes(classes) => {
                let mut p = softmax(last, classes);
                for r in 0..rows {
                    p[r * classes + y[r] as usize] -= 1.0;
                }
                p
            }
            Head::Regression { .. } => last.iter().zip(y).map(|(&o, &t)| o - t).collect(),
        };
        let mut gradients = vec![(Vec::new(), Vec::new()); self.layers.len()];
        for index in (0..self.layers.len()).rev() {
            let layer = &self.layers[index];
            let input: Vec<f32> = match index {
                0 => x.to_vec(),
                _ => outputs[index - 1].iter().map(|&v| v.max(0.0)).collect(),
            };
            let mut grad_w = vec![0.0_f32; layer.weights.len()];
            let mut grad_b = vec![0.0_f32; layer.output];
            for r in 0..rows {
                let d = &delta[r * layer.output..(r + 1) * layer.output];
                for (o, &v) in d.iter().enumerate() {
                    grad_b[o] += v;
                }
                for (i, &a) in input[r * layer.input..(r + 1) * layer.input].iter().enumerate() {
                    if a == 0.0 {
                        continue;
                    }
                    for (o, &v) in d.iter().enumerate() {
                        grad_w[i * layer.output + o] += a * v;
                    }
                }
            }
            if index > 0 {
                let previous = &outputs[index - 1];
                let mut next = vec![0.0_f32; rows * layer.input];
                for r in 0..rows {
                    for i in 0..layer.input {
                        if previous[r * layer.input + i] <= 0.0 {
                            continue; // ReLU passes no gradient where it was off.
                        }
                        let weights = &layer.weights[i * layer.output..(i + 1) * layer.output];
                        let d = &delta[r * layer.output..(r + 1) * layer.output];
                        next[r * layer.input + i] = weights.iter().zip(d).map(|(w, v)| w * v).sum();
                    }
                }
                delta = next;
            }
            gradients[index] = (grad_w, grad_b);
        }
        let mut sums: Vec<f64> = gradients.iter().flat_map(|(w, b)| w.iter().chain(b)).map(|&g| f64::from(g)).collect();
        sums.push(rows as f64);
        sums
    }

    /// The gradient of the mean loss plus the penalty, per layer, from [`Self::gradient_sums`]
    /// (of one host, or added up over all of them).
    fn mean_gradients(&self, sums: &[f64], l2: f32) -> Vec<(Vec<f32>, Vec<f32>)> {
        let (sums, rows) = sums.split_at(sums.len() - 1);
        let rows = rows[0].max(1.0);
        let mut rest = sums;
        self.layers
            .iter()
            .map(|layer| {
                let (weights, tail) = rest.split_at(layer.weights.len());
                let (biases, tail) = tail.split_at(layer.output);
                rest = tail;
                let grad_w = weights.iter().zip(&layer.weights).map(|(&g, &w)| (g / rows) as f32 + l2 * w).collect();
                let grad_b = biases.iter().map(|&g| (g / rows) as f32).collect();
                (grad_w, grad_b)
            })
            .collect()
    }

    /// Trains on `x` (`rows × inputs`) and `y`, this host's share of the rows: every
    /// minibatch step adds up the gradient sums of every host's slice of the step, so the
    /// hosts take the same steps and hold the same network throughout.
    pub fn train(
        &mut self,
        x: &[f32],
        y: &[f32],
        rows: usize,
        options: &TrainOptions,
        rng: &mut Rng,
        cluster: &mut Cluster,
    ) -> Result<TrainReport, ClusterError> {
        let _flushed = FlushSubnormals::new();
        let mut adam: Vec<Adam> = self.layers.iter().map(|l| Adam::new(l.weights.len(), l.bias.len())).collect();
        let mut order: Vec<usize> = (0..rows).collect();
        let mut best = f64::INFINITY;
        let mut stale = 0;
        let mut step = 0;
        let inputs = self.inputs();
        let mut all_rows = [rows as f64];
        cluster.sum(&mut all_rows)?;
        // Steps per epoch, the same on every host: each host's share of a step is its rows
        // spread evenly over the steps (all of a host's rows, on one host).
        let steps = (all_rows[0] as usize).div_ceil(options.batch_size.max(1)).max(1);
        // Adam with a fixed rate circles the optimum; on each plateau the rate drops tenfold,
        // and training has converged when the loss no longer improves at the smallest rate.
        let mut rate = options.learning_rate;
        let smallest_rate = options.learning_rate / 1000.0;
        for epoch in 1..=options.max_epochs {
            rng.shuffle(&mut order);
            for slice in 0..steps {
                let batch = &order[slice * rows / steps..(slice + 1) * rows / steps];
                let mut bx = Vec::with_capacity(batch.len() * inputs);
                let mut by = Vec::with_capacity(batch.len());
                for &r in batch {
                    bx.extend_from_slice(&x[r * inputs..(r + 1) * inputs]);
                    by.push(y[r]);
                }
                step += 1;
                let mut sums = self.gradient_sums(&bx, &by, batch.len());
                cluster.sum(&mut sums)?;
                let gradients = self.mean_gradients(&sums, options.l2);
                for ((layer, state), (grad_w, grad_b)) in self.layers.iter_mut().zip(&mut adam).zip(gradients) {
                    state.update(&mut layer.weights, &grad_w, &mut layer.bias, &grad_b, rate, step);
                }
            }
            let loss = self.loss(x, y, rows, options.l2, cluster)?;
            if best - loss > options.tolerance * best.abs().max(1.0) {
                best = loss;
                stale = 0;
            } else {
                stale += 1;
                if stale >= options.patience {
                    if rate <= smallest_rate {
                        return Ok(TrainReport { epochs: epoch, converged: true, final_loss: loss });
                    }
                    rate /= 10.0;
                    stale = 0;
                }
            }
        }
        let final_loss = self.loss(x, y, rows, options.l2, cluster)?;
        Ok(TrainReport { epochs: options.max_epochs, converged: false, final_loss })
    }
}

/// Treats subnormal floats as zero while it lives, on this thread (x86's MXCSR flush-to-zero
/// and denormals-are-zero, arm64's FPCR flush-to-zero). Training pushes some values toward
/// zero (the weights and Adam moments of units that stopped learning); once they are
/// subnormal, each multiplication with them takes the processor's slow path, about a
/// hundred times longer. Measured: five epochs of a 64-unit MLP on 160,000 rows took 101 s,
/// the first epoch 6 s. Values below 1.2e-38 change no prediction.
struct FlushSubnormals {
    #[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
    saved: u64,
}

impl FlushSubnormals {
    #[cfg(target_arch = "x86_64")]
    fn new() -> Self {
        let mut saved: u32 = 0;
        // SAFETY: stmxcsr stores the control register to the u32 given; ldmxcsr loads one
        // that differs only in the FTZ (bit 15) and DAZ (bit 6) modes.
        unsafe {
            std::arch::asm!("stmxcsr [{0}]", in(reg) &raw mut saved, options(nostack, preserves_flags));
            let flushed = saved | 0x8040;
            std::arch::asm!("ldmxcsr [{0}]", in(reg) &raw const flushed, options(nostack, readonly, preserves_flags));
        }
        Self { saved: u64::from(saved) }
    }

    #[cfg(target_arch = "aarch64")]
    fn new() -> Self {
        let saved: u64;
        // SAFETY: reads the floating-point control register and sets its FZ bit (24) only.
        unsafe {
            std::arch::asm!("mrs {0}, fpcr", out(reg) saved, options(nomem, nostack, preserves_flags));
            std::arch::asm!("msr fpcr, {0}", in(reg) saved | (1 << 24), options(nomem, nostack, preserves_flags));
        }
        Self { saved }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn new() -> Self {
        Self { saved: 0 }
    }
}

impl Drop for FlushSubnormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = self.saved as u32;
            // SAFETY: restores the control register stored in `new`.
            unsafe {
                std::arch::asm!("ldmxcsr [{0}]", in(reg) &raw const saved, options(nostack, readonly, preserves_flags));
            }
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: restores the control register read in `new`.
        unsafe {
            std::arch::asm!("msr fpcr, {0}", in(reg) self.saved, options(nomem, nostack, preserves_flags));
        }
    }
}

pub fn softmax(raw: &[f32], classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(raw.len());
    for row in raw.chunks(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
        let sum: f32 = exps.iter().sum();
        out.extend(exps.iter().map(|e| e / sum));
    }
    out
}

struct Adam {
    m_w: Vec<f32>,
    v_w: Vec<f32>,
    m_b: Vec<f32>,
    v_b: Vec<f32>,
}

impl Adam {
    fn new(weights: usize, biases: usize) -> Self {
        Self { m_w: vec![0.0; weights], v_w: vec![0.0; weights], m_b: vec![0.0; biases], v_b: vec![0.0; biases] }
    }

    fn update(&mut self, w: &mut [f32], gw: &[f32], b: &mut [f32], gb: &[f32], rate: f32, step: i32) {
        const BETA1: f32 = 0.9;
        const BETA2: f32 = 0.999;
        const EPSILON: f32 = 1e-8;
        let correction1 = 1.0 - BETA1.powi(step);
        let correction2 = 1.0 - BETA2.powi(step);
        for (params, grads, m, v) in [(w, gw, &mut self.m_w, &mut self.v_w), (b, gb, &mut self.m_b, &mut self.v_b)] {
            for i in 0..params.len() {
                m[i] = BETA1 * m[i] + (1.0 - BETA1) * grads[i];
                v[i] = BETA2 * v[i] + (1.0 - BETA2) * grads[i] * grads[i];
                params[i] -= rate * (m[i] / correction1) / ((v[i] / correction2).sqrt() + EPSILON);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Analytic gradients agree with finite differences of the loss.
    fn check_gradients(head: Head, hidden: &[usize], y: &[f32]) {
        let mut rng = Rng::new(3);
        let mut network = Network::new(3, hidden, head, &mut rng);
        for layer in &mut network.layers {
            for w in &mut layer.weights {
                *w = (rng.normal() * 0.5) as f32;
            }
            for b in &mut layer.bias {
                *b = (rng.normal() * 0.1) as f32;
            }
        }
        let x: Vec<f32> = (0..12).map(|_| rng.normal() as f32).collect();
        let (rows, l2) = (4, 0.01);
        let analytic = network.mean_gradients(&network.gradient_sums(&x, y, rows), l2);
        let h = 1e-2_f32;
        for (layer, (analytic_weights, _)) in analytic.iter().enumerate() {
            for (i, &exact) in analytic_weights.iter().enumerate() {
                let mut plus = network.clone();
                plus.layers[layer].weights[i] += h;
                let mut minus = network.clone();
                minus.layers[layer].weights[i] -= h;
                let loss = |n: &Network| n.loss(&x, y, rows, l2, &mut Cluster::solo()).unwrap();
                let numeric = (loss(&plus) - loss(&minus)) / (2.0 * f64::from(h));
                let exact = f64::from(exact);
                assert!(
                    (numeric - exact).abs() < 2e-3 * (1.0 + exact.abs()),
                    "layer {layer} w{i}: {numeric} vs {exact}"
                );
            }
        }
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn subnormals_are_zero_while_training_and_only_then() {
        let halve = || std::hint::black_box(f32::MIN_POSITIVE) * std::hint::black_box(0.5);
        {
            let _flushed = FlushSubnormals::new();
            assert_eq!(halve(), 0.0);
        }
        assert!(halve() > 0.0, "the mode is restored");
    }

    #[test]
    fn gradients_of_a_linear_classifier() {
        check_gradients(Head::Classes(3), &[], &[0.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn gradients_of_an_mlp_regressor() {
        check_gradients(Head::Regression { mean: 0.0, std: 1.0 }, &[5], &[0.3, -1.2, 0.8, 0.0]);
    }

    #[test]
    fn gradients_of_an_mlp_classifier() {
        check_gradients(Head::Classes(2), &[4, 3], &[1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn a_linear_model_separates_separable_classes_and_converges() {
        let mut rng = Rng::new(5);
        let rows = 200;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for r in 0..rows {
            let class = r % 2;
            x.push((rng.normal() * 0.3 + if class == 0 { -2.0 } else { 2.0 }) as f32);
            x.push(rng.normal() as f32);
            y.push(class as f32);
        }
        let mut network = Network::new(2, &[], Head::Classes(2), &mut rng);
        let options = TrainOptions {
            learning_rate: 0.05,
            l2: 1e-4,
            max_epochs: 500,
            batch_size: 32,
            tolerance: 1e-4,
            patience: 5,
        };
        let report = network.train(&x, &y, rows, &options, &mut rng, &mut Cluster::solo()).unwrap();
        assert!(report.converged, "{report:?}");
        let probabilities = network.predict(&x, rows);
        let correct = (0..rows).filter(|&r| (probabilities[r * 2 + 1] > 0.5) == (y[r] == 1.0)).count();
        assert_eq!(correct, rows);
    }

    #[test]
    fn an_mlp_learns_xor() {
        let mut rng = Rng::new(11);
        let x = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0].repeat(16);
        let y = [0.0, 1.0, 1.0, 0.0].repeat(16);
        let mut network = Network::new(2, &[16], Head::Classes(2), &mut rng);
        let options = TrainOptions {
            learning_rate: 0.02,
            l2: 0.0,
            max_epochs: 2000,
            batch_size: 16,
            tolerance: 1e-6,
            patience: 20,
        };
        network.train(&x, &y, 64, &options, &mut rng, &mut Cluster::solo()).unwrap();
        let probabilities = network.predict(&x[..8], 4);
        let predicted: Vec<bool> = (0..4).map(|r| probabilities[r * 2 + 1] > 0.5).collect();
        assert_eq!(predicted, [false, true, true, false], "{probabilities:?}");
    }
}
