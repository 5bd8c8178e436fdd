//! Gradient-boosted trees, histogram-based as in LightGBM and scikit-learn's
//! HistGradientBoosting: features are sorted into bins once (`bins`), each round grows a
//! tree best first on the loss's gradients and hessians (`grow`), shrunk by the learning
//! rate, and rounds stop when the loss on the validation rows has not improved for
//! `patience` rounds; the model keeps the rounds up to its best. Regression fits squared
//! error; two classes one log-odds score; k classes one tree per class per round under a
//! softmax.

mod bins;
mod grow;

pub use bins::Columns;

use sluice_model::FeaturePipeline;
use sluice_model::pipeline::FeatureStep;

use crate::network::{Head, TrainReport, softmax};
use crate::rng::Rng;
use bins::Binned;
use grow::{GradientPair, GrowOptions, Grower, Scratch};

#[derive(Debug, Clone)]
pub struct Options {
    /// The most boosting rounds.
    pub rounds: usize,
    pub learning_rate: f64,
    /// The L2 penalty on leaf values.
    pub l2: f64,
    pub max_leaf_nodes: usize,
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub max_bins: usize,
    /// Stop when the validation loss has improved by less than `tolerance` (relative) for
    /// `patience` rounds.
    pub tolerance: f64,
    pub patience: usize,
}

/// Rows to learn from or to stop on: features row-major, one target per row (a class
/// index, or a standardised value for regression).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub features: &'a [f32],
    pub targets: &'a [f32],
}

/// Scoring at least this many (row, tree) pairs is shared among threads by rows.
const PARALLEL_SCORES: usize = 1 << 18;

/// A tree's node: a split, or a leaf's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node {
    /// A row goes `left` when its `column` is at most `threshold`, or is missing (NaN) and
    /// `missing_left`.
    Split {
        column: u32,
        threshold: f32,
        missing_left: bool,
        left: u32,
        right: u32,
    },
    Leaf(f32),
}

/// Nodes by index; the root is the first.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn value(&self, row: &[f32]) -> f32 {
        let mut index = 0;
        loop {
            match self.nodes[index] {
                Node::Leaf(value) => return value,
                Node::Split { column, threshold, missing_left, left, right } => {
                    let value = row[column as usize];
                    // Without branches (NaN is never ≤): which way a row goes is a coin
                    // toss to the branch predictor.
                    let goes_left = (value <= threshold) | (missing_left & value.is_nan());
                    index = if goes_left { left } else { right } as usize;
                }
            }
        }
    }
}

/// A trained ensemble. Its trees add up to scores in the head's units: the starting score
/// (and, for regression, the target's mean and scale) is folded into the first round's
/// leaves, so the scores are plain sums of leaf values, as the exported graph computes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    pub inputs: usize,
    pub head: Head,
    /// Round by round; tree `i` scores output `i % outputs()`.
    pub trees: Vec<Tree>,
}

impl Ensemble {
    /// Scores per row: one (regression, two classes: the second class's log-odds) or one
    /// per class.
    pub fn outputs(&self) -> usize {
        Loss::of(self.head).outputs()
    }

    /// Scores `rows × outputs()`, summed in f32 tree by tree. Row by row, so that a row's
    /// features stay in cache while every tree reads them; many rows on several threads.
    pub fn scores(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let outputs = self.outputs();
        let mut scores = vec![0.0_f32; rows * outputs];
        let threads = if rows * self.trees.len() >= PARALLEL_SCORES {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            1
        };
        let rows_per_thread = rows.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let parts = scores.chunks_mut(rows_per_thread * outputs).zip(x.chunks(rows_per_thread * self.inputs));
            for (part, features) in parts {
                scope.spawn(move || {
                    for (row_scores, row) in part.chunks_exact_mut(outputs).zip(features.chunks_exact(self.inputs)) {
                        for (index, tree) in self.trees.iter().enumerate() {
                            row_scores[index % outputs] += tree.value(row);
                        }
                    }
                });
            }
        });
        scores
    }

    /// What the exported graph outputs: class probabilities (two classes as the softmax of
    /// `(0, score)`) or predictions in target units.
    pub fn predict(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let scores = self.scores(x, rows);
        match self.head {
            Head::Classes(2) => softmax(&scores.iter().flat_map(|&s| [0.0, s]).collect::<Vec<_>>(), 2),
            Head::Classes(classes) => softmax(&scores, classes),
            Head::Regression { .. } => scores,
        }
    }
}

/// The column groups of the pipeline's output: numbers, and one-hot categories.
pub fn layout(pipeline: &FeaturePipeline) -> Vec<Columns> {
    pipeline
        .steps
        .iter()
        .flat_map(|step| match step {
            FeatureStep::Standardize { .. } => vec![Columns::Number],
            FeatureStep::OneHot { categories, .. } => vec![Columns::OneHot(categories.len() + 1)],
            FeatureStep::Vector { length, .. } => vec![Columns::Number; *length],
        })
        .collect()
}

/// The loss each head is fitted with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Loss {
    /// Half the squared error.
    Squared,
    /// Log loss of one score, the second class's log-odds.
    Binary,
    /// Cross-entropy of a softmax over one score per class.
    Multinomial(usize),
}

impl Loss {
    fn of(head: Head) -> Self {
        match head {
            Head::Regression { .. } => Self::Squared,
            Head::Classes(2) => Self::Binary,
            Head::Classes(classes) => Self::Multinomial(classes),
        }
    }

    fn outputs(self) -> usize {
        match self {
            Self::Squared | Self::Binary => 1,
            Self::Multinomial(classes) => classes,
        }
    }

    /// The constant scores that fit `targets` best: where boosting starts.
    fn baseline(self, targets: &[f32]) -> Vec<f64> {
        let rows = targets.len().max(1) as f64;
        // A class absent from the training rows gets a very low score, not minus infinity.
        let log_share = |count: usize| (count as f64 / rows).max(1e-12).ln();
        match self {
            Self::Squared => vec![targets.iter().map(|&t| f64::from(t)).sum::<f64>() / rows],
            Self::Binary => {
                let positives = targets.iter().filter(|&&t| t == 1.0).count();
                vec![log_share(positives) - log_share(targets.len() - positives)]
            }
            Self::Multinomial(classes) => {
                let mut counts = vec![0; classes];
                targets.iter().for_each(|&t| counts[t as usize] += 1);
                counts.into_iter().map(log_share).collect()
            }
        }
    }

    /// Each output's gradient pairs at `scores` (`rows × outputs`).
    fn gradients(self, scores: &[f64], targets: &[f32], out: &mut [Vec<GradientPair>]) {
        let pair = |gradient: f64, hessian: f64| GradientPair { gradient: gradient as f32, hessian: hessian as f32 };
        match self {
            Self::Squared => {
                for ((slot, &score), &target) in out[0].iter_mut().zip(scores).zip(targets) {
                    *slot = pair(score - f64::from(target), 1.0);
                }
            }
            Self::Binary => {
                for ((slot, &score), &target) in out[0].iter_mut().zip(scores).zip(targets) {
                    let p = sigmoid(score);
                    *slot = pair(p - f64::from(target), p * (1.0 - p));
                }
            }
            Self::Multinomial(classes) => {
                let mut probabilities = vec![0.0; classes];
                for (row, (row_scores, &target)) in scores.chunks_exact(classes).zip(targets).enumerate() {
                    softmax_into(row_scores, &mut probabilities);
                    for (class, &p) in probabilities.iter().enumerate() {
                        let truth = if class == target as usize { 1.0 } else { 0.0 };
                        out[class][row] = pair(p - truth, p * (1.0 - p));
                    }
                }
            }
        }
    }

    /// The mean loss at `scores`.
    fn mean(self, scores: &[f64], targets: &[f32]) -> f64 {
        let total: f64 = match self {
            Self::Squared => scores.iter().zip(targets).map(|(&s, &t)| 0.5 * (s - f64::from(t)).powi(2)).sum(),
            Self::Binary => scores
                .iter()
                .zip(targets)
                .map(|(&s, &t)| {
                    // log(1 + e^−m) with m the margin of the true class, without overflow.
                    let margin = if t == 1.0 { s } else { -s };
                    if margin > 0.0 { (-margin).exp().ln_1p() } else { -margin + margin.exp().ln_1p() }
                })
                .sum(),
            Self::Multinomial(classes) => scores
                .chunks_exact(classes)
                .zip(targets)
                .map(|(row, &t)| {
                    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    max + row.iter().map(|s| (s - max).exp()).sum::<f64>().ln() - row[t as usize]
                })
                .sum(),
        };
        total / targets.len().max(1) as f64
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 { 1.0 / (1.0 + (-z).exp()) } else { z.exp() / (1.0 + z.exp()) }
}

fn softmax_into(scores: &[f64], out: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (p, &s) in out.iter_mut().zip(scores) {
        *p = (s - max).exp();
        sum += *p;
    }
    out.iter_mut().for_each(|p| *p /= sum);
}

/// Boosts trees on `train` with `head`'s loss, stopping on the loss of `validation`. The
/// feature columns are grouped as `layout` says.
pub fn fit(
    train: Rows,
    validation: Rows,
    layout: &[Columns],
    head: Head,
    options: &Options,
    rng: &mut Rng,
) -> (Ensemble, TrainReport) {
    let inputs: usize = layout
        .iter()
        .map(|group| match group {
            Columns::Number => 1,
            Columns::OneHot(width) => *width,
        })
        .sum();
    let loss = Loss::of(head);
    let outputs = loss.outputs();
    let binners = bins::fit(train.features, inputs, layout, options.max_bins, rng);
    let binned = Binned::new(&binners, train.features, inputs);
    let grow_options = GrowOptions {
        max_leaf_nodes: options.max_leaf_nodes,
        max_depth: options.max_depth,
        min_samples_leaf: options.min_samples_leaf,
        l2: options.l2,
        learning_rate: options.learning_rate,
    };
    let grower = Grower::new(&binners, &binned, grow_options);
    let mut scratch = Scratch::default();

    let baseline = loss.baseline(train.targets);
    let starting = |rows: usize| baseline.iter().copied().cycle().take(rows * outputs).collect::<Vec<f64>>();
    let (mut train_scores, mut validation_scores) = (starting(train.targets.len()), starting(validation.targets.len()));
    let mut gradients = vec![vec![GradientPair::default(); train.targets.len()]; outputs];
    let mut trees: Vec<Tree> = Vec::new();
    // Round 0 is the baseline alone. The training scores of the best round so far are kept
    // for the final training loss.
    let mut best_train_scores = train_scores.clone();
    let (mut best_loss, mut best_rounds, mut stale) = (loss.mean(&validation_scores, validation.targets), 0, 0);
    let mut stopped_early = false;
    for round in 1..=options.rounds {
        loss.gradients(&train_scores, train.targets, &mut gradients);
        for (output, output_gradients) in gradients.iter().enumerate() {
            let nodes = grower.grow(output_gradients, &mut scratch, |rows, value| {
                for &row in rows {
                    train_scores[row as usize * outputs + output] += f64::from(value);
                }
            });
            let tree = Tree { nodes };
            for (row, features) in validation.features.chunks_exact(inputs).enumerate() {
                validation_scores[row * outputs + output] += f64::from(tree.value(features));
            }
            trees.push(tree);
        }
        let validation_loss = loss.mean(&validation_scores, validation.targets);
        if best_loss - validation_loss > options.tolerance * best_loss.abs().max(1.0) {
            (best_loss, best_rounds, stale) = (validation_loss, round, 0);
            best_train_scores.copy_from_slice(&train_scores);
        } else {
            stale += 1;
            if stale >= options.patience {
                stopped_early = true;
                break;
            }
        }
    }
    trees.truncate(best_rounds * outputs);
    if trees.is_empty() {
        // No round beat the baseline: the model is the baseline, a leaf per output.
        trees = vec![Tree { nodes: vec![Node::Leaf(0.0)] }; outputs];
    }
    fold_baseline(&mut trees, &baseline, head);
    let final_loss = loss.mean(&best_train_scores, train.targets);
    let report = TrainReport { epochs: best_rounds, converged: stopped_early, final_loss };
    (Ensemble { inputs, head, trees }, report)
}

/// Moves the starting scores into the first round's leaves, and a regression's leaves from
/// standardised into target units.
fn fold_baseline(trees: &mut [Tree], baseline: &[f64], head: Head) {
    let (scale, shift) = match head {
        Head::Regression { mean, std } => (f64::from(std), f64::from(mean)),
        Head::Classes(_) => (1.0, 0.0),
    };
    for (index, tree) in trees.iter_mut().enumerate() {
        let start = baseline.get(index).map_or(0.0, |b| b * scale + shift);
        for node in &mut tree.nodes {
            if let Node::Leaf(value) = node {
                *value = (f64::from(*value) * scale + start) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            rounds: 100,
            learning_rate: 0.1,
            l2: 0.0,
            max_leaf_nodes: 31,
            max_depth: None,
            min_samples_leaf: 1,
            max_bins: 255,
            tolerance: 1e-7,
            patience: 10,
        }
    }

    fn fit_rows(x: &[f32], y: &[f32], inputs: usize, head: Head, options: &Options) -> (Ensemble, TrainReport) {
        let rows = Rows { features: x, targets: y };
        fit(rows, rows, &vec![Columns::Number; inputs], head, options, &mut Rng::new(1))
    }

    const STANDARD: Head = Head::Regression { mean: 0.0, std: 1.0 };

    /// f32 sums of f64 steps: equal to a few units in the last place.
    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn a_step_function_is_learned_exactly() {
        let x: Vec<f32> = (0..40).map(|v| v as f32).collect();
        let y: Vec<f32> = x.iter().map(|&v| if v < 13.0 { 2.0 } else { -1.0 }).collect();
        let full_steps = Options { learning_rate: 1.0, rounds: 1, ..options() };
        let (ensemble, report) = fit_rows(&x, &y, 1, STANDARD, &full_steps);
        assert_close(&ensemble.predict(&x, 40), &y);
        assert!(report.final_loss < 1e-12, "{report:?}");
        assert_eq!(ensemble.trees[0].nodes.len(), 3, "one split: {:?}", ensemble.trees[0]);
    }

    #[test]
    fn regression_is_in_target_units() {
        // Targets standardised with mean 1000 and std 250 come back in target units.
        let x: Vec<f32> = (0..40).map(|v| v as f32).collect();
        let y: Vec<f32> = x.iter().map(|&v| if v < 13.0 { 2.0 } else { -1.0 }).collect();
        let head = Head::Regression { mean: 1000.0, std: 250.0 };
        let (ensemble, _) = fit_rows(&x, &y, 1, head, &Options { learning_rate: 1.0, rounds: 1, ..options() });
        let predictions = ensemble.predict(&[0.0, 39.0], 2);
        assert_close(&predictions, &[1500.0, 750.0]);
    }

    #[test]
    fn shrinkage_takes_a_learning_rate_share_of_the_residual_each_round() {
        let x = [0.0, 1.0];
        let y = [0.0, 4.0];
        let one_round = Options { rounds: 1, learning_rate: 0.5, ..options() };
        let (ensemble, _) = fit_rows(&x, &y, 1, STANDARD, &one_round);
        // Baseline 2; the leaves' residuals are ±2, halved.
        assert_close(&ensemble.predict(&x, 2), &[1.0, 3.0]);
        let (ensemble, _) = fit_rows(&x, &y, 1, STANDARD, &Options { rounds: 2, ..one_round });
        assert_close(&ensemble.predict(&x, 2), &[0.5, 3.5]);
    }

    #[test]
    fn the_l2_penalty_shrinks_leaf_values() {
        let x = [0.0, 0.0, 1.0, 1.0];
        let y = [-1.0, -1.0, 1.0, 1.0];
        let penalised = Options { rounds: 1, learning_rate: 1.0, l2: 2.0, ..options() };
        let (ensemble, _) = fit_rows(&x, &y, 1, STANDARD, &penalised);
        // −G / (H + λ) = 2 / (2 + 2).
        assert_close(&ensemble.predict(&x, 4), &[-0.5, -0.5, 0.5, 0.5]);
    }

    /// XOR of two inputs, with unequal cells so that a first split gains at all.
    fn xor() -> (Vec<f32>, Vec<f32>) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (a, b, copies) in [(0.0, 0.0, 10), (0.0, 1.0, 30), (1.0, 0.0, 20), (1.0, 1.0, 10)] {
            for _ in 0..copies {
                x.extend([a, b]);
                y.push(if a == b { 0.0 } else { 1.0 });
            }
        }
        (x, y)
    }

    #[test]
    fn xor_needs_depth_two() {
        let (x, y) = xor();
        let rows = y.len();
        let accuracy = |ensemble: &Ensemble| {
            let p = ensemble.predict(&x, rows);
            (0..rows).filter(|&r| (p[r * 2 + 1] > 0.5) == (y[r] == 1.0)).count() as f64 / rows as f64
        };
        let stumps = Options { max_depth: Some(1), ..options() };
        let (ensemble, _) = fit_rows(&x, &y, 2, Head::Classes(2), &stumps);
        assert!(accuracy(&ensemble) < 0.9, "a sum of one-feature functions cannot be XOR");
        let (ensemble, report) = fit_rows(&x, &y, 2, Head::Classes(2), &Options { max_depth: Some(2), ..options() });
        assert_eq!(accuracy(&ensemble), 1.0);
        assert!(report.final_loss < 0.05, "{report:?}");
    }

    #[test]
    fn two_classes_start_at_the_log_odds_and_three_at_the_log_shares() {
        let y = [1.0, 1.0, 1.0, 0.0];
        assert!((Loss::Binary.baseline(&y)[0] - 3f64.ln()).abs() < 1e-12);
        let baseline = Loss::Multinomial(3).baseline(&[0.0, 1.0, 1.0, 2.0]);
        assert!((baseline[1] - baseline[0] - 2f64.ln()).abs() < 1e-12);
        // The baseline minimises the loss: its gradients sum to zero.
        let scores: Vec<f64> = [0.0, 1.0, 1.0, 2.0].iter().flat_map(|_| baseline.clone()).collect();
        let mut out = vec![vec![GradientPair::default(); 4]; 3];
        Loss::Multinomial(3).gradients(&scores, &[0.0, 1.0, 1.0, 2.0], &mut out);
        for class in &out {
            assert!(class.iter().map(|p| f64::from(p.gradient)).sum::<f64>().abs() < 1e-6);
        }
    }

    #[test]
    fn gradients_are_the_derivatives_of_the_loss() {
        let classes = [0.0, 2.0, 1.0];
        for (loss, targets) in
            [(Loss::Squared, &[0.3, -1.0, 2.0][..]), (Loss::Binary, &[0.0, 1.0, 1.0]), (Loss::Multinomial(3), &classes)]
        {
            let outputs = loss.outputs();
            let scores: Vec<f64> = (0..3 * outputs).map(|i| (i as f64 * 0.7).sin()).collect();
            let mut out = vec![vec![GradientPair::default(); 3]; outputs];
            loss.gradients(&scores, targets, &mut out);
            for index in 0..scores.len() {
                let (row, output) = (index / outputs, index % outputs);
                let h = 1e-5;
                let at = |delta: f64| {
                    let mut moved = scores.clone();
                    moved[index] += delta;
                    loss.mean(&moved, targets) * 3.0
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                let second = (at(h) - 2.0 * at(0.0) + at(-h)) / (h * h);
                let pair = out[output][row];
                assert!((numeric - f64::from(pair.gradient)).abs() < 1e-5, "{loss:?} {index}: {numeric} vs {pair:?}");
                assert!((second - f64::from(pair.hessian)).abs() < 1e-3, "{loss:?} {index}: {second} vs {pair:?}");
            }
        }
    }

    #[test]
    fn multiclass_grows_a_tree_per_class_per_round_and_separates_the_classes() {
        let mut rng = Rng::new(3);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for row in 0..300 {
            let class = row % 3;
            x.extend([class as f32 + 0.3 * rng.normal() as f32, rng.normal() as f32]);
            y.push(class as f32);
        }
        let (ensemble, report) = fit_rows(&x, &y, 2, Head::Classes(3), &Options { rounds: 20, ..options() });
        assert_eq!(ensemble.trees.len(), 3 * report.epochs);
        let p = ensemble.predict(&x, 300);
        let right = (0..300)
            .filter(|&r| (0..3).max_by(|&a, &b| p[r * 3 + a].total_cmp(&p[r * 3 + b])) == Some(y[r] as usize))
            .count();
        assert!(right > 270, "{right} of 300");
        assert!(p.chunks(3).all(|row| (row.iter().sum::<f32>() - 1.0).abs() < 1e-5));
    }

    #[test]
    fn rounds_stop_when_the_validation_loss_stops_falling_and_keep_the_best() {
        let mut rng = Rng::new(8);
        // Pure noise: only the first rounds fit anything general.
        let x: Vec<f32> = (0..400).map(|_| rng.normal() as f32).collect();
        let y: Vec<f32> = (0..400).map(|_| rng.normal() as f32).collect();
        let (train, validation) =
            (Rows { features: &x[..200], targets: &y[..200] }, Rows { features: &x[200..], targets: &y[200..] });
        let options = Options { rounds: 500, patience: 5, ..options() };
        let (ensemble, report) = fit(train, validation, &[Columns::Number], STANDARD, &options, &mut Rng::new(1));
        assert!(report.converged, "{report:?}");
        assert!(report.epochs < 50, "{report:?}");
        assert_eq!(ensemble.trees.len(), report.epochs.max(1));
    }

    #[test]
    fn missing_values_are_routed_as_training_learned() {
        // The target is high where the input is missing, low elsewhere.
        let x: Vec<f32> = (0..60).map(|v| if v % 3 == 0 { f32::NAN } else { v as f32 }).collect();
        let y: Vec<f32> = x.iter().map(|v| if v.is_nan() { 5.0 } else { 0.0 }).collect();
        let (ensemble, _) = fit_rows(&x, &y, 1, STANDARD, &Options { rounds: 1, learning_rate: 1.0, ..options() });
        assert_close(&ensemble.predict(&[f32::NAN, 7.0], 2), &[5.0, 0.0]);
    }

    #[test]
    fn the_layout_follows_the_pipeline() {
        let pipeline = FeaturePipeline {
            steps: vec![
                FeatureStep::Standardize { column: "x".into(), mean: 0.0, std: 1.0 },
                FeatureStep::OneHot { column: "c".into(), categories: vec!["a".into(), "b".into()] },
                FeatureStep::Vector { column: "v".into(), length: 2 },
            ],
            null_numbers: sluice_model::NullNumbers::Missing,
        };
        assert_eq!(layout(&pipeline), [Columns::Number, Columns::OneHot(3), Columns::Number, Columns::Number]);
    }
}
