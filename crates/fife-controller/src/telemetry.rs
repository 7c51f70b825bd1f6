//! The controller's own metrics, prefixed `fife_`, in one prometheus-client registry:
//! what people alert on (rollbacks, audit write failures, long pauses) and what operators
//! tune by (reconcile duration and errors per pipeline step, leadership).

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

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
    audit_records: Counter,
    audit_write_failures: Counter,
    leader: Gauge,
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
            audit_records: Counter::default(),
            audit_write_failures: Counter::default(),
            leader: Gauge::default(),
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
        if let Some(old) = last.insert(key, phase.to_owned())
            && old != phase
        {
            self.rollout_info
                .remove(&rollout_labels(namespace, name, Some(&old)));
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
    }

    pub fn promoted(&self, reason: &str) {
        self.promotions
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    pub fn aborted(&self, reason: &str) {
        self.aborts
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    pub fn rolled_back(&self, reason: &str) {
        self.rollbacks
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    pub fn analysis_completed(&self, phase: &str) {
        self.analysis_runs
            .get_or_create(&vec![("phase", phase.to_owned())])
            .inc();
    }

    pub fn measured(&self, phase: &str) {
        self.measurements
            .get_or_create(&vec![("phase", phase.to_owned())])
            .inc();
    }

    pub fn reconciled(&self, seconds: f64) {
        self.reconcile_duration.observe(seconds);
    }

    pub fn reconcile_failed(&self, step: &str) {
        self.reconcile_errors
            .get_or_create(&vec![("step", step.to_owned())])
            .inc();
    }

    pub fn audit_written(&self) {
        self.audit_records.inc();
    }

    pub fn audit_failed(&self) {
        self.audit_write_failures.inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
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
        m.rolled_back("analysis");
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
            text.contains(r#"fife_rollbacks_total{reason="analysis"} 1"#),
            "{text}"
        );
        assert!(text.contains("fife_audit_write_failures_total 1"), "{text}");
        m.forget_rollout("shop", "web");
        assert!(!m.encode().contains("rollout=\"web\""));
    }
}
