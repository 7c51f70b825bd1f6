//! The judge's answer: the statistics, the classification the rule derives from them, and
//! the sentence a person reads. Classification and wording live together so that the
//! sentence always states the condition that decided.

use serde::{Deserialize, Serialize};

use crate::config::{DecisionRule, JudgeConfig};

/// What the judge concluded about the canary relative to the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Classification {
    /// No failing difference in a watched direction.
    Pass,
    /// The canary is larger than the baseline and the rule says that fails.
    High,
    /// The canary is smaller than the baseline and the rule says that fails.
    Low,
    /// A sample was empty after cleaning (or the configuration was invalid): no verdict.
    NoData,
}

/// How the p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    /// Exact null distribution of U: no pooled ties, n < 50 and m < 50.
    Exact,
    /// Normal approximation with tie and continuity corrections.
    Asymptotic,
}

/// Everything the judge found. Serialises to the keys of `fife judge --output json`.
///
/// For `NoData` the numbers are neutral placeholders, never NaN, so the JSON stays valid:
/// `u` = 0, `p_value` = 1, `method` = asymptotic, `shift` = 0, `ci` = [0, 0],
/// `effect_size` = null, `cles` = 0.5; `reason` says which sample was empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Canary samples after NaN and outlier handling.
    pub n_canary: usize,
    /// Baseline samples after NaN and outlier handling.
    pub n_baseline: usize,
    /// Mann-Whitney U of the canary, mid-ranks for ties.
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    pub method: Method,
    /// Hodges-Lehmann shift: median of canary_i − baseline_j.
    pub shift: f64,
    /// Confidence interval of the shift, [lo, hi].
    pub ci: [f64; 2],
    /// mean(canary) / mean(baseline); None when either mean is 0.
    pub effect_size: Option<f64>,
    /// Common-language effect size P(canary > baseline) + ½·P(tie) = U/(n·m).
    pub cles: f64,
    pub classification: Classification,
    /// One sentence stating the verdict and the facts that decided it.
    pub reason: String,
}

/// The statistics classification is decided on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statistics {
    pub n_canary: usize,
    pub n_baseline: usize,
    pub u: f64,
    pub p_value: f64,
    pub method: Method,
    pub shift: f64,
    pub ci: [f64; 2],
    pub effect_size: Option<f64>,
}

impl Statistics {
    /// Applies the decision rule and words the outcome.
    pub fn classify(self, config: &JudgeConfig) -> Judgement {
        let (classification, reason) = decide(&self, config);
        let pairs = self.n_canary as f64 * self.n_baseline as f64;
        Judgement {
            n_canary: self.n_canary,
            n_baseline: self.n_baseline,
            u: self.u,
            p_value: self.p_value,
            method: self.method,
            shift: self.shift,
            ci: self.ci,
            effect_size: self.effect_size,
            cles: self.u / pairs,
            classification,
            reason,
        }
    }
}

impl Judgement {
    pub(crate) fn no_data(n_canary: usize, n_baseline: usize, reason: String) -> Judgement {
        Judgement {
            n_canary,
            n_baseline,
            u: 0.0,
            p_value: 1.0,
            method: Method::Asymptotic,
            shift: 0.0,
            ci: [0.0, 0.0],
            effect_size: None,
            cles: 0.5,
            classification: Classification::NoData,
            reason,
        }
    }
}

fn decide(s: &Statistics, config: &JudgeConfig) -> (Classification, String) {
    let alpha = config.alpha();
    let half_pairs = s.n_canary as f64 * s.n_baseline as f64 / 2.0;
    let evidence = format!(
        "{} ({}% CI {} to {}), p={}",
        signed(s.shift),
        number(config.confidence * 100.0),
        number(s.ci[0]),
        number(s.ci[1]),
        p_value(s.p_value)
    );
    // The effect gate lets a team tolerate a known, small change in mean.
    let increase_gate = s.effect_size.is_none_or(|r| r >= config.allowed_increase);
    let decrease_gate = s.effect_size.is_none_or(|r| r <= config.allowed_decrease);
    let ratio = |op: &str, allowed: f64| match s.effect_size {
        Some(r) => format!("mean ratio {} {op} allowed {}", number(r), number(allowed)),
        None => "mean ratio undefined (a mean is 0)".to_string(),
    };

    let (higher, lower, test_text) = match config.rule {
        DecisionRule::Significance => {
            let significant = s.p_value < alpha;
            if !significant {
                return (
                    Classification::Pass,
                    format!(
                        "no significant difference between canary and baseline: {evidence} ≥ α={}",
                        number(alpha)
                    ),
                );
            }
            (s.u > half_pairs, s.u < half_pairs, "significant")
        }
        DecisionRule::Kayenta => {
            let margin = 0.25 * s.shift.abs();
            let (higher, lower) = (s.ci[0] > margin, s.ci[1] < -margin);
            if !higher && !lower {
                return (
                    Classification::Pass,
                    format!(
                        "the interval does not lie clearly away from zero (Kayenta rule): {evidence}"
                    ),
                );
            }
            (higher, lower, "clear of zero")
        }
    };

    if higher {
        if !config.direction.watches_increase() {
            return (
                Classification::Pass,
                format!(
                    "canary is higher than baseline: {evidence}, but only a lower canary fails (direction decrease)"
                ),
            );
        }
        if !increase_gate {
            return (
                Classification::Pass,
                format!(
                    "canary is higher than baseline but within tolerance: {evidence}, {}",
                    ratio("<", config.allowed_increase)
                ),
            );
        }
        let ratio = ratio("≥", config.allowed_increase);
        return (
            Classification::High,
            format!("canary is higher than baseline: {evidence}, {ratio}"),
        );
    }
    if lower {
        if !config.direction.watches_decrease() {
            return (
                Classification::Pass,
                format!(
                    "canary is lower than baseline: {evidence}, but only a higher canary fails (direction increase)"
                ),
            );
        }
        if !decrease_gate {
            return (
                Classification::Pass,
                format!(
                    "canary is lower than baseline but within tolerance: {evidence}, {}",
                    ratio(">", config.allowed_decrease)
                ),
            );
        }
        let ratio = ratio("≤", config.allowed_decrease);
        return (
            Classification::Low,
            format!("canary is lower than baseline: {evidence}, {ratio}"),
        );
    }
    // Significant yet U = n·m/2 cannot happen (p = 1 there); kept total for safety.
    (
        Classification::Pass,
        format!("difference is {test_text} but has no direction: {evidence}"),
    )
}

/// Three significant digits, trailing zeros dropped; scientific outside [1e-4, 1e15).
pub(crate) fn number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    let magnitude = x.abs();
    if !(1e-4..1e15).contains(&magnitude) {
        return format!("{x:.2e}");
    }
    let exponent = magnitude.log10().floor() as i32;
    let decimals = (2 - exponent).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{}", number(x))
    } else {
        number(x)
    }
}

fn p_value(p: f64) -> String {
    if p > 0.0 && p < 1e-4 {
        format!("{p:.1e}")
    } else {
        number(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Direction;

    fn stats(u: f64, p: f64, shift: f64, ci: [f64; 2], ratio: Option<f64>) -> Statistics {
        Statistics {
            n_canary: 10,
            n_baseline: 10,
            u,
            p_value: p,
            method: Method::Exact,
            shift,
            ci,
            effect_size: ratio,
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1.10), "1.1");
        assert_eq!(number(0.00123), "0.00123");
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(-8.0), "-8");
        assert_eq!(number(95.0), "95");
        assert_eq!(p_value(0.0004), "0.0004");
        assert_eq!(p_value(3e-9), "3.0e-9");
        assert_eq!(signed(12.3), "+12.3");
    }

    #[test]
    fn significance_rule_high_low_pass() {
        let cfg = JudgeConfig::default();
        let high = stats(90.0, 0.001, 12.3, [8.1, 16.0], Some(1.14)).classify(&cfg);
        assert_eq!(high.classification, Classification::High);
        assert_eq!(
            high.reason,
            "canary is higher than baseline: +12.3 (95% CI 8.1 to 16), p=0.001, mean ratio 1.14 ≥ allowed 1"
        );
        let low = stats(10.0, 0.001, -3.0, [-5.0, -1.0], Some(0.8)).classify(&cfg);
        assert_eq!(low.classification, Classification::Low);
        let pass = stats(60.0, 0.2, 1.0, [-1.0, 3.0], Some(1.1)).classify(&cfg);
        assert_eq!(pass.classification, Classification::Pass);
        assert!(
            pass.reason.starts_with("no significant difference"),
            "{}",
            pass.reason
        );
    }

    #[test]
    fn direction_and_effect_gate_hold_back_a_failure() {
        let only_decrease = JudgeConfig {
            direction: Direction::Decrease,
            ..Default::default()
        };
        let j = stats(90.0, 0.001, 12.3, [8.1, 16.0], Some(1.14)).classify(&only_decrease);
        assert_eq!(j.classification, Classification::Pass);
        let tolerant = JudgeConfig {
            allowed_increase: 1.2,
            ..Default::default()
        };
        let j = stats(90.0, 0.001, 12.3, [8.1, 16.0], Some(1.14)).classify(&tolerant);
        assert_eq!(j.classification, Classification::Pass);
        assert!(
            j.reason.contains("mean ratio 1.14 < allowed 1.2"),
            "{}",
            j.reason
        );
        let undefined_ratio = stats(90.0, 0.001, 0.0, [0.0, 1.0], None).classify(&tolerant);
        assert_eq!(undefined_ratio.classification, Classification::High);
    }

    #[test]
    fn kayenta_rule_needs_the_interval_clear_of_zero() {
        let cfg = JudgeConfig {
            rule: DecisionRule::Kayenta,
            ..Default::default()
        };
        // Zero shift with a significant p: Kayenta passes it.
        let j = stats(70.0, 0.001, 0.0, [0.0, 1.0], None).classify(&cfg);
        assert_eq!(j.classification, Classification::Pass);
        let j = stats(90.0, 0.001, 4.0, [1.5, 6.0], Some(1.2)).classify(&cfg);
        assert_eq!(j.classification, Classification::High);
        let j = stats(90.0, 0.001, 4.0, [0.9, 6.0], Some(1.2)).classify(&cfg);
        assert_eq!(j.classification, Classification::Pass, "lo ≤ 0.25·|shift|");
        let j = stats(10.0, 0.001, -4.0, [-6.0, -1.5], Some(0.8)).classify(&cfg);
        assert_eq!(j.classification, Classification::Low);
    }

    #[test]
    fn wire_names() {
        assert_eq!(
            serde_json::to_string(&Classification::NoData).unwrap(),
            "\"NoData\""
        );
        assert_eq!(
            serde_json::to_string(&Method::Asymptotic).unwrap(),
            "\"asymptotic\""
        );
    }
}
