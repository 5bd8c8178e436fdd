//! One tree grown best first, as LightGBM and scikit-learn's HistGradientBoosting grow them:
//! the leaf whose best split gains most is split next, until `max_leaf_nodes` leaves. A
//! leaf's best split is found in its histogram (per feature and bin, the sums of the rows'
//! gradients and hessians); of two new leaves only the smaller one's histogram is counted
//! from its rows, the larger one's is its parent's minus the smaller's.

use std::ops::Range;

use super::Node;
use super::bins::{Binned, Binner};

/// A split must leave each side at least this much hessian (scikit-learn's
/// `min_hessian_to_split`); it also bounds a leaf value's denominator.
const MIN_HESSIAN: f64 = 1e-3;

/// A histogram with at least this many (row, feature) pairs to count is counted on several
/// threads, each taking some of the features; below it a thread costs more than it saves.
const PARALLEL_COUNT: usize = 1 << 16;

/// One row's first and second derivative of the loss at its current score.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GradientPair {
    pub gradient: f32,
    pub hessian: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct GrowOptions {
    pub max_leaf_nodes: usize,
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    /// The L2 penalty on leaf values.
    pub l2: f64,
    /// Every leaf value is scaled by it (shrinkage).
    pub learning_rate: f64,
}

/// Gradient and hessian totals of a set of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    gradient: f64,
    hessian: f64,
    rows: u32,
}

impl Sums {
    fn add(&mut self, pair: GradientPair) {
        self.gradient += f64::from(pair.gradient);
        self.hessian += f64::from(pair.hessian);
        self.rows += 1;
    }

    fn plus(self, other: Self) -> Self {
        Self {
            gradient: self.gradient + other.gradient,
            hessian: self.hessian + other.hessian,
            rows: self.rows + other.rows,
        }
    }

    fn minus(self, other: Self) -> Self {
        Self {
            gradient: self.gradient - other.gradient,
            hessian: self.hessian - other.hessian,
            rows: self.rows - other.rows,
        }
    }

    /// How much the loss falls when these rows get their best common value (times two):
    /// the gain of a split is its sides' scores minus the parent's.
    fn score(self, l2: f64) -> f64 {
        self.gradient * self.gradient / (self.hessian + l2)
    }
}

/// The best split of a leaf.
#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    /// A number: bins up to this one go left. A one-hot group: this category goes right.
    bin: u8,
    missing_left: bool,
    gain: f64,
    left: Sums,
    right: Sums,
}

impl Split {
    /// Whether a row in `bin` of the split's feature goes left.
    fn sends_left(&self, binner: &Binner, bin: u8) -> bool {
        match binner {
            Binner::Number { .. } if Some(bin) == binner.missing_bin() => self.missing_left,
            Binner::Number { .. } => bin <= self.bin,
            Binner::OneHot { .. } => bin != self.bin,
        }
    }

    /// The split as the exported graph tests it: a column against a threshold.
    fn node(&self, binner: &Binner, left: usize, right: usize) -> Node {
        let (column, threshold) = match binner {
            // "Every bin" is the split of present values (left) from missing ones.
            Binner::Number { column, thresholds } => {
                (*column, thresholds.get(usize::from(self.bin)).copied().unwrap_or(f32::INFINITY))
            }
            Binner::OneHot { first, .. } => (first + usize::from(self.bin), 0.5),
        };
        Node::Split {
            column: column as u32,
            threshold,
            missing_left: self.missing_left,
            left: left as u32,
            right: right as u32,
        }
    }
}

/// A leaf of the tree being grown: its rows are `order[start..end]`.
struct Leaf {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    sums: Sums,
    /// Kept while the leaf may still be split.
    histogram: Option<Vec<Sums>>,
    split: Option<Split>,
}

/// Grows trees on one binned training set.
pub struct Grower<'a> {
    binners: &'a [Binner],
    binned: &'a Binned,
    /// Where each feature's slots start in a histogram; the last entry is its length.
    offsets: Vec<usize>,
    options: GrowOptions,
    threads: usize,
}

/// Buffers reused from tree to tree.
#[derive(Default)]
pub struct Scratch {
    /// Row indices, grouped by leaf.
    order: Vec<u32>,
    /// The right-hand rows while a leaf's rows are partitioned.
    right: Vec<u32>,
    /// A leaf's gradients in its row order, read sequentially by each feature's pass.
    ordered: Vec<GradientPair>,
    histograms: Vec<Vec<Sums>>,
}

impl<'a> Grower<'a> {
    pub fn new(binners: &'a [Binner], binned: &'a Binned, options: GrowOptions) -> Self {
        let mut offsets = vec![0];
        for binner in binners {
            offsets.push(offsets.last().copied().unwrap_or(0) + binner.slots());
        }
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Self { binners, binned, offsets, options, threads }
    }

    /// A tree fitted to the rows' `gradients`; `on_leaf` gets each leaf's rows and value.
    pub fn grow(
        &self,
        gradients: &[GradientPair],
        scratch: &mut Scratch,
        mut on_leaf: impl FnMut(&[u32], f32),
    ) -> Vec<Node> {
        let rows = gradients.len();
        scratch.order.clear();
        scratch.order.extend(0..rows as u32);
        let mut sums = Sums::default();
        gradients.iter().for_each(|&pair| sums.add(pair));
        let mut nodes = vec![Node::Leaf(0.0)];
        let mut root = Leaf { node: 0, start: 0, end: rows, depth: 0, sums, histogram: None, split: None };
        if self.may_split(&root) {
            let mut histogram = self.take_histogram(scratch);
            self.count(&mut histogram, 0, rows, gradients, scratch);
            root.split = self.best_split(&histogram, root.sums);
            root.histogram = Some(histogram);
        }
        let mut leaves = vec![root];
        while leaves.len() < self.options.max_leaf_nodes {
            let best = leaves
                .iter()
                .enumerate()
                .filter_map(|(index, leaf)| Some((index, leaf.split?.gain)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let Some((index, _)) = best else { break };
            let parent = leaves.swap_remove(index);
            let children = self.split(parent, &mut nodes, gradients, scratch);
            leaves.extend(children);
        }
        for leaf in leaves {
            let value = self.leaf_value(leaf.sums);
            nodes[leaf.node] = Node::Leaf(value);
            on_leaf(&scratch.order[leaf.start..leaf.end], value);
            if let Some(histogram) = leaf.histogram {
                scratch.histograms.push(histogram);
            }
        }
        nodes
    }

    fn may_split(&self, leaf: &Leaf) -> bool {
        self.options.max_depth.is_none_or(|depth| leaf.depth < depth)
            && leaf.sums.rows as usize >= 2 * self.options.min_samples_leaf
    }

    fn leaf_value(&self, sums: Sums) -> f32 {
        (-self.options.learning_rate * sums.gradient / (sums.hessian + self.options.l2).max(MIN_HESSIAN)) as f32
    }

    /// Splits `parent` in two, writing the split into `nodes`; returns the two new leaves.
    fn split(
        &self,
        parent: Leaf,
        nodes: &mut Vec<Node>,
        gradients: &[GradientPair],
        scratch: &mut Scratch,
    ) -> [Leaf; 2] {
        let split = parent.split.expect("only leaves with a split are split");
        let binner = &self.binners[split.feature];
        let bins = self.binned.feature(split.feature);
        let middle = parent.start
            + partition(&mut scratch.order[parent.start..parent.end], &mut scratch.right, |row| {
                split.sends_left(binner, bins[row as usize])
            });
        let (left_node, right_node) = (nodes.len(), nodes.len() + 1);
        nodes[parent.node] = split.node(binner, left_node, right_node);
        nodes.extend([Node::Leaf(0.0), Node::Leaf(0.0)]);
        let depth = parent.depth + 1;
        let mut children = [
            Leaf {
                node: left_node,
                start: parent.start,
                end: middle,
                depth,
                sums: split.left,
                histogram: None,
                split: None,
            },
            Leaf {
                node: right_node,
                start: middle,
                end: parent.end,
                depth,
                sums: split.right,
                histogram: None,
                split: None,
            },
        ];
        let mut parent_histogram = parent.histogram.expect("a leaf with a split kept its histogram");
        if children.iter().any(|child| self.may_split(child)) {
            let smaller = usize::from(children[1].sums.rows < children[0].sums.rows);
            let mut histogram = self.take_histogram(scratch);
            self.count(&mut histogram, children[smaller].start, children[smaller].end, gradients, scratch);
            for (slot, &counted) in parent_histogram.iter_mut().zip(&histogram) {
                *slot = slot.minus(counted);
            }
            children[smaller].histogram = Some(histogram);
            children[1 - smaller].histogram = Some(parent_histogram);
        } else {
            scratch.histograms.push(parent_histogram);
        }
        for child in &mut children {
            if self.may_split(child) {
                child.split = child.histogram.as_ref().and_then(|histogram| self.best_split(histogram, child.sums));
            }
            if child.split.is_none()
                && let Some(histogram) = child.histogram.take()
            {
                scratch.histograms.push(histogram);
            }
        }
        children
    }

    fn take_histogram(&self, scratch: &mut Scratch) -> Vec<Sums> {
        let length = self.offsets.last().copied().unwrap_or(0);
        scratch.histograms.pop().unwrap_or_else(|| vec![Sums::default(); length])
    }

    /// Counts the rows `order[start..end]` into `histogram`: each feature's slots by one
    /// thread, so the sums come out the same however many threads there are.
    fn count(
        &self,
        histogram: &mut [Sums],
        start: usize,
        end: usize,
        gradients: &[GradientPair],
        scratch: &mut Scratch,
    ) {
        let rows = &scratch.order[start..end];
        scratch.ordered.clear();
        scratch.ordered.extend(rows.iter().map(|&row| gradients[row as usize]));
        let ordered = &scratch.ordered;
        let features = self.binners.len();
        let threads = if rows.len() * features >= PARALLEL_COUNT { self.threads } else { 1 };
        let per_thread = features.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let mut rest = histogram;
            for first in (0..features).step_by(per_thread) {
                let last = (first + per_thread).min(features);
                let (part, tail) = std::mem::take(&mut rest).split_at_mut(self.offsets[last] - self.offsets[first]);
                rest = tail;
                if last == features {
                    self.count_features(part, first..last, rows, ordered);
                } else {
                    scope.spawn(move || self.count_features(part, first..last, rows, ordered));
                }
            }
        });
    }

    /// Counts `features` into `part`, their stretch of a histogram.
    fn count_features(&self, part: &mut [Sums], features: Range<usize>, rows: &[u32], ordered: &[GradientPair]) {
        part.fill(Sums::default());
        let base = self.offsets[features.start];
        for feature in features {
            let slots = &mut part[self.offsets[feature] - base..self.offsets[feature + 1] - base];
            let bins = self.binned.feature(feature);
            for (&row, &pair) in rows.iter().zip(ordered) {
                slots[usize::from(bins[row as usize])].add(pair);
            }
        }
    }

    /// The split of a leaf with histogram `histogram` and totals `total` that gains most, if
    /// any gains and leaves each side `min_samples_leaf` rows.
    fn best_split(&self, histogram: &[Sums], total: Sums) -> Option<Split> {
        let l2 = self.options.l2;
        let parent_score = total.score(l2);
        let min_rows = self.options.min_samples_leaf as u32;
        let mut best: Option<Split> = None;
        let mut consider = |feature: usize, bin: usize, missing_left: bool, left: Sums, right: Sums| {
            if left.rows < min_rows
                || right.rows < min_rows
                || left.hessian < MIN_HESSIAN
                || right.hessian < MIN_HESSIAN
            {
                return;
            }
            let (left_score, right_score) = (left.score(l2), right.score(l2));
            let gain = left_score + right_score - parent_score;
            // Rounding gives a split of rows that all want the same value a gain of about
            // 1e-16 of the scores; a real gain is far above it.
            if gain > 1e-12 * (left_score + right_score) && best.is_none_or(|b| gain > b.gain) {
                best = Some(Split { feature, bin: bin as u8, missing_left, gain, left, right });
            }
        };
        for (feature, (binner, slots)) in self.binners.iter().zip(self.offsets.windows(2)).enumerate() {
            let slots = &histogram[slots[0]..slots[1]];
            match binner {
                Binner::Number { .. } => {
                    let (present, missing) = slots.split_at(slots.len() - 1);
                    let missing = missing[0];
                    let mut left = Sums::default();
                    for (bin, &slot) in present.iter().enumerate() {
                        left = left.plus(slot);
                        let right = total.minus(left).minus(missing);
                        if missing.rows == 0 {
                            // No missing value to learn from: at prediction time they
                            // follow most of the rows, as in scikit-learn.
                            consider(feature, bin, left.rows >= right.rows, left, right);
                        } else {
                            consider(feature, bin, false, left, right.plus(missing));
                            consider(feature, bin, true, left.plus(missing), right);
                        }
                    }
                }
                Binner::OneHot { .. } => {
                    for (bin, &slot) in slots.iter().enumerate() {
                        consider(feature, bin, true, total.minus(slot), slot);
                    }
                }
            }
        }
        best
    }
}

/// Puts the rows `sends_left` accepts first, both sides in their order; returns how many.
/// Each row is written to both sides and only one side's end moves on: no branch on which
/// way it went.
fn partition(rows: &mut [u32], right: &mut Vec<u32>, sends_left: impl Fn(u32) -> bool) -> usize {
    right.resize(rows.len(), 0);
    let (mut left, mut right_end) = (0, 0);
    for index in 0..rows.len() {
        let row = rows[index];
        let goes_left = sends_left(row);
        rows[left] = row;
        right[right_end] = row;
        left += usize::from(goes_left);
        right_end += usize::from(!goes_left);
    }
    rows[left..].copy_from_slice(&right[..right_end]);
    left
}

#[cfg(test)]
mod tests {
    use super::super::bins::{Columns, fit};
    use super::*;
    use crate::rng::Rng;

    const OPTIONS: GrowOptions =
        GrowOptions { max_leaf_nodes: 31, max_depth: None, min_samples_leaf: 1, l2: 0.0, learning_rate: 1.0 };

    /// Squared-error gradients at score 0: each row's gradient is minus its target.
    fn gradients(targets: &[f32]) -> Vec<GradientPair> {
        targets.iter().map(|&t| GradientPair { gradient: -t, hessian: 1.0 }).collect()
    }

    fn grow(
        x: &[f32],
        inputs: usize,
        layout: &[Columns],
        targets: &[f32],
        options: GrowOptions,
    ) -> (Vec<Node>, Vec<f32>) {
        let binners = fit(x, inputs, layout, 255, &mut Rng::new(1));
        let binned = Binned::new(&binners, x, inputs);
        let grower = Grower::new(&binners, &binned, options);
        let mut fitted = vec![f32::NAN; targets.len()];
        let nodes = grower.grow(&gradients(targets), &mut Scratch::default(), |rows, value| {
            rows.iter().for_each(|&row| fitted[row as usize] = value);
        });
        (nodes, fitted)
    }

    fn tree_value(nodes: &[Node], row: &[f32]) -> f32 {
        super::super::Tree { nodes: nodes.to_vec() }.value(row)
    }

    #[test]
    fn a_step_is_split_where_it_steps_and_each_side_gets_its_mean() {
        let x: Vec<f32> = (0..20).map(|v| v as f32).collect();
        let y: Vec<f32> = x.iter().map(|&v| if v < 7.0 { 3.0 } else { -1.0 }).collect();
        let (nodes, fitted) = grow(&x, 1, &[Columns::Number], &y, OPTIONS);
        assert_eq!(nodes.len(), 3, "one split is all a step needs: {nodes:?}");
        // No missing value in training: a missing one follows the 13 rows on the right.
        assert_eq!(nodes[0], Node::Split { column: 0, threshold: 6.5, missing_left: false, left: 1, right: 2 });
        assert_eq!(fitted, y, "each leaf's value is its rows' mean");
        assert_eq!((tree_value(&nodes, &[6.0]), tree_value(&nodes, &[7.0])), (3.0, -1.0));
    }

    #[test]
    fn the_best_of_two_features_is_chosen_and_the_gain_is_exact() {
        // Feature 1 separates the targets, feature 0 is noise.
        let x = [0.0, 5.0, 1.0, 5.0, 0.0, 9.0, 1.0, 9.0];
        let y = [1.0, 1.0, 4.0, 4.0];
        let binners = fit(&x, 2, &[Columns::Number, Columns::Number], 255, &mut Rng::new(1));
        let binned = Binned::new(&binners, &x, 2);
        let grower = Grower::new(&binners, &binned, OPTIONS);
        let mut histogram = vec![Sums::default(); grower.offsets[2]];
        let mut scratch = Scratch { order: vec![0, 1, 2, 3], ..Scratch::default() };
        let pairs = gradients(&y);
        grower.count(&mut histogram, 0, 4, &pairs, &mut scratch);
        let total = Sums { gradient: -10.0, hessian: 4.0, rows: 4 };
        let split = grower.best_split(&histogram, total).unwrap();
        assert_eq!((split.feature, split.bin), (1, 0));
        // Sides of 2 rows with gradient sums -2 and -8: 4/2 + 64/2 - 100/4.
        assert_eq!(split.gain, 2.0 + 32.0 - 25.0);
        assert_eq!((split.left.rows, split.right.rows), (2, 2));
    }

    #[test]
    fn leaves_keep_min_samples_and_the_tree_stops_at_max_leaf_nodes_and_max_depth() {
        let x: Vec<f32> = (0..64).map(|v| v as f32).collect();
        let y: Vec<f32> = x.iter().map(|v| (v * 0.7).sin()).collect();
        let leaves = |nodes: &[Node]| nodes.iter().filter(|n| matches!(n, Node::Leaf(_))).count();
        let (nodes, _) = grow(&x, 1, &[Columns::Number], &y, GrowOptions { max_leaf_nodes: 5, ..OPTIONS });
        assert_eq!(leaves(&nodes), 5);
        let (nodes, fitted) = grow(&x, 1, &[Columns::Number], &y, GrowOptions { min_samples_leaf: 10, ..OPTIONS });
        let mut sizes = std::collections::BTreeMap::new();
        fitted.iter().for_each(|v| *sizes.entry(v.to_bits()).or_insert(0) += 1);
        assert!(sizes.values().all(|&n| n >= 10), "{sizes:?}");
        assert!(leaves(&nodes) <= 6);
        let (nodes, _) = grow(&x, 1, &[Columns::Number], &y, GrowOptions { max_depth: Some(2), ..OPTIONS });
        assert_eq!(leaves(&nodes), 4, "depth 2 is four leaves at most");
    }

    #[test]
    fn missing_values_go_the_way_that_fits_them_and_can_be_split_off() {
        // Missing values (NaN) have high targets, like the high present values.
        let x = [1.0, 2.0, 3.0, 4.0, f32::NAN, f32::NAN];
        let y = [0.0, 0.0, 5.0, 5.0, 5.0, 5.0];
        let (nodes, fitted) = grow(&x, 1, &[Columns::Number], &y, GrowOptions { max_leaf_nodes: 2, ..OPTIONS });
        assert_eq!(nodes[0], Node::Split { column: 0, threshold: 2.5, missing_left: false, left: 1, right: 2 });
        assert_eq!(fitted, y);
        // Missing values unlike every present one: the split is "present or not".
        let y = [0.0, 0.0, 0.0, 0.0, 5.0, 5.0];
        let (nodes, fitted) = grow(&x, 1, &[Columns::Number], &y, GrowOptions { max_leaf_nodes: 2, ..OPTIONS });
        assert_eq!(
            nodes[0],
            Node::Split { column: 0, threshold: f32::INFINITY, missing_left: false, left: 1, right: 2 }
        );
        assert_eq!(fitted, y);
        assert_eq!(tree_value(&nodes, &[1e30]), 0.0);
    }

    #[test]
    fn a_category_is_split_from_the_rest_on_its_own_column() {
        // Three categories one-hot in columns 1-3 after a number; the middle one stands out.
        let rows: [(f32, usize, f32); 6] =
            [(0.1, 0, 1.0), (0.2, 1, 9.0), (0.3, 2, 1.0), (0.4, 1, 9.0), (0.5, 0, 1.0), (0.6, 2, 1.0)];
        let mut x = Vec::new();
        for (number, category, _) in rows {
            x.push(number);
            x.extend((0..3).map(|c| if c == category { 1.0 } else { 0.0 }));
        }
        let y: Vec<f32> = rows.iter().map(|r| r.2).collect();
        let (nodes, fitted) = grow(&x, 4, &[Columns::Number, Columns::OneHot(3)], &y, OPTIONS);
        assert_eq!(nodes[0], Node::Split { column: 2, threshold: 0.5, missing_left: true, left: 1, right: 2 });
        assert_eq!(fitted, y);
    }

    #[test]
    fn counting_on_several_threads_sums_exactly_what_one_thread_does() {
        let mut rng = Rng::new(6);
        let rows = PARALLEL_COUNT / 2;
        let x: Vec<f32> = (0..rows * 3).map(|_| rng.normal() as f32).collect();
        let pairs: Vec<GradientPair> =
            (0..rows).map(|_| GradientPair { gradient: rng.normal() as f32, hessian: rng.uniform() as f32 }).collect();
        let binners = fit(&x, 3, &[Columns::Number; 3], 255, &mut rng);
        let binned = Binned::new(&binners, &x, 3);
        let counted_with = |threads: usize| {
            let grower = Grower { threads, ..Grower::new(&binners, &binned, OPTIONS) };
            let mut scratch = Scratch { order: (0..rows as u32).collect(), ..Scratch::default() };
            let mut histogram = grower.take_histogram(&mut scratch);
            grower.count(&mut histogram, 0, rows, &pairs, &mut scratch);
            histogram
        };
        assert_eq!(counted_with(1), counted_with(3));
    }

    #[test]
    fn partitioning_keeps_the_order_of_both_sides() {
        let mut rows = [5, 1, 8, 2, 9, 4];
        let left = partition(&mut rows, &mut Vec::new(), |row| row % 2 == 0);
        assert_eq!((left, rows), (3, [8, 2, 4, 5, 1, 9]));
    }

    #[test]
    fn a_larger_sibling_counted_by_subtraction_equals_one_counted_from_its_rows() {
        let mut rng = Rng::new(4);
        let x: Vec<f32> = (0..300).map(|_| rng.normal() as f32).collect();
        let y: Vec<f32> = x.chunks(3).map(|r| r[0] * 2.0 + r[1].signum()).collect();
        let binners = fit(&x, 3, &[Columns::Number; 3], 16, &mut rng);
        let binned = Binned::new(&binners, &x, 3);
        let grower = Grower::new(&binners, &binned, GrowOptions { max_leaf_nodes: 2, ..OPTIONS });
        let pairs = gradients(&y);
        let mut scratch = Scratch::default();
        let mut parent = grower.take_histogram(&mut scratch);
        scratch.order = (0..100).collect();
        grower.count(&mut parent, 0, 100, &pairs, &mut scratch);
        let mut sums = Sums::default();
        pairs.iter().for_each(|&pair| sums.add(pair));
        let split = grower.best_split(&parent, sums);
        let root = Leaf { node: 0, start: 0, end: 100, depth: 0, sums, split, histogram: Some(parent) };
        let mut nodes = vec![Node::Leaf(0.0)];
        let children = grower.split(root, &mut nodes, &pairs, &mut scratch);
        for child in children {
            let mut counted = vec![Sums::default(); grower.offsets[3]];
            grower.count(&mut counted, child.start, child.end, &pairs, &mut scratch);
            for (a, b) in child.histogram.unwrap().iter().zip(&counted) {
                assert_eq!(a.rows, b.rows);
                assert!((a.gradient - b.gradient).abs() < 1e-9 && (a.hessian - b.hessian).abs() < 1e-9);
            }
        }
    }
}
