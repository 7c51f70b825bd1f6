//! The Mann-Whitney U of the canary with mid-ranks, and the tie structure of the pooled
//! sample, from one merge of the two sorted samples (no rank array is built).

/// What the p-value needs to know about the pooled ranks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RankSummary {
    /// 2·U of the canary: an integer, because mid-ranks only add halves.
    pub twice_u: u64,
    /// Σ (t³ − t) over groups of tied pooled values.
    pub tie_term: f64,
    /// True when some pooled value occurs more than once.
    pub has_ties: bool,
}

impl RankSummary {
    pub fn u(&self) -> f64 {
        self.twice_u as f64 / 2.0
    }
}

/// U of `canary` = Σ over canary values of (#baseline below it + ½·#baseline equal to it),
/// which equals R₁ − n(n+1)/2 with mid-ranks. Both inputs sorted ascending and finite.
pub(crate) fn rank_summary(canary: &[f64], baseline: &[f64]) -> RankSummary {
    let (mut i, mut j) = (0usize, 0usize);
    let mut twice_u: u64 = 0;
    let mut tie_term: u128 = 0;
    let mut has_ties = false;
    while i < canary.len() || j < baseline.len() {
        let value = match (canary.get(i), baseline.get(j)) {
            (Some(&c), Some(&b)) => c.min(b),
            (Some(&c), None) => c,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let baseline_below = j as u64;
        let canary_start = i;
        while i < canary.len() && canary[i] == value {
            i += 1;
        }
        let baseline_start = j;
        while j < baseline.len() && baseline[j] == value {
            j += 1;
        }
        let in_canary = (i - canary_start) as u64;
        let in_baseline = (j - baseline_start) as u64;
        twice_u += in_canary * (2 * baseline_below + in_baseline);
        let t = (in_canary + in_baseline) as u128;
        if t > 1 {
            has_ties = true;
            tie_term += t * t * t - t;
        }
    }
    RankSummary {
        twice_u,
        tie_term: tie_term as f64,
        has_ties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_counts_pairs_with_half_for_ties() {
        // canary 1,3,5 vs baseline 2,3: pairs canary>baseline: 3>2, 5>2, 5>3 → 3; tie 3=3 → ½.
        let s = rank_summary(&[1.0, 3.0, 5.0], &[2.0, 3.0]);
        assert_eq!(s.u(), 3.5);
        assert!(s.has_ties);
        assert_eq!(s.tie_term, 6.0);
    }

    #[test]
    fn no_ties_and_complement() {
        let a = [0.5, 1.5, 9.0];
        let b = [0.0, 1.0, 2.0, 3.0];
        let ab = rank_summary(&a, &b);
        let ba = rank_summary(&b, &a);
        assert!(!ab.has_ties);
        assert_eq!(ab.twice_u + ba.twice_u, 2 * 12);
        assert_eq!(ab.u(), 1.0 + 2.0 + 4.0);
    }
}
