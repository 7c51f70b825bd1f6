//! In-process time of one full `judge` call at n = m (default 10⁵) on full-precision
//! latency-like samples, best of several runs: the number to set beside scipy's in-process
//! `mannwhitneyu` on the same machine in the same minute. Prints the sample size, best and
//! median milliseconds.
//!
//! `cargo run --release -p fife-judge --example judge_timing -- [n] [runs]`

use std::hint::black_box;
use std::time::Instant;

use fife_judge::{JudgeConfig, judge};

#[path = "../benches/support/latencies.rs"]
mod latencies;
use latencies::latencies;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(100_000, |a| a.parse().expect("n: a whole number"));
    let runs: usize = args
        .next()
        .map_or(21, |a| a.parse().expect("runs: a whole number"));
    let canary = latencies(n, 1, 1.01, false);
    let baseline = latencies(n, 2, 1.0, false);
    let config = JudgeConfig::default();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(judge(black_box(&canary), black_box(&baseline), &config));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "n = m = {n}: best {:.2} ms, median {:.2} ms over {runs} runs",
        times[0],
        times[runs / 2]
    );
}
