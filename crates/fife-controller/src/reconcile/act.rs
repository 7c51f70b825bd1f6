//! Act: applies a recorded decision. Deployments and Services by server-side apply (always
//! with apiVersion and kind, field manager `fife`, forced: the controller owns these
//! fields); the routers' lists (HTTPRoute rules, VirtualService routes, DestinationRule
//! subsets) by a merge patch guarded by resourceVersion ([`patch_guarded`] says why); the
//! canary Ingress, Fife's alone, by server-side apply, deleted when no canary runs; AnalysisRuns
//! created once and terminated by a spec flag. Every write here is idempotent, so
//! replaying a decision after a crash changes nothing that was already applied. What is
//! already as desired is compared with the watch caches first and not written again.

use fife_api::analysis::AnalysisTemplateSpec;
use fife_api::labels::canary_ingress_name;
use fife_api::rollout::{GatewayApiRouting, IstioRouting, NginxRouting, TemplateRef};
use fife_api::{
    AnalysisPhase, AnalysisRun, AnalysisRunStatus, AnalysisTemplate, ClusterAnalysisTemplate,
    Rollout,
};
use fife_engine::rollout::header_route_names;
use fife_engine::{AnalysisIntent, AnalysisKind, Decision, DesiredChild};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::build::children::{
    ExistingChildren, build_deployment, owner_reference, scaled_down, template_for_revision,
};
use crate::build::istio::{
    Split, destination_rule_resource, http_routes, role_subsets, virtual_service_resource,
    weighted_routes, with_header_routes,
};
use crate::build::nginx::{canary_ingress, same_canary_ingress};
use crate::build::runs::{RunContext, build_analysis_run};
use crate::build::services::build_services;
use crate::build::traffic::{
    TrafficError, http_route_resource, route_rules, weighted_rules, with_header_rules,
};
use crate::reconcile::error::ReconcileError;
use crate::reconcile::observe::Observation;
use crate::runtime::context::Context;
use crate::runtime::context::FIELD_MANAGER;
use fife_api::labels::{REVISION_LABEL, ROLLOUT_LABEL, Role};

/// Applies children, Services, traffic and analysis intents, in that order: pods exist
/// before traffic is sent to them, and analyses start once their canary serves.
pub async fn act(
    ctx: &Context,
    observation: &Observation,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    let rollout = &observation.rollout;
    let key = crate::reconcile::observe::rollout_key(rollout);
    apply_children(ctx, rollout, &observation.children, decision, &key).await?;
    if let Some(workload) = &observation.workload {
        apply_workload(ctx, rollout, workload, decision, &key).await?;
    }
    apply_services(ctx, rollout, &key).await?;
    apply_blue_green_services(ctx, rollout, decision, &key).await?;
    apply_traffic(ctx, rollout, decision, &key).await?;
    for intent in &decision.analysis {
        apply_analysis(ctx, rollout, decision, intent, &key).await?;
    }
    Ok(())
}

/// The children as the decision wants them, ready to apply. Pure.
pub fn desired_deployments(
    rollout: &Rollout,
    existing: &ExistingChildren,
    decision: &Decision,
) -> Result<Vec<Deployment>, crate::build::children::BuildError> {
    let spec_revision = rollout
        .spec
        .template
        .as_ref()
        .map(fife_engine::pod_template_hash)
        .unwrap_or_default();
    let wanted: [(Role, Option<&DesiredChild>); 3] = [
        (Role::Stable, decision.children.stable.as_ref()),
        (Role::Canary, decision.children.canary.as_ref()),
        (Role::Baseline, decision.children.baseline.as_ref()),
    ];
    let mut out = Vec::new();
    for (role, child) in wanted {
        match (child, existing.get(role)) {
            (Some(child), _) => {
                let template =
                    template_for_revision(rollout, &spec_revision, &child.revision, existing)?;
                out.push(build_deployment(
                    rollout,
                    role,
                    &child.revision,
                    child.replicas,
                    &template,
                )?);
            }
            (None, Some(current)) => {
                let running = current.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                if running != 0
                    && let Some(down) = scaled_down(rollout, role, current)
                {
                    out.push(down);
                }
            }
            (None, None) => {}
        }
    }
    Ok(out)
}

async fn apply_children(
    ctx: &Context,
    rollout: &Rollout,
    existing: &ExistingChildren,
    decision: &Decision,
    key: &str,
) -> Result<(), ReconcileError> {
    let deployments = desired_deployments(rollout, existing, decision).map_err(|source| {
        ReconcileError::Build {
            rollout: key.to_owned(),
            source,
        }
    })?;
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
    for d in deployments {
        let unchanged = existing
            .get(role_of(&d))
            .is_some_and(|current| same_spec(current, &d));
        if unchanged {
            continue;
        }
        server_side_apply(&api, &d, key).await?;
    }
    Ok(())
}

/// What to change on the Deployment `spec.workloadRef` names: the `fife.dev/rollout` label
/// and the Rollout's shard label, as every child carries them (so its watch events wake
/// the Rollout and the shard's Deployment cache holds it), and the replicas the decision
/// gives it. Only those fields; `None` when all are as wanted. Pure.
pub fn workload_patch(
    rollout: &Rollout,
    workload: &Deployment,
    decision: &Decision,
) -> Option<serde_json::Value> {
    let current = workload.labels();
    let mut wanted = current.clone();
    wanted.insert(ROLLOUT_LABEL.to_owned(), rollout.name_any());
    fife_api::labels::carry_shard_label(rollout.labels(), &mut wanted);
    let mut labels = serde_json::Map::new();
    for (key, value) in &wanted {
        if current.get(key) != Some(value) {
            labels.insert(key.clone(), json!(value));
        }
    }
    for key in current.keys().filter(|k| !wanted.contains_key(*k)) {
        // A merge patch removes a label with null.
        labels.insert(key.clone(), serde_json::Value::Null);
    }
    let mut patch = json!({});
    if !labels.is_empty() {
        patch["metadata"] = json!({ "labels": labels });
    }
    let running = workload.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if let Some(replicas) = decision.workload_replicas
        && replicas != running
    {
        patch["spec"] = json!({ "replicas": replicas });
    }
    (patch != json!({})).then_some(patch)
}

/// A merge patch, not an apply: the Deployment belongs to its author (often a GitOps tool),
/// and Fife takes over only its label and its replica count, as `kubectl scale` would.
async fn apply_workload(
    ctx: &Context,
    rollout: &Rollout,
    workload: &Deployment,
    decision: &Decision,
    key: &str,
) -> Result<(), ReconcileError> {
    let Some(patch) = workload_patch(rollout, workload, decision) else {
        return Ok(());
    };
    let name = workload.name_any();
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| {
            act_error(
                key,
                &format!("Deployment {name} (spec.workloadRef)"),
                source,
            )
        })?;
    Ok(())
}

fn role_of(d: &Deployment) -> Role {
    Role::of_labels(d.labels()).unwrap_or(Role::Stable)
}

/// True when applying `desired` would not change what `current` runs (saves a write per
/// reconcile; the apply would be a no-op anyway).
/// Every field Fife applies is still as Fife applied it (a hand edit of an image or a
/// replica count is not), so the apply can be skipped.
fn same_spec(current: &Deployment, desired: &Deployment) -> bool {
    crate::build::drift::carries(current, desired)
}

async fn apply_services(ctx: &Context, rollout: &Rollout, key: &str) -> Result<(), ReconcileError> {
    let Some(template) = &rollout.spec.template else {
        return Ok(());
    };
    let services = build_services(rollout, template).map_err(|source| ReconcileError::Build {
        rollout: key.to_owned(),
        source,
    })?;
    let namespace = rollout.namespace().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    for service in services {
        let current = ctx.caches.service(&namespace, &service.name_any());
        let unchanged = current.as_ref().is_some_and(|c| same_service(c, &service));
        if !unchanged {
            server_side_apply(&api, &service, key).await?;
        }
    }
    Ok(())
}

/// The merge patch that points a blue-green Service at `revision`: its selector gets the
/// Rollout's labels and `fife.dev/revision`, and the Service the `fife.dev/rollout` label
/// (so the Service cache holds it). Only those fields: ports and the rest stay their
/// author's. `None` when `current` already selects so. Pure.
pub fn blue_green_service_patch(
    rollout: &Rollout,
    current: Option<&Service>,
    revision: &str,
) -> Option<serde_json::Value> {
    let mut selector: std::collections::BTreeMap<String, String> = rollout
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    selector.insert(REVISION_LABEL.to_owned(), revision.to_owned());
    let name = rollout.name_any();
    let done = current.is_some_and(|c| {
        let selects = c.spec.as_ref().and_then(|s| s.selector.as_ref());
        c.labels().get(ROLLOUT_LABEL) == Some(&name)
            && selects.is_some_and(|have| selector.iter().all(|(k, v)| have.get(k) == Some(v)))
    });
    (!done).then(|| {
        json!({
            "metadata": { "labels": { ROLLOUT_LABEL: name } },
            "spec": { "selector": selector },
        })
    })
}

/// Points the active and preview Services of a blue-green Rollout at the revisions the
/// decision wants. They are the user's Services: a missing one is an error that names it.
async fn apply_blue_green_services(
    ctx: &Context,
    rollout: &Rollout,
    decision: &Decision,
    key: &str,
) -> Result<(), ReconcileError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    for selection in fife_engine::rollout::blue_green_services(&rollout.spec, decision) {
        let current = ctx.caches.service(&namespace, &selection.service);
        let Some(patch) = blue_green_service_patch(rollout, current.as_ref(), &selection.revision)
        else {
            continue;
        };
        let what = format!(
            "Service {namespace}/{} of spec.strategy.blueGreen (create it if it does not exist)",
            selection.service
        );
        api.patch(
            &selection.service,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| act_error(key, &what, source))?;
    }
    Ok(())
}

/// True when `current` already selects and exposes what `desired` does.
fn same_service(current: &Service, desired: &Service) -> bool {
    let (Some(cs), Some(ds)) = (&current.spec, &desired.spec) else {
        return false;
    };
    let ports = |s: &k8s_openapi::api::core::v1::ServiceSpec| {
        s.ports.as_ref().map(|p| {
            p.iter()
                .map(|p| (p.port, p.name.clone()))
                .collect::<Vec<_>>()
        })
    };
    cs.selector == ds.selector && ports(cs) == ports(ds)
}

async fn apply_traffic(
    ctx: &Context,
    rollout: &Rollout,
    decision: &Decision,
    key: &str,
) -> Result<(), ReconcileError> {
    let Some(routing) = rollout.spec.strategy.canary.traffic_routing.as_ref() else {
        // Without a router, the replica counts are the split.
        return Ok(());
    };
    if let Some(gateway) = &routing.gateway_api {
        apply_http_route(ctx, rollout, gateway, decision, key).await?;
    }
    if let Some(istio) = &routing.istio {
        apply_istio(ctx, rollout, istio, decision, key).await?;
    }
    if let Some(nginx) = &routing.nginx {
        apply_nginx(ctx, rollout, nginx, decision, key).await?;
    }
    Ok(())
}

fn traffic_error(key: &str, source: TrafficError) -> ReconcileError {
    ReconcileError::Traffic {
        rollout: key.to_owned(),
        source,
    }
}

/// The routers' objects hold lists (HTTPRoute rules, VirtualService routes, DestinationRule
/// subsets) without a merge key. Server-side apply treats such a list on a custom resource as
/// atomic: applying our version of the list would take ownership of every entry, other
/// managers' fields in it included, and a later apply of theirs would conflict or undo ours.
/// So these writes are merge patches of the whole list, read from the server and changed
/// only where Fife owns a field, with the resourceVersion read as precondition: a concurrent
/// edit makes the patch fail (409) instead of being overwritten, and the reconcile is retried
/// on the fresh object.
async fn patch_guarded(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    spec: Value,
    what: &str,
    key: &str,
) -> Result<(), ReconcileError> {
    let patch = json!({
        "metadata": { "resourceVersion": object.resource_version() },
        "spec": spec,
    });
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|source| act_error(key, what, source))?;
    Ok(())
}

async fn apply_http_route(
    ctx: &Context,
    rollout: &Rollout,
    gateway: &GatewayApiRouting,
    decision: &Decision,
    key: &str,
) -> Result<(), ReconcileError> {
    let namespace = gateway
        .namespace
        .clone()
        .or_else(|| rollout.namespace())
        .unwrap_or_default();
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &http_route_resource());
    let what = format!("HTTPRoute {namespace}/{}", gateway.http_route);
    let route = api
        .get(&gateway.http_route)
        .await
        .map_err(|source| act_error(key, &what, source))?;
    let spec = route.data.get("spec").cloned().unwrap_or_default();
    let name = rollout.name_any();
    let rules = route_rules(&gateway.http_route, &spec).map_err(|e| traffic_error(key, e))?;
    let owned = header_route_names(rollout.spec.steps());
    let desired = weighted_rules(&gateway.http_route, &name, &rules, decision.weights)
        .and_then(|weighted| {
            with_header_rules(
                &gateway.http_route,
                &name,
                &weighted,
                &owned,
                &decision.header_routes,
            )
        })
        .map_err(|e| traffic_error(key, e))?;
    if desired == rules {
        return Ok(());
    }
    patch_guarded(&api, &route, json!({ "rules": desired }), &what, key).await
}

async fn apply_istio(
    ctx: &Context,
    rollout: &Rollout,
    istio: &IstioRouting,
    decision: &Decision,
    key: &str,
) -> Result<(), ReconcileError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    // The subsets first: a route to a subset the DestinationRule does not define yet
    // would fail its requests.
    if let Some(rule) = &istio.destination_rule {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &namespace, &destination_rule_resource());
        let what = format!("DestinationRule {namespace}/{}", rule.name);
        let object = api
            .get(&rule.name)
            .await
            .map_err(|source| act_error(key, &what, source))?;
        let spec = object.data.get("spec").cloned().unwrap_or_default();
        let subsets = role_subsets(&format!("{namespace}/{}", rule.name), rule, &spec)
            .map_err(|e| traffic_error(key, e))?;
        if spec.get("subsets") != Some(&Value::Array(subsets.clone())) {
            patch_guarded(&api, &object, json!({ "subsets": subsets }), &what, key).await?;
        }
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &virtual_service_resource());
    let vs_name = &istio.virtual_service.name;
    let what = format!("VirtualService {namespace}/{vs_name}");
    let object = api
        .get(vs_name)
        .await
        .map_err(|source| act_error(key, &what, source))?;
    let spec = object.data.get("spec").cloned().unwrap_or_default();
    let qualified = format!("{namespace}/{vs_name}");
    let split = Split::of(istio, &name);
    let routes = http_routes(&qualified, &spec).map_err(|e| traffic_error(key, e))?;
    let owned = header_route_names(rollout.spec.steps());
    let desired = with_header_routes(&qualified, split, &routes, &owned, &decision.header_routes)
        .and_then(|routes| {
            weighted_routes(&qualified, istio, split, &routes, &owned, decision.weights)
        })
        .map_err(|e| traffic_error(key, e))?;
    if desired == routes {
        return Ok(());
    }
    patch_guarded(&api, &object, json!({ "http": desired }), &what, key).await
}

/// The canary Ingress exists while a canary takes part in the rollout: from its start
/// until it is promoted (and, after a promotion, until the new stable is ready and the old
/// canary's weight is gone), and not after an abort.
async fn apply_nginx(
    ctx: &Context,
    rollout: &Rollout,
    nginx: &NginxRouting,
    decision: &Decision,
    key: &str,
) -> Result<(), ReconcileError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), &namespace);
    let canary_name = canary_ingress_name(&rollout.name_any(), &nginx.stable_ingress);
    let what = format!("Ingress {namespace}/{canary_name}");
    let current = api
        .get_opt(&canary_name)
        .await
        .map_err(|source| act_error(key, &what, source))?;
    let in_rollout = decision.status.canary_revision.is_some() && !decision.status.abort;
    if decision.weights.canary == 0 && !in_rollout {
        if current.is_some() {
            match api.delete(&canary_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => return Err(act_error(key, &what, source)),
            }
        }
        return Ok(());
    }
    let stable_what = format!("Ingress {namespace}/{}", nginx.stable_ingress);
    let stable = api
        .get(&nginx.stable_ingress)
        .await
        .map_err(|source| act_error(key, &stable_what, source))?;
    let owner = owner_reference(rollout).map_err(|source| ReconcileError::Build {
        rollout: key.to_owned(),
        source,
    })?;
    let desired = canary_ingress(rollout, nginx, &stable, decision.weights.canary, owner)
        .map_err(|e| traffic_error(key, e))?;
    if current.is_some_and(|c| same_canary_ingress(&c, &desired)) {
        return Ok(());
    }
    server_side_apply(&api, &desired, key).await?;
    Ok(())
}

async fn apply_analysis(
    ctx: &Context,
    rollout: &Rollout,
    decision: &Decision,
    intent: &AnalysisIntent,
    key: &str,
) -> Result<(), ReconcileError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
    match intent {
        AnalysisIntent::Terminate { name } => {
            // From the cache: a run not cached yet is terminated when its watch event
            // reconciles again; the flag is idempotent.
            let Some(run) = ctx.caches.run(&namespace, name) else {
                return Ok(());
            };
            let done = run
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(AnalysisPhase::is_completed);
            if !run.spec.terminate && !done {
                api.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": { "terminate": true } })),
                )
                .await
                .map_err(|s| act_error(key, &format!("AnalysisRun {name} termination"), s))?;
            }
            Ok(())
        }
        AnalysisIntent::Start {
            name,
            kind,
            templates,
            args,
        } => {
            // A run the cache does not show yet is created anyway: the create answers 409
            // when it exists, and that is success.
            if ctx.caches.run(&namespace, name).is_some() {
                return Ok(());
            }
            let context = RunContext {
                name,
                step_index: match kind {
                    AnalysisKind::Step { index } => Some(*index),
                    AnalysisKind::Background => None,
                },
                stable_revision: decision.status.stable_revision.as_deref(),
                canary_revision: decision.status.canary_revision.as_deref(),
            };
            let (specs, missing) = fetch_templates(ctx, &namespace, templates, key).await?;
            let built = match missing {
                None => {
                    build_analysis_run(rollout, &context, &specs, args).map_err(|e| e.to_string())
                }
                Some(missing) => Err(missing),
            };
            match built {
                Ok(run) => create_run(&api, &run, key).await,
                Err(problem) => {
                    // A run that cannot be built still exists, in phase Error, so the rollout
                    // aborts as for any analysis error instead of waiting forever.
                    let run =
                        build_analysis_run(rollout, &context, &[], &[]).map_err(|source| {
                            ReconcileError::Analysis {
                                rollout: key.to_owned(),
                                source,
                            }
                        })?;
                    create_run(&api, &run, key).await?;
                    let status = AnalysisRunStatus {
                        phase: Some(AnalysisPhase::Error),
                        message: Some(problem),
                        started_at: Some(Time(jiff::Timestamp::now())),
                        completed_at: Some(Time(jiff::Timestamp::now())),
                        metric_results: Vec::new(),
                    };
                    let patch = json!({ "apiVersion": fife_api::API_VERSION, "kind": "AnalysisRun", "status": status });
                    api.patch_status(
                        name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&patch),
                    )
                    .await
                    .map_err(|source| ReconcileError::Report {
                        object: format!("AnalysisRun {namespace}/{name}"),
                        source,
                    })?;
                    Ok(())
                }
            }
        }
    }
}

async fn create_run(
    api: &Api<AnalysisRun>,
    run: &AnalysisRun,
    key: &str,
) -> Result<(), ReconcileError> {
    match api.create(&PostParams::default(), run).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(act_error(
            key,
            &format!("AnalysisRun {}", run.name_any()),
            source,
        )),
    }
}

/// The specs of the referenced templates, or a sentence naming the ones that are missing.
async fn fetch_templates(
    ctx: &Context,
    namespace: &str,
    refs: &[TemplateRef],
    key: &str,
) -> Result<(Vec<AnalysisTemplateSpec>, Option<String>), ReconcileError> {
    let namespaced: Api<AnalysisTemplate> = Api::namespaced(ctx.client.clone(), namespace);
    let cluster: Api<ClusterAnalysisTemplate> = Api::all(ctx.client.clone());
    let mut specs = Vec::new();
    let mut missing = Vec::new();
    for r in refs {
        let found = if r.cluster_scope {
            cluster
                .get_opt(&r.template_name)
                .await
                .map_err(|s| act_error(key, "a ClusterAnalysisTemplate", s))?
                .map(|t| AnalysisTemplateSpec::from(t.spec))
        } else {
            namespaced
                .get_opt(&r.template_name)
                .await
                .map_err(|s| act_error(key, "an AnalysisTemplate", s))?
                .map(|t| t.spec)
        };
        match found {
            Some(spec) => specs.push(spec),
            None => missing.push(if r.cluster_scope {
                format!("ClusterAnalysisTemplate {}", r.template_name)
            } else {
                format!("AnalysisTemplate {namespace}/{}", r.template_name)
            }),
        }
    }
    let missing = (!missing.is_empty()).then(|| {
        format!(
            "{} not found; create it (or fix the name in the Rollout) and retry the rollout",
            missing.join(", ")
        )
    });
    Ok((specs, missing))
}

/// Server-side apply of a whole object as field manager `fife`.
pub async fn server_side_apply<K>(api: &Api<K>, object: &K, key: &str) -> Result<K, ReconcileError>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut value = serde_json::to_value(object)
        .map_err(|e| act_error(key, "an object", kube::Error::SerdeError(e)))?;
    value["apiVersion"] = json!(K::api_version(&()));
    value["kind"] = json!(K::kind(&()));
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await
    .map_err(|source| act_error(key, &format!("{} {name}", K::kind(&())), source))
}

fn act_error(key: &str, what: &str, source: kube::Error) -> ReconcileError {
    ReconcileError::Act {
        rollout: key.to_owned(),
        what: what.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::children::tests::mk_rollout;
    use fife_api::labels::SHARD_LABEL;
    use fife_engine::DesiredChildren;

    fn decision(children: DesiredChildren) -> Decision {
        let none = fife_engine::decide(
            &mk_rollout("web:1"),
            &fife_engine::Observed::default(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        Decision { children, ..none }
    }

    fn replicas(d: &Deployment) -> Option<i32> {
        d.spec.as_ref().and_then(|s| s.replicas)
    }

    #[test]
    fn desired_children_are_built_and_dropped_ones_scaled_down_once() {
        let rollout = mk_rollout("web:1");
        let template = rollout.spec.template.clone().unwrap();
        let revision = fife_engine::pod_template_hash(&template);
        let mut existing = ExistingChildren::default();
        let running = build_deployment(&rollout, Role::Canary, "old", 2, &template).unwrap();
        existing.set(Role::Canary, running);
        let stopped = build_deployment(&rollout, Role::Baseline, "old", 0, &template).unwrap();
        existing.set(Role::Baseline, stopped);

        let out = desired_deployments(
            &rollout,
            &existing,
            &decision(DesiredChildren {
                stable: Some(DesiredChild {
                    revision: revision.clone(),
                    replicas: 3,
                }),
                canary: None,
                baseline: None,
            }),
        )
        .unwrap();
        let names: Vec<_> = out.iter().map(|d| d.name_any()).collect();
        // The baseline already runs no pods: nothing to apply for it.
        assert_eq!(names, ["web-stable", "web-canary"]);
        assert_eq!(replicas(&out[0]), Some(3));
        assert_eq!(
            crate::build::children::deployment_revision(&out[0]),
            Some(revision.as_str())
        );
        assert_eq!(replicas(&out[1]), Some(0));
        assert_eq!(
            crate::build::children::deployment_revision(&out[1]),
            Some("old"),
            "scaled down at the revision it ran"
        );
    }

    #[test]
    fn the_referenced_deployment_gets_the_label_and_the_decided_replicas_only() {
        let rollout = mk_rollout("web:1");
        let template = rollout.spec.template.clone().unwrap();
        let mut workload = Deployment {
            metadata: kube::api::ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec {
                replicas: Some(4),
                template,
                ..Default::default()
            }),
            status: None,
        };
        let mut d = decision(DesiredChildren {
            stable: None,
            canary: None,
            baseline: None,
        });
        d.workload_replicas = Some(3);
        assert_eq!(
            workload_patch(&rollout, &workload, &d),
            Some(json!({"metadata": {"labels": {ROLLOUT_LABEL: "web"}}, "spec": {"replicas": 3}}))
        );
        workload.metadata.labels = Some([(ROLLOUT_LABEL.to_owned(), "web".to_owned())].into());
        assert_eq!(
            workload_patch(&rollout, &workload, &d),
            Some(json!({"spec": {"replicas": 3}}))
        );
        d.workload_replicas = None;
        assert_eq!(workload_patch(&rollout, &workload, &d), None, "left alone");
        d.workload_replicas = Some(4);
        assert_eq!(workload_patch(&rollout, &workload, &d), None, "already so");

        // The Deployment follows its Rollout's shard, in and out.
        let mut sharded = rollout.clone();
        sharded.metadata.labels = Some([(SHARD_LABEL.to_owned(), "b".to_owned())].into());
        assert_eq!(
            workload_patch(&sharded, &workload, &d),
            Some(json!({"metadata": {"labels": {SHARD_LABEL: "b"}}}))
        );
        workload
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SHARD_LABEL.to_owned(), "b".to_owned());
        assert_eq!(workload_patch(&sharded, &workload, &d), None);
        assert_eq!(
            workload_patch(&rollout, &workload, &d),
            Some(json!({"metadata": {"labels": {SHARD_LABEL: null}}}))
        );
    }

    #[test]
    fn a_blue_green_service_gets_the_revision_selector_once() {
        let rollout = mk_rollout("web:1");
        let patch = blue_green_service_patch(&rollout, None, "rev2").unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {ROLLOUT_LABEL: "web"}},
                "spec": {"selector": {"app": "web", REVISION_LABEL: "rev2"}}})
        );
        let mut service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web-active", "labels": {ROLLOUT_LABEL: "web"}},
            "spec": {"selector": {"app": "web", REVISION_LABEL: "rev2", "tier": "front"}}
        }))
        .unwrap();
        assert_eq!(
            blue_green_service_patch(&rollout, Some(&service), "rev2"),
            None
        );
        service
            .spec
            .as_mut()
            .unwrap()
            .selector
            .as_mut()
            .unwrap()
            .insert(REVISION_LABEL.into(), "rev1".into());
        assert!(blue_green_service_patch(&rollout, Some(&service), "rev2").is_some());
    }

    #[test]
    fn a_revision_with_no_template_to_build_from_is_an_error() {
        let rollout = mk_rollout("web:2");
        let err = desired_deployments(
            &rollout,
            &ExistingChildren::default(),
            &decision(DesiredChildren {
                stable: Some(DesiredChild {
                    revision: "gone".into(),
                    replicas: 3,
                }),
                canary: None,
                baseline: None,
            }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
