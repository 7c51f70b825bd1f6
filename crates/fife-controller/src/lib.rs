//! Fife's controller: watches Rollouts and runs them. The folders follow the pipeline:
//!
//! ```text
//!   watch Rollouts ─┬─▶ reconcile: observe ─▶ decide ─▶ record ─▶ act ─▶ report
//!   owns Deployments, Services, AnalysisRuns ┘        (engine)   (audit)  (SSA)   (status, Events, metrics)
//!   watches AnalysisTemplates ─▶ Rollouts that use them
//!   watches Approvals, BreakGlasses ─▶ the Rollout they name; ReleasePolicies ─▶ every Rollout
//!   watch AnalysisRuns ─▶ analysis::runner: measure what is due ─▶ audit ─▶ run status
//!   Lease ─▶ runtime::leader: only the leader reconciles     /healthz /readyz /metrics
//!   --shard ─▶ runtime::shard: every watch selects the shard's Rollouts and what they own
//! ```
//!
//! - [`reconcile`]: the Rollout pipeline's steps, the edges that do I/O, and their errors.
//! - [`build`]: pure builders of what `act` applies (children, Services, traffic,
//!   AnalysisRuns, whether status or a child needs writing); plain tests.
//! - [`analysis`]: the AnalysisRun loop: measure, record, write the run's status.
//! - [`runtime`]: the shared context, leader election, `/metrics` and health endpoints.

#![forbid(unsafe_code)]

pub mod analysis;
pub mod build;
pub mod reconcile;
pub mod runtime;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fife_api::labels::ROLLOUT_LABEL;
use fife_api::{
    AnalysisRun, AnalysisTemplate, Approval, BreakGlass, ClusterAnalysisTemplate, ReleasePolicy,
    Rollout,
};
use fife_audit::{
    Actor, AuditLog, ChainHead, SigningKey, TracingSink, WebhookConfig, WebhookNotifier,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, controller, watcher};
use kube::{Api, Client, ResourceExt};

use crate::runtime::caches::Caches;
use crate::runtime::compact::CompactGuard;
use crate::runtime::context::Context;
use crate::runtime::image_verdicts::ImageVerifier;
use crate::runtime::leader::{Leadership, LeaseConfig};
use crate::runtime::shard::Shard;
use crate::runtime::telemetry::Metrics;

/// How the controller runs; the `fife controller` flags.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// A kubeconfig file; in-cluster (or the default kubeconfig) when unset.
    pub kubeconfig: Option<PathBuf>,
    /// Watch only this namespace; every namespace when unset.
    pub namespace: Option<String>,
    /// Rollouts reconciled at once.
    pub concurrency: u16,
    pub metrics_addr: SocketAddr,
    /// The durable audit log. Without it records go to the structured log only.
    pub audit_log: Option<PathBuf>,
    pub audit_hmac_key_file: Option<PathBuf>,
    /// The id written as `kid` next to each record's signature, so the key can rotate.
    pub audit_key_id: Option<String>,
    /// Publish the log's head in the `fife-audit-head` ConfigMap of this namespace.
    pub audit_head_namespace: Option<String>,
    pub webhook_url: Option<String>,
    /// Signs each webhook delivery (`X-Fife-Signature`) with this key, named by its id.
    pub webhook_hmac_key_file: Option<PathBuf>,
    pub webhook_key_id: Option<String>,
    /// Leader election; without it this replica always acts (run one replica only).
    pub lease: Option<LeaseSettings>,
    /// Who acts, in audit records, Events and the Lease.
    pub identity: String,
    /// Registries (`host:port`) the signature gate reaches over plain HTTP; HTTPS otherwise.
    pub registry_plain_http: Vec<String>,
    /// Where the release policies' keys Secrets live: the controller's own namespace.
    pub image_keys_namespace: String,
    /// The Rollouts this controller runs (`--shard`); the default shard runs those without
    /// the shard label.
    pub shard: Shard,
}

/// Where the leader Lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub duration: Duration,
    pub grace: Duration,
}

/// Why the controller did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read kubeconfig {path}: {detail}; pass a readable file with --kubeconfig")]
    Kubeconfig { path: PathBuf, detail: String },
    #[error("cannot build a Kubernetes client: {detail}; pass --kubeconfig or run in a cluster")]
    Client { detail: String },
    #[error(
        "the {kind} CustomResourceDefinition ({crd}) is not installed in the cluster; install \
         the CRDs first: kubectl apply -f crds/"
    )]
    CrdMissing {
        kind: &'static str,
        crd: &'static str,
    },
    #[error("cannot reach the Kubernetes API to check the CRDs: {source}")]
    Api {
        #[source]
        source: kube::Error,
    },
    #[error("cannot open the audit log: {detail}")]
    Audit { detail: String },
    #[error("cannot listen on {addr} for /metrics: {source}; pick another --metrics-addr")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Leader(#[from] runtime::leader::LeaderError),
}

/// Builds a client from `--kubeconfig`, or the environment.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, StartError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| StartError::Kubeconfig {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| StartError::Kubeconfig {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| StartError::Client {
                detail: e.to_string(),
            })?,
    };
    Client::try_from(config).map_err(|e| StartError::Client {
        detail: e.to_string(),
    })
}

/// Fails fast, with the command that fixes it, when a CRD is missing.
pub async fn check_crds(client: &Client) -> Result<(), StartError> {
    async fn probe<K>(api: Api<K>, kind: &'static str, crd: &'static str) -> Result<(), StartError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Err(StartError::CrdMissing { kind, crd }),
            Err(source) => Err(StartError::Api { source }),
        }
    }
    probe(
        Api::<Rollout>::all(client.clone()),
        "Rollout",
        "rollouts.fife.dev",
    )
    .await?;
    probe(
        Api::<AnalysisRun>::all(client.clone()),
        "AnalysisRun",
        "analysisruns.fife.dev",
    )
    .await?;
    probe(
        Api::<AnalysisTemplate>::all(client.clone()),
        "AnalysisTemplate",
        "analysistemplates.fife.dev",
    )
    .await?;
    probe(
        Api::<ReleasePolicy>::all(client.clone()),
        "ReleasePolicy",
        "releasepolicies.fife.dev",
    )
    .await?;
    probe(
        Api::<Approval>::all(client.clone()),
        "Approval",
        "approvals.fife.dev",
    )
    .await?;
    probe(
        Api::<BreakGlass>::all(client.clone()),
        "BreakGlass",
        "breakglasses.fife.dev",
    )
    .await?;
    probe(
        Api::<ClusterAnalysisTemplate>::all(client.clone()),
        "ClusterAnalysisTemplate",
        "clusteranalysistemplates.fife.dev",
    )
    .await?;
    Ok(())
}

/// A key file, named by `id` when one is given.
fn read_key(path: &std::path::Path, id: Option<&String>) -> Result<SigningKey, StartError> {
    let key = SigningKey::from_file(path).map_err(|e| StartError::Audit {
        detail: e.to_string(),
    })?;
    Ok(match id {
        Some(id) => key.with_id(id.clone()),
        None => key,
    })
}

fn open_audit(
    config: &ControllerConfig,
    metrics: &Metrics,
    client: &Client,
) -> Result<AuditLog, StartError> {
    let audit_err = |detail: String| StartError::Audit { detail };
    let key = match &config.audit_hmac_key_file {
        Some(path) => Some(read_key(path, config.audit_key_id.as_ref())?),
        None => None,
    };
    let log = match &config.audit_log {
        Some(path) => {
            let (log, recovered) = AuditLog::open_file(
                path,
                key.clone(),
                Actor::controller(&config.identity),
                chrono::Utc::now(),
            )
            .map_err(|e| audit_err(e.to_string()))?;
            if let Some(r) = recovered {
                // A record like any other: the written count matches the lines of the log.
                metrics.audit_written();
                tracing::warn!(
                    seq = r.record.seq,
                    "recovered a torn last record in the audit log"
                );
            }
            log
        }
        None => {
            tracing::warn!(
                "no --audit-log: audit records go to the structured log only and are not durable"
            );
            AuditLog::new(ChainHead::genesis(), key.clone())
        }
    };
    let mut log = log.with_notifier(TracingSink);
    // A head is only worth publishing for a durable log.
    if let (Some(path), Some(namespace)) = (&config.audit_log, &config.audit_head_namespace) {
        let start = log.head().last().map(|(seq, hash)| (seq, hash.to_owned()));
        let target = runtime::audit_head::HeadTarget {
            namespace: namespace.clone(),
            identity: config.identity.clone(),
            log: path.display().to_string(),
        };
        log = log.with_notifier(runtime::audit_head::spawn(
            client.clone(),
            target,
            key,
            start,
        ));
    }
    if let Some(url) = &config.webhook_url {
        let signing_key = match &config.webhook_hmac_key_file {
            Some(path) => Some(read_key(path, config.webhook_key_id.as_ref())?),
            None => None,
        };
        let notifier = WebhookNotifier::spawn(WebhookConfig {
            signing_key,
            ..WebhookConfig::new(url.clone())
        })
        .map_err(|e| audit_err(e.to_string()))?;
        log = log.with_notifier(notifier);
    }
    Ok(log)
}

fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The Rollouts in `store` that name `template` (namespaced in `namespace`, or cluster-scoped).
fn named_rollout(name: &str, namespace: Option<String>) -> ObjectRef<CompactGuard<Rollout>> {
    let reference = ObjectRef::new(name);
    match namespace {
        Some(ns) => reference.within(&ns),
        None => reference,
    }
}

fn rollouts_using(
    store: &Store<CompactGuard<Rollout>>,
    template: &str,
    namespace: Option<&str>,
) -> Vec<ObjectRef<CompactGuard<Rollout>>> {
    store
        .state()
        .into_iter()
        .filter(|cached| {
            // A Rollout whose text does not hold the name does not name the template; only
            // the others are decoded.
            if !cached.text().is_some_and(|text| text.contains(template)) {
                return false;
            }
            let guard = cached.guard();
            let Ok(rollout) = &guard.0 else { return false };
            if let Some(ns) = namespace
                && rollout.namespace().as_deref() != Some(ns)
            {
                return false;
            }
            let cluster = namespace.is_none();
            let canary = &rollout.spec.strategy.canary;
            let step_refs = canary.steps.iter().flat_map(|s| match s {
                fife_api::CanaryStep::Analysis(a) => a.templates.as_slice(),
                _ => &[],
            });
            let background = canary.analysis.iter().flat_map(|a| a.templates.iter());
            let blue_green = rollout.spec.strategy.blue_green.iter().flat_map(|b| {
                [&b.pre_promotion_analysis, &b.post_promotion_analysis]
                    .into_iter()
                    .flatten()
                    .flat_map(|a| a.templates.iter())
            });
            step_refs
                .chain(background)
                .chain(blue_green)
                .any(|r| r.template_name == template && r.cluster_scope == cluster)
        })
        .map(|cached| ObjectRef::from_obj(&*cached))
        .collect()
}

/// The Rollout a Deployment event wakes: the owner of a child, or the Rollout that names
/// the Deployment in `spec.workloadRef` (it labels that Deployment with `fife.dev/rollout`
/// but does not own it).
pub fn deployment_rollout<D: kube::Resource>(
    deployment: D,
) -> Option<ObjectRef<CompactGuard<Rollout>>> {
    let owner = deployment
        .owner_references()
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "Rollout"
                && o.api_version == fife_api::API_VERSION
        })
        .map(|o| o.name.clone());
    let name = owner.or_else(|| deployment.labels().get(ROLLOUT_LABEL).cloned())?;
    Some(named_rollout(&name, deployment.namespace()))
}

/// Reconcile requests for one Rollout that arrive within this long of each other are
/// merged into one: a change to a Rollout's children comes as a burst of watch events (the
/// apply, then the Deployment controller's status updates).
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// What of a Rollout wakes its reconcile: its generation (the spec), labels and
/// annotations (manual requests), and its deletion. Not its status: only the controller
/// writes that, and a reconcile that wrote one reconciles again itself when the new
/// status leads anywhere (see [`reconcile::settled`]).
pub fn rollout_triggers<R: kube::Resource>(rollout: &R) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = kube::Resource::meta(rollout);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0)
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// What of a Deployment wakes its Rollout: what the engine reads of it (generation,
/// revision label, the counts and `observedGeneration` of its status) and what `act`
/// compares (the spec), not its resourceVersion alone.
pub fn deployment_triggers(deployment: &Deployment) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    deployment.metadata.generation.hash(&mut hasher);
    deployment.metadata.labels.hash(&mut hasher);
    deployment
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0)
        .hash(&mut hasher);
    serde_json::to_string(&deployment.spec)
        .unwrap_or_default()
        .hash(&mut hasher);
    if let Some(status) = &deployment.status {
        (
            status.observed_generation,
            status.replicas,
            status.ready_replicas,
            status.updated_replicas,
            status.available_replicas,
        )
            .hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(config: ControllerConfig) -> Result<(), StartError> {
    let client = client(config.kubeconfig.as_deref()).await?;
    check_crds(&client).await?;
    let metrics = Arc::new(Metrics::new());
    let audit = Arc::new(open_audit(&config, &metrics, &client)?);
    let ready = Arc::new(AtomicBool::new(false));
    let (bound, server_task) = runtime::server::serve(
        config.metrics_addr,
        runtime::server::Health {
            metrics: Arc::clone(&metrics),
            ready: Arc::clone(&ready),
        },
    )
    .await
    .map_err(|source| StartError::Metrics {
        addr: config.metrics_addr,
        source,
    })?;
    tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");

    let (leadership, leader_task) = match &config.lease {
        Some(lease) => {
            let (leadership, task) = Leadership::elect(
                client.clone(),
                LeaseConfig {
                    // Each shard elects its own leader.
                    name: config.shard.lease_name(&lease.name),
                    namespace: lease.namespace.clone(),
                    identity: config.identity.clone(),
                    duration: lease.duration,
                    grace: lease.grace,
                },
                Arc::clone(&metrics),
            )
            .await?;
            (leadership, Some(task))
        }
        None => {
            metrics.set_leader(true);
            (Leadership::always(), None)
        }
    };

    let ns = config.namespace.as_deref();
    // Every watch of what a Rollout owns or runs selects this shard's objects only, so
    // another shard's never enter the caches (see runtime::shard).
    let children = watcher::Config::default().labels(&config.shard.children_selector());
    let in_shard = watcher::Config::default().labels(&config.shard.selector());
    let controller_config = controller::Config::default()
        .concurrency(config.concurrency.max(1))
        .debounce(DEBOUNCE);

    let (rollout_store, rollout_writer) = reflector::store();
    let (deployment_store, deployment_writer) = reflector::store();
    let (service_store, service_writer) = reflector::store();
    let (run_store, run_writer) = reflector::store();
    let (release_policy_store, release_policy_writer) = reflector::store();
    let (approval_store, approval_writer) = reflector::store();
    let (break_glass_store, break_glass_writer) = reflector::store();
    let caches = Caches::new(
        rollout_store.clone(),
        deployment_store,
        service_store,
        run_store,
    )
    .with_policies(release_policy_store)
    .with_release_requests(approval_store, break_glass_store);
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            caches,
            Arc::clone(&audit),
            Arc::clone(&metrics),
            leadership,
            config.identity.clone(),
        )
        .with_image_verifier(ImageVerifier::new(
            config.registry_plain_http.clone(),
            config.image_keys_namespace.clone(),
        ))
        .with_shard(config.shard.clone()),
    );

    let forget_ctx = Arc::clone(&ctx);
    let arrival_ctx = Arc::clone(&ctx);
    let cached_rollouts = rollout_store.clone();
    let rollout_events = watcher(
        api_for::<DeserializeGuard<Rollout>>(&client, ns),
        in_shard.clone(),
    )
    .default_backoff()
    .modify(runtime::caches::strip_guarded)
    // Before the store takes it: a Rollout new to the cache that already has a history
    // (moved from another shard, or sighted at start-up) waits for its handover.
    .inspect(move |event| {
        if let Ok(watcher::Event::Apply(guard) | watcher::Event::InitApply(guard)) = event
            && let Ok(rollout) = &guard.0
            && reconcile::handover::has_history(rollout)
            && cached_rollouts
                .get(
                    &ObjectRef::new(&guard.name_any())
                        .within(&guard.namespace().unwrap_or_default()),
                )
                .is_none()
        {
            arrival_ctx.arrived(&format!(
                "{}/{}",
                guard.namespace().unwrap_or_default(),
                guard.name_any()
            ));
        }
    })
    .map_ok(runtime::compact::compact_guard_event)
    .reflect(rollout_writer)
    .inspect(ctx.caches.noting("rollouts"))
    .inspect(move |event| match event {
        // A deleted Rollout's memory and metrics go with it (its children go by owner
        // reference); the reconcile never sees it again. So do those of a Rollout moved to
        // another shard: to this watch it left the selector, which is a delete.
        Ok(watcher::Event::Delete(guard)) => {
            let (namespace, name) = (guard.namespace().unwrap_or_default(), guard.name_any());
            forget_ctx.metrics.forget_rollout(&namespace, &name);
            forget_ctx.forget(&format!("{namespace}/{name}"));
        }
        Ok(watcher::Event::Apply(guard) | watcher::Event::InitApply(guard)) => {
            let key = format!(
                "{}/{}",
                guard.namespace().unwrap_or_default(),
                guard.name_any()
            );
            forget_ctx.sighted(&key, &guard.resource_version().unwrap_or_default());
        }
        _ => {}
    });
    let deployments = watcher(api_for::<Deployment>(&client, ns), children.clone())
        .default_backoff()
        .modify(runtime::caches::strip_deployment)
        .map_ok(runtime::compact::compact_event)
        .reflect(deployment_writer)
        .inspect(ctx.caches.noting("deployments"))
        .touched_objects()
        .predicate_filter(
            |d: &runtime::compact::Compact<Deployment>| deployment_triggers(&d.object()),
            PredicateConfig::default(),
        );
    let services = watcher(api_for::<Service>(&client, ns), children)
        .default_backoff()
        .modify(runtime::caches::strip_service)
        .map_ok(runtime::compact::compact_event)
        .reflect(service_writer)
        .inspect(ctx.caches.noting("services"))
        .touched_objects();
    let runs = watcher(
        api_for::<DeserializeGuard<AnalysisRun>>(&client, ns),
        in_shard.clone(),
    )
    .default_backoff()
    .modify(runtime::caches::strip_guarded)
    .reflect(run_writer)
    .inspect(ctx.caches.noting("analysisruns"))
    .touched_objects();

    let policy_events = watcher(
        Api::<DeserializeGuard<ReleasePolicy>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(release_policy_writer)
    .touched_objects();

    // What people create to meet or bypass a policy, cached: a governed Rollout reads them
    // on every reconcile.
    let approval_events = watcher(
        api_for::<DeserializeGuard<Approval>>(&client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(runtime::caches::strip_guarded)
    .reflect(approval_writer)
    .touched_objects();
    let break_glass_events = watcher(
        api_for::<DeserializeGuard<BreakGlass>>(&client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(runtime::caches::strip_guarded)
    .reflect(break_glass_writer)
    .touched_objects();

    let store = rollout_store.clone();
    let cluster_store = rollout_store.clone();
    let policy_store = rollout_store.clone();
    let namespace_filter = config.namespace.clone();
    let rollouts = Controller::for_stream(
        rollout_events
            .touched_objects()
            .predicate_filter(rollout_triggers, PredicateConfig::default()),
        rollout_store,
    )
    .watches_stream(deployments, deployment_rollout)
    .owns_stream(services)
    .owns_stream(runs)
    .watches(
        api_for::<DeserializeGuard<AnalysisTemplate>>(&client, ns),
        watcher::Config::default(),
        move |t| match &t.0 {
            Ok(t) => rollouts_using(
                &store,
                &t.name_any(),
                Some(&t.namespace().unwrap_or_default()),
            ),
            Err(_) => Vec::new(),
        },
    )
    // An Approval or a BreakGlass wakes the Rollout it names.
    .watches_stream(approval_events, |a: DeserializeGuard<Approval>| {
        match &a.0 {
            Ok(a) => vec![named_rollout(&a.spec.rollout, a.namespace())],
            Err(_) => Vec::new(),
        }
    })
    .watches_stream(
        break_glass_events,
        |b: DeserializeGuard<BreakGlass>| match &b.0 {
            Ok(b) => vec![named_rollout(&b.spec.rollout, b.namespace())],
            Err(_) => Vec::new(),
        },
    )
    // A ReleasePolicy may govern any Rollout: all are looked at again when one changes.
    .watches_stream(policy_events, move |_: DeserializeGuard<ReleasePolicy>| {
        policy_store
            .state()
            .iter()
            .filter(|cached| cached.is_valid())
            .map(|r| named_rollout(&r.name_any(), r.namespace()))
            .collect::<Vec<_>>()
    });
    let rollouts = if namespace_filter.is_none() {
        rollouts.watches(
            Api::<DeserializeGuard<ClusterAnalysisTemplate>>::all(client.clone()),
            watcher::Config::default(),
            move |t| match &t.0 {
                Ok(t) => rollouts_using(&cluster_store, &t.name_any(), None),
                Err(_) => Vec::new(),
            },
        )
    } else {
        rollouts
    };
    let rollout_loop = rollouts
        .with_config(controller_config.clone())
        .shutdown_on_signal()
        .run(
            reconcile::reconcile,
            reconcile::error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "rollout controller event");
            }
        });
    let run_loop = Controller::new(
        api_for::<DeserializeGuard<AnalysisRun>>(&client, ns),
        in_shard,
    )
    .with_config(controller_config)
    .shutdown_on_signal()
    .run(
        analysis::runner::reconcile_run,
        analysis::runner::run_error_policy,
        Arc::clone(&ctx),
    )
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "analysis controller event");
        }
    });
    ready.store(true, Ordering::Relaxed);
    tracing::info!(identity = %config.identity, namespace = ?config.namespace, shard = %config.shard, "controller started");
    futures::join!(rollout_loop, run_loop);

    tracing::info!("shutting down");
    ready.store(false, Ordering::Relaxed);
    if let Some(task) = leader_task {
        task.abort();
    }
    server_task.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn mk_rollout(namespace: &str, name: &str, step: &str, background: &str) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": fife_api::API_VERSION, "kind": "Rollout",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "strategy": {"canary": {
                "steps": [{"analysis": {"templates": [
                    {"templateName": step, "clusterScope": step.starts_with("cluster-")}]}}],
                "analysis": {"templates": [
                    {"templateName": background, "clusterScope": background.starts_with("cluster-")}]}
            }}}
        }))
        .unwrap()
    }

    #[test]
    fn a_deployment_wakes_its_owner_or_the_rollout_that_references_it() {
        let deployment =
            |value: serde_json::Value| -> Deployment { serde_json::from_value(value).unwrap() };
        let child = deployment(json!({
            "metadata": {"name": "web-stable", "namespace": "shop",
                "labels": {ROLLOUT_LABEL: "web"},
                "ownerReferences": [{"apiVersion": fife_api::API_VERSION, "kind": "Rollout",
                    "name": "web", "uid": "u1", "controller": true}]}
        }));
        assert_eq!(
            deployment_rollout(child),
            Some(ObjectRef::new("web").within("shop"))
        );
        let referenced = deployment(json!({
            "metadata": {"name": "legacy", "namespace": "shop", "labels": {ROLLOUT_LABEL: "web"}}
        }));
        assert_eq!(
            deployment_rollout(referenced),
            Some(ObjectRef::new("web").within("shop"))
        );
        let unrelated = deployment(json!({"metadata": {"name": "db", "namespace": "shop"}}));
        assert_eq!(deployment_rollout(unrelated), None);
    }

    #[test]
    fn a_template_change_wakes_exactly_the_rollouts_that_name_it() {
        let (reader, mut writer) = store::<CompactGuard<Rollout>>();
        for rollout in [
            mk_rollout("shop", "checkout", "latency", "errors"),
            mk_rollout("shop", "cart", "errors", "cluster-latency"),
            mk_rollout("blog", "posts", "latency", "other"),
        ] {
            writer.apply_watcher_event(&Event::Apply(CompactGuard::new(DeserializeGuard(Ok(
                rollout,
            )))));
        }
        let names = |template: &str, namespace: Option<&str>| {
            let mut names: Vec<_> = rollouts_using(&reader, template, namespace)
                .into_iter()
                .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
                .collect();
            names.sort();
            names
        };
        // By a step, in the template's namespace only.
        assert_eq!(names("latency", Some("shop")), ["shop/checkout"]);
        // By the background analysis.
        assert_eq!(
            names("errors", Some("shop")),
            ["shop/cart", "shop/checkout"]
        );
        // A cluster template is named with clusterScope, from every namespace.
        assert_eq!(names("cluster-latency", None), ["shop/cart"]);
        // A namespaced template never matches a clusterScope reference of the same name.
        assert!(names("cluster-latency", Some("shop")).is_empty());
        assert!(names("missing", Some("shop")).is_empty());
    }
}
