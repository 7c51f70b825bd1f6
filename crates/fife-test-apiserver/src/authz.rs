//! Authorization: may this user do this? A request becomes the attributes the real
//! server authorizes (verb, API group, resource, subresource, namespace, name, or a
//! non-resource path), and RBAC answers from the Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings in the store, with kube-apiserver's rules and messages.
//!
//! ```text
//!  method + path + query ──▶ Attributes ──▶ system:masters? ──▶ allow
//!                                           └▶ bindings of the user ──▶ rules ──▶ allow │ 403
//! ```

use super::authn::{self, UserInfo};
use super::status::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// How requests are authorized (`--authorization-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthorizationMode {
    /// Everyone authenticated may do everything.
    #[default]
    AlwaysAllow,
    /// Role-based access control from the stored RBAC objects.
    Rbac,
}

impl std::str::FromStr for AuthorizationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "AlwaysAllow" => Ok(Self::AlwaysAllow),
            "RBAC" => Ok(Self::Rbac),
            other => Err(format!(
                "authorization mode {other:?} is not supported: use RBAC or AlwaysAllow"
            )),
        }
    }
}

/// What a resource request touches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttributes {
    pub namespace: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// What is authorized: a verb on a resource, or on a non-resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// `None` for non-resource requests (`/version`, `/apis`, `/healthz`...).
    pub resource: Option<ResourceAttributes>,
    pub path: String,
}

/// The attributes of an HTTP request, parsed from the path alone as the real server
/// does before any handler runs (so a forbidden request never learns whether its
/// target exists). Query: `watch`, `fieldSelector`.
pub fn request_attributes(method: &str, path: &str, query: &HashMap<String, String>) -> Attributes {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let non_resource = || Attributes {
        verb: method.to_ascii_lowercase(),
        resource: None,
        path: path.to_owned(),
    };
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return non_resource(),
    };
    let mut attrs = ResourceAttributes {
        group: group.to_owned(),
        version: version.to_owned(),
        ..ResourceAttributes::default()
    };
    if rest[0] == "namespaces" && rest.len() > 1 {
        attrs.namespace = rest[1].to_owned();
        // `namespaces/NS/status` and `/finalize` are the namespace's own subresources.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    attrs.resource = rest[0].to_owned();
    attrs.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    attrs.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    let flag = |name: &str| matches!(query.get(name).map(String::as_str), Some("true" | "1"));
    let verb = match (method, attrs.name.is_empty()) {
        ("GET" | "HEAD", true) if flag("watch") => "watch",
        ("GET" | "HEAD", true) => "list",
        ("GET" | "HEAD", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        (other, _) => {
            return Attributes {
                verb: other.to_ascii_lowercase(),
                resource: Some(attrs),
                path: path.to_owned(),
            };
        }
    };
    // A list or watch of one object by `metadata.name` is authorized as that object, so
    // `resourceNames` rules allow it (what informers on one object rely on).
    if matches!(verb, "list" | "watch")
        && let Some(name) = query.get("fieldSelector").and_then(|s| {
            let mut terms = s.split(',');
            let first = terms.next()?;
            let name = first
                .strip_prefix("metadata.name=")
                .or_else(|| first.strip_prefix("metadata.name=="))?;
            terms.next().is_none().then(|| name.to_owned())
        })
    {
        attrs.name = name;
    }
    Attributes {
        verb: verb.to_owned(),
        resource: Some(attrs),
        path: path.to_owned(),
    }
}

/// One RBAC `PolicyRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

fn has_or_all(list: &[String], wanted: &str) -> bool {
    list.iter().any(|v| v == "*" || v == wanted)
}

impl PolicyRule {
    /// kube-apiserver's `RuleAllows`.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !has_or_all(&self.verbs, &attrs.verb) {
            return false;
        }
        match &attrs.resource {
            Some(r) => {
                has_or_all(&self.api_groups, &r.group)
                    && self.resource_matches(r)
                    && (self.resource_names.is_empty()
                        || (!r.name.is_empty() && self.resource_names.contains(&r.name)))
            }
            None => self.non_resource_urls.iter().any(|url| {
                url == "*"
                    || *url == attrs.path
                    || url
                        .strip_suffix('*')
                        .is_some_and(|prefix| attrs.path.starts_with(prefix))
            }),
        }
    }

    fn resource_matches(&self, r: &ResourceAttributes) -> bool {
        let combined = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        self.resources.iter().any(|rule| {
            rule == "*"
                || *rule == combined
                || (!r.subresource.is_empty()
                    && rule.strip_prefix("*/") == Some(r.subresource.as_str()))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Subject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RoleRef {
    kind: String,
    name: String,
}

/// The RBAC objects of the store, read once per decision.
#[derive(Debug, Default)]
pub struct Policy {
    pub roles: Vec<Arc<Value>>,
    pub cluster_roles: Vec<Arc<Value>>,
    pub role_bindings: Vec<Arc<Value>>,
    pub cluster_role_bindings: Vec<Arc<Value>>,
}

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// For an allowed request, which binding allowed it, in the real server's words.
    pub reason: String,
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn rules_of(object: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(object["rules"].clone()).unwrap_or_default()
}

fn subject_applies(subject: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.username,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                &subject.namespace
            };
            user.username == authn::service_account_username(ns, &subject.name)
        }
        _ => false,
    }
}

fn describe_subject(subject: &Subject, binding_namespace: &str) -> String {
    if subject.kind == "ServiceAccount" {
        let ns = if subject.namespace.is_empty() {
            binding_namespace
        } else {
            &subject.namespace
        };
        format!("{} \"{}/{ns}\"", subject.kind, subject.name)
    } else {
        format!("{} \"{}\"", subject.kind, subject.name)
    }
}

impl Policy {
    /// A ClusterRole's rules; an aggregated one (`aggregationRule`) has the rules of
    /// every ClusterRole its selectors match, as the aggregation controller writes them.
    fn cluster_role_rules(&self, name: &str) -> Option<Vec<PolicyRule>> {
        let role = self.cluster_roles.iter().find(|r| name_of(r) == name)?;
        let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() else {
            return Some(rules_of(role));
        };
        let mut rules = rules_of(role);
        for other in &self.cluster_roles {
            if name_of(other) != name
                && selectors.iter().any(|s| {
                    super::selector::label_selector_matches(s, &other["metadata"]["labels"])
                })
            {
                for rule in rules_of(other) {
                    if !rules.contains(&rule) {
                        rules.push(rule);
                    }
                }
            }
        }
        Some(rules)
    }

    fn role_rules(&self, namespace: &str, name: &str) -> Option<Vec<PolicyRule>> {
        self.roles
            .iter()
            .find(|r| name_of(r) == name && r["metadata"]["namespace"].as_str() == Some(namespace))
            .map(|r| rules_of(r))
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide ones always),
    /// each with the real server's description of the binding that grants it.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<(PolicyRule, String)> {
        let mut out = Vec::new();
        for binding in &self.cluster_role_bindings {
            let Some((role_ref, subject)) = self.bound(binding, user, "") else {
                continue;
            };
            if role_ref.kind != "ClusterRole" {
                continue;
            }
            let how = format!(
                "ClusterRoleBinding \"{}\" of ClusterRole \"{}\" to {}",
                name_of(binding),
                role_ref.name,
                describe_subject(&subject, "")
            );
            for rule in self.cluster_role_rules(&role_ref.name).unwrap_or_default() {
                out.push((rule, how.clone()));
            }
        }
        if namespace.is_empty() {
            return out;
        }
        for binding in &self.role_bindings {
            if binding["metadata"]["namespace"].as_str() != Some(namespace) {
                continue;
            }
            let Some((role_ref, subject)) = self.bound(binding, user, namespace) else {
                continue;
            };
            let rules = match role_ref.kind.as_str() {
                "ClusterRole" => self.cluster_role_rules(&role_ref.name),
                "Role" => self.role_rules(namespace, &role_ref.name),
                _ => None,
            };
            let how = format!(
                "RoleBinding \"{}/{namespace}\" of {} \"{}\" to {}",
                name_of(binding),
                role_ref.kind,
                role_ref.name,
                describe_subject(&subject, namespace)
            );
            for rule in rules.unwrap_or_default() {
                out.push((rule, how.clone()));
            }
        }
        out
    }

    fn bound(
        &self,
        binding: &Value,
        user: &UserInfo,
        namespace: &str,
    ) -> Option<(RoleRef, Subject)> {
        let role_ref: RoleRef = serde_json::from_value(binding["roleRef"].clone()).ok()?;
        let subjects: Vec<Subject> =
            serde_json::from_value(binding["subjects"].clone()).unwrap_or_default();
        let subject = subjects
            .into_iter()
            .find(|s| subject_applies(s, user, namespace))?;
        Some((role_ref, subject))
    }

    /// RBAC's decision, after the `system:masters` bypass the real server puts first.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.in_group(authn::MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let namespace = attrs
            .resource
            .as_ref()
            .map(|r| r.namespace.as_str())
            .unwrap_or_default();
        match self
            .rules_for(user, namespace)
            .into_iter()
            .find(|(rule, _)| rule.allows(attrs))
        {
            Some((_, how)) => Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {how}"),
            },
            None => Decision {
                allowed: false,
                reason: String::new(),
            },
        }
    }
}

/// The 403 the real server answers, e.g. `deployments.apps "web" is forbidden: User
/// "system:serviceaccount:fife-system:fife-controller" cannot patch resource
/// "deployments/scale" in API group "apps" in the namespace "default"`.
pub fn forbidden(user: &UserInfo, attrs: &Attributes) -> ApiError {
    let who = &user.username;
    let Some(r) = &attrs.resource else {
        return ApiError::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User \"{who}\" cannot {} path \"{}\"",
                attrs.verb, attrs.path
            ),
        );
    };
    let resource = if r.subresource.is_empty() {
        r.resource.clone()
    } else {
        format!("{}/{}", r.resource, r.subresource)
    };
    let scope = if r.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{}\"", r.namespace)
    };
    let reason = format!(
        "User \"{who}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        attrs.verb, r.group
    );
    let qualified = if r.group.is_empty() {
        r.resource.clone()
    } else {
        format!("{}.{}", r.resource, r.group)
    };
    let message = if r.name.is_empty() {
        format!("{qualified} is forbidden: {reason}")
    } else {
        format!("{qualified} \"{}\" is forbidden: {reason}", r.name)
    };
    let mut e = ApiError::new(403, "Forbidden", message);
    let mut details = json!({ "kind": r.resource });
    if !r.name.is_empty() {
        details["name"] = json!(r.name);
    }
    if !r.group.is_empty() {
        details["group"] = json!(r.group);
    }
    e.details = Some(details);
    e
}

/// The roles and bindings every real cluster starts with that matter here: the
/// administrators' `cluster-admin`, discovery and health for everyone, and the
/// self-reviews (`kubectl auth whoami`, `kubectl auth can-i`) for every authenticated
/// user.
pub fn bootstrap_policy() -> Vec<Value> {
    let cluster_role = |name: &str, rules: Value| {
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": { "name": name, "labels": { "kubernetes.io/bootstrapping": "rbac-defaults" },
                "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" } },
            "rules": rules })
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g }))
            .collect();
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": name, "labels": { "kubernetes.io/bootstrapping": "rbac-defaults" },
                "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" } },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
            "subjects": subjects })
    };
    vec![
        cluster_role(
            "cluster-admin",
            json!([{ "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"] },
                   { "nonResourceURLs": ["*"], "verbs": ["*"] }]),
        ),
        cluster_role(
            "system:discovery",
            json!([{ "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"] }]),
        ),
        cluster_role(
            "system:basic-user",
            json!([{ "apiGroups": ["authorization.k8s.io"],
                     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"] },
                   { "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"] }]),
        ),
        cluster_role(
            "system:public-info-viewer",
            json!([{ "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"] }]),
        ),
        binding("cluster-admin", &[authn::MASTERS]),
        binding("system:discovery", &[authn::AUTHENTICATED]),
        binding("system:basic-user", &[authn::AUTHENTICATED]),
        binding(
            "system:public-info-viewer",
            &[authn::AUTHENTICATED, authn::UNAUTHENTICATED],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, path: &str, query: &[(&str, &str)]) -> Attributes {
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        request_attributes(method, path, &q)
    }

    fn res(a: &Attributes) -> (&str, &str, &str, &str, &str, &str) {
        let r = a.resource.as_ref().unwrap();
        (
            a.verb.as_str(),
            r.group.as_str(),
            r.namespace.as_str(),
            r.resource.as_str(),
            r.name.as_str(),
            r.subresource.as_str(),
        )
    }

    #[test]
    fn requests_map_to_verbs_as_the_real_server_maps_them() {
        let deploy = "/apis/apps/v1/namespaces/default/deployments";
        assert_eq!(
            res(&attrs("GET", deploy, &[])),
            ("list", "apps", "default", "deployments", "", "")
        );
        assert_eq!(res(&attrs("GET", deploy, &[("watch", "true")])).0, "watch");
        assert_eq!(
            res(&attrs("GET", &format!("{deploy}/web"), &[])),
            ("get", "apps", "default", "deployments", "web", "")
        );
        assert_eq!(
            res(&attrs("PATCH", &format!("{deploy}/web/scale"), &[])),
            ("patch", "apps", "default", "deployments", "web", "scale")
        );
        assert_eq!(
            res(&attrs("PUT", &format!("{deploy}/web"), &[])).0,
            "update"
        );
        assert_eq!(res(&attrs("POST", deploy, &[])).0, "create");
        assert_eq!(res(&attrs("DELETE", deploy, &[])).0, "deletecollection");
        assert_eq!(
            res(&attrs("DELETE", &format!("{deploy}/web"), &[])).0,
            "delete"
        );
        assert_eq!(
            res(&attrs("GET", "/api/v1/namespaces/default", &[])),
            ("get", "", "default", "namespaces", "default", "")
        );
        assert_eq!(
            res(&attrs("PUT", "/api/v1/namespaces/x/finalize", &[])),
            ("update", "", "x", "namespaces", "x", "finalize")
        );
        assert_eq!(
            res(&attrs(
                "GET",
                "/api/v1/namespaces/default/secrets",
                &[("watch", "1"), ("fieldSelector", "metadata.name=token")]
            )),
            ("watch", "", "default", "secrets", "token", "")
        );
        let version = attrs("GET", "/version", &[]);
        assert_eq!((version.verb.as_str(), version.resource), ("get", None));
        assert!(attrs("GET", "/apis/apps/v1", &[]).resource.is_none());
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: Vec::new(),
        }
    }

    #[test]
    fn rules_match_verbs_groups_subresources_and_names() {
        let scale = attrs(
            "PATCH",
            "/apis/apps/v1/namespaces/d/deployments/web/scale",
            &[],
        );
        assert!(!rule(&["patch"], &["apps"], &["deployments"], &[]).allows(&scale));
        assert!(rule(&["patch"], &["apps"], &["deployments/scale"], &[]).allows(&scale));
        assert!(rule(&["*"], &["*"], &["*/scale"], &[]).allows(&scale));
        assert!(rule(&["patch"], &["apps"], &["*"], &["web"]).allows(&scale));
        assert!(!rule(&["patch"], &["apps"], &["*"], &["api"]).allows(&scale));
        assert!(!rule(&["patch"], &[""], &["*"], &[]).allows(&scale));
        assert!(!rule(&["get"], &["apps"], &["*"], &[]).allows(&scale));
        let list = attrs("GET", "/apis/apps/v1/namespaces/d/deployments", &[]);
        assert!(
            !rule(&["list"], &["apps"], &["deployments"], &["web"]).allows(&list),
            "resourceNames never allow an unnamed list"
        );
        let health = attrs("GET", "/healthz/etcd", &[]);
        let mut urls = rule(&["get"], &[], &[], &[]);
        urls.non_resource_urls = vec!["/healthz".into()];
        assert!(!urls.allows(&health));
        urls.non_resource_urls = vec!["/healthz/*".into()];
        assert!(urls.allows(&health));
    }

    fn obj(v: Value) -> Arc<Value> {
        Arc::new(v)
    }

    #[test]
    fn bindings_grant_roles_to_users_groups_and_service_accounts() {
        let policy = Policy {
            roles: vec![obj(
                json!({ "metadata": { "name": "leases", "namespace": "fife-system" },
                "rules": [{ "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"] }] }),
            )],
            cluster_roles: vec![
                obj(json!({ "metadata": { "name": "reader" },
                    "aggregationRule": { "clusterRoleSelectors": [{ "matchLabels": { "agg": "reader" } }] }, "rules": [] })),
                obj(
                    json!({ "metadata": { "name": "pods", "labels": { "agg": "reader" } },
                    "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"] }] }),
                ),
            ],
            role_bindings: vec![obj(
                json!({ "metadata": { "name": "leader", "namespace": "fife-system" },
                "roleRef": { "kind": "Role", "name": "leases" },
                "subjects": [{ "kind": "ServiceAccount", "name": "fife" }] }),
            )],
            cluster_role_bindings: vec![obj(json!({ "metadata": { "name": "readers" },
                "roleRef": { "kind": "ClusterRole", "name": "reader" },
                "subjects": [{ "kind": "Group", "name": "dev" }] }))],
        };
        let sa = UserInfo::service_account("fife-system", "fife", "");
        let lease = attrs(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/fife-system/leases/l",
            &[],
        );
        let decision = policy.authorize(&sa, &lease);
        assert!(decision.allowed);
        assert_eq!(
            decision.reason,
            "RBAC: allowed by RoleBinding \"leader/fife-system\" of Role \"leases\" to ServiceAccount \"fife/fife-system\""
        );
        let elsewhere = attrs(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/l",
            &[],
        );
        assert!(!policy.authorize(&sa, &elsewhere).allowed);
        let dev = UserInfo::authenticated("alice", "", &["dev"]);
        let pods = attrs("GET", "/api/v1/pods", &[]);
        assert!(policy.authorize(&dev, &pods).allowed, "aggregated rule");
        assert!(!policy.authorize(&sa, &pods).allowed);
        assert!(policy.authorize(&UserInfo::admin(), &pods).allowed);
    }

    #[test]
    fn forbidden_messages_are_the_real_servers() {
        let sa = UserInfo::service_account("fife-system", "fife", "");
        let e = forbidden(
            &sa,
            &attrs(
                "PATCH",
                "/apis/apps/v1/namespaces/default/deployments/web/scale",
                &[],
            ),
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:fife-system:fife\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"default\""
        );
        assert_eq!(
            e.details,
            Some(json!({ "name": "web", "group": "apps", "kind": "deployments" }))
        );
        assert_eq!(
            forbidden(&sa, &attrs("GET", "/api/v1/namespaces", &[])).message,
            "namespaces is forbidden: User \"system:serviceaccount:fife-system:fife\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            forbidden(&sa, &attrs("GET", "/metrics", &[])).message,
            "forbidden: User \"system:serviceaccount:fife-system:fife\" cannot get path \"/metrics\""
        );
    }
}
