//! The realistic workload model every calibration runs on: the request latencies and
//! counters of a service's canary, baseline and stable pods, scrape by scrape, written as
//! the OpenMetrics text Prometheus would have stored. Pure and seeded: the same model and
//! range give the same bytes.
//!
//! ```text
//! latency of one request = median · role effect · pod offset · pod wander(t) · load wave(t) · e^(σZ)
//!                                   (canary s)    (persistent) (AR(1) per scrape) (every pod)
//! errors of one request  ~ Bernoulli(error rate · role effect · pod multiplier)
//! per scrape: http_request_duration_seconds{le} (cumulative histogram), http_requests_total{code}
//! ```
//!
//! Points of one pod are neither independent (the wander carries over from one scrape to
//! the next) nor exchangeable with another pod's (the offset persists): the two properties
//! of real data that a pooled-points test mistakes for a regression. The load wave moves
//! every pod of the service alike, so it cancels between canary and baseline. Pods can
//! restart (their counters go back to zero) or be replaced (their series ends and a pod
//! with a new name begins), as they do during any long rollout.

use std::io::{self, Write};

use rand_core::SeedableRng;
use rand_pcg::Pcg64;

use crate::workload::{
    LatencyModel, ROLE_LABEL, WorkloadConfig, WorkloadRole, latency_buckets, standard_normal,
    unit_open,
};

/// The label that carries the pod name, as Kubernetes service discovery relabels it.
pub const POD_LABEL: &str = "pod";

/// The label that tells simulated services (and so simulated rollouts) apart.
pub const SERVICE_LABEL: &str = "service";

/// The latency histogram's metric name.
pub const LATENCY_METRIC: &str = "http_request_duration_seconds";

/// The request counter's metric name (without OpenMetrics' `_total` suffix).
pub const REQUESTS_METRIC: &str = "http_requests";

/// The baseline latency of every model and every live workload: 100 ms median, σ 0.3.
pub const BASELINE_LATENCY: LatencyModel = LatencyModel {
    median_seconds: 0.1,
    sigma: 0.3,
    scale: 1.0,
};

/// A pod's role, as the `fife_role` label spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PodRole {
    Canary,
    Baseline,
    Stable,
}

impl PodRole {
    pub const ALL: [PodRole; 3] = [PodRole::Canary, PodRole::Baseline, PodRole::Stable];

    pub fn as_str(self) -> &'static str {
        match self {
            PodRole::Canary => "canary",
            PodRole::Baseline => "baseline",
            PodRole::Stable => "stable",
        }
    }

    fn stream(self) -> u64 {
        match self {
            PodRole::Canary => 1,
            PodRole::Baseline => 2,
            PodRole::Stable => 3,
        }
    }
}

/// Pods per role. Canary and baseline are equal-sized in a Fife rollout, but the model
/// does not insist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCounts {
    pub canary: usize,
    pub baseline: usize,
    pub stable: usize,
}

impl PodCounts {
    pub fn of(self, role: PodRole) -> usize {
        match role {
            PodRole::Canary => self.canary,
            PodRole::Baseline => self.baseline,
            PodRole::Stable => self.stable,
        }
    }
}

/// Slow drift of one pod's latency: `ln` multiplier following AR(1) from one scrape to
/// the next, `x' = φ·x + √(1−φ²)·sd·ε`, started at its stationary distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wander {
    /// Stationary standard deviation of the `ln` multiplier.
    pub sd: f64,
    /// Correlation from one scrape to the next, in `[0, 1)`.
    pub phi: f64,
}

/// A daily-traffic-like swing shared by every pod of the service: latency times
/// `e^(a·w(t))`, requests times `1 + a·w(t)`, with `w` a sine of the given period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadWave {
    /// `a`; 0 switches the wave off. Keep it below 1 so the request rate stays positive.
    pub amplitude: f64,
    pub period_seconds: f64,
}

/// What differs in the canary: every request's latency times `latency_scale`, its error
/// probability times `error_scale`. Both 1.0 is an identical canary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanaryEffect {
    pub latency_scale: f64,
    pub error_scale: f64,
}

impl CanaryEffect {
    pub const NONE: CanaryEffect = CanaryEffect {
        latency_scale: 1.0,
        error_scale: 1.0,
    };
}

/// Something that happens to one pod at one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodEvent {
    pub role: PodRole,
    /// Which pod of the role, from 0.
    pub index: usize,
    /// Seconds after the start of the range; takes effect at the first scrape at or after it.
    pub after_seconds: u64,
    pub kind: PodEventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodEventKind {
    /// The container restarts: same pod name, counters and histogram back to zero.
    ContainerRestart,
    /// The pod is replaced: its series ends; a pod with a new name (and a new node, so a
    /// new offset) begins from zero.
    Replaced,
}

/// One simulated service: its pods, their latency and errors, and the canary's effect.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterModel {
    /// The `service` label, and the prefix of every pod name.
    pub service: String,
    pub seed: u64,
    pub pods: PodCounts,
    /// Requests each pod serves per second, before the load wave.
    pub requests_per_second: f64,
    /// Latency of a request of an average stable pod at the wave's midline.
    pub latency: LatencyModel,
    /// Standard deviation of a pod's persistent `ln` latency offset (0.03 ≈ 3%).
    pub pod_offset_sd: f64,
    pub wander: Wander,
    pub load_wave: LoadWave,
    /// Probability that a request fails (code 500), before the pod and canary multipliers.
    pub error_rate: f64,
    /// Standard deviation of a pod's persistent `ln` error-rate multiplier.
    pub pod_error_sd: f64,
    pub canary: CanaryEffect,
    pub events: Vec<PodEvent>,
}

impl ClusterModel {
    /// 3 pods per role at 20 requests/s, 100 ms median latency (σ 0.3), 3% pod offsets,
    /// wander sd 3% with φ 0.5 per scrape, a ±10% load wave over an hour, 0.4% errors
    /// with 10% pod multipliers, an identical canary and no restarts.
    pub fn new(service: impl Into<String>, seed: u64) -> ClusterModel {
        ClusterModel {
            service: service.into(),
            seed,
            pods: PodCounts {
                canary: 3,
                baseline: 3,
                stable: 3,
            },
            requests_per_second: 20.0,
            latency: BASELINE_LATENCY,
            pod_offset_sd: 0.03,
            wander: Wander { sd: 0.03, phi: 0.5 },
            load_wave: LoadWave {
                amplitude: 0.1,
                period_seconds: 3600.0,
            },
            error_rate: 0.004,
            pod_error_sd: 0.1,
            canary: CanaryEffect::NONE,
            events: Vec::new(),
        }
    }

    /// The name of pod `index` of `role` in its `generation`th incarnation (0 before any
    /// replacement).
    pub fn pod_name(&self, role: PodRole, index: usize, generation: u32) -> String {
        let base = format!("{}-{}-{index}", self.service, role.as_str());
        match generation {
            0 => base,
            g => format!("{base}-r{g}"),
        }
    }

    /// The persistent `ln` latency offset and `ln` error multiplier of one incarnation of
    /// one pod. Drawn from their own stream, so they do not depend on the range simulated.
    pub fn pod_profile(&self, role: PodRole, index: usize, generation: u32) -> PodProfile {
        let mut rng = self.stream(role, index, generation, 0);
        PodProfile {
            latency_offset: self.pod_offset_sd * standard_normal(&mut rng),
            error_offset: self.pod_error_sd * standard_normal(&mut rng),
        }
    }

    /// `w(t)` of the load wave at `seconds` since the epoch: a sine whose phase comes from
    /// the seed, the same for every pod of the service.
    pub fn load_wave_at(&self, seconds: i64) -> f64 {
        if self.load_wave.amplitude == 0.0 || self.load_wave.period_seconds <= 0.0 {
            return 0.0;
        }
        let phase = (splitmix(self.seed ^ 0x5eed_f10a) >> 11) as f64 / (1u64 << 53) as f64;
        (std::f64::consts::TAU * (seconds as f64 / self.load_wave.period_seconds + phase)).sin()
    }

    /// A live workload that behaves like pod `index` of a canary or baseline: its offset
    /// folded into the latency scale, the model's error rate and request rate. The
    /// scrape-to-scrape wander and the load wave are the model's alone.
    pub fn workload_config(&self, role: WorkloadRole, index: usize) -> WorkloadConfig {
        let pod_role = match role {
            WorkloadRole::Canary => PodRole::Canary,
            WorkloadRole::Baseline => PodRole::Baseline,
        };
        let profile = self.pod_profile(pod_role, index, 0);
        let effect = self.effect(pod_role);
        WorkloadConfig {
            role,
            latency: LatencyModel {
                scale: self.latency.scale * effect.latency_scale * profile.latency_offset.exp(),
                ..self.latency
            },
            error_rate: self.error_rate * effect.error_scale * profile.error_offset.exp(),
            requests_per_second: self.requests_per_second,
            seed: splitmix(self.seed ^ pod_role.stream() << 40 ^ index as u64),
        }
    }

    fn effect(&self, role: PodRole) -> CanaryEffect {
        match role {
            PodRole::Canary => self.canary,
            PodRole::Baseline | PodRole::Stable => CanaryEffect::NONE,
        }
    }

    /// An independent generator for one pod incarnation: `purpose` 0 for its profile,
    /// 1 for its requests.
    fn stream(&self, role: PodRole, index: usize, generation: u32, purpose: u64) -> Pcg64 {
        let mut key = splitmix(self.seed);
        for part in [
            role.stream(),
            index as u64,
            u64::from(generation),
            purpose,
            fnv(self.service.as_bytes()),
        ] {
            key = splitmix(key ^ part);
        }
        Pcg64::seed_from_u64(key)
    }

    /// Every pod series over `range`, scrape by scrape.
    pub fn simulate(&self, range: &ScrapeRange) -> Vec<PodSeries> {
        let bounds = latency_buckets();
        let mut series = Vec::new();
        for role in PodRole::ALL {
            for index in 0..self.pods.of(role) {
                series.extend(self.simulate_pod(role, index, range, &bounds));
            }
        }
        series
    }

    fn simulate_pod(
        &self,
        role: PodRole,
        index: usize,
        range: &ScrapeRange,
        bounds: &[f64],
    ) -> Vec<PodSeries> {
        let effect = self.effect(role);
        let phi = self.wander.phi.clamp(0.0, 0.999);
        let innovation = (1.0 - phi * phi).sqrt() * self.wander.sd;
        let mut out = Vec::new();
        let mut generation = 0;
        let mut current = self.start_incarnation(role, index, generation, bounds.len());
        let mut wander_rng = self.stream(role, index, 0, 2);
        let mut wander = self.wander.sd * standard_normal(&mut wander_rng);
        let mut expected = 0.0_f64;
        let mut served = 0_u64;
        for step in 0..range.scrapes() {
            let time = range.time_of(step);
            for event in self.events.iter().filter(|e| {
                e.role == role
                    && e.index == index
                    && range.step_of(e.after_seconds) == step
                    && step > 0
            }) {
                match event.kind {
                    PodEventKind::ContainerRestart => current.scrape = Scrape::empty(bounds.len()),
                    PodEventKind::Replaced => {
                        generation += 1;
                        let next = self.start_incarnation(role, index, generation, bounds.len());
                        out.push(std::mem::replace(&mut current, next));
                    }
                }
            }
            wander = phi * wander + innovation * standard_normal(&mut wander_rng);
            let wave = self.load_wave_at(time);
            expected += self.requests_per_second
                * range.interval_seconds as f64
                * (1.0 + self.load_wave.amplitude * wave).max(0.0);
            let due = expected as u64 - served;
            served += due;
            let ln_scale = (self.latency.median_seconds * self.latency.scale).ln()
                + effect.latency_scale.ln()
                + current.profile.latency_offset
                + wander
                + self.load_wave.amplitude * wave;
            let error_probability =
                (self.error_rate * effect.error_scale * current.profile.error_offset.exp())
                    .clamp(0.0, 1.0);
            let scrape = &mut current.scrape;
            for _ in 0..due {
                let latency =
                    (ln_scale + self.latency.sigma * standard_normal(&mut current.rng)).exp();
                let bucket = bounds.partition_point(|&b| b < latency);
                if let Some(count) = scrape.buckets.get_mut(bucket) {
                    *count += 1;
                }
                scrape.count += 1;
                scrape.sum += latency;
                if unit_open(&mut current.rng) <= error_probability {
                    scrape.errors += 1;
                }
            }
            current.wander.push(wander);
            current.series.times.push(time);
            current.series.scrapes.push(scrape.clone());
        }
        out.push(current);
        out.into_iter().map(Incarnation::into_series).collect()
    }

    fn start_incarnation(
        &self,
        role: PodRole,
        index: usize,
        generation: u32,
        bounds: usize,
    ) -> Incarnation {
        Incarnation {
            profile: self.pod_profile(role, index, generation),
            rng: self.stream(role, index, generation, 1),
            scrape: Scrape::empty(bounds),
            wander: Vec::new(),
            series: PodSeries {
                service: self.service.clone(),
                role,
                pod: self.pod_name(role, index, generation),
                profile: self.pod_profile(role, index, generation),
                wander: Vec::new(),
                times: Vec::new(),
                scrapes: Vec::new(),
            },
        }
    }
}

/// The persistent traits of one pod incarnation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodProfile {
    /// `ln` of its latency multiplier.
    pub latency_offset: f64,
    /// `ln` of its error-rate multiplier.
    pub error_offset: f64,
}

/// The scrape times: `start`, `start + interval`, … up to and including `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeRange {
    /// Unix seconds of the first scrape.
    pub start_seconds: i64,
    /// Unix seconds of the last scrape (included when it falls on the grid).
    pub end_seconds: i64,
    pub interval_seconds: u64,
}

impl ScrapeRange {
    pub fn scrapes(&self) -> usize {
        if self.end_seconds < self.start_seconds || self.interval_seconds == 0 {
            return 0;
        }
        ((self.end_seconds - self.start_seconds) as u64 / self.interval_seconds) as usize + 1
    }

    pub fn time_of(&self, step: usize) -> i64 {
        self.start_seconds + (step as u64 * self.interval_seconds) as i64
    }

    /// The first scrape at or after `after_seconds` past the start.
    fn step_of(&self, after_seconds: u64) -> usize {
        after_seconds.div_ceil(self.interval_seconds.max(1)) as usize
    }
}

/// The cumulative state of one pod's metrics at one scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// Non-cumulative counts per finite bucket of [`latency_buckets`]; requests beyond
    /// the last bound are counted in `count` only.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: f64,
    pub errors: u64,
}

impl Scrape {
    fn empty(buckets: usize) -> Scrape {
        Scrape {
            buckets: vec![0; buckets],
            count: 0,
            sum: 0.0,
            errors: 0,
        }
    }
}

/// One pod incarnation's series: what Prometheus scraped from it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSeries {
    pub service: String,
    pub role: PodRole,
    pub pod: String,
    pub profile: PodProfile,
    /// The pod's `ln` wander at each scrape.
    pub wander: Vec<f64>,
    /// Unix seconds of each scrape.
    pub times: Vec<i64>,
    pub scrapes: Vec<Scrape>,
}

#[derive(Debug)]
struct Incarnation {
    profile: PodProfile,
    rng: Pcg64,
    scrape: Scrape,
    wander: Vec<f64>,
    series: PodSeries,
}

impl Incarnation {
    fn into_series(mut self) -> PodSeries {
        self.series.wander = self.wander;
        self.series
    }
}

/// Writes `models` over `range` as one OpenMetrics exposition with timestamps, the input
/// of `promtool tsdb create-blocks-from openmetrics`: the latency histogram family, then
/// the request counter family, then `# EOF`. Each family appears once, whatever the
/// number of models, so hundreds of simulated services load as one file.
pub fn write_openmetrics<W: Write>(
    models: &[ClusterModel],
    range: &ScrapeRange,
    out: &mut W,
) -> io::Result<()> {
    let bounds: Vec<String> = latency_buckets().iter().map(|b| b.to_string()).collect();
    writeln!(out, "# HELP {LATENCY_METRIC} Request latency (simulated).")?;
    writeln!(out, "# TYPE {LATENCY_METRIC} histogram")?;
    writeln!(out, "# UNIT {LATENCY_METRIC} seconds")?;
    // The counters are small; keep them while the histogram is written, so each model is
    // simulated once.
    let mut counters: Vec<(String, Vec<CounterPoint>)> = Vec::new();
    for model in models {
        for series in model.simulate(range) {
            let labels = format!(
                "{SERVICE_LABEL}=\"{}\",{ROLE_LABEL}=\"{}\",{POD_LABEL}=\"{}\"",
                series.service,
                series.role.as_str(),
                series.pod
            );
            for (time, scrape) in series.times.iter().zip(&series.scrapes) {
                let mut cumulative = 0;
                for (bound, count) in bounds.iter().zip(&scrape.buckets) {
                    cumulative += count;
                    writeln!(
                        out,
                        "{LATENCY_METRIC}_bucket{{{labels},le=\"{bound}\"}} {cumulative} {time}"
                    )?;
                }
                writeln!(
                    out,
                    "{LATENCY_METRIC}_bucket{{{labels},le=\"+Inf\"}} {} {time}",
                    scrape.count
                )?;
                writeln!(
                    out,
                    "{LATENCY_METRIC}_sum{{{labels}}} {} {time}",
                    scrape.sum
                )?;
                writeln!(
                    out,
                    "{LATENCY_METRIC}_count{{{labels}}} {} {time}",
                    scrape.count
                )?;
            }
            counters.push((
                labels,
                series
                    .times
                    .iter()
                    .zip(&series.scrapes)
                    .map(|(t, s)| CounterPoint {
                        time: *t,
                        ok: s.count - s.errors,
                        errors: s.errors,
                    })
                    .collect(),
            ));
        }
    }
    writeln!(
        out,
        "# HELP {REQUESTS_METRIC} Requests by status code (simulated)."
    )?;
    writeln!(out, "# TYPE {REQUESTS_METRIC} counter")?;
    for code in ["200", "500"] {
        for (labels, points) in &counters {
            for CounterPoint { time, ok, errors } in points {
                let value = if code == "200" { ok } else { errors };
                writeln!(
                    out,
                    "{REQUESTS_METRIC}_total{{{labels},code=\"{code}\"}} {value} {time}"
                )?;
            }
        }
    }
    writeln!(out, "# EOF")
}

/// One pod's request counters at one scrape.
#[derive(Debug, Clone, Copy)]
struct CounterPoint {
    time: i64,
    ok: u64,
    errors: u64,
}

/// SplitMix64's finaliser: spreads one seed over independent streams.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of the service name, so two services of one seed draw different pods.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(minutes: i64) -> ScrapeRange {
        ScrapeRange {
            start_seconds: 1_700_000_000,
            end_seconds: 1_700_000_000 + minutes * 60,
            interval_seconds: 15,
        }
    }

    fn sd(values: &[f64]) -> f64 {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
    }

    /// The mean latency of the requests between two scrapes.
    fn interval_means(series: &PodSeries) -> Vec<f64> {
        series
            .scrapes
            .windows(2)
            .map(|w| (w[1].sum - w[0].sum) / (w[1].count - w[0].count) as f64)
            .collect()
    }

    #[test]
    fn same_seed_same_bytes_and_another_seed_other_bytes() {
        let write = |seed| {
            let mut out = Vec::new();
            write_openmetrics(&[ClusterModel::new("checkout", seed)], &range(3), &mut out).unwrap();
            out
        };
        assert_eq!(write(7), write(7));
        assert_ne!(write(7), write(8));
    }

    #[test]
    fn pod_offsets_have_the_configured_sd() {
        let mut model = ClusterModel::new("checkout", 1);
        model.pod_offset_sd = 0.03;
        let offsets: Vec<f64> = (0..4000)
            .map(|i| model.pod_profile(PodRole::Stable, i, 0).latency_offset)
            .collect();
        let estimate = sd(&offsets);
        assert!((estimate - 0.03).abs() < 0.0015, "{estimate}");
    }

    #[test]
    fn the_wander_is_ar1_with_the_configured_phi_and_sd() {
        let mut model = ClusterModel::new("checkout", 2);
        model.pods = PodCounts {
            canary: 0,
            baseline: 0,
            stable: 1,
        };
        model.requests_per_second = 0.0;
        model.wander = Wander { sd: 0.05, phi: 0.8 };
        let series = model.simulate(&range(24 * 60)).remove(0);
        let x = &series.wander;
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let lag1: f64 = x.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum();
        let var: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
        let phi = lag1 / var;
        assert!((phi - 0.8).abs() < 0.03, "φ estimate {phi}");
        assert!((sd(x) - 0.05).abs() < 0.006, "sd {}", sd(x));
    }

    #[test]
    fn the_load_wave_moves_every_pod_alike_and_cancels_in_their_ratio() {
        let mut model = ClusterModel::new("checkout", 3);
        model.pod_offset_sd = 0.0;
        model.wander.sd = 0.0;
        model.latency.sigma = 0.05;
        model.requests_per_second = 200.0;
        model.load_wave = LoadWave {
            amplitude: 0.3,
            period_seconds: 1200.0,
        };
        let series = model.simulate(&range(20));
        let canary = interval_means(&series[0]);
        let baseline = interval_means(&series[3]);
        assert_eq!(series[0].role, PodRole::Canary);
        assert_eq!(series[3].role, PodRole::Baseline);
        let swing = canary.iter().cloned().fold(f64::MIN, f64::max)
            / canary.iter().cloned().fold(f64::MAX, f64::min);
        assert!(swing > 1.5, "the wave moves latency: max/min {swing}");
        for (c, b) in canary.iter().zip(&baseline) {
            assert!((c / b - 1.0).abs() < 0.02, "canary {c} vs baseline {b}");
        }
    }

    #[test]
    fn the_canary_effect_scales_latency_and_errors() {
        let mut model = ClusterModel::new("checkout", 4);
        model.pod_offset_sd = 0.0;
        model.wander.sd = 0.0;
        model.pod_error_sd = 0.0;
        model.requests_per_second = 200.0;
        model.error_rate = 0.01;
        model.canary = CanaryEffect {
            latency_scale: 1.2,
            error_scale: 2.0,
        };
        let series = model.simulate(&range(30));
        let total = |role: PodRole| {
            series
                .iter()
                .filter(|s| s.role == role)
                .map(|s| s.scrapes.last().unwrap())
                .fold((0.0, 0, 0), |(sum, n, e), s| {
                    (sum + s.sum, n + s.count, e + s.errors)
                })
        };
        let (c_sum, c_n, c_err) = total(PodRole::Canary);
        let (b_sum, b_n, b_err) = total(PodRole::Baseline);
        assert_eq!(c_n, b_n, "equal traffic");
        let latency_ratio = (c_sum / c_n as f64) / (b_sum / b_n as f64);
        assert!((latency_ratio - 1.2).abs() < 0.01, "{latency_ratio}");
        let error_ratio = c_err as f64 / b_err as f64;
        assert!((error_ratio - 2.0).abs() < 0.2, "{error_ratio}");
        let b_rate = b_err as f64 / b_n as f64;
        assert!((b_rate - 0.01).abs() < 0.001, "{b_rate}");
    }

    #[test]
    fn a_restart_resets_counters_and_a_replacement_starts_a_new_pod() {
        let mut model = ClusterModel::new("checkout", 5);
        model.events = vec![
            PodEvent {
                role: PodRole::Canary,
                index: 0,
                after_seconds: 300,
                kind: PodEventKind::ContainerRestart,
            },
            PodEvent {
                role: PodRole::Baseline,
                index: 1,
                after_seconds: 600,
                kind: PodEventKind::Replaced,
            },
        ];
        let range = range(15);
        let series = model.simulate(&range);
        let canary = series
            .iter()
            .find(|s| s.pod == "checkout-canary-0")
            .unwrap();
        let counts: Vec<u64> = canary.scrapes.iter().map(|s| s.count).collect();
        assert!(
            counts[19] > counts[20],
            "reset at the 20th scrape: {counts:?}"
        );
        assert!(
            counts[20] < counts[1],
            "one interval's requests: {counts:?}"
        );
        let old = series
            .iter()
            .find(|s| s.pod == "checkout-baseline-1")
            .unwrap();
        let new = series
            .iter()
            .find(|s| s.pod == "checkout-baseline-1-r1")
            .unwrap();
        assert_eq!(*old.times.last().unwrap(), range.time_of(39));
        assert_eq!(new.times[0], range.time_of(40));
        assert_eq!(old.times.len() + new.times.len(), range.scrapes());
        assert_ne!(old.profile, new.profile, "a new pod lands on another node");
    }

    #[test]
    fn openmetrics_has_each_family_once_with_timestamps_and_eof() {
        let mut models = vec![ClusterModel::new("a", 1), ClusterModel::new("b", 1)];
        models[0].load_wave.amplitude = 0.0;
        models[1].pods.stable = 0;
        let mut out = Vec::new();
        write_openmetrics(&models, &range(1), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("# TYPE").count(), 2);
        assert!(text.ends_with("# EOF\n"));
        let line = "http_requests_total{service=\"b\",fife_role=\"canary\",pod=\"b-canary-2\",code=\"500\"} ";
        assert!(text.contains(line), "{line}");
        assert!(
            text.contains(
                "http_request_duration_seconds_bucket{service=\"a\",fife_role=\"stable\",pod=\"a-stable-0\",le=\"+Inf\"} 600 1700000015\n"
            ),
            "20 requests/s, 15 s after the first scrape"
        );
        assert!(!text.contains("pod=\"b-stable"));
    }

    #[test]
    fn a_workload_config_is_one_pod_of_the_model() {
        let mut model = ClusterModel::new("checkout", 6);
        model.canary.latency_scale = 1.2;
        let config = model.workload_config(WorkloadRole::Canary, 1);
        let offset = model.pod_profile(PodRole::Canary, 1, 0).latency_offset;
        assert!((config.latency.scale - 1.2 * offset.exp()).abs() < 1e-12);
        assert_eq!(config.requests_per_second, model.requests_per_second);
        assert_ne!(
            config.seed,
            model.workload_config(WorkloadRole::Baseline, 1).seed
        );
    }
}
