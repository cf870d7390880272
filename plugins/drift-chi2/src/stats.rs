//! Pearson's chi-squared goodness-of-fit test of a window's category counts
//! against the reference's frequencies, as plain functions.
//!
//! The buckets are the reference's categories plus one for categories the
//! reference never saw. Expected shares are the reference's, smoothed
//! additively so that no bucket (the unseen one included) expects zero:
//! `p_i = (c_i + s) / (N + s·k)` over `k` buckets. With `n` window values,
//! `E_i = n·p_i` and
//!
//! ```text
//! χ² = Σ (O_i − E_i)² / E_i,   k − 1 degrees of freedom,
//! ```
//!
//! the p-value is the chi-squared survival function (as
//! `scipy.stats.chisquare(observed, expected)`), and the effect size is
//! Cohen's `w = √(χ²/n)`, which does not grow with the window's size.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Counts per bucket: one per entry of sorted `categories`, then one for
/// any other value.
pub fn bucket_counts<S: AsRef<str>>(categories: &[String], values: &[S]) -> Vec<f64> {
    let mut counts = vec![0.0; categories.len() + 1];
    for v in values {
        let i = categories
            .binary_search_by(|c| c.as_str().cmp(v.as_ref()))
            .unwrap_or(categories.len());
        counts[i] += 1.0;
    }
    counts
}

/// Expected shares from reference counts with additive `smoothing`.
pub fn smoothed_shares(reference_counts: &[f64], smoothing: f64) -> Vec<f64> {
    let total: f64 = reference_counts.iter().sum();
    let denom = total + smoothing * reference_counts.len() as f64;
    reference_counts
        .iter()
        .map(|c| (c + smoothing) / denom)
        .collect()
}

/// The test's result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChiSquaredResult {
    /// χ².
    pub statistic: f64,
    /// Degrees of freedom (buckets − 1).
    pub dof: usize,
    /// `P(X ≥ χ²)` for X chi-squared with `dof` degrees of freedom.
    pub p_value: f64,
    /// Cohen's w, `√(χ²/n)`.
    pub effect_size: f64,
}

/// Tests observed counts against expected shares (same buckets, shares
/// positive and summing to 1, at least two buckets, some observations).
pub fn chi_squared(observed: &[f64], shares: &[f64]) -> ChiSquaredResult {
    let n: f64 = observed.iter().sum();
    let statistic: f64 = observed
        .iter()
        .zip(shares)
        .map(|(o, p)| {
            let e = n * p;
            (o - e) * (o - e) / e
        })
        .sum();
    let dof = observed.len().saturating_sub(1).max(1);
    ChiSquaredResult {
        statistic,
        dof,
        p_value: chi2_sf(statistic, dof as f64),
        effect_size: (statistic / n).sqrt(),
    }
}

/// The chi-squared survival function `P(X ≥ x)` with `dof` degrees of
/// freedom (`scipy.stats.chi2.sf(x, dof)`).
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    ChiSquared::new(dof).map(|d| d.sf(x)).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want.abs(),
            "{got} != {want} (relative {rel})"
        );
    }

    fn values(spec: &[(&str, usize)]) -> Vec<String> {
        spec.iter()
            .flat_map(|(c, n)| std::iter::repeat_n(c.to_string(), *n))
            .collect()
    }

    #[test]
    fn matches_scipy_chisquare() {
        // rc = counts(["a","b","c"], ref) + [unseen]; p = (rc + 0.5) / (rc.sum() + 0.5*len(rc))
        // stats.chisquare(wc, wc.sum() * p)
        let cats: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let reference = values(&[("a", 50), ("b", 30), ("c", 20)]);
        let shares = smoothed_shares(&bucket_counts(&cats, &reference), 0.5);
        let window = values(&[("a", 30), ("b", 30), ("c", 25), ("d", 5)]);
        let r = chi_squared(&bucket_counts(&cats, &window), &shares);
        close(r.statistic, 54.860154947921814, 1e-12);
        close(r.p_value, 7.35440901991431e-12, 1e-6);
        close(r.effect_size, 0.7807414919159422, 1e-12);
        assert_eq!(r.dof, 3);
        let window = values(&[("a", 25), ("b", 15), ("c", 10)]);
        let r = chi_squared(&bucket_counts(&cats, &window), &shares);
        close(r.statistic, 0.24792459253922186, 1e-12);
        close(r.p_value, 0.9695051735355987, 1e-9);
    }

    #[test]
    fn survival_function_matches_scipy() {
        // stats.chi2.sf(x, k)
        for (x, k, want) in [
            (3.84, 1.0, 0.05004352124870519),
            (10.0, 3.0, 0.01856613546304325),
            (0.5, 2.0, 0.7788007830714049),
            (50.0, 10.0, 2.669083424904495e-07),
            (200.0, 150.0, 0.003973185970821635),
        ] {
            close(chi2_sf(x, k), want, 1e-8);
        }
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
    }
}
