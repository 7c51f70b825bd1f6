//! The in-memory object store: objects by group/resource/namespace/name, one global
//! resourceVersion counter, a bounded history of changes for watches, and the write rules
//! every verb shares (uid, creationTimestamp, generation, optimistic concurrency,
//! finalizers, deletion with ownerReference garbage collection).

use super::admission::{Admission, Attempt, Operation};
use super::discovery::{Catalogue, ResourceType};
use super::selector::Selector;
use super::status::ApiError;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Group and plural: objects are stored once per resource, whatever version asks.
pub type GroupResource = (String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watches replay it.
#[derive(Debug, Clone)]
pub struct Change {
    pub revision: u64,
    pub resource: GroupResource,
    pub namespace: String,
    pub kind: ChangeKind,
    pub object: Arc<Value>,
    /// The object before the change, so selector-filtered watches can turn a change that
    /// leaves the selection into DELETED and one that enters it into ADDED.
    pub previous: Option<Arc<Value>>,
}

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// Shared with the store: serialize them, clone only to change them. Their
    /// `apiVersion` is the stored one; see [`with_version`].
    pub items: Vec<Arc<Value>>,
    pub revision: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// The store; the server wraps it in one mutex so every write is atomic and ordered.
#[derive(Debug)]
pub struct Store {
    pub catalogue: Catalogue,
    /// Shared with the history: a change and the current object are one allocation.
    objects: BTreeMap<GroupResource, BTreeMap<(String, String), Arc<Value>>>,
    revision: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches starting before this revision get 410 Gone: their events are gone.
    compacted: u64,
    changes: broadcast::Sender<Arc<Change>>,
    uid_seed: u64,
    /// Owner uid → the objects that reference it, so garbage collection does not scan
    /// the whole store on every delete.
    dependents_by_owner: HashMap<String, BTreeSet<ObjectKey>>,
    /// Every live object's uid.
    uids: HashSet<String>,
}

/// An object's place in the store: group/resource, namespace, name.
type ObjectKey = (GroupResource, String, String);

fn owner_uids(object: Option<&Value>) -> Vec<String> {
    object
        .and_then(|o| o["metadata"]["ownerReferences"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect()
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn key_of(rt: &ResourceType) -> GroupResource {
    (rt.group.clone(), rt.plural.clone())
}

/// Lowercase RFC 1123 subdomain, as most kinds require for `metadata.name`; RBAC kinds
/// only need a valid path segment (`system:discovery`).
fn valid_name(rt: &ResourceType, name: &str) -> bool {
    if rt.group == "rbac.authorization.k8s.io" {
        return !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('/')
            && !name.contains('%');
    }
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Everything but metadata (and status, for kinds with a status subresource): what a
/// change must touch to bump `metadata.generation`.
fn spec_view(rt: &ResourceType, object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if rt.has_status {
            m.remove("status");
        }
    }
    v
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (changes, _) = broadcast::channel(16_384);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let mut store = Self {
            catalogue: Catalogue::with_builtins(),
            objects: BTreeMap::new(),
            revision: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            changes,
            uid_seed: seed,
            dependents_by_owner: HashMap::new(),
            uids: HashSet::new(),
        };
        let ns = store
            .catalogue
            .get("", "v1", "namespaces")
            .cloned()
            .expect("namespaces are built in");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name },
                "spec": { "finalizers": ["kubernetes"] }, "status": { "phase": "Active" } });
            store
                .create(&ns, "", object, "kube-apiserver")
                .expect("fresh store accepts the default namespaces");
        }
        store
    }

    /// Stores the default roles and bindings of a cluster that authorizes with RBAC
    /// ([`super::authz::bootstrap_policy`]).
    pub fn add_bootstrap_policy(&mut self) {
        for object in super::authz::bootstrap_policy() {
            let plural = match object["kind"].as_str() {
                Some("ClusterRole") => "clusterroles",
                _ => "clusterrolebindings",
            };
            let rt = self
                .catalogue
                .get("rbac.authorization.k8s.io", "v1", plural)
                .cloned()
                .expect("RBAC kinds are built in");
            self.create(&rt, "", object, "kube-apiserver")
                .expect("a fresh store accepts the bootstrap policy");
        }
    }

    /// Every stored object of a type, across namespaces, shared with the store.
    pub fn objects_of(&self, rt: &ResourceType) -> Vec<Arc<Value>> {
        self.objects
            .get(&key_of(rt))
            .map(|objects| objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The stored Roles, ClusterRoles, RoleBindings and ClusterRoleBindings.
    pub fn rbac_policy(&self) -> super::authz::Policy {
        let all = |plural: &str| -> Vec<Arc<Value>> {
            self.catalogue
                .get("rbac.authorization.k8s.io", "v1", plural)
                .and_then(|rt| self.objects.get(&key_of(rt)))
                .map(|objects| objects.values().cloned().collect())
                .unwrap_or_default()
        };
        super::authz::Policy {
            roles: all("roles"),
            cluster_roles: all("clusterroles"),
            role_bindings: all("rolebindings"),
            cluster_role_bindings: all("clusterrolebindings"),
        }
    }

    /// A new unique string (uid-shaped), for tokens.
    pub(crate) fn fresh_id(&mut self) -> String {
        self.next_uid()
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    fn next_uid(&mut self) -> String {
        // SplitMix64 over a per-server seed: unique and uuid-shaped, no extra dependency.
        self.uid_seed = self.uid_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.uid_seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let hi = z;
        let lo = self.revision.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ z.rotate_left(17);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xfff,
            lo & 0xfff,
            (lo >> 16) & 0xffff_ffff_ffff
        )
    }

    fn record(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        kind: ChangeKind,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let change = Arc::new(Change {
            revision: self.revision,
            resource: key_of(rt),
            namespace: namespace.to_string(),
            kind,
            object,
            previous,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.revision;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Forgets all history: every watch resuming from an older revision gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.revision;
    }

    /// Changes after `revision` for a resource, or 410 Gone when they were compacted.
    pub fn changes_since(
        &self,
        resource: &GroupResource,
        revision: u64,
    ) -> Result<Vec<Arc<Change>>, ApiError> {
        if revision < self.compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {revision} ({})",
                self.compacted + 1
            )));
        }
        Ok(self
            .history
            .iter()
            .filter(|c| c.revision > revision && &c.resource == resource)
            .cloned()
            .collect())
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects
            .get(&(String::new(), "namespaces".to_string()))
            .is_some_and(|m| m.contains_key(&(String::new(), namespace.to_string())))
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&key_of(rt))
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .map(|o| with_version(rt, o))
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Lists objects (all namespaces when `namespace` is None) in name order, paged by
    /// `limit` with an opaque continue token.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &Selector,
        fields: &Selector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        let start = match continue_token {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut continue_key = None;
        let mut remaining = 0;
        if let Some(objects) = self.objects.get(&key_of(rt)) {
            let lower = match &start {
                Some(after) => std::ops::Bound::Excluded(after.clone()),
                None => std::ops::Bound::Unbounded,
            };
            for (key, object) in objects.range((lower, std::ops::Bound::Unbounded)) {
                if namespace.is_some_and(|ns| ns != key.0) {
                    continue;
                }
                if !labels.matches_labels(object) || !fields.matches_fields(object) {
                    continue;
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    remaining += 1;
                    continue;
                }
                items.push(object.clone());
                continue_key = Some(key.clone());
            }
        }
        let continue_token = if remaining > 0 {
            continue_key.map(|k| encode_continue(&k))
        } else {
            None
        };
        Ok(Page {
            items,
            revision: self.revision,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    fn check_namespace(
        &self,
        rt: &ResourceType,
        namespace: &str,
        object: &Value,
    ) -> Result<(), ApiError> {
        let body_ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(namespace);
        if rt.namespaced && body_ns != namespace {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({namespace})"
            )));
        }
        if rt.namespaced && !self.namespace_exists(namespace) {
            return Err(ApiError::namespace_not_found(namespace));
        }
        Ok(())
    }

    /// Creates an object; 409 AlreadyExists when the name is taken.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        object: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        self.create_or_check(rt, namespace, object, manager, false, None)
    }

    /// Creates an object, or with `dry_run` only checks that it could be and returns it
    /// as it would be stored. With `admission`, the validating admission policies judge
    /// the object as it would be stored ([`super::admission`]).
    pub fn create_or_check(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
        manager: &str,
        dry_run: bool,
        admission: Option<&mut Admission>,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        check_kind(rt, &object)?;
        if let Some(schema) = &rt.schema {
            super::schema::prune_and_default(&mut object, schema);
        }
        self.check_namespace(rt, namespace, &object)?;
        let meta = object["metadata"].as_object().cloned().unwrap_or_default();
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let Some(prefix) = meta.get("generateName").and_then(Value::as_str) else {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name",
                    "name or generateName is required",
                ));
            };
            let suffix = self.next_uid().replace('-', "");
            name = format!("{prefix}{}", &suffix[..5]);
        }
        if !valid_name(rt, &name) {
            return Err(ApiError::invalid(
                rt,
                &name,
                "metadata.name",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            ));
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let key = (
            if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name.clone(),
        );
        if self
            .objects
            .get(&key_of(rt))
            .is_some_and(|m| m.contains_key(&key))
        {
            return Err(ApiError::already_exists(rt, &name));
        }
        // Status is the server's and controllers' to write, never the creator's.
        if rt.has_status
            && let Some(m) = object.as_object_mut()
        {
            m.remove("status");
            if rt.group.is_empty() && rt.plural == "namespaces" {
                m.insert("status".into(), json!({ "phase": "Active" }));
            }
        }
        let now = now_rfc3339();
        let uid = self.next_uid();
        let revision = self.revision + 1;
        {
            let m = object["metadata"]
                .as_object_mut()
                .expect("checked object above");
            m.insert("name".into(), json!(name));
            if rt.namespaced {
                m.insert("namespace".into(), json!(namespace));
            } else {
                m.remove("namespace");
            }
            m.insert("uid".into(), json!(uid));
            m.insert("resourceVersion".into(), json!(revision.to_string()));
            m.insert("generation".into(), json!(1));
            m.insert("creationTimestamp".into(), json!(now));
            m.remove("deletionTimestamp");
        }
        if !manager.is_empty() && object["metadata"].get("managedFields").is_none() {
            let mut tracked = object.clone();
            super::apply::record_update(
                &json!({}),
                &mut tracked,
                manager,
                "",
                &rt.api_version(),
                &now,
            );
            object = tracked;
        }
        if rt.group == "apiextensions.k8s.io" {
            accept_crd(&mut object);
        }
        check_schema(rt, &name, &object, None)?;
        if let Some(admission) = admission {
            super::admission::admit(
                self,
                admission,
                Attempt {
                    rt,
                    operation: Operation::Create,
                    namespace: &key.0,
                    name: &name,
                    object: Some(&object),
                    old_object: None,
                },
            )?;
        }
        if dry_run {
            return Ok(with_version(rt, &object));
        }
        if rt.group == "apiextensions.k8s.io" {
            self.catalogue.register_crd(&object);
        }
        self.revision = revision;
        let stored = Arc::new(object);
        self.objects
            .entry(key_of(rt))
            .or_default()
            .insert(key.clone(), stored.clone());
        self.reindex(rt, &key, None, Some(&stored));
        self.record(rt, &key.0, ChangeKind::Added, stored.clone(), None);
        Ok(with_version(rt, &stored))
    }

    /// Replaces an object after the caller has built the new version. Checks
    /// `metadata.resourceVersion` (409 Conflict when stale; required for custom
    /// resources), keeps server-owned metadata, bumps generation on spec changes, and
    /// completes a deletion when the last finalizer goes.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
    ) -> Result<Value, ApiError> {
        self.update_admitted(rt, namespace, name, object, None)
    }

    /// [`Store::update`], judged by the validating admission policies when `admission`
    /// is given; a dry-run admission stops there and returns the object as it would be
    /// stored.
    pub fn update_admitted(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Value,
        admission: Option<&mut Admission>,
    ) -> Result<Value, ApiError> {
        check_kind(rt, &object)?;
        if let Some(schema) = &rt.schema {
            super::schema::prune_and_default(&mut object, schema);
        }
        let ns = if rt.namespaced {
            namespace.to_string()
        } else {
            String::new()
        };
        let key = (ns.clone(), name.to_string());
        let old = self
            .objects
            .get(&key_of(rt))
            .and_then(|m| m.get(&key))
            .map(|o| (**o).clone())
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let body_name = object["metadata"]["name"].as_str().unwrap_or(name);
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if rt.namespaced {
            let body_ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(namespace);
            if body_ns != namespace {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({namespace})"
                )));
            }
        }
        match object["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            Some(rv)
                if rv
                    != old["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default() =>
            {
                return Err(ApiError::conflict(rt, name));
            }
            None if rt.custom => {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    "metadata.resourceVersion",
                    "must be specified for an update",
                ));
            }
            _ => {}
        }
        {
            let meta = object["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata is missing"))?;
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "name",
            ] {
                match old["metadata"].get(field) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
            meta.insert("generation".into(), old["metadata"]["generation"].clone());
        }
        if old["metadata"].get("deletionTimestamp").is_some() {
            let old_finalizers = old["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let new_finalizers = object["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if new_finalizers.iter().any(|f| !old_finalizers.contains(f)) {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if spec_view(rt, &old) != spec_view(rt, &object) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object["metadata"]["generation"] = json!(generation);
        }
        check_schema(rt, name, &object, Some(&old))?;
        if let Some(admission) = admission {
            super::admission::admit(
                self,
                admission,
                Attempt {
                    rt,
                    operation: Operation::Update,
                    namespace: &ns,
                    name,
                    object: Some(&object),
                    old_object: Some(&old),
                },
            )?;
            if admission.dry_run {
                return Ok(with_version(rt, &object));
            }
        }
        let unchanged = {
            let mut a = old.clone();
            let mut b = object.clone();
            a["metadata"]["resourceVersion"] = Value::Null;
            b["metadata"]["resourceVersion"] = Value::Null;
            strip_managed_times(&mut a);
            strip_managed_times(&mut b);
            a == b
        };
        if unchanged {
            // The real server does not bump resourceVersion for a no-op write.
            return Ok(with_version(rt, &old));
        }
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        if rt.group == "apiextensions.k8s.io" {
            accept_crd(&mut object);
            self.catalogue.register_crd(&object);
        }
        let finished = object["metadata"].get("deletionTimestamp").is_some()
            && object["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        let stored = Arc::new(object);
        let previous = self
            .objects
            .entry(key_of(rt))
            .or_default()
            .insert(key.clone(), stored.clone());
        self.reindex(rt, &key, previous.as_deref(), Some(&stored));
        self.record(rt, &ns, ChangeKind::Modified, stored.clone(), previous);
        if finished {
            self.remove(rt, &ns, name);
        }
        Ok(with_version(rt, &stored))
    }

    /// Deletes an object. With finalizers present it only marks the object
    /// (`deletionTimestamp`); otherwise it is removed and its dependents are collected.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        propagation: Propagation,
        precondition_uid: Option<&str>,
        precondition_rv: Option<&str>,
    ) -> Result<Value, ApiError> {
        let ns = if rt.namespaced {
            namespace.to_string()
        } else {
            String::new()
        };
        let key = (ns.clone(), name.to_string());
        let old = self
            .objects
            .get(&key_of(rt))
            .and_then(|m| m.get(&key))
            .map(|o| (**o).clone())
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if precondition_uid.is_some_and(|u| Some(u) != old["metadata"]["uid"].as_str()) {
            return Err(ApiError::conflict(rt, name));
        }
        if precondition_rv.is_some_and(|r| Some(r) != old["metadata"]["resourceVersion"].as_str()) {
            return Err(ApiError::conflict(rt, name));
        }
        let uid = old["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut finalizers = old["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if propagation == Propagation::Foreground && !self.dependents(&uid).is_empty() {
            let marker = json!("foregroundDeletion");
            if !finalizers.contains(&marker) {
                finalizers.push(marker);
            }
        }
        if propagation == Propagation::Orphan {
            self.orphan(&uid);
        }
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        if is_namespace && ["default", "kube-system", "kube-public"].contains(&name) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            ));
        }
        if !finalizers.is_empty() && !is_namespace {
            if old["metadata"].get("deletionTimestamp").is_some() {
                return Ok(with_version(rt, &old));
            }
            let mut marked = old.clone();
            marked["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            marked["metadata"]["finalizers"] = json!(finalizers);
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            marked["metadata"]["generation"] = json!(generation);
            self.revision += 1;
            marked["metadata"]["resourceVersion"] = json!(self.revision.to_string());
            let stored = Arc::new(marked.clone());
            let previous = self
                .objects
                .entry(key_of(rt))
                .or_default()
                .insert(key.clone(), stored.clone());
            self.reindex(rt, &key, previous.as_deref(), Some(&stored));
            self.record(rt, &ns, ChangeKind::Modified, stored, previous);
            if propagation == Propagation::Foreground {
                self.collect(&uid);
                self.finish_foreground(rt, &ns, name);
            }
            return self.get(rt, &ns, name).or(Ok(with_version(rt, &marked)));
        }
        if is_namespace {
            self.empty_namespace(name);
        }
        let removed = self.remove(rt, &ns, name).unwrap_or(old);
        Ok(with_version(rt, &removed))
    }

    fn finish_foreground(&mut self, rt: &ResourceType, ns: &str, name: &str) {
        let Ok(mut object) = self.get(rt, ns, name) else {
            return;
        };
        if let Some(list) = object["metadata"]["finalizers"].as_array_mut() {
            list.retain(|f| f != "foregroundDeletion");
        }
        let rv = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        object["metadata"]["resourceVersion"] = json!(rv);
        // Ignoring the error is right: the object may already be gone.
        let _ = self.update(rt, ns, name, object);
    }

    /// Removes an object for good and collects its dependents (background propagation).
    fn remove(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let removed = self
            .objects
            .get_mut(&key_of(rt))?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.reindex(
            rt,
            &(ns.to_string(), name.to_string()),
            Some(&removed),
            None,
        );
        self.revision += 1;
        let mut tombstone = (*removed).clone();
        tombstone["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.record(
            rt,
            ns,
            ChangeKind::Deleted,
            Arc::new(tombstone.clone()),
            Some(removed),
        );
        if rt.group == "apiextensions.k8s.io" {
            self.drop_custom_resources(&tombstone);
        }
        let uid = tombstone["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.collect(&uid);
        Some(tombstone)
    }

    /// Every object that lists `uid` among its ownerReferences, as (type, namespace, name).
    pub fn dependents(&self, uid: &str) -> Vec<(ResourceType, String, String)> {
        let Some(keys) = self.dependents_by_owner.get(uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|((group, plural), ns, name)| {
                let rt = self.catalogue.any_version(group, plural)?;
                Some((rt.clone(), ns.clone(), name.clone()))
            })
            .collect()
    }

    /// Garbage collection: a dependent whose owners are all gone is deleted; one that
    /// still has a live owner only loses the dead owner's reference.
    fn collect(&mut self, uid: &str) {
        for (rt, ns, name) in self.dependents(uid) {
            let Ok(object) = self.get(&rt, &ns, &name) else {
                continue;
            };
            let refs = object["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let live_owner = refs.iter().any(|r| {
                r["uid"].as_str() != Some(uid)
                    && self.uid_exists(r["uid"].as_str().unwrap_or_default())
            });
            if live_owner {
                let mut next = object.clone();
                let kept: Vec<Value> = refs
                    .into_iter()
                    .filter(|r| r["uid"].as_str() != Some(uid))
                    .collect();
                next["metadata"]["ownerReferences"] = json!(kept);
                let _ = self.update(&rt, &ns, &name, next);
            } else {
                let _ = self.delete(&rt, &ns, &name, Propagation::Background, None, None);
            }
        }
    }

    fn orphan(&mut self, uid: &str) {
        for (rt, ns, name) in self.dependents(uid) {
            let Ok(mut object) = self.get(&rt, &ns, &name) else {
                continue;
            };
            if let Some(refs) = object["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(uid));
            }
            let _ = self.update(&rt, &ns, &name, object);
        }
    }

    fn reindex(
        &mut self,
        rt: &ResourceType,
        key: &(String, String),
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        let object_key: ObjectKey = (key_of(rt), key.0.clone(), key.1.clone());
        for owner in owner_uids(old) {
            if let Some(set) = self.dependents_by_owner.get_mut(&owner) {
                set.remove(&object_key);
                if set.is_empty() {
                    self.dependents_by_owner.remove(&owner);
                }
            }
        }
        for owner in owner_uids(new) {
            self.dependents_by_owner
                .entry(owner)
                .or_default()
                .insert(object_key.clone());
        }
        if let Some(uid) = old.and_then(|o| o["metadata"]["uid"].as_str()) {
            self.uids.remove(uid);
        }
        if let Some(uid) = new.and_then(|o| o["metadata"]["uid"].as_str()) {
            self.uids.insert(uid.to_string());
        }
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains(uid)
    }

    fn empty_namespace(&mut self, namespace: &str) {
        let mut doomed = Vec::new();
        for ((group, plural), objects) in &self.objects {
            let Some(rt) = self.catalogue.any_version(group, plural) else {
                continue;
            };
            if !rt.namespaced {
                continue;
            }
            for (ns, name) in objects.keys() {
                if ns == namespace {
                    doomed.push((rt.clone(), name.clone()));
                }
            }
        }
        for (rt, name) in doomed {
            let _ = self.remove(&rt, namespace, &name);
        }
    }

    fn drop_custom_resources(&mut self, crd: &Value) {
        let group = crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(rt) = self.catalogue.any_version(&group, &plural).cloned() else {
            return;
        };
        let keys: Vec<(String, String)> = self
            .objects
            .get(&(group.clone(), plural.clone()))
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in keys {
            let _ = self.remove(&rt, &ns, &name);
        }
        self.catalogue
            .unregister_crd(crd["metadata"]["name"].as_str().unwrap_or_default());
    }

    /// Number of stored objects (for the load check).
    pub fn len(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Managed-field timestamps change on every write; a write that changes nothing else is
/// still a no-op.
fn strip_managed_times(object: &mut Value) {
    if let Some(list) = object["metadata"]
        .get_mut("managedFields")
        .and_then(Value::as_array_mut)
    {
        for e in list {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
}

/// A custom resource's structural-schema validation and CEL rules
/// ([`super::validation`]), or an admission policy's own checks
/// ([`super::admission::check_definition`]); other kinds are not validated here.
fn check_schema(
    rt: &ResourceType,
    name: &str,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let errors = match &rt.schema {
        Some(schema) => super::validation::validate(object, old, schema),
        None => super::admission::check_definition(rt, object),
    };
    if errors.is_empty() {
        Ok(())
    } else {
        Err(super::validation::invalid(rt, name, &errors))
    }
}

fn check_kind(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let kind = object["kind"].as_str().unwrap_or(&rt.kind);
    if kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the resource {} (expects {})",
            rt.qualified(),
            rt.kind
        )));
    }
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    if !api_version.is_empty() && api_version != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the apiVersion of the object ({api_version}) does not match the endpoint ({})",
            rt.api_version()
        )));
    }
    Ok(())
}

/// Sets apiVersion and kind as the requested version serves them.
pub fn with_version(rt: &ResourceType, object: &Value) -> Value {
    let mut v = object.clone();
    if v["apiVersion"].as_str() == Some(rt.api_version().as_str())
        && v["kind"].as_str() == Some(rt.kind.as_str())
    {
        return v;
    }
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    v
}

/// A CRD is accepted at once: its names are accepted and it is Established.
fn accept_crd(crd: &mut Value) {
    let now = now_rfc3339();
    let names = crd["spec"]["names"].clone();
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == json!(true))
        .map(|v| v["name"].clone())
        .collect();
    let condition = |t: &str, reason: &str| json!({ "type": t, "status": "True", "reason": reason, "message": "", "lastTransitionTime": now });
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [condition("NamesAccepted", "NoConflicts"), condition("Established", "InitialNamesAccepted")],
    });
}

fn encode_continue(key: &(String, String)) -> String {
    let raw = json!([key.0, key.1]).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::bad_request("the continue token is not valid: list again without it");
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .ok_or(())
                .and_then(|h| u8::from_str_radix(h, 16).map_err(|_| ()))
        })
        .collect();
    let raw = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let parts: Vec<String> = serde_json::from_str(&raw).map_err(|_| bad())?;
    match parts.as_slice() {
        [ns, name] => Ok((ns.clone(), name.clone())),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Value {
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name, "namespace": "default" }, "data": { "a": "1" } })
    }

    fn rt(store: &Store, group: &str, version: &str, plural: &str) -> ResourceType {
        store
            .catalogue
            .get(group, version, plural)
            .cloned()
            .unwrap()
    }

    #[test]
    fn create_sets_metadata_and_refuses_duplicates() {
        let mut s = Store::new(100);
        let cms = rt(&s, "", "v1", "configmaps");
        let created = s.create(&cms, "default", cm("a"), "test").unwrap();
        assert_eq!(created["metadata"]["generation"], json!(1));
        let deploys = rt(&s, "apps", "v1", "deployments");
        let with_status = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "d" }, "spec": {}, "status": { "readyReplicas": 9 } });
        let d = s.create(&deploys, "default", with_status, "test").unwrap();
        assert!(
            d.get("status").is_none(),
            "status is not the creator's to set"
        );
        assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
        let err = s.create(&cms, "default", cm("a"), "test").unwrap_err();
        assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
        let mut elsewhere = cm("b");
        elsewhere["metadata"]["namespace"] = json!("missing");
        let err = s.create(&cms, "missing", elsewhere, "test").unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (404, "namespaces \"missing\" not found")
        );
        assert_eq!(
            s.create(&cms, "other", cm("c"), "test").unwrap_err().code,
            400
        );
    }

    #[test]
    fn stale_update_conflicts_and_generation_tracks_spec_only() {
        let mut s = Store::new(100);
        let deploys = rt(&s, "apps", "v1", "deployments");
        let d = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "d", "namespace": "default" }, "spec": { "replicas": 1 } });
        let created = s.create(&deploys, "default", d, "t").unwrap();
        let mut status = created.clone();
        status["status"] = json!({ "replicas": 1 });
        let after_status = s.update(&deploys, "default", "d", status).unwrap();
        assert_eq!(after_status["metadata"]["generation"], json!(1));
        let mut spec = after_status.clone();
        spec["spec"]["replicas"] = json!(2);
        let after_spec = s.update(&deploys, "default", "d", spec).unwrap();
        assert_eq!(after_spec["metadata"]["generation"], json!(2));
        let mut stale = created.clone();
        stale["spec"]["replicas"] = json!(9);
        assert_eq!(
            s.update(&deploys, "default", "d", stale)
                .unwrap_err()
                .reason,
            "Conflict"
        );
    }

    #[test]
    fn history_bound_expires_old_revisions() {
        let mut s = Store::new(3);
        let cms = rt(&s, "", "v1", "configmaps");
        let start = s.revision();
        for i in 0..5 {
            s.create(&cms, "default", cm(&format!("c{i}")), "t")
                .unwrap();
        }
        let err = s
            .changes_since(&("".into(), "configmaps".into()), start)
            .unwrap_err();
        assert_eq!((err.code, err.reason), (410, "Expired"));
        assert_eq!(
            s.changes_since(&("".into(), "configmaps".into()), s.revision() - 2)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn deleting_an_owner_collects_dependents_and_finalizers_delay_deletion() {
        let mut s = Store::new(100);
        let cms = rt(&s, "", "v1", "configmaps");
        let owner = s.create(&cms, "default", cm("owner"), "t").unwrap();
        let mut child = cm("child");
        child["metadata"]["ownerReferences"] = json!([{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"] }]);
        child["metadata"]["finalizers"] = json!(["example.dev/hold"]);
        s.create(&cms, "default", child, "t").unwrap();
        s.delete(
            &cms,
            "default",
            "owner",
            Propagation::Background,
            None,
            None,
        )
        .unwrap();
        let held = s.get(&cms, "default", "child").unwrap();
        assert!(held["metadata"]["deletionTimestamp"].is_string());
        let mut released = held.clone();
        released["metadata"]["finalizers"] = json!([]);
        s.update(&cms, "default", "child", released).unwrap();
        assert_eq!(s.get(&cms, "default", "child").unwrap_err().code, 404);
    }

    #[test]
    fn foreground_deletion_removes_dependents_before_the_owner() {
        let mut s = Store::new(100);
        let cms = rt(&s, "", "v1", "configmaps");
        let start = s.revision();
        let owner = s.create(&cms, "default", cm("owner"), "t").unwrap();
        let mut child = cm("child");
        child["metadata"]["ownerReferences"] = json!([{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"] }]);
        s.create(&cms, "default", child, "t").unwrap();
        s.delete(
            &cms,
            "default",
            "owner",
            Propagation::Foreground,
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.get(&cms, "default", "owner").unwrap_err().code, 404);
        let deletions: Vec<String> = s
            .changes_since(&("".into(), "configmaps".into()), start)
            .unwrap()
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .map(|c| c.object["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(deletions, vec!["child", "owner"]);
        let ns = rt(&s, "", "v1", "namespaces");
        assert_eq!(
            s.delete(&ns, "", "default", Propagation::Background, None, None)
                .unwrap_err()
                .code,
            403
        );
    }

    #[test]
    fn list_pages_with_continue_tokens() {
        let mut s = Store::new(100);
        let cms = rt(&s, "", "v1", "configmaps");
        for i in 0..5 {
            s.create(&cms, "default", cm(&format!("c{i}")), "t")
                .unwrap();
        }
        let all = Selector::default();
        let first = s
            .list(&cms, Some("default"), &all, &all, Some(2), None)
            .unwrap();
        assert_eq!(first.items.len(), 2);
        let token = first.continue_token.unwrap();
        let second = s
            .list(&cms, Some("default"), &all, &all, Some(10), Some(&token))
            .unwrap();
        assert_eq!(second.items.len(), 3);
        assert!(second.continue_token.is_none());
    }
}
