//! The catalogue of resource types the server knows (built-ins plus registered CRDs) and
//! the discovery documents (`/api`, `/apis`, group-version resource lists) built from it.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A printer column as declared by a CRD's `additionalPrinterColumns`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub column_type: String,
    pub json_path: String,
    pub description: String,
    pub priority: i64,
    pub format: String,
}

/// Where a `scale` subresource finds its numbers inside the object.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One servable resource: a group/version/plural with its kind and behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    pub scale: Option<ScalePaths>,
    pub printer_columns: Vec<PrinterColumn>,
    /// Custom resources refuse updates without `metadata.resourceVersion`, as the real
    /// server does; most built-ins accept them as unconditional updates.
    pub custom: bool,
    /// A CRD version's `openAPIV3Schema`, used to prune unknown fields and apply
    /// defaults as the real server does.
    pub schema: Option<Value>,
    /// A review (`SelfSubjectReview`, `SubjectAccessReview`...): create only, answered
    /// at once and never stored.
    pub review: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, the name the real server uses in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, the kind as the real server names it in `is invalid` messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            has_status: false,
            scale: None,
            printer_columns: Vec::new(),
            custom: false,
            schema: None,
            review: false,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn reviewed(mut self) -> Self {
        self.review = true;
        self
    }

    fn with_status(mut self) -> Self {
        self.has_status = true;
        self
    }
}

/// The types a fresh server serves: the built-ins Fife and `kubectl` touch.
pub fn builtin_types() -> Vec<ResourceType> {
    let deployment_scale = ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: Some(".status.selector".into()),
    };
    let mut deployments = ResourceType::builtin("apps", "v1", "deployments", "Deployment", true)
        .short(&["deploy"])
        .with_status();
    deployments.scale = Some(deployment_scale);
    deployments.categories = vec!["all".into()];
    deployments.printer_columns = vec![
        column(
            "Ready",
            "string",
            ".status.readyReplicas",
            "Ready replicas over desired",
        ),
        column(
            "Up-to-date",
            "integer",
            ".status.updatedReplicas",
            "Replicas running the current template",
        ),
        column(
            "Available",
            "integer",
            ".status.availableReplicas",
            "Available replicas",
        ),
    ];
    let mut pods = ResourceType::builtin("", "v1", "pods", "Pod", true)
        .short(&["po"])
        .with_status();
    pods.categories = vec!["all".into()];
    let mut services = ResourceType::builtin("", "v1", "services", "Service", true)
        .short(&["svc"])
        .with_status();
    services.categories = vec!["all".into()];
    let mut ingresses =
        ResourceType::builtin("networking.k8s.io", "v1", "ingresses", "Ingress", true)
            .short(&["ing"])
            .with_status();
    ingresses.printer_columns = vec![
        column("Class", "string", ".spec.ingressClassName", ""),
        column("Hosts", "string", ".spec.rules[*].host", ""),
        column(
            "Address",
            "string",
            ".status.loadBalancer.ingress[*].ip",
            "",
        ),
        PrinterColumn {
            name: "Age".into(),
            column_type: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
            description: String::new(),
            priority: 0,
            format: String::new(),
        },
    ];
    let mut types = vec![
        ResourceType::builtin("", "v1", "namespaces", "Namespace", false)
            .short(&["ns"])
            .with_status(),
        services,
        pods,
        ResourceType::builtin("", "v1", "events", "Event", true).short(&["ev"]),
        ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
        ResourceType::builtin("", "v1", "secrets", "Secret", true),
        ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true).short(&["sa"]),
        deployments,
        ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true).short(&["ev"]),
        ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true),
        ResourceType::builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
        ),
        ResourceType::builtin(
            super::admission::GROUP,
            "v1",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            false,
        )
        .with_status(),
        ResourceType::builtin(
            super::admission::GROUP,
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            false,
        ),
        ResourceType::builtin(
            "authentication.k8s.io",
            "v1",
            "selfsubjectreviews",
            "SelfSubjectReview",
            false,
        )
        .reviewed(),
        ResourceType::builtin(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
        )
        .reviewed(),
        ResourceType::builtin(
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            false,
        )
        .reviewed(),
        ResourceType::builtin(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
        )
        .reviewed(),
        {
            // A CRD on real clusters (Gateway API); served from the start so traffic
            // routing can be tested without installing it, with custom-resource rules.
            let mut routes = ResourceType::builtin(
                "gateway.networking.k8s.io",
                "v1",
                "httproutes",
                "HTTPRoute",
                true,
            )
            .with_status();
            routes.custom = true;
            routes.categories = vec!["gateway-api".into()];
            routes.printer_columns = vec![
                column("Hostnames", "string", ".spec.hostnames", ""),
                PrinterColumn {
                    name: "Age".into(),
                    column_type: "date".into(),
                    json_path: ".metadata.creationTimestamp".into(),
                    description: String::new(),
                    priority: 0,
                    format: String::new(),
                },
            ];
            routes
        },
        {
            let mut crd = ResourceType::builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
            )
            .short(&["crd", "crds"])
            .with_status();
            crd.printer_columns = vec![PrinterColumn {
                name: "Created At".into(),
                column_type: "date".into(),
                json_path: ".metadata.creationTimestamp".into(),
                description: String::new(),
                priority: 0,
                format: String::new(),
            }];
            crd
        },
        ingresses,
    ];
    // CRDs on real clusters with Istio; served from the start, like HTTPRoute.
    types.extend(super::istio::istio_types());
    types
}

fn column(name: &str, column_type: &str, path: &str, description: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        column_type: column_type.into(),
        json_path: path.into(),
        description: description.into(),
        priority: 0,
        format: String::new(),
    }
}

/// The resource types one CRD object declares (one per served version).
pub fn types_from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"] == Value::Bool(false) {
            continue;
        }
        let subresources = &version["subresources"];
        let scale = subresources.get("scale").map(|s| ScalePaths {
            spec_replicas: s["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .into(),
            status_replicas: s["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas")
                .into(),
            label_selector: s["labelSelectorPath"].as_str().map(str::to_string),
        });
        let printer_columns = version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: c["name"].as_str().unwrap_or_default().into(),
                column_type: c["type"].as_str().unwrap_or("string").into(),
                json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                description: c["description"].as_str().unwrap_or_default().into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                format: c["format"].as_str().unwrap_or_default().into(),
            })
            .collect();
        out.push(ResourceType {
            group: group.into(),
            version: version["name"].as_str().unwrap_or_default().into(),
            plural: plural.into(),
            singular: singular.clone(),
            kind: kind.into(),
            namespaced,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            has_status: subresources.get("status").is_some(),
            scale,
            printer_columns,
            custom: true,
            schema: version["schema"].get("openAPIV3Schema").cloned(),
            review: false,
        });
    }
    out
}

/// All servable types, indexed by group, version and plural.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    types: BTreeMap<(String, String, String), ResourceType>,
    /// Which CRD (by name) contributed which keys, so deleting it removes them again.
    by_crd: BTreeMap<String, Vec<(String, String, String)>>,
}

impl Catalogue {
    pub fn with_builtins() -> Self {
        let mut catalogue = Self::default();
        for t in builtin_types() {
            catalogue
                .types
                .insert((t.group.clone(), t.version.clone(), t.plural.clone()), t);
        }
        catalogue
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// Any served version of a group's resource; used where the version does not matter
    /// (garbage collection, namespace deletion).
    pub fn any_version(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .values()
            .find(|t| t.group == group && t.plural == plural)
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .values()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    pub fn register_crd(&mut self, crd: &Value) {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.unregister_crd(&name);
        let mut keys = Vec::new();
        for t in types_from_crd(crd) {
            let key = (t.group.clone(), t.version.clone(), t.plural.clone());
            keys.push(key.clone());
            self.types.insert(key, t);
        }
        self.by_crd.insert(name, keys);
    }

    pub fn unregister_crd(&mut self, name: &str) {
        for key in self.by_crd.remove(name).unwrap_or_default() {
            self.types.remove(&key);
        }
    }

    /// Group name → versions, in a stable order (built-in core group excluded).
    fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values().filter(|t| !t.group.is_empty()) {
            let versions = groups.entry(t.group.clone()).or_default();
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }

    pub fn api_versions(&self, address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": address }],
        })
    }

    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .map(|(name, versions)| group_json(name, versions))
            .collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    pub fn group(&self, group: &str) -> Option<Value> {
        self.groups().get(group).map(|versions| {
            let mut g = group_json(group, versions);
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        })
    }

    /// `/openapi/v3`: one entry per group-version. `kubectl` reads the per-group-version
    /// documents only to learn that PATCH accepts `fieldValidation` (so it validates on
    /// the server instead of downloading schemas); there are no schemas in them, so its
    /// client-side apply falls back to compiled-in strategic merge for built-ins and to
    /// JSON merge patch for custom resources, as it does against servers without schemas.
    pub fn openapi_v3_root(&self) -> Value {
        let mut paths = serde_json::Map::new();
        let mut gvs: Vec<(String, String)> = self
            .types
            .values()
            .map(|t| (t.group.clone(), t.version.clone()))
            .collect();
        gvs.dedup();
        gvs.sort();
        gvs.dedup();
        for (group, version) in gvs {
            let key = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let hash = self
                .openapi_v3_group(&group, &version)
                .map(|d| fingerprint(&d.to_string()))
                .unwrap_or_default();
            paths.insert(
                key.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}") }),
            );
        }
        json!({ "paths": paths })
    }

    /// `/openapi/v3/apis/{group}/{version}`: the item paths with their PATCH operation
    /// and the query parameters the server accepts.
    pub fn openapi_v3_group(&self, group: &str, version: &str) -> Option<Value> {
        let types: Vec<&ResourceType> = self
            .types
            .values()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        if types.is_empty() {
            return None;
        }
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let parameters: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]
            .iter()
            .map(|p| json!({ "name": p, "in": "query", "schema": { "type": "string", "uniqueItems": true } }))
            .collect();
        let mut paths = serde_json::Map::new();
        for t in types {
            let path = if t.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
            } else {
                format!("{prefix}/{}/{{name}}", t.plural)
            };
            let operation = json!({
                "operationId": format!("patch{}", t.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": { "group": t.group, "version": t.version, "kind": t.kind },
                "parameters": parameters,
                "responses": { "200": { "description": "OK" } },
            });
            paths.insert(path, json!({ "patch": operation }));
        }
        Some(json!({
            "openapi": "3.0.0",
            "info": { "title": "Kubernetes", "version": "v1.33.0" },
            "paths": paths,
            "components": { "schemas": {} },
        }))
    }

    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let types: Vec<&ResourceType> = self
            .types
            .values()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        if types.is_empty() {
            return None;
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let mut resources = Vec::new();
        for t in types {
            let verbs = if t.review {
                json!(["create"])
            } else {
                json!([
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch"
                ])
            };
            let mut r = json!({
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": verbs,
            });
            if !t.short_names.is_empty() {
                r["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                r["categories"] = json!(t.categories);
            }
            resources.push(r);
            if t.has_status {
                resources.push(json!({
                    "name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
                    "kind": t.kind, "verbs": ["get", "patch", "update"],
                }));
            }
            if t.group.is_empty() && t.plural == "serviceaccounts" {
                resources.push(json!({
                    "name": "serviceaccounts/token", "singularName": "", "namespaced": true,
                    "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"],
                }));
            }
            if t.scale.is_some() {
                resources.push(json!({
                    "name": format!("{}/scale", t.plural), "singularName": "", "namespaced": t.namespaced,
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
                }));
            }
        }
        Some(
            json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }),
        )
    }
}

/// FNV-1a, for the `hash` query parameter clients cache OpenAPI documents by.
fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    json!({ "name": name, "versions": versions.clone(), "preferredVersion": versions[0] })
}

/// Kubernetes version priority: GA > beta > alpha, higher numbers first.
fn version_priority(version: &str) -> (u8, u64, u64) {
    let rest = version.strip_prefix('v').unwrap_or(version);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_ga_before_beta_before_alpha() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, vec!["v1", "v2beta1", "v1beta2", "v1alpha1"]);
    }

    #[test]
    fn crd_registration_adds_and_removes_types() {
        let crd = json!({
            "metadata": { "name": "rollouts.example.dev" },
            "spec": { "group": "example.dev", "scope": "Namespaced",
                "names": { "plural": "rollouts", "kind": "Rollout", "shortNames": ["ro"] },
                "versions": [{ "name": "v1alpha1", "served": true, "storage": true,
                    "subresources": { "status": {} },
                    "additionalPrinterColumns": [{ "name": "Phase", "type": "string", "jsonPath": ".status.phase" }] }] }
        });
        let mut c = Catalogue::with_builtins();
        c.register_crd(&crd);
        let t = c
            .get("example.dev", "v1alpha1", "rollouts")
            .expect("registered");
        assert!(t.has_status && t.namespaced && t.custom);
        assert_eq!(t.short_names, vec!["ro"]);
        assert_eq!(t.printer_columns[0].json_path, ".status.phase");
        assert!(c.group_list().to_string().contains("example.dev/v1alpha1"));
        c.unregister_crd("rollouts.example.dev");
        assert!(c.get("example.dev", "v1alpha1", "rollouts").is_none());
    }
}
