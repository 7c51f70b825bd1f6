//! Authentication, RBAC and admission, driven by the real `kubectl`: `auth whoami`, `auth
//! can-i` (and `--list`) for Fife's ServiceAccount bound to the install's ClusterRole,
//! forbidden writes with kube-apiserver's message, tokens from a token file and `kubectl
//! create token`, anonymous requests refused, a ValidatingAdmissionPolicy that holds an
//! approval to the authenticated user and a CEL rule of Fife's CRDs refusing a Rollout; the
//! release roles of `examples/install/release-policy.yaml`, each bound to a group, give each
//! group its part of the release policy and nothing else.

use fife_test_apiserver::authn::parse_token_file;
use fife_test_apiserver::{ApiServer, Authentication, AuthorizationMode, Config};
use std::path::{Path, PathBuf};

struct Cluster {
    server: ApiServer,
    dir: tempfile::TempDir,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Cluster {
    async fn start() -> Self {
        let config = Config {
            authentication: Authentication {
                static_tokens: parse_token_file(concat!(
                    "alice-token,alice,1001,\"dev,qa\"\n",
                    "pat-token,pat,1002,platform\n",
                    "ann-token,ann,1003,approvers\n",
                    "otto-token,otto,1004,oncall\n",
                ))
                .unwrap(),
                anonymous: false,
            },
            authorization_mode: AuthorizationMode::Rbac,
            tls: true,
            ..Config::default()
        };
        let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        server.write_kubeconfig(&dir.path().join("admin")).unwrap();
        Self { server, dir }
    }

    /// A kubeconfig file for `token`, named `who`.
    fn user(&self, who: &str, token: &str) -> String {
        std::fs::write(
            self.dir.path().join(who),
            self.server.kubeconfig_with_token(token),
        )
        .unwrap();
        who.to_owned()
    }

    /// Runs kubectl as the user whose kubeconfig is `who`; (success, stdout, stderr).
    async fn kubectl(&self, who: &str, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", self.dir.path().join(who))
            .arg("--cache-dir")
            .arg(self.dir.path().join(format!("cache-{who}")))
            .args(args)
            .output()
            .await
            .expect("kubectl runs (scripts/install-deps.sh installs it)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn admin(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl("admin", args).await;
        assert!(ok, "kubectl {args:?} as admin: {out}{err}");
        out
    }

    /// Installs Fife's namespace, ServiceAccount and RBAC exactly as `examples/install`
    /// ships them (the kustomization's namespace is `fife-system`).
    async fn install_fife_rbac(&self) {
        let install = workspace().join("examples/install");
        for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
            self.admin(&[
                "apply",
                "-n",
                "fife-system",
                "-f",
                install.join(file).to_str().unwrap(),
            ])
            .await;
        }
    }
}

#[tokio::test]
async fn whoami_names_the_administrator_the_token_file_user_and_a_service_account() {
    let cluster = Cluster::start().await;
    let whoami = cluster.admin(&["auth", "whoami", "-o", "json"]).await;
    let review: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(review["kind"], "SelfSubjectReview");
    assert_eq!(review["status"]["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["system:masters", "system:authenticated"])
    );

    let alice = cluster.user("alice", "alice-token");
    let (ok, out, err) = cluster.kubectl(&alice, &["auth", "whoami"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("Username") && out.contains("alice"), "{out}");
    assert!(out.contains("[dev qa system:authenticated]"), "{out}");
    assert!(out.contains("1001"), "{out}");

    cluster.install_fife_rbac().await;
    let minted = cluster
        .admin(&["create", "token", "fife-controller", "-n", "fife-system"])
        .await;
    let sa = cluster.user("sa", minted.trim());
    let (ok, out, err) = cluster.kubectl(&sa, &["auth", "whoami"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("system:serviceaccount:fife-system:fife-controller"),
        "{out}"
    );
    assert!(
        out.contains(
            "[system:serviceaccounts system:serviceaccounts:fife-system system:authenticated]"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn anonymous_and_unknown_tokens_get_401() {
    let cluster = Cluster::start().await;
    cluster.admin(&["get", "namespaces"]).await;
    let nobody = cluster.user("nobody", "not-a-token");
    let (ok, _, err) = cluster.kubectl(&nobody, &["get", "pods"]).await;
    assert!(!ok);
    assert!(err.contains("You must be logged in to the server"), "{err}");
    let status = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(fife_test_apiserver::tls::CA_CERTIFICATE.as_bytes())
                .unwrap(),
        )
        .build()
        .unwrap()
        .get(format!("{}/api/v1/namespaces", cluster.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status().as_u16(), 401);
    let body: serde_json::Value = status.json().await.unwrap();
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["message"], "Unauthorized");
    let journal = cluster.server.journal(0);
    let refused = journal.iter().find(|e| e.status == 401).unwrap();
    assert_eq!(refused.user, None);
    assert!(
        journal
            .iter()
            .any(|e| e.user.as_deref() == Some("kubernetes-admin")),
        "the admin's requests name the admin"
    );
}

#[tokio::test]
async fn the_controllers_service_account_can_exactly_what_the_install_grants() {
    let cluster = Cluster::start().await;
    cluster
        .admin(&["apply", "-f", workspace().join("crds").to_str().unwrap()])
        .await;
    cluster.install_fife_rbac().await;
    let token = cluster
        .server
        .service_account_token("fife-system", "fife-controller");
    let sa = cluster.user("sa", &token);
    let can = |args: &'static [&'static str]| {
        let sa = sa.clone();
        let cluster = &cluster;
        async move {
            let mut all = vec!["auth", "can-i"];
            all.extend_from_slice(args);
            let (ok, out, err) = cluster.kubectl(&sa, &all).await;
            assert!(err.is_empty() || err.contains("Warning"), "{args:?}: {err}");
            (ok, out.trim().to_owned())
        }
    };
    assert_eq!(
        can(&["watch", "rollouts.fife.dev", "-A"]).await,
        (true, "yes".into())
    );
    assert_eq!(
        can(&[
            "patch",
            "rollouts.fife.dev",
            "--subresource=status",
            "-n",
            "default"
        ])
        .await,
        (true, "yes".into())
    );
    assert_eq!(
        can(&["patch", "rollouts.fife.dev", "-n", "default"]).await,
        (false, "no".into()),
        "the spec is the user's"
    );
    assert_eq!(
        can(&["create", "deployments.apps", "-n", "shop"]).await,
        (true, "yes".into())
    );
    assert_eq!(
        can(&["delete", "deployments.apps", "-n", "shop"]).await,
        (false, "no".into())
    );
    assert_eq!(
        can(&["get", "leases.coordination.k8s.io", "-n", "fife-system"]).await,
        (true, "yes".into())
    );
    assert_eq!(
        can(&["get", "leases.coordination.k8s.io", "-n", "default"]).await,
        (false, "no".into()),
        "the leader Role is confined to fife-system"
    );
    assert_eq!(
        can(&["list", "secrets", "-n", "shop"]).await,
        (false, "no".into())
    );

    let (ok, list, err) = cluster
        .kubectl(&sa, &["auth", "can-i", "--list", "-n", "fife-system"])
        .await;
    assert!(ok, "{err}");
    for line in [
        "leases.coordination.k8s.io",
        "rollouts.fife.dev/status",
        "httproutes.gateway.networking.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
    ] {
        assert!(list.contains(line), "{line} missing from:\n{list}");
    }
    let leases = list
        .lines()
        .find(|l| l.starts_with("leases.coordination.k8s.io"))
        .unwrap();
    assert!(leases.contains("[get create patch]"), "{leases}");
}

#[tokio::test]
async fn forbidden_writes_carry_the_real_servers_message() {
    let cluster = Cluster::start().await;
    let rbac = cluster.dir.path().join("rbac.yaml");
    std::fs::write(
        &rbac,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: deploy-reader, namespace: default}\nrules: [{apiGroups: [apps], resources: [deployments], verbs: [get, list, watch]}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: dev-reads, namespace: default}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deploy-reader}\nsubjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: dev}]\n",
    )
    .unwrap();
    cluster
        .admin(&["apply", "-f", rbac.to_str().unwrap()])
        .await;
    let alice = cluster.user("alice", "alice-token");
    let manifest = cluster.dir.path().join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n",
    )
    .unwrap();
    let (ok, _, err) = cluster
        .kubectl(&alice, &["apply", "-f", manifest.to_str().unwrap()])
        .await;
    assert!(!ok);
    assert!(
        err.contains("Error from server (Forbidden): error when creating")
            && err.contains(
                "deployments.apps is forbidden: User \"alice\" cannot create resource \"deployments\" in API group \"apps\" in the namespace \"default\""
            ),
        "{err}"
    );
    let (ok, _, err) = cluster.kubectl(&alice, &["get", "pods"]).await;
    assert!(!ok);
    assert!(
        err.contains("pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    let (ok, out, err) = cluster.kubectl(&alice, &["get", "deployments"]).await;
    assert!(ok, "{err}");
    assert!(out.is_empty() || out.contains("No resources"), "{out}");
    cluster
        .admin(&["apply", "-f", manifest.to_str().unwrap()])
        .await;
    let (ok, _, err) = cluster
        .kubectl(&alice, &["scale", "deployment/web", "--replicas=3"])
        .await;
    assert!(!ok);
    assert!(
        err.contains("deployments.apps \"web\" is forbidden: User \"alice\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"default\""),
        "{err}"
    );
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn admission_policies_and_crd_rules_refuse_with_the_real_servers_message() {
    let cluster = Cluster::start().await;
    cluster
        .admin(&["apply", "-f", workspace().join("crds").to_str().unwrap()])
        .await;
    cluster
        .admin(&["apply", "-f", &fixture("approval-crd.yaml")])
        .await;
    cluster
        .admin(&["apply", "-f", &fixture("approval-policy.yaml")])
        .await;
    let listed = cluster
        .admin(&[
            "get",
            "validatingadmissionpolicies,validatingadmissionpolicybindings",
        ])
        .await;
    assert!(
        listed.contains(
            "validatingadmissionpolicy.admissionregistration.k8s.io/approver-is-requester"
        ) && listed.contains(
            "validatingadmissionpolicybinding.admissionregistration.k8s.io/approver-is-requester"
        ),
        "{listed}"
    );

    let alice = cluster.user("alice", "alice-token");
    let approval = |name: &str, approver: &str| {
        let path = cluster.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: fife.dev/v1alpha1\nkind: Approval\nmetadata: {{name: {name}, namespace: default}}\nspec: {{rollout: checkout-api, approver: {approver}}}\n"
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (ok, out, err) = cluster
        .kubectl(&alice, &["apply", "-f", &approval("mine", "alice")])
        .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("approval.fife.dev/mine created"), "{out}");
    let (ok, _, err) = cluster
        .kubectl(&alice, &["apply", "-f", &approval("forged", "bob")])
        .await;
    assert!(!ok);
    assert!(
        err.contains("Error from server (Forbidden): error when creating")
            && err.contains("approvals.fife.dev \"forged\" is forbidden: ValidatingAdmissionPolicy 'approver-is-requester' with binding 'approver-is-requester' denied request: spec.approver must be the approving user alice, not bob"),
        "{err}"
    );

    let rollout = cluster.dir.path().join("inert.yaml");
    std::fs::write(
        &rollout,
        "apiVersion: fife.dev/v1alpha1\nkind: Rollout\nmetadata: {name: inert, namespace: default}\nspec:\n  selector: {matchLabels: {app: web}}\n  strategy: {canary: {steps: [{setWeight: 5}]}}\n",
    )
    .unwrap();
    let (ok, _, err) = cluster
        .kubectl(&alice, &["apply", "-f", rollout.to_str().unwrap()])
        .await;
    assert!(!ok);
    assert!(
        // kubectl rewrites an Invalid Status with causes into this line.
        err.trim()
            == "The Rollout \"inert\" is invalid: spec: Invalid value: \"object\": set selector and template together; a Rollout with neither is inert",
        "{err}"
    );
}

#[tokio::test]
async fn a_client_certificate_is_the_user_and_groups_of_its_subject() {
    let cluster = Cluster::start().await;
    std::fs::write(
        cluster.dir.path().join("jane"),
        cluster.server.kubeconfig_with_client_certificate(),
    )
    .unwrap();
    let (ok, out, err) = cluster.kubectl("jane", &["auth", "whoami"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("jane"), "{out}");
    assert!(
        out.contains("[approvers dev system:authenticated]"),
        "{out}"
    );
    let (ok, _, err) = cluster.kubectl("jane", &["get", "pods"]).await;
    assert!(!ok);
    assert!(
        err.contains("pods is forbidden: User \"jane\" cannot list resource \"pods\""),
        "{err}"
    );
}

/// The three roles `examples/install/release-policy.yaml` ships, bound to groups as its
/// header says: the platform team writes ReleasePolicies, approvers create Approvals and
/// approve or review BreakGlasses, on-call requests BreakGlasses; nobody else (alice, an
/// application developer) does any of it, and none of them may edit a Rollout.
#[tokio::test]
async fn the_release_roles_give_each_group_its_part_and_nothing_else() {
    let cluster = Cluster::start().await;
    cluster
        .admin(&["apply", "-f", workspace().join("crds").to_str().unwrap()])
        .await;
    let policy = workspace().join("examples/install/release-policy.yaml");
    cluster
        .admin(&["apply", "-f", policy.to_str().unwrap()])
        .await;
    let bindings: String = [
        ("fife-release-platform", "platform"),
        ("fife-release-approver", "approvers"),
        ("fife-break-glass", "oncall"),
    ]
    .iter()
    .map(|(role, group)| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n\
             metadata: {{name: {role}-{group}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n\
             subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: Group, name: {group}}}]\n---\n"
        )
    })
    .collect();
    let file = cluster.dir.path().join("bindings.yaml");
    std::fs::write(&file, bindings).unwrap();
    cluster
        .admin(&["apply", "-f", file.to_str().unwrap()])
        .await;

    let users = [
        ("pat", cluster.user("pat", "pat-token")),
        ("ann", cluster.user("ann", "ann-token")),
        ("otto", cluster.user("otto", "otto-token")),
        ("alice", cluster.user("alice", "alice-token")),
    ];
    // (verb, resource, who may): everyone else may not.
    let table: &[(&str, &str, &[&str])] = &[
        ("create", "releasepolicies.fife.dev", &["pat"]),
        ("delete", "releasepolicies.fife.dev", &["pat"]),
        ("create", "approvals.fife.dev", &["ann"]),
        ("delete", "approvals.fife.dev", &[]),
        ("patch", "breakglasses.fife.dev", &["ann"]),
        ("create", "breakglasses.fife.dev", &["otto"]),
        ("get", "rollouts.fife.dev", &["ann", "otto"]),
        ("patch", "rollouts.fife.dev", &[]),
    ];
    for (verb, resource, allowed) in table {
        for (name, who) in &users {
            let (_, out, err) = cluster
                .kubectl(who, &["auth", "can-i", verb, resource, "-n", "shop"])
                .await;
            let expected = if allowed.contains(name) { "yes" } else { "no" };
            assert_eq!(
                out.trim(),
                expected,
                "{name} can-i {verb} {resource}: {out}{err}"
            );
        }
    }
}
