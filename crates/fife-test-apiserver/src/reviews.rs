//! Reviews: the create-only kinds that ask the server about identity and permissions
//! (`kubectl auth whoami`, `kubectl auth can-i`, `kubectl auth can-i --list`) and are
//! answered at once, never stored: `SelfSubjectReview` (authentication.k8s.io/v1),
//! `SelfSubjectAccessReview`, `SelfSubjectRulesReview` and `SubjectAccessReview`
//! (authorization.k8s.io/v1).

use super::authn::UserInfo;
use super::authz::{Attributes, AuthorizationMode, Policy, PolicyRule, ResourceAttributes};
use super::status::ApiError;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The answer to a review of kind `kind` posted by `user`.
pub fn answer(
    kind: &str,
    mode: AuthorizationMode,
    policy: &Policy,
    user: &UserInfo,
    mut review: Value,
) -> Result<Value, ApiError> {
    if !review.is_object() {
        return Err(ApiError::bad_request(
            "the request body is not a JSON object",
        ));
    }
    review["kind"] = json!(kind);
    review["metadata"]["creationTimestamp"] = Value::Null;
    let status = match kind {
        "SelfSubjectReview" => json!({ "userInfo": user }),
        "SelfSubjectAccessReview" => access(kind, mode, policy, user, &review["spec"])?,
        "SubjectAccessReview" => {
            let subject = subject_of(&review["spec"]);
            if subject.username.is_empty() && subject.groups.is_empty() {
                return Err(invalid(
                    kind,
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            access(kind, mode, policy, &subject, &review["spec"])?
        }
        "SelfSubjectRulesReview" => {
            let namespace = review["spec"]["namespace"].as_str().unwrap_or_default();
            if namespace.is_empty() {
                return Err(ApiError::bad_request("no namespace on request"));
            }
            rules(mode, policy, user, namespace)
        }
        other => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("the server does not review {other}"),
            ));
        }
    };
    review["status"] = status;
    Ok(review)
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!(
            "{kind}.authorization.k8s.io \"\" is invalid: {field}: Invalid value: \"\": {message}"
        ),
    );
    e.details = Some(json!({ "group": "authorization.k8s.io", "kind": kind,
        "causes": [{ "reason": "FieldValueInvalid", "message": format!("Invalid value: \"\": {message}"), "field": field }] }));
    e
}

/// The user a `SubjectAccessReview` asks about, exactly as given (no groups added).
fn subject_of(spec: &Value) -> UserInfo {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let extra: BTreeMap<String, Vec<String>> = spec["extra"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), strings(v)))
        .collect();
    UserInfo {
        username: spec["user"].as_str().unwrap_or_default().to_owned(),
        uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
        groups: strings(&spec["groups"]),
        extra,
    }
}

fn access(
    kind: &str,
    mode: AuthorizationMode,
    policy: &Policy,
    user: &UserInfo,
    spec: &Value,
) -> Result<Value, ApiError> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let attributes = match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Attributes {
            verb: text(&r["verb"]),
            resource: Some(ResourceAttributes {
                namespace: text(&r["namespace"]),
                group: text(&r["group"]),
                version: text(&r["version"]),
                resource: text(&r["resource"]),
                subresource: text(&r["subresource"]),
                name: text(&r["name"]),
            }),
            path: String::new(),
        },
        (None, Some(n)) => Attributes {
            verb: text(&n["verb"]),
            resource: None,
            path: text(&n["path"]),
        },
        _ => {
            return Err(invalid(
                kind,
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let decision = match mode {
        AuthorizationMode::AlwaysAllow => super::authz::Decision {
            allowed: true,
            reason: String::new(),
        },
        AuthorizationMode::Rbac => policy.authorize(user, &attributes),
    };
    let mut status = json!({ "allowed": decision.allowed });
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(status)
}

fn rules(mode: AuthorizationMode, policy: &Policy, user: &UserInfo, namespace: &str) -> Value {
    let all = || vec!["*".to_owned()];
    let rules: Vec<PolicyRule> = match mode {
        AuthorizationMode::AlwaysAllow => vec![
            PolicyRule {
                verbs: all(),
                api_groups: all(),
                resources: all(),
                ..PolicyRule::default()
            },
            PolicyRule {
                verbs: all(),
                non_resource_urls: all(),
                ..PolicyRule::default()
            },
        ],
        AuthorizationMode::Rbac => {
            let mut unique: Vec<PolicyRule> = Vec::new();
            for (rule, _) in policy.rules_for(user, namespace) {
                if !unique.contains(&rule) {
                    unique.push(rule);
                }
            }
            unique
        }
    };
    let (non_resource, resource): (Vec<PolicyRule>, Vec<PolicyRule>) = rules
        .into_iter()
        .partition(|r| !r.non_resource_urls.is_empty());
    json!({ "resourceRules": resource.iter().map(|r| json!({
                "verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources,
                "resourceNames": r.resource_names })).collect::<Vec<_>>(),
            "nonResourceRules": non_resource.iter().map(|r| json!({
                "verbs": r.verbs, "nonResourceURLs": r.non_resource_urls })).collect::<Vec<_>>(),
            "incomplete": false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn policy() -> Policy {
        Policy {
            cluster_roles: vec![Arc::new(json!({ "metadata": { "name": "r" },
                "rules": [{ "apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"] },
                          { "nonResourceURLs": ["/metrics"], "verbs": ["get"] }] }))],
            cluster_role_bindings: vec![Arc::new(json!({ "metadata": { "name": "b" },
                "roleRef": { "kind": "ClusterRole", "name": "r" },
                "subjects": [{ "kind": "User", "name": "alice" }] }))],
            ..Policy::default()
        }
    }

    #[test]
    fn access_reviews_answer_from_rbac() {
        let alice = UserInfo::authenticated("alice", "", &[]);
        let ask = |verb: &str| {
            json!({ "apiVersion": "authorization.k8s.io/v1", "spec": { "resourceAttributes": {
                "namespace": "default", "verb": verb, "group": "apps", "resource": "deployments" } } })
        };
        let yes = answer(
            "SelfSubjectAccessReview",
            AuthorizationMode::Rbac,
            &policy(),
            &alice,
            ask("get"),
        )
        .unwrap();
        assert_eq!(yes["status"]["allowed"], true);
        assert_eq!(
            yes["status"]["reason"],
            "RBAC: allowed by ClusterRoleBinding \"b\" of ClusterRole \"r\" to User \"alice\""
        );
        let no = answer(
            "SelfSubjectAccessReview",
            AuthorizationMode::Rbac,
            &policy(),
            &alice,
            ask("delete"),
        )
        .unwrap();
        assert_eq!(no["status"], json!({ "allowed": false }));
        let mut sar = ask("get");
        sar["spec"]["user"] = json!("alice");
        let other = UserInfo::authenticated("bob", "", &[]);
        let asked = answer(
            "SubjectAccessReview",
            AuthorizationMode::Rbac,
            &policy(),
            &other,
            sar,
        )
        .unwrap();
        assert_eq!(
            asked["status"]["allowed"], true,
            "answers for spec.user, not the caller"
        );
        let nobody = answer(
            "SubjectAccessReview",
            AuthorizationMode::Rbac,
            &policy(),
            &other,
            ask("get"),
        );
        assert_eq!(nobody.unwrap_err().code, 422);
    }

    #[test]
    fn rules_reviews_and_whoami() {
        let alice = UserInfo::authenticated("alice", "7", &["dev"]);
        let review = json!({ "spec": { "namespace": "default" } });
        let rules = answer(
            "SelfSubjectRulesReview",
            AuthorizationMode::Rbac,
            &policy(),
            &alice,
            review.clone(),
        )
        .unwrap();
        assert_eq!(
            rules["status"]["resourceRules"],
            json!([{ "verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [] }])
        );
        assert_eq!(
            rules["status"]["nonResourceRules"],
            json!([{ "verbs": ["get"], "nonResourceURLs": ["/metrics"] }])
        );
        let everything = answer(
            "SelfSubjectRulesReview",
            AuthorizationMode::AlwaysAllow,
            &policy(),
            &alice,
            review,
        )
        .unwrap();
        assert_eq!(
            everything["status"]["resourceRules"][0]["verbs"],
            json!(["*"])
        );
        let whoami = answer(
            "SelfSubjectReview",
            AuthorizationMode::Rbac,
            &policy(),
            &alice,
            json!({}),
        )
        .unwrap();
        assert_eq!(
            whoami["status"]["userInfo"],
            json!({ "username": "alice", "uid": "7", "groups": ["dev", "system:authenticated"] })
        );
    }
}
