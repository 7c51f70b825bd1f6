//! The opt-in mark that makes a Secret usable as a metrics credential, and the rule that
//! decides whether a marked Secret may go to a provider's address. The controller applies
//! the rule before any request leaves; `fife validate` applies it to the Secrets it can see.
//!
//! ```text
//!   provider spec ─▶ secret_key_refs ─▶ each Secret's metadata ─▶ permits(meta, address)
//!                                                                   ├─ Ok: may be sent
//!                                                                   └─ Refusal: Error, nothing sent
//! ```
//!
//! Why a mark on the Secret: the controller may read Secrets its users may not, so a template
//! that names a Secret and an address of its author's choosing would make the controller a
//! deputy that carries any Secret anywhere. Only someone who may write the Secret can mark it,
//! so the mark is its owner's consent. The mark is a label, not an annotation, so the Secrets
//! Fife may read can be listed with one selector (`kubectl get secrets -A -l
//! fife.dev/metrics-credential=true`); the addresses are an annotation because URLs are not
//! label values.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::analysis::{Metric, MetricProvider, PrometheusProvider};
use crate::validation::{Problem, Severity};

/// The label that marks a Secret as a metrics credential; its value must be
/// [`METRICS_CREDENTIAL_VALUE`].
pub const METRICS_CREDENTIAL_LABEL: &str = "fife.dev/metrics-credential";
/// The only value of [`METRICS_CREDENTIAL_LABEL`] that marks a Secret.
pub const METRICS_CREDENTIAL_VALUE: &str = "true";
/// Optional annotation on a marked Secret: the provider addresses (URL prefixes, separated
/// by commas or white space) it may be sent to. Without it, any address may receive it.
pub const ALLOWED_ADDRESSES_ANNOTATION: &str = "fife.dev/allowed-addresses";

/// One Secret key a provider refers to, and the provider field that refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyUse<'a> {
    /// The field path under the provider, e.g. `auth.bearerTokenSecretRef`.
    pub field: &'static str,
    pub name: &'a str,
    pub key: &'a str,
}

/// The field of a CA bundle reference, which is read but never sent.
pub const CA_BUNDLE_FIELD: &str = "caBundleSecretRef";

/// Every Secret key `spec` refers to, in a fixed order (token or user name, password, CA).
pub fn secret_key_refs(spec: &PrometheusProvider) -> Vec<SecretKeyUse<'_>> {
    let mut refs = Vec::new();
    if let Some(auth) = &spec.auth {
        if let Some(r) = &auth.bearer_token_secret_ref {
            refs.push(SecretKeyUse {
                field: "auth.bearerTokenSecretRef",
                name: &r.name,
                key: &r.key,
            });
        }
        if let Some(r) = &auth.basic_auth_secret_ref {
            for key in [&r.username_key, &r.password_key] {
                refs.push(SecretKeyUse {
                    field: "auth.basicAuthSecretRef",
                    name: &r.name,
                    key,
                });
            }
        }
    }
    if let Some(r) = &spec.ca_bundle_secret_ref {
        refs.push(SecretKeyUse {
            field: CA_BUNDLE_FIELD,
            name: &r.name,
            key: &r.key,
        });
    }
    refs
}

/// Why a Secret may not be used for a provider. The caller names the Secret; each message
/// says what is missing and how its owner grants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The Secret has no `fife.dev/metrics-credential: "true"` label.
    Unmarked { found: Option<String> },
    /// The Secret's allowed addresses do not include the provider's address.
    AddressNotAllowed {
        address: String,
        allowed: Vec<String>,
    },
    /// The provider's address is not an http(s) URL, so it cannot be matched.
    BadAddress { address: String, reason: String },
    /// An entry of the allowed addresses is not an http(s) URL; the list is refused whole
    /// rather than guessed at.
    BadAllowedEntry { entry: String, reason: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unmarked { found } => {
                let found = match found {
                    Some(value) => format!("its label {METRICS_CREDENTIAL_LABEL} is {value:?}"),
                    None => format!("it has no label {METRICS_CREDENTIAL_LABEL}"),
                };
                write!(
                    f,
                    "it is not marked as a metrics credential ({found}): only a Secret labelled \
                     {METRICS_CREDENTIAL_LABEL}=\"{METRICS_CREDENTIAL_VALUE}\" is read for a \
                     metrics provider; if its owner means it for one, label it and list the \
                     addresses it may go to in annotation {ALLOWED_ADDRESSES_ANNOTATION}"
                )
            }
            Refusal::AddressNotAllowed { address, allowed } => write!(
                f,
                "it may be sent only to {} (annotation {ALLOWED_ADDRESSES_ANNOTATION}), not to \
                 {address}; point the provider at an allowed address, or have the Secret's \
                 owner add this one",
                allowed.join(", ")
            ),
            Refusal::BadAddress { address, reason } => write!(
                f,
                "the provider's address {address:?} is not an http(s) URL ({reason}), so it \
                 cannot be matched against the Secret's allowed addresses; fix the address"
            ),
            Refusal::BadAllowedEntry { entry, reason } => write!(
                f,
                "its annotation {ALLOWED_ADDRESSES_ANNOTATION} holds {entry:?}, which is not an \
                 http(s) URL prefix ({reason}); write entries like \
                 http://prometheus.monitoring:9090, separated by commas"
            ),
        }
    }
}

/// Whether a Secret with metadata `meta` may be used for a provider at `address`. Pure.
pub fn permits(meta: &ObjectMeta, address: &str) -> Result<(), Refusal> {
    let mark = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(METRICS_CREDENTIAL_LABEL));
    if mark.map(String::as_str) != Some(METRICS_CREDENTIAL_VALUE) {
        return Err(Refusal::Unmarked {
            found: mark.cloned(),
        });
    }
    let Some(list) = annotation(meta, ALLOWED_ADDRESSES_ANNOTATION) else {
        return Ok(());
    };
    let allowed: Vec<&str> = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .collect();
    let prefixes = allowed
        .iter()
        .map(|entry| {
            http_url(entry).map_err(|reason| Refusal::BadAllowedEntry {
                entry: (*entry).to_owned(),
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let target = http_url(address).map_err(|reason| Refusal::BadAddress {
        address: address.to_owned(),
        reason,
    })?;
    if prefixes.iter().any(|prefix| is_under(&target, prefix)) {
        Ok(())
    } else {
        Err(Refusal::AddressNotAllowed {
            address: address.to_owned(),
            allowed: allowed.iter().map(|e| (*e).to_owned()).collect(),
        })
    }
}

fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a: &BTreeMap<String, String>| a.get(name))
        .map(String::as_str)
}

fn http_url(text: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(text.trim()).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?}, not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    Ok(parsed)
}

/// `target` lies under `prefix`: same scheme, host and port (after parsing, so user info,
/// case and default ports cannot fake a match), and a path that is `prefix`'s path or below
/// it at a `/` boundary.
fn is_under(target: &url::Url, prefix: &url::Url) -> bool {
    if target.scheme() != prefix.scheme()
        || target.host_str() != prefix.host_str()
        || target.port_or_known_default() != prefix.port_or_known_default()
    {
        return false;
    }
    let base = prefix.path().trim_end_matches('/');
    let path = target.path();
    base.is_empty() || path == base || path.starts_with(&format!("{base}/"))
}

/// Warnings for `fife validate`: each Secret reference of `metrics` whose Secret is among
/// `secrets` (the Secrets of the template's namespace that the manifests hold; for a
/// ClusterAnalysisTemplate, those of every namespace) and would be refused. A reference
/// to a Secret the manifests do not hold is not reported: the cluster's copy decides.
pub fn reference_warnings(metrics: &[Metric], secrets: &[&ObjectMeta]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, metric) in metrics.iter().enumerate() {
        let MetricProvider::Prometheus(spec) = &metric.provider;
        let mut seen = Vec::new();
        for r in secret_key_refs(spec) {
            if seen.contains(&(r.field, r.name)) {
                continue;
            }
            seen.push((r.field, r.name));
            for secret in secrets.iter().filter(|s| s.name.as_deref() == Some(r.name)) {
                if let Err(refusal) = permits(secret, &spec.address) {
                    let namespace = secret.namespace.as_deref().unwrap_or("default");
                    problems.push(Problem {
                        severity: Severity::Warning,
                        path: format!("spec.metrics[{i}].provider.prometheus.{}", r.field),
                        message: format!(
                            "Secret {namespace}/{} will not be used: {refusal}",
                            r.name
                        ),
                    });
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_meta(label: Option<&str>, allowed: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("prom-token".into()),
            labels: label.map(|v| BTreeMap::from([(METRICS_CREDENTIAL_LABEL.into(), v.into())])),
            annotations: allowed
                .map(|v| BTreeMap::from([(ALLOWED_ADDRESSES_ANNOTATION.into(), v.into())])),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_the_true_label_marks_a_secret() {
        let address = "http://prom:9090";
        assert_eq!(
            permits(&mk_meta(None, None), address),
            Err(Refusal::Unmarked { found: None })
        );
        assert!(matches!(
            permits(&mk_meta(Some("yes"), None), address),
            Err(Refusal::Unmarked { found: Some(v) }) if v == "yes"
        ));
        assert_eq!(permits(&mk_meta(Some("true"), None), address), Ok(()));
        let message = permits(&mk_meta(None, None), address)
            .unwrap_err()
            .to_string();
        assert!(message.contains("fife.dev/metrics-credential=\"true\""));
        assert!(message.contains(ALLOWED_ADDRESSES_ANNOTATION));
    }

    #[test]
    fn allowed_addresses_match_by_origin_and_path_boundary() {
        let meta = mk_meta(
            Some("true"),
            Some("http://prom.monitoring:9090, https://thanos.example.com/api/"),
        );
        for ok in [
            "http://prom.monitoring:9090",
            "http://PROM.monitoring:9090/",
            "https://thanos.example.com/api",
            "https://thanos.example.com:443/api/v1",
        ] {
            assert_eq!(permits(&meta, ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://prom.monitoring:9091",
            "https://prom.monitoring:9090",
            "http://prom.monitoring:9090@evil.example.com",
            "http://prom.monitoring.evil.example.com:9090",
            "https://thanos.example.com/apix",
            "https://thanos.example.com/",
        ] {
            assert!(
                matches!(
                    permits(&meta, refused),
                    Err(Refusal::AddressNotAllowed { .. })
                ),
                "{refused}"
            );
        }
        let message = permits(&meta, "http://evil:80").unwrap_err().to_string();
        assert!(message.contains("not to http://evil:80"), "{message}");
        assert!(message.contains("http://prom.monitoring:9090, https://thanos"));
    }

    #[test]
    fn a_malformed_allowed_list_refuses_every_address() {
        let meta = mk_meta(Some("true"), Some("prom.monitoring:9090"));
        assert!(matches!(
            permits(&meta, "http://prom.monitoring:9090"),
            Err(Refusal::BadAllowedEntry { .. })
        ));
        let meta = mk_meta(Some("true"), Some("http://prom:9090"));
        assert!(matches!(
            permits(&meta, "not a url"),
            Err(Refusal::BadAddress { .. })
        ));
    }

    #[test]
    fn references_are_listed_with_their_fields() {
        let spec: PrometheusProvider = serde_json::from_value(serde_json::json!({
            "address": "http://prom:9090",
            "query": "up",
            "auth": {"basicAuthSecretRef": {"name": "basic"}},
            "caBundleSecretRef": {"name": "ca", "key": "ca.crt"},
        }))
        .unwrap();
        let refs: Vec<_> = secret_key_refs(&spec)
            .into_iter()
            .map(|r| (r.field, r.name, r.key))
            .collect();
        assert_eq!(
            refs,
            [
                ("auth.basicAuthSecretRef", "basic", "username"),
                ("auth.basicAuthSecretRef", "basic", "password"),
                ("caBundleSecretRef", "ca", "ca.crt"),
            ]
        );
    }
}
