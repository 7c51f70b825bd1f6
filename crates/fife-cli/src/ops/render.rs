//! Pure rendering of what `get rollout` and `list rollouts` show: a Rollout, its
//! Deployments and its current AnalysisRun become text. No I/O, no clock (ages take `now`),
//! so every layout is pinned by a plain test.
//!
//! ```text
//!  header (phase, step, weights, images, replicas)
//!  tree:  Rollout ─┬─ Deployments (stable, canary, baseline)
//!                  └─ AnalysisRun ─ metrics ─ measurements
//! ```

use std::fmt::Write as _;

use fife_api::analysis_run::{Classification, Judgement};
use fife_api::labels::{REVISION_LABEL, Role};
use fife_api::rollout::PauseReason;
use fife_api::{AnalysisPhase, AnalysisRun, MeasurementPhase, MetricResult, Rollout, RolloutPhase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

/// Whether to colour the output: only for a terminal, and never with `NO_COLOR` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Palette {
    pub color: bool,
}

#[derive(Debug, Clone, Copy)]
enum Tone {
    Good,
    Busy,
    Bad,
    Quiet,
}

impl Palette {
    fn paint(self, tone: Tone, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Busy => "33",
            Tone::Bad => "31",
            Tone::Quiet => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// `✔ Healthy`, `◌ Progressing`, `॥ Paused`, `✖ Degraded`; `? Unknown` before the
/// controller has written a status.
pub fn phase_label(phase: Option<RolloutPhase>) -> &'static str {
    match phase {
        Some(RolloutPhase::Healthy) => "✔ Healthy",
        Some(RolloutPhase::Progressing) => "◌ Progressing",
        Some(RolloutPhase::Paused) => "॥ Paused",
        Some(RolloutPhase::Degraded) => "✖ Degraded",
        None => "? Unknown",
    }
}

fn phase_tone(phase: Option<RolloutPhase>) -> Tone {
    match phase {
        Some(RolloutPhase::Healthy) => Tone::Good,
        Some(RolloutPhase::Progressing | RolloutPhase::Paused) => Tone::Busy,
        Some(RolloutPhase::Degraded) => Tone::Bad,
        None => Tone::Quiet,
    }
}

fn analysis_label(phase: Option<AnalysisPhase>) -> (&'static str, Tone) {
    match phase {
        Some(AnalysisPhase::Successful) => ("✔ Successful", Tone::Good),
        Some(AnalysisPhase::Running) => ("◌ Running", Tone::Busy),
        Some(AnalysisPhase::Pending) | None => ("◌ Pending", Tone::Busy),
        Some(AnalysisPhase::Inconclusive) => ("? Inconclusive", Tone::Busy),
        Some(AnalysisPhase::Error) => ("⚠ Error", Tone::Bad),
        Some(AnalysisPhase::Failed) => ("✖ Failed", Tone::Bad),
    }
}

fn measurement_symbol(phase: MeasurementPhase) -> (&'static str, Tone) {
    match phase {
        MeasurementPhase::Running => ("◌", Tone::Busy),
        MeasurementPhase::Successful => ("✔", Tone::Good),
        MeasurementPhase::Failed => ("✖", Tone::Bad),
        MeasurementPhase::Inconclusive => ("?", Tone::Busy),
        MeasurementPhase::Error => ("⚠", Tone::Bad),
    }
}

/// The canary weight the current step asks for: the last `setWeight` at or before it,
/// 100 once every step is done, 0 after an abort.
pub fn set_weight(rollout: &Rollout) -> Option<i32> {
    let status = rollout.status.as_ref()?;
    if status.abort {
        return Some(0);
    }
    let index = status.current_step_index.filter(|i| *i >= 0)?;
    let resolved = fife_engine::rollout::resolve(rollout, &fife_engine::Observed::default());
    let steps = resolved.spec.steps();
    if usize::try_from(index).is_ok_and(|i| i >= steps.len()) {
        return Some(100);
    }
    Some(fife_engine::weight_at(steps, index))
}

/// Where a Deployment stands, from its spec and status.
fn deployment_state(d: &Deployment) -> (&'static str, Tone, i32, i32) {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.as_ref();
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let observed = status.and_then(|s| s.observed_generation) >= d.metadata.generation;
    if desired == 0 {
        ("• ScaledDown", Tone::Quiet, ready, desired)
    } else if ready >= desired && observed {
        ("✔ Healthy", Tone::Good, ready, desired)
    } else {
        ("◌ Progressing", Tone::Busy, ready, desired)
    }
}

/// A Deployment's role: its role label, or else its name (a child made before the label).
fn role_of(rollout: &str, d: &Deployment) -> Option<Role> {
    Role::of_labels(d.labels()).or_else(|| Role::of_child_name(rollout, &d.name_any()))
}

/// The Rollout's Deployments in role order (stable, canary, baseline); others dropped.
fn by_role<'a>(
    rollout: &str,
    deployments: &'a [Deployment],
) -> Vec<(&'static str, &'a Deployment)> {
    let mut found: Vec<_> = deployments
        .iter()
        .filter_map(|d| role_of(rollout, d).map(|role| (role, d)))
        .collect();
    found.sort_by_key(|(role, _)| *role);
    found
        .into_iter()
        .map(|(role, d)| (role.as_str(), d))
        .collect()
}

fn images_of(d: &Deployment) -> Vec<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Each image with the roles running it; the Rollout's template stands in as `desired`
/// before any Deployment exists.
fn images(
    rollout: &Rollout,
    deployments: &[(&'static str, &Deployment)],
) -> Vec<(String, Vec<&'static str>)> {
    fn add(images: &mut Vec<(String, Vec<&'static str>)>, image: String, role: &'static str) {
        match images.iter_mut().find(|(i, _)| *i == image) {
            Some((_, roles)) => roles.push(role),
            None => images.push((image, vec![role])),
        }
    }
    let mut images: Vec<(String, Vec<&'static str>)> = Vec::new();
    for (role, d) in deployments {
        if d.spec.as_ref().and_then(|s| s.replicas) == Some(0) {
            continue;
        }
        for image in images_of(d) {
            add(&mut images, image, role);
        }
    }
    if images.is_empty() {
        let template = rollout.spec.template.as_ref().and_then(|t| t.spec.as_ref());
        for image in template
            .into_iter()
            .flat_map(|p| p.containers.iter().filter_map(|c| c.image.clone()))
        {
            add(&mut images, image, "desired");
        }
    }
    images
}

/// Everything `get rollout` prints, as one string.
pub fn rollout_tree(
    rollout: &Rollout,
    deployments: &[Deployment],
    analysis_run: Option<&AnalysisRun>,
    palette: Palette,
) -> String {
    let mut out = String::new();
    let name = rollout.name_any();
    let status = rollout.status.clone().unwrap_or_default();
    let phase = status.phase;
    let field = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "{:<15}{value}", format!("{label}:"));
    };

    field(&mut out, "Name", &name);
    field(
        &mut out,
        "Namespace",
        &rollout.namespace().unwrap_or_default(),
    );
    field(
        &mut out,
        "Status",
        &palette.paint(phase_tone(phase), phase_label(phase)),
    );
    if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
        field(&mut out, "Message", message);
    }
    for pause in &status.pause_conditions {
        let why = match pause.reason {
            PauseReason::PauseStep => "pause step",
            PauseReason::InconclusiveAnalysis => {
                "inconclusive analysis: `kubectl fife promote` or `abort`"
            }
            PauseReason::UserPause => "paused by a person: `kubectl fife resume`",
        };
        field(
            &mut out,
            "Paused",
            &format!("{why} (since {})", pause.start_time.0),
        );
    }
    let steps = fife_engine::rollout::resolve(rollout, &fife_engine::Observed::default())
        .spec
        .steps()
        .len();
    let step = status.step_label.clone().or_else(|| {
        status
            .current_step_index
            .map(|i| fife_api::rollout::step_label(i, steps))
    });
    field(&mut out, "Step", step.as_deref().unwrap_or("-"));
    let set = set_weight(rollout).map_or("-".to_owned(), |w| w.to_string());
    field(&mut out, "Set weight", &set);
    let actual = status.weights.map_or("-".to_owned(), |w| {
        format!(
            "{} (stable {} · canary {} · baseline {})",
            w.canary, w.stable, w.canary, w.baseline
        )
    });
    field(&mut out, "Actual weight", &actual);

    let children = by_role(&name, deployments);
    let images = images(rollout, &children);
    for (i, (image, roles)) in images.iter().enumerate() {
        let pin = if image.contains("@sha256:") {
            String::new()
        } else {
            palette.paint(Tone::Bad, " not pinned by digest")
        };
        let line = format!("{image} ({}){pin}", roles.join(", "));
        if i == 0 {
            field(&mut out, "Images", &line);
        } else {
            let _ = writeln!(out, "{:<15}{line}", "");
        }
    }
    let ready = status.ready_label.clone().unwrap_or_else(|| {
        fife_api::rollout::ready_label(status.ready_replicas, rollout.spec.replicas)
    });
    field(&mut out, "Ready", &ready);

    let mut rows: Vec<Row> = Vec::new();
    let revisions = match (&status.stable_revision, &status.canary_revision) {
        (Some(s), Some(c)) if s != c => format!("stable {s} · canary {c}"),
        (Some(s), _) => format!("stable {s}"),
        (None, Some(c)) => format!("canary {c}"),
        (None, None) => String::new(),
    };
    rows.push(Row {
        prefix: String::new(),
        name: format!("⟳ {name}"),
        kind: "Rollout",
        status: palette.paint(phase_tone(phase), phase_label(phase)),
        status_width: phase_label(phase).chars().count(),
        info: revisions,
    });
    let has_run = analysis_run.is_some();
    for (i, (_, d)) in children.iter().enumerate() {
        let last = i + 1 == children.len() && !has_run;
        let (label, tone, ready, desired) = deployment_state(d);
        let revision = d.labels().get(REVISION_LABEL).cloned();
        let mut info = format!("ready {ready}/{desired}");
        if let Some(revision) = revision {
            info = format!("rev {revision} · {info}");
        }
        rows.push(Row {
            prefix: branch(last).to_owned(),
            name: format!("□ {}", d.name_any()),
            kind: "Deployment",
            status: palette.paint(tone, label),
            status_width: label.chars().count(),
            info,
        });
    }
    if let Some(run) = analysis_run {
        let run_status = run.status.clone().unwrap_or_default();
        let (label, tone) = analysis_label(run_status.phase);
        rows.push(Row {
            prefix: branch(true).to_owned(),
            name: format!("α {}", run.name_any()),
            kind: "AnalysisRun",
            status: palette.paint(tone, label),
            status_width: label.chars().count(),
            info: run_status.message.clone().unwrap_or_default(),
        });
        let metrics = &run_status.metric_results;
        for (i, metric) in metrics.iter().enumerate() {
            let last_metric = i + 1 == metrics.len();
            metric_rows(&mut rows, metric, last_metric, palette);
        }
    }

    out.push('\n');
    write_rows(&mut out, &rows);
    out
}

fn branch(last: bool) -> &'static str {
    if last { "└──" } else { "├──" }
}

fn metric_rows(rows: &mut Vec<Row>, metric: &MetricResult, last: bool, palette: Palette) {
    let (label, tone) = analysis_label(Some(metric.phase));
    let mut info = format!(
        "{} measured · ✔ {} ✖ {} ? {} ⚠ {}",
        metric.count, metric.successful, metric.failed, metric.inconclusive, metric.error
    );
    if metric.dry_run {
        info.push_str(" · dry run");
    }
    rows.push(Row {
        prefix: format!("    {}", branch(last)),
        name: format!("⊞ {}", metric.name),
        kind: "Metric",
        status: palette.paint(tone, label),
        status_width: label.chars().count(),
        info,
    });
    let trunk = if last { "    " } else { "│   " };
    let shown = metric.measurements.len();
    let first_number = usize::try_from(metric.count)
        .unwrap_or(shown)
        .saturating_sub(shown)
        + 1;
    for (j, m) in metric.measurements.iter().enumerate() {
        let (symbol, tone) = measurement_symbol(m.phase);
        let detail = match (&m.judgement, &m.value) {
            (Some(judgement), _) => judgement_line(judgement),
            (None, Some(value)) => value.clone(),
            (None, None) => String::new(),
        };
        let detail = match (&m.message, m.phase) {
            (Some(message), MeasurementPhase::Error) => {
                format!("{detail} {message}").trim().to_owned()
            }
            _ => detail,
        };
        rows.push(Row {
            prefix: format!("    {trunk}{}", branch(j + 1 == shown)),
            name: format!("#{}", first_number + j),
            kind: "",
            status: palette.paint(tone, symbol),
            status_width: symbol.chars().count(),
            info: detail,
        });
    }
}

/// `High: shift +0.012 (95% CI +0.008…+0.016), p=0.0012, n 60/60`.
pub fn judgement_line(j: &Judgement) -> String {
    let class = match j.classification {
        Classification::Pass => "Pass",
        Classification::High => "High",
        Classification::Low => "Low",
        Classification::NoData => "NoData",
    };
    let mut parts = Vec::new();
    if let Some(shift) = j.shift {
        let mut s = format!("shift {}", signed(shift));
        if let Some(ci) = j.ci {
            let level = (ci.level * 100.0).round();
            let _ = write!(
                s,
                " ({level}% CI {}…{})",
                signed(ci.lower),
                signed(ci.upper)
            );
        }
        parts.push(s);
    }
    if let Some(p) = j.p_value {
        parts.push(if p < 0.0001 {
            "p<0.0001".to_owned()
        } else {
            format!("p={}", number(p))
        });
    }
    parts.push(format!("n {}/{}", j.n_canary, j.n_baseline));
    format!("{class}: {}", parts.join(", "))
}

/// A number with at most four decimals and no trailing zeros.
fn number(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-4) {
        return format!("{x:.2e}");
    }
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn signed(x: f64) -> String {
    let n = number(x);
    if x > 0.0 { format!("+{n}") } else { n }
}

/// One line of the tree: `prefix name`, kind, status, info, in aligned columns.
struct Row {
    prefix: String,
    name: String,
    kind: &'static str,
    status: String,
    /// Width of the status without colour codes.
    status_width: usize,
    info: String,
}

fn write_rows(out: &mut String, rows: &[Row]) {
    let width = |r: &Row| r.prefix.chars().count() + r.name.chars().count();
    let name_width = rows.iter().map(width).max().unwrap_or(0).max(4) + 2;
    let status_width = rows
        .iter()
        .map(|r| r.status_width)
        .max()
        .unwrap_or(0)
        .max(6)
        + 2;
    let _ = writeln!(
        out,
        "{:<name_width$}{:<13}{:<status_width$}INFO",
        "NAME", "KIND", "STATUS"
    );
    for r in rows {
        let pad_name = " ".repeat(name_width - width(r));
        let pad_status = " ".repeat(status_width - r.status_width);
        let line = format!(
            "{}{}{pad_name}{:<13}{}{pad_status}{}",
            r.prefix, r.name, r.kind, r.status, r.info
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The table `list rollouts` prints: like `kubectl get rollouts`, with the phase symbol.
/// `now` is seconds since the epoch, for the AGE column.
pub fn rollout_table(rollouts: &[Rollout], now: i64, palette: Palette) -> String {
    let headers = ["NAME", "PHASE", "STEP", "WEIGHT", "READY", "AGE", "MESSAGE"];
    let rows: Vec<([String; 7], Option<RolloutPhase>)> = rollouts
        .iter()
        .map(|r| {
            let s = r.status.clone().unwrap_or_default();
            let age = r
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or("-".to_owned(), |t| age(now - t.0.as_second()));
            (
                [
                    r.name_any(),
                    phase_label(s.phase).to_owned(),
                    s.step_label.clone().unwrap_or_else(|| "-".into()),
                    s.weights.map_or("-".into(), |w| w.canary.to_string()),
                    s.ready_label.clone().unwrap_or_else(|| "-".into()),
                    age,
                    s.message.clone().unwrap_or_default(),
                ],
                s.phase,
            )
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .map(|(cells, _)| cells[c].chars().count())
                .chain([headers[c].len()])
                .max()
                .unwrap_or(0)
                + 3
        })
        .collect();
    let mut out = String::new();
    let mut line = String::new();
    for (c, h) in headers.iter().enumerate() {
        let _ = write!(line, "{h:<w$}", w = widths[c]);
    }
    let _ = writeln!(out, "{}", line.trim_end());
    for (cells, phase) in rows {
        let mut line = String::new();
        for (c, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.chars().count());
            let cell = if c == 1 {
                palette.paint(phase_tone(phase), cell)
            } else {
                cell.clone()
            };
            let _ = write!(line, "{cell}{pad}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// `kubectl`'s age format: `45s`, `12m`, `5h`, `3d`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::labels::{ROLE_LABEL, ROLLOUT_LABEL};
    use serde_json::json;

    const STABLE_IMAGE: &str = "registry.example/checkout@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const CANARY_IMAGE: &str = "registry.example/checkout@sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn mk_rollout(status: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "fife.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "checkout", "namespace": "shop", "generation": 2,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "replicas": 10,
                "selector": {"matchLabels": {"app": "checkout"}},
                "template": {"metadata": {"labels": {"app": "checkout"}},
                             "spec": {"containers": [{"name": "app", "image": CANARY_IMAGE}]}},
                "strategy": {"canary": {"baseline": true, "steps": [
                    {"setWeight": 5}, {"pause": {"duration": "10m"}},
                    {"analysis": {"templates": [{"templateName": "gate"}]}},
                    {"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"setWeight": 100}]}}
            },
            "status": status,
        }))
        .unwrap()
    }

    fn mk_deployment(
        role: &str,
        revision: &str,
        image: &str,
        replicas: i32,
        ready: i32,
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": format!("checkout-{role}"), "namespace": "shop", "generation": 1,
                         "labels": {ROLE_LABEL: role, REVISION_LABEL: revision, ROLLOUT_LABEL: "checkout"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "checkout"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"observedGeneration": 1, "readyReplicas": ready},
        }))
        .unwrap()
    }

    fn progressing() -> Rollout {
        mk_rollout(json!({
            "observedGeneration": 2, "phase": "Progressing",
            "message": "analysis checkout-7c9a-2 running",
            "currentStepIndex": 2, "stepLabel": "3/7",
            "weights": {"canary": 5, "baseline": 5, "stable": 90},
            "stableRevision": "5d8f", "canaryRevision": "7c9a",
            "currentAnalysisRun": "checkout-7c9a-2",
            "replicas": 10, "readyReplicas": 9, "readyLabel": "9/10",
        }))
    }

    #[test]
    fn a_blue_green_rollout_shows_the_steps_it_runs() {
        let mut rollout = mk_rollout(json!({
            "observedGeneration": 2, "phase": "Paused", "currentStepIndex": 1,
            "stableRevision": "5d8f", "canaryRevision": "7c9a",
        }));
        rollout.spec.strategy = serde_json::from_value(json!({"blueGreen": {
            "activeService": "checkout-active", "autoPromotionEnabled": false,
            "prePromotionAnalysis": {"templates": [{"templateName": "gate"}]}}}))
        .unwrap();
        // Pre-promotion analysis, a person's pause, the switch: paused before the switch.
        assert_eq!(set_weight(&rollout), Some(0));
        rollout.status.as_mut().unwrap().current_step_index = Some(2);
        assert_eq!(set_weight(&rollout), Some(100), "the switch");
    }

    fn deployments() -> Vec<Deployment> {
        vec![
            mk_deployment("baseline", "5d8f", STABLE_IMAGE, 1, 1),
            mk_deployment("canary", "7c9a", CANARY_IMAGE, 1, 0),
            mk_deployment("stable", "5d8f", STABLE_IMAGE, 8, 8),
        ]
    }

    fn analysis_run() -> AnalysisRun {
        serde_json::from_value(json!({
            "apiVersion": "fife.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "checkout-7c9a-2", "namespace": "shop"},
            "spec": {"metrics": []},
            "status": {"phase": "Running", "metricResults": [
                {"name": "success-rate", "phase": "Running", "count": 3, "successful": 3,
                 "measurements": [
                    {"phase": "Successful", "value": "[0.995]"},
                    {"phase": "Successful", "value": "[0.997]"}]},
                {"name": "latency-vs-baseline", "phase": "Failed", "count": 2, "successful": 1, "failed": 1,
                 "measurements": [
                    {"phase": "Successful", "judgement": {"nCanary": 60, "nBaseline": 60, "pValue": 0.41,
                        "shift": -0.0003, "ci": {"lower": -0.002, "upper": 0.0011, "level": 0.95},
                        "classification": "Pass", "reason": "no shift"}},
                    {"phase": "Failed", "judgement": {"nCanary": 60, "nBaseline": 60, "pValue": 0.00002,
                        "shift": 0.0123, "ci": {"lower": 0.0081, "upper": 0.016, "level": 0.95},
                        "classification": "High", "reason": "canary slower"}}]}
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn a_progressing_rollout_with_analysis_renders_as_a_tree() {
        let out = rollout_tree(
            &progressing(),
            &deployments(),
            Some(&analysis_run()),
            Palette::default(),
        );
        let expected = "\
Name:          checkout
Namespace:     shop
Status:        ◌ Progressing
Message:       analysis checkout-7c9a-2 running
Step:          3/7
Set weight:    5
Actual weight: 5 (stable 90 · canary 5 · baseline 5)
Images:        registry.example/checkout@sha256:1111111111111111111111111111111111111111111111111111111111111111 (stable, baseline)
               registry.example/checkout@sha256:2222222222222222222222222222222222222222222222222222222222222222 (canary)
Ready:         9/10

NAME                          KIND         STATUS         INFO
⟳ checkout                    Rollout      ◌ Progressing  stable 5d8f · canary 7c9a
├──□ checkout-stable          Deployment   ✔ Healthy      rev 5d8f · ready 8/8
├──□ checkout-canary          Deployment   ◌ Progressing  rev 7c9a · ready 0/1
├──□ checkout-baseline        Deployment   ✔ Healthy      rev 5d8f · ready 1/1
└──α checkout-7c9a-2          AnalysisRun  ◌ Running
    ├──⊞ success-rate         Metric       ◌ Running      3 measured · ✔ 3 ✖ 0 ? 0 ⚠ 0
    │   ├──#2                              ✔              [0.995]
    │   └──#3                              ✔              [0.997]
    └──⊞ latency-vs-baseline  Metric       ✖ Failed       2 measured · ✔ 1 ✖ 1 ? 0 ⚠ 0
        ├──#1                              ✔              Pass: shift -0.0003 (95% CI -0.002…+0.0011), p=0.41, n 60/60
        └──#2                              ✖              High: shift +0.0123 (95% CI +0.0081…+0.016), p<0.0001, n 60/60
";
        assert_eq!(out, expected, "\n{out}");
    }

    #[test]
    fn a_healthy_rollout_without_children_shows_its_template_images_and_no_analysis() {
        let mut rollout = mk_rollout(json!({
            "observedGeneration": 2, "phase": "Healthy", "currentStepIndex": 7, "stepLabel": "7/7",
            "weights": {"canary": 0, "baseline": 0, "stable": 100},
            "stableRevision": "7c9a", "canaryRevision": "7c9a", "readyLabel": "10/10",
        }));
        rollout
            .spec
            .template
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("registry.example/checkout:1.4".into());
        let out = rollout_tree(&rollout, &[], None, Palette::default());
        let expected = "\
Name:          checkout
Namespace:     shop
Status:        ✔ Healthy
Step:          7/7
Set weight:    100
Actual weight: 0 (stable 100 · canary 0 · baseline 0)
Images:        registry.example/checkout:1.4 (desired) not pinned by digest
Ready:         10/10

NAME        KIND         STATUS     INFO
⟳ checkout  Rollout      ✔ Healthy  stable 7c9a
";
        assert_eq!(out, expected, "\n{out}");
    }

    #[test]
    fn a_rollout_the_controller_has_not_seen_yet_is_unknown() {
        let rollout = mk_rollout(serde_json::Value::Null);
        let out = rollout_tree(&rollout, &[], None, Palette::default());
        assert!(out.contains("Status:        ? Unknown\n"), "{out}");
        assert!(out.contains("Step:          -\n"), "{out}");
        assert!(out.contains("Ready:         0/10\n"), "{out}");
    }

    #[test]
    fn colour_only_when_asked_and_never_changes_the_alignment() {
        let plain = rollout_tree(
            &progressing(),
            &deployments(),
            Some(&analysis_run()),
            Palette { color: false },
        );
        let coloured = rollout_tree(
            &progressing(),
            &deployments(),
            Some(&analysis_run()),
            Palette { color: true },
        );
        assert!(!plain.contains('\x1b'));
        assert!(coloured.contains("\x1b[31m✖ Failed\x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[32m✔ Healthy\x1b[0m"), "{coloured}");
        let strip = |s: &str| {
            let mut out = String::new();
            let mut rest = s;
            while let Some(i) = rest.find('\x1b') {
                out.push_str(&rest[..i]);
                rest = &rest[i + rest[i..].find('m').unwrap() + 1..];
            }
            out.push_str(rest);
            out
        };
        assert_eq!(strip(&coloured), plain);
    }

    #[test]
    fn each_phase_has_its_symbol() {
        assert_eq!(phase_label(Some(RolloutPhase::Healthy)), "✔ Healthy");
        assert_eq!(
            phase_label(Some(RolloutPhase::Progressing)),
            "◌ Progressing"
        );
        assert_eq!(phase_label(Some(RolloutPhase::Paused)), "॥ Paused");
        assert_eq!(phase_label(Some(RolloutPhase::Degraded)), "✖ Degraded");
    }

    #[test]
    fn set_weight_is_the_last_set_weight_at_or_before_the_step() {
        let at = |index: i32, abort: bool| {
            set_weight(&mk_rollout(
                json!({"currentStepIndex": index, "abort": abort}),
            ))
        };
        assert_eq!(at(0, false), Some(5));
        assert_eq!(at(2, false), Some(5));
        assert_eq!(at(4, false), Some(25));
        assert_eq!(at(7, false), Some(100));
        assert_eq!(at(4, true), Some(0));
        assert_eq!(set_weight(&mk_rollout(serde_json::Value::Null)), None);
    }

    #[test]
    fn paused_rollouts_say_why_and_what_to_do() {
        let rollout = mk_rollout(json!({"phase": "Paused", "pauseConditions": [
            {"reason": "InconclusiveAnalysis", "startTime": "2026-01-01T00:05:00Z"}]}));
        let out = rollout_tree(&rollout, &[], None, Palette::default());
        assert!(out.contains("Paused:        inconclusive analysis: `kubectl fife promote` or `abort` (since 2026-01-01T00:05:00Z)"), "{out}");
    }

    #[test]
    fn the_list_is_a_table_with_ages() {
        let mut second = mk_rollout(
            json!({"phase": "Degraded", "stepLabel": "2/7", "message": "analysis failed",
            "weights": {"canary": 0, "baseline": 0, "stable": 100}, "readyLabel": "10/10"}),
        );
        second.metadata.name = Some("payments".into());
        let out = rollout_table(
            &[progressing(), second],
            1_767_225_600 + 3 * 3600,
            Palette::default(),
        );
        let expected = "\
NAME       PHASE           STEP   WEIGHT   READY   AGE   MESSAGE
checkout   ◌ Progressing   3/7    5        9/10    3h    analysis checkout-7c9a-2 running
payments   ✖ Degraded      2/7    0        10/10   3h    analysis failed
";
        assert_eq!(out, expected, "\n{out}");
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(-5), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(60), "1m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(3 * 86400 + 5), "3d");
    }
}
