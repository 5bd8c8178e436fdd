//! Evaluation metrics, and the stratified split they are measured on.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rng::Rng;

/// Row indices for training and validation: `fraction` of each class (at least one row of
/// every class with two or more rows) goes to validation, the rest to training.
pub fn stratified_split(classes: &[usize], fraction: f64, rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (row, &class) in classes.iter().enumerate() {
        by_class.entry(class).or_default().push(row);
    }
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for rows in by_class.values_mut() {
        rng.shuffle(rows);
        let mut take = (rows.len() as f64 * fraction).round() as usize;
        if take == 0 && rows.len() >= 2 && fraction > 0.0 {
            take = 1;
        }
        validation.extend_from_slice(&rows[..take]);
        train.extend_from_slice(&rows[take..]);
    }
    train.sort_unstable();
    validation.sort_unstable();
    (train, validation)
}

/// Classification metrics from class probabilities (`rows × classes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationMetrics {
    pub accuracy: f64,
    pub f1_macro: f64,
    pub log_loss: f64,
    /// Binary problems only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
}

pub fn classification(probabilities: &[f32], truth: &[usize], classes: usize) -> ClassificationMetrics {
    let rows = truth.len();
    let predicted: Vec<usize> = probabilities
        .chunks(classes)
        .map(|p| p.iter().enumerate().fold(0, |best, (i, &v)| if v > p[best] { i } else { best }))
        .collect();
    let accuracy = predicted.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / rows as f64;
    let mut f1_sum = 0.0;
    for class in 0..classes {
        let tp = predicted.iter().zip(truth).filter(|&(&p, &t)| p == class && t == class).count() as f64;
        let fp = predicted.iter().zip(truth).filter(|&(&p, &t)| p == class && t != class).count() as f64;
        let fn_ = predicted.iter().zip(truth).filter(|&(&p, &t)| p != class && t == class).count() as f64;
        f1_sum += if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) };
    }
    let log_loss = truth
        .iter()
        .enumerate()
        .map(|(r, &t)| -f64::from(probabilities[r * classes + t]).clamp(1e-15, 1.0).ln())
        .sum::<f64>()
        / rows as f64;
    let roc_auc = (classes == 2).then(|| {
        let scores: Vec<f32> = probabilities.chunks(2).map(|p| p[1]).collect();
        roc_auc(&scores, truth)
    });
    ClassificationMetrics { accuracy, f1_macro: f1_sum / classes as f64, log_loss, roc_auc }
}

/// Area under the ROC curve: the chance a random positive outscores a random negative
/// (ties count half).
fn roc_auc(scores: &[f32], truth: &[usize]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = rank;
        }
        i = j + 1;
    }
    let positives = truth.iter().filter(|&&t| t == 1).count() as f64;
    let negatives = truth.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let positive_ranks: f64 = truth.iter().zip(&ranks).filter(|(t, _)| **t == 1).map(|(_, r)| r).sum();
    (positive_ranks - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionMetrics {
    pub rmse: f64,
    pub mae: f64,
    pub r2: f64,
}

pub fn regression(predictions: &[f32], truth: &[f64]) -> RegressionMetrics {
    let rows = truth.len() as f64;
    let errors: Vec<f64> = predictions.iter().zip(truth).map(|(&p, &t)| f64::from(p) - t).collect();
    let mean = truth.iter().sum::<f64>() / rows;
    let total: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let residual: f64 = errors.iter().map(|e| e * e).sum();
    RegressionMetrics {
        rmse: (residual / rows).sqrt(),
        mae: errors.iter().map(|e| e.abs()).sum::<f64>() / rows,
        r2: if total > 0.0 { 1.0 - residual / total } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_metrics_on_a_known_case() {
        // Rows: truth 0,0,1,1; predicted 0,1,1,1.
        let probabilities = [0.9, 0.1, 0.4, 0.6, 0.2, 0.8, 0.3, 0.7];
        let metrics = classification(&probabilities, &[0, 0, 1, 1], 2);
        assert_eq!(metrics.accuracy, 0.75);
        // Class 0: tp 1, fn 1 → F1 2/3. Class 1: tp 2, fp 1 → F1 0.8.
        assert!((metrics.f1_macro - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        assert_eq!(metrics.roc_auc, Some(1.0), "every positive scores above every negative");
        let expected_loss = -(0.9_f64.ln() + 0.4_f64.ln() + 0.8_f64.ln() + 0.7_f64.ln()) / 4.0;
        assert!((metrics.log_loss - expected_loss).abs() < 1e-6);
    }

    #[test]
    fn auc_counts_ties_as_half() {
        assert_eq!(roc_auc(&[0.5, 0.5], &[0, 1]), 0.5);
        assert_eq!(roc_auc(&[0.9, 0.1], &[0, 1]), 0.0);
    }

    #[test]
    fn regression_metrics_on_a_known_case() {
        let metrics = regression(&[1.0, 2.0, 4.0], &[1.0, 3.0, 5.0]);
        assert!((metrics.mae - 2.0 / 3.0).abs() < 1e-12);
        assert!((metrics.rmse - (2.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((metrics.r2 - (1.0 - 2.0 / 8.0)).abs() < 1e-12);
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let classes: Vec<usize> = (0..100).map(|i| usize::from(i % 10 == 0)).collect();
        let (train, validation) = stratified_split(&classes, 0.2, &mut Rng::new(42));
        assert_eq!(validation.len(), 20);
        assert_eq!(validation.iter().filter(|&&r| classes[r] == 1).count(), 2, "the rare class keeps its share");
        assert_eq!(train.len() + validation.len(), 100);
        assert_eq!(stratified_split(&classes, 0.2, &mut Rng::new(42)).1, validation);
    }
}
