//! The judge's false-positive rate and power on simulated workloads, at the sample sizes
//! the example template produces (21 points per pod: 5m lookback at a 15 s step). Seeded,
//! so every figure here is the one in `docs/analysis-power.md`; the table comes from
//! `cargo run --release -p fife-testkit --example judge_power`.
//!
//! A false-positive rate is asserted two ways: the observed rate is at most α = 5%, and
//! the lower end of its 95% Wilson interval is below α (the rate is not significantly
//! above α). The exact test (both sides under 50 samples) has size ≤ α by construction;
//! the normal approximation is checked here.

use fife_testkit::calibration::{
    self, P99_RATE_1M, P99_RATE_30S, PointShape, Proportion, RARE_ERRORS, SPARSE_ERRORS, aa_judge,
    example_scenario, latency_judge,
};

const SEED: u64 = 2024;
const ALPHA: f64 = 0.05;

fn aa_rate(shape: PointShape, pods: usize, comparisons: usize) -> Proportion {
    let scenario = example_scenario(shape, pods, 1.0, aa_judge());
    let tally = calibration::run(&scenario, comparisons, SEED);
    assert_eq!(tally.no_data, 0, "{tally:?}");
    tally.failure_rate()
}

fn assert_calibrated(what: &str, rate: Proportion) {
    eprintln!("A/A {what}: High or Low {rate}");
    assert!(rate.rate <= ALPHA, "A/A {what}: {rate}");
    assert!(rate.ci95[0] < ALPHA, "A/A {what}: {rate}");
}

#[test]
fn aa_request_latencies_fail_at_most_alpha_at_example_sizes() {
    // 3 pods a side (63 samples) is the smallest canary that reaches minSamples 50;
    // 10 pods (210) is a large one. Both use the normal approximation.
    assert_calibrated("63 v 63", aa_rate(PointShape::Request, 3, 1000));
    assert_calibrated("210 v 210", aa_rate(PointShape::Request, 10, 1000));
}

#[test]
fn aa_zero_inflated_counts_fail_at_most_alpha() {
    // Mostly zeros: a tie-heavy sample, judged with the tie-corrected normal approximation.
    for (name, shape) in [("P(0)≈0.69", SPARSE_ERRORS), ("P(0)≈0.94", RARE_ERRORS)] {
        for pods in [3, 10] {
            let rate = aa_rate(shape, pods, 1000);
            assert_calibrated(&format!("error counts {name}, {pods} pods"), rate);
        }
    }
}

#[test]
fn aa_quantiles_over_disjoint_windows_stay_calibrated() {
    let rate = aa_rate(P99_RATE_30S, 3, 300);
    eprintln!("A/A p99 rate[30s]: {rate}");
    assert!(rate.ci95[0] < ALPHA, "{rate}");
}

#[test]
fn aa_quantiles_over_overlapping_windows_fail_far_more_than_alpha() {
    // Consecutive points of rate(..[1m]) at a 15 s step share two of three scrape
    // intervals, so the points are not independent and the test's variance is too small.
    // This is why docs/analysis-power.md asks for a `rate` range that spans one step.
    let rate = aa_rate(P99_RATE_1M, 3, 300);
    eprintln!("A/A p99 rate[1m]: {rate}");
    assert!(rate.ci95[0] > 3.0 * ALPHA, "{rate}");
}

#[test]
fn a_twenty_percent_slower_canary_is_caught() {
    let power = |shape, pods, comparisons| {
        let scenario = example_scenario(shape, pods, 1.2, latency_judge(1.10));
        calibration::run(&scenario, comparisons, SEED).high_rate()
    };
    let requests_63 = power(PointShape::Request, 3, 1000);
    let requests_210 = power(PointShape::Request, 10, 1000);
    let p99_63 = power(P99_RATE_30S, 3, 200);
    eprintln!(
        "+20%: requests 63 v 63 {requests_63}; 210 v 210 {requests_210}; p99 63 v 63 {p99_63}"
    );
    assert!(requests_63.rate >= 0.85, "{requests_63}");
    assert!(requests_210.rate >= 0.99, "{requests_210}");
    assert!(p99_63.rate >= 0.99, "{p99_63}");
}

#[test]
fn the_effect_gate_passes_a_five_percent_shift() {
    // allowedIncrease 1.10 tolerates +5% by design: significant or not, it is not High
    // unless the sample means happen to differ by 10%.
    let scenario = example_scenario(P99_RATE_30S, 3, 1.05, latency_judge(1.10));
    let gated = calibration::run(&scenario, 200, SEED).high_rate();
    let scenario = example_scenario(P99_RATE_30S, 3, 1.05, latency_judge(1.0));
    let ungated = calibration::run(&scenario, 200, SEED).high_rate();
    eprintln!("+5% p99 63 v 63: gated {gated}, ungated {ungated}");
    assert!(gated.rate <= 0.01, "{gated}");
    assert!(ungated.rate >= 0.9, "{ungated}");
}
