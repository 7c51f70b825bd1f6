//! A Kubernetes API test server: real HTTP on loopback, an in-memory store, and the API
//! semantics Fife and `kubectl` rely on, so integration tests, the demo and benchmarks
//! run without a cluster.
//!
//! ```text
//!  kubectl / kube client ──HTTP──▶ handlers ──▶ store (objects, revisions, history)
//!                                    │   │          │ each write: schema → validation → admission
//!                                    │   │          │ changes (broadcast)
//!                   discovery ◀──────┘   │          ├──▶ watch streams (NDJSON, chunked)
//!                   apply / patch ◀──────┘          └──▶ simulation (Deployment status)
//! ```
//!
//! Served: discovery (`/api`, `/apis`, group and group-version documents, `/version`);
//! get, list (label and field selectors, `limit`/`continue`), watch (`resourceVersion`,
//! `allowWatchBookmarks`, `sendInitialEvents`, `timeoutSeconds`, an expired version ends
//! the stream with an `ERROR` event carrying a 410 `Expired` Status, as the real server
//! does), create (409 `AlreadyExists`), update with optimistic concurrency (409
//! `Conflict`), JSON merge, JSON and strategic merge patch, server-side apply with
//! `managedFields` and conflicts, `status` and `scale` subresources, delete with
//! finalizers and ownerReference garbage collection (background, foreground, orphan),
//! `deletecollection`, CRD registration, `Table` responses with printer columns, the
//! built-in kinds Fife uses (namespaces, services, pods, events, configmaps, secrets,
//! serviceaccounts and their `token` subresource, deployments, events.k8s.io events,
//! leases, CRDs, RBAC roles and bindings, ValidatingAdmissionPolicies and their bindings)
//! and the authentication and authorization reviews, behind bearer-token authentication,
//! RBAC, custom-resource validation and validating admission (see below).
//!
//! # Differences from the real API server
//!
//! The stand-in is held to one rule: a controller bug a real cluster would catch must
//! not pass here. Most differences below are looser only in things a controller must
//! not rely on anyway. One is a real gap, marked **gap**, with how Fife covers it.
//!
//! - **Authentication** ([`authn`]): bearer tokens from a token file in
//!   kube-apiserver's `--token-auth-file` format, the administrator's token of the
//!   written kubeconfig (`kubernetes-admin`, group `system:masters`) and ServiceAccount
//!   tokens the server mints ([`ApiServer::service_account_token`], `kubectl create
//!   token`); unknown tokens get 401 `Unauthorized`. Tokens are opaque strings, not
//!   signed JWTs, and never expire. Over TLS, a client certificate signed by the fixed
//!   client CA is the user of its common name with its organizations as groups (checked
//!   before tokens, as kube-apiserver's x509 authenticator); the one such certificate is
//!   `jane` in `approvers` and `dev` ([`ApiServer::kubeconfig_with_client_certificate`]).
//!   No OIDC, webhook tokens or impersonation. Requests without credentials are
//!   `system:anonymous` while [`Authentication::anonymous`] is on (the default, as
//!   kube-apiserver's `--anonymous-auth`), else 401. `kubectl` sends a kubeconfig's token only over TLS,
//!   so identity through `kubectl` needs [`Config::tls`] (a fixed test certificate,
//!   [`tls`]); over plain HTTP kubectl is anonymous. The user is in the request
//!   [`journal`].
//! - **Authorization** ([`authz`]): `AlwaysAllow` (the default) or RBAC from the stored
//!   Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, with the real rules
//!   (verbs and `*`, API groups, `resource/subresource` and `*/subresource`,
//!   `resourceNames`, non-resource URLs with `*` suffixes, `system:masters` first), the
//!   real verb of each request (`watch=true` → watch, a list by `metadata.name` field
//!   selector is authorized as that name) and the real 403 body and message. Under RBAC
//!   the server starts with `cluster-admin`, `system:discovery`, `system:basic-user` and
//!   `system:public-info-viewer` and their bindings; not the other default roles
//!   (`view`, `edit`, `admin`, controller roles). ClusterRole aggregation is evaluated
//!   when a decision is made (the real controller writes the aggregated rules into the
//!   role); escalation checks (`bind`, `escalate`) are not enforced, so any user allowed
//!   to write RBAC objects may grant more than it has. Reviews ([`reviews`]):
//!   `SelfSubjectReview`, `SelfSubjectAccessReview`, `SelfSubjectRulesReview`,
//!   `SubjectAccessReview`; kubectl posts them in protobuf, which is decoded for these
//!   kinds only ([`protobuf`]); any other protobuf body gets 415 (kubectl's typed
//!   `create role|rolebinding|...` commands therefore fail: apply YAML instead).
//! - **Custom resources are validated** ([`validation`]) as the real server does after
//!   pruning and defaulting ([`schema`]; nulls of fields that are not `nullable` are
//!   dropped first): types (`nullable`, `x-kubernetes-int-or-string`), enums, the
//!   formats `int32`, `int64`, `uint64`, `date-time` and `duration`, bounds, lengths,
//!   patterns (CEL's RE2 `matches`), item and property counts, `required`,
//!   `additionalProperties`, `allOf`/`anyOf`/`oneOf`/`not`, and the CRDs'
//!   `x-kubernetes-validations` CEL rules (`self`, `oldSelf` transition rules on update
//!   when the old value exists, `optionalOldSelf`, `message`, `messageExpression`,
//!   `fieldPath`, `reason`). All errors of a write come back in one 422 `Invalid` Status
//!   with the real field paths and messages (kubectl prints `The Rollout "x" is invalid:
//!   spec: Invalid value: "object": ...`). Not checked: other string formats,
//!   `uniqueItems` and list-type uniqueness, CEL cost limits, the CRD's own validity when
//!   it is created (a rule that does not compile fails each write instead), and
//!   ratcheting (an update must be valid as a whole, where the real server lets unchanged
//!   invalid fields stand). The order of several causes may differ.
//! - **Admission** ([`admission`]): `ValidatingAdmissionPolicy` and its bindings
//!   (`admissionregistration.k8s.io/v1`) judge every create, update (subresources too,
//!   when a rule names them), patch, apply and delete, dry runs included, with
//!   `matchConstraints`, `matchConditions`, `variables`, `paramKind`/`paramRef`,
//!   `failurePolicy` and the `Deny` and `Warn` actions (a `Warning` header); refusals carry
//!   the real Status (`... is forbidden: ValidatingAdmissionPolicy 'P' with binding 'B'
//!   denied request: MSG`, 422 `Invalid` or the validation's reason). Policies and
//!   bindings are refused when written if an expression does not compile, a required
//!   field is missing or an enum value is unknown. The `Audit` action is accepted and
//!   ignored (there is no audit log); audit annotations, `authorizer`, expression type
//!   checking and policy `status` are not offered; no mutating policies, no webhooks. Requests the server makes itself
//!   (garbage collection, finalizer removal, the Deployment simulation) are not admitted.
//! - **gap — built-in kinds are not validated** (but for admission policies and
//!   bindings): they are checked only for name, namespace, kind and apiVersion, so a Deployment or Service a real server would refuse
//!   is stored. Covered by Fife building them from `k8s-openapi`'s typed structs.
//! - **OpenAPI.** `/openapi/v3` lists every group-version and each document carries only
//!   the PATCH operations with their query parameters, no schemas; `/openapi/v2` is not
//!   served. `kubectl` therefore uses server-side field validation (`fieldValidation`;
//!   unknown fields are pruned silently, as with `Ignore`) and computes client-side
//!   apply patches from its compiled-in types (built-ins) or as JSON merge patches
//!   (custom resources), as it does against a real server for custom resources.
//! - **No conversion.** Every served version of a CRD returns the stored object with its
//!   `apiVersion` rewritten; there are no conversion webhooks.
//! - **Strategic merge patch** knows merge keys by field name (see [`patch`]), not by
//!   the Go types; lists it does not know are replaced, where the real server might merge
//!   them. Custom resources refuse it with 415, as the real server does.
//! - **Server-side apply** tracks fields at leaf granularity in the real `FieldsV1`
//!   encoding with the same merge keys; it does not know atomic maps
//!   (`x-kubernetes-map-type`), list types declared in CRD schemas
//!   (`x-kubernetes-list-type`) or unions. Conflicts, forcing, shared ownership of equal
//!   values and removal of fields an applier stops sending follow the real rules.
//! - **Paged lists** are not snapshots: a continuation serves the current state after the
//!   last key (the real server serves every page from the first page's revision). A watch
//!   from the list's `resourceVersion` still delivers every change after it.
//! - **Lists ignore `resourceVersion`/`resourceVersionMatch`** and always serve the
//!   latest state (the most consistent answer the real server could give).
//! - **Garbage collection is synchronous**: dependents are deleted (or orphaned) in the
//!   same request as their owner, right after the owner's DELETED event (foreground:
//!   before it) instead of a moment later; foreground deletion does not wait for
//!   dependents held by their own finalizers, and `blockOwnerDeletion` is not enforced.
//! - **Namespaces are deleted at once** with everything in them, without a Terminating
//!   phase. As on a real cluster, creating in a missing namespace is refused (404) and
//!   `default`, `kube-system` and `kube-public` cannot be deleted (403).
//! - **No controllers besides a Deployment simulation** ([`simulation`]): no
//!   ReplicaSets or Pods are created, Services get no endpoints, Leases do not expire on
//!   their own. A Deployment's status (replicas, updated/ready/available, conditions,
//!   `observedGeneration`) follows its spec after [`Config::rollout_delay`], unless it
//!   is told never to become ready; `kubectl rollout status` and `kubectl wait` work.
//! - **`metadata.generation`** is set on every kind (the real server leaves it unset on a
//!   few built-ins such as ConfigMaps); it bumps on any change outside `metadata` and
//!   `status` (outside `metadata` only, for kinds without a status subresource).
//! - **Gateway API `HTTPRoute`** (`gateway.networking.k8s.io/v1`) is served from the
//!   start, with custom-resource rules (no strategic merge, `resourceVersion` required on
//!   update); on a real cluster its CRD must be installed first. So are Istio's
//!   `VirtualService` and `DestinationRule` (`networking.istio.io/v1`, with structural
//!   schemas: [`istio`]). `networking.k8s.io/v1` `Ingress` is a built-in kind, served
//!   without an ingress controller (its status stays empty).
//! - **Watch bookmarks** are sent every [`Config::bookmark_interval`] (the real server
//!   sends them about once a minute); `sendInitialEvents=true` watches end their initial
//!   events with the `k8s.io/initial-events-end` bookmark.
//! - **Aggregated discovery** (`apidiscovery.k8s.io/v2`) is not offered; clients fall back
//!   to the per-group documents, as they do against older servers.
//! - **JSON only**: no protobuf (but for the reviews above) or CBOR; dry-run
//!   (`dryRun=All`) is honoured for create, update, patch and delete, validated and
//!   admitted like a real write.
//! - **Event history** is bounded by [`Config::history_limit`] changes per resource type
//!   (the real server keeps a watch cache per type and about five minutes of etcd
//!   history); a watch from an older resourceVersion gets 410 Gone `Expired` and the
//!   client relists. It can be provoked on purpose (`POST /testkit/compact`).
//! - **CRDs become Established at once**; as with a real server, applying a CRD and
//!   objects of its kind in one `kubectl apply` fails (kubectl resolves kinds first), so
//!   apply the CRDs, then the objects.
//!
//! Test controls, outside the Kubernetes API: `PUT /testkit/faults` (a [`FaultPlan`] as
//! JSON; `GET` shows the current one), `POST /testkit/drop-watches`, `POST
//! /testkit/compact`, the request journal ([`journal`]: `GET /testkit/journal`, with
//! each request's method, path, arrival time, status and write body; `DELETE` empties it),
//! and `GET /testkit/requests`: every resource request served (get, list, watch, create,
//! update, patch, delete, deletecollection; not discovery or the test controls), counted
//! by `User-Agent` and verb, for scale benchmarks. The same controls exist as methods on
//! [`ApiServer`].

pub mod admission;
pub mod apply;
pub mod authn;
pub mod authz;
pub mod discovery;
pub mod expression;
pub mod faults;
mod handlers;
pub mod istio;
pub mod journal;
pub mod jsonpath;
pub mod patch;
pub mod protobuf;
pub mod reviews;
pub mod schema;
pub mod selector;
pub mod simulation;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;

pub use authn::{ADMIN_TOKEN, Authentication, UserInfo};
pub use authz::AuthorizationMode;
pub use faults::FaultPlan;

use faults::Faults;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio::sync::broadcast;

/// [`Config::history_limit`] unless set: about a minute of the busiest kind's changes at
/// 10,000 Rollouts changing at once, far more than a watch that reconnects needs.
pub const DEFAULT_HISTORY_LIMIT: usize = 10_000;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Changes kept for watches, per resource type; a watch resuming from before them
    /// gets 410 Gone. Superseded objects stay in memory while a change holds them, so
    /// this bounds the server's memory beyond its live objects.
    pub history_limit: usize,
    /// How long a Deployment takes to reach the status its spec asks for.
    pub rollout_delay: Duration,
    /// No Deployment ever becomes ready (per Deployment: the never-ready annotation).
    pub never_ready: bool,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Faults injected from the start.
    pub faults: FaultPlan,
    /// Requests kept in the [`journal`] (the newest); 0 keeps none.
    pub journal_capacity: usize,
    /// Who may call: static tokens (`--token-auth-file`), anonymous requests
    /// (`--anonymous-auth`). The administrator's token always works.
    pub authentication: Authentication,
    /// `--authorization-mode`: everyone may do everything, or RBAC.
    pub authorization_mode: AuthorizationMode,
    /// Serve HTTPS with the fixed test certificate ([`tls`]). `kubectl` sends a
    /// kubeconfig's token only over TLS, so tests of identity and RBAC through `kubectl`
    /// need it; over plain HTTP only clients that send tokens anyway (kube-rs, reqwest)
    /// are anyone but anonymous.
    pub tls: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history_limit: DEFAULT_HISTORY_LIMIT,
            rollout_delay: Duration::from_millis(200),
            never_ready: false,
            bookmark_interval: Duration::from_secs(5),
            faults: FaultPlan::default(),
            journal_capacity: 20_000,
            authentication: Authentication::default(),
            authorization_mode: AuthorizationMode::AlwaysAllow,
            tls: false,
        }
    }
}

/// What handlers and the simulation share.
#[derive(Debug)]
pub struct State {
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) config: Config,
    pub(crate) address: String,
    pub(crate) watch_cut: broadcast::Sender<()>,
    pub(crate) journal: Mutex<journal::Journal>,
    /// Resource requests served, by `User-Agent` and verb; scale benchmarks divide them
    /// by the controller's reconciles.
    pub(crate) requests: Mutex<RequestCounts>,
    /// Bearer tokens and their users, including minted ServiceAccount tokens.
    pub(crate) tokens: Mutex<authn::Tokens>,
}

/// Requests by `User-Agent`, then by verb (`get`, `list`, `watch`, `create`, `update`,
/// `patch`, `delete`, `deletecollection`).
pub type RequestCounts = BTreeMap<String, BTreeMap<String, u64>>;

impl State {
    fn count_request(&self, agent: &str, verb: &str) {
        let mut counts = self.requests.lock().expect("request counter lock poisoned");
        *counts
            .entry(agent.to_owned())
            .or_default()
            .entry(verb.to_owned())
            .or_default() += 1;
    }

    fn drop_watches(&self) {
        // No open watches is fine.
        let _ = self.watch_cut.send(());
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {source}; pick a free port or use port 0")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// A running test API server; stops when dropped.
#[derive(Debug)]
pub struct ApiServer {
    address: SocketAddr,
    tls: bool,
    state: Arc<State>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `listen` (port 0 picks a free port) and serves in the background.
    pub async fn start(listen: SocketAddr, config: Config) -> Result<Self, StartError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Bind {
                address: listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind {
            address: listen,
            source,
        })?;
        let (watch_cut, _) = broadcast::channel(16);
        let mut store = Store::new(config.history_limit);
        if config.authorization_mode == AuthorizationMode::Rbac {
            store.add_bootstrap_policy();
        }
        let state = Arc::new(State {
            tokens: Mutex::new(authn::Tokens::new(&config.authentication)),
            store: Mutex::new(store),
            faults: Mutex::new(Faults::new(config.faults.clone())),
            journal: Mutex::new(journal::Journal::new(config.journal_capacity)),
            config,
            address: address.to_string(),
            watch_cut,
            requests: Mutex::default(),
        });
        let tls = state.config.tls;
        let app = axum::Router::new()
            .fallback(handlers::serve)
            .with_state(state.clone());
        let served = if tls {
            let listener = tls::TlsListener::new(listener).map_err(|source| StartError::Bind {
                address: listen,
                source,
            })?;
            let app = app.into_make_service_with_connect_info::<tls::Peer>();
            tokio::spawn(async move { axum::serve(listener, app).await })
        } else {
            tokio::spawn(async move { axum::serve(listener, app).await })
        };
        let server = tokio::spawn(async move {
            if let Ok(Err(e)) = served.await {
                tracing::error!(error = %e, "the test API server stopped");
            }
        });
        let simulation = tokio::spawn(simulation::run(state.clone()));
        Ok(Self {
            address,
            tls,
            state,
            tasks: vec![server, simulation],
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:41234` (`https://` with
    /// [`Config::tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// A kubeconfig pointing at this server, for the administrator (group
    /// `system:masters`), with `default` namespace.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_for(&self.url())
    }

    /// A kubeconfig pointing at this server that authenticates with `token`.
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        kubeconfig_with_token(&self.url(), token)
    }

    /// A kubeconfig pointing at this server (which needs [`Config::tls`]) that
    /// authenticates with the test client certificate: the user `jane` in the groups
    /// `approvers` and `dev`.
    pub fn kubeconfig_with_client_certificate(&self) -> String {
        kubeconfig_with_client_certificate(&self.url(), tls::CLIENT_CERTIFICATE, tls::CLIENT_KEY)
    }

    /// Mints a token for the ServiceAccount `namespace/name`, as a `TokenRequest`
    /// (`kubectl create token`) does: it authenticates as
    /// `system:serviceaccount:NAMESPACE:NAME` with the groups `system:serviceaccounts`,
    /// `system:serviceaccounts:NAMESPACE` and `system:authenticated`. The
    /// ServiceAccount need not exist yet (its uid is filled in when it does).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        handlers::mint_service_account_token(&self.state, namespace, name)
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Cuts every open watch stream, as a load balancer or API server restart would.
    pub fn drop_watches(&self) {
        self.state.drop_watches();
    }

    /// Forgets the change history: watches resuming from older versions get 410 Gone.
    pub fn compact(&self) {
        self.state
            .store
            .lock()
            .expect("store lock poisoned")
            .compact();
    }

    pub fn set_faults(&self, plan: FaultPlan) {
        *self.state.faults.lock().expect("faults lock poisoned") = Faults::new(plan);
    }

    /// The journaled requests with `index >= since`, oldest first.
    pub fn journal(&self, since: u64) -> Vec<journal::JournalEntry> {
        self.state
            .journal
            .lock()
            .expect("journal lock poisoned")
            .since(since)
    }

    /// Resource requests served so far, by `User-Agent` and verb.
    pub fn request_counts(&self) -> RequestCounts {
        self.state
            .requests
            .lock()
            .expect("request counter lock poisoned")
            .clone()
    }

    /// Number of stored objects.
    pub fn object_count(&self) -> usize {
        self.state.store.lock().expect("store lock poisoned").len()
    }

    /// Serves until the task is cancelled (the binary runs this until killed).
    pub async fn wait(mut self) {
        if let Some(server) = self.tasks.first_mut() {
            let _ = server.await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The administrator's kubeconfig for a server URL.
pub fn kubeconfig_for(url: &str) -> String {
    kubeconfig_with_token(url, ADMIN_TOKEN)
}

/// A kubeconfig for a server URL and a bearer token; an `https://` URL trusts the test
/// CA ([`tls::CA_CERTIFICATE`]).
pub fn kubeconfig_with_token(url: &str, token: &str) -> String {
    kubeconfig_with_user(url, &format!("token: {token}"))
}

/// A kubeconfig for an `https://` server URL that authenticates with a client
/// certificate and key (PEM), e.g. [`tls::CLIENT_CERTIFICATE`] and [`tls::CLIENT_KEY`].
pub fn kubeconfig_with_client_certificate(url: &str, certificate: &str, key: &str) -> String {
    kubeconfig_with_user(
        url,
        &format!(
            "client-certificate-data: {}\n    client-key-data: {}",
            tls::base64(certificate.as_bytes()),
            tls::base64(key.as_bytes())
        ),
    )
}

/// A kubeconfig whose user entry is `user` (YAML at the indentation of `token:`).
fn kubeconfig_with_user(url: &str, user: &str) -> String {
    let ca = if url.starts_with("https://") {
        format!(
            "\n    certificate-authority-data: {}",
            tls::base64(tls::CA_CERTIFICATE.as_bytes())
        )
    } else {
        String::new()
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fife-testkit
  cluster:
    server: {url}{ca}
users:
- name: fife-testkit
  user:
    {user}
contexts:
- name: fife-testkit
  context:
    cluster: fife-testkit
    user: fife-testkit
    namespace: default
current-context: fife-testkit
"
    )
}
