//! What can go wrong talking to the cluster, as sentences a person can act on, and the
//! translation of the API server's `Status` answers (404, 403, ...) into them.

use kube::core::Status;

/// A failure of a cluster-facing command.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "cannot load kubeconfig {source_name}: {detail}; pass --kubeconfig FILE or fix KUBECONFIG"
    )]
    Kubeconfig { source_name: String, detail: String },

    #[error(
        "no cluster to talk to: no kubeconfig was found and this is not a pod in a cluster ({detail}); pass --kubeconfig FILE or set KUBECONFIG"
    )]
    NoConfig { detail: String },

    #[error(
        "Rollout \"{name}\" not found in namespace \"{namespace}\"; list them with `kubectl fife list rollouts -n {namespace}`, or pass -n NAMESPACE"
    )]
    RolloutNotFound { name: String, namespace: String },

    #[error("namespace \"{namespace}\" does not exist; pass -n with an existing namespace")]
    NamespaceNotFound { namespace: String },

    #[error("the {kind} CRD is not installed: kubectl apply -f crds/")]
    CrdMissing { kind: &'static str },

    #[error(
        "forbidden: {who} cannot {verb} {object} in namespace \"{namespace}\"; ask for a Role granting `{verb}` on `{resource}` (check with `kubectl auth can-i {verb} {resource} -n {namespace}`)"
    )]
    Forbidden {
        who: String,
        verb: String,
        resource: String,
        /// The resource and, for a named object, its name.
        object: String,
        namespace: String,
    },

    #[error("the API server refused to {verb} {resource} in namespace \"{namespace}\": {message}")]
    Api {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        message: String,
    },

    #[error(
        "cannot reach the API server ({detail}); check the cluster address in your kubeconfig and that it is up"
    )]
    Unreachable { detail: String },

    #[error("the watch on Rollout \"{name}\" in namespace \"{namespace}\" ended: {detail}")]
    WatchFailed {
        name: String,
        namespace: String,
        detail: String,
    },

    #[error(
        "the API server did not say who you are ({detail}); approvals and break-glasses need the SelfSubjectReview API (Kubernetes 1.28+) so that no typed name is trusted"
    )]
    NoIdentity { detail: String },

    #[error("admission refused the request: {message}")]
    AdmissionRefused { message: String },

    #[error("{0}")]
    Release(String),

    #[error("cannot write to the terminal: {0}")]
    Output(#[from] std::io::Error),
}

/// The request that failed, so the error can say what was attempted on what.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The RBAC verb: get, list, watch, patch.
    pub verb: &'static str,
    /// The kind, e.g. `Rollout`.
    pub kind: &'static str,
    /// The resource as RBAC names it, e.g. `rollouts.fife.dev`.
    pub resource: &'static str,
    /// The object's name for get and patch; `None` for list and watch.
    pub name: Option<&'a str>,
    pub namespace: &'a str,
}

impl Attempt<'_> {
    /// Turns a client error into the sentence for this attempt.
    pub fn explain(&self, error: kube::Error) -> OpsError {
        match error {
            kube::Error::Api(status) => self.explain_status(&status),
            kube::Error::HyperError(e) => OpsError::Unreachable {
                detail: e.to_string(),
            },
            kube::Error::Service(e) => OpsError::Unreachable {
                detail: e.to_string(),
            },
            other => OpsError::Api {
                verb: self.verb,
                resource: self.resource,
                namespace: self.namespace.to_owned(),
                message: other.to_string(),
            },
        }
    }

    /// The API server's answer, read as the real server writes it:
    /// - 404 with `details` naming the object: the object (or its namespace) is missing;
    /// - 404 without details (a `Status` saying the server could not find the requested
    ///   resource, or a plain `404 page not found`): the resource type is not served, so
    ///   the CRD is not installed;
    /// - 403: the verb and resource come from the server's message
    ///   (`User "u" cannot patch resource "rollouts" in API group "fife.dev" ...`), else
    ///   from the attempt.
    pub fn explain_status(&self, status: &Status) -> OpsError {
        // A ValidatingAdmissionPolicy's denial is about the request, not about RBAC.
        if status.message.contains("ValidatingAdmissionPolicy") {
            return OpsError::AdmissionRefused {
                message: status.message.clone(),
            };
        }
        match status.code {
            404 => match status.details.as_ref() {
                Some(details) if details.kind == "namespaces" => OpsError::NamespaceNotFound {
                    namespace: self.namespace.to_owned(),
                },
                Some(details) if !details.name.is_empty() => OpsError::RolloutNotFound {
                    name: self.name.unwrap_or(&details.name).to_owned(),
                    namespace: self.namespace.to_owned(),
                },
                _ => OpsError::CrdMissing { kind: self.kind },
            },
            403 => {
                let parsed = parse_forbidden(&status.message);
                let resource = parsed
                    .resource
                    .map(|(resource, group)| {
                        if group.is_empty() {
                            resource.to_owned()
                        } else {
                            format!("{resource}.{group}")
                        }
                    })
                    .unwrap_or_else(|| self.resource.to_owned());
                let object = match self.name {
                    Some(name) => format!("{resource} \"{name}\""),
                    None => resource.clone(),
                };
                OpsError::Forbidden {
                    who: parsed.who.unwrap_or("you").to_owned(),
                    verb: parsed.verb.unwrap_or(self.verb).to_owned(),
                    resource,
                    object,
                    namespace: self.namespace.to_owned(),
                }
            }
            _ => OpsError::Api {
                verb: self.verb,
                resource: self.resource,
                namespace: self.namespace.to_owned(),
                message: if status.message.is_empty() {
                    format!("HTTP {} {}", status.code, status.reason)
                } else {
                    status.message.clone()
                },
            },
        }
    }
}

/// The parts of a 403 message the API server's authorizer writes.
#[derive(Debug, Default, PartialEq)]
struct ForbiddenMessage<'a> {
    who: Option<&'a str>,
    verb: Option<&'a str>,
    /// (resource, API group)
    resource: Option<(&'a str, &'a str)>,
}

/// Reads `... is forbidden: User "alice" cannot patch resource "rollouts" in API group
/// "fife.dev" in the namespace "default"`.
fn parse_forbidden(message: &str) -> ForbiddenMessage<'_> {
    let mut parsed = ForbiddenMessage::default();
    let Some(rest) = message.split_once("is forbidden: ").map(|(_, r)| r) else {
        return parsed;
    };
    if let Some((who, after)) = rest.split_once(" cannot ") {
        parsed.who = Some(who);
        let mut words = after.splitn(2, ' ');
        parsed.verb = words.next().filter(|v| !v.is_empty());
        let after_verb = words.next().unwrap_or_default();
        if let Some(resource) = quoted_after(after_verb, "resource ") {
            let group = quoted_after(after_verb, "in API group ").unwrap_or_default();
            parsed.resource = Some((resource, group));
        }
    }
    parsed
}

fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let start = text.find(prefix)? + prefix.len();
    let rest = text[start..].strip_prefix('"')?;
    rest.split_once('"').map(|(value, _)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::StatusDetails;

    fn attempt(verb: &'static str, name: Option<&'static str>) -> Attempt<'static> {
        Attempt {
            verb,
            kind: "Rollout",
            resource: "rollouts.fife.dev",
            name,
            namespace: "shop",
        }
    }

    fn status(code: u16, message: &str, details: Option<(&str, &str)>) -> Status {
        let mut s = Status::failure(message, "Whatever").with_code(code);
        if let Some((name, kind)) = details {
            s = s.with_details(StatusDetails {
                name: name.into(),
                kind: kind.into(),
                group: "fife.dev".into(),
                uid: String::new(),
                causes: Vec::new(),
                retry_after_seconds: 0,
            });
        }
        s
    }

    #[test]
    fn a_404_naming_the_object_is_a_missing_rollout_in_the_namespace_tried() {
        let e = attempt("get", Some("checkout")).explain_status(&status(
            404,
            "not found",
            Some(("checkout", "rollouts")),
        ));
        assert_eq!(
            e.to_string(),
            "Rollout \"checkout\" not found in namespace \"shop\"; list them with `kubectl fife list rollouts -n shop`, or pass -n NAMESPACE"
        );
    }

    #[test]
    fn a_404_without_details_means_the_crd_is_not_installed() {
        for s in [
            status(
                404,
                "the server could not find the requested resource",
                None,
            ),
            status(404, "404 page not found", None),
        ] {
            let e = attempt("get", Some("checkout")).explain_status(&s);
            assert_eq!(
                e.to_string(),
                "the Rollout CRD is not installed: kubectl apply -f crds/"
            );
        }
    }

    #[test]
    fn a_404_on_the_namespace_says_so() {
        let e = attempt("patch", Some("checkout")).explain_status(&status(
            404,
            "namespaces \"shop\" not found",
            Some(("shop", "namespaces")),
        ));
        assert!(matches!(e, OpsError::NamespaceNotFound { .. }), "{e}");
    }

    #[test]
    fn a_403_names_the_verb_and_resource_from_the_server_message() {
        let e = attempt("get", Some("checkout")).explain_status(&status(
            403,
            "rollouts.fife.dev \"checkout\" is forbidden: User \"alice\" cannot patch resource \"rollouts\" in API group \"fife.dev\" in the namespace \"shop\"",
            Some(("checkout", "rollouts")),
        ));
        assert_eq!(
            e.to_string(),
            "forbidden: User \"alice\" cannot patch rollouts.fife.dev \"checkout\" in namespace \"shop\"; ask for a Role granting `patch` on `rollouts.fife.dev` (check with `kubectl auth can-i patch rollouts.fife.dev -n shop`)"
        );
    }

    #[test]
    fn a_403_without_the_usual_wording_falls_back_to_the_attempt() {
        let e = attempt("list", None).explain_status(&status(403, "denied by policy", None));
        assert_eq!(
            e.to_string(),
            "forbidden: you cannot list rollouts.fife.dev in namespace \"shop\"; ask for a Role granting `list` on `rollouts.fife.dev` (check with `kubectl auth can-i list rollouts.fife.dev -n shop`)"
        );
    }

    #[test]
    fn core_group_resources_have_no_group_suffix() {
        let parsed = parse_forbidden(
            "deployments is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"x\"",
        );
        assert_eq!(parsed.resource, Some(("pods", "")));
        assert_eq!(parsed.verb, Some("list"));
    }
}
