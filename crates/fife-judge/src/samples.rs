//! Turns raw observations into the sorted, finite samples the statistics are defined on:
//! the NaN policy, then the outlier fence, then an ascending sort.

use crate::config::{JudgeConfig, NanPolicy, OutlierPolicy};

/// One sample as the pooled test reads it: cleaned under a NaN and an outlier policy and
/// sorted ascending. Built apart from [`crate::judge_clean`] so that a caller holding each
/// sample on its own thread (the CLI parses the two files side by side) prepares each there.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanSample {
    values: Vec<f64>,
    given: usize,
    nan: NanPolicy,
    outliers: OutlierPolicy,
}

impl CleanSample {
    /// Cleans and sorts `raw` in its own buffer (no copy): non-finite values follow
    /// `config.nan_policy`, then `config.outlier_policy` applies.
    pub fn new(raw: Vec<f64>, config: &JudgeConfig) -> Self {
        let given = raw.len();
        CleanSample {
            values: clean_sorted(raw, config.nan_policy, config.outlier_policy),
            given,
            nan: config.nan_policy,
            outliers: config.outlier_policy,
        }
    }

    /// The values left, ascending.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// How many values were given before cleaning.
    pub fn given(&self) -> usize {
        self.given
    }

    /// Whether this sample was cleaned under `config`'s policies.
    pub(crate) fn cleaned_as(&self, config: &JudgeConfig) -> bool {
        self.nan == config.nan_policy && self.outliers == config.outlier_policy
    }
}

/// Applies the NaN policy and the outlier policy to one sample and returns it sorted
/// ascending, in the buffer it was given. Non-finite values (NaN, ±∞) follow the NaN
/// policy. `-0.0` becomes `0.0` so that equal values compare equal under the total order
/// used for sorting.
pub(crate) fn clean_sorted(
    mut values: Vec<f64>,
    nan: NanPolicy,
    outliers: OutlierPolicy,
) -> Vec<f64> {
    match nan {
        NanPolicy::Remove => values.retain(|v| v.is_finite()),
        NanPolicy::ReplaceWithZero => {
            for v in &mut values {
                if !v.is_finite() {
                    *v = 0.0;
                }
            }
        }
    }
    for v in &mut values {
        *v += 0.0;
    }
    let mut values = sort_total(values);
    if let OutlierPolicy::RemoveIqr { factor } = outliers
        && !values.is_empty()
    {
        let q1 = quantile_sorted(&values, 0.25);
        let q3 = quantile_sorted(&values, 0.75);
        let iqr = q3 - q1;
        let (lo, hi) = (q1 - factor * iqr, q3 + factor * iqr);
        values.retain(|&v| v >= lo && v <= hi);
    }
    values
}

/// Sorts by `f64::total_cmp`. Large samples take a least-significant-digit radix sort on
/// keys that order like `total_cmp` (11-bit digits, a pass skipped when every key shares
/// its digit, as the sign and exponent of latencies do): several times faster than a
/// comparison sort at 10⁵ values. Equal keys are equal bits, so the result is the same.
/// The keys are written over the values in the same buffer (a `map` and `collect` of a
/// vector's own items reuses its allocation): every fresh page costs a fault, and at 10⁵
/// values the faults of a second buffer cost about what a pass of the sort does.
fn sort_total(mut values: Vec<f64>) -> Vec<f64> {
    const DIGIT_BITS: u32 = 11;
    const BUCKETS: usize = 1 << DIGIT_BITS;
    if values.len() < 4096 {
        values.sort_unstable_by(f64::total_cmp);
        return values;
    }
    let key = |v: f64| {
        let bits = v.to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | 1 << 63
        }
    };
    let mut keys: Vec<u64> = values.into_iter().map(key).collect();
    let mut spare = vec![0u64; keys.len()];
    for shift in (0..64).step_by(DIGIT_BITS as usize) {
        let digit = |k: u64| ((k >> shift) as usize) & (BUCKETS - 1);
        let mut counts = [0usize; BUCKETS];
        for &k in &keys {
            counts[digit(k)] += 1;
        }
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut start = 0;
        for count in counts.iter_mut() {
            let c = *count;
            *count = start;
            start += c;
        }
        for &k in &keys {
            let d = digit(k);
            spare[counts[d]] = k;
            counts[d] += 1;
        }
        std::mem::swap(&mut keys, &mut spare);
    }
    keys.into_iter()
        .map(|k| f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k }))
        .collect()
}

/// Quantile by linear interpolation between order statistics (R type 7, numpy's default):
/// h = (len − 1)·p, value = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
pub(crate) fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let below = h.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    sorted[below] + (h - below as f64) * (sorted[above] - sorted[below])
}

/// Arithmetic mean with Neumaier's compensated sum, so that large samples of similar
/// values do not lose the digits the mean ratio depends on.
pub(crate) fn mean(values: &[f64]) -> f64 {
    let mut sum = 0.0f64;
    let mut compensation = 0.0f64;
    for &v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            compensation += (sum - t) + v;
        } else {
            compensation += (v - t) + sum;
        }
        sum = t;
    }
    (sum + compensation) / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_policy_removes_or_zeroes_non_finite_values() {
        let raw = [3.0, f64::NAN, 1.0, f64::INFINITY, -0.0];
        let removed = clean_sorted(raw.to_vec(), NanPolicy::Remove, OutlierPolicy::Keep);
        assert_eq!(removed, vec![0.0, 1.0, 3.0]);
        assert!(removed[0].is_sign_positive(), "-0.0 is normalised to 0.0");
        let zeroed = clean_sorted(
            raw.to_vec(),
            NanPolicy::ReplaceWithZero,
            OutlierPolicy::Keep,
        );
        assert_eq!(zeroed, vec![0.0, 0.0, 0.0, 1.0, 3.0]);
    }

    #[test]
    fn iqr_fence_drops_only_values_outside_it() {
        // Q1 = 2, Q3 = 4 (type 7 on 1..=5), IQR = 2, fence [-1, 7] at factor 1.5.
        let raw = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 7.5, -1.0];
        let kept = clean_sorted(
            raw.to_vec(),
            NanPolicy::Remove,
            OutlierPolicy::RemoveIqr { factor: 1.5 },
        );
        // With all eight values: Q1 = 1.75, Q3 = 5.5, IQR = 3.75, fence [-3.875, 11.125].
        assert_eq!(kept.len(), 8);
        let raw = [1.0, 2.0, 3.0, 4.0, 5.0, 100.0];
        let kept = clean_sorted(
            raw.to_vec(),
            NanPolicy::Remove,
            OutlierPolicy::RemoveIqr { factor: 1.5 },
        );
        assert_eq!(kept, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn radix_sort_orders_like_total_cmp() {
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state
        };
        let values: Vec<f64> = (0..20_000)
            .map(|i| match i % 5 {
                0 => f64::from_bits(next() >> 2) - 1e-300,
                1 => -(f64::from((next() >> 40) as u32) * 0.01),
                2 => 0.0,
                3 => f64::from((next() >> 54) as u32),
                _ => f64::from_bits(next() >> 1),
            })
            .filter(|v| v.is_finite())
            .collect();
        let mut expected = values.clone();
        expected.sort_by(f64::total_cmp);
        let values = sort_total(values);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&values), bits(&expected));
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&x, 0.25), 1.75);
        assert_eq!(quantile_sorted(&x, 0.75), 3.25);
        assert_eq!(quantile_sorted(&[5.0], 0.25), 5.0);
    }

    #[test]
    fn compensated_mean_keeps_small_digits() {
        let mut v = vec![1e16, 1.0, -1e16];
        v.extend([1.0; 7]);
        assert_eq!(mean(&v), 0.8);
    }
}
