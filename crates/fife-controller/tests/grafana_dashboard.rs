//! The shipped Grafana dashboard (examples/grafana/fife.json) queries only what the
//! controller exports: every `fife_…` name in every panel's PromQL is a series the metrics
//! registry (`telemetry::Metrics`, the contract docs/metrics.md describes) produces, and every
//! expression parses as PromQL (`promtool check rules` on a rules file made of them, with
//! Grafana's variables replaced by values).

use std::collections::BTreeSet;
use std::path::Path;

use fife_controller::runtime::telemetry::Metrics;
use serde_json::Value;

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/grafana/fife.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every PromQL expression in the dashboard: panel targets and query variables.
fn expressions(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            out.push(query.to_owned());
        }
    }
    out
}

/// The series names the registry exposes, from its `# TYPE` lines: a counter's samples end
/// in `_total`, a histogram's in `_bucket`, `_sum` and `_count`. Families per Rollout are
/// listed only once they hold a series, so one Rollout is recorded first.
fn exported_names() -> BTreeSet<String> {
    let metrics = Metrics::new();
    metrics.set_rollout("shop", "web", "Progressing", 10, 1);
    metrics.promoted("shop", "web", "steps");
    metrics.aborted("shop", "web", "analysis");
    metrics.rolled_back("shop", "web", "abort");
    let mut names = BTreeSet::new();
    for line in metrics.encode().lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#") || words.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn fife_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while let Some(at) = expr[i..].find("fife_") {
        let start = i + at;
        let preceded_by_word =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |n| start + n);
        if !preceded_by_word {
            names.push(expr[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[test]
fn every_metric_the_dashboard_queries_is_exported_by_the_controller() {
    let exported = exported_names();
    assert!(exported.contains("fife_aborts_total"), "{exported:?}");
    let exprs = expressions(&dashboard());
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = fife_names(expr);
        assert!(!names.is_empty(), "{expr} queries no fife_ metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "examples/grafana/fife.json queries {name}, which the controller does not export (exported: {exported:?})"
            );
            used.insert(name);
        }
    }
    // What the issue asks the dashboard to show: phase, aborts, analyses, reconcile
    // latency, audit failures, leader.
    for needed in [
        "fife_rollout_info",
        "fife_aborts_total",
        "fife_analysis_runs_total",
        "fife_reconcile_duration_seconds_bucket",
        "fife_audit_write_failures_total",
        "fife_leader",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

#[test]
fn the_name_scanner_finds_whole_names_only() {
    assert_eq!(
        fife_names("sum(rate(fife_aborts_total{x=\"my_fife_y\"}[5m])) / fife_leader"),
        ["fife_aborts_total", "fife_leader"]
    );
}

/// Grafana's variables as values PromQL accepts, for the syntax check.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__range", "1h")
        .replace("$namespace", ".*")
}

#[test]
fn every_expression_parses_as_promql() {
    let exprs: Vec<String> = expressions(&dashboard())
        .into_iter()
        .filter(|e| !e.starts_with("label_values("))
        .collect();
    let mut rules = String::from("groups:\n  - name: grafana-dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(&substitute(expr)).unwrap();
        rules.push_str(&format!(
            "      - record: fife:dashboard_panel_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, &rules).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs (scripts/install-deps.sh installs prometheus)");
    assert!(
        out.status.success(),
        "promtool rejects a dashboard expression:\n{}\n{rules}",
        String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
    );
}
