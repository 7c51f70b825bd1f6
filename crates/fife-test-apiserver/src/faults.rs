//! Fault injection for tests: a seeded share of requests fails with a chosen status,
//! every request can be delayed, and open watch streams can be cut on demand.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What to inject; all off by default. Also the body of `PUT /testkit/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultPlan {
    /// Share of API requests (0.0–1.0) that fail instead of being served.
    pub error_rate: f64,
    /// Status codes to fail with, chosen in turn by the seeded generator (500, 429, 409).
    pub error_codes: Vec<u16>,
    /// Seed for the generator, so a failing test replays the same faults.
    pub seed: u64,
    /// Added before every API request is served.
    pub latency_ms: u64,
    /// Only requests whose path and query contain this string are affected (empty: all),
    /// e.g. `watch=` to fail only watches.
    pub path_contains: String,
    /// Cut every watch stream after it has sent this many events (0: never).
    pub drop_watch_after_events: u64,
}

/// The live fault state: the plan plus the generator's position.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub plan: FaultPlan,
    state: u64,
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    pub delay: Duration,
    pub fail_with: Option<u16>,
}

impl Faults {
    pub fn new(plan: FaultPlan) -> Self {
        let state = plan.seed;
        Self { plan, state }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn decide(&mut self, path: &str) -> Injection {
        let affected =
            self.plan.path_contains.is_empty() || path.contains(&self.plan.path_contains);
        let delay = Duration::from_millis(if affected { self.plan.latency_ms } else { 0 });
        let mut fail_with = None;
        if affected && self.plan.error_rate > 0.0 && !self.plan.error_codes.is_empty() {
            let roll = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
            if roll < self.plan.error_rate {
                let i = (self.next() % self.plan.error_codes.len() as u64) as usize;
                fail_with = Some(self.plan.error_codes[i]);
            }
        }
        Injection { delay, fail_with }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: f64) -> FaultPlan {
        FaultPlan {
            error_rate: rate,
            error_codes: vec![500, 429],
            seed: 7,
            ..FaultPlan::default()
        }
    }

    #[test]
    fn same_seed_same_faults() {
        let mut a = Faults::new(plan(0.5));
        let mut b = Faults::new(plan(0.5));
        let ra: Vec<_> = (0..50).map(|_| a.decide("/api").fail_with).collect();
        let rb: Vec<_> = (0..50).map(|_| b.decide("/api").fail_with).collect();
        assert_eq!(ra, rb);
        let failures = ra.iter().filter(|f| f.is_some()).count();
        assert!(
            (10..40).contains(&failures),
            "about half should fail, got {failures}"
        );
    }

    #[test]
    fn zero_rate_and_unaffected_paths_never_fail() {
        let mut f = Faults::new(plan(0.0));
        assert!((0..100).all(|_| f.decide("/api").fail_with.is_none()));
        let mut f = Faults::new(FaultPlan {
            path_contains: "deployments".into(),
            ..plan(1.0)
        });
        assert!(f.decide("/api/v1/configmaps").fail_with.is_none());
        assert!(f.decide("/apis/apps/v1/deployments").fail_with.is_some());
    }
}
