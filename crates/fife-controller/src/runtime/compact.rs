//! How a watch cache holds an object whose Rust type is far larger than its data: the
//! metadata as a struct (what stores, owners and predicates read) and everything else as the
//! JSON text it was decoded from, decoded again when the reconcile reads the object.
//!
//! [`CompactGuard`] does the same for a [`DeserializeGuard`], keeping an object that did not
//! decode as its error.
//!
//! Why: k8s-openapi types keep every optional field inline. A Deployment holds its whole
//! `PodSpec` and each container every field of `Container`, set or not, so a cached
//! two-replica Deployment with one container took about 7 KiB of heap and a Service about
//! 2.6 KiB (heaptrack, 1,000 Rollouts, docs/BENCHMARKS.md), where their JSON text is a few
//! hundred bytes. With two or three Deployments and a Service per Rollout, that difference
//! is most of the controller's memory at 10,000 Rollouts. Decoding a Deployment again costs
//! microseconds, once per reconcile that reads it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The static half of `Resource` for a wrapper of `K`: it is the kind it holds.
macro_rules! kind_of_k {
    () => {
        fn kind(dt: &()) -> Cow<'_, str> {
            K::kind(dt)
        }
        fn group(dt: &()) -> Cow<'_, str> {
            K::group(dt)
        }
        fn version(dt: &()) -> Cow<'_, str> {
            K::version(dt)
        }
        fn api_version(dt: &()) -> Cow<'_, str> {
            K::api_version(dt)
        }
        fn plural(dt: &()) -> Cow<'_, str> {
            K::plural(dt)
        }
    };
}

/// `K` with its metadata kept as it is and the rest as JSON text.
pub struct Compact<K> {
    metadata: ObjectMeta,
    /// The object as JSON with an empty `metadata`.
    rest: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Compact<K>
where
    K: Resource + Serialize + DeserializeOwned,
{
    /// `object`, compacted.
    pub fn new(mut object: K) -> Self {
        let metadata = std::mem::take(object.meta_mut());
        // Serializing a k8s-openapi type cannot fail: it is plain data with string keys.
        let rest = serde_json::to_string(&object)
            .unwrap_or_else(|e| unreachable!("a Kubernetes object serializes: {e}"));
        Compact {
            metadata,
            rest: rest.into_boxed_str(),
            kind: PhantomData,
        }
    }

    /// The object as it was given to [`Compact::new`].
    pub fn object(&self) -> K {
        // The text is what `new` wrote from a `K`, and these types read back what they write
        // (the round trip is tested below).
        let mut object: K = serde_json::from_str(&self.rest)
            .unwrap_or_else(|e| unreachable!("a compacted object reads back: {e}"));
        *object.meta_mut() = self.metadata.clone();
        object
    }

    /// Bytes of JSON text held besides the metadata.
    pub fn text_len(&self) -> usize {
        self.rest.len()
    }
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            metadata: self.metadata.clone(),
            rest: self.rest.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("kind", &K::kind(&()))
            .field("name", &self.metadata.name)
            .field("namespace", &self.metadata.namespace)
            .field("bytes", &self.rest.len())
            .finish()
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    kind_of_k!();
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Read as `K`, then compacted (the controller's streams require objects that deserialize).
impl<'de, K> Deserialize<'de> for Compact<K>
where
    K: Resource + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(deserializer).map(Compact::new)
    }
}

/// A [`DeserializeGuard`] as a cache keeps it: the object [`Compact`] when it decoded, its
/// error (with its metadata) when it did not. The Rollout cache holds these: a Rollout
/// carries its pod template as a Deployment does.
pub struct CompactGuard<K>(Result<Compact<K>, InvalidObject>);

impl<K> CompactGuard<K>
where
    K: Resource + Serialize + DeserializeOwned,
{
    pub fn new(guard: DeserializeGuard<K>) -> Self {
        CompactGuard(guard.0.map(Compact::new))
    }

    /// The guard as it was given to [`CompactGuard::new`].
    pub fn guard(&self) -> DeserializeGuard<K> {
        DeserializeGuard(match &self.0 {
            Ok(compact) => Ok(compact.object()),
            Err(invalid) => Err(invalid.clone()),
        })
    }

    /// Whether the object decoded.
    pub fn is_valid(&self) -> bool {
        self.0.is_ok()
    }

    /// The JSON text besides the metadata, when the object decoded: a cheap test for a
    /// word before decoding the whole object.
    pub fn text(&self) -> Option<&str> {
        self.0.as_ref().ok().map(|c| &*c.rest)
    }
}

impl<K> Clone for CompactGuard<K> {
    fn clone(&self) -> Self {
        CompactGuard(self.0.clone())
    }
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for CompactGuard<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(compact) => compact.fmt(f),
            Err(invalid) => f.debug_tuple("Invalid").field(invalid).finish(),
        }
    }
}

impl<K: Resource<DynamicType = ()>> Resource for CompactGuard<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    kind_of_k!();
    fn meta(&self) -> &ObjectMeta {
        match &self.0 {
            Ok(compact) => &compact.metadata,
            Err(invalid) => &invalid.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.0 {
            Ok(compact) => &mut compact.metadata,
            Err(invalid) => &mut invalid.metadata,
        }
    }
}

/// Read as a [`DeserializeGuard`], then compacted.
impl<'de, K> Deserialize<'de> for CompactGuard<K>
where
    K: Resource + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DeserializeGuard::<K>::deserialize(deserializer).map(CompactGuard::new)
    }
}

/// A watch event of guarded objects, compacted.
pub fn compact_guard_event<K>(
    event: watcher::Event<DeserializeGuard<K>>,
) -> watcher::Event<CompactGuard<K>>
where
    K: Resource + Serialize + DeserializeOwned,
{
    map_object(event, CompactGuard::new)
}

/// A watch event with its object compacted.
pub fn compact_event<K>(event: watcher::Event<K>) -> watcher::Event<Compact<K>>
where
    K: Resource + Serialize + DeserializeOwned,
{
    map_object(event, Compact::new)
}

/// The same event with `f` applied to its object, if it carries one (kube's
/// `Event::modify` keeps the type).
fn map_object<A, B>(event: watcher::Event<A>, f: impl FnOnce(A) -> B) -> watcher::Event<B> {
    match event {
        watcher::Event::Apply(k) => watcher::Event::Apply(f(k)),
        watcher::Event::Delete(k) => watcher::Event::Delete(f(k)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(k) => watcher::Event::InitApply(f(k)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
    use std::collections::BTreeMap;

    fn deployment() -> Deployment {
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        Deployment {
            metadata: ObjectMeta {
                name: Some("web-stable".into()),
                namespace: Some("default".into()),
                labels: Some(labels.clone()),
                resource_version: Some("42".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "fife.dev/v1alpha1".into(),
                    kind: "Rollout".into(),
                    name: "web".into(),
                    uid: "u-1".into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..LabelSelector::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "app".into(),
                            image: Some("web:1".into()),
                            ..Container::default()
                        }],
                        termination_grace_period_seconds: Some(30),
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                ready_replicas: Some(3),
                replicas: Some(3),
                ..DeploymentStatus::default()
            }),
        }
    }

    #[test]
    fn an_object_reads_back_as_it_was_given() {
        let d = deployment();
        let compact = Compact::new(d.clone());
        assert_eq!(compact.object(), d);
        assert_eq!(compact.meta(), &d.metadata);
        let service = Service {
            metadata: d.metadata.clone(),
            ..Service::default()
        };
        assert_eq!(Compact::new(service.clone()).object(), service);
    }

    #[test]
    fn it_is_the_kind_it_holds_and_deserializes_from_that_kinds_json() {
        assert_eq!(Compact::<Deployment>::kind(&()), "Deployment");
        assert_eq!(Compact::<Deployment>::api_version(&()), "apps/v1");
        assert_eq!(Compact::<Deployment>::plural(&()), "deployments");
        let json = serde_json::to_string(&deployment()).unwrap();
        let compact: Compact<Deployment> = serde_json::from_str(&json).unwrap();
        assert_eq!(compact.object(), deployment());
    }

    /// What the cache saves: the metadata is the same struct, and the text of the rest is a
    /// fraction of the inline size of the type it replaces.
    #[test]
    fn the_text_is_smaller_than_the_type_it_replaces() {
        let compact = Compact::new(deployment());
        let inline = std::mem::size_of::<DeploymentSpec>() + std::mem::size_of::<Container>();
        assert!(
            compact.text_len() * 4 < inline,
            "{} bytes of text against {inline} bytes of spec and one container",
            compact.text_len()
        );
    }

    #[test]
    fn a_guard_keeps_the_object_or_its_error() {
        let valid = DeserializeGuard(Ok(deployment()));
        let compact = CompactGuard::new(valid);
        assert!(compact.is_valid());
        assert_eq!(compact.guard().0.unwrap(), deployment());
        assert!(compact.text().is_some_and(|t| t.contains("web:1")));
        assert_eq!(compact.meta().name.as_deref(), Some("web-stable"));

        let json = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "broken", "namespace": "default"},
            "spec": {"replicas": "three"}
        });
        let invalid: CompactGuard<Deployment> = serde_json::from_value(json).unwrap();
        assert!(!invalid.is_valid());
        assert_eq!(invalid.meta().name.as_deref(), Some("broken"));
        assert!(invalid.guard().0.is_err());
        assert_eq!(invalid.text(), None);
    }

    #[test]
    fn events_keep_their_kind() {
        let apply = compact_event(watcher::Event::Apply(deployment()));
        assert!(matches!(apply, watcher::Event::Apply(c) if c.object() == deployment()));
        assert!(matches!(
            compact_event::<Deployment>(watcher::Event::InitDone),
            watcher::Event::InitDone
        ));
    }
}
