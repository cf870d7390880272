//! The population stability index, as plain functions.
//!
//! Numeric features are cut into bins at the reference's quantiles; a
//! categorical feature's bins are the reference's categories plus one for
//! categories the reference never saw. Missing values (NaN, empty strings)
//! have a bin of their own. With `e` and `a` the reference's and the
//! window's share of each bin,
//!
//! ```text
//! PSI = Σ (a − e) · ln(a / e)
//! ```
//!
//! where a share of zero is replaced by `epsilon` so that an empty bin
//! counts as a large, finite contribution.

/// The interior bin edges of a numeric reference: its quantiles at
/// `1/bins, 2/bins, …, (bins−1)/bins` (linear interpolation, as numpy's
/// default), duplicates removed. NaNs are ignored. Value `x` falls in bin
/// `i` when `edges[i−1] < x ≤ edges[i]` (right-closed, as `pandas.cut`).
pub fn quantile_edges(reference: &[f64], bins: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = reference.iter().copied().filter(|x| !x.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() || bins < 2 {
        return Vec::new();
    }
    let mut edges: Vec<f64> = (1..bins)
        .map(|i| quantile_sorted(&sorted, i as f64 / bins as f64))
        .collect();
    edges.dedup();
    edges
}

/// The `q` quantile of sorted values, interpolating linearly between the
/// two nearest ranks (numpy's `method="linear"`).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Counts per bin of numeric values: `edges.len() + 1` value bins, then one
/// bin of missing values (NaN).
pub fn numeric_counts(edges: &[f64], values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 2];
    let missing = edges.len() + 1;
    for &x in values {
        let bin = if x.is_nan() {
            missing
        } else {
            edges.partition_point(|e| *e < x)
        };
        counts[bin] += 1;
    }
    counts
}

/// Counts per bin of categorical values: one bin per entry of `categories`
/// (sorted), then one for other categories, then one for missing values
/// (empty strings).
pub fn categorical_counts<S: AsRef<str>>(categories: &[String], values: &[S]) -> Vec<u64> {
    let mut counts = vec![0u64; categories.len() + 2];
    for v in values {
        let v = v.as_ref();
        let bin = if v.is_empty() {
            categories.len() + 1
        } else {
            categories
                .binary_search_by(|c| c.as_str().cmp(v))
                .unwrap_or(categories.len())
        };
        counts[bin] += 1;
    }
    counts
}

/// Shares of a total, with `epsilon` in place of zero.
pub fn proportions(counts: &[u64], epsilon: f64) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if c == 0 || total == 0 {
                epsilon
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// The PSI of `actual` shares against `expected` shares (same bins).
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(e, a)| (a - e) * (a / e).ln())
        .sum()
}

/// The PSI of a numeric window against a numeric reference with `bins`
/// quantile bins (a one-shot convenience over the functions above).
pub fn psi_numeric(reference: &[f64], window: &[f64], bins: usize, epsilon: f64) -> f64 {
    let edges = quantile_edges(reference, bins);
    let expected = proportions(&numeric_counts(&edges, reference), epsilon);
    let actual = proportions(&numeric_counts(&edges, window), epsilon);
    psi(&expected, &actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} != {b} (tolerance {tol})");
    }

    #[test]
    fn edges_are_numpy_quantiles() {
        // np.quantile([1..=10], [0.25, 0.5, 0.75]) == [3.25, 5.5, 7.75]
        let r: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile_edges(&r, 4), [3.25, 5.5, 7.75]);
        // ties collapse: np.unique(np.quantile([1,1,1,1,2], [.25,.5,.75])) == [1.]
        assert_eq!(quantile_edges(&[1.0, 1.0, 1.0, 1.0, 2.0], 4), [1.0]);
        assert!(quantile_edges(&[f64::NAN], 4).is_empty());
    }

    #[test]
    fn counts_are_right_closed_with_a_missing_bin() {
        let c = numeric_counts(&[3.25, 5.5, 7.75], &[1.0, 3.25, 3.3, 5.5, 9.0, f64::NAN]);
        assert_eq!(c, [2, 2, 0, 1, 1]);
        let cats = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            categorical_counts(&cats, &["a", "z", "", "b", "b"]),
            [1, 2, 1, 1]
        );
    }

    #[test]
    fn hand_computed_psi() {
        // Reference 1..=10 in 2 bins (edge 5.5): shares 0.5, 0.5, missing 0 → ε.
        // Window [1, 2, 3, 9]: shares 0.75, 0.25, missing ε.
        // PSI = (0.75−0.5)·ln(1.5) + (0.25−0.5)·ln(0.5) + 0 = 0.27465307216702745
        let r: Vec<f64> = (1..=10).map(f64::from).collect();
        close(
            psi_numeric(&r, &[1.0, 2.0, 3.0, 9.0], 2, 1e-4),
            0.274_653_072_167_027_45,
            1e-15,
        );
        // Identical samples do not drift.
        assert_eq!(psi_numeric(&r, &r, 10, 1e-4), 0.0);
    }

    /// Deterministic samples that numpy and Rust compute bit for bit alike.
    fn samples() -> (Vec<f64>, Vec<f64>) {
        let reference = (0..1000u64)
            .map(|i| ((i * 7919) % 1009) as f64 / 100.0)
            .collect();
        let window = (0..500u64)
            .map(|i| ((i * 104729) % 1013) as f64 / 90.0)
            .collect();
        (reference, window)
    }

    #[test]
    fn matches_numpy() {
        // ref = np.array([((i*7919) % 1009)/100.0 for i in range(1000)])
        // win = np.array([((i*104729) % 1013)/90.0 for i in range(500)])
        // edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
        // e = np.bincount(np.searchsorted(edges, ref, 'left'), minlength=len(edges)+1) / len(ref)
        // a = np.bincount(np.searchsorted(edges, win, 'left'), minlength=len(edges)+1) / len(win)
        // e, a = np.where(e == 0, 1e-4, e), np.where(a == 0, 1e-4, a)
        // ((a - e) * np.log(a / e)).sum()
        let (reference, window) = samples();
        let expected = [
            1.009, 2.018, 3.027, 4.046, 5.055, 6.054, 7.063, 8.072, 9.071,
        ];
        let edges = quantile_edges(&reference, 10);
        assert_eq!(edges.len(), expected.len());
        for (e, x) in edges.iter().zip(expected) {
            close(*e, x, 1e-12);
        }
        close(
            psi_numeric(&reference, &window, 10, 1e-4),
            0.06312162636727087,
            1e-12,
        );
        close(
            psi_numeric(&reference, &window, 4, 1e-4),
            0.028380833106217227,
            1e-12,
        );
    }
}
