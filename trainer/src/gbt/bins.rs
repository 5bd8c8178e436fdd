//! Features sorted into bins once, before any tree is grown: a number into at most
//! `max_bins` ranges cut at quantiles of the training rows (one bin per distinct value when
//! there are few), plus one bin for missing values; a one-hot group of the feature pipeline
//! into one feature whose bin is the category, as LightGBM bundles exclusive features. A
//! split is then "bins up to b" (or "category c"), and histograms have a slot per bin.

use crate::rng::Rng;

/// Quantiles are taken from at most this many values of a column, as scikit-learn does:
/// more rows move the cuts very little and sorting them costs time.
const QUANTILE_SAMPLE: usize = 200_000;

/// A one-hot group wider than this cannot name its column in a byte; its columns are
/// binned as numbers instead (two bins each).
const WIDEST_ONE_HOT: usize = 256;

/// How the feature matrix's columns are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// One column holding a number (NaN where it is missing).
    Number,
    /// This many columns of which exactly one holds a 1 in every row (a category).
    OneHot(usize),
}

/// How one feature's values become bins, and what a split on a bin means in the columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Binner {
    /// Bin `b` holds the values in `(thresholds[b - 1], thresholds[b]]`, so "bins up to `b`"
    /// is "value ≤ thresholds[b]"; the bin after the last holds missing values.
    Number { column: usize, thresholds: Vec<f32> },
    /// The bin is which of the `width` columns from `first` holds the 1.
    OneHot { first: usize, width: usize },
}

impl Binner {
    /// Histogram slots: one per bin, and for a number one more for missing values.
    pub fn slots(&self) -> usize {
        match self {
            Self::Number { thresholds, .. } => thresholds.len() + 2,
            Self::OneHot { width, .. } => *width,
        }
    }

    /// The missing-value bin of a number.
    pub fn missing_bin(&self) -> Option<u8> {
        match self {
            Self::Number { thresholds, .. } => Some((thresholds.len() + 1) as u8),
            Self::OneHot { .. } => None,
        }
    }

    /// The bin of one row's features.
    pub fn bin(&self, row: &[f32]) -> u8 {
        match self {
            Self::Number { column, thresholds } => {
                let value = row[*column];
                if value.is_nan() {
                    (thresholds.len() + 1) as u8
                } else {
                    thresholds.partition_point(|&t| t < value) as u8
                }
            }
            Self::OneHot { first, width } => {
                row[*first..first + width].iter().position(|&v| v > 0.5).unwrap_or(0) as u8
            }
        }
    }
}

/// Binners for the features of `x` (`inputs` columns a row, grouped as `layout` says),
/// fitted on its rows.
pub fn fit(x: &[f32], inputs: usize, layout: &[Columns], max_bins: usize, rng: &mut Rng) -> Vec<Binner> {
    let mut binners = Vec::with_capacity(layout.len());
    let mut column = 0;
    let number = |column: usize, rng: &mut Rng| {
        let values = x.chunks_exact(inputs).map(|row| row[column]);
        Binner::Number { column, thresholds: thresholds(values, max_bins, rng) }
    };
    for group in layout {
        match *group {
            Columns::Number => {
                binners.push(number(column, rng));
                column += 1;
            }
            Columns::OneHot(width) if width <= WIDEST_ONE_HOT => {
                binners.push(Binner::OneHot { first: column, width });
                column += width;
            }
            Columns::OneHot(width) => {
                for offset in 0..width {
                    binners.push(number(column + offset, rng));
                }
                column += width;
            }
        }
    }
    binners
}

/// Cuts between the bins of one column: midpoints between distinct values when there are
/// at most `max_bins` of them, otherwise `max_bins - 1` quantiles (numpy's "midpoint"
/// percentiles, as scikit-learn takes them). Ascending and distinct in f32, the type the
/// exported graph compares in.
fn thresholds(values: impl Iterator<Item = f32>, max_bins: usize, rng: &mut Rng) -> Vec<f32> {
    let mut present: Vec<f32> = values.filter(|v| !v.is_nan()).collect();
    if present.len() > QUANTILE_SAMPLE {
        rng.shuffle(&mut present);
        present.truncate(QUANTILE_SAMPLE);
    }
    present.sort_unstable_by(f32::total_cmp);
    let mut distinct = present.clone();
    distinct.dedup();
    let cuts: Vec<f64> = if distinct.len() <= max_bins {
        distinct.windows(2).map(|pair| (f64::from(pair[0]) + f64::from(pair[1])) / 2.0).collect()
    } else {
        let last = (present.len() - 1) as f64;
        (1..max_bins)
            .map(|q| {
                let position = q as f64 / max_bins as f64 * last;
                let (below, above) = (position.floor() as usize, position.ceil() as usize);
                (f64::from(present[below]) + f64::from(present[above])) / 2.0
            })
            .collect()
    };
    let mut thresholds: Vec<f32> = cuts.into_iter().map(|cut| cut as f32).collect();
    thresholds.dedup();
    thresholds
}

/// Every row's bin of every feature, feature by feature (a histogram pass reads one
/// feature's bins for many rows).
#[derive(Debug, Clone)]
pub struct Binned {
    rows: usize,
    bins: Vec<u8>,
}

impl Binned {
    pub fn new(binners: &[Binner], x: &[f32], inputs: usize) -> Self {
        let rows = x.len() / inputs.max(1);
        let mut bins = Vec::with_capacity(rows * binners.len());
        for binner in binners {
            bins.extend(x.chunks_exact(inputs).map(|row| binner.bin(row)));
        }
        Self { rows, bins }
    }

    pub fn feature(&self, feature: usize) -> &[u8] {
        &self.bins[feature * self.rows..(feature + 1) * self.rows]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binner(values: &[f32], max_bins: usize) -> Binner {
        fit(values, 1, &[Columns::Number], max_bins, &mut Rng::new(1)).remove(0)
    }

    #[test]
    fn few_distinct_values_get_a_bin_each_cut_halfway() {
        let binner = binner(&[3.0, 1.0, 2.0, 1.0, f32::NAN, 3.0], 255);
        assert_eq!(binner, Binner::Number { column: 0, thresholds: vec![1.5, 2.5] });
        let bins: Vec<u8> =
            [1.0, 1.5, 2.0, 2.5, 3.0, 99.0, -99.0, f32::NAN].iter().map(|v| binner.bin(&[*v])).collect();
        assert_eq!(bins, [0, 0, 1, 1, 2, 2, 0, 3], "values at a cut fall below it; NaN has the bin after the last");
        assert_eq!((binner.slots(), binner.missing_bin()), (4, Some(3)));
    }

    #[test]
    fn many_distinct_values_are_cut_at_quantiles() {
        let values: Vec<f32> = (0..1000).map(|v| v as f32).collect();
        let Binner::Number { thresholds, .. } = binner(&values, 4) else { panic!("a number") };
        assert_eq!(thresholds, [249.5, 499.5, 749.5], "numpy's midpoint percentiles 25, 50, 75");
        let binner = Binner::Number { column: 0, thresholds };
        let mut counts = [0; 4];
        for v in &values {
            counts[binner.bin(&[*v]) as usize] += 1;
        }
        assert_eq!(counts, [250; 4], "equal shares");
    }

    #[test]
    fn a_skewed_column_gets_no_empty_bins() {
        // Nine tenths zeros: the quantiles below 0.9 are all 0 and collapse into one cut.
        let values: Vec<f32> = (0..1000).map(|v| if v < 900 { 0.0 } else { v as f32 }).collect();
        let Binner::Number { thresholds, .. } = binner(&values, 10) else { panic!("a number") };
        assert!(thresholds.windows(2).all(|pair| pair[0] < pair[1]), "{thresholds:?}");
        assert_eq!(thresholds[0], 0.0);
        assert!(thresholds.len() < 9, "{thresholds:?}");
    }

    #[test]
    fn one_hot_groups_bin_by_their_hot_column_and_wide_ones_as_numbers() {
        let x = [0.5, 0.0, 1.0, 0.0, /* */ -0.5, 1.0, 0.0, 0.0, /* */ 2.0, 0.0, 0.0, 1.0];
        let binners = fit(&x, 4, &[Columns::Number, Columns::OneHot(3)], 255, &mut Rng::new(1));
        assert_eq!(binners[1], Binner::OneHot { first: 1, width: 3 });
        let binned = Binned::new(&binners, &x, 4);
        assert_eq!(binned.feature(0), [1, 0, 2]);
        assert_eq!(binned.feature(1), [1, 0, 2]);

        let wide = vec![0.0; WIDEST_ONE_HOT + 1];
        let binners = fit(&wide, WIDEST_ONE_HOT + 1, &[Columns::OneHot(WIDEST_ONE_HOT + 1)], 255, &mut Rng::new(1));
        assert_eq!(binners.len(), WIDEST_ONE_HOT + 1);
        assert!(matches!(binners[3], Binner::Number { column: 3, .. }));
    }
}
