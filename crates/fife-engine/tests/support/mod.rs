//! Builders and a simulated controller loop for the rollout tests.
#![allow(dead_code)]

use fife_api::rollout::{
    HeaderRoutingMatch, PauseStep, RolloutAnalysis, RolloutStrategy, SetHeaderRoute, StringMatch,
    TemplateRef,
};
use fife_api::{
    AnalysisPhase, CanaryStep, CanaryStrategy, Duration, ManualAction, ManualActionRequest,
    Rollout, RolloutSpec,
};
use fife_engine::rollout::{
    Decision, DesiredChild, Observed, ObservedAnalysis, ObservedChild, decide,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

pub fn t(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

pub fn mk_template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".to_owned(),
                image: Some(image.to_owned()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    }
}

pub fn set_weight(w: i32) -> CanaryStep {
    CanaryStep::SetWeight(w)
}

pub fn pause(secs: Option<u64>) -> CanaryStep {
    CanaryStep::Pause(PauseStep {
        duration: secs.map(Duration::from_secs),
    })
}

pub fn analysis() -> CanaryStep {
    CanaryStep::Analysis(RolloutAnalysis {
        templates: vec![TemplateRef {
            template_name: "gate".to_owned(),
            cluster_scope: false,
        }],
        args: vec![],
    })
}

/// A `setHeaderRoute` step named `h<name>`; `None` removes the route.
pub fn header_route(name: u8, value: Option<u8>) -> CanaryStep {
    CanaryStep::SetHeaderRoute(SetHeaderRoute {
        name: format!("h{name}"),
        r#match: value
            .map(|v| HeaderRoutingMatch {
                header_name: "x-canary".to_owned(),
                header_value: StringMatch {
                    exact: Some(v.to_string()),
                    ..StringMatch::default()
                },
            })
            .into_iter()
            .collect(),
    })
}

pub fn mk_rollout(image: &str, replicas: i32, steps: Vec<CanaryStep>) -> Rollout {
    let mut r = Rollout::new(
        "web",
        RolloutSpec {
            replicas,
            selector: None,
            template: Some(mk_template(image)),
            workload_ref: None,
            strategy: RolloutStrategy {
                canary: CanaryStrategy {
                    steps,
                    abort_scale_down_delay_seconds: 30,
                    ..CanaryStrategy::default()
                },
                blue_green: None,
            },
            paused: false,
            manual_action: None,
            progress_deadline_seconds: 600,
            revision_history_limit: 10,
            policy: Default::default(),
        },
    );
    r.metadata.generation = Some(1);
    r
}

pub fn request(action: ManualAction, id: &str) -> ManualActionRequest {
    ManualActionRequest {
        action,
        id: id.to_owned(),
        requested_by: Some("alice@example.com".to_owned()),
        reason: None,
    }
}

pub fn ready(child: &Option<DesiredChild>) -> Option<ObservedChild> {
    child.as_ref().map(|c| ObservedChild {
        revision: c.revision.clone(),
        replicas: c.replicas,
        ready_replicas: c.replicas,
        updated_replicas: c.replicas,
        up_to_date: true,
    })
}

/// What a controller would observe after applying `d` and letting every pod become ready.
pub fn observe_applied(
    d: &Decision,
    step: Option<AnalysisPhase>,
    background: Option<AnalysisPhase>,
) -> Observed {
    Observed {
        stable: ready(&d.children.stable),
        canary: ready(&d.children.canary),
        baseline: ready(&d.children.baseline),
        step_analysis: d
            .status
            .current_analysis_run
            .clone()
            .zip(step)
            .map(|(name, phase)| ObservedAnalysis {
                name,
                phase,
                message: None,
            }),
        background_analysis: d
            .status
            .background_analysis_run
            .clone()
            .zip(background)
            .map(|(name, phase)| ObservedAnalysis {
                name,
                phase,
                message: None,
            }),
        release: None,
        workload: None,
    }
}

/// Decide with the status written back, as the controller does.
pub fn step(rollout: &mut Rollout, observed: &Observed, now: jiff::Timestamp) -> Decision {
    let d = decide(rollout, observed, now);
    rollout.status = Some(d.status.clone());
    d
}

/// A Rollout already Healthy at `image`.
pub fn healthy(image: &str, replicas: i32, steps: Vec<CanaryStep>) -> (Rollout, Observed) {
    let mut r = mk_rollout(image, replicas, steps);
    let d = step(&mut r, &Observed::default(), t(0));
    let obs = observe_applied(&d, None, None);
    step(&mut r, &obs, t(1));
    (r, obs)
}
