//! ValidatingAdmissionPolicies over HTTP: who may approve (the approver must be the
//! authenticated user), params from a ConfigMap, `Warn` bindings as `Warning` headers,
//! namespace and object selectors, deletes judged on `oldObject`, status writes judged
//! only by rules that name the subresource, and kube-apiserver's Status bodies.

use fife_test_apiserver::authn::parse_token_file;
use fife_test_apiserver::{ADMIN_TOKEN, ApiServer, Authentication, Config};
use serde_json::{Value, json};

struct Server {
    server: ApiServer,
    http: reqwest::Client,
}

/// A response's code, JSON body and `Warning` headers.
struct Answer {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

impl Server {
    async fn start() -> Self {
        let config = Config {
            authentication: Authentication {
                static_tokens: parse_token_file(
                    "alice-token,alice,1001,\"approvers\"\nbob-token,bob,1002\n",
                )
                .unwrap(),
                anonymous: false,
            },
            ..Config::default()
        };
        let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        Self {
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: &str, token: &str, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", self.server.url()),
            )
            .bearer_auth(token);
        if let Some(body) = body {
            let content_type = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let code = response.status().as_u16();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            code,
            body,
            warnings,
        }
    }

    /// An administrator's write that must succeed.
    async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let answer = self.send(method, ADMIN_TOKEN, path, Some(body)).await;
        assert!(answer.code < 300, "{method} {path}: {}", answer.body);
        answer.body
    }

    async fn policy(&self, policy: Value, binding: Value) {
        let base = "/apis/admissionregistration.k8s.io/v1";
        self.admin(
            "POST",
            &format!("{base}/validatingadmissionpolicies"),
            policy,
        )
        .await;
        self.admin(
            "POST",
            &format!("{base}/validatingadmissionpolicybindings"),
            binding,
        )
        .await;
    }
}

fn approval_crd() -> Value {
    json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "approvals.fife.dev" },
        "spec": { "group": "fife.dev", "scope": "Namespaced",
            "names": { "plural": "approvals", "singular": "approval", "kind": "Approval", "listKind": "ApprovalList" },
            "versions": [{ "name": "v1alpha1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "properties": {
                    "spec": { "type": "object", "properties": {
                        "rollout": { "type": "string" }, "approver": { "type": "string" } } } } } } }] } })
}

fn approval(name: &str, approver: &str) -> Value {
    json!({ "apiVersion": "fife.dev/v1alpha1", "kind": "Approval", "metadata": { "name": name },
        "spec": { "rollout": "checkout", "approver": approver } })
}

#[tokio::test]
async fn an_approval_names_the_authenticated_user_or_is_forbidden() {
    let s = Server::start().await;
    s.admin(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        approval_crd(),
    )
    .await;
    s.policy(
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": { "name": "approver-is-requester" },
            "spec": { "failurePolicy": "Fail",
                "matchConstraints": { "resourceRules": [{ "apiGroups": ["fife.dev"], "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["approvals"] }] },
                "matchConditions": [{ "name": "not-the-administrator",
                    "expression": "!('system:masters' in request.userInfo.groups)" }],
                "variables": [{ "name": "approver", "expression": "object.spec.approver" }],
                "validations": [{
                    "expression": "variables.approver == request.userInfo.username",
                    "messageExpression": "'spec.approver must be the approving user ' + request.userInfo.username + ', not ' + variables.approver",
                    "reason": "Forbidden" }] } }),
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": { "name": "approver-is-requester" },
            "spec": { "policyName": "approver-is-requester", "validationActions": ["Deny"] } }),
    )
    .await;
    let approvals = "/apis/fife.dev/v1alpha1/namespaces/default/approvals";

    let own = s
        .send(
            "POST",
            "alice-token",
            approvals,
            Some(approval("mine", "alice")),
        )
        .await;
    assert_eq!(own.code, 201, "{}", own.body);

    let forged = s
        .send(
            "POST",
            "bob-token",
            approvals,
            Some(approval("forged", "alice")),
        )
        .await;
    assert_eq!(forged.code, 403, "{}", forged.body);
    let message = "ValidatingAdmissionPolicy 'approver-is-requester' with binding 'approver-is-requester' denied request: spec.approver must be the approving user bob, not alice";
    assert_eq!(
        forged.body,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("approvals.fife.dev \"forged\" is forbidden: {message}"),
            "reason": "Forbidden", "code": 403,
            "details": { "name": "forged", "group": "fife.dev", "kind": "approvals",
                "causes": [{ "message": message }] } })
    );

    // Taking over someone else's approval is an update and is judged the same way.
    let takeover = s
        .send(
            "PATCH",
            "bob-token",
            &format!("{approvals}/mine"),
            Some(json!({ "metadata": { "labels": { "by": "bob" } } })),
        )
        .await;
    assert_eq!(takeover.code, 403, "{}", takeover.body);

    // Dry runs are judged too, and store nothing.
    let dry = format!("{approvals}/mine?dryRun=All");
    let forged_dry = s
        .send(
            "PATCH",
            "bob-token",
            &dry,
            Some(json!({ "spec": { "approver": "alice" } })),
        )
        .await;
    assert_eq!(forged_dry.code, 403, "{}", forged_dry.body);
    let own_dry = s
        .send(
            "PATCH",
            "alice-token",
            &dry,
            Some(json!({ "metadata": { "labels": { "checked": "yes" } } })),
        )
        .await;
    assert_eq!(own_dry.code, 200, "{}", own_dry.body);
    assert_eq!(own_dry.body["metadata"]["labels"]["checked"], "yes");
    let stored = s
        .send("GET", "alice-token", &format!("{approvals}/mine"), None)
        .await;
    assert!(
        stored.body["metadata"].get("labels").is_none(),
        "{}",
        stored.body
    );

    // The match condition exempts the administrator.
    let admin = s
        .send(
            "POST",
            ADMIN_TOKEN,
            approvals,
            Some(approval("by-admin", "alice")),
        )
        .await;
    assert_eq!(admin.code, 201, "{}", admin.body);
}

fn deployment(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": namespace, "labels": { "app": name } },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "app:1" }] } } } })
}

#[tokio::test]
async fn params_selectors_and_warnings_follow_the_binding() {
    let s = Server::start().await;
    for (name, env) in [("prod", "production"), ("dev", "development")] {
        s.admin(
            "POST",
            "/api/v1/namespaces",
            json!({ "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": name, "labels": { "env": env } } }),
        )
        .await;
    }
    s.admin(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "replica-limit" },
            "data": { "max": "3" } }),
    )
    .await;
    let policy = |name: &str| {
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": { "name": name },
            "spec": { "paramKind": { "apiVersion": "v1", "kind": "ConfigMap" },
                "matchConstraints": { "resourceRules": [{ "apiGroups": ["apps"], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["deployments"] }] },
                "validations": [{ "expression": "object.spec.replicas <= int(params.data.max)" }] } })
    };
    s.policy(
        policy("replica-limit"),
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": { "name": "replica-limit-prod" },
            "spec": { "policyName": "replica-limit", "validationActions": ["Deny"],
                "paramRef": { "name": "replica-limit", "namespace": "default" },
                "matchResources": { "namespaceSelector": { "matchLabels": { "env": "production" } } } } }),
    )
    .await;
    s.policy(
        policy("replica-advice"),
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": { "name": "replica-advice-dev" },
            "spec": { "policyName": "replica-advice", "validationActions": ["Warn"],
                "paramRef": { "name": "replica-limit", "namespace": "default" },
                "matchResources": { "namespaceSelector": { "matchExpressions": [
                    { "key": "env", "operator": "In", "values": ["development"] }] } } } }),
    )
    .await;

    let big = s
        .send(
            "POST",
            "alice-token",
            "/apis/apps/v1/namespaces/prod/deployments",
            Some(deployment("prod", "web", 5)),
        )
        .await;
    assert_eq!(big.code, 422, "{}", big.body);
    assert_eq!(big.body["reason"], "Invalid");
    assert_eq!(
        big.body["message"],
        "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-prod' denied request: failed expression: object.spec.replicas <= int(params.data.max)"
    );

    let small = s
        .send(
            "POST",
            "alice-token",
            "/apis/apps/v1/namespaces/prod/deployments",
            Some(deployment("prod", "web", 2)),
        )
        .await;
    assert_eq!(small.code, 201, "{}", small.body);
    assert!(small.warnings.is_empty(), "{:?}", small.warnings);

    // Scaling up through an update is refused as well.
    let scaled = s
        .send(
            "PATCH",
            "alice-token",
            "/apis/apps/v1/namespaces/prod/deployments/web",
            Some(json!({ "spec": { "replicas": 9 } })),
        )
        .await;
    assert_eq!(scaled.code, 422, "{}", scaled.body);

    let warned = s
        .send(
            "POST",
            "alice-token",
            "/apis/apps/v1/namespaces/dev/deployments",
            Some(deployment("dev", "web", 5)),
        )
        .await;
    assert_eq!(warned.code, 201, "{}", warned.body);
    assert_eq!(
        warned.warnings,
        vec![
            "299 - \"Validation failed for ValidatingAdmissionPolicy 'replica-advice' with binding 'replica-advice-dev': failed expression: object.spec.replicas <= int(params.data.max)\""
        ]
    );

    // A binding whose params are missing denies by default.
    s.send(
        "DELETE",
        ADMIN_TOKEN,
        "/api/v1/namespaces/default/configmaps/replica-limit",
        None,
    )
    .await;
    let orphaned = s
        .send(
            "POST",
            "alice-token",
            "/apis/apps/v1/namespaces/prod/deployments",
            Some(deployment("prod", "api", 1)),
        )
        .await;
    assert_eq!(orphaned.code, 422, "{}", orphaned.body);
    assert!(
        orphaned.body["message"].as_str().unwrap().ends_with(
            "denied request: no params found for policy binding with `Deny` parameterNotFoundAction"
        ),
        "{}",
        orphaned.body
    );
}

#[tokio::test]
async fn deletes_and_status_writes_are_judged_only_when_a_rule_names_them() {
    let s = Server::start().await;
    s.policy(
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": { "name": "protected" },
            "spec": {
                "matchConstraints": {
                    "resourceRules": [{ "apiGroups": [""], "apiVersions": ["v1"],
                        "operations": ["DELETE"], "resources": ["configmaps"] },
                        { "apiGroups": ["apps"], "apiVersions": ["v1"],
                        "operations": ["UPDATE"], "resources": ["deployments/status"] }],
                    "objectSelector": { "matchLabels": { "protected": "true" } } },
                "validations": [
                    { "expression": "request.operation != 'DELETE' || object == null && oldObject.metadata.name != ''",
                      "message": "delete sees only the old object" },
                    { "expression": "request.operation != 'DELETE' || 'approvers' in request.userInfo.groups",
                      "message": "only approvers delete protected objects" },
                    { "expression": "request.subResource != 'status' || request.userInfo.username == 'kubernetes-admin'",
                      "message": "status belongs to the controller" }] } }),
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": { "name": "protected" },
            "spec": { "policyName": "protected", "validationActions": ["Deny", "Audit"] } }),
    )
    .await;
    for name in ["keep", "drop"] {
        s.admin(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": name, "labels": { "protected": "true" } } }),
        )
        .await;
    }
    let cm = "/api/v1/namespaces/default/configmaps";
    let refused = s
        .send("DELETE", "bob-token", &format!("{cm}/keep"), None)
        .await;
    assert_eq!(refused.code, 422, "{}", refused.body);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .ends_with("denied request: only approvers delete protected objects"),
        "{}",
        refused.body
    );
    let allowed = s
        .send("DELETE", "alice-token", &format!("{cm}/drop"), None)
        .await;
    assert_eq!(allowed.code, 200, "{}", allowed.body);
    // Updates of configmaps are not in the rules.
    let edited = s
        .send(
            "PATCH",
            "bob-token",
            &format!("{cm}/keep"),
            Some(json!({ "data": { "a": "b" } })),
        )
        .await;
    assert_eq!(edited.code, 200, "{}", edited.body);

    let mut d = deployment("default", "web", 1);
    d["metadata"]["labels"]["protected"] = json!("true");
    s.admin("POST", "/apis/apps/v1/namespaces/default/deployments", d)
        .await;
    let web = "/apis/apps/v1/namespaces/default/deployments/web";
    let spec = s
        .send(
            "PATCH",
            "bob-token",
            web,
            Some(json!({ "spec": { "replicas": 2 } })),
        )
        .await;
    assert_eq!(
        spec.code, 200,
        "the main resource is not named: {}",
        spec.body
    );
    let status = s
        .send(
            "PATCH",
            "bob-token",
            &format!("{web}/status"),
            Some(json!({ "status": { "replicas": 7 } })),
        )
        .await;
    assert_eq!(status.code, 422, "{}", status.body);
    assert!(
        status.body["message"]
            .as_str()
            .unwrap()
            .ends_with("denied request: status belongs to the controller"),
        "{}",
        status.body
    );
}

#[tokio::test]
async fn an_expression_that_fails_follows_the_failure_policy() {
    let s = Server::start().await;
    for (name, failure) in [("strict", "Fail"), ("lenient", "Ignore")] {
        s.policy(
            json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": { "name": name },
                "spec": { "failurePolicy": failure,
                    "matchConstraints": { "resourceRules": [{ "apiGroups": [""], "apiVersions": ["v1"],
                        "operations": ["CREATE"], "resources": ["configmaps"], "resourceNames": [name] }] },
                    "validations": [{ "expression": "object.data.missing == 'x'" }] } }),
            json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": { "name": name },
                "spec": { "policyName": name, "validationActions": ["Deny"] } }),
        )
        .await;
    }
    let cm = |name: &str| json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": {} });
    let path = "/api/v1/namespaces/default/configmaps";
    let strict = s.send("POST", "bob-token", path, Some(cm("strict"))).await;
    assert_eq!(strict.code, 422, "{}", strict.body);
    assert!(
        strict.body["message"].as_str().unwrap().contains(
            "denied request: expression 'object.data.missing == 'x'' resulted in error: "
        ),
        "{}",
        strict.body
    );
    let lenient = s.send("POST", "bob-token", path, Some(cm("lenient"))).await;
    assert_eq!(lenient.code, 201, "{}", lenient.body);
    let other = s.send("POST", "bob-token", path, Some(cm("other"))).await;
    assert_eq!(
        other.code, 201,
        "resourceNames narrow the rule: {}",
        other.body
    );
}

#[tokio::test]
async fn policies_and_bindings_that_cannot_work_are_refused() {
    let s = Server::start().await;
    let base = "/apis/admissionregistration.k8s.io/v1";
    let policy = s
        .send(
            "POST",
            ADMIN_TOKEN,
            &format!("{base}/validatingadmissionpolicies"),
            Some(json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": { "name": "broken" },
                "spec": { "failurePolicy": "Sometimes",
                    "matchConditions": [{ "name": "c", "expression": "request.(" }],
                    "validations": [] } })),
        )
        .await;
    assert_eq!(policy.code, 422, "{}", policy.body);
    let causes: Vec<&str> = policy.body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        causes,
        [
            "spec.failurePolicy",
            "spec.matchConditions[0].expression",
            "spec.validations"
        ]
    );
    let message = policy.body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "ValidatingAdmissionPolicy.admissionregistration.k8s.io \"broken\" is invalid: [spec.failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\", spec.matchConditions[0].expression: Invalid value: \"request.(\": compilation failed: "
        ) && message.ends_with(
            "spec.validations: Required value: validations or auditAnnotations must contain at least one item]"
        ),
        "{message}"
    );

    let binding = s
        .send(
            "POST",
            ADMIN_TOKEN,
            &format!("{base}/validatingadmissionpolicybindings"),
            Some(json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": { "name": "broken" }, "spec": { "validationActions": ["Block"] } })),
        )
        .await;
    assert_eq!(binding.code, 422, "{}", binding.body);
    assert_eq!(
        binding.body["message"],
        "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io \"broken\" is invalid: [spec.policyName: Required value, spec.validationActions[0]: Unsupported value: \"Block\": supported values: \"Deny\", \"Warn\", \"Audit\"]"
    );
}

#[tokio::test]
async fn a_policy_over_everything_never_locks_out_its_own_removal() {
    let s = Server::start().await;
    s.policy(
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": { "name": "freeze" },
            "spec": { "matchConstraints": { "resourceRules": [{ "apiGroups": ["*"], "apiVersions": ["*"],
                    "operations": ["*"], "resources": ["*"] }] },
                "validations": [{ "expression": "false", "message": "the cluster is frozen" }] } }),
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": { "name": "freeze" },
            "spec": { "policyName": "freeze", "validationActions": ["Deny"] } }),
    )
    .await;
    let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" } });
    let path = "/api/v1/namespaces/default/configmaps";
    let frozen = s.send("POST", ADMIN_TOKEN, path, Some(cm.clone())).await;
    assert_eq!(frozen.code, 422, "{}", frozen.body);
    let unbound = s
        .send(
            "DELETE",
            ADMIN_TOKEN,
            "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/freeze",
            None,
        )
        .await;
    assert_eq!(unbound.code, 200, "{}", unbound.body);
    let thawed = s.send("POST", ADMIN_TOKEN, path, Some(cm)).await;
    assert_eq!(thawed.code, 201, "{}", thawed.body);
}
