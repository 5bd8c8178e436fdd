//! Data profiles: what a set of rows looks like, column by column.
//!
//! The ETL writes one profile per ingested object and merges them into a profile per
//! dataset; training records the dataset profile in the model bundle as its baseline, and
//! monitoring compares live data against it. All three use the types and the merge/compare
//! logic here, so they cannot disagree about what a profile means.
//!
//! Numeric columns keep an equal-width histogram over their own `[min, max]`. Merging
//! re-bins both onto the union range, spreading each bin's count evenly over the part of
//! the new bins it overlaps: totals stay exact, shapes become approximate. Categorical
//! columns keep their most frequent values; merging sums counts, so a value that was just
//! outside the top list in every part can be under-counted (it is in `other`).
//!
//! How live data is compared with a baseline profile (drift) is in [`drift`].

pub mod drift;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use drift::{DriftPolicy, DriftReport, FeatureDrift, FeatureKind, LiveColumn, Test, Verdict, compare, report};

/// Bins in a numeric histogram.
pub const HISTOGRAM_BINS: usize = 20;
/// Most frequent values kept for a categorical column.
pub const TOP_VALUES: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    /// The column's type as the schema names it (`integer`, `float`, `string`, ...).
    pub column_type: String,
    /// Non-null values.
    pub count: u64,
    pub nulls: u64,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stats {
    Numeric(NumericStats),
    Categorical(CategoricalStats),
    /// A column with no non-null values yet.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (0 for a single value).
    pub std: f64,
    /// Quantiles estimated from the histogram: p5, p25, p50, p75, p95.
    pub quantiles: [f64; 5],
    pub histogram: Histogram,
}

/// Equal-width bins over `[min, max]`; `counts` may be fractional after a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub counts: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalStats {
    /// Most frequent values, most frequent first (ties by value).
    pub top: Vec<(String, u64)>,
    /// Values not in `top`.
    pub other: u64,
    /// Distinct values seen; a lower bound once merged.
    pub distinct: u64,
}

const QUANTILES: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

impl ColumnProfile {
    /// Profiles numeric values (nulls counted separately). Non-finite values are the
    /// caller's to reject before they get here.
    pub fn numeric(name: &str, column_type: &str, values: &[f64], nulls: u64) -> Self {
        let count = values.len() as u64;
        if values.is_empty() {
            return Self {
                name: name.to_owned(),
                column_type: column_type.to_owned(),
                count,
                nulls,
                stats: Stats::Empty,
            };
        }
        // Two passes, the mean first and then the squared deviations from it: as accurate as
        // an online update, and without its division per value the loops run at memory speed.
        let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        for &value in values {
            min = min.min(value);
            max = max.max(value);
            sum += value;
        }
        let mean = sum / count as f64;
        let m2 = values.iter().map(|&value| (value - mean) * (value - mean)).sum();
        let mut counts = vec![0.0; HISTOGRAM_BINS];
        for &value in values {
            counts[bin_of(value, min, max, HISTOGRAM_BINS)] += 1.0;
        }
        let histogram = Histogram { min, max, counts };
        let stats =
            NumericStats { min, max, mean, std: std_from(m2, count), quantiles: histogram.quantiles(), histogram };
        Self { name: name.to_owned(), column_type: column_type.to_owned(), count, nulls, stats: Stats::Numeric(stats) }
    }

    /// Profiles categorical values given as `(value, occurrences)`, plus `untracked` values
    /// the caller counted without telling them apart (they go to `other`).
    pub fn categorical(
        name: &str,
        column_type: &str,
        frequencies: BTreeMap<String, u64>,
        untracked: u64,
        nulls: u64,
    ) -> Self {
        let count = frequencies.values().sum::<u64>() + untracked;
        let stats = if count == 0 {
            Stats::Empty
        } else {
            let mut stats = top_of(frequencies);
            stats.other += untracked;
            Stats::Categorical(stats)
        };
        Self { name: name.to_owned(), column_type: column_type.to_owned(), count, nulls, stats }
    }

    /// Combines the profiles of two disjoint sets of rows of the same column.
    pub fn merge(&self, other: &Self) -> Self {
        let stats = match (&self.stats, &other.stats) {
            (Stats::Empty, stats) | (stats, Stats::Empty) => stats.clone(),
            (Stats::Numeric(a), Stats::Numeric(b)) => Stats::Numeric(merge_numeric(a, self.count, b, other.count)),
            (Stats::Categorical(a), Stats::Categorical(b)) => Stats::Categorical(merge_categorical(a, b)),
            // Kinds differ only if the column changed type; the newer view wins.
            (_, newer) => newer.clone(),
        };
        Self {
            name: self.name.clone(),
            column_type: other.column_type.clone(),
            count: self.count + other.count,
            nulls: self.nulls + other.nulls,
            stats,
        }
    }
}

impl Profile {
    /// Combines profiles of disjoint row sets. Columns are matched by name; a column only
    /// one side has keeps its statistics, and the other side's rows count as its nulls.
    pub fn merge(&self, other: &Self) -> Self {
        let mut columns: Vec<ColumnProfile> = Vec::new();
        for column in &self.columns {
            let merged = match other.columns.iter().find(|c| c.name == column.name) {
                Some(theirs) => column.merge(theirs),
                None => ColumnProfile { nulls: column.nulls + other.rows, ..column.clone() },
            };
            columns.push(merged);
        }
        for column in other.columns.iter().filter(|c| !self.columns.iter().any(|mine| mine.name == c.name)) {
            columns.push(ColumnProfile { nulls: column.nulls + self.rows, ..column.clone() });
        }
        Self { rows: self.rows + other.rows, columns }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn std_from(m2: f64, count: u64) -> f64 {
    if count > 1 { (m2 / (count - 1) as f64).sqrt() } else { 0.0 }
}

/// The bin of `value` among `bins` equal-width bins over `[min, max]`; the maximum lands
/// in the last bin, and a zero-width range (a constant column) has everything in bin 0.
fn bin_of(value: f64, min: f64, max: f64, bins: usize) -> usize {
    if max <= min {
        return 0;
    }
    let position = (value - min) / (max - min) * bins as f64;
    (position as usize).min(bins.saturating_sub(1))
}

fn top_of(frequencies: BTreeMap<String, u64>) -> CategoricalStats {
    let distinct = frequencies.len() as u64;
    let mut ranked: Vec<(String, u64)> = frequencies.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let other = ranked.iter().skip(TOP_VALUES).map(|(_, n)| n).sum();
    ranked.truncate(TOP_VALUES);
    CategoricalStats { top: ranked, other, distinct }
}

fn merge_categorical(a: &CategoricalStats, b: &CategoricalStats) -> CategoricalStats {
    let mut frequencies = BTreeMap::new();
    for (value, count) in a.top.iter().chain(&b.top) {
        *frequencies.entry(value.clone()).or_insert(0) += count;
    }
    let mut merged = top_of(frequencies);
    merged.other += a.other + b.other;
    merged.distinct = merged.distinct.max(a.distinct).max(b.distinct);
    merged
}

fn merge_numeric(a: &NumericStats, count_a: u64, b: &NumericStats, count_b: u64) -> NumericStats {
    let count = count_a + count_b;
    let (na, nb, n) = (count_a as f64, count_b as f64, count as f64);
    let delta = b.mean - a.mean;
    let mean = a.mean + delta * nb / n;
    let m2 = a.std.powi(2) * (na - 1.0).max(0.0) + b.std.powi(2) * (nb - 1.0).max(0.0) + delta * delta * na * nb / n;
    let (min, max) = (a.min.min(b.min), a.max.max(b.max));
    let mut counts = vec![0.0; HISTOGRAM_BINS];
    for histogram in [&a.histogram, &b.histogram] {
        histogram.spread_onto(min, max, &mut counts);
    }
    let histogram = Histogram { min, max, counts };
    NumericStats { min, max, mean, std: std_from(m2, count), quantiles: histogram.quantiles(), histogram }
}

impl Histogram {
    fn width(&self) -> f64 {
        (self.max - self.min) / self.counts.len() as f64
    }

    /// Adds this histogram's counts to equal-width `target` bins over `[min, max]`, each
    /// source bin spread evenly over the target range it covers.
    pub fn spread_onto(&self, min: f64, max: f64, target: &mut [f64]) {
        let bins = target.len();
        let target_width = (max - min) / bins as f64;
        for (index, &count) in self.counts.iter().enumerate() {
            if count == 0.0 {
                continue;
            }
            let low = self.min + index as f64 * self.width();
            let high = low + self.width();
            if high <= low || target_width <= 0.0 {
                // A point mass (all values equal): it lands in one bin.
                let bin = if target_width > 0.0 { (((low - min) / target_width) as usize).min(bins - 1) } else { 0 };
                target[bin] += count;
                continue;
            }
            for (bin, slot) in target.iter_mut().enumerate() {
                let bin_low = min + bin as f64 * target_width;
                let bin_high = bin_low + target_width;
                let overlap = high.min(bin_high) - low.max(bin_low);
                if overlap > 0.0 {
                    *slot += count * overlap / (high - low);
                }
            }
        }
    }

    /// Value below which a fraction `q` of the mass lies, interpolating within a bin.
    pub fn quantile(&self, q: f64) -> f64 {
        let total: f64 = self.counts.iter().sum();
        if total == 0.0 || self.max <= self.min {
            return self.min;
        }
        let wanted = q * total;
        let mut seen = 0.0;
        for (index, &count) in self.counts.iter().enumerate() {
            if count > 0.0 && seen + count >= wanted {
                let within = (wanted - seen) / count;
                return self.min + (index as f64 + within) * self.width();
            }
            seen += count;
        }
        self.max
    }

    fn quantiles(&self) -> [f64; 5] {
        QUANTILES.map(|q| self.quantile(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(values: &[f64]) -> ColumnProfile {
        ColumnProfile::numeric("x", "float", values, 0)
    }

    fn categorical(values: &[&str]) -> ColumnProfile {
        let mut frequencies = BTreeMap::new();
        for value in values {
            *frequencies.entry((*value).to_owned()).or_insert(0) += 1;
        }
        ColumnProfile::categorical("c", "string", frequencies, 0, 0)
    }

    fn stats(column: &ColumnProfile) -> &NumericStats {
        match &column.stats {
            Stats::Numeric(stats) => stats,
            other => panic!("not numeric: {other:?}"),
        }
    }

    #[test]
    fn numeric_statistics_are_exact_for_one_part() {
        let column = numeric(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        let s = stats(&column);
        assert_eq!((s.min, s.max, s.mean), (2.0, 9.0, 5.0));
        assert!((s.std - 2.138_089_935).abs() < 1e-6, "{}", s.std);
        assert_eq!(s.histogram.counts.iter().sum::<f64>(), 8.0);
        assert_eq!(s.histogram.counts[0], 1.0);
        assert_eq!(s.histogram.counts[HISTOGRAM_BINS - 1], 1.0, "the maximum lands in the last bin");
    }

    #[test]
    fn merging_equals_profiling_the_union_for_moments() {
        let a: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let b: Vec<f64> = (50..300).map(|i| i as f64 * 0.5).collect();
        let union: Vec<f64> = a.iter().chain(&b).copied().collect();
        let merged = numeric(&a).merge(&numeric(&b));
        let whole = numeric(&union);
        let (m, w) = (stats(&merged), stats(&whole));
        assert_eq!(merged.count, 350);
        assert_eq!((m.min, m.max), (w.min, w.max));
        assert!((m.mean - w.mean).abs() < 1e-9);
        assert!((m.std - w.std).abs() < 1e-9);
        assert!((m.histogram.counts.iter().sum::<f64>() - 350.0).abs() < 1e-9, "mass is preserved");
        assert!(
            (m.quantiles[2] - w.quantiles[2]).abs() < 10.0,
            "median close: {} vs {}",
            m.quantiles[2],
            w.quantiles[2]
        );
    }

    #[test]
    fn merging_is_order_independent_in_totals() {
        let (a, b) = (numeric(&[1.0, 2.0]), numeric(&[10.0, 20.0, 30.0]));
        let (ab, ba) = (a.merge(&b), b.merge(&a));
        assert_eq!(ab.count, ba.count);
        assert!((stats(&ab).mean - stats(&ba).mean).abs() < 1e-12);
    }

    #[test]
    fn constant_columns_have_one_bin_and_zero_spread() {
        let column = numeric(&[3.0, 3.0, 3.0]);
        let s = stats(&column);
        assert_eq!((s.std, s.quantiles[2]), (0.0, 3.0));
        let merged = column.merge(&numeric(&[5.0]));
        assert_eq!(stats(&merged).histogram.counts.iter().sum::<f64>(), 4.0);
    }

    #[test]
    fn categorical_top_values_merge_by_count() {
        let merged = categorical(&["a", "a", "b"]).merge(&categorical(&["b", "b", "c"]));
        let Stats::Categorical(c) = &merged.stats else { panic!() };
        assert_eq!(c.top, vec![("b".to_owned(), 3), ("a".to_owned(), 2), ("c".to_owned(), 1)]);
        assert_eq!(merged.count, 6);
    }

    #[test]
    fn top_values_are_capped_and_the_rest_counted() {
        let values: Vec<String> = (0..30).map(|i| format!("v{i:02}")).collect();
        let column = categorical(&values.iter().map(String::as_str).collect::<Vec<_>>());
        let Stats::Categorical(c) = &column.stats else { panic!() };
        assert_eq!((c.top.len(), c.other, c.distinct), (TOP_VALUES, 10, 30));
    }

    #[test]
    fn profiles_merge_columns_by_name_and_count_missing_ones_as_null() {
        let a = Profile { rows: 2, columns: vec![numeric(&[1.0, 2.0])] };
        let b = Profile { rows: 3, columns: vec![numeric(&[3.0, 4.0, 5.0]), categorical(&["x", "y", "y"])] };
        let merged = a.merge(&b);
        assert_eq!(merged.rows, 5);
        assert_eq!(merged.column("x").unwrap().count, 5);
        assert_eq!(merged.column("c").unwrap().nulls, 2);
    }

    #[test]
    fn profiles_round_trip_through_json() {
        let profile = Profile { rows: 3, columns: vec![numeric(&[1.0, 2.0, 3.0]), categorical(&["a"])] };
        let json = serde_json::to_string(&profile).unwrap();
        assert!(json.contains("\"kind\":\"numeric\""));
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), profile);
    }
}
