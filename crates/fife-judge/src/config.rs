//! What the judge is asked: which test, confidence, direction, tolerated effect, decision
//! rule, scale and how to clean the samples. Defaults are the contract's defaults;
//! `validate` rejects settings the definitions do not cover, and is the one owner of their
//! bounds (the API validates comparison settings through it).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which comparison the judge runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Test {
    /// Pod-level locations compared with a Student t test whose variance is the spread
    /// between pods of one version, α spent over the looks of a run ([`crate::judge_pods`]).
    #[default]
    Pods,
    /// Error ratios: errors over requests summed per pod, compared as proportions with a
    /// dispersion estimated from the pods (quasi-binomial), α spent over the looks of a
    /// run ([`crate::judge_counts`]).
    Counts,
    /// Every point of every series pooled into one Mann-Whitney U test ([`crate::judge`]);
    /// valid for independent samples, kept for teams migrating from Kayenta.
    MannWhitney,
}

/// The scale on which the pod test compares locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Scale {
    /// `log` when every value is greater than 0, `linear` otherwise.
    #[default]
    Auto,
    /// Natural logarithm: shifts are ratios (latencies, sizes).
    Log,
    /// Values as they are: shifts are differences (error ratios, which can be 0).
    Linear,
}

/// Which change of the canary counts as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Only a canary larger than the baseline fails (latency, errors).
    Increase,
    /// Only a canary smaller than the baseline fails (throughput, success rate).
    Decrease,
    /// Any significant difference fails.
    #[default]
    Either,
}

impl Direction {
    /// True when a larger canary may be classified `High`.
    pub fn watches_increase(self) -> bool {
        matches!(self, Direction::Increase | Direction::Either)
    }

    /// True when a smaller canary may be classified `Low`.
    pub fn watches_decrease(self) -> bool {
        matches!(self, Direction::Decrease | Direction::Either)
    }
}

/// How the judge turns the statistics into a classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DecisionRule {
    /// Fail on a significant Mann-Whitney p-value in the watched direction.
    #[default]
    Significance,
    /// Fail when the Hodges-Lehmann interval lies clearly away from zero, as Kayenta's
    /// NetflixACAJudge does; offered for teams migrating from it.
    Kayenta,
}

/// What happens to non-finite samples (NaN, +∞, −∞).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NanPolicy {
    /// Drop them.
    #[default]
    Remove,
    /// Count them as 0 (useful for rates where "no data" means "no events").
    ReplaceWithZero,
}

/// Whether extreme samples are dropped before the test.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutlierPolicy {
    /// Use every sample.
    #[default]
    Keep,
    /// Drop samples outside [Q1 − factor·IQR, Q3 + factor·IQR], fenced per sample
    /// (canary and baseline separately), quartiles by linear interpolation.
    RemoveIqr {
        /// Tukey's fence factor; 1.5 is customary.
        factor: f64,
    },
}

/// The questions the judge answers, with the contract's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JudgeConfig {
    pub test: Test,
    /// Confidence level of the test and of the interval; α = 1 − confidence.
    pub confidence: f64,
    pub direction: Direction,
    /// A larger canary fails only when mean(canary)/mean(baseline) ≥ this.
    pub allowed_increase: f64,
    /// A smaller canary fails only when mean(canary)/mean(baseline) ≤ this.
    pub allowed_decrease: f64,
    pub rule: DecisionRule,
    pub nan_policy: NanPolicy,
    pub outlier_policy: OutlierPolicy,
    /// The pod test's scale; the pooled Mann-Whitney test ignores it.
    pub scale: Scale,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            test: Test::Pods,
            confidence: 0.95,
            direction: Direction::Either,
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            rule: DecisionRule::Significance,
            nan_policy: NanPolicy::Remove,
            outlier_policy: OutlierPolicy::Keep,
            scale: Scale::Auto,
        }
    }
}

/// A setting the judge's definitions do not cover.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    #[error("confidence must lie strictly between 0 and 1 (for example 0.95), got {0}")]
    Confidence(f64),
    #[error("allowedIncrease must be a finite ratio of at least 1 (1.10 tolerates +10%), got {0}")]
    AllowedIncrease(f64),
    #[error("allowedDecrease must be a ratio in (0, 1] (0.90 tolerates −10%), got {0}")]
    AllowedDecrease(f64),
    #[error("the outlier fence factor must be finite and at least 0 (1.5 is customary), got {0}")]
    OutlierFactor(f64),
}

impl ConfigError {
    /// The setting at fault, by its wire name, for messages that point at a field.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::Confidence(_) => "confidence",
            ConfigError::AllowedIncrease(_) => "allowedIncrease",
            ConfigError::AllowedDecrease(_) => "allowedDecrease",
            ConfigError::OutlierFactor(_) => "outliers.factor",
        }
    }
}

impl JudgeConfig {
    /// Checks that every setting lies where the definitions apply; the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every setting that lies outside the definitions, in field order, so a validator can
    /// report them all at once.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            problems.push(ConfigError::Confidence(self.confidence));
        }
        if !(self.allowed_increase.is_finite() && self.allowed_increase >= 1.0) {
            problems.push(ConfigError::AllowedIncrease(self.allowed_increase));
        }
        if !(self.allowed_decrease > 0.0 && self.allowed_decrease <= 1.0) {
            problems.push(ConfigError::AllowedDecrease(self.allowed_decrease));
        }
        if let OutlierPolicy::RemoveIqr { factor } = self.outlier_policy
            && !(factor.is_finite() && factor >= 0.0)
        {
            problems.push(ConfigError::OutlierFactor(factor));
        }
        problems
    }

    /// α = 1 − confidence.
    pub fn alpha(&self) -> f64 {
        1.0 - self.confidence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts() {
        let c = JudgeConfig::default();
        assert_eq!(c.confidence, 0.95);
        assert_eq!(c.direction, Direction::Either);
        assert_eq!(c.allowed_increase, 1.0);
        assert_eq!(c.allowed_decrease, 1.0);
        assert_eq!(c.rule, DecisionRule::Significance);
        assert_eq!(c.nan_policy, NanPolicy::Remove);
        assert_eq!(c.outlier_policy, OutlierPolicy::Keep);
        assert_eq!(c.test, Test::Pods);
        assert_eq!(c.scale, Scale::Auto);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_settings_outside_the_definitions() {
        for confidence in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let c = JudgeConfig {
                confidence,
                ..Default::default()
            };
            assert!(matches!(c.validate(), Err(ConfigError::Confidence(_))));
        }
        let c = JudgeConfig {
            allowed_increase: 0.9,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::AllowedIncrease(_))));
        let c = JudgeConfig {
            allowed_decrease: f64::INFINITY,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::AllowedDecrease(_))));
        let c = JudgeConfig {
            outlier_policy: OutlierPolicy::RemoveIqr { factor: -1.0 },
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::OutlierFactor(_))));
    }

    #[test]
    fn wire_names_are_camel_case() {
        let c = JudgeConfig {
            direction: Direction::Increase,
            rule: DecisionRule::Kayenta,
            nan_policy: NanPolicy::ReplaceWithZero,
            outlier_policy: OutlierPolicy::RemoveIqr { factor: 1.5 },
            test: Test::MannWhitney,
            scale: Scale::Linear,
            ..Default::default()
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"test":"mannWhitney","confidence":0.95,"direction":"increase","allowedIncrease":1.0,"allowedDecrease":1.0,"rule":"kayenta","nanPolicy":"replaceWithZero","outlierPolicy":{"removeIqr":{"factor":1.5}},"scale":"linear"}"#
        );
        let back: JudgeConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
