//! Reads the credentials a Prometheus provider names (`auth.bearerTokenSecretRef`,
//! `auth.basicAuthSecretRef`, `caBundleSecretRef`) from Secrets in the Rollout's namespace.
//!
//! ```text
//!   provider spec ─▶ Secret names ─▶ get each (the edge) ─▶ assemble (pure) ─▶ Auth + CA bundle
//!                                                                    └─▶ CredentialError ─▶ measurement Error
//! ```
//!
//! A Secret is used only when it carries the opt-in mark of [`fife_api::credentials`] (the
//! label `fife.dev/metrics-credential: "true"`, and its allowed addresses when it lists them):
//! the controller can read Secrets that a template's author cannot, and must not carry them
//! to an address of the author's choosing. An unmarked Secret, or one whose addresses do not
//! include the provider's, is refused here, before any request is built.
//!
//! Secrets are read with `get` at each measurement, never listed or watched: the controller
//! needs nothing beyond `get` on Secrets (grantable per namespace, even per Secret name), and
//! a rotated token is used from the next measurement on. A credential that cannot be read
//! makes the measurement an Error, never a pass and never a crash.

use std::collections::BTreeMap;

use fife_api::analysis::PrometheusProvider;
use fife_api::credentials::{CA_BUNDLE_FIELD, Refusal, SecretKeyUse, permits, secret_key_refs};
use fife_metrics::Auth;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// What a provider needs from Secrets, already decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderCredentials {
    pub auth: Option<Auth>,
    /// PEM CA certificates to trust for an `https` address.
    pub ca_bundle_pem: Option<Vec<u8>>,
}

/// Why a provider's credentials could not be read. Each message names the provider field,
/// the Secret as namespace/name and the key, and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "{field} names Secret {namespace}/{name}, which does not exist; create it in the \
         Rollout's namespace with key `{key}` (kubectl -n {namespace} create secret generic \
         {name} --from-file={key}=...) or fix the reference"
    )]
    SecretMissing {
        field: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "{field} names key `{key}` of Secret {namespace}/{name}, which the Secret does not \
         have (its keys: {present}); add the key to the Secret or fix the reference"
    )]
    KeyMissing {
        field: &'static str,
        namespace: String,
        name: String,
        key: String,
        present: String,
    },
    #[error(
        "key `{key}` of Secret {namespace}/{name} ({field}) is not UTF-8 text; store the \
         credential as text"
    )]
    NotText {
        field: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "the controller may not read Secret {namespace}/{name} ({field}, key `{key}`): grant \
         `get` on secrets in namespace {namespace} to the controller's ServiceAccount (see \
         docs/controller.md, \"Prometheus credentials\")"
    )]
    Forbidden {
        field: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("{field} names Secret {namespace}/{name}, which is refused: {refusal}")]
    Refused {
        field: &'static str,
        namespace: String,
        name: String,
        refusal: Refusal,
    },
    #[error(
        "reading Secret {namespace}/{name} ({field}, key `{key}`) failed: {detail}; the next \
         measurement tries again"
    )]
    Unreadable {
        field: &'static str,
        namespace: String,
        name: String,
        key: String,
        detail: String,
    },
}

/// What reading one Secret gave.
#[derive(Clone)]
pub enum SecretLookup {
    Found(Box<Secret>),
    NotFound,
    Forbidden,
    Failed(String),
}

// A Secret's data must never reach a log: only its name is shown.
impl std::fmt::Debug for SecretLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretLookup::Found(secret) => {
                write!(
                    f,
                    "Found({}, <redacted>)",
                    secret.metadata.name.as_deref().unwrap_or("")
                )
            }
            SecretLookup::NotFound => f.write_str("NotFound"),
            SecretLookup::Forbidden => f.write_str("Forbidden"),
            SecretLookup::Failed(detail) => write!(f, "Failed({detail})"),
        }
    }
}

/// Reads the Secrets `spec` refers to from `namespace` (each once) and assembles the
/// credentials. A provider without Secret references makes no API call.
pub async fn resolve(
    client: &Client,
    namespace: &str,
    spec: &PrometheusProvider,
) -> Result<ProviderCredentials, CredentialError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secrets = BTreeMap::new();
    for r in secret_key_refs(spec) {
        if secrets.contains_key(r.name) {
            continue;
        }
        let lookup = match api.get_opt(r.name).await {
            Ok(Some(secret)) => SecretLookup::Found(Box::new(secret)),
            Ok(None) => SecretLookup::NotFound,
            Err(kube::Error::Api(status)) if status.code == 403 => SecretLookup::Forbidden,
            Err(e) => SecretLookup::Failed(e.to_string()),
        };
        secrets.insert(r.name.to_owned(), lookup);
    }
    assemble(spec, namespace, &secrets)
}

/// The credentials from the Secrets already read, keyed by name. Pure.
pub fn assemble(
    spec: &PrometheusProvider,
    namespace: &str,
    secrets: &BTreeMap<String, SecretLookup>,
) -> Result<ProviderCredentials, CredentialError> {
    let read = |r: &SecretKeyUse<'_>| -> Result<Vec<u8>, CredentialError> {
        let (field, name, key) = (r.field, r.name.to_owned(), r.key.to_owned());
        let namespace = namespace.to_owned();
        let secret = match secrets.get(r.name) {
            Some(SecretLookup::Found(secret)) => secret,
            Some(SecretLookup::Forbidden) => {
                return Err(CredentialError::Forbidden {
                    field,
                    namespace,
                    name,
                    key,
                });
            }
            Some(SecretLookup::Failed(detail)) => {
                return Err(CredentialError::Unreadable {
                    field,
                    namespace,
                    name,
                    key,
                    detail: detail.clone(),
                });
            }
            Some(SecretLookup::NotFound) | None => {
                return Err(CredentialError::SecretMissing {
                    field,
                    namespace,
                    name,
                    key,
                });
            }
        };
        // Before a byte of the Secret is taken: a refused Secret is never read into a request.
        permits(&secret.metadata, &spec.address).map_err(|refusal| CredentialError::Refused {
            field,
            namespace: namespace.clone(),
            name: name.clone(),
            refusal,
        })?;
        // `stringData` is folded into `data` by the API server; a Secret read back only
        // carries `data`, but a test server or a dry-run object may still carry strings.
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(r.key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(r.key))
                    .map(|s| s.clone().into_bytes())
            });
        value.ok_or_else(|| {
            let mut keys: Vec<&str> = secret
                .data
                .iter()
                .flat_map(|d| d.keys())
                .chain(secret.string_data.iter().flat_map(|d| d.keys()))
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            keys.dedup();
            CredentialError::KeyMissing {
                field,
                namespace,
                name,
                key,
                present: if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                },
            }
        })
    };
    let text = |r: &SecretKeyUse<'_>| -> Result<String, CredentialError> {
        let bytes = read(r)?;
        let text = String::from_utf8(bytes).map_err(|_| CredentialError::NotText {
            field: r.field,
            namespace: namespace.to_owned(),
            name: r.name.to_owned(),
            key: r.key.to_owned(),
        })?;
        // `echo token > file; kubectl create secret --from-file` leaves a newline that
        // would otherwise be sent as part of the credential.
        Ok(text.trim_end_matches(['\n', '\r']).to_owned())
    };

    let refs = secret_key_refs(spec);
    let mut credentials = ProviderCredentials::default();
    let mut auth_refs = refs.iter().filter(|r| r.field != CA_BUNDLE_FIELD);
    match (auth_refs.next(), auth_refs.next()) {
        (Some(token), None) => {
            credentials.auth = Some(Auth::Bearer {
                token: text(token)?,
            });
        }
        (Some(username), Some(password)) => {
            credentials.auth = Some(Auth::Basic {
                username: text(username)?,
                password: text(password)?,
            });
        }
        (None, _) => {}
    }
    if let Some(ca) = refs.iter().find(|r| r.field == CA_BUNDLE_FIELD) {
        credentials.ca_bundle_pem = Some(read(ca)?);
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::analysis::{BasicAuthSecretRef, PrometheusAuth, SecretKeyRef};
    use fife_api::credentials::{ALLOWED_ADDRESSES_ANNOTATION, METRICS_CREDENTIAL_LABEL};
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A Secret marked as a metrics credential for any address.
    fn mk_secret(name: &str, data: &[(&str, &[u8])]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([(
                    METRICS_CREDENTIAL_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    fn mk_bearer(name: &str, key: &str) -> PrometheusProvider {
        PrometheusProvider {
            address: "http://prom:9090".into(),
            query: "up".into(),
            auth: Some(PrometheusAuth {
                bearer_token_secret_ref: Some(SecretKeyRef {
                    name: name.into(),
                    key: key.into(),
                }),
                basic_auth_secret_ref: None,
            }),
            ..PrometheusProvider::default()
        }
    }

    fn found(secrets: &[Secret]) -> BTreeMap<String, SecretLookup> {
        secrets
            .iter()
            .map(|s| {
                (
                    s.metadata.name.clone().unwrap(),
                    SecretLookup::Found(Box::new(s.clone())),
                )
            })
            .collect()
    }

    #[test]
    fn an_unmarked_secret_is_refused_naming_it_and_the_mark() {
        let spec = mk_bearer("prom-token", "token");
        let mut secret = mk_secret("prom-token", &[("token", b"s3cr3t")]);
        secret.metadata.labels = None;
        let error = assemble(&spec, "shop", &found(&[secret])).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, CredentialError::Refused { .. }));
        for part in [
            "auth.bearerTokenSecretRef",
            "Secret shop/prom-token",
            "fife.dev/metrics-credential=\"true\"",
        ] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }
        assert!(!message.contains("s3cr3t"));
    }

    #[test]
    fn a_marked_secret_goes_only_to_its_allowed_addresses() {
        let mut secret = mk_secret("prom-token", &[("token", b"s3cr3t")]);
        secret.metadata.annotations = Some(BTreeMap::from([(
            ALLOWED_ADDRESSES_ANNOTATION.to_owned(),
            "http://prom:9090".to_owned(),
        )]));
        let secrets = found(&[secret]);
        assert!(assemble(&mk_bearer("prom-token", "token"), "shop", &secrets).is_ok());
        let elsewhere = PrometheusProvider {
            address: "http://collector.attacker.example:80".into(),
            ..mk_bearer("prom-token", "token")
        };
        let message = assemble(&elsewhere, "shop", &secrets)
            .unwrap_err()
            .to_string();
        assert!(message.contains("Secret shop/prom-token"), "{message}");
        assert!(
            message.contains("not to http://collector.attacker.example:80"),
            "{message}"
        );
    }

    #[test]
    fn a_provider_without_references_needs_no_secret() {
        let spec = PrometheusProvider::default();
        assert!(secret_key_refs(&spec).is_empty());
        assert_eq!(
            assemble(&spec, "shop", &BTreeMap::new()),
            Ok(ProviderCredentials::default())
        );
    }

    #[test]
    fn a_bearer_token_is_read_and_its_trailing_newline_dropped() {
        let spec = mk_bearer("prom-token", "token");
        let secrets = found(&[mk_secret("prom-token", &[("token", b"s3cr3t\n")])]);
        let credentials = assemble(&spec, "shop", &secrets).unwrap();
        assert_eq!(
            credentials.auth,
            Some(Auth::Bearer {
                token: "s3cr3t".into()
            })
        );
        assert_eq!(credentials.ca_bundle_pem, None);
    }

    #[test]
    fn basic_auth_reads_both_keys_and_the_ca_bundle_is_kept_as_bytes() {
        let spec = PrometheusProvider {
            auth: Some(PrometheusAuth {
                bearer_token_secret_ref: None,
                basic_auth_secret_ref: Some(BasicAuthSecretRef {
                    name: "prom-basic".into(),
                    username_key: "user".into(),
                    password_key: "pass".into(),
                }),
            }),
            ca_bundle_secret_ref: Some(SecretKeyRef {
                name: "prom-ca".into(),
                key: "ca.crt".into(),
            }),
            ..PrometheusProvider::default()
        };
        let secrets = found(&[
            mk_secret("prom-basic", &[("user", b"fife"), ("pass", b"hunter2")]),
            mk_secret("prom-ca", &[("ca.crt", b"-----BEGIN CERTIFICATE-----\n")]),
        ]);
        let credentials = assemble(&spec, "shop", &secrets).unwrap();
        assert_eq!(
            credentials.auth,
            Some(Auth::Basic {
                username: "fife".into(),
                password: "hunter2".into()
            })
        );
        assert_eq!(
            credentials.ca_bundle_pem.as_deref(),
            Some(&b"-----BEGIN CERTIFICATE-----\n"[..])
        );
    }

    #[test]
    fn a_missing_secret_names_namespace_secret_key_and_the_fix() {
        let spec = mk_bearer("prom-token", "token");
        let secrets = BTreeMap::from([("prom-token".to_owned(), SecretLookup::NotFound)]);
        let error = assemble(&spec, "shop", &secrets).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, CredentialError::SecretMissing { .. }));
        for part in [
            "auth.bearerTokenSecretRef",
            "shop/prom-token",
            "`token`",
            "create secret",
        ] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }
    }

    #[test]
    fn a_missing_key_lists_the_keys_the_secret_has() {
        let spec = mk_bearer("prom-token", "token");
        let secrets = found(&[mk_secret("prom-token", &[("tok", b"x"), ("a", b"y")])]);
        let message = assemble(&spec, "shop", &secrets).unwrap_err().to_string();
        assert!(message.contains("key `token` of Secret shop/prom-token"));
        assert!(message.contains("its keys: a, tok"), "{message}");
    }

    #[test]
    fn a_forbidden_read_says_which_grant_is_missing() {
        let spec = mk_bearer("prom-token", "token");
        let secrets = BTreeMap::from([("prom-token".to_owned(), SecretLookup::Forbidden)]);
        let message = assemble(&spec, "shop", &secrets).unwrap_err().to_string();
        assert!(message.contains("grant `get` on secrets in namespace shop"));
    }

    #[test]
    fn a_token_that_is_not_text_is_refused() {
        let spec = mk_bearer("prom-token", "token");
        let secrets = found(&[mk_secret("prom-token", &[("token", &[0xff, 0xfe])])]);
        assert!(matches!(
            assemble(&spec, "shop", &secrets),
            Err(CredentialError::NotText { .. })
        ));
    }

    #[test]
    fn credentials_never_reach_the_debug_output() {
        let spec = mk_bearer("prom-token", "token");
        let secrets = found(&[mk_secret("prom-token", &[("token", b"s3cr3t")])]);
        let credentials = assemble(&spec, "shop", &secrets).unwrap();
        assert!(!format!("{credentials:?}").contains("s3cr3t"));
        assert!(!format!("{secrets:?}").contains("s3cr3t"));
        assert!(!format!("{secrets:?}").contains("115, 51")); // the bytes of "s3"
    }
}
