//! Linear models solved to the optimum: L-BFGS on the full data, in f64, for least squares
//! (ridge), binary logistic regression with a single logit, and multinomial logistic
//! regression. The objective is scikit-learn's with `C = 1 / (l2 · rows)` (`alpha = l2 ·
//! rows` for ridge): the mean loss plus `l2 / 2 · |W|²`, the intercepts unpenalised.
//!
//! Two classes get one logit `z`, exported as the two-class softmax of `(0, z)`, which is
//! the same model: `softmax(0, z) = (1 − σ(z), σ(z))`. A two-logit softmax would spread the
//! penalty over two weight vectors and so halve it.

use std::collections::VecDeque;

use crate::cluster::{Cluster, ClusterError};
use crate::network::{Dense, Head, Network, TrainReport};

/// Past pairs L-BFGS keeps to shape its steps.
const HISTORY: usize = 10;

/// The model the problem describes. Its parameters are the weights as `[output][input]`
/// (each output's weights one contiguous row, for dense dot products), the intercepts last.
struct Problem<'a> {
    x: &'a [f32],
    y: &'a [f32],
    rows: usize,
    inputs: usize,
    /// Logits per row: 1 for regression and for two classes, the class count otherwise.
    outputs: usize,
    kind: Kind,
    l2: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    LeastSquares,
    Binary,
    Multinomial,
}

impl Problem<'_> {
    fn parameters(&self) -> usize {
        (self.inputs + 1) * self.outputs
    }

    /// The objective at `theta` over every host's rows, its gradient written to `gradient`.
    fn evaluate(&self, theta: &[f64], gradient: &mut [f64], cluster: &mut Cluster) -> Result<f64, ClusterError> {
        let (inputs, outputs) = (self.inputs, self.outputs);
        let (weights, bias) = theta.split_at(inputs * outputs);
        gradient.fill(0.0);
        let (grad_weights, grad_bias) = gradient.split_at_mut(inputs * outputs);
        let mut loss = 0.0;
        let mut z = vec![0.0_f64; outputs];
        for (row, &target) in self.x.chunks_exact(inputs).zip(self.y).take(self.rows) {
            for ((zo, &b), w) in z.iter_mut().zip(bias).zip(weights.chunks_exact(inputs)) {
                *zo = b + dot(row, w);
            }
            // z becomes d loss / d z.
            match self.kind {
                Kind::LeastSquares => {
                    let residual = z[0] - f64::from(target);
                    loss += 0.5 * residual * residual;
                    z[0] = residual;
                }
                Kind::Binary => {
                    let (logit, positive) = (z[0], target == 1.0);
                    // log(1 + e^−t·z) without overflow, t = ±1.
                    let margin = if positive { logit } else { -logit };
                    loss += if margin > 0.0 { (-margin).exp().ln_1p() } else { -margin + margin.exp().ln_1p() };
                    z[0] = sigmoid(logit) - if positive { 1.0 } else { 0.0 };
                }
                Kind::Multinomial => {
                    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
                    let class = target as usize;
                    loss += max + sum.ln() - z[class];
                    for zo in &mut z {
                        *zo = (*zo - max).exp() / sum;
                    }
                    z[class] -= 1.0;
                }
            }
            for ((gb, &d), g) in grad_bias.iter_mut().zip(&z).zip(grad_weights.chunks_exact_mut(inputs)) {
                *gb += d;
                for (gi, &value) in g.iter_mut().zip(row) {
                    *gi += f64::from(value) * d;
                }
            }
        }
        // This host's sums, then every host's.
        let mut sums: Vec<f64> = gradient.iter().copied().chain([loss, self.rows as f64]).collect();
        cluster.sum(&mut sums)?;
        let (gradient_sums, totals) = sums.split_at(gradient.len());
        gradient.copy_from_slice(gradient_sums);
        let (grad_weights, grad_bias) = gradient.split_at_mut(inputs * outputs);
        let scale = 1.0 / totals[1].max(1.0);
        let mut penalty = 0.0;
        for (g, &w) in grad_weights.iter_mut().zip(weights) {
            *g = *g * scale + self.l2 * w;
            penalty += w * w;
        }
        for g in grad_bias {
            *g *= scale;
        }
        Ok(totals[0] * scale + 0.5 * self.l2 * penalty)
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 { 1.0 / (1.0 + (-z).exp()) } else { z.exp() / (1.0 + z.exp()) }
}

/// `Σ aᵢ·bᵢ`, in four independent sums so that the compiler can vectorise it (one running
/// sum is a chain of dependent additions it must keep in order).
fn dot<A: Copy + Into<f64>>(a: &[A], b: &[f64]) -> f64 {
    let mut lanes = [0.0_f64; 4];
    let (a_chunks, b_chunks) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(&x, y)| x.into() * y).sum();
    for (xs, ys) in a_chunks.zip(b_chunks) {
        for lane in 0..4 {
            lanes[lane] += xs[lane].into() * ys[lane];
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// The penalty, and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Solve {
    pub l2: f64,
    pub max_iterations: usize,
    /// Stop once no gradient component exceeds this.
    pub tolerance: f64,
}

/// Fits a linear model of `head` to `x` (`rows × inputs`) and `y` (one class index, or
/// standardised target, per row), this host's share of the rows. Stops when no gradient
/// component exceeds the tolerance, when a step no longer lowers the objective, or after
/// the most iterations. Every host computes the same objective, so they take the same steps.
pub fn fit(
    x: &[f32],
    y: &[f32],
    inputs: usize,
    head: Head,
    solve: Solve,
    cluster: &mut Cluster,
) -> Result<(Network, TrainReport), ClusterError> {
    let Solve { l2, max_iterations, tolerance } = solve;
    let (kind, outputs) = match head {
        Head::Regression { .. } => (Kind::LeastSquares, 1),
        Head::Classes(2) => (Kind::Binary, 1),
        Head::Classes(classes) => (Kind::Multinomial, classes),
    };
    let problem = Problem { x, y, rows: y.len(), inputs, outputs, kind, l2 };
    let (theta, report) = minimise(&problem, max_iterations, tolerance, cluster)?;
    Ok((network(&theta, inputs, head), report))
}

/// L-BFGS with a backtracking (Armijo) line search. The objectives here are convex, and
/// strictly so with `l2 > 0`, so every accepted step keeps `sᵀy > 0`; a pair that does not
/// (flat directions without a penalty) is skipped.
fn minimise(
    problem: &Problem,
    max_iterations: usize,
    tolerance: f64,
    cluster: &mut Cluster,
) -> Result<(Vec<f64>, TrainReport), ClusterError> {
    let n = problem.parameters();
    let mut theta = vec![0.0; n];
    let mut gradient = vec![0.0; n];
    let mut loss = problem.evaluate(&theta, &mut gradient, cluster)?;
    // (s, y, 1 / sᵀy) of the latest steps: s the change of the parameters, y of the gradient.
    let mut history: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let (mut candidate, mut candidate_gradient) = (vec![0.0; n], vec![0.0; n]);
    let largest = |g: &[f64]| g.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    for iteration in 0..max_iterations {
        if largest(&gradient) <= tolerance {
            return Ok((theta, TrainReport { epochs: iteration, converged: true, final_loss: loss }));
        }
        // The two-loop recursion: direction = −H·g.
        let mut direction: Vec<f64> = gradient.iter().map(|g| -g).collect();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let alpha = rho * dot(s, &direction);
            direction.iter_mut().zip(y).for_each(|(d, yi)| *d -= alpha * yi);
            alphas.push(alpha);
        }
        let scale = history.back().map_or(1.0 / largest(&gradient).max(1.0), |(s, y, _)| dot(s, y) / dot(y, y));
        direction.iter_mut().for_each(|d| *d *= scale);
        for ((s, y, rho), alpha) in history.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &direction);
            direction.iter_mut().zip(s).for_each(|(d, si)| *d += (alpha - beta) * si);
        }
        let slope = dot(&gradient, &direction);
        if slope >= 0.0 {
            // Not a descent direction (rounding): start again from the gradient.
            history.clear();
            continue;
        }
        let mut step = 1.0;
        let accepted = loop {
            for ((c, t), d) in candidate.iter_mut().zip(&theta).zip(&direction) {
                *c = t + step * d;
            }
            let candidate_loss = problem.evaluate(&candidate, &mut candidate_gradient, cluster)?;
            if candidate_loss <= loss + 1e-4 * step * slope {
                break Some(candidate_loss);
            }
            step *= 0.5;
            if step < 1e-10 {
                break None;
            }
        };
        let Some(new_loss) = accepted else {
            // No step lowers the objective: this is the optimum to machine precision.
            return Ok((theta, TrainReport { epochs: iteration, converged: true, final_loss: loss }));
        };
        let s: Vec<f64> = candidate.iter().zip(&theta).map(|(c, t)| c - t).collect();
        let y: Vec<f64> = candidate_gradient.iter().zip(&gradient).map(|(c, g)| c - g).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&y, &y).max(f64::MIN_POSITIVE) {
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        std::mem::swap(&mut theta, &mut candidate);
        std::mem::swap(&mut gradient, &mut candidate_gradient);
        let improvement = loss - new_loss;
        loss = new_loss;
        if improvement <= f64::EPSILON * loss.abs().max(1.0) {
            return Ok((theta, TrainReport { epochs: iteration + 1, converged: true, final_loss: loss }));
        }
    }
    let converged = largest(&gradient) <= tolerance;
    Ok((theta, TrainReport { epochs: max_iterations, converged, final_loss: loss }))
}

/// The one-layer network the exported graph runs: two classes as the softmax of `(0, z)`.
fn network(theta: &[f64], inputs: usize, head: Head) -> Network {
    let outputs = match head {
        Head::Regression { .. } => 1,
        Head::Classes(classes) => classes,
    };
    let solved = theta.len() / (inputs + 1);
    let (weights, bias) = theta.split_at(inputs * solved);
    let mut layer =
        Dense { input: inputs, output: outputs, weights: vec![0.0; inputs * outputs], bias: vec![0.0; outputs] };
    // Two classes solved as one logit fill the second output; the first stays zero.
    let offset = outputs - solved;
    for (o, row) in weights.chunks_exact(inputs).enumerate() {
        for (i, &w) in row.iter().enumerate() {
            layer.weights[i * outputs + offset + o] = w as f32;
        }
    }
    for (target, &value) in layer.bias[offset..].iter_mut().zip(bias) {
        *target = value as f32;
    }
    Network { layers: vec![layer], head }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn solve(l2: f64, max_iterations: usize, tolerance: f64) -> Solve {
        Solve { l2, max_iterations, tolerance }
    }

    fn data(rows: usize, inputs: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..rows * inputs).map(|_| rng.normal() as f32).collect()
    }

    /// The objective's gradient agrees with finite differences, for every kind of problem.
    #[test]
    fn gradients_match_finite_differences() {
        let (rows, inputs) = (7, 3);
        let x = data(rows, inputs, 1);
        for (kind, outputs, y) in [
            (Kind::LeastSquares, 1, vec![0.5, -1.0, 2.0, 0.0, 1.5, -0.3, 0.7]),
            (Kind::Binary, 1, vec![0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]),
            (Kind::Multinomial, 3, vec![0.0, 2.0, 1.0, 2.0, 1.0, 0.0, 2.0]),
        ] {
            let problem = Problem { x: &x, y: &y, rows, inputs, outputs, kind, l2: 0.1 };
            let theta: Vec<f64> = (0..problem.parameters()).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut gradient = vec![0.0; theta.len()];
            let solo = &mut Cluster::solo();
            problem.evaluate(&theta, &mut gradient, solo).unwrap();
            for i in 0..theta.len() {
                let h = 1e-6;
                let (mut plus, mut minus) = (theta.clone(), theta.clone());
                plus[i] += h;
                minus[i] -= h;
                let mut scratch = vec![0.0; theta.len()];
                let mut objective = |theta: &[f64]| problem.evaluate(theta, &mut scratch, solo).unwrap();
                let numeric = (objective(&plus) - objective(&minus)) / (2.0 * h);
                assert!((numeric - gradient[i]).abs() < 1e-6, "parameter {i}: {numeric} vs {}", gradient[i]);
            }
        }
    }

    /// Ridge's optimum solves `(XcᵀXc / n + l2·I) w = Xcᵀyc / n` (centred data); L-BFGS finds it.
    #[test]
    fn ridge_reaches_the_closed_form_solution() {
        let (rows, inputs, l2) = (50, 2, 0.05);
        let x = data(rows, inputs, 2);
        let y: Vec<f32> =
            x.chunks(2).enumerate().map(|(r, v)| 3.0 * v[0] - 2.0 * v[1] + 1.0 + (r % 3) as f32 * 0.1).collect();
        let (network, report) =
            fit(&x, &y, inputs, Head::Regression { mean: 0.0, std: 1.0 }, solve(l2, 100, 1e-10), &mut Cluster::solo())
                .unwrap();
        assert!(report.converged, "{report:?}");

        let n = rows as f64;
        let mean = |f: &dyn Fn(usize) -> f64| (0..rows).map(f).sum::<f64>() / n;
        let (mx0, mx1, my) =
            (mean(&|r| f64::from(x[2 * r])), mean(&|r| f64::from(x[2 * r + 1])), mean(&|r| f64::from(y[r])));
        let c = |r: usize, j: usize| f64::from(x[2 * r + j]) - [mx0, mx1][j];
        let a = |i: usize, j: usize| mean(&|r| c(r, i) * c(r, j)) + if i == j { l2 } else { 0.0 };
        let b = |i: usize| mean(&|r| c(r, i) * (f64::from(y[r]) - my));
        let determinant = a(0, 0) * a(1, 1) - a(0, 1) * a(1, 0);
        let w0 = (b(0) * a(1, 1) - a(0, 1) * b(1)) / determinant;
        let w1 = (a(0, 0) * b(1) - a(1, 0) * b(0)) / determinant;
        let intercept = my - w0 * mx0 - w1 * mx1;
        let layer = &network.layers[0];
        for (got, want) in [(layer.weights[0], w0), (layer.weights[1], w1), (layer.bias[0], intercept)] {
            assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    /// Two classes: one logit whose penalty is scikit-learn's, so the coefficients are the
    /// ones `LogisticRegression(C=1)` finds on these rows (C = 1 / (l2 · rows)).
    #[test]
    fn binary_logistic_regression_matches_scikit_learn() {
        let x: [f32; 16] = [0.0, 1.0, 1.0, 0.5, 2.0, -1.0, -0.5, 0.3, 1.5, 1.5, -1.0, -2.0, 0.2, 0.1, -0.7, 0.9];
        let y = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let (network, report) =
            fit(&x, &y, 2, Head::Classes(2), solve(1.0 / 8.0, 1000, 1e-10), &mut Cluster::solo()).unwrap();
        assert!(report.converged, "{report:?}");
        let layer = &network.layers[0];
        assert_eq!(
            (layer.weights[0], layer.weights[2], layer.bias[0]),
            (0.0, 0.0, 0.0),
            "the first class is the zero logit"
        );
        let expected = [SKLEARN_COEF[0], SKLEARN_COEF[1], SKLEARN_INTERCEPT];
        for (got, want) in [layer.weights[1], layer.weights[3], layer.bias[1]].into_iter().zip(expected) {
            assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    /// scikit-learn 1.9.1: `LogisticRegression(C=1.0, tol=1e-12, max_iter=100000)`.
    const SKLEARN_COEF: [f64; 2] = [1.2898675849626084, -0.00857161648109957];
    const SKLEARN_INTERCEPT: f64 = -0.34519912516698487;

    /// Multinomial: at the optimum the gradient vanishes and the loss is below the Adam-trained
    /// network's on the same rows.
    #[test]
    fn multinomial_logistic_regression_reaches_the_optimum() {
        let (rows, inputs) = (300, 4);
        let x = data(rows, inputs, 3);
        let y: Vec<f32> = x
            .chunks(inputs)
            .map(|v| {
                if v[0] + v[1] > 0.5 {
                    2.0
                } else if v[2] > 0.0 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let l2 = 1.0 / rows as f64;
        let solo = &mut Cluster::solo();
        let (network, report) = fit(&x, &y, inputs, Head::Classes(3), solve(l2, 1000, 1e-9), solo).unwrap();
        assert!(report.converged, "{report:?}");
        let loss = network.loss(&x, &y, rows, l2 as f32, solo).unwrap();
        assert!(
            (loss - report.final_loss).abs() < 1e-5,
            "the network is the solution: {loss} vs {}",
            report.final_loss
        );
        let mut rng = Rng::new(4);
        let mut adam = Network::new(inputs, &[], Head::Classes(3), &mut rng);
        let options = crate::network::TrainOptions {
            learning_rate: 0.05,
            l2: l2 as f32,
            max_epochs: 2000,
            batch_size: rows,
            tolerance: 1e-10,
            patience: 50,
        };
        adam.train(&x, &y, rows, &options, &mut rng, solo).unwrap();
        assert!(loss <= adam.loss(&x, &y, rows, l2 as f32, solo).unwrap() + 1e-7);
    }
}
