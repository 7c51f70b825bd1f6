//! Seeded Monte-Carlo checks of the judge's calibration: how often it fails a canary that
//! is identical to its baseline (false positives) and how often it catches a real shift
//! (power), with samples shaped like the ones Fife actually judges.
//!
//! ```text
//! seed ─▶ Pcg64 ─▶ per pod: points (requests | windowed histogram quantiles | counts)
//!                  canary (scale s) vs baseline (scale 1) ─▶ fife_judge::judge ─▶ tally
//! ```
//!
//! Same seed, same scenario → same tally, so the figures in `docs/analysis-power.md` can be
//! reproduced exactly and a test can assert them.

use fife_judge::{Classification, Direction, JudgeConfig};
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::workload::{LatencyModel, latency_buckets, unit_open};

/// What one judged point is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointShape {
    /// One request latency; points independent of each other.
    Request,
    /// The `quantile` of one pod's latency histogram (the workload's buckets, interpolated
    /// as Prometheus' `histogram_quantile` does) over the last `window_intervals` scrape
    /// intervals, one point per scrape interval. This is
    /// `histogram_quantile(q, rate(..[w]))` evaluated at a step equal to the scrape
    /// interval: with `window_intervals > 1` consecutive points share requests.
    WindowedQuantile {
        quantile: f64,
        window_intervals: usize,
        requests_per_interval: u64,
    },
    /// An event count per interval (errors, retries): 0 with probability
    /// `zero_probability`, otherwise Poisson with mean `mean` (the canary's mean is
    /// multiplied by its scale).
    ZeroInflatedCount { zero_probability: f64, mean: f64 },
}

/// One simulated comparison setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    pub shape: PointShape,
    /// Pods on each side (canary and baseline are equal-sized).
    pub pods: usize,
    /// Points each pod contributes.
    pub points_per_pod: usize,
    /// The baseline's latency; the canary draws from the same model times `canary_scale`.
    pub latency: LatencyModel,
    /// 1.0 is an A/A comparison; 1.2 is a canary 20% slower in every request.
    pub canary_scale: f64,
    pub judge: JudgeConfig,
}

impl Scenario {
    /// Samples on each side.
    pub fn samples_per_side(&self) -> usize {
        self.pods * self.points_per_pod
    }
}

/// The workloads' baseline latency: 100 ms median, sigma 0.3.
pub const BASELINE_LATENCY: LatencyModel = crate::cluster_model::BASELINE_LATENCY;

/// Points one pod contributes to the example comparison metric: a range query over
/// `[now − 5m, now]` at a 15 s step returns both ends, 5m / 15s + 1 = 21 points.
pub const POINTS_PER_POD: usize = 21;

/// Scrape interval the windowed shapes assume (Prometheus' common 15 s).
pub const SCRAPE_INTERVAL_SECONDS: u64 = 15;

/// Requests per second each simulated pod serves in the windowed shapes.
pub const REQUESTS_PER_SECOND: u64 = 20;

/// The example's p99 point: `histogram_quantile(0.99, rate(..[1m]))` at a 15 s step.
/// With a 15 s scrape a 1m range holds four scrapes, so `rate` spans three intervals and
/// consecutive points share two of them.
pub const P99_RATE_1M: PointShape = PointShape::WindowedQuantile {
    quantile: 0.99,
    window_intervals: 3,
    requests_per_interval: REQUESTS_PER_SECOND * SCRAPE_INTERVAL_SECONDS,
};

/// The same p99 over `rate(..[30s])`: two scrapes, one interval, so consecutive points at
/// a 15 s step share no requests.
pub const P99_RATE_30S: PointShape = PointShape::WindowedQuantile {
    quantile: 0.99,
    window_intervals: 1,
    requests_per_interval: REQUESTS_PER_SECOND * SCRAPE_INTERVAL_SECONDS,
};

/// Error counts per step: most steps see none (P(0) ≈ 0.69).
pub const SPARSE_ERRORS: PointShape = PointShape::ZeroInflatedCount {
    zero_probability: 0.6,
    mean: 1.5,
};

/// Rarer errors still: P(0) ≈ 0.94, so most comparisons are almost all ties at zero.
pub const RARE_ERRORS: PointShape = PointShape::ZeroInflatedCount {
    zero_probability: 0.9,
    mean: 0.5,
};

/// The judge as an A/A check asks it: confidence 0.95, either direction fails, no
/// effect gate, so every significant difference counts as a false positive.
pub fn aa_judge() -> JudgeConfig {
    JudgeConfig {
        confidence: 0.95,
        direction: Direction::Either,
        allowed_increase: 1.0,
        allowed_decrease: 1.0,
        ..JudgeConfig::default()
    }
}

/// The judge as the example template configures it for latency: confidence 0.95,
/// direction increase, `allowedIncrease` as given (the example uses 1.10).
pub fn latency_judge(allowed_increase: f64) -> JudgeConfig {
    JudgeConfig {
        confidence: 0.95,
        direction: Direction::Increase,
        allowed_increase,
        ..JudgeConfig::default()
    }
}

/// A comparison of `pods` pods a side with [`POINTS_PER_POD`] points each.
pub fn example_scenario(
    shape: PointShape,
    pods: usize,
    canary_scale: f64,
    judge: JudgeConfig,
) -> Scenario {
    Scenario {
        shape,
        pods,
        points_per_pod: POINTS_PER_POD,
        latency: BASELINE_LATENCY,
        canary_scale,
        judge,
    }
}

/// How the judge classified a run of comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub pass: usize,
    pub high: usize,
    pub low: usize,
    pub no_data: usize,
}

impl Tally {
    pub fn comparisons(&self) -> usize {
        self.pass + self.high + self.low + self.no_data
    }

    /// Share of comparisons classified High or Low.
    pub fn failure_rate(&self) -> Proportion {
        Proportion::new(self.high + self.low, self.comparisons())
    }

    /// Share of comparisons classified High.
    pub fn high_rate(&self) -> Proportion {
        Proportion::new(self.high, self.comparisons())
    }
}

/// An observed proportion with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportion {
    pub hits: usize,
    pub trials: usize,
    pub rate: f64,
    pub ci95: [f64; 2],
}

impl Proportion {
    pub fn new(hits: usize, trials: usize) -> Proportion {
        // Wilson rather than the normal approximation: it stays inside [0, 1] and is
        // honest near 0, where false-positive rates live.
        const Z: f64 = 1.959_963_984_540_054;
        let n = trials as f64;
        let p = hits as f64 / n;
        let z2 = Z * Z;
        let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
        let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        Proportion {
            hits,
            trials,
            rate: p,
            ci95: [(centre - half).max(0.0), (centre + half).min(1.0)],
        }
    }
}

impl std::fmt::Display for Proportion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1}% ({}/{}, 95% CI {:.1}–{:.1}%)",
            self.rate * 100.0,
            self.hits,
            self.trials,
            self.ci95[0] * 100.0,
            self.ci95[1] * 100.0
        )
    }
}

/// Runs `comparisons` independent comparisons of `scenario` from `seed`.
pub fn run(scenario: &Scenario, comparisons: usize, seed: u64) -> Tally {
    let mut rng = Pcg64::seed_from_u64(seed);
    let baseline_model = scenario.latency;
    let canary_model = LatencyModel {
        scale: scenario.latency.scale * scenario.canary_scale,
        ..scenario.latency
    };
    let mut tally = Tally::default();
    let mut canary = Vec::with_capacity(scenario.samples_per_side());
    let mut baseline = Vec::with_capacity(scenario.samples_per_side());
    for _ in 0..comparisons {
        canary.clear();
        baseline.clear();
        for _ in 0..scenario.pods {
            draw_pod(
                scenario,
                &canary_model,
                scenario.canary_scale,
                &mut rng,
                &mut canary,
            );
            draw_pod(scenario, &baseline_model, 1.0, &mut rng, &mut baseline);
        }
        match fife_judge::judge(&canary, &baseline, &scenario.judge).classification {
            Classification::Pass => tally.pass += 1,
            Classification::High => tally.high += 1,
            Classification::Low => tally.low += 1,
            Classification::NoData => tally.no_data += 1,
        }
    }
    tally
}

/// Appends one pod's points to `out`.
fn draw_pod(
    scenario: &Scenario,
    model: &LatencyModel,
    count_scale: f64,
    rng: &mut Pcg64,
    out: &mut Vec<f64>,
) {
    let points = scenario.points_per_pod;
    match scenario.shape {
        PointShape::Request => out.extend((0..points).map(|_| model.sample(rng))),
        PointShape::WindowedQuantile {
            quantile,
            window_intervals,
            requests_per_interval,
        } => {
            let bounds = latency_buckets();
            // Per-interval bucket counts; the +Inf bucket is the last slot.
            let intervals: Vec<Vec<u64>> = (0..points + window_intervals - 1)
                .map(|_| {
                    let mut counts = vec![0u64; bounds.len() + 1];
                    for _ in 0..requests_per_interval {
                        let latency = model.sample(rng);
                        counts[bounds.partition_point(|b| *b < latency)] += 1;
                    }
                    counts
                })
                .collect();
            let mut window = vec![0u64; bounds.len() + 1];
            for end in window_intervals - 1..intervals.len() {
                window.iter_mut().for_each(|c| *c = 0);
                for interval in &intervals[end + 1 - window_intervals..=end] {
                    for (w, c) in window.iter_mut().zip(interval) {
                        *w += c;
                    }
                }
                out.push(histogram_quantile(quantile, &bounds, &window));
            }
        }
        PointShape::ZeroInflatedCount {
            zero_probability,
            mean,
        } => out.extend((0..points).map(|_| {
            // Both draws are always made so canary and baseline consume the stream alike.
            let structural_zero = unit_open(rng) <= zero_probability;
            let count = poisson(mean * count_scale, rng);
            if structural_zero { 0.0 } else { count as f64 }
        })),
    }
}

/// Prometheus' `histogram_quantile` over non-cumulative `counts` (one per bound, then
/// +Inf): linear interpolation inside the bucket that holds rank `q · total`, the lowest
/// bucket starting at 0, and the highest finite bound when the rank falls in +Inf.
pub fn histogram_quantile(q: f64, bounds: &[f64], counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &count) in counts.iter().enumerate() {
        if (below + count) as f64 >= rank && count > 0 {
            let Some(&end) = bounds.get(i) else {
                return bounds[bounds.len() - 1];
            };
            let start = if i == 0 { 0.0 } else { bounds[i - 1] };
            return start + (end - start) * (rank - below as f64) / count as f64;
        }
        below += count;
    }
    bounds[bounds.len() - 1]
}

/// Knuth's multiplication method: exact, and fast for the small means counts have here.
fn poisson<R: Rng + ?Sized>(mean: f64, rng: &mut R) -> u64 {
    let limit = (-mean).exp();
    let mut product = unit_open(rng);
    let mut k = 0;
    while product > limit {
        k += 1;
        product *= unit_open(rng);
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let p = Proportion::new(50, 1000);
        assert_eq!(p.rate, 0.05);
        assert!((p.ci95[0] - 0.0382).abs() < 5e-4, "{p:?}");
        assert!((p.ci95[1] - 0.0653).abs() < 5e-4, "{p:?}");
        let zero = Proportion::new(0, 200);
        assert_eq!(zero.ci95[0], 0.0);
        assert!((zero.ci95[1] - 0.0188).abs() < 5e-4, "{zero:?}");
    }

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let bounds = [1.0, 2.0, 4.0];
        // 10 in (0,1], 10 in (1,2], 0 in (2,4], 0 in +Inf.
        assert_eq!(histogram_quantile(0.5, &bounds, &[10, 10, 0, 0]), 1.0);
        assert_eq!(histogram_quantile(0.75, &bounds, &[10, 10, 0, 0]), 1.5);
        assert_eq!(histogram_quantile(0.25, &bounds, &[10, 10, 0, 0]), 0.5);
        assert_eq!(histogram_quantile(0.99, &bounds, &[1, 1, 1, 5]), 4.0);
        assert!(histogram_quantile(0.5, &bounds, &[0, 0, 0, 0]).is_nan());
    }

    #[test]
    fn poisson_mean_and_zero_share() {
        let mut rng = Pcg64::seed_from_u64(9);
        let draws: Vec<u64> = (0..40_000).map(|_| poisson(2.0, &mut rng)).collect();
        let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
        let zeros = draws.iter().filter(|d| **d == 0).count() as f64 / draws.len() as f64;
        assert!((mean - 2.0).abs() < 0.03, "{mean}");
        assert!((zeros - (-2.0_f64).exp()).abs() < 0.01, "{zeros}");
    }

    #[test]
    fn same_seed_same_tally() {
        let scenario = Scenario {
            shape: PointShape::Request,
            pods: 1,
            points_per_pod: 30,
            latency: LatencyModel {
                median_seconds: 0.1,
                sigma: 0.3,
                scale: 1.0,
            },
            canary_scale: 1.1,
            judge: JudgeConfig::default(),
        };
        let a = run(&scenario, 50, 4);
        assert_eq!(a, run(&scenario, 50, 4));
        assert_eq!(a.comparisons(), 50);
        assert_ne!(a, run(&scenario, 50, 5));
    }
}
