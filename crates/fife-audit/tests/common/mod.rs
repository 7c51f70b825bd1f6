//! Builders of realistic entries and chains for the integration tests.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use fife_audit::*;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 14, 0, 0).unwrap()
}

pub fn key() -> SigningKey {
    SigningKey::new(b"audit-test-key-0123456789".to_vec()).unwrap()
}

/// The entry for the `i`-th decision of a canary rollout of shop/checkout-api.
pub fn mk_entry(i: u64) -> AuditEntry {
    let actions = [
        AuditAction::StepStarted,
        AuditAction::WeightChanged,
        AuditAction::AnalysisStarted,
        AuditAction::Measurement,
        AuditAction::AnalysisCompleted,
        AuditAction::Promoted,
    ];
    let action = actions[(i as usize) % actions.len()];
    let mut e = AuditEntry::new(
        t0() + Duration::seconds(i as i64 * 30),
        action,
        Actor::controller("system:serviceaccount:fife-system:fife"),
        format!("decision {i}"),
    );
    e.rollout = Some(RolloutRef {
        namespace: "shop".into(),
        name: "checkout-api".into(),
        uid: "4f6c1b2e-0000-4000-8000-000000000001".into(),
    });
    e.generation = Some(7);
    e.revision = Some("6d5f8c9b7".into());
    e.images = vec![ImageRef {
        container: "app".into(),
        image: "registry.example/checkout@sha256:abc123".into(),
        digest: Some("sha256:abc123".into()),
    }];
    e.source
        .insert("fife.dev/commit-sha".into(), "9f1c2d3".into());
    e.evidence.weights = Some(Weights {
        stable: 90,
        canary: 5,
        baseline: 5,
    });
    if action == AuditAction::Measurement {
        e.evidence.measurements = vec![MeasurementEvidence {
            metric: "latency-vs-baseline".into(),
            phase: Phase::Successful,
            queries: vec![RenderedQuery {
                role: Some("canary".into()),
                provider: "prometheus".into(),
                address: Some("http://prometheus:9090".into()),
                query: "histogram_quantile(0.99, x{fife_role=\"canary\"})".into(),
            }],
            threshold: None,
            comparison: Some(ComparisonEvidence {
                test: "mannWhitney".into(),
                direction: "increase".into(),
                confidence: 0.95,
                allowed_increase: Some(1.1),
                allowed_decrease: None,
                min_samples: 50,
                canary_samples: 120,
                baseline_samples: 118,
                u: Some(7012.5),
                p_value: Some(0.4213),
                p_method: Some("asymptotic".into()),
                shift: Some(-0.0012),
                ci_low: Some(-0.004),
                ci_high: Some(0.0021),
                classification: "Pass".into(),
                summary: None,
                pods: None,
            }),
            message: None,
        }];
    }
    e
}

/// A log of `n` records, signed when `key` is given.
pub fn mk_log(n: u64, key: Option<&SigningKey>) -> String {
    let mut head = ChainHead::genesis();
    let mut out = String::new();
    for i in 0..n {
        let sealed = seal(mk_entry(i), &head, key);
        head = ChainHead::after(sealed.record.seq, &sealed.line);
        out.push_str(&sealed.line);
        out.push('\n');
    }
    out
}

pub fn lines(log: &str) -> Vec<String> {
    log.lines().map(str::to_string).collect()
}

pub fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}
