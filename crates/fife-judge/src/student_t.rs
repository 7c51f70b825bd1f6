//! The Student t distribution the pod test needs: upper tail probabilities and quantiles
//! at a given number of degrees of freedom, accurate in the far tail that α spent over
//! many looks reaches. Checked against scipy in `tests/oracle.rs`.

use statrs::distribution::{Continuous, ContinuousCDF, StudentsT};

fn distribution(df: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, df).ok()
}

/// P(T > x) for T ~ t(df); 1 for an invalid df, so a broken input never looks significant.
pub fn upper_tail(x: f64, df: f64) -> f64 {
    match distribution(df) {
        Some(t) if !x.is_nan() => t.sf(x).clamp(0.0, 1.0),
        _ => 1.0,
    }
}

/// The p-quantile of t(df), 0 < p < 1; NaN for anything else.
///
/// Starts from statrs' inverse and polishes with Newton steps on the tail probability
/// itself, which keeps the relative error small where 1 − p is tiny.
pub fn quantile(p: f64, df: f64) -> f64 {
    let Some(t) = distribution(df) else {
        return f64::NAN;
    };
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    // Work in the upper half, where the tail probability q = 1 − p is stored exactly.
    let (q, sign) = if p > 0.5 { (1.0 - p, 1.0) } else { (p, -1.0) };
    let mut x = t.inverse_cdf(1.0 - q).abs();
    if !x.is_finite() {
        x = 1.0;
    }
    for _ in 0..8 {
        let density = t.pdf(x);
        if density <= 0.0 || !density.is_finite() {
            break;
        }
        let step = (t.sf(x) - q) / density;
        let next = x + step;
        if !next.is_finite() || next <= 0.0 {
            break;
        }
        let done = (next - x).abs() <= 1e-14 * x.abs();
        x = next;
        if done {
            break;
        }
    }
    sign * x
}
