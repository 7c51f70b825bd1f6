//! Properties the judge's definitions imply, checked on random samples. Values are
//! multiples of ¼ so that the arithmetic in the properties (shifts, negation, means) is
//! exact in floating point and equalities can be asserted bit for bit.

use fife_judge::{Classification, DecisionRule, JudgeConfig, judge};
use proptest::prelude::*;

fn quarters(
    range: std::ops::Range<i32>,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(range.prop_map(|v| v as f64 / 4.0), len)
}

fn rule() -> impl Strategy<Value = DecisionRule> {
    prop_oneof![
        Just(DecisionRule::Significance),
        Just(DecisionRule::Kayenta)
    ]
}

fn mirrored(c: Classification) -> Classification {
    match c {
        Classification::High => Classification::Low,
        Classification::Low => Classification::High,
        other => other,
    }
}

proptest! {
    #[test]
    fn u_of_canary_and_baseline_add_up_to_all_pairs(
        canary in quarters(-40..40, 1..80),
        baseline in quarters(-40..40, 1..80),
    ) {
        let cfg = JudgeConfig::default();
        let forward = judge(&canary, &baseline, &cfg);
        let backward = judge(&baseline, &canary, &cfg);
        let pairs = canary.len() as f64 * baseline.len() as f64;
        prop_assert_eq!(forward.u + backward.u, pairs);
        prop_assert!((0.0..=1.0).contains(&forward.p_value));
        prop_assert!((0.0..=1.0).contains(&forward.cles));
    }

    #[test]
    fn swapping_samples_negates_shift_and_interval_and_mirrors_the_verdict(
        canary in quarters(1..400, 1..70),
        baseline in quarters(1..400, 1..70),
        rule in rule(),
        confidence in prop::sample::select(vec![0.8, 0.9, 0.95, 0.99]),
    ) {
        let cfg = JudgeConfig { rule, confidence, ..Default::default() };
        let forward = judge(&canary, &baseline, &cfg);
        let backward = judge(&baseline, &canary, &cfg);
        prop_assert_eq!(backward.shift, -forward.shift);
        prop_assert_eq!(backward.ci, [-forward.ci[1], -forward.ci[0]]);
        prop_assert_eq!(backward.p_value, forward.p_value);
        prop_assert_eq!(backward.method, forward.method);
        prop_assert_eq!(backward.classification, mirrored(forward.classification));
    }

    /// Canary values sit on a quarter offset from the baseline's integers, so a whole
    /// shift never creates or breaks a tie and the interval's rank cannot change.
    #[test]
    fn shifting_the_canary_moves_shift_and_interval_by_exactly_that(
        canary in prop::collection::vec(-50i32..50, 1..70),
        baseline in prop::collection::vec(-50i32..50, 1..70),
        c in -1000i32..1000,
    ) {
        let canary: Vec<f64> = canary.iter().map(|&v| v as f64 + 0.25).collect();
        let baseline: Vec<f64> = baseline.iter().map(|&v| v as f64).collect();
        let moved: Vec<f64> = canary.iter().map(|&v| v + c as f64).collect();
        let cfg = JudgeConfig::default();
        let before = judge(&canary, &baseline, &cfg);
        let after = judge(&moved, &baseline, &cfg);
        let c = c as f64;
        prop_assert_eq!(after.shift, before.shift + c);
        prop_assert_eq!(after.ci, [before.ci[0] + c, before.ci[1] + c]);
    }

    #[test]
    fn interval_contains_the_shift(
        canary in quarters(-100..100, 1..90),
        baseline in quarters(-100..100, 1..90),
        confidence in 0.5f64..0.999,
    ) {
        let cfg = JudgeConfig { confidence, ..Default::default() };
        let j = judge(&canary, &baseline, &cfg);
        prop_assert!(j.ci[0] <= j.shift && j.shift <= j.ci[1], "{:?}", j);
    }
}
