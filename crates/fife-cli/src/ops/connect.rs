//! Connecting to a cluster the way `kubectl` does: `--kubeconfig`, then `KUBECONFIG`, then
//! `~/.kube/config`, then the in-cluster service account; `--context`, `--namespace` and
//! `--as` mean what they mean to `kubectl`. Also answers "who is asking?" from the API
//! server's own answer (SelfSubjectReview), for manual actions, approvals and break-glasses.

use clap::Args;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::PathBuf;

use super::error::OpsError;

/// Flags every cluster-facing command shares, spelled as `kubectl` spells them.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the
    /// in-cluster service account).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of the Rollout (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Act as this user (impersonation, as `kubectl --as`). Requests name whoever the API
    /// server then authenticates, never the typed name.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub impersonate: Option<String>,
}

/// A client bound to one namespace, and what the kubeconfig says about the user.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    /// The kubeconfig's name for the user of the chosen context, if a kubeconfig was used.
    pub kubeconfig_user: Option<String>,
    /// `--as`, when given.
    pub impersonate: Option<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .field("kubeconfig_user", &self.kubeconfig_user)
            .field("impersonate", &self.impersonate)
            .finish_non_exhaustive()
    }
}

impl ClusterArgs {
    /// Builds the client. A kubeconfig named by `--kubeconfig` or `KUBECONFIG` must load;
    /// only when neither is set and `~/.kube/config` is absent does the in-cluster
    /// configuration apply, as with `kubectl`.
    pub async fn connect(&self) -> Result<Cluster, OpsError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let kubeconfig = match &self.kubeconfig {
            Some(path) => Some(
                Kubeconfig::read_from(path).map_err(|e| OpsError::Kubeconfig {
                    source_name: path.display().to_string(),
                    detail: e.to_string(),
                })?,
            ),
            None => match Kubeconfig::from_env() {
                Ok(Some(config)) => Some(config),
                Ok(None) => default_kubeconfig(),
                Err(e) => {
                    return Err(OpsError::Kubeconfig {
                        source_name: "$KUBECONFIG".into(),
                        detail: e.to_string(),
                    });
                }
            },
        };
        let (mut config, kubeconfig_user) = match kubeconfig {
            Some(kubeconfig) => {
                let user = context_user(&kubeconfig, self.context.as_deref());
                let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| OpsError::Kubeconfig {
                        source_name: self
                            .kubeconfig
                            .as_ref()
                            .map_or("the kubeconfig".into(), |p| p.display().to_string()),
                        detail: e.to_string(),
                    })?;
                (config, user)
            }
            None => (
                Config::incluster().map_err(|e| OpsError::NoConfig {
                    detail: e.to_string(),
                })?,
                None,
            ),
        };
        if let Some(user) = &self.impersonate {
            config.auth_info.impersonate = Some(user.clone());
        }
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| OpsError::NoConfig {
            detail: e.to_string(),
        })?;
        Ok(Cluster {
            client,
            namespace,
            kubeconfig_user,
            impersonate: self.impersonate.clone(),
        })
    }
}

fn default_kubeconfig() -> Option<Kubeconfig> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".kube").join("config");
    path.exists()
        .then(|| Kubeconfig::read_from(&path).ok())
        .flatten()
}

/// The `user` entry of the chosen (or current) context.
pub fn context_user(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let name = context.or(kubeconfig.current_context.as_deref())?;
    kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.user.clone())
}

impl Cluster {
    /// Who is asking, for `requestedBy`: the user name the API server authenticated, from
    /// the SelfSubjectReview API (Kubernetes 1.28+), which is what its audit log shows.
    /// With `--as` that is the impersonated user only if the server allowed the
    /// impersonation; a name typed on the command line or found in the kubeconfig is never
    /// used. `None` when the server does not answer the review.
    pub async fn requester(&self) -> Option<String> {
        self.identity().await.ok().map(|me| me.username)
    }

    /// The authenticated user and groups, as the API server reports them.
    pub async fn identity(&self) -> Result<Identity, OpsError> {
        let review = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {},
        });
        let unanswered = |detail: String| OpsError::NoIdentity { detail };
        let body = serde_json::to_vec(&review).map_err(|e| unanswered(e.to_string()))?;
        let request = kube::core::Request::new("/apis/authentication.k8s.io/v1/selfsubjectreviews")
            .create(&kube::api::PostParams::default(), body)
            .map_err(|e| unanswered(e.to_string()))?;
        let reviewed: SelfSubjectReview = self
            .client
            .request(request)
            .await
            .map_err(|e| unanswered(e.to_string()))?;
        let user = reviewed
            .status
            .and_then(|s| s.user_info)
            .unwrap_or_default();
        match user.username.filter(|name| !name.is_empty()) {
            Some(username) => Ok(Identity {
                username,
                groups: user.groups.unwrap_or_default(),
            }),
            None => Err(unanswered("the review named no user".into())),
        }
    }
}

/// A user as the API server authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
}
