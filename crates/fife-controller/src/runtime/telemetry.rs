//! The controller's own metrics, prefixed `fife_`, in one prometheus-client registry:
//! what people alert on (rollbacks, audit write failures, long pauses) and what operators
//! tune by (reconcile duration and errors per pipeline step, leadership). The names, types
//! and labels are a contract (docs/alerting.md); two of its rules live here:
//!
//! - counters exist at 0 before their first increment: the label sets known at start
//!   (`phase`, `step`) when the registry is built, a rollout's outcome counters when it is
//!   first seen, so `increase()` sees the first abort;
//! - only the leader counts: on losing the lease every per-rollout series goes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// `reason` of `fife_promotions_total`: every step passed, or a person promoted.
pub const PROMOTION_REASONS: [&str; 2] = ["steps", "manual"];
/// `reason` of `fife_aborts_total`.
pub const ABORT_REASONS: [&str; 3] = ["analysis", "progressDeadline", "manual"];
/// `reason` of `fife_rollbacks_total`: after an abort, or the template set back to stable.
pub const ROLLBACK_REASONS: [&str; 2] = ["abort", "spec"];
/// `phase` of `fife_analysis_runs_total` (run phases) and `fife_measurements_total`.
pub const ANALYSIS_PHASES: [&str; 4] = ["Successful", "Failed", "Inconclusive", "Error"];
/// `outcome` of `fife_gate_outcomes_total`.
pub const GATE_OUTCOMES: [&str; 3] = ["Passed", "Blocked", "Bypassed"];
/// `step` of `fife_reconcile_errors_total`: the pipeline steps that can fail.
pub const RECONCILE_STEPS: [&str; 5] = ["observe", "record", "build", "act", "report"];

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// 1 for the current phase of each rollout (`namespace`, `rollout`, `phase`).
    rollout_info: Family<Labels, Gauge>,
    canary_weight: Family<Labels, Gauge>,
    /// The current step, counted from 0.
    rollout_step: Family<Labels, Gauge>,
    promotions: Family<Labels, Counter>,
    aborts: Family<Labels, Counter>,
    rollbacks: Family<Labels, Counter>,
    analysis_runs: Family<Labels, Counter>,
    measurements: Family<Labels, Counter>,
    reconcile_duration: Histogram,
    reconcile_errors: Family<Labels, Counter>,
    /// Time a change waited at a release gate, by `tier` and `gate`.
    gate_wait: Family<Labels, Histogram, fn() -> Histogram>,
    /// Release gate outcomes, by `gate` and `outcome`.
    gate_outcomes: Family<Labels, Counter>,
    /// Break-glass uses, by `namespace` and `rollout`: the alert rules page on it.
    break_glass: Family<Labels, Counter>,
    audit_records: Counter,
    audit_write_failures: Counter,
    leader: Gauge,
    /// Whether `leader` was last set to 1, to notice losing the lease.
    leading: AtomicBool,
    /// The phase label each rollout was last exported with, so the old series goes away.
    last_phase: Mutex<HashMap<(String, String), String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fife");
        let m = Metrics {
            rollout_info: Family::default(),
            canary_weight: Family::default(),
            rollout_step: Family::default(),
            promotions: Family::default(),
            aborts: Family::default(),
            rollbacks: Family::default(),
            analysis_runs: Family::default(),
            measurements: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            reconcile_errors: Family::default(),
            gate_wait: Family::new_with_constructor(gate_wait_histogram),
            gate_outcomes: Family::default(),
            break_glass: Family::default(),
            audit_records: Counter::default(),
            audit_write_failures: Counter::default(),
            leader: Gauge::default(),
            leading: AtomicBool::new(false),
            last_phase: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "rollout_info",
            "Phase of each rollout (value 1)",
            m.rollout_info.clone(),
        );
        registry.register(
            "rollout_canary_weight",
            "Canary traffic weight in percent",
            m.canary_weight.clone(),
        );
        registry.register(
            "rollout_step",
            "Index of the step being executed",
            m.rollout_step.clone(),
        );
        registry.register(
            "promotions",
            "Rollouts promoted, by reason",
            m.promotions.clone(),
        );
        registry.register("aborts", "Rollouts aborted, by reason", m.aborts.clone());
        registry.register(
            "rollbacks",
            "Rollouts rolled back, by reason",
            m.rollbacks.clone(),
        );
        registry.register(
            "analysis_runs",
            "Analysis runs completed, by phase",
            m.analysis_runs.clone(),
        );
        registry.register(
            "measurements",
            "Measurements taken, by phase",
            m.measurements.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile of a Rollout took",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by pipeline step",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "gate_wait_seconds",
            "Time a change waited at a release gate, by tier and gate",
            m.gate_wait.clone(),
        );
        registry.register(
            "gate_outcomes",
            "Release gate outcomes, by gate and outcome",
            m.gate_outcomes.clone(),
        );
        registry.register(
            "break_glass_uses",
            "Break-glasses that let a change past a freeze or approvals, by rollout",
            m.break_glass.clone(),
        );
        registry.register(
            "audit_records_written",
            "Audit records made durable",
            m.audit_records.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit appends that failed; the action was not applied",
            m.audit_write_failures.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            m.leader.clone(),
        );
        for phase in ANALYSIS_PHASES {
            // get_or_create creates the series; the guard it returns is not needed.
            drop(m.analysis_runs.get_or_create(&phase_labels(phase)));
            drop(m.measurements.get_or_create(&phase_labels(phase)));
        }
        for step in RECONCILE_STEPS {
            drop(m.reconcile_errors.get_or_create(&step_labels(step)));
        }
        for gate in fife_api::release::ReleaseGate::ALL {
            for outcome in GATE_OUTCOMES {
                drop(m.gate_outcomes.get_or_create(&vec![
                    ("gate", fife_api::wire::wire_name(&gate)),
                    ("outcome", outcome.to_owned()),
                ]));
            }
        }
        Metrics { registry, ..m }
    }

    /// The text exposition format for `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn set_rollout(&self, namespace: &str, name: &str, phase: &str, weight: i32, step: i32) {
        let key = (namespace.to_owned(), name.to_owned());
        let mut last = self.last_phase.lock().unwrap_or_else(|e| e.into_inner());
        match last.insert(key, phase.to_owned()) {
            Some(old) if old != phase => {
                self.rollout_info
                    .remove(&rollout_labels(namespace, name, Some(&old)));
            }
            Some(_) => {}
            None => self.outcome_counters_at_zero(namespace, name),
        }
        self.rollout_info
            .get_or_create(&rollout_labels(namespace, name, Some(phase)))
            .set(1);
        self.canary_weight
            .get_or_create(&rollout_labels(namespace, name, None))
            .set(weight.into());
        self.rollout_step
            .get_or_create(&rollout_labels(namespace, name, None))
            .set(step.into());
    }

    /// Every outcome counter of a rollout, at 0 unless it already counts.
    fn outcome_counters_at_zero(&self, namespace: &str, name: &str) {
        let counters = [
            (&self.promotions, &PROMOTION_REASONS[..]),
            (&self.aborts, &ABORT_REASONS[..]),
            (&self.rollbacks, &ROLLBACK_REASONS[..]),
        ];
        for (family, reasons) in counters {
            for reason in reasons {
                drop(family.get_or_create(&outcome_labels(namespace, name, reason)));
            }
        }
    }

    /// Forgets a deleted rollout's series.
    pub fn forget_rollout(&self, namespace: &str, name: &str) {
        let mut last = self.last_phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = last.remove(&(namespace.to_owned(), name.to_owned())) {
            self.rollout_info
                .remove(&rollout_labels(namespace, name, Some(&old)));
        }
        self.canary_weight
            .remove(&rollout_labels(namespace, name, None));
        self.rollout_step
            .remove(&rollout_labels(namespace, name, None));
        let counters = [
            (&self.promotions, &PROMOTION_REASONS[..]),
            (&self.aborts, &ABORT_REASONS[..]),
            (&self.rollbacks, &ROLLBACK_REASONS[..]),
        ];
        for (family, reasons) in counters {
            for reason in reasons {
                family.remove(&outcome_labels(namespace, name, reason));
            }
        }
        self.break_glass
            .remove(&rollout_labels(namespace, name, None));
    }

    /// A release gate's verdict on a change.
    pub fn gate_outcome(&self, gate: &str, outcome: &str) {
        self.gate_outcomes
            .get_or_create(&vec![
                ("gate", gate.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// A gate stopped holding a change after `seconds`.
    pub fn gate_waited(&self, tier: &str, gate: &str, seconds: f64) {
        self.gate_wait
            .get_or_create(&vec![("tier", tier.to_owned()), ("gate", gate.to_owned())])
            .observe(seconds);
    }

    /// A break-glass let a change of `namespace/name` through.
    pub fn break_glass_used(&self, namespace: &str, name: &str) {
        self.break_glass
            .get_or_create(&rollout_labels(namespace, name, None))
            .inc();
    }

    /// `namespace/name` is governed by a release policy: its break-glass counter exists at
    /// 0 from now on, so the first use is an increase an alert sees.
    pub fn governed(&self, namespace: &str, name: &str) {
        drop(
            self.break_glass
                .get_or_create(&rollout_labels(namespace, name, None)),
        );
    }

    /// A canary revision of `namespace/name` became stable.
    pub fn promoted(&self, namespace: &str, name: &str, reason: &str) {
        self.outcome(&self.promotions, namespace, name, reason);
    }

    pub fn aborted(&self, namespace: &str, name: &str, reason: &str) {
        self.outcome(&self.aborts, namespace, name, reason);
    }

    pub fn rolled_back(&self, namespace: &str, name: &str, reason: &str) {
        self.outcome(&self.rollbacks, namespace, name, reason);
    }

    fn outcome(&self, family: &Family<Labels, Counter>, namespace: &str, name: &str, reason: &str) {
        // A rollout's first outcome can come in the reconcile that first sees it; its
        // siblings start at 0 all the same.
        let first = !self
            .last_phase
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(namespace.to_owned(), name.to_owned()));
        if first {
            self.outcome_counters_at_zero(namespace, name);
        }
        family
            .get_or_create(&outcome_labels(namespace, name, reason))
            .inc();
    }

    pub fn analysis_completed(&self, phase: &str) {
        self.analysis_runs.get_or_create(&phase_labels(phase)).inc();
    }

    pub fn measured(&self, phase: &str) {
        self.measurements.get_or_create(&phase_labels(phase)).inc();
    }

    pub fn reconciled(&self, seconds: f64) {
        self.reconcile_duration.observe(seconds);
    }

    pub fn reconcile_failed(&self, step: &str) {
        self.reconcile_errors
            .get_or_create(&step_labels(step))
            .inc();
    }

    pub fn audit_written(&self) {
        self.audit_records.inc();
    }

    pub fn audit_failed(&self) {
        self.audit_write_failures.inc();
    }

    /// Sets `fife_leader`. A replica that stops leading drops every per-rollout series:
    /// the new leader counts from here, and summing over pods counts nothing twice.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
        let was_leading = self.leading.swap(leading, Ordering::Relaxed);
        if was_leading && !leading {
            self.last_phase
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            self.rollout_info.clear();
            self.canary_weight.clear();
            self.rollout_step.clear();
            self.promotions.clear();
            self.aborts.clear();
            self.rollbacks.clear();
        }
    }
}

fn outcome_labels(namespace: &str, name: &str, reason: &str) -> Labels {
    vec![
        ("namespace", namespace.to_owned()),
        ("rollout", name.to_owned()),
        ("reason", reason.to_owned()),
    ]
}

fn phase_labels(phase: &str) -> Labels {
    vec![("phase", phase.to_owned())]
}

fn step_labels(step: &str) -> Labels {
    vec![("step", step.to_owned())]
}

/// Gate waits run from seconds (a verification) to days (a weekend freeze).
fn gate_wait_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 10))
}

fn rollout_labels(namespace: &str, name: &str, phase: Option<&str>) -> Labels {
    let mut labels = vec![
        ("namespace", namespace.to_owned()),
        ("rollout", name.to_owned()),
    ];
    if let Some(phase) = phase {
        labels.push(("phase", phase.to_owned()));
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_prefixed_and_a_phase_change_replaces_the_info_series() {
        let m = Metrics::new();
        m.set_rollout("shop", "web", "Progressing", 20, 1);
        m.set_rollout("shop", "web", "Paused", 20, 2);
        m.rolled_back("shop", "web", "abort");
        m.audit_failed();
        let text = m.encode();
        assert!(
            text.contains(r#"fife_rollout_info{namespace="shop",rollout="web",phase="Paused"} 1"#),
            "{text}"
        );
        assert!(!text.contains("Progressing"), "{text}");
        assert!(
            text.contains(r#"fife_rollout_step{namespace="shop",rollout="web"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"fife_rollbacks_total{namespace="shop",rollout="web",reason="abort"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("fife_audit_write_failures_total 1"), "{text}");
        m.forget_rollout("shop", "web");
        assert!(!m.encode().contains("rollout=\"web\""));
    }

    #[test]
    fn counters_exist_at_zero_before_their_first_increment() {
        let m = Metrics::new();
        let text = m.encode();
        for phase in ANALYSIS_PHASES {
            assert!(
                text.contains(&format!("fife_analysis_runs_total{{phase=\"{phase}\"}} 0")),
                "{text}"
            );
            assert!(
                text.contains(&format!("fife_measurements_total{{phase=\"{phase}\"}} 0")),
                "{text}"
            );
        }
        for step in RECONCILE_STEPS {
            assert!(
                text.contains(&format!("fife_reconcile_errors_total{{step=\"{step}\"}} 0")),
                "{text}"
            );
        }
        m.set_rollout("shop", "web", "Progressing", 10, 0);
        let text = m.encode();
        for reason in ABORT_REASONS {
            assert!(
                text.contains(&format!(
                    "fife_aborts_total{{namespace=\"shop\",rollout=\"web\",reason=\"{reason}\"}} 0"
                )),
                "{text}"
            );
        }
        assert!(
            text.contains(
                r#"fife_promotions_total{namespace="shop",rollout="web",reason="steps"} 0"#
            )
        );
        assert!(
            text.contains(
                r#"fife_rollbacks_total{namespace="shop",rollout="web",reason="spec"} 0"#
            )
        );
    }

    #[test]
    fn an_outcome_in_the_first_reconcile_still_brings_its_siblings_at_zero() {
        let m = Metrics::new();
        m.aborted("shop", "cart", "analysis");
        let text = m.encode();
        assert!(
            text.contains(
                r#"fife_aborts_total{namespace="shop",rollout="cart",reason="analysis"} 1"#
            )
        );
        assert!(
            text.contains(
                r#"fife_aborts_total{namespace="shop",rollout="cart",reason="manual"} 0"#
            )
        );
    }

    #[test]
    fn a_replica_that_loses_the_lease_exports_no_rollout_series() {
        let m = Metrics::new();
        m.set_leader(true);
        m.set_rollout("shop", "web", "Progressing", 10, 0);
        m.aborted("shop", "web", "analysis");
        m.set_leader(true);
        assert!(m.encode().contains("rollout=\"web\""));
        m.set_leader(false);
        let text = m.encode();
        assert!(!text.contains("rollout=\"web\""), "{text}");
        assert!(text.contains("fife_leader 0"), "{text}");
        // Leading again, the rollout's counters start over at 0 when it is next seen.
        m.set_leader(true);
        m.set_rollout("shop", "web", "Progressing", 10, 0);
        assert!(
            m.encode().contains(
                r#"fife_aborts_total{namespace="shop",rollout="web",reason="analysis"} 0"#
            )
        );
    }
}
