//! The pod test: is the canary's pod-level location worse than the baseline's, given how
//! much pods of one version differ from each other? The pod is the unit of evidence (its
//! points are autocorrelated and it carries a persistent offset), so the test compares one
//! location per pod, and spends α over the looks of a run so that looking after every
//! measurement keeps P(any false High/Low) ≤ α.
//!
//! ```text
//!  pods' (t, value) ─▶ scale (log | linear) ─▶ r_t = median of baseline+reference at t
//!    ─▶ z = y − r_t ─▶ L_i = mean_t z ─▶ D = mean L_canary − mean L_baseline
//!    ─▶ s² pooled within canary, baseline, reference ─▶ t = D / (s·√(1/n_c + 1/n_b)), df
//!    ─▶ p (Student t) vs α_k = α/N or α/(k(k+1)) ─▶ High | Low | Pass | NoData
//! ```
//!
//! Pure and deterministic; never panics; NaN and ±∞ points are cleaned per `nanPolicy`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{JudgeConfig, NanPolicy, Scale};
use crate::judgement::{Classification, number};
use crate::student_t;

/// Pods with fewer points than this (after cleaning and time alignment) are left out: a
/// location from one or two points says little and would weigh like any other pod.
pub const MIN_POINTS_PER_POD: usize = 3;

/// One point of a pod's series: a timestamp in milliseconds since the Unix epoch and the
/// value there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub t: i64,
    pub value: f64,
}

/// The series of one pod (or any one series a query returned): its name for evidence and
/// its points.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PodSeries {
    /// The series' identity as a person reads it, e.g. `{pod="checkout-7f9c-abcde"}`.
    pub name: String,
    pub points: Vec<Point>,
}

impl PodSeries {
    pub fn new(name: impl Into<String>, points: impl IntoIterator<Item = (i64, f64)>) -> Self {
        PodSeries {
            name: name.into(),
            points: points
                .into_iter()
                .map(|(t, value)| Point { t, value })
                .collect(),
        }
    }
}

/// Which measurement of a run this is: look `index` (1-based) of `planned` looks, or of an
/// open-ended run when `planned` is None (background analysis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Look {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<u32>,
}

impl Look {
    /// The only look of a single judgement (`fife judge`, count 1).
    pub const SINGLE: Look = Look {
        index: 1,
        planned: Some(1),
    };

    /// The α this look may spend. Σ over looks ≤ α, whatever the dependence between
    /// looks (union bound): α/N for each of N planned looks, α/(k(k+1)) for look k of an
    /// open-ended run (Σ 1/(k(k+1)) = 1). The engine never takes a look past the plan.
    pub fn alpha(self, alpha: f64) -> f64 {
        let k = f64::from(self.index.max(1));
        match self.planned {
            Some(n) => alpha / f64::from(n.max(1)),
            None => alpha / (k * (k + 1.0)),
        }
    }
}

/// Where one pod sits relative to the reference level, on the judged scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodLocation {
    pub pod: String,
    /// Points that entered the location (finite, at a timestamp with a reference level).
    pub points: usize,
    /// Mean over time of (value − reference level), on the judged scale.
    pub location: f64,
}

/// Everything the pod test found. For `NoData` the numbers are neutral (estimate 0,
/// interval [0, 0], p 1), never NaN, and `reason` says what to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodJudgement {
    /// The scale the locations were compared on (`log` or `linear`, never `auto`).
    pub scale: Scale,
    pub look: Look,
    /// The α this look spent; the test and the interval are at this level.
    pub alpha_look: f64,
    pub canary: Vec<PodLocation>,
    pub baseline: Vec<PodLocation>,
    /// Stable pods (same version as the baseline), used for the reference level and the
    /// between-pod variance.
    pub reference: Vec<PodLocation>,
    /// Pods left out for having fewer than [`MIN_POINTS_PER_POD`] usable points.
    pub pods_left_out: usize,
    /// Degrees of freedom of the between-pod variance.
    pub df: u32,
    /// Between-pod standard deviation of a location, pooled within the three groups.
    pub between_pod_sd: f64,
    /// Standard error of the estimate.
    pub standard_error: f64,
    /// D = mean canary location − mean baseline location, on the judged scale.
    pub estimate: f64,
    /// Two-sided interval for D at level 1 − α_look.
    pub interval: [f64; 2],
    /// e^D and its interval on the log scale; None on the linear scale.
    pub ratio: Option<f64>,
    pub ratio_interval: Option<[f64; 2]>,
    /// The look's p-value: one-sided in the watched direction, two-sided for `either`.
    pub p_value: f64,
    /// p · α / α_look, capped at 1: compare it with α = 1 − confidence.
    pub adjusted_p_value: f64,
    pub classification: Classification,
    /// One sentence stating the verdict and the facts that decided it.
    pub reason: String,
}

/// Judges the canary pods against the baseline pods at `look`, with the stable pods in
/// `reference` (may be empty) as more pods of the baseline's version.
///
/// Never fails: too little information (no canary or baseline pod with enough points, no
/// degree of freedom for the between-pod variance) or an invalid `config` is `NoData` with
/// a reason that says what to change. Never `High`/`Low` from too little information.
pub fn judge_pods(
    canary: &[PodSeries],
    baseline: &[PodSeries],
    reference: &[PodSeries],
    look: Look,
    config: &JudgeConfig,
) -> PodJudgement {
    let look = Look {
        index: look.index.max(1),
        planned: look.planned.map(|n| n.max(1)),
    };
    let alpha_look = look.alpha(config.alpha());
    let mut answer = PodJudgement {
        scale: Scale::Linear,
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
        df: 0,
        between_pod_sd: 0.0,
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

    let clean = |pods: &[PodSeries]| -> Vec<(String, Vec<Point>)> {
        pods.iter()
            .map(|pod| {
                let points = pod
                    .points
                    .iter()
                    .filter_map(|p| match (p.value.is_finite(), config.nan_policy) {
                        (true, _) => Some(*p),
                        (false, NanPolicy::ReplaceWithZero) => Some(Point { t: p.t, value: 0.0 }),
                        (false, NanPolicy::Remove) => None,
                    })
                    .collect();
                (pod.name.clone(), points)
            })
            .collect()
    };
    let (mut canary, mut baseline, mut reference) =
        (clean(canary), clean(baseline), clean(reference));

    let every_value_positive = [&canary, &baseline, &reference]
        .iter()
        .flat_map(|side| side.iter())
        .flat_map(|(_, points)| points.iter())
        .all(|p| p.value > 0.0);
    let scale = match config.scale {
        Scale::Auto if every_value_positive => Scale::Log,
        Scale::Auto | Scale::Linear => Scale::Linear,
        Scale::Log if every_value_positive => Scale::Log,
        Scale::Log => {
            answer.reason = "no verdict: scale log needs every value to be greater than 0, and some are 0 or negative: set scale: linear (or auto)".to_owned();
            return answer;
        }
    };
    answer.scale = scale;
    if scale == Scale::Log {
        for side in [&mut canary, &mut baseline, &mut reference] {
            for (_, points) in side.iter_mut() {
                for p in points.iter_mut() {
                    p.value = p.value.ln();
                }
            }
        }
    }

    let levels = reference_levels(&baseline, &reference);
    let mut left_out = 0;
    let mut locate = |side: &[(String, Vec<Point>)]| -> Vec<PodLocation> {
        let mut located = Vec::with_capacity(side.len());
        for (pod, points) in side {
            let (mut sum, mut used) = (0.0, 0usize);
            for p in points {
                if let Some(level) = levels.get(&p.t) {
                    sum += p.value - level;
                    used += 1;
                }
            }
            let location = sum / used as f64;
            if used >= MIN_POINTS_PER_POD && location.is_finite() {
                located.push(PodLocation {
                    pod: pod.clone(),
                    points: used,
                    location,
                });
            } else {
                left_out += 1;
            }
        }
        located
    };
    answer.canary = locate(&canary);
    answer.baseline = locate(&baseline);
    answer.reference = locate(&reference);
    answer.pods_left_out = left_out;
    let (n_c, n_b, n_r) = (
        answer.canary.len(),
        answer.baseline.len(),
        answer.reference.len(),
    );
    let left_out_text = if left_out > 0 {
        format!(
            " ({left_out} pod(s) left out with fewer than {MIN_POINTS_PER_POD} points at timestamps the baseline or stable pods also have)"
        )
    } else {
        String::new()
    };
    if n_c == 0 || n_b == 0 {
        let empty = match (n_c, n_b) {
            (0, 0) => "neither the canary nor the baseline",
            (0, _) => "the canary",
            _ => "the baseline",
        };
        answer.reason = format!(
            "no data: {empty} has a pod with at least {MIN_POINTS_PER_POD} usable points{left_out_text}: widen the range lookback or check that the query selects the pods"
        );
        return answer;
    }

    let mean = |pods: &[PodLocation]| -> f64 {
        pods.iter().map(|p| p.location).sum::<f64>() / pods.len() as f64
    };
    let squares = |pods: &[PodLocation]| -> f64 {
        if pods.is_empty() {
            return 0.0;
        }
        let m = mean(pods);
        pods.iter().map(|p| (p.location - m).powi(2)).sum()
    };
    let estimate = mean(&answer.canary) - mean(&answer.baseline);
    let df = (n_c - 1) + (n_b - 1) + n_r.saturating_sub(1);
    let pods_text = format!("{n_c} canary, {n_b} baseline and {n_r} stable pod(s)");
    if df == 0 {
        answer.reason = format!(
            "inconclusive: {pods_text} leave no degree of freedom to estimate how pods of one version differ{left_out_text}: run at least 2 canary or baseline replicas, or let the query's {{{{role}}}} also match the stable pods"
        );
        return answer;
    }
    answer.estimate = estimate;
    answer.ratio = (scale == Scale::Log).then(|| estimate.exp());
    let df_u32 = u32::try_from(df).unwrap_or(u32::MAX);
    answer.df = df_u32;
    let variance =
        (squares(&answer.canary) + squares(&answer.baseline) + squares(&answer.reference))
            / df as f64;
    let sd = variance.sqrt();
    let se = sd * (1.0 / n_c as f64 + 1.0 / n_b as f64).sqrt();
    answer.between_pod_sd = sd;
    answer.standard_error = se;
    let direction = config.direction;
    let upper = |x: f64| student_t::upper_tail(x, df as f64);
    let p_value = if se > 0.0 {
        let t = estimate / se;
        match (direction.watches_increase(), direction.watches_decrease()) {
            (true, false) => upper(t),
            (false, true) => upper(-t),
            _ => (2.0 * upper(t.abs())).min(1.0),
        }
    } else if estimate == 0.0 {
        1.0
    } else {
        // Every pod of a side sits at exactly the same location: the difference is exact.
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
    let half_width = if se > 0.0 && critical.is_finite() {
        critical * se
    } else {
        0.0
    };
    answer.interval = [estimate - half_width, estimate + half_width];
    answer.ratio_interval =
        (scale == Scale::Log).then(|| [answer.interval[0].exp(), answer.interval[1].exp()]);

    let (classification, reason) = decide(&answer, config, &pods_text, &left_out_text);
    answer.classification = classification;
    answer.reason = reason;
    answer
}

/// The reference level r_t at each timestamp: the median of the baseline and stable pods'
/// values there. Subtracting it cancels whatever every pod shares at t (a load wave),
/// even when pods miss points; timestamps no baseline or stable pod has are dropped.
fn reference_levels(
    baseline: &[(String, Vec<Point>)],
    reference: &[(String, Vec<Point>)],
) -> BTreeMap<i64, f64> {
    let mut pooled: Vec<Point> = baseline
        .iter()
        .chain(reference)
        .flat_map(|(_, points)| points.iter().copied())
        .collect();
    pooled.sort_by(|a, b| a.t.cmp(&b.t).then(a.value.total_cmp(&b.value)));
    let mut levels = BTreeMap::new();
    for at_t in pooled.chunk_by(|a, b| a.t == b.t) {
        let n = at_t.len();
        let median = if n % 2 == 1 {
            at_t[n / 2].value
        } else {
            (at_t[n / 2 - 1].value + at_t[n / 2].value) / 2.0
        };
        levels.insert(at_t[0].t, median);
    }
    levels
}

fn decide(
    j: &PodJudgement,
    config: &JudgeConfig,
    pods_text: &str,
    left_out_text: &str,
) -> (Classification, String) {
    let level = number((1.0 - j.alpha_look) * 100.0);
    let effect = match (j.ratio, j.ratio_interval) {
        (Some(ratio), Some([lo, hi])) => format!(
            "canary/baseline ratio {} ({level}% CI {} to {})",
            number(ratio),
            number(lo),
            number(hi)
        ),
        _ => format!(
            "shift {} ({level}% CI {} to {})",
            signed(j.estimate),
            number(j.interval[0]),
            number(j.interval[1])
        ),
    };
    let evidence = format!(
        "{effect}, p={} at look {} (α this look {}, adjusted p={}), {pods_text}{left_out_text}",
        p_text(j.p_value),
        j.look.index,
        number(j.alpha_look),
        p_text(j.adjusted_p_value),
    );
    let significant = j.p_value < j.alpha_look;
    if !significant {
        return (
            Classification::Pass,
            format!("no significant difference between canary and baseline pods: {evidence}"),
        );
    }
    // The effect gate compares the ratio of levels: e^D on the log scale; on the linear
    // scale there is no level to divide by, so only the test decides.
    let ratio_text = |op: &str, allowed: f64| match j.ratio {
        Some(r) => format!("ratio {} {op} allowed {}", number(r), number(allowed)),
        None => "linear scale: no ratio gate".to_owned(),
    };
    let direction = config.direction;
    if j.estimate > 0.0 && direction.watches_increase() {
        if j.ratio.is_some_and(|r| r < config.allowed_increase) {
            return (
                Classification::Pass,
                format!(
                    "canary pods are higher than baseline pods but within tolerance: {evidence}, {}",
                    ratio_text("<", config.allowed_increase)
                ),
            );
        }
        return (
            Classification::High,
            format!(
                "canary pods are higher than baseline pods: {evidence}, {}",
                ratio_text("≥", config.allowed_increase)
            ),
        );
    }
    if j.estimate < 0.0 && direction.watches_decrease() {
        if j.ratio.is_some_and(|r| r > config.allowed_decrease) {
            return (
                Classification::Pass,
                format!(
                    "canary pods are lower than baseline pods but within tolerance: {evidence}, {}",
                    ratio_text(">", config.allowed_decrease)
                ),
            );
        }
        return (
            Classification::Low,
            format!(
                "canary pods are lower than baseline pods: {evidence}, {}",
                ratio_text("≤", config.allowed_decrease)
            ),
        );
    }
    (
        Classification::Pass,
        format!("the difference is not in a watched direction: {evidence}"),
    )
}

pub(crate) fn signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{}", number(x))
    } else {
        number(x)
    }
}

pub(crate) fn p_text(p: f64) -> String {
    if p > 0.0 && p < 1e-4 {
        format!("{p:.1e}")
    } else {
        number(p)
    }
}
