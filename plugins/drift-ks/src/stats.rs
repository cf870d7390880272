//! The two-sample Kolmogorov–Smirnov test, as plain functions that follow
//! `scipy.stats.ks_2samp(a, b, alternative="two-sided", method=...)`:
//!
//! - the statistic `D` is the largest distance between the two empirical
//!   distribution functions;
//! - `Method::Auto` uses the exact distribution when both samples have at
//!   most 10,000 values and the asymptotic one otherwise, as scipy does —
//!   except that for unequal sizes with a band of more than
//!   [`MAX_BAND_CELLS`] lattice cells (p-values below 1e-40) it takes the
//!   asymptotic value, which bounds the time of a call;
//! - the exact p-value counts lattice paths (Hodges 1958): for equal sizes
//!   the closed form scipy uses, otherwise the proportion of paths that
//!   leave the band `|x/m − y/n| < D`;
//! - the asymptotic p-value is the one-sample Kolmogorov distribution's
//!   survival function at `D` for `round(m·n/(m+n))` samples (scipy's
//!   `kstwo.sf`), computed as Simard & L'Ecuyer (2011) recommend: the
//!   Durbin matrix (Marsaglia–Tsang–Wang), the Pelz–Good approximation,
//!   twice Smirnov's one-sided exact probability for large `n·D²`, and
//!   Ruben–Gambino at the ends. Where scipy uses the Pomeranz recursion
//!   (fewer than 141 samples, `0.754693 < n·D² ≤ 4`) this uses the Durbin
//!   matrix, which computes the same exact probability.

use statrs::function::gamma::ln_gamma;
use std::f64::consts::PI;

/// How the p-value is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Exact when both samples have at most [`MAX_EXACT_N`] values.
    Auto,
    /// The exact distribution (falls back to asymptotic if it fails).
    Exact,
    /// The asymptotic distribution.
    Asymp,
}

/// The largest sample size for which [`Method::Auto`] is exact.
pub const MAX_EXACT_N: usize = 10_000;

/// The most lattice cells [`Method::Auto`] walks for an exact p-value of
/// unequal samples. Beyond it `m·n·D ≥ 10⁷` with both sizes at most
/// 10,000, so `n·D²/2 ≥ 50` and the p-value is below 1e-40 either way: the
/// asymptotic value is used instead, which keeps every call fast.
pub const MAX_BAND_CELLS: f64 = 2.0e7;

/// The cells of the band `|i/m − j/n| < D` the exact method walks.
fn band_cells(n1: u64, n2: u64, d: f64) -> f64 {
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    m * (2.0 * d * n + 1.0).min(n + 1.0)
}

/// The test's result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KsResult {
    /// The statistic D (for the exact method, rounded to a multiple of
    /// `1/lcm(n1, n2)` as scipy reports it).
    pub statistic: f64,
    /// The two-sided p-value.
    pub p_value: f64,
}

/// D: the largest absolute difference between the empirical distribution
/// functions of two sorted, non-empty, NaN-free samples.
pub fn statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n1 - j as f64 / n2).abs());
    }
    d
}

/// The two-sided test on two sorted, non-empty, NaN-free samples.
pub fn ks_2samp(a: &[f64], b: &[f64], method: Method) -> KsResult {
    let d = statistic(a, b);
    let (n1, n2) = (a.len() as u64, b.len() as u64);
    let exact = match method {
        Method::Auto => {
            n1.max(n2) as usize <= MAX_EXACT_N
                && (n1 == n2 || band_cells(n1, n2, d) <= MAX_BAND_CELLS)
        }
        Method::Exact => {
            let g = gcd(n1, n2);
            (n1 / g) < i32::MAX as u64 / (n2 / g)
        }
        Method::Asymp => false,
    };
    if exact && let Some((d, p)) = exact_p_value(n1, n2, d) {
        return KsResult {
            statistic: d,
            p_value: p,
        };
    }
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (m * n / (m + n)).round_ties_even();
    KsResult {
        statistic: d,
        p_value: kstwo_sf(en as u64, d).clamp(0.0, 1.0),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The exact two-sided p-value and the statistic rounded to the lattice,
/// or `None` when the computation is not numerically possible.
pub fn exact_p_value(n1: u64, n2: u64, d: f64) -> Option<(f64, f64)> {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return Some((d, 1.0));
    }
    let p = if n1 == n2 {
        prob_outside_square(n1, h)
    } else {
        prob_outside_band(n1, n2, g, h)
    };
    (p.is_finite() && (0.0..=1.0).contains(&p)).then_some((d, p))
}

/// `P(D ≥ h/n)` for two samples of size `n`:
/// `2·Σ_k (−1)^(k+1) C(2n, n−kh) / C(2n, n)`, evaluated Horner-style.
pub fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    while k >= 0 {
        let kh = k as u64 * h;
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n as f64 - kh as f64 - j as f64) * p1 / (n as f64 + kh as f64 + j as f64 + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The share of monotone lattice paths from (0,0) to (m,n) that leave the
/// band `|i·n/g − j·m/g| < h`: `P(D ≥ h/lcm(m, n))`. Each point holds the
/// probability that a random path reaches it inside the band, so no value
/// overflows.
pub fn prob_outside_band(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = (m.max(n), m.min(n));
    let (mg, ng, h) = ((m / g) as i64, (n / g) as i64, h as i64);
    let mut a = vec![0.0f64; n as usize + 1];
    let mut prev_lo = 0usize;
    for i in 0..=m as i64 {
        // j with |i·ng − j·mg| < h
        let lo = (i * ng - h).div_euclid(mg) + 1;
        let hi = (i * ng + h + mg - 1).div_euclid(mg) - 1;
        let (lo, hi) = (lo.max(0) as usize, hi.min(n as i64));
        if hi < lo as i64 {
            return 1.0;
        }
        let hi = hi as usize;
        let mut left = 0.0;
        for (j, value) in a.iter_mut().enumerate().take(hi + 1).skip(lo) {
            let v = if i == 0 && j == 0 {
                1.0
            } else {
                (*value * i as f64 + left * j as f64) / (i as f64 + j as f64)
            };
            *value = v;
            left = v;
        }
        for value in &mut a[prev_lo.min(lo)..lo] {
            *value = 0.0;
        }
        prev_lo = lo;
    }
    1.0 - a[n as usize]
}

const MIN_LOG: f64 = -708.0;

/// The survival function of the two-sided one-sample Kolmogorov statistic
/// for `n` samples: `P(D_n > x)` (scipy's `kstwo.sf(x, n)`).
pub fn kstwo_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    let nf = n as f64;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n)
                .map(|i| i as f64 / nf * (2.0 * t - 1.0))
                .product::<f64>()
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let nxx = t * x;
    if n <= 140 {
        if nxx <= 4.0 {
            return (1.0 - durbin_cdf(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    if nxx >= 370.0 {
        return 0.0;
    }
    if nxx >= 2.2 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// `ln(n!/n^n)` by Stirling's series.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    // Stirling's series: B_2k / (2k(2k−1)), highest order first.
    const COEFFS: [f64; 8] = [
        -3617.0 / 122400.0,
        1.0 / 156.0,
        -691.0 / 360360.0,
        1.0 / 1188.0,
        -1.0 / 1680.0,
        1.0 / 1260.0,
        -1.0 / 360.0,
        1.0 / 12.0,
    ];
    let rn = 1.0 / n;
    let poly = COEFFS.iter().fold(0.0, |acc, c| acc * (rn / n) + c);
    n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + rn * poly
}

/// Smirnov's one-sided exact probability `P(D_n⁺ ≥ x)`:
/// `x·Σ_{j=0}^{⌊n(1−x)⌋} C(n,j) (1−x−j/n)^(n−j) (x+j/n)^(j−1)`, summed in
/// log space.
pub fn smirnov(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let jmax = (nf * (1.0 - x)).floor() as u64;
    let ln_n1 = ln_gamma(nf + 1.0);
    let mut terms = Vec::with_capacity(jmax as usize + 1);
    for j in 0..=jmax {
        let jf = j as f64;
        let p = 1.0 - x - jf / nf;
        if p <= 0.0 && j < n {
            continue;
        }
        let q = x + jf / nf;
        let ln_binom = ln_n1 - ln_gamma(jf + 1.0) - ln_gamma(nf - jf + 1.0);
        let ln_p = if j == n { 0.0 } else { (nf - jf) * p.ln() };
        terms.push(ln_binom + ln_p + (jf - 1.0) * q.ln());
    }
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - top).exp()).sum();
    (x * sum * top.exp()).clamp(0.0, 1.0)
}

/// `P(D_n ≤ d)` by the Durbin matrix method (Marsaglia, Tsang, Wang 2003).
pub fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v = vec![0.0; m];
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = Matrix::zeros(m);
    for i in 1..m {
        for r in (i - 1)..m {
            hm.set(r, i, w[r - (i - 1)]);
        }
    }
    for (r, x) in v.iter().enumerate() {
        hm.set(r, 0, *x);
    }
    for c in 0..m {
        hm.set(m - 1, c, v[m - 1 - c]);
    }
    const E: i32 = 128;
    let ep = 2f64.powi(E);
    let em = 2f64.powi(-E);
    let mut pwr = Matrix::identity(m);
    let mut nn = n;
    let (mut expnt, mut h_expnt) = (0i32, 0i32);
    while nn > 0 {
        if nn % 2 == 1 {
            pwr = pwr.mul(&hm);
            expnt += h_expnt;
        }
        hm = hm.mul(&hm);
        h_expnt *= 2;
        if hm.get(k - 1, k - 1).abs() > ep {
            hm.scale(em);
            h_expnt += E;
        }
        nn /= 2;
    }
    let mut p = pwr.get(k - 1, k - 1);
    for i in 1..=n {
        p = i as f64 * p / n as f64;
        if p.abs() < em {
            p *= ep;
            expnt -= E;
        }
    }
    if expnt != 0 {
        p *= 2f64.powi(expnt);
    }
    p.clamp(0.0, 1.0)
}

/// The Pelz–Good approximation of `P(D_n ≤ x)`.
pub fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -PI * PI / 8.0 / z2;
    if qlog < MIN_LOG {
        return 0.0;
    }
    let q = qlog.exp();
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k0to3 = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = (2 * k - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * k as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (acc, c) in k0to3.iter_mut().zip(coeffs) {
            *acc = *acc * qpower + c;
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let denoms = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (acc, den) in k0to3.iter_mut().zip(denoms) {
        *acc = *acc * q * sqrt2pi / den;
    }
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for k in (1..=maxk).rev() {
        let kf = k as f64;
        let k2 = kf * kf;
        let qp = q.powf(k2);
        k2extra += k2 * qp;
        let kspi = PI * kf;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * k2 * qp;
    }
    k0to3[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k0to3[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    k0to3
        .iter()
        .enumerate()
        .map(|(i, k)| k / nf.powf(i as f64 / 2.0))
        .sum()
}

/// A small dense square matrix, row-major.
struct Matrix {
    n: usize,
    data: Vec<f64>,
}

impl Matrix {
    fn zeros(n: usize) -> Self {
        Matrix {
            n,
            data: vec![0.0; n * n],
        }
    }

    fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n);
        for i in 0..n {
            m.set(i, i, 1.0);
        }
        m
    }

    fn get(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.n + c]
    }

    fn set(&mut self, r: usize, c: usize, v: f64) {
        self.data[r * self.n + c] = v;
    }

    fn scale(&mut self, s: f64) {
        self.data.iter_mut().for_each(|x| *x *= s);
    }

    fn mul(&self, other: &Matrix) -> Matrix {
        let n = self.n;
        let mut out = Matrix::zeros(n);
        for r in 0..n {
            for k in 0..n {
                let a = self.data[r * n + k];
                if a == 0.0 {
                    continue;
                }
                let row = &other.data[k * n..(k + 1) * n];
                let dst = &mut out.data[r * n..(r + 1) * n];
                for (d, b) in dst.iter_mut().zip(row) {
                    *d += a * b;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic samples that numpy and Rust compute bit for bit alike:
    /// `np.array([((i*mul) % modulus)/div + off for i in range(n)])`.
    fn sample(n: u64, mul: u64, modulus: u64, div: f64, off: f64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n)
            .map(|i| ((i * mul) % modulus) as f64 / div + off)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol,
            "{got} != {want} (tolerance {tol})"
        );
    }

    fn check(a: &[f64], b: &[f64], method: Method, d: f64, p: f64, tol: f64) {
        let r = ks_2samp(a, b, method);
        close(r.statistic, d, 1e-12);
        close(r.p_value, p, tol);
    }

    // Expected values: scipy 1.17.1, `stats.ks_2samp(a, b, method=M)` on the
    // samples named in each test.

    #[test]
    fn exact_unequal_sizes() {
        // a = sample(60, 7919, 1009, 100.0); b = sample(45, 104729, 1013, 90.0)
        let a = sample(60, 7919, 1009, 100.0, 0.0);
        let b = sample(45, 104729, 1013, 90.0, 0.0);
        check(
            &a,
            &b,
            Method::Auto,
            0.1111111111111111,
            0.8793072802816579,
            1e-12,
        );
        check(
            &a,
            &b,
            Method::Exact,
            0.1111111111111111,
            0.8793072802816579,
            1e-12,
        );
        check(
            &a,
            &b,
            Method::Asymp,
            0.11111111111111116,
            0.870424772628523,
            1e-9,
        );
    }

    #[test]
    fn exact_equal_sizes() {
        // a = sample(50, 7919, 1009, 100.0); b = sample(50, 104729, 1013, 100.0, 0.8)
        let a = sample(50, 7919, 1009, 100.0, 0.0);
        let b = sample(50, 104729, 1013, 100.0, 0.8);
        check(&a, &b, Method::Auto, 0.1, 0.9667464356809096, 1e-12);
        check(
            &a,
            &b,
            Method::Asymp,
            0.09999999999999998,
            0.9426821978135056,
            1e-9,
        );
    }

    #[test]
    fn exact_thousands() {
        // a = sample(2000, 7919, 1009, 100.0); b = sample(1500, 104729, 1013, 100.0, 0.3)
        let a = sample(2000, 7919, 1009, 100.0, 0.0);
        let b = sample(1500, 104729, 1013, 100.0, 0.3);
        check(
            &a,
            &b,
            Method::Auto,
            0.035166666666666666,
            0.23482209565583337,
            1e-10,
        );
        check(
            &a,
            &b,
            Method::Asymp,
            0.03516666666666668,
            0.2341871321385537,
            1e-9,
        );
    }

    #[test]
    fn asymptotic_above_ten_thousand() {
        // a = sample(12000, 7919, 10007, 1000.0); b = sample(300, 104729, 1013, 100.0, 0.5)
        let a = sample(12000, 7919, 10007, 1000.0, 0.0);
        let b = sample(300, 104729, 1013, 100.0, 0.5);
        check(
            &a,
            &b,
            Method::Auto,
            0.0651666666666666,
            0.158840898613139,
            1e-9,
        );
        // a = sample(10001, 7919, 10007, 1000.0); b = sample(10001, 104729, 10009, 1000.0, 0.05)
        let a = sample(10001, 7919, 10007, 1000.0, 0.0);
        let b = sample(10001, 104729, 10009, 1000.0, 0.05);
        check(
            &a,
            &b,
            Method::Auto,
            0.005399460053994609,
            0.998474667109586,
            1e-9,
        );
    }

    #[test]
    fn large_distances_skip_the_exact_walk() {
        // D = 1 between disjoint samples of 10,000 and 9,999 values: the exact
        // walk would cover 10⁸ cells; p is 0 either way (scipy: 0.0).
        let a: Vec<f64> = (0..10_000).map(f64::from).collect();
        let b: Vec<f64> = (0..9_999).map(|i| f64::from(i) + 20_000.0).collect();
        let r = ks_2samp(&a, &b, Method::Auto);
        assert_eq!(r.statistic, 1.0);
        assert!(r.p_value < 1e-40, "{}", r.p_value);
    }

    #[test]
    fn identical_samples() {
        let a = sample(30, 7919, 1009, 100.0, 0.0);
        for m in [Method::Auto, Method::Exact, Method::Asymp] {
            check(&a, &a, m, 0.0, 1.0, 0.0);
        }
    }

    #[test]
    fn kolmogorov_survival_function_in_every_regime() {
        // stats.kstwo.sf(x, n)
        let cases = [
            (50, 0.05, 0.9990238098461883),     // Durbin matrix
            (50, 0.2, 0.03143877776953241),     // scipy: Pomeranz; here Durbin
            (50, 0.35, 5.573523514803185e-06),  // 2·smirnov
            (1000, 0.02, 0.8108971656895577),   // Pelz–Good
            (1000, 0.01, 0.9999496745370611),   // Durbin matrix
            (1000, 0.05, 0.013012074781090332), // 2·smirnov
            (100000, 0.003, 0.3284563327726956),
            (10, 0.6, 0.0005681672000000003),   // x ≥ 0.5
            (10, 0.08, 0.9999978058034054),     // Ruben–Gambino, n·x ≤ 1
            (10, 0.95, 1.9531250000000172e-13), // Ruben–Gambino, n·x ≥ n−1
            (293, 0.1, 0.00528794011372886),
            (5000, 0.02, 0.03613941395325637),
            (5000, 0.01, 0.6954557253913853),
            (140, 0.1, 0.11353657290090946),
            (141, 0.1, 0.11128445516467944),
        ];
        for (n, x, want) in cases {
            let got = kstwo_sf(n, x);
            assert!(
                (got - want).abs() <= 1e-10 + 1e-8 * want,
                "kstwo.sf({x}, {n}): {got} != {want}"
            );
        }
    }

    #[test]
    fn smirnov_one_sided() {
        // special.smirnov(n, x)
        let cases = [
            (10, 0.3, 0.1354635556),
            (50, 0.35, 2.7867617574015925e-06),
            (1000, 0.05, 0.006506037390545166),
            (5000, 0.03, 0.00012079617211333408),
            (100000, 0.005, 0.006715412488899804),
        ];
        for (n, x, want) in cases {
            let got = smirnov(n, x);
            assert!(
                (got - want).abs() <= 1e-9 * want,
                "smirnov({n}, {x}): {got} != {want}"
            );
        }
    }
}
