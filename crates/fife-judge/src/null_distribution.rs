//! The distribution of U when canary and baseline come from the same population: exact
//! (counted) for small samples without ties, normal with tie and continuity corrections
//! otherwise. Gives two-sided p-values and the quantiles the interval needs.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::erf::erfc;

/// Samples at least this large on either side use the normal approximation.
pub(crate) const EXACT_LIMIT: usize = 50;

/// The exact null distribution of U for samples of n and m distinct values: how many of
/// the C(n+m, n) equally likely rank arrangements give U = u, for u = 0..=n·m.
#[derive(Debug, Clone)]
pub(crate) struct ExactNull {
    frequencies: Vec<u128>,
    arrangements: u128,
}

impl ExactNull {
    /// Coefficients of the Gaussian binomial [n+m choose n]_q = Π_{i=1..n} (1 − q^(m+i)) /
    /// (1 − q^i), by polynomial arithmetic truncated at degree n·m (exact: the result is a
    /// polynomial of that degree). Integer counts, so the p-value carries one rounding.
    /// Counts stay below 2·C(98, 49) ≈ 5·10²⁸ for n, m < 50, well within i128.
    pub fn new(n: usize, m: usize) -> ExactNull {
        let (n, m) = (n.min(m), n.max(m));
        let degree = n * m;
        let mut coefficients = vec![0i128; degree + 1];
        coefficients[0] = 1;
        for i in 1..=n {
            let multiply = m + i;
            for d in (multiply..=degree).rev() {
                coefficients[d] -= coefficients[d - multiply];
            }
            for d in i..=degree {
                coefficients[d] += coefficients[d - i];
            }
        }
        let frequencies: Vec<u128> = coefficients
            .into_iter()
            .map(|c| u128::try_from(c).expect("Gaussian binomial coefficients are non-negative"))
            .collect();
        let arrangements = frequencies.iter().sum();
        ExactNull {
            frequencies,
            arrangements,
        }
    }

    /// Number of arrangements with U ≤ q.
    fn arrangements_at_most(&self, q: usize) -> u128 {
        self.frequencies[..=q.min(self.frequencies.len() - 1)]
            .iter()
            .sum()
    }

    /// Two-sided p = 2·P(U ≥ max(U, n·m − U)), capped at 1 (scipy's definition).
    pub fn p_value(&self, u: u64) -> f64 {
        let n_m = (self.frequencies.len() - 1) as u64;
        let lower = u.min(n_m - u) as usize;
        let tail = self.arrangements_at_most(lower);
        ((2 * tail) as f64 / self.arrangements as f64).min(1.0)
    }

    /// R's `qwilcox(p, n, m)`: the smallest q with P(U ≤ q) ≥ p, with R's allowance of
    /// 10 machine epsilons on p so that the interval matches R's bit for bit.
    pub fn quantile(&self, p: f64) -> u64 {
        let target = p - 10.0 * f64::EPSILON;
        let mut cumulative: u128 = 0;
        for (q, &f) in self.frequencies.iter().enumerate() {
            cumulative += f;
            if cumulative as f64 / self.arrangements as f64 >= target {
                return q as u64;
            }
        }
        (self.frequencies.len() - 1) as u64
    }
}

/// σ of U under the null with the tie correction:
/// sqrt(n·m/12 · ((n+m+1) − Σ(t³−t)/((n+m)(n+m−1)))).
pub(crate) fn sigma(n: usize, m: usize, tie_term: f64) -> f64 {
    let pooled = (n + m) as f64;
    let (n, m) = (n as f64, m as f64);
    (n * m / 12.0 * ((pooled + 1.0) - tie_term / (pooled * (pooled - 1.0)))).sqrt()
}

/// Two-sided p from the normal approximation with continuity correction 0.5:
/// z = (max(U, n·m − U) − n·m/2 − 0.5)/σ, p = 2·(1 − Φ(z)), capped at 1.
pub(crate) fn asymptotic_p_value(u: f64, n: usize, m: usize, sigma: f64) -> f64 {
    let n_m = n as f64 * m as f64;
    let u_max = u.max(n_m - u);
    let z = (u_max - n_m / 2.0 - 0.5) / sigma;
    // 1 − Φ(z) = erfc(z/√2)/2 keeps full relative precision far into the tail.
    (erfc(z / std::f64::consts::SQRT_2)).min(1.0)
}

/// Φ⁻¹(q) of the standard normal.
pub(crate) fn normal_quantile(q: f64) -> f64 {
    Normal::standard().inverse_cdf(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_exact_distribution_by_enumeration() {
        // n = 2, m = 2: the six arrangements give U = 0,1,2,2,3,4.
        let d = ExactNull::new(2, 2);
        assert_eq!(d.frequencies, vec![1, 1, 2, 1, 1]);
        assert_eq!(d.arrangements, 6);
        assert_eq!(d.p_value(4), 2.0 / 6.0);
        assert_eq!(d.p_value(2), 1.0);
    }

    #[test]
    fn arrangements_are_the_binomial_coefficient() {
        let d = ExactNull::new(49, 49);
        // C(98, 49)
        assert_eq!(d.arrangements, 25_477_612_258_980_856_902_730_428_600);
        let d = ExactNull::new(3, 7);
        assert_eq!(d.arrangements, 120);
        assert_eq!(d.frequencies.len(), 22);
    }

    #[test]
    fn quantile_matches_r_qwilcox() {
        // R: qwilcox(0.025, 10, 12) = 30; qwilcox(0.025, 3, 4) = 0; qwilcox(0.5, 5, 5) = 12.
        assert_eq!(ExactNull::new(10, 12).quantile(0.025), 30);
        assert_eq!(ExactNull::new(3, 4).quantile(0.025), 0);
        assert_eq!(ExactNull::new(5, 5).quantile(0.5), 12);
    }

    #[test]
    fn asymptotic_p_of_a_centred_u_is_one() {
        let s = sigma(10, 10, 0.0);
        assert_eq!(asymptotic_p_value(50.0, 10, 10, s), 1.0);
        assert!(asymptotic_p_value(90.0, 10, 10, s) < 0.01);
    }
}
