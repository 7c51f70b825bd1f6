//! The samples the judge's benchmarks time: latency-like values from a fixed seed, shared
//! by the criterion benches and the `judge_timing` example so both time the same data.

/// Deterministic log-normal-ish latencies (ms), at full precision or rounded to 0.01 ms as
/// some exporters report them (then the pooled sample has realistic ties).
pub fn latencies(len: usize, seed: u64, scale: f64, rounded: bool) -> Vec<f64> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..len)
        .map(|_| {
            let normal = (-2.0 * (1.0 - uniform()).ln()).sqrt()
                * (2.0 * std::f64::consts::PI * uniform()).cos();
            let ms = (normal * 0.4).exp() * 100.0 * scale;
            if rounded {
                (ms * 100.0).round() / 100.0
            } else {
                ms
            }
        })
        .collect()
}
