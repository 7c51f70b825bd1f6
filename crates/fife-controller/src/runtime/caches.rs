//! The watch caches the reconcile reads instead of the API: one reflector store per kind
//! the controller owns or runs (Rollouts, their Deployments, Services and AnalysisRuns),
//! and the transforms that keep in them only what the controller reads.
//!
//! What is kept, per kind (everything else is dropped before it reaches a store):
//! - every kind: no `metadata.managedFields` (the largest part of a stored object, read by
//!   nobody here) and no `kubectl.kubernetes.io/last-applied-configuration` annotation (a
//!   second copy of the whole object when it was created with `kubectl apply`);
//! - Deployments and Services: no annotations at all (Fife sets none on them and reads
//!   none; pod template annotations are in the spec and kept), a Deployment's status
//!   without its conditions (the engine reads counts and `observedGeneration` only), and
//!   of a Service's spec only its selector and its ports' names and numbers;
//! - Rollouts and AnalysisRuns: their other annotations stay (manual requests and run
//!   arguments are read from them).
//!
//! The spec of a Deployment stays: it is compared with the desired one before an apply
//! (see [`crate::build::drift`]) and its pod template is the one an older revision is
//! rebuilt from. Rollouts, Deployments and Services are held [`Compact`]: their metadata
//! as it is, the rest as JSON text, read back when the reconcile asks for one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fife_api::{AnalysisRun, Rollout};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::compact::{Compact, CompactGuard};

/// Written by `kubectl apply`: the whole object again, as JSON.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The stores the reconcile reads. Cloning shares them.
#[derive(Clone)]
pub struct Caches {
    pub rollouts: Store<CompactGuard<Rollout>>,
    pub deployments: Store<Compact<Deployment>>,
    pub services: Store<Compact<Service>>,
    pub runs: Store<DeserializeGuard<AnalysisRun>>,
    /// ReleasePolicies, cluster-wide: every reconcile asks which govern its Rollout, and
    /// most clusters have none, so the answer must cost no request.
    pub policies: Option<Store<DeserializeGuard<fife_api::ReleasePolicy>>>,
    /// Approvals and BreakGlasses, read by every reconcile of a Rollout once any
    /// ReleasePolicy exists.
    pub approvals: Option<Store<DeserializeGuard<fife_api::Approval>>>,
    pub break_glasses: Option<Store<DeserializeGuard<fife_api::BreakGlass>>>,
    /// The last error of each watch that has not recovered since, by kind.
    watch_errors: Arc<Mutex<BTreeMap<&'static str, String>>>,
}

// The stores have no Debug; their sizes are what tells caches apart.
impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("rollouts", &self.rollouts.len())
            .field("deployments", &self.deployments.len())
            .field("services", &self.services.len())
            .field("runs", &self.runs.len())
            .finish()
    }
}

impl Caches {
    pub fn new(
        rollouts: Store<CompactGuard<Rollout>>,
        deployments: Store<Compact<Deployment>>,
        services: Store<Compact<Service>>,
        runs: Store<DeserializeGuard<AnalysisRun>>,
    ) -> Self {
        Caches {
            rollouts,
            deployments,
            services,
            runs,
            policies: None,
            approvals: None,
            break_glasses: None,
            watch_errors: Arc::default(),
        }
    }

    /// The same caches, with ReleasePolicies read from `policies`.
    pub fn with_policies(
        mut self,
        policies: Store<DeserializeGuard<fife_api::ReleasePolicy>>,
    ) -> Self {
        self.policies = Some(policies);
        self
    }

    /// The same caches, with Approvals and BreakGlasses read from these stores.
    pub fn with_release_requests(
        mut self,
        approvals: Store<DeserializeGuard<fife_api::Approval>>,
        break_glasses: Store<DeserializeGuard<fife_api::BreakGlass>>,
    ) -> Self {
        self.approvals = Some(approvals);
        self.break_glasses = Some(break_glasses);
        self
    }

    /// The Approvals of `namespace`, from their cache once it has listed; `None` before
    /// (or without a cache), when the caller reads them from the API.
    pub fn approvals(&self, namespace: &str) -> Option<Vec<fife_api::Approval>> {
        listed_in(self.approvals.as_ref()?, Some(namespace))
    }

    /// The BreakGlasses of `namespace`, as [`Caches::approvals`].
    pub fn break_glasses(&self, namespace: &str) -> Option<Vec<fife_api::BreakGlass>> {
        listed_in(self.break_glasses.as_ref()?, Some(namespace))
    }

    /// The ReleasePolicies, from their cache once it has listed; `None` before (or without
    /// a cache), when the caller reads them from the API.
    pub fn release_policies(&self) -> Option<Vec<fife_api::ReleasePolicy>> {
        listed_in(self.policies.as_ref()?, None)
    }

    /// Waits, at most `within`, until every store holds its first complete list: before
    /// that, a missing child in a store says nothing about the cluster, and acting on it
    /// would recreate children that exist. Otherwise a sentence naming the watch that has
    /// not listed and its last error (a 403 says which permission is missing).
    pub async fn ready(&self, within: Duration) -> Result<(), String> {
        let all = async {
            // The errors only say that a writer was dropped: the controller is shutting
            // down and the reconcile that waits is cancelled with it.
            let _ = self.rollouts.wait_until_ready().await;
            let _ = self.deployments.wait_until_ready().await;
            let _ = self.services.wait_until_ready().await;
            let _ = self.runs.wait_until_ready().await;
        };
        if tokio::time::timeout(within, all).await.is_ok() {
            return Ok(());
        }
        let errors = self.watch_errors.lock().unwrap_or_else(|e| e.into_inner());
        Err(match errors.iter().next() {
            Some((kind, error)) => format!(
                "the watch of {kind} has not listed them yet: {error}; check that the \
                 controller may list and watch {kind}"
            ),
            None => format!(
                "the watches have not listed their objects within {} s; the API server is \
                 slow or unreachable",
                within.as_secs()
            ),
        })
    }

    /// [`Caches::note`] for the watch of `kind`, to inspect its stream with.
    pub fn noting<K>(
        &self,
        kind: &'static str,
    ) -> impl Fn(&Result<watcher::Event<K>, watcher::Error>) + Send + Sync + 'static {
        let caches = self.clone();
        move |event| caches.note(kind, event)
    }

    /// Keeps the last error of the watch of `kind`, until it delivers again.
    pub fn note<K>(&self, kind: &'static str, event: &Result<watcher::Event<K>, watcher::Error>) {
        let mut errors = self.watch_errors.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Err(e) => {
                errors.insert(kind, e.to_string());
            }
            Ok(_) => {
                errors.remove(kind);
            }
        }
    }

    /// The cached Deployment, read back from its compact form.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Deployment> {
        self.deployments
            .get(&ObjectRef::new(name).within(namespace))
            .map(|d| d.object())
    }

    /// Whether a Deployment of that name is cached, without reading it back.
    pub fn has_deployment(&self, namespace: &str, name: &str) -> bool {
        self.deployments
            .get(&ObjectRef::new(name).within(namespace))
            .is_some()
    }

    /// The cached Service, read back from its compact form.
    pub fn service(&self, namespace: &str, name: &str) -> Option<Service> {
        self.services
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| s.object())
    }

    /// The run, when it is cached and deserializes.
    pub fn run(&self, namespace: &str, name: &str) -> Option<AnalysisRun> {
        let guard = self.runs.get(&ObjectRef::new(name).within(namespace))?;
        guard.0.as_ref().ok().cloned()
    }
}

/// The objects that deserialize (of `namespace`, or all), once the store has its first
/// list; `None` before.
fn listed_in<K>(store: &Store<DeserializeGuard<K>>, namespace: Option<&str>) -> Option<Vec<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    // Ready means the first complete list arrived; polled once, never awaited.
    futures::FutureExt::now_or_never(store.wait_until_ready())?.ok()?;
    Some(
        store
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|object| namespace.is_none() || object.meta().namespace.as_deref() == namespace)
            .cloned()
            .collect(),
    )
}

/// Drops what no kind's reader needs: managed fields and the last-applied copy.
pub fn strip_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A Deployment as the store keeps it.
pub fn strip_deployment(deployment: &mut Deployment) {
    strip_metadata(&mut deployment.metadata);
    deployment.metadata.annotations = None;
    if let Some(status) = &mut deployment.status {
        status.conditions = None;
    }
}

/// A Service as the store keeps it: its selector and its ports' names and numbers, what
/// `act` compares before applying one; the rest of the spec (cluster IPs, families,
/// policies the API server defaults) is never read.
pub fn strip_service(service: &mut Service) {
    strip_metadata(&mut service.metadata);
    service.metadata.annotations = None;
    service.status = None;
    if let Some(spec) = service.spec.take() {
        service.spec = Some(ServiceSpec {
            selector: spec.selector,
            ports: spec.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|p| ServicePort {
                        name: p.name,
                        port: p.port,
                        ..ServicePort::default()
                    })
                    .collect()
            }),
            ..ServiceSpec::default()
        });
    }
}

/// A Rollout or AnalysisRun as the store keeps it; one that does not deserialize is kept
/// as it is (it carries only its error).
pub fn strip_guarded<K: kube::Resource>(guard: &mut DeserializeGuard<K>) {
    if let Ok(object) = &mut guard.0 {
        strip_metadata(object.meta_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use std::collections::BTreeMap;

    fn approval(namespace: &str, name: &str) -> DeserializeGuard<fife_api::Approval> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fife.dev/v1alpha1", "kind": "Approval",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"rollout": "web", "rolloutUid": "u", "revision": "r", "digests": [],
                     "approver": "bob", "groups": []}
        }))
        .unwrap()
    }

    /// Before its first complete list a cache says nothing (the caller lists from the API);
    /// after it, the objects of the namespace asked for, or of every namespace.
    #[test]
    fn release_requests_come_from_the_cache_once_it_has_listed() {
        let (store, mut writer) = kube::runtime::reflector::store();
        let (glass, mut glass_writer) = kube::runtime::reflector::store();
        let (policies, _) = kube::runtime::reflector::store();
        let (r, _) = kube::runtime::reflector::store();
        let (d, _) = kube::runtime::reflector::store();
        let (sv, _) = kube::runtime::reflector::store();
        let (runs, _) = kube::runtime::reflector::store();
        let caches = Caches::new(r, d, sv, runs)
            .with_policies(policies)
            .with_release_requests(store, glass);
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(approval("shop", "a1")));
        writer.apply_watcher_event(&watcher::Event::InitApply(approval("blog", "a2")));
        assert!(caches.approvals("shop").is_none(), "not listed yet");
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let names = |list: Vec<fife_api::Approval>| -> Vec<String> {
            list.iter()
                .map(|a| a.metadata.name.clone().unwrap())
                .collect()
        };
        assert_eq!(names(caches.approvals("shop").unwrap()), ["a1"]);
        assert_eq!(
            names(caches.approvals("other").unwrap()),
            Vec::<String>::new()
        );
        assert!(caches.break_glasses("shop").is_none());
        glass_writer.apply_watcher_event(&watcher::Event::Init);
        glass_writer.apply_watcher_event(&watcher::Event::InitDone);
        assert_eq!(caches.break_glasses("shop").unwrap(), Vec::new());
        assert!(caches.release_policies().is_none());
    }

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("web-stable".into()),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some("fife".into()),
                ..ManagedFieldsEntry::default()
            }]),
            annotations: Some(BTreeMap::from([
                (LAST_APPLIED_ANNOTATION.to_owned(), "{}".to_owned()),
                ("fife.dev/manual".to_owned(), "promote".to_owned()),
            ])),
            labels: Some(BTreeMap::from([(
                fife_api::labels::ROLLOUT_LABEL.to_owned(),
                "web".to_owned(),
            )])),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn managed_fields_and_the_last_applied_copy_are_dropped_other_annotations_kept() {
        let mut m = meta();
        strip_metadata(&mut m);
        assert_eq!(m.managed_fields, None);
        let annotations = m.annotations.unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["fife.dev/manual"],
            "the annotations a Rollout's reader needs stay"
        );
        assert_eq!(m.labels.unwrap().len(), 1);
    }

    #[test]
    fn a_deployment_keeps_its_counts_and_labels_but_no_annotations_or_conditions() {
        let mut d = Deployment {
            metadata: meta(),
            status: Some(DeploymentStatus {
                ready_replicas: Some(2),
                observed_generation: Some(3),
                conditions: Some(vec![DeploymentCondition::default()]),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        };
        strip_deployment(&mut d);
        assert_eq!(d.metadata.annotations, None);
        assert_eq!(d.metadata.managed_fields, None);
        assert!(d.metadata.labels.is_some());
        let status = d.status.unwrap();
        assert_eq!(status.conditions, None);
        assert_eq!(
            (status.ready_replicas, status.observed_generation),
            (Some(2), Some(3))
        );
    }

    #[test]
    fn a_service_keeps_its_selector_and_port_numbers_only() {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-canary", "annotations": {"a": "b"}},
            "spec": {
                "selector": {"app": "web"},
                "clusterIP": "10.0.0.7",
                "ipFamilies": ["IPv4"],
                "ports": [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
            },
            "status": {"loadBalancer": {}}
        }))
        .unwrap();
        strip_service(&mut service);
        assert_eq!(
            serde_json::to_value(&service).unwrap(),
            serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web-canary"},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]}
            })
        );
    }

    #[test]
    fn a_rollout_that_does_not_deserialize_is_kept_as_its_error() {
        let mut guard: DeserializeGuard<Rollout> = serde_json::from_value(serde_json::json!({
            "apiVersion": fife_api::API_VERSION, "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": "three"}
        }))
        .unwrap();
        assert!(guard.0.is_err());
        strip_guarded(&mut guard);
        assert!(guard.0.is_err());
    }
}
