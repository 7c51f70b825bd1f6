//! Validating admission: the stored `ValidatingAdmissionPolicy` and
//! `ValidatingAdmissionPolicyBinding` objects (`admissionregistration.k8s.io/v1`) judge
//! every create, update and delete of a stored resource, after the object is defaulted
//! and validated and before it is stored, as kube-apiserver's `ValidatingAdmissionPolicy`
//! plugin does.
//!
//! ```text
//!  binding ──policyName──▶ policy: matchConstraints ∩ binding.matchResources
//!     │ paramRef                 → matchConditions → variables → validations
//!     ▼                                                          │ false
//!  params (one object, or each selected one)          Deny → 422/403 Status
//!                                                     Warn → `Warning` header
//! ```
//!
//! CEL sees `object`, `oldObject` (null on create, `object` null on delete), `request`
//! (`operation`, `userInfo`, `name`, `namespace`, `resource`, `subResource`, `kind`,
//! `dryRun`...), `params`, `namespaceObject` and `variables`. Policies and bindings are
//! checked when written ([`check_definition`]). Not offered: `authorizer`,
//! `auditAnnotations` and the `Audit` action (accepted and ignored: the server keeps no
//! audit log), type checking of expressions against the matched kinds (a wrong field is
//! a runtime error, handled by `failurePolicy`), the policies' `status`, and
//! `matchPolicy: Equivalent` (every kind here is served in one version).

use super::authn::UserInfo;
use super::discovery::ResourceType;
use super::expression::{Expression, from_json};
use super::selector::label_selector_matches;
use super::status::ApiError;
use super::store::Store;
use super::validation::FieldError;
use serde_json::{Value, json};
use std::sync::Arc;

/// The API group of the policies and bindings.
pub const GROUP: &str = "admissionregistration.k8s.io";

/// The admission operation, with the names rules and `request.operation` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// The name rules list and `request.operation` carries.
    pub fn wire(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

/// Who is writing and how: what the handler knows about a request that the store does
/// not. Warnings from `Warn` bindings collect here for the response's `Warning` headers.
#[derive(Debug, Clone)]
pub struct Admission {
    pub user: UserInfo,
    /// The subresource written (`status`, `scale`), empty for the object itself.
    pub subresource: String,
    pub dry_run: bool,
    pub warnings: Vec<String>,
}

impl Admission {
    pub fn new(user: UserInfo, subresource: &str, dry_run: bool) -> Self {
        Self {
            user,
            subresource: subresource.to_owned(),
            dry_run,
            warnings: Vec::new(),
        }
    }
}

/// One write as the policies see it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub rt: &'a ResourceType,
    pub operation: Operation,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The object as it would be stored; `None` on delete.
    pub object: Option<&'a Value>,
    /// The stored object; `None` on create.
    pub old_object: Option<&'a Value>,
}

/// What a binding does with a failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Deny,
    Warn,
}

/// A failed validation (or a failure to evaluate one under `failurePolicy: Fail`).
#[derive(Debug, Clone, PartialEq)]
struct Refusal {
    message: String,
    reason: String,
}

/// Judges `attempt` against every binding in `store`. Failures of `Warn` bindings are
/// added to `admission.warnings`; the first failure of a `Deny` binding is the error,
/// as the real server's Status.
pub fn admit(
    store: &Store,
    admission: &mut Admission,
    attempt: Attempt<'_>,
) -> Result<(), ApiError> {
    // Policies never judge reviews, nor policies and bindings themselves (so a broad
    // policy cannot lock its own fix out), as in the real server.
    if attempt.rt.review || attempt.rt.group == GROUP {
        return Ok(());
    }
    let Some(policy_type) = store
        .catalogue
        .get(GROUP, "v1", "validatingadmissionpolicies")
    else {
        return Ok(());
    };
    let Some(binding_type) = store
        .catalogue
        .get(GROUP, "v1", "validatingadmissionpolicybindings")
    else {
        return Ok(());
    };
    let bindings = store.objects_of(binding_type);
    if bindings.is_empty() {
        return Ok(());
    }
    let policies = store.objects_of(policy_type);
    let namespace_object = namespace_object(store, attempt);
    let request = request_of(admission, attempt);
    for binding in &bindings {
        let policy_name = binding["spec"]["policyName"].as_str().unwrap_or_default();
        let Some(policy) = policies
            .iter()
            .find(|p| p["metadata"]["name"].as_str() == Some(policy_name))
        else {
            continue;
        };
        let spec = &policy["spec"];
        let sub = admission.subresource.as_str();
        if !resources_match(
            &spec["matchConstraints"],
            attempt,
            sub,
            namespace_object.as_ref(),
        ) || binding["spec"]
            .get("matchResources")
            .is_some_and(|m| !resources_match(m, attempt, sub, namespace_object.as_ref()))
        {
            continue;
        }
        let actions = actions_of(&binding["spec"]);
        let refusals = match params_for(store, spec, &binding["spec"], attempt) {
            Ok(params) => params
                .iter()
                .flat_map(|p| evaluate(spec, attempt, &request, p, namespace_object.as_ref()))
                .collect::<Vec<_>>(),
            Err(refusal) => vec![refusal],
        };
        let binding_name = binding["metadata"]["name"].as_str().unwrap_or_default();
        for refusal in refusals {
            if actions.contains(&Action::Warn) {
                admission.warnings.push(format!(
                    "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {}",
                    refusal.message
                ));
            }
            if actions.contains(&Action::Deny) {
                return Err(denial(
                    attempt,
                    &format!(
                        "ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {}",
                        refusal.message
                    ),
                    &refusal.reason,
                ));
            }
        }
    }
    Ok(())
}

/// What the real server refuses in a policy or binding itself: expressions that do not
/// compile, a policy without validations, a binding without a policy name or actions,
/// unknown enum values. Empty for every other kind.
pub fn check_definition(rt: &ResourceType, object: &Value) -> Vec<FieldError> {
    if rt.group != GROUP {
        return Vec::new();
    }
    let spec = &object["spec"];
    let mut errors = Vec::new();
    match rt.plural.as_str() {
        "validatingadmissionpolicies" => {
            errors.extend(one_of(
                "spec.failurePolicy",
                &spec["failurePolicy"],
                &["Fail", "Ignore"],
            ));
            let expressions = [
                ("matchConditions", "expression"),
                ("variables", "expression"),
                ("validations", "expression"),
                ("validations", "messageExpression"),
            ];
            for (list, field) in expressions {
                for (i, item) in spec[list].as_array().into_iter().flatten().enumerate() {
                    if let Some(source) = item[field].as_str()
                        && let Err(why) = Expression::compile(source)
                    {
                        errors.push(FieldError::invalid(
                            &format!("spec.{list}[{i}].{field}"),
                            &json!(source),
                            &why,
                        ));
                    }
                }
            }
            let empty = |list: &str| spec[list].as_array().is_none_or(Vec::is_empty);
            if empty("validations") && empty("auditAnnotations") {
                errors.push(FieldError::required(
                    "spec.validations",
                    "validations or auditAnnotations must contain at least one item",
                ));
            }
        }
        "validatingadmissionpolicybindings" => {
            if spec["policyName"].as_str().is_none_or(str::is_empty) {
                errors.push(FieldError::required("spec.policyName", ""));
            }
            let actions = spec["validationActions"].as_array();
            if actions.is_none_or(Vec::is_empty) {
                errors.push(FieldError::required(
                    "spec.validationActions",
                    "at least one validation action is required",
                ));
            }
            for (i, action) in actions.into_iter().flatten().enumerate() {
                errors.extend(one_of(
                    &format!("spec.validationActions[{i}]"),
                    action,
                    &["Deny", "Warn", "Audit"],
                ));
            }
        }
        _ => {}
    }
    errors
}

fn one_of(field: &str, value: &Value, allowed: &[&str]) -> Option<FieldError> {
    let v = value.as_str()?;
    if allowed.contains(&v) {
        return None;
    }
    let supported: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    Some(FieldError {
        reason: "FieldValueNotSupported",
        field: field.to_owned(),
        message: format!(
            "Unsupported value: {v:?}: supported values: {}",
            supported.join(", ")
        ),
    })
}

/// The real server's refusal: `admission.NewForbidden`'s message and details, with the
/// validation's reason (default `Invalid`) and its code, and the message as the one cause.
fn denial(attempt: Attempt<'_>, message: &str, reason: &str) -> ApiError {
    let rt = attempt.rt;
    let full = if attempt.name.is_empty() {
        format!("{} is forbidden: {message}", rt.qualified())
    } else {
        format!(
            "{} \"{}\" is forbidden: {message}",
            rt.qualified(),
            attempt.name
        )
    };
    let (code, reason) = match reason {
        "Forbidden" => (403, "Forbidden"),
        "Unauthorized" => (401, "Unauthorized"),
        "RequestEntityTooLarge" => (413, "RequestEntityTooLarge"),
        _ => (422, "Invalid"),
    };
    let mut e = ApiError::new(code, reason, full);
    e.details = Some(
        json!({ "name": attempt.name, "group": rt.group, "kind": rt.plural,
        "causes": [{ "message": message }] }),
    );
    e
}

fn actions_of(binding_spec: &Value) -> Vec<Action> {
    binding_spec["validationActions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| match a.as_str() {
            Some("Deny") => Some(Action::Deny),
            Some("Warn") => Some(Action::Warn),
            _ => None,
        })
        .collect()
}

fn namespace_object(store: &Store, attempt: Attempt<'_>) -> Option<Value> {
    if !attempt.rt.namespaced {
        return None;
    }
    let namespaces = store.catalogue.get("", "v1", "namespaces")?;
    store.get(namespaces, "", attempt.namespace).ok()
}

/// The `request` variable: an `admission.k8s.io/v1` AdmissionRequest's fields.
fn request_of(admission: &Admission, attempt: Attempt<'_>) -> Value {
    let rt = attempt.rt;
    let kind = json!({ "group": rt.group, "version": rt.version, "kind": rt.kind });
    let resource = json!({ "group": rt.group, "version": rt.version, "resource": rt.plural });
    json!({
        "uid": "",
        "kind": kind, "resource": resource,
        "requestKind": kind, "requestResource": resource,
        "subResource": admission.subresource,
        "name": attempt.name, "namespace": attempt.namespace,
        "operation": attempt.operation.wire(),
        "userInfo": {
            "username": admission.user.username, "uid": admission.user.uid,
            "groups": admission.user.groups, "extra": admission.user.extra,
        },
        "dryRun": admission.dry_run,
    })
}

/// Does a `matchConstraints`/`matchResources` select this write?
fn resources_match(
    matcher: &Value,
    attempt: Attempt<'_>,
    subresource: &str,
    namespace: Option<&Value>,
) -> bool {
    let rules =
        |field: &str| -> Vec<&Value> { matcher[field].as_array().into_iter().flatten().collect() };
    let included = rules("resourceRules");
    // A binding's matchResources without rules narrows by selectors only.
    if matcher.get("resourceRules").is_some()
        && !included
            .iter()
            .any(|r| rule_matches(r, attempt, subresource))
    {
        return false;
    }
    if rules("excludeResourceRules")
        .iter()
        .any(|r| rule_matches(r, attempt, subresource))
    {
        return false;
    }
    if let Some(selector) = matcher.get("namespaceSelector").filter(|s| !s.is_null()) {
        let labels = if attempt.rt.group.is_empty() && attempt.rt.plural == "namespaces" {
            attempt
                .object
                .or(attempt.old_object)
                .map(|o| o["metadata"]["labels"].clone())
        } else {
            namespace.map(|n| n["metadata"]["labels"].clone())
        };
        // Cluster-scoped objects other than namespaces always match.
        if let Some(labels) = labels
            && !label_selector_matches(selector, &labels)
        {
            return false;
        }
    }
    if let Some(selector) = matcher.get("objectSelector").filter(|s| !s.is_null()) {
        let matches = |o: Option<&Value>| {
            o.is_some_and(|o| label_selector_matches(selector, &o["metadata"]["labels"]))
        };
        if !matches(attempt.object) && !matches(attempt.old_object) {
            return false;
        }
    }
    true
}

fn rule_matches(rule: &Value, attempt: Attempt<'_>, subresource: &str) -> bool {
    let listed = |field: &str, value: &str| {
        rule[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|v| v == "*" || v == value)
    };
    let rt = attempt.rt;
    let scope = rule["scope"].as_str().unwrap_or("*");
    let scoped = match scope {
        "Namespaced" => rt.namespaced,
        "Cluster" => !rt.namespaced,
        _ => true,
    };
    let names = rule["resourceNames"].as_array();
    let named = names.is_none_or(|n| n.is_empty() || n.iter().any(|n| n == attempt.name));
    scoped
        && named
        && listed("apiGroups", &rt.group)
        && listed("apiVersions", &rt.version)
        && listed("operations", attempt.operation.wire())
        && resource_listed(rule, &rt.plural, subresource)
}

fn resource_listed(rule: &Value, plural: &str, subresource: &str) -> bool {
    rule["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| {
            // `*` is every resource, `*/*` also every subresource, `pods/*` every
            // subresource of pods, `*/status` the status of every resource.
            let (resource, sub) = r.split_once('/').unwrap_or((r, ""));
            let sub_matches = match sub {
                "*" => r == "*/*" || !subresource.is_empty(),
                _ => sub == subresource,
            };
            (resource == "*" || resource == plural) && sub_matches
        })
}

/// The params each evaluation sees: `[null]` for a policy without `paramKind`, else the
/// object named by the binding's `paramRef` or each object its selector picks.
fn params_for(
    store: &Store,
    policy_spec: &Value,
    binding_spec: &Value,
    attempt: Attempt<'_>,
) -> Result<Vec<Arc<Value>>, Refusal> {
    let Some(kind) = policy_spec.get("paramKind").filter(|k| !k.is_null()) else {
        return Ok(vec![Arc::new(Value::Null)]);
    };
    let misconfigured = |why: String| Refusal {
        message: format!("failed to configure binding: {why}"),
        reason: "Invalid".into(),
    };
    let api_version = kind["apiVersion"].as_str().unwrap_or_default();
    let kind_name = kind["kind"].as_str().unwrap_or_default();
    let Some(param_type) = store.catalogue.by_kind(api_version, kind_name) else {
        return Err(misconfigured(format!(
            "paramKind {api_version}, Kind={kind_name} is not served"
        )));
    };
    let reference = &binding_spec["paramRef"];
    if reference.is_null() {
        return Err(misconfigured(
            "the policy has a paramKind but the binding has no paramRef".into(),
        ));
    }
    let namespace = match reference["namespace"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => n,
        None if param_type.namespaced => attempt.namespace,
        None => "",
    };
    let found: Vec<Arc<Value>> = match reference["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => store
            .get(param_type, namespace, name)
            .ok()
            .map(Arc::new)
            .into_iter()
            .collect(),
        None => store
            .objects_of(param_type)
            .into_iter()
            .filter(|p| {
                !param_type.namespaced || p["metadata"]["namespace"].as_str() == Some(namespace)
            })
            .filter(|p| label_selector_matches(&reference["selector"], &p["metadata"]["labels"]))
            .collect(),
    };
    if found.is_empty() {
        return match reference["parameterNotFoundAction"].as_str() {
            Some("Allow") => Ok(Vec::new()),
            _ => Err(Refusal {
                message: "no params found for policy binding with `Deny` parameterNotFoundAction"
                    .into(),
                reason: "Invalid".into(),
            }),
        };
    }
    Ok(found)
}

/// Runs one policy against one params object: the failed validations, in order.
fn evaluate(
    spec: &Value,
    attempt: Attempt<'_>,
    request: &Value,
    params: &Value,
    namespace: Option<&Value>,
) -> Vec<Refusal> {
    let ignore_errors = spec["failurePolicy"].as_str() == Some("Ignore");
    let error = |source: &str, why: String| Refusal {
        message: format!("expression '{source}' resulted in error: {why}"),
        reason: "Invalid".into(),
    };
    let mut bound: Vec<(&str, cel::Value)> = vec![
        ("object", attempt.object.map_or(cel::Value::Null, from_json)),
        (
            "oldObject",
            attempt.old_object.map_or(cel::Value::Null, from_json),
        ),
        ("request", from_json(request)),
        ("params", from_json(params)),
        (
            "namespaceObject",
            namespace.map_or(cel::Value::Null, from_json),
        ),
    ];
    for condition in spec["matchConditions"].as_array().into_iter().flatten() {
        let source = condition["expression"].as_str().unwrap_or_default();
        match Expression::compile(source).and_then(|e| e.check(&bound)) {
            Ok(true) => {}
            Ok(false) => return Vec::new(),
            Err(_) if ignore_errors => return Vec::new(),
            Err(why) => return vec![error(source, why)],
        }
    }
    let mut variables = std::collections::HashMap::new();
    for variable in spec["variables"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().unwrap_or_default();
        let source = variable["expression"].as_str().unwrap_or_default();
        let with_variables = bound_with_variables(&bound, &variables);
        // A variable that fails is left out: only expressions that use it fail.
        if let Ok(value) = Expression::compile(source).and_then(|e| e.evaluate(&with_variables)) {
            variables.insert(cel::objects::Key::from(name.to_owned()), value);
        }
    }
    bound.push((
        "variables",
        cel::Value::Map(cel::objects::Map {
            map: Arc::new(variables),
        }),
    ));
    let mut refusals = Vec::new();
    for validation in spec["validations"].as_array().into_iter().flatten() {
        let source = validation["expression"].as_str().unwrap_or_default();
        let reason = validation["reason"]
            .as_str()
            .unwrap_or("Invalid")
            .to_owned();
        match Expression::compile(source).and_then(|e| e.check(&bound)) {
            Ok(true) => {}
            Ok(false) => {
                let message = validation["messageExpression"]
                    .as_str()
                    .and_then(|m| Expression::compile(m).and_then(|e| e.message(&bound)).ok())
                    .filter(|m| !m.trim().is_empty())
                    .or_else(|| validation["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("failed expression: {source}"));
                refusals.push(Refusal { message, reason });
            }
            Err(_) if ignore_errors => {}
            Err(why) => refusals.push(error(source, why)),
        }
    }
    refusals
}

/// `bound` plus the variables evaluated so far, for the next variable's expression.
fn bound_with_variables<'a>(
    bound: &[(&'a str, cel::Value)],
    variables: &std::collections::HashMap<cel::objects::Key, cel::Value>,
) -> Vec<(&'a str, cel::Value)> {
    let mut all = bound.to_vec();
    all.push((
        "variables",
        cel::Value::Map(cel::objects::Map {
            map: Arc::new(variables.clone()),
        }),
    ));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_select_main_resources_and_subresources_as_the_real_server() {
        let rule = |r: &str| json!({ "resources": [r] });
        for (written, sub, expected) in [
            ("deployments", "", ["*", "deployments", "*/*"].as_slice()),
            (
                "deployments",
                "status",
                ["*/*", "deployments/*", "deployments/status", "*/status"].as_slice(),
            ),
        ] {
            for r in [
                "*",
                "*/*",
                "deployments",
                "deployments/*",
                "deployments/status",
                "*/status",
                "pods",
            ] {
                assert_eq!(
                    resource_listed(&rule(r), written, sub),
                    expected.contains(&r),
                    "rule {r} for {written}/{sub}"
                );
            }
        }
    }
}
