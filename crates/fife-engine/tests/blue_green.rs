//! Blue-green through the step machine: the preview comes up behind its Service with a
//! baseline, the pre-promotion analysis gates the switch, the active Service moves only to
//! a fully ready revision, the old one stays for `scaleDownDelaySeconds`, and an abort puts
//! the active Service back on the old revision.

mod support;

use fife_api::rollout::{BlueGreenStrategy, RolloutAnalysis, TemplateRef};
use fife_api::{AnalysisPhase, ManualAction, RolloutPhase};
use fife_engine::rollout::{
    AnalysisIntent, EventAction, Observed, active_revision, blue_green_services, preview_revision,
};
use support::*;

fn gate(name: &str) -> RolloutAnalysis {
    RolloutAnalysis {
        templates: vec![TemplateRef {
            template_name: name.into(),
            cluster_scope: false,
        }],
        args: vec![],
    }
}

fn strategy(auto: bool) -> BlueGreenStrategy {
    BlueGreenStrategy {
        active_service: "web".into(),
        preview_service: Some("web-preview".into()),
        preview_replica_count: Some(2),
        auto_promotion_enabled: auto,
        auto_promotion_seconds: None,
        scale_down_delay_seconds: 30,
        pre_promotion_analysis: Some(gate("pre")),
        post_promotion_analysis: Some(gate("post")),
    }
}

/// A Healthy blue-green Rollout of 4 pods at app:1, changed to app:2.
fn changed(auto: bool) -> (fife_api::Rollout, Observed, String) {
    let (mut r, obs) = healthy("app:1", 4, vec![]);
    r.spec.strategy.blue_green = Some(strategy(auto));
    let stable = r.status.as_ref().unwrap().stable_revision.clone().unwrap();
    r.spec.template = Some(mk_template("app:2"));
    (r, obs, stable)
}

fn replicas(d: &fife_engine::Decision) -> (i32, i32, i32) {
    let n = |c: &Option<fife_engine::DesiredChild>| c.as_ref().map_or(0, |c| c.replicas);
    (
        n(&d.children.stable),
        n(&d.children.canary),
        n(&d.children.baseline),
    )
}

fn started(d: &fife_engine::Decision) -> Vec<String> {
    d.analysis
        .iter()
        .filter_map(|a| match a {
            AnalysisIntent::Start { templates, .. } => Some(templates[0].template_name.clone()),
            AnalysisIntent::Terminate { .. } => None,
        })
        .collect()
}

#[test]
fn a_passing_preview_is_promoted_and_the_old_revision_kept_for_the_delay() {
    let (mut r, obs, stable) = changed(true);
    let d = step(&mut r, &obs, t(10));
    let canary = d.status.canary_revision.clone().unwrap();
    assert_eq!(
        replicas(&d),
        (4, 2, 2),
        "preview and baseline at previewReplicaCount"
    );
    assert_eq!(d.weights.canary, 0);
    assert_eq!(
        active_revision(&d.status, &d.weights),
        Some(stable.as_str())
    );
    assert_eq!(preview_revision(&d.status), Some(canary.as_str()));
    let services = blue_green_services(&r.spec, &d);
    assert_eq!(services[0].service, "web");
    assert_eq!(services[0].revision, stable);
    assert_eq!(services[1].service, "web-preview");
    assert_eq!(services[1].revision, canary);
    assert_eq!(d.status.step_label.as_deref(), Some("1/4"));

    // Pods ready: the pre-promotion analysis starts.
    let d = step(&mut r, &observe_applied(&d, None, None), t(11));
    assert_eq!(started(&d), ["pre"]);
    // It passes: the preview scales to all replicas, the active Service waits for them.
    let d = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Successful), None),
        t(12),
    );
    assert_eq!(replicas(&d), (4, 4, 0));
    assert_eq!(d.weights.canary, 0, "2 of 4 new pods ready: no switch yet");
    assert_eq!(
        active_revision(&d.status, &d.weights),
        Some(stable.as_str())
    );
    // All ready: the switch, then the post-promotion analysis.
    let d = step(&mut r, &observe_applied(&d, None, None), t(13));
    assert_eq!(d.weights.canary, 100);
    assert_eq!(
        active_revision(&d.status, &d.weights),
        Some(canary.as_str())
    );
    assert_eq!(started(&d), ["post"]);
    let d = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Successful), None),
        t(14),
    );
    // scaleDownDelaySeconds: the old revision keeps all of its pods.
    assert_eq!(replicas(&d), (4, 4, 0));
    assert_eq!(d.status.stable_revision.as_deref(), Some(stable.as_str()));
    let d = step(&mut r, &observe_applied(&d, None, None), t(30));
    assert_eq!(d.status.stable_revision.as_deref(), Some(stable.as_str()));
    let d = step(&mut r, &observe_applied(&d, None, None), t(45));
    assert!(d.events.iter().any(|e| e.action == EventAction::Promoted));
    assert_eq!(d.status.stable_revision.as_deref(), Some(canary.as_str()));
    assert_eq!(
        active_revision(&d.status, &d.weights),
        Some(canary.as_str())
    );
    let d = step(&mut r, &observe_applied(&d, None, None), t(46));
    let d = step(&mut r, &observe_applied(&d, None, None), t(47));
    assert_eq!(d.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(replicas(&d), (4, 0, 0));
}

#[test]
fn a_failing_preview_analysis_keeps_the_active_service_and_scales_the_preview_down() {
    let (mut r, obs, stable) = changed(true);
    let d = step(&mut r, &obs, t(10));
    let d = step(&mut r, &observe_applied(&d, None, None), t(11));
    let d = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Failed), None),
        t(12),
    );
    assert!(d.status.abort);
    assert_eq!(d.status.phase, Some(RolloutPhase::Degraded));
    assert_eq!(
        active_revision(&d.status, &d.weights),
        Some(stable.as_str())
    );
    let d = step(&mut r, &observe_applied(&d, None, None), t(50));
    assert_eq!(
        replicas(&d),
        (4, 0, 0),
        "preview down after abortScaleDownDelay"
    );
}

#[test]
fn a_failing_post_promotion_analysis_switches_the_active_service_back() {
    let (mut r, obs, stable) = changed(true);
    let d = step(&mut r, &obs, t(10));
    let d = step(&mut r, &observe_applied(&d, None, None), t(11));
    let ok = |d| observe_applied(d, Some(AnalysisPhase::Successful), None);
    let d = step(&mut r, &ok(&d), t(12));
    let d = step(&mut r, &observe_applied(&d, None, None), t(13));
    assert_eq!(d.weights.canary, 100);
    let d = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Failed), None),
        t(14),
    );
    assert!(d.status.abort);
    assert_eq!(
        active_revision(&d.status, &d.weights),
        Some(stable.as_str())
    );
    assert_eq!(
        replicas(&d).0,
        4,
        "the old revision never lost a pod, so switching back is instant"
    );
}

#[test]
fn without_auto_promotion_a_person_promotes() {
    let (mut r, obs, stable) = changed(false);
    let d = step(&mut r, &obs, t(10));
    let d = step(&mut r, &observe_applied(&d, None, None), t(11));
    let ok = |d| observe_applied(d, Some(AnalysisPhase::Successful), None);
    let d = step(&mut r, &ok(&d), t(12));
    let d = step(&mut r, &ok(&d), t(500));
    assert_eq!(d.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(
        active_revision(&d.status, &d.weights),
        Some(stable.as_str())
    );
    r.spec.manual_action = Some(request(ManualAction::Promote, "p1"));
    let d = step(&mut r, &ok(&d), t(501));
    assert!(
        d.events
            .iter()
            .any(|e| e.action == EventAction::ManualPromote)
    );
    let d = step(&mut r, &observe_applied(&d, None, None), t(502));
    assert_eq!(d.weights.canary, 100, "switched once all pods are ready");
}
