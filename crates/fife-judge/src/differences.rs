//! Order statistics of the n·m pairwise differences canary_i − baseline_j without building
//! them: the Hodges-Lehmann shift and its interval are ranks in this multiset.
//!
//! With both samples sorted, the computed differences form a matrix sorted along rows and
//! columns (floating-point subtraction is monotone in each argument), so "how many are
//! ≤ t" is a staircase walk in O(n + m). Selection keeps, per row, the window of columns
//! that may still hold the wanted ranks, and narrows it around pivots drawn from a
//! stratified sample of the window (Floyd-Rivest over the implicit matrix) until the window
//! is small enough to materialise. All wanted ranks (both interval ends and the median
//! pair) share one window while their pivots overlap, then split: on continuous data the
//! four ranks cost about fourteen walks. Every comparison is made on actual computed
//! differences, so the result is bit-identical to sorting all n·m of them.
//!
//! ```text
//!            baseline, descending →
//! canary   [ d d d d d|. . . ]   d: ≤ t  (the staircase boundary moves left
//! ascending[ d d d d|. . . . ]            as the canary value grows)
//!     ↓    [ d d|. . . . . . ]
//! ```

/// Up to this many differences, selection just materialises them.
const MATERIALISE_LIMIT: u64 = 1 << 16;
/// Pivots are drawn from a sample of the window of this many elements at most: choosing
/// pivots in it costs less than one staircase walk over 10⁶ rows, and each pass then
/// shrinks the window about a hundredfold.
const MAX_SAMPLE_SIZE: usize = 1 << 16;
/// From this many rows on, the cuts of a window's pivots are walked on two threads: a walk
/// then takes about 0.1 ms, several times what starting a thread costs.
const PARALLEL_ROWS: usize = 1 << 14;
/// Pivots sit this many standard deviations of the sample rank either side of the
/// expected rank: a pass misses its target about once in 400, which costs one more pass.
const PIVOT_SPREAD: f64 = 3.0;

/// A column index of a row. 32 bits: the per-row buffers of windows and cuts are the
/// memory a selection touches, and at 10⁵ rows half their pages are half their faults.
type Column = u32;

/// Columns lo[i]..hi[i] of every row i: the candidates that may still hold some wanted
/// ranks. All differences left of a window are smaller than every candidate, all those
/// right of it larger, so a rank in the whole multiset is `left` plus a rank in the window.
#[derive(Debug)]
struct Window {
    lo: Vec<Column>,
    hi: Vec<Column>,
    /// Σ lo: the differences left of the window.
    left: u64,
    /// Σ (hi − lo): the candidates.
    size: u64,
}

/// Where a pivot p cuts every row: how many of its differences are < p and ≤ p.
#[derive(Debug)]
struct Cut {
    below: Vec<Column>,
    through: Vec<Column>,
    below_total: u64,
    through_total: u64,
}

/// Per-row column buffers (all n long) of finished windows and cuts, for the next cut to
/// reuse: a fresh buffer is fresh pages, and faulting them in cost more than the walk
/// that fills them.
#[derive(Debug, Default)]
struct Buffers(Vec<Vec<Column>>);

impl Buffers {
    /// A buffer of n columns with arbitrary contents: every user overwrites all of them.
    fn take(&mut self, n: usize) -> Vec<Column> {
        self.0.pop().unwrap_or_else(|| vec![0; n])
    }

    fn give(&mut self, buffer: Vec<Column>) {
        self.0.push(buffer);
    }
}

/// The baseline laid out for the walk: entry c is the baseline value of the last column a
/// row keeps when c columns hold differences inside a cut (baseline[m − c]), so a step of
/// the walk reads one entry at its count, with no index arithmetic on its critical path.
/// Entry 0 is never compared (a row with no column left stops) and holds any value.
#[derive(Debug)]
struct Columns(Vec<f64>);

impl Columns {
    fn new(baseline: &[f64]) -> Self {
        let m = baseline.len();
        Columns(
            std::iter::once(baseline[m - 1])
                .chain(baseline.iter().rev().copied())
                .collect(),
        )
    }
}

/// The multiset {canary_i − baseline_j}, both samples sorted ascending and finite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairwiseDifferences<'a> {
    canary: &'a [f64],
    baseline: &'a [f64],
    /// [`PARALLEL_ROWS`]; lowered by tests to walk small samples on two threads.
    parallel_rows: usize,
}

impl<'a> PairwiseDifferences<'a> {
    pub fn new(canary: &'a [f64], baseline: &'a [f64]) -> Self {
        debug_assert!(canary.is_sorted_by(|a, b| a <= b));
        debug_assert!(baseline.is_sorted_by(|a, b| a <= b));
        assert!(
            Column::try_from(baseline.len()).is_ok(),
            "at most {} baseline values",
            Column::MAX
        );
        PairwiseDifferences {
            canary,
            baseline,
            parallel_rows: PARALLEL_ROWS,
        }
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

    /// D(rank) for each 1-based rank (each in 1..=N), in the order given. All ranks are
    /// found in one narrowing: they share the walks while their windows overlap.
    pub fn order_statistics(&self, ranks: &[u64]) -> Vec<f64> {
        for &rank in ranks {
            assert!(
                rank >= 1 && rank <= self.len(),
                "rank {rank} outside 1..={}",
                self.len()
            );
        }
        let mut wanted: Vec<u64> = ranks.iter().map(|&rank| rank - 1).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let materialise_at = if self.len() <= MATERIALISE_LIMIT {
            self.len()
        } else {
            (self.canary.len() + self.baseline.len()) as u64 + 1024
        };
        let found = self.select(&wanted, materialise_at);
        ranks
            .iter()
            .map(|&rank| found[wanted.partition_point(|&k| k < rank - 1)])
            .collect()
    }

    /// The k-th smallest difference, 0-based.
    #[cfg(test)]
    fn select_in_windows(&self, k: u64, materialise_at: u64) -> f64 {
        self.select(&[k], materialise_at)[0]
    }

    /// The differences of 0-based ranks `wanted` (ascending, distinct). Narrows windows
    /// until at most `materialise_at` candidates remain in each, then selects among them.
    fn select(&self, wanted: &[u64], materialise_at: u64) -> Vec<f64> {
        let (n, m) = (self.canary.len(), self.baseline.len());
        let mut found = vec![0.0; wanted.len()];
        let mut pending = vec![(
            Window {
                lo: vec![0; n],
                hi: vec![m as Column; n],
                left: 0,
                size: self.len(),
            },
            0..wanted.len(),
        )];
        let mut rng = SplitMix64(0x5eed_f1fe_0000_0001);
        let mut sample = Vec::new();
        let mut buffers = Buffers::default();
        let columns = Columns::new(self.baseline);
        while let Some((window, targets)) = pending.pop() {
            if window.size <= materialise_at {
                let mut values = self.materialise(&window);
                // Ascending ranks: each selection only needs the part right of the last one.
                let mut done = 0usize;
                for t in targets {
                    let k = (wanted[t] - window.left) as usize;
                    let (_, v, _) = values[done..].select_nth_unstable_by(k - done, f64::total_cmp);
                    found[t] = *v;
                    done = k;
                }
                buffers.give(window.lo);
                buffers.give(window.hi);
                continue;
            }

            self.sample(&window, materialise_at, &mut rng, &mut sample);
            let pivots = pivots(
                &mut sample,
                targets.clone().map(|t| wanted[t] - window.left),
                window.size,
            );
            // Every pivot is a candidate, so every window pushed below is strictly smaller
            // and the loop ends even on heavily tied data.
            let Window {
                lo: mut lower,
                hi,
                left,
                size,
            } = window;
            let mut lower_total = left;
            let mut t = targets.start;
            let mut cuts = self.cuts(&pivots, &columns, &mut buffers).into_iter();
            for (pivot, cut) in pivots.into_iter().zip(cuts.by_ref()) {
                let first = t;
                while t < targets.end && wanted[t] < cut.below_total {
                    t += 1;
                }
                if t > first {
                    let below = Window {
                        lo: lower,
                        hi: cut.below,
                        left: lower_total,
                        size: cut.below_total - lower_total,
                    };
                    pending.push((below, first..t));
                } else {
                    buffers.give(lower);
                    buffers.give(cut.below);
                }
                while t < targets.end && wanted[t] < cut.through_total {
                    found[t] = pivot;
                    t += 1;
                }
                lower = cut.through;
                lower_total = cut.through_total;
                if t == targets.end {
                    break;
                }
            }
            for unused in cuts {
                buffers.give(unused.below);
                buffers.give(unused.through);
            }
            if t < targets.end {
                let above = Window {
                    lo: lower,
                    hi,
                    left: lower_total,
                    size: left + size - lower_total,
                };
                pending.push((above, t..targets.end));
            } else {
                buffers.give(lower);
                buffers.give(hi);
            }
        }
        found
    }

    /// Where each pivot cuts every row, in the pivots' order. The walks are independent:
    /// on large samples half of them run on a second thread.
    fn cuts(&self, pivots: &[f64], columns: &Columns, buffers: &mut Buffers) -> Vec<Cut> {
        if pivots.len() < 2 || self.canary.len() < self.parallel_rows {
            return pivots
                .iter()
                .map(|&p| self.cut(p, columns, buffers))
                .collect();
        }
        // The thread started last gets the smaller half; each cut takes two buffers.
        let (mine, theirs) = pivots.split_at(pivots.len().div_ceil(2));
        let spare = buffers.0.len().saturating_sub(2 * theirs.len());
        let mut their_buffers = Buffers(buffers.0.split_off(spare));
        let cuts = std::thread::scope(|scope| {
            let their_cuts = scope.spawn(|| {
                theirs
                    .iter()
                    .map(|&p| self.cut(p, columns, &mut their_buffers))
                    .collect::<Vec<_>>()
            });
            let mut cuts: Vec<Cut> = mine
                .iter()
                .map(|&p| self.cut(p, columns, buffers))
                .collect();
            cuts.extend(their_cuts.join().expect("a staircase walk does not panic"));
            cuts
        });
        buffers.0.append(&mut their_buffers.0);
        cuts
    }

    /// Where pivot p cuts every row. Differences equal to p sit just left of each row's cut
    /// (rows ascend), and a pivot is always one of the differences: counting them back from
    /// the ≤ cut gives the < cut without a second walk. On continuous data p occurs about
    /// once; on tied data, once the count passes a sixteenth of a walk, the strict walk
    /// takes over.
    fn cut(&self, p: f64, columns: &Columns, buffers: &mut Buffers) -> Cut {
        let (n, m) = (self.canary.len(), self.baseline.len());
        let mut through = buffers.take(n);
        let through_total = self.staircase::<false>(p, columns, &mut through);
        let mut below = buffers.take(n);
        below.copy_from_slice(&through);
        let mut budget = (n + m) / 16;
        let mut equal_total = 0u64;
        for (i, c) in below.iter_mut().enumerate() {
            while *c > 0 && self.at(i, *c as usize - 1) == p {
                if budget == 0 {
                    let below_total = self.staircase::<true>(p, columns, &mut below);
                    return Cut {
                        below,
                        through,
                        below_total,
                        through_total,
                    };
                }
                budget -= 1;
                *c -= 1;
                equal_total += 1;
            }
        }
        Cut {
            below,
            through,
            below_total: through_total - equal_total,
            through_total,
        }
    }

    /// Per row, how many columns hold a difference < p (`STRICT`) or ≤ p; returns their
    /// sum. The walk along the staircase is split into `STREAMS` stretches of rows walked
    /// in lockstep without data-dependent branches: the processor overlaps the stretches
    /// instead of mispredicting, about once a row, where one walk turns.
    fn staircase<const STRICT: bool>(
        &self,
        p: f64,
        by_count: &Columns,
        counts: &mut [Column],
    ) -> u64 {
        const STREAMS: usize = 4;
        let (n, m) = (self.canary.len(), self.baseline.len());
        let outside = |d: f64| if STRICT { d >= p } else { d > p };
        let mut row = [0usize; STREAMS];
        let mut end = [0usize; STREAMS];
        let mut columns = [0usize; STREAMS];
        for s in 0..STREAMS {
            row[s] = s * n / STREAMS;
            end[s] = (s + 1) * n / STREAMS;
            if row[s] < end[s] {
                // Differences fall as the baseline value grows: those of the row's first
                // canary value inside the cut are a suffix of the baseline.
                let x = self.canary[row[s]];
                columns[s] = m - self.baseline.partition_point(|&y| outside(x - y));
            }
        }
        let mut total = 0u64;
        loop {
            let mut live = false;
            for s in 0..STREAMS {
                if row[s] < end[s] {
                    live = true;
                    let c = columns[s];
                    let d = self.canary[row[s]] - by_count.0[c];
                    let step = (c > 0) & outside(d);
                    let c = c - step as usize;
                    counts[row[s]] = c as Column;
                    total += (!step) as u64 * c as u64;
                    row[s] += (!step) as usize;
                    columns[s] = c;
                }
            }
            if !live {
                return total;
            }
        }
    }

    /// A stratified sample of the window's candidates: the window, read row by row, is cut
    /// into equal strata and one candidate is drawn uniformly from each. One pass over the
    /// rows, and no aliasing with the row length as a fixed stride would have.
    ///
    /// A rank's bracket spans about PIVOT_SPREAD / √size of the window, so a window within
    /// reach of `materialise_at` needs only (2·PIVOT_SPREAD·window / materialise_at)²
    /// draws to land at half of it: drawing more costs time and narrows nothing that
    /// materialising would not.
    fn sample(
        &self,
        window: &Window,
        materialise_at: u64,
        rng: &mut SplitMix64,
        sample: &mut Vec<f64>,
    ) {
        let enough = if materialise_at == 0 {
            u64::MAX
        } else {
            let draws = 2.0 * PIVOT_SPREAD * window.size as f64 / materialise_at as f64;
            (draws * draws).min(u64::MAX as f64) as u64
        };
        let size = (MAX_SAMPLE_SIZE.min((self.canary.len() + self.baseline.len()) / 2) as u64)
            .min(enough)
            .max(64);
        let strata = size.min(window.size);
        let stratum_start = |q: u64| (q as u128 * window.size as u128 / strata as u128) as u64;
        let mut draw = |q: u64| {
            let (start, end) = (stratum_start(q), stratum_start(q + 1));
            // A multiply-shift maps the draw onto the stratum without a division.
            start + ((u128::from(rng.next()) * u128::from(end - start)) >> 64) as u64
        };
        sample.clear();
        let mut q = 0u64;
        let mut next = draw(q);
        let mut row_start = 0u64;
        for (i, (&lo, &hi)) in window.lo.iter().zip(&window.hi).enumerate() {
            let row_end = row_start + u64::from(hi - lo);
            while next < row_end {
                sample.push(self.at(i, lo as usize + (next - row_start) as usize));
                q += 1;
                if q == strata {
                    return;
                }
                next = draw(q);
            }
            row_start = row_end;
        }
    }

    /// Every candidate of the window.
    fn materialise(&self, window: &Window) -> Vec<f64> {
        let mut values = Vec::with_capacity(window.size as usize);
        for (i, (&lo, &hi)) in window.lo.iter().zip(&window.hi).enumerate() {
            values.extend((lo..hi).map(|j| self.at(i, j as usize)));
        }
        values
    }
}

/// Ascending, distinct pivot values that bracket each wanted rank (0-based, ascending,
/// within a window of `size` candidates) with high probability, from a sample of the
/// window: one pair around each group of ranks whose brackets overlap.
fn pivots(sample: &mut [f64], ranks: impl Iterator<Item = u64>, size: u64) -> Vec<f64> {
    let last = sample.len() - 1;
    let s = sample.len() as f64;
    let mut indices: Vec<usize> = Vec::new();
    for rank in ranks {
        let q = (rank as f64 + 0.5) / size as f64;
        let expected = q * s;
        let spread = PIVOT_SPREAD * (s * q * (1.0 - q)).sqrt() + 1.0;
        let lo = ((expected - spread).floor().max(0.0) as usize).min(last);
        let hi = ((expected + spread).ceil().max(0.0) as usize).min(last);
        match indices.last_mut() {
            Some(previous_hi) if lo <= *previous_hi => *previous_hi = hi,
            _ => indices.extend([lo, hi]),
        }
    }
    let mut values: Vec<f64> = Vec::with_capacity(indices.len());
    let mut done = 0usize;
    for index in indices {
        let (_, v, _) = sample[done..].select_nth_unstable_by(index - done, f64::total_cmp);
        if values.last() != Some(v) {
            values.push(*v);
        }
        done = index;
    }
    values
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
            // The same with every window's cuts walked on two threads, as from
            // PARALLEL_ROWS rows on.
            let parallel = PairwiseDifferences { parallel_rows: 1, ..d };
            prop_assert_eq!(parallel.select_in_windows(k, 0).to_bits(), all[k as usize].to_bits());
            for (rank, value) in ranks.iter().zip(parallel.order_statistics(&ranks)) {
                prop_assert_eq!(value.to_bits(), all[*rank as usize - 1].to_bits());
            }
        }
    }

    /// The bits of `x` with −0 read as +0. Rounded samples hold both zeros (`(−0.02·3).round()`
    /// is −0), so a difference of zero can be either; selection compares with `<` and `≤`,
    /// under which they are one value, while the brute force sorts by `total_cmp` (−0 < +0).
    /// Every other value must match bit for bit.
    fn same_zero(x: f64) -> u64 {
        (x + 0.0).to_bits()
    }

    /// Samples of the shapes that stress selection: full-precision values (no ties at all),
    /// two far-apart clusters, a few huge outliers among ordinary values, heavy ties.
    fn shaped(shape: u8, values: Vec<f64>) -> Vec<f64> {
        let mut v: Vec<f64> = values
            .iter()
            .enumerate()
            .map(|(i, &u)| match shape {
                0 => u * 1000.0,
                1 => u + if i % 3 == 0 { 1e6 } else { 0.0 },
                2 if i % 17 == 5 => u.signum() * 1e300,
                2 => u,
                _ => (u * 3.0).round(),
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Selection equals sorting every difference on the shapes of `shaped`, for the
        /// ranks the judge asks for (interval ends, the median pair) and the extremes,
        /// both with the default materialisation and narrowed all the way down.
        #[test]
        fn selection_equals_brute_force_on_continuous_and_adversarial_shapes(
            canary_shape in 0u8..4,
            baseline_shape in 0u8..4,
            canary in prop::collection::vec(-1.0f64..1.0, 1..400),
            baseline in prop::collection::vec(-1.0f64..1.0, 1..400),
            tail in 0.0f64..0.5,
        ) {
            let c = shaped(canary_shape, canary);
            let b = shaped(baseline_shape, baseline);
            let d = PairwiseDifferences::new(&c, &b);
            let all = brute_force(&c, &b);
            let n = d.len();
            let ci = ((tail * n as f64) as u64).max(1);
            let ranks = [ci, n.div_ceil(2), n / 2 + 1, n - ci + 1, 1, n];
            let got = d.order_statistics(&ranks);
            for (rank, value) in ranks.iter().zip(got) {
                prop_assert_eq!(same_zero(value), same_zero(all[*rank as usize - 1]), "rank {}", rank);
            }
            let mut wanted: Vec<u64> = ranks.iter().map(|r| r - 1).collect();
            wanted.sort_unstable();
            wanted.dedup();
            let narrowed = d.select(&wanted, 0);
            for (k, value) in wanted.iter().zip(narrowed) {
                prop_assert_eq!(same_zero(value), same_zero(all[*k as usize]), "rank {}", k + 1);
            }
        }
    }

    #[test]
    fn degenerate_shapes_select_exactly() {
        let constant = vec![4.25; 700];
        let two_levels: Vec<f64> = (0..900).map(|i| f64::from(i % 2)).collect();
        let mut far_apart: Vec<f64> = (0..800)
            .map(|i| {
                if i < 400 {
                    f64::from(i) * 1e-9
                } else {
                    1e12 + f64::from(i)
                }
            })
            .collect();
        far_apart.sort_by(f64::total_cmp);
        let mut two_levels_sorted = two_levels.clone();
        two_levels_sorted.sort_by(f64::total_cmp);
        for (c, b) in [
            (&constant, &constant),
            (&constant, &two_levels_sorted),
            (&far_apart, &two_levels_sorted),
            (&far_apart, &far_apart),
        ] {
            let d = PairwiseDifferences::new(c, b);
            let all = brute_force(c, b);
            let n = d.len();
            let ranks = [1, n / 40, n / 2, n / 2 + 1, n - n / 40, n];
            for (rank, value) in ranks.iter().zip(d.order_statistics(&ranks)) {
                assert_eq!(
                    value.to_bits(),
                    all[*rank as usize - 1].to_bits(),
                    "rank {rank}"
                );
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
