//! Time of one full judgement (clean, U, p, shift, interval, classification) for
//! n = m from 10² to 10⁶ on latency-like samples with a small canary regression, at full
//! precision (what Prometheus returns: no ties) and rounded to 0.01 ms (heavy ties), and of
//! one pod test on 10 pods × 10⁴ points per side (plus 10 stable pods).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fife_judge::{JudgeConfig, Look, PodSeries, judge, judge_pods};

#[path = "support/latencies.rs"]
mod latencies;
use latencies::latencies;

fn full_judgement(c: &mut Criterion) {
    let config = JudgeConfig::default();
    for (name, rounded) in [("judge", true), ("judge-continuous", false)] {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500));
        for size in [100usize, 1_000, 10_000, 100_000, 1_000_000] {
            let canary = latencies(size, 1, 1.01, rounded);
            let baseline = latencies(size, 2, 1.0, rounded);
            group.measurement_time(Duration::from_secs(if size >= 1_000_000 { 8 } else { 2 }));
            group.throughput(Throughput::Elements(2 * size as u64));
            group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
                b.iter(|| judge(black_box(&canary), black_box(&baseline), &config))
            });
        }
        group.finish();
    }
}

fn pod_test(c: &mut Criterion) {
    const PODS: usize = 10;
    const POINTS: usize = 10_000;
    let side = |seed: u64, scale: f64| -> Vec<PodSeries> {
        (0..PODS)
            .map(|p| {
                let values = latencies(POINTS, seed * 100 + p as u64, scale, false);
                PodSeries::new(
                    format!("pod-{seed}-{p}"),
                    values
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (1_700_000_000_000 + i as i64 * 15_000, v)),
                )
            })
            .collect()
    };
    let (canary, baseline, stable) = (side(1, 1.01), side(2, 1.0), side(3, 1.0));
    let config = JudgeConfig::default();
    let look = Look {
        index: 3,
        planned: Some(10),
    };
    let mut group = c.benchmark_group("judge_pods");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements((3 * PODS * POINTS) as u64));
    group.bench_function("10 pods x 10^4 points per side", |b| {
        b.iter(|| {
            judge_pods(
                black_box(&canary),
                black_box(&baseline),
                black_box(&stable),
                look,
                &config,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, full_judgement, pod_test);
criterion_main!(benches);
