//! The counts test: is the canary's error ratio (errors over requests, each summed per pod
//! over the window) worse than the baseline's, given how much pods of one version differ?
//! A quasi-binomial comparison of two proportions with the pod as the cluster: the
//! dispersion φ is estimated from how far each pod's errors lie from its group's ratio, so
//! per-pod error multipliers, overlapping `increase` windows and `rate` units all widen
//! (or rescale) the variance instead of turning into false rollbacks. α is spent over the
//! looks of a run exactly as in the pod test.
//!
//! ```text
//!  errors, requests per pod ─▶ pair by series identity ─▶ e_i, n_i = sums over the window
//!    ─▶ p̂_g = Σe / Σn per group (canary, baseline, stable)
//!    ─▶ φ = Σ (e_i − n_i p̂_g)² / (n_i p̂_g (1 − p̂_g)) / (pods − groups)
//!    ─▶ t = (p̂_c − p̂_b) / √(φ p̄ (1 − p̄) (1/N_c + 1/N_b)), df = pods − groups
//!    ─▶ p (Student t) vs α_k ─▶ High | Low | Pass | NoData
//! ```
//!
//! One canary pod is judged apart: its ratio carries that pod's error multiplier whole,
//! which skews it, and the dispersion test lets identical canaries fail more often than α.
//! It is placed among the baseline and stable pods on the log scale, where a multiplier is
//! a shift: t = (ln r_c − mean ln r) / (sd ln r · √(1 + 1/M)), df = M − 1 over the M pods
//! of the baseline's version (a prediction test, as the pod test judges one canary pod).
//!
//! Pure and deterministic; never panics; NaN and ±∞ points are cleaned per `nanPolicy`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{JudgeConfig, NanPolicy};
use crate::judgement::{Classification, number};
use crate::pods::{Look, MIN_POINTS_PER_POD, PodSeries, p_text, signed};
use crate::student_t;

/// One side's counters as a range query returns them: one errors series and one requests
/// series per pod, told apart by the same series identity (`PodSeries::name`). A pod with
/// a requests series and no errors series had no errors; a timestamp with a requests point
/// and no errors point had none there either.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CounterSeries {
    pub errors: Vec<PodSeries>,
    pub requests: Vec<PodSeries>,
}

/// What one pod counted over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCounts {
    pub pod: String,
    /// Timestamps of the requests series that entered the sums.
    pub points: usize,
    /// Σ errors over those timestamps, in the query's unit (counts, or per-second rates).
    pub errors: f64,
    /// Σ requests over those timestamps, in the same unit.
    pub requests: f64,
}

/// Everything the counts test found. For `NoData` the numbers are neutral (estimate 0,
/// interval [0, 0], p 1), never NaN, and `reason` says what to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountJudgement {
    pub look: Look,
    /// The α this look spent; the test and the intervals are at this level.
    pub alpha_look: f64,
    pub canary: Vec<PodCounts>,
    pub baseline: Vec<PodCounts>,
    /// Stable pods (same version as the baseline): they enter the dispersion only.
    pub reference: Vec<PodCounts>,
    /// Pods left out for having fewer than [`MIN_POINTS_PER_POD`] usable points or no
    /// requests at all.
    pub pods_left_out: usize,
    /// Σ errors / Σ requests of the canary pods and of the baseline pods.
    pub canary_ratio: f64,
    pub baseline_ratio: f64,
    /// Degrees of freedom of the test: pods − groups for the dispersion, or, with one
    /// canary pod, the number of pods of the baseline's version − 1.
    pub df: u32,
    /// φ: the variance of a pod's errors relative to the binomial's at its request count.
    pub dispersion: f64,
    /// Standard error of the estimate (unpooled, with φ), the interval's scale.
    pub standard_error: f64,
    /// canary ratio − baseline ratio.
    pub estimate: f64,
    /// Two-sided interval for the difference at level 1 − α_look.
    pub interval: [f64; 2],
    /// canary ratio / baseline ratio; None when the baseline had no errors. With one canary
    /// pod, its ratio over the geometric mean of the baseline version's pods' ratios.
    pub ratio: Option<f64>,
    /// Interval for the ratio (log scale, delta method; with one canary pod, the prediction
    /// test's); None when either side had no errors.
    pub ratio_interval: Option<[f64; 2]>,
    /// The look's p-value: one-sided in the watched direction, two-sided for `either`.
    pub p_value: f64,
    /// p · α / α_look, capped at 1: compare it with α = 1 − confidence.
    pub adjusted_p_value: f64,
    pub classification: Classification,
    /// One sentence stating the verdict and the facts that decided it.
    pub reason: String,
    /// Which test gave the p-value and the intervals.
    pub method: CountMethod,
}

/// The two tests of the counts comparison; the serde names are the evidence's wire text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CountMethod {
    /// Two or more canary pods: canary and baseline proportions compared with the
    /// dispersion estimated from every pod.
    #[default]
    QuasiBinomial,
    /// One canary pod: its log ratio placed among the baseline version's pods'
    /// (a prediction t test).
    LogPrediction,
}

impl CountMethod {
    /// The serde name, for evidence and messages.
    pub const fn name(self) -> &'static str {
        match self {
            CountMethod::QuasiBinomial => "quasiBinomial",
            CountMethod::LogPrediction => "logPrediction",
        }
    }
}

/// Judges the canary's error ratio against the baseline's at `look`, with the stable pods'
/// counters in `reference` (may be empty) as more pods of the baseline's version.
///
/// Never fails: too little information (no canary or baseline pod with requests, no degree
/// of freedom for the dispersion), counters that cannot be paired or are negative, or an
/// invalid `config` are `NoData` with a reason that says what to change.
pub fn judge_counts(
    canary: &CounterSeries,
    baseline: &CounterSeries,
    reference: &CounterSeries,
    look: Look,
    config: &JudgeConfig,
) -> CountJudgement {
    let look = Look {
        index: look.index.max(1),
        planned: look.planned.map(|n| n.max(1)),
    };
    let alpha_look = look.alpha(config.alpha());
    let mut answer = CountJudgement {
        look,
        alpha_look: if alpha_look.is_finite() {
            alpha_look
        } else {
            0.0
        },
        canary: Vec::new(),
        baseline: Vec::new(),
        reference: Vec::new(),
        pods_left_out: 0,
        method: CountMethod::QuasiBinomial,
        canary_ratio: 0.0,
        baseline_ratio: 0.0,
        df: 0,
        dispersion: 0.0,
        standard_error: 0.0,
        estimate: 0.0,
        interval: [0.0, 0.0],
        ratio: None,
        ratio_interval: None,
        p_value: 1.0,
        adjusted_p_value: 1.0,
        classification: Classification::NoData,
        reason: String::new(),
    };
    if let Err(error) = config.validate() {
        answer.reason = format!("no verdict: {error}");
        return answer;
    }

    let mut left_out = 0;
    let mut sides = Vec::with_capacity(3);
    for (side, name) in [
        (canary, "canary"),
        (baseline, "baseline"),
        (reference, "stable"),
    ] {
        match count_pods(side, config.nan_policy) {
            Ok(pods) => {
                let (kept, dropped): (Vec<_>, Vec<_>) = pods
                    .into_iter()
                    .partition(|p| p.points >= MIN_POINTS_PER_POD && p.requests > 0.0);
                left_out += dropped.len();
                sides.push(kept);
            }
            Err(problem) => {
                answer.reason = format!("no verdict: the {name} {problem}");
                return answer;
            }
        }
    }
    let reference = sides.pop().unwrap_or_default();
    let baseline = sides.pop().unwrap_or_default();
    let canary = sides.pop().unwrap_or_default();
    answer.pods_left_out = left_out;
    let left_out_text = if left_out > 0 {
        format!(
            " ({left_out} pod(s) left out with no requests or fewer than {MIN_POINTS_PER_POD} points)"
        )
    } else {
        String::new()
    };
    let (n_c, n_b, n_r) = (canary.len(), baseline.len(), reference.len());
    answer.canary = canary;
    answer.baseline = baseline;
    answer.reference = reference;
    if n_c == 0 || n_b == 0 {
        let empty = match (n_c, n_b) {
            (0, 0) => "neither the canary nor the baseline",
            (0, _) => "the canary",
            _ => "the baseline",
        };
        answer.reason = format!(
            "no data: {empty} has a pod with requests at {MIN_POINTS_PER_POD} or more timestamps{left_out_text}: widen the range lookback or check that the requests query selects the pods"
        );
        return answer;
    }

    let groups = [&answer.canary, &answer.baseline, &answer.reference];
    let totals = |pods: &[PodCounts]| -> (f64, f64) {
        pods.iter()
            .fold((0.0, 0.0), |(e, n), p| (e + p.errors, n + p.requests))
    };
    let (e_c, r_c) = totals(&answer.canary);
    let (e_b, r_b) = totals(&answer.baseline);
    let (p_c, p_b) = (e_c / r_c, e_b / r_b);
    answer.canary_ratio = p_c;
    answer.baseline_ratio = p_b;
    let group_count = groups.iter().filter(|g| !g.is_empty()).count();
    let df = n_c + n_b + n_r - group_count;
    let pods_text = format!("{n_c} canary, {n_b} baseline and {n_r} stable pod(s)");
    let ratios_text = format!(
        "error ratio canary {} ({} of {}), baseline {} ({} of {})",
        number(p_c),
        number(e_c),
        number(r_c),
        number(p_b),
        number(e_b),
        number(r_b)
    );
    if df == 0 {
        answer.reason = format!(
            "inconclusive: {ratios_text}; {pods_text} leave no degree of freedom to estimate how pods of one version differ{left_out_text}: run at least 2 canary or baseline replicas, or let the queries' {{{{role}}}} also match the stable pods"
        );
        return answer;
    }

    // Pearson's statistic around each group's own ratio: a real difference between the
    // groups does not inflate φ. A group whose ratio is 0 (or 1) fits every pod exactly.
    let pearson: f64 = groups
        .iter()
        .map(|pods| {
            let (e, n) = totals(pods);
            let p = e / n;
            let binomial = p * (1.0 - p);
            if binomial > 0.0 {
                pods.iter()
                    .map(|pod| (pod.errors - pod.requests * p).powi(2) / (pod.requests * binomial))
                    .sum()
            } else {
                0.0
            }
        })
        .sum();
    let dispersion = pearson / df as f64;
    let df_u32 = u32::try_from(df).unwrap_or(u32::MAX);
    answer.df = df_u32;
    answer.dispersion = dispersion;
    let estimate = p_c - p_b;
    answer.estimate = estimate;
    answer.ratio = (p_b > 0.0).then(|| p_c / p_b);

    // The test's scale assumes the null: one ratio p̄ for canary and baseline (the score
    // test), so a side with no errors at all still has a variance.
    let pooled = (e_c + e_b) / (r_c + r_b);
    let null_se = (dispersion * pooled * (1.0 - pooled) * (1.0 / r_c + 1.0 / r_b)).sqrt();
    let upper = |x: f64| student_t::upper_tail(x, df as f64);
    // One canary pod: its ratio carries that pod's error multiplier whole, which Pearson's
    // dispersion on the difference scale, from a few pods, describes too loosely (identical
    // canaries failed more often than α). The pod is instead placed among the pods of the
    // baseline's version on the log scale, where a multiplier is a shift: a prediction
    // t test against their spread, as the pod test judges one canary pod.
    let single = if n_c == 1 {
        single_pod(&answer.canary[0], &answer.baseline, &answer.reference)
    } else {
        None
    };
    let direction = config.direction;
    let p_value = if let Some(single) = single {
        let t = single.shift / single.scale;
        let upper = |x: f64| student_t::upper_tail(x, single.df);
        match (direction.watches_increase(), direction.watches_decrease()) {
            (true, false) => upper(t),
            (false, true) => upper(-t),
            _ => (2.0 * upper(t.abs())).min(1.0),
        }
    } else if null_se > 0.0 {
        let t = estimate / null_se;
        match (direction.watches_increase(), direction.watches_decrease()) {
            (true, false) => upper(t),
            (false, true) => upper(-t),
            _ => (2.0 * upper(t.abs())).min(1.0),
        }
    } else if estimate == 0.0 {
        1.0
    } else {
        // Every pod sits exactly at its group's ratio: the difference is exact.
        let watched = (estimate > 0.0 && direction.watches_increase())
            || (estimate < 0.0 && direction.watches_decrease());
        if watched { 0.0 } else { 1.0 }
    };
    let p_value = if p_value.is_finite() {
        p_value.clamp(0.0, 1.0)
    } else {
        1.0
    };
    answer.p_value = p_value;
    let alpha = config.alpha();
    answer.adjusted_p_value = if alpha_look > 0.0 {
        (p_value * alpha / alpha_look).min(1.0)
    } else {
        1.0
    };

    let critical = student_t::quantile(1.0 - alpha_look / 2.0, df as f64);
    let critical = if critical.is_finite() { critical } else { 0.0 };
    let se = (dispersion * (p_c * (1.0 - p_c) / r_c + p_b * (1.0 - p_b) / r_b)).sqrt();
    answer.standard_error = se;
    answer.interval = [estimate - critical * se, estimate + critical * se];
    if p_c > 0.0 && p_b > 0.0 {
        let log_se = (dispersion * ((1.0 - p_c) / (r_c * p_c) + (1.0 - p_b) / (r_b * p_b))).sqrt();
        let log_ratio = (p_c / p_b).ln();
        answer.ratio_interval = Some([
            (log_ratio - critical * log_se).exp(),
            (log_ratio + critical * log_se).exp(),
        ]);
    }

    if let Some(single) = single {
        let critical = student_t::quantile(1.0 - alpha_look / 2.0, single.df);
        let half = if critical.is_finite() {
            critical * single.scale
        } else {
            0.0
        };
        answer.df = single.df as u32;
        answer.method = CountMethod::LogPrediction;
        answer.ratio = Some(single.shift.exp());
        answer.ratio_interval = Some([(single.shift - half).exp(), (single.shift + half).exp()]);
    }
    let (classification, reason) = decide(
        &answer,
        config,
        single.is_some(),
        &ratios_text,
        &pods_text,
        &left_out_text,
    );
    answer.classification = classification;
    answer.reason = reason;
    answer
}

/// Pairs one side's errors and requests series by identity and sums each pod's counters
/// over the requests series' timestamps. Err is the rest of a sentence saying what to fix.
fn count_pods(side: &CounterSeries, nan_policy: NanPolicy) -> Result<Vec<PodCounts>, String> {
    let clean = |value: f64| match (value.is_finite(), nan_policy) {
        (true, _) => Some(value),
        (false, NanPolicy::ReplaceWithZero) => Some(0.0),
        (false, NanPolicy::Remove) => None,
    };
    let mut errors: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
    for series in &side.errors {
        let at = errors.entry(series.name.as_str()).or_default();
        for p in &series.points {
            at.insert(p.t, p.value);
        }
    }
    let mut pods = Vec::with_capacity(side.requests.len());
    for series in &side.requests {
        let at = errors.remove(series.name.as_str()).unwrap_or_default();
        let (mut e, mut n, mut points) = (0.0, 0.0, 0usize);
        for p in &series.points {
            let Some(requests) = clean(p.value) else {
                continue;
            };
            let Some(errs) = clean(at.get(&p.t).copied().unwrap_or(0.0)) else {
                continue;
            };
            e += errs;
            n += requests;
            points += 1;
        }
        if e < 0.0 || n < 0.0 {
            return Err(format!(
                "pod {} counts negative errors or requests: query increase() or rate() of the counters",
                series.name
            ));
        }
        if e > n {
            return Err(format!(
                "pod {} counts more errors ({}) than requests ({}): the errors query must count a subset of what the requests query counts",
                series.name,
                number(e),
                number(n)
            ));
        }
        pods.push(PodCounts {
            pod: series.name.clone(),
            points,
            errors: e,
            requests: n,
        });
    }
    if let Some(unpaired) = errors.keys().next() {
        return Err(format!(
            "errors series {unpaired} has no requests series with the same labels: aggregate both queries by the same labels, e.g. sum by (pod)"
        ));
    }
    Ok(pods)
}

fn decide(
    j: &CountJudgement,
    config: &JudgeConfig,
    single_pod: bool,
    ratios_text: &str,
    pods_text: &str,
    left_out_text: &str,
) -> (Classification, String) {
    let level = number((1.0 - j.alpha_look) * 100.0);
    let effect = match (j.ratio, j.ratio_interval) {
        (Some(ratio), Some([lo, hi])) => format!(
            "{} {} ({level}% CI {} to {})",
            if single_pod {
                "canary pod/geometric mean of the baseline version's pods"
            } else {
                "canary/baseline"
            },
            number(ratio),
            number(lo),
            number(hi)
        ),
        _ => format!(
            "difference {} ({level}% CI {} to {})",
            signed(j.estimate),
            number(j.interval[0]),
            number(j.interval[1])
        ),
    };
    let evidence = format!(
        "{ratios_text}, {effect}, dispersion {}, p={} at look {} (α this look {}, adjusted p={}), {pods_text}{left_out_text}",
        number(j.dispersion),
        p_text(j.p_value),
        j.look.index,
        number(j.alpha_look),
        p_text(j.adjusted_p_value),
    );
    if j.p_value >= j.alpha_look {
        return (
            Classification::Pass,
            format!(
                "no significant difference between canary and baseline error ratios: {evidence}"
            ),
        );
    }
    // The direction of the tested comparison: the ratio's when there is one (it is the
    // single-pod test's), else the difference's. The effect gate compares the ratio of
    // error ratios; a baseline without errors gives an unbounded ratio, which no tolerance
    // covers.
    let rise = j.ratio.map_or(j.estimate, |r| r - 1.0);
    let direction = config.direction;
    if rise > 0.0 && direction.watches_increase() {
        if j.ratio.is_some_and(|r| r < config.allowed_increase) {
            return (
                Classification::Pass,
                format!(
                    "the canary errs more than the baseline but within tolerance: {evidence}, allowed {}",
                    number(config.allowed_increase)
                ),
            );
        }
        return (
            Classification::High,
            format!("the canary errs more than the baseline: {evidence}"),
        );
    }
    if rise < 0.0 && direction.watches_decrease() {
        if j.ratio.is_some_and(|r| r > config.allowed_decrease) {
            return (
                Classification::Pass,
                format!(
                    "the canary errs less than the baseline but within tolerance: {evidence}, allowed {}",
                    number(config.allowed_decrease)
                ),
            );
        }
        return (
            Classification::Low,
            format!("the canary errs less than the baseline: {evidence}"),
        );
    }
    (
        Classification::Pass,
        format!("the difference is not in a watched direction: {evidence}"),
    )
}

/// One canary pod placed among the pods of the baseline's version (baseline and stable) on
/// the log scale of error ratios.
#[derive(Debug, Clone, Copy)]
struct SinglePod {
    /// ln r_c − mean of the others' ln r.
    shift: f64,
    /// sd of the others' ln r · √(1 + 1/M): the scale of a new pod's deviation.
    scale: f64,
    /// M − 1.
    df: f64,
}

/// None when fewer than two pods of the baseline's version exist, some pod has no errors
/// (no log ratio) or they all err alike; the dispersion test answers then.
fn single_pod(
    canary: &PodCounts,
    baseline: &[PodCounts],
    reference: &[PodCounts],
) -> Option<SinglePod> {
    let log_ratio = |p: &PodCounts| (p.errors > 0.0).then(|| (p.errors / p.requests).ln());
    let others: Vec<f64> = baseline
        .iter()
        .chain(reference)
        .map(log_ratio)
        .collect::<Option<_>>()?;
    let m = others.len();
    if m < 2 {
        return None;
    }
    let mean = others.iter().sum::<f64>() / m as f64;
    let variance = others.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
    let scale = (variance * (1.0 + 1.0 / m as f64)).sqrt();
    (scale > 0.0).then_some(SinglePod {
        shift: log_ratio(canary)? - mean,
        scale,
        df: (m - 1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(pods: &[(&str, &[(f64, f64)])]) -> CounterSeries {
        let mut s = CounterSeries::default();
        for (name, points) in pods {
            s.errors.push(PodSeries::new(
                *name,
                points.iter().enumerate().map(|(i, (e, _))| (i as i64, *e)),
            ));
            s.requests.push(PodSeries::new(
                *name,
                points.iter().enumerate().map(|(i, (_, n))| (i as i64, *n)),
            ));
        }
        s
    }

    #[test]
    fn method_names_are_the_serde_names() {
        for method in [CountMethod::QuasiBinomial, CountMethod::LogPrediction] {
            assert_eq!(
                serde_json::to_value(method).unwrap(),
                serde_json::json!(method.name())
            );
        }
    }

    #[test]
    fn a_pod_without_an_errors_series_had_no_errors() {
        let s = CounterSeries {
            errors: Vec::new(),
            requests: vec![PodSeries::new("a", [(0, 10.0), (1, 10.0), (2, 10.0)])],
        };
        let pods = count_pods(&s, NanPolicy::Remove).unwrap();
        assert_eq!(pods[0].errors, 0.0);
        assert_eq!(pods[0].requests, 30.0);
        assert_eq!(pods[0].points, 3);
    }

    #[test]
    fn an_errors_series_without_requests_is_a_reason_not_a_zero() {
        let s = CounterSeries {
            errors: vec![PodSeries::new("{pod=\"a\",code=\"500\"}", [(0, 1.0)])],
            requests: vec![PodSeries::new("{pod=\"a\"}", [(0, 10.0)])],
        };
        let problem = count_pods(&s, NanPolicy::Remove).unwrap_err();
        assert!(problem.contains("sum by (pod)"), "{problem}");
    }

    #[test]
    fn more_errors_than_requests_names_the_pod() {
        let s = side(&[("a", &[(5.0, 1.0), (5.0, 1.0), (5.0, 1.0)])]);
        let j = judge_counts(&s, &s, &s, Look::SINGLE, &JudgeConfig::default());
        assert_eq!(j.classification, Classification::NoData);
        assert!(j.reason.contains("canary pod a"), "{}", j.reason);
    }
}
