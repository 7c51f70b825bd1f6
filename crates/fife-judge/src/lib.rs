//! Fife's statistical judge: is the canary worse than its baseline?
//!
//! Three tests: [`judge_pods`] (the default) compares one location per pod against the
//! spread between pods of one version, with α spent over the looks of a run;
//! [`judge_counts`] compares error ratios (errors over requests per pod) the same way,
//! quasi-binomially; [`judge`] pools every point into one Mann-Whitney U test (exact for
//! independent samples), and [`judge_clean`] runs it on samples a caller has already
//! cleaned and sorted ([`CleanSample`], one per thread):
//!
//! ```text
//! raw samples ─▶ clean (NaN, outliers) ─▶ sort ─▶ U, ties ─▶ p (exact | asymptotic)
//!                                              └▶ pairwise differences ─▶ shift, CI
//!                                   statistics + config ─▶ classification + reason
//! ```
//!
//! Pure and deterministic: no I/O, no randomness in results, same input → same output.
//! From 2¹⁴ canary values on, the pooled test's interval search walks on two threads (the
//! result is the same bits).
//! The definitions are the contract in `docs/judge.md`; tests check them against scipy
//! and R.

#![forbid(unsafe_code)]

mod config;
mod counts;
mod differences;
mod judgement;
mod null_distribution;
mod pods;
mod ranks;
mod samples;
pub mod student_t;

pub use config::{
    ConfigError, DecisionRule, Direction, JudgeConfig, NanPolicy, OutlierPolicy, Scale, Test,
};
pub use counts::{CountJudgement, CountMethod, CounterSeries, PodCounts, judge_counts};
pub use judgement::{Classification, Judgement, Method};
pub use pods::{Look, MIN_POINTS_PER_POD, PodJudgement, PodLocation, PodSeries, Point, judge_pods};
pub use samples::CleanSample;

use differences::PairwiseDifferences;
use judgement::Statistics;
use null_distribution::{EXACT_LIMIT, ExactNull};

/// Compares `canary` against `baseline` under `config`.
///
/// Never fails: an empty sample (after cleaning) or an invalid `config` yields
/// `Classification::NoData` with a reason. Callers that accept configuration from users
/// should run [`JudgeConfig::validate`] first to report the problem where it was made.
pub fn judge(canary: &[f64], baseline: &[f64], config: &JudgeConfig) -> Judgement {
    judge_clean(
        &CleanSample::new(canary.to_vec(), config),
        &CleanSample::new(baseline.to_vec(), config),
        config,
    )
}

/// [`judge`] on samples already cleaned and sorted, each perhaps on a thread of its own.
///
/// # Panics
/// When a sample was cleaned under other NaN or outlier policies than `config`'s: the
/// caller prepared it for another comparison.
pub fn judge_clean(
    canary: &CleanSample,
    baseline: &CleanSample,
    config: &JudgeConfig,
) -> Judgement {
    assert!(
        canary.cleaned_as(config) && baseline.cleaned_as(config),
        "judge_clean: both samples must be cleaned under the config's NaN and outlier policies"
    );
    let (canary_raw, baseline_raw) = (canary.given(), baseline.given());
    let (canary, baseline) = (canary.values(), baseline.values());
    let (n, m) = (canary.len(), baseline.len());

    if let Err(error) = config.validate() {
        return Judgement::no_data(n, m, format!("no verdict: {error}"));
    }
    if n == 0 || m == 0 {
        let empty = match (n, m) {
            (0, 0) => {
                format!("neither canary ({canary_raw} given) nor baseline ({baseline_raw} given)")
            }
            (0, _) => format!("the canary ({canary_raw} given)"),
            _ => format!("the baseline ({baseline_raw} given)"),
        };
        return Judgement::no_data(
            n,
            m,
            format!("no data: {empty} has no samples left after removing NaN and outliers"),
        );
    }

    let mean_ratio = {
        let (mean_canary, mean_baseline) = (samples::mean(canary), samples::mean(baseline));
        (mean_canary != 0.0 && mean_baseline != 0.0).then(|| mean_canary / mean_baseline)
    };
    let pairs = n as u64 * m as u64;

    if canary[0] == canary[n - 1] && baseline[0] == baseline[m - 1] && canary[0] == baseline[0] {
        let mut j = Statistics {
            n_canary: n,
            n_baseline: m,
            u: pairs as f64 / 2.0,
            p_value: 1.0,
            method: null_distribution_method(n, m, true),
            shift: 0.0,
            ci: [0.0, 0.0],
            effect_size: mean_ratio,
        }
        .classify(config);
        j.reason = format!(
            "canary and baseline are identical: all {} samples equal {}",
            n + m,
            judgement::number(canary[0])
        );
        return j;
    }

    let ranks = ranks::rank_summary(canary, baseline);
    let method = null_distribution_method(n, m, ranks.has_ties);
    let alpha = config.alpha();
    let differences = PairwiseDifferences::new(canary, baseline);

    let (p_value, ci_rank) = match method {
        Method::Exact => {
            let null = ExactNull::new(n, m);
            let q = null.quantile(alpha / 2.0).max(1);
            (null.p_value(ranks.twice_u / 2), q)
        }
        Method::Asymptotic => {
            let sigma = null_distribution::sigma(n, m, ranks.tie_term);
            let p = null_distribution::asymptotic_p_value(ranks.u(), n, m, sigma);
            let z = null_distribution::normal_quantile(1.0 - alpha / 2.0);
            let k = (pairs as f64 / 2.0 - z * sigma - 0.5).ceil();
            (p, k.clamp(1.0, pairs as f64) as u64)
        }
    };

    // The median's two middle ranks coincide when N is odd.
    let (middle_lo, middle_hi) = (pairs.div_ceil(2), pairs / 2 + 1);
    let [ci_lo, median_lo, median_hi, ci_hi] =
        differences.order_statistics(&[ci_rank, middle_lo, middle_hi, pairs - ci_rank + 1])[..]
    else {
        unreachable!("four ranks give four values")
    };
    let shift = (median_lo + median_hi) / 2.0;
    let ci = [ci_lo, ci_hi];

    Statistics {
        n_canary: n,
        n_baseline: m,
        u: ranks.u(),
        p_value,
        method,
        shift,
        ci,
        effect_size: mean_ratio,
    }
    .classify(config)
}

/// Exact when the pooled sample has no ties and both samples have fewer than 50 values.
fn null_distribution_method(n: usize, m: usize, has_ties: bool) -> Method {
    if !has_ties && n < EXACT_LIMIT && m < EXACT_LIMIT {
        Method::Exact
    } else {
        Method::Asymptotic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sample_is_no_data_with_neutral_numbers() {
        let j = judge(&[f64::NAN], &[1.0, 2.0], &JudgeConfig::default());
        assert_eq!(j.classification, Classification::NoData);
        assert_eq!((j.n_canary, j.n_baseline), (0, 2));
        assert_eq!(j.p_value, 1.0);
        assert_eq!(j.cles, 0.5);
        assert!(j.reason.contains("the canary (1 given)"), "{}", j.reason);
        assert!(serde_json::to_string(&j).is_ok());
    }

    #[test]
    fn invalid_config_is_no_data() {
        let cfg = JudgeConfig {
            confidence: 1.5,
            ..Default::default()
        };
        let j = judge(&[1.0], &[2.0], &cfg);
        assert_eq!(j.classification, Classification::NoData);
        assert!(j.reason.contains("confidence"), "{}", j.reason);
    }

    #[test]
    fn constant_pool_passes_with_fixed_values() {
        let j = judge(&[3.0; 4], &[3.0; 6], &JudgeConfig::default());
        assert_eq!(j.u, 12.0);
        assert_eq!(j.p_value, 1.0);
        assert_eq!(j.shift, 0.0);
        assert_eq!(j.ci, [0.0, 0.0]);
        assert_eq!(j.classification, Classification::Pass);
        assert_eq!(j.effect_size, Some(1.0));
        assert_eq!(j.cles, 0.5);
    }

    #[test]
    fn zero_inflated_regression_is_high_under_significance_but_passes_kayenta() {
        let mut canary = vec![0.0; 40];
        canary.extend([1.0, 2.0, 1.0, 3.0, 1.0, 2.0, 1.0, 1.0, 4.0, 2.0]);
        let baseline = vec![0.0; 50];
        let j = judge(&canary, &baseline, &JudgeConfig::default());
        assert_eq!(j.shift, 0.0);
        assert!(j.p_value < 0.01, "p = {}", j.p_value);
        assert_eq!(j.classification, Classification::High, "{}", j.reason);
        let kayenta = JudgeConfig {
            rule: DecisionRule::Kayenta,
            ..Default::default()
        };
        assert_eq!(
            judge(&canary, &baseline, &kayenta).classification,
            Classification::Pass
        );
    }

    #[test]
    fn clear_shift_is_high_with_exact_method() {
        let baseline: Vec<f64> = (0..20).map(|i| 100.0 + i as f64).collect();
        let canary: Vec<f64> = (0..20).map(|i| 130.5 + i as f64).collect();
        let j = judge(&canary, &baseline, &JudgeConfig::default());
        assert_eq!(j.method, Method::Exact);
        assert_eq!(
            j.u, 400.0,
            "every canary value is above every baseline value"
        );
        assert_eq!(j.shift, 30.5);
        assert!(j.ci[0] <= 30.5 && 30.5 <= j.ci[1]);
        assert_eq!(j.classification, Classification::High);
    }

    #[test]
    fn same_input_same_bytes() {
        let c: Vec<f64> = (0..3000)
            .map(|i| ((i * 7919) % 1000) as f64 * 0.01)
            .collect();
        let b: Vec<f64> = (0..2000)
            .map(|i| ((i * 104_729) % 997) as f64 * 0.01)
            .collect();
        let a = serde_json::to_string(&judge(&c, &b, &JudgeConfig::default())).unwrap();
        let again = serde_json::to_string(&judge(&c, &b, &JudgeConfig::default())).unwrap();
        assert_eq!(a, again);
    }
}
