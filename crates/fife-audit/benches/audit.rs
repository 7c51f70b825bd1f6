//! Throughput of the audit trail: sealing alone, durable append (write + fsync), and verify.

use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fife_audit::*;

/// A measurement record of typical size (about 1 KiB).
fn entry(i: u64) -> AuditEntry {
    let mut e = AuditEntry::new(
        Utc.with_ymd_and_hms(2025, 3, 3, 14, 0, 0).unwrap() + chrono::Duration::seconds(i as i64),
        AuditAction::Measurement,
        Actor::controller("system:serviceaccount:fife-system:fife"),
        "latency-vs-baseline: canary not slower than baseline",
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
        image: "registry.example/checkout@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        digest: Some("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
    }];
    e.evidence.measurements = vec![MeasurementEvidence {
        metric: "latency-vs-baseline".into(),
        phase: Phase::Successful,
        queries: vec![RenderedQuery {
            role: Some("canary".into()),
            provider: "prometheus".into(),
            address: Some("http://prometheus.monitoring:9090".into()),
            query: "histogram_quantile(0.99, sum by (le, pod) (rate(http_request_duration_seconds_bucket{service=\"checkout-api\",fife_role=\"canary\"}[1m])))".into(),
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
    e
}

fn key() -> SigningKey {
    SigningKey::new(b"bench-key-0123456789abcdef".to_vec()).unwrap()
}

fn log_bytes(n: u64, key: Option<&SigningKey>) -> Vec<u8> {
    let mut head = ChainHead::genesis();
    let mut out = Vec::new();
    for i in 0..n {
        let s = seal(entry(i), &head, key);
        head = ChainHead::after(s.record.seq, &s.line);
        out.extend_from_slice(s.line.as_bytes());
        out.push(b'\n');
    }
    out
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit_append");
    group.throughput(Throughput::Elements(1));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let head = ChainHead::genesis();
    let k = key();
    group.bench_function("seal_signed", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(seal(entry(i), &head, Some(&k)))
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = AuditLog::open_file(
        &dir.path().join("audit.jsonl"),
        Some(key()),
        Actor::controller("fife"),
        Utc::now(),
    )
    .unwrap();
    group.bench_function("append_fsync_signed", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            log.append(entry(i)).unwrap()
        })
    });
    group.finish();
}

fn bench_verify(c: &mut Criterion) {
    const N: u64 = 1000;
    let mut group = c.benchmark_group("audit_verify");
    group.throughput(Throughput::Elements(N));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let unsigned = log_bytes(N, None);
    let signed = log_bytes(N, Some(&key()));
    let k = key();
    group.bench_function("verify_1000_unsigned", |b| {
        b.iter(|| verify_log(black_box(&unsigned), None).unwrap())
    });
    group.bench_function("verify_1000_signed_with_key", |b| {
        b.iter(|| verify_log(black_box(&signed), Some(&k)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_verify);
criterion_main!(benches);
