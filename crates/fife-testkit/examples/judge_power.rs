//! Prints the judge's false-positive and detection rates on simulated workloads as the
//! Markdown tables of `docs/analysis-power.md`.
//!
//! ```text
//! cargo run --release -p fife-testkit --example judge_power [-- COMPARISONS [SEED]]
//! ```
//!
//! Defaults: 1000 comparisons per cell, seed 2024. Same arguments → same tables.

use fife_testkit::calibration::{
    self, P99_RATE_1M, P99_RATE_30S, POINTS_PER_POD, PointShape, RARE_ERRORS, SPARSE_ERRORS,
    aa_judge, example_scenario, latency_judge,
};

const PODS: [usize; 3] = [1, 3, 10];
const SHIFTS: [f64; 3] = [1.05, 1.10, 1.20];

fn main() {
    let mut args = std::env::args().skip(1);
    let comparisons: usize = args.next().map_or(1000, |a| {
        a.parse()
            .expect("the first argument is the number of comparisons")
    });
    let seed: u64 = args.next().map_or(2024, |a| {
        a.parse().expect("the second argument is the seed")
    });

    let latency_shapes: [(&str, PointShape); 3] = [
        ("request latencies (independent)", PointShape::Request),
        ("p99, rate[1m], step 15s (overlapping)", P99_RATE_1M),
        ("p99, rate[30s], step 15s (disjoint)", P99_RATE_30S),
    ];

    println!(
        "{comparisons} comparisons per cell, seed {seed}, {POINTS_PER_POD} points per pod, \
         confidence 0.95.\n"
    );
    println!("### A/A: share classified High or Low (direction either)\n");
    println!("| points | pods/side | samples/side | High or Low (95% CI) |");
    println!("|---|---|---|---|");
    let count_shapes = [
        ("error counts, P(0)≈0.69", SPARSE_ERRORS),
        ("error counts, P(0)≈0.94", RARE_ERRORS),
    ];
    for (name, shape) in latency_shapes.iter().chain(&count_shapes) {
        for pods in PODS {
            let scenario = example_scenario(*shape, pods, 1.0, aa_judge());
            let tally = calibration::run(&scenario, comparisons, seed);
            println!(
                "| {name} | {pods} | {} | {} |",
                scenario.samples_per_side(),
                tally.failure_rate()
            );
        }
    }

    for allowed in [1.0, 1.10] {
        println!(
            "\n### Detection: share classified High (direction increase, allowedIncrease {allowed:.2})\n"
        );
        println!("| points | pods/side | samples/side | +5% | +10% | +20% |");
        println!("|---|---|---|---|---|---|");
        for (name, shape) in &latency_shapes {
            for pods in PODS {
                let rates: Vec<String> = SHIFTS
                    .iter()
                    .map(|&scale| {
                        let scenario =
                            example_scenario(*shape, pods, scale, latency_judge(allowed));
                        let rate = calibration::run(&scenario, comparisons, seed).high_rate();
                        format!("{:.1}%", rate.rate * 100.0)
                    })
                    .collect();
                println!(
                    "| {name} | {pods} | {} | {} |",
                    pods * POINTS_PER_POD,
                    rates.join(" | ")
                );
            }
        }
    }
}
