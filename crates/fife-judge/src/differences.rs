//! Order statistics of the n·m pairwise differences canary_i − baseline_j without building
//! them: the Hodges-Lehmann shift and its interval are ranks in this multiset.
//!
//! With both samples sorted, the computed differences form a matrix sorted along rows and
//! columns (floating-point subtraction is monotone in each argument), so "how many are
//! ≤ t" is a staircase walk in O(n + m). Selection keeps, per row, the window of columns
//! that may still hold the answer, and narrows it around two pivots drawn from a sample of
//! the window (Floyd-Rivest over the implicit matrix) until the window is small enough to
//! materialise. Every comparison is made on actual computed differences, so the result is
//! bit-identical to sorting all n·m of them.
//!
//! ```text
//!            baseline, descending →
//! canary   [ d d d d d|. . . ]   d: ≤ t  (the staircase boundary moves left
//! ascending[ d d d d|. . . . ]            as the canary value grows)
//!     ↓    [ d d|. . . . . . ]
//! ```

/// Up to this many differences, selection just materialises them.
const MATERIALISE_LIMIT: u64 = 1 << 16;
/// Pivots are drawn from a sample of the window of this many elements at most.
const MAX_SAMPLE_SIZE: usize = 4096;
/// Pivots sit this many sample standard deviations either side of the expected rank.
const PIVOT_SPREAD: f64 = 2.5;

/// The multiset {canary_i − baseline_j}, both samples sorted ascending and finite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairwiseDifferences<'a> {
    canary: &'a [f64],
    baseline: &'a [f64],
}

impl<'a> PairwiseDifferences<'a> {
    pub fn new(canary: &'a [f64], baseline: &'a [f64]) -> Self {
        debug_assert!(canary.is_sorted_by(|a, b| a <= b));
        debug_assert!(baseline.is_sorted_by(|a, b| a <= b));
        PairwiseDifferences { canary, baseline }
    }

    /// N = n·m.
    pub fn len(&self) -> u64 {
        self.canary.len() as u64 * self.baseline.len() as u64
    }

    /// Difference at row i (canary ascending), column j (baseline descending): ascending
    /// along both.
    #[inline]
    fn at(&self, i: usize, j: usize) -> f64 {
        self.canary[i] - self.baseline[self.baseline.len() - 1 - j]
    }

    /// Walks the staircase for threshold t: calls `visit(row, b)` where b is the number of
    /// columns of that row whose difference is < t (`strict`) or ≤ t; returns Σ b.
    #[inline]
    fn staircase(&self, t: f64, strict: bool, mut visit: impl FnMut(usize, usize)) -> u64 {
        let m = self.baseline.len();
        let mut b = m;
        let mut total = 0u64;
        for (i, &x) in self.canary.iter().enumerate() {
            if strict {
                while b > 0 && x - self.baseline[m - b] >= t {
                    b -= 1;
                }
            } else {
                while b > 0 && x - self.baseline[m - b] > t {
                    b -= 1;
                }
            }
            visit(i, b);
            total += b as u64;
        }
        total
    }

    /// (#differences < t, #differences ≤ t) in one walk.
    fn rank_of(&self, t: f64) -> (u64, u64) {
        let m = self.baseline.len();
        let (mut below, mut through) = (m, m);
        let (mut below_total, mut through_total) = (0u64, 0u64);
        for &x in self.canary {
            while through > 0 && x - self.baseline[m - through] > t {
                through -= 1;
            }
            below = below.min(through);
            while below > 0 && x - self.baseline[m - below] >= t {
                below -= 1;
            }
            below_total += below as u64;
            through_total += through as u64;
        }
        (below_total, through_total)
    }

    /// (#differences ≤ t, the smallest difference > t if any) in one walk.
    fn through_and_successor(&self, t: f64) -> (u64, Option<f64>) {
        let m = self.baseline.len();
        let mut through = m;
        let mut total = 0u64;
        let mut successor: Option<f64> = None;
        for (i, &x) in self.canary.iter().enumerate() {
            while through > 0 && x - self.baseline[m - through] > t {
                through -= 1;
            }
            total += through as u64;
            if through < m {
                let next = self.at(i, through);
                successor = Some(successor.map_or(next, |s: f64| s.min(next)));
            }
        }
        (total, successor)
    }

    /// D(rank) for each 1-based rank (each in 1..=N), in the order given.
    pub fn order_statistics(&self, ranks: &[u64]) -> Vec<f64> {
        for &rank in ranks {
            assert!(
                rank >= 1 && rank <= self.len(),
                "rank {rank} outside 1..={}",
                self.len()
            );
        }
        let mut order: Vec<usize> = (0..ranks.len()).collect();
        order.sort_by_key(|&i| ranks[i]);
        let mut values = vec![0.0; ranks.len()];

        if self.len() <= MATERIALISE_LIMIT {
            let mut all: Vec<f64> = Vec::with_capacity(self.len() as usize);
            for &x in self.canary {
                all.extend(self.baseline.iter().map(|&y| x - y));
            }
            // Ascending ranks: each selection only needs the part right of the last one.
            let mut done = 0usize;
            for &i in &order {
                let k = (ranks[i] - 1) as usize;
                let (_, v, _) = all[done..].select_nth_unstable_by(k - done, f64::total_cmp);
                values[i] = *v;
                done = k;
            }
            return values;
        }

        let materialise_at = (self.canary.len() + self.baseline.len()) as u64 + 1024;
        let mut previous: Option<(u64, f64)> = None;
        for &i in &order {
            let rank = ranks[i];
            values[i] = match previous {
                Some((r, v)) if r == rank => v,
                // The median of an even count needs D(k+1) right after D(k): one walk.
                Some((r, v)) if r + 1 == rank => {
                    let (through, successor) = self.through_and_successor(v);
                    if rank <= through {
                        v
                    } else {
                        successor.expect("rank ≤ N has a value")
                    }
                }
                _ => self.select_in_windows(rank - 1, materialise_at),
            };
            previous = Some((rank, values[i]));
        }
        values
    }

    /// Narrows per-row windows until at most `materialise_at` candidates remain, then
    /// selects among them. Returns the k-th smallest difference, 0-based.
    fn select_in_windows(&self, k: u64, materialise_at: u64) -> f64 {
        let (n, m) = (self.canary.len(), self.baseline.len());
        // Row i may still hold the answer in columns lo[i]..hi[i]; everything left of the
        // window is smaller than the answer, everything right of it larger.
        let mut lo = vec![0usize; n];
        let mut hi = vec![m; n];
        let mut window_ends = vec![0u64; n];
        let mut rng = SplitMix64(0x5eed_f1fe_0000_0001);
        let sample_size = ((n + m) / 4).clamp(64, MAX_SAMPLE_SIZE);
        let mut sample = Vec::with_capacity(sample_size);
        loop {
            let mut left = 0u64;
            let mut active = 0u64;
            for i in 0..n {
                left += lo[i] as u64;
                active += (hi[i] - lo[i]) as u64;
                window_ends[i] = active;
            }
            let rank_in_window = k - left;
            if active <= materialise_at {
                let mut window: Vec<f64> = Vec::with_capacity(active as usize);
                for i in 0..n {
                    window.extend((lo[i]..hi[i]).map(|j| self.at(i, j)));
                }
                return *window
                    .select_nth_unstable_by(rank_in_window as usize, f64::total_cmp)
                    .1;
            }

            sample.clear();
            for _ in 0..sample_size {
                let r = rng.next() % active;
                let row = window_ends.partition_point(|&end| end <= r);
                let start = window_ends[row] - (hi[row] - lo[row]) as u64;
                sample.push(self.at(row, lo[row] + (r - start) as usize));
            }
            sample.sort_unstable_by(f64::total_cmp);
            let expected = rank_in_window as f64 / active as f64 * sample_size as f64;
            let spread = PIVOT_SPREAD * (sample_size as f64).sqrt();
            let lo_index = (expected - spread).floor().max(0.0) as usize;
            let hi_index = ((expected + spread).ceil() as usize).min(sample_size - 1);
            let (pivot_lo, pivot_hi) = (sample[lo_index], sample[hi_index]);

            // Each branch excludes at least one pivot (a window element), so the window
            // strictly shrinks and the loop ends even on heavily tied data.
            let (below_lo, through_lo) = self.rank_of(pivot_lo);
            if k < below_lo {
                self.staircase(pivot_lo, true, |i, b| hi[i] = hi[i].min(b));
                continue;
            }
            if k < through_lo {
                return pivot_lo;
            }
            let (below_hi, through_hi) = self.rank_of(pivot_hi);
            if k >= through_hi {
                self.staircase(pivot_hi, false, |i, b| lo[i] = lo[i].max(b));
                continue;
            }
            if k >= below_hi {
                return pivot_hi;
            }
            self.staircase(pivot_lo, false, |i, b| lo[i] = lo[i].max(b));
            self.staircase(pivot_hi, true, |i, b| hi[i] = hi[i].min(b));
        }
    }
}

/// A fixed-seed generator for pivot sampling: it only affects how fast selection narrows,
/// never its result, and keeps runs reproducible.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_force(canary: &[f64], baseline: &[f64]) -> Vec<f64> {
        let mut all: Vec<f64> = canary
            .iter()
            .flat_map(|&x| baseline.iter().map(move |&y| x - y))
            .collect();
        all.sort_by(f64::total_cmp);
        all
    }

    fn lcg_sample(seed: u64, len: usize, levels: u64) -> Vec<f64> {
        let mut rng = SplitMix64(seed);
        let mut v: Vec<f64> = (0..len)
            .map(|_| (rng.next() % levels) as f64 * 0.37)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    proptest! {
        /// The windowed search, forced to narrow all the way down (no materialising),
        /// finds exactly what sorting every difference finds, ties and all.
        #[test]
        fn windowed_selection_equals_brute_force(
            canary in prop::collection::vec(-20i32..20, 1..40),
            baseline in prop::collection::vec(-20i32..20, 1..40),
            scale in prop::sample::select(vec![1.0, 0.1, 0.37, 1e-3]),
            rank_fraction in 0.0f64..1.0,
        ) {
            let mut c: Vec<f64> = canary.iter().map(|&v| v as f64 * scale).collect();
            let mut b: Vec<f64> = baseline.iter().map(|&v| v as f64 * scale).collect();
            c.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let d = PairwiseDifferences::new(&c, &b);
            let all = brute_force(&c, &b);
            let k = ((rank_fraction * d.len() as f64) as u64).min(d.len() - 1);
            prop_assert_eq!(d.select_in_windows(k, 0).to_bits(), all[k as usize].to_bits());
            let ranks = [k + 1, (k + 2).min(d.len()), 1, d.len()];
            let got = d.order_statistics(&ranks);
            for (rank, value) in ranks.iter().zip(got) {
                prop_assert_eq!(value.to_bits(), all[*rank as usize - 1].to_bits());
            }
        }
    }

    #[test]
    fn small_inputs_materialise() {
        let c = [1.0, 2.0, 4.0];
        let b = [0.5, 3.0];
        let d = PairwiseDifferences::new(&c, &b);
        let all = brute_force(&c, &b);
        for rank in 1..=d.len() {
            assert_eq!(d.order_statistics(&[rank]), vec![all[rank as usize - 1]]);
        }
    }

    #[test]
    fn windowed_selection_equals_sorting_everything() {
        // 1200 × 1000 = 1.2·10⁶ differences: far above the materialisation limit.
        for (levels, seed) in [(1u64 << 40, 1u64), (7, 2), (2, 3)] {
            let c = lcg_sample(seed, 1200, levels);
            let b = lcg_sample(seed + 100, 1000, levels);
            let d = PairwiseDifferences::new(&c, &b);
            assert!(d.len() > MATERIALISE_LIMIT);
            let all = brute_force(&c, &b);
            let ranks = [
                1,
                2,
                17,
                d.len() / 4,
                d.len() / 2,
                d.len() / 2 + 1,
                d.len() - 3,
                d.len(),
            ];
            let got = d.order_statistics(&ranks);
            for (rank, value) in ranks.iter().zip(got) {
                assert_eq!(
                    value.to_bits(),
                    all[*rank as usize - 1].to_bits(),
                    "rank {rank}, levels {levels}"
                );
            }
        }
    }
}
