//! `fife controller`: runs the controller. Flags can also come from the environment
//! (`FIFE_*`), which is how the install manifests set them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fife_controller::runtime::shard::Shard;
use fife_controller::{ControllerConfig, LeaseSettings};

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Kubeconfig file; in-cluster configuration (or ~/.kube/config) when unset.
    #[arg(long, env = "FIFE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "FIFE_NAMESPACE")]
    namespace: Option<String>,
    /// Run only the Rollouts labelled sharding.fife.dev/key=KEY, and elect the leader on
    /// the Lease <lease-name>-shard-KEY. Without it: the Rollouts without that label.
    #[arg(long, env = "FIFE_SHARD", value_name = "KEY")]
    shard: Option<String>,
    /// Rollouts reconciled at once.
    #[arg(long, env = "FIFE_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "FIFE_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// The audit log (JSON Lines, fsynced before every action). Without it records are
    /// only logged, not durable.
    #[arg(long, env = "FIFE_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// A file holding the HMAC key that signs each audit record.
    #[arg(long, env = "FIFE_AUDIT_HMAC_KEY_FILE")]
    audit_hmac_key_file: Option<PathBuf>,
    /// The id of that key, written as `kid` next to each signature so keys can rotate.
    #[arg(long, env = "FIFE_AUDIT_KEY_ID", requires = "audit_hmac_key_file")]
    audit_key_id: Option<String>,
    /// Publish the audit log's head (latest seq and hash) in the ConfigMap
    /// `fife-audit-head` of this namespace (default: the Lease's namespace when electing).
    #[arg(long, env = "FIFE_AUDIT_HEAD_NAMESPACE")]
    audit_head_namespace: Option<String>,
    /// Also POST every audit record to this URL (best effort; the file is the record).
    #[arg(long, env = "FIFE_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// A file holding the HMAC key that signs each webhook delivery (X-Fife-Signature).
    #[arg(long, env = "FIFE_WEBHOOK_HMAC_KEY_FILE", requires = "webhook_url")]
    webhook_hmac_key_file: Option<PathBuf>,
    /// The id of the webhook key, sent as X-Fife-Key-Id.
    #[arg(long, env = "FIFE_WEBHOOK_KEY_ID", requires = "webhook_hmac_key_file")]
    webhook_key_id: Option<String>,
    /// Elect a leader on this Lease; without it, run a single replica.
    #[arg(long, env = "FIFE_LEASE_NAME")]
    lease_name: Option<String>,
    /// Namespace of the Lease.
    #[arg(long, env = "FIFE_LEASE_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// How long a lease lasts without renewal.
    #[arg(long, env = "FIFE_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// How long before expiry the leader renews.
    #[arg(long, env = "FIFE_LEASE_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    lease_grace: Duration,
    /// This replica's name in the Lease, audit records and Events (default: the pod's
    /// name from POD_NAME, else the host name and process id).
    #[arg(long, env = "FIFE_IDENTITY")]
    identity: Option<String>,
    /// A registry (HOST:PORT) the signature gate reaches over plain HTTP instead of HTTPS,
    /// e.g. a local development registry; repeatable, or comma-separated in the variable.
    #[arg(long, env = "FIFE_REGISTRY_PLAIN_HTTP", value_delimiter = ',')]
    registry_plain_http: Vec<String>,
    /// The namespace of the release policies' keys Secrets (`verifyImages.keysSecret`):
    /// the controller's own; default: the lease namespace, which the install sets to it.
    #[arg(long, env = "FIFE_IMAGE_KEYS_NAMESPACE")]
    image_keys_namespace: Option<String>,
}

pub fn run(args: ControllerArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let shard = match Shard::from_key(args.shard.as_deref()) {
        Ok(shard) => shard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let image_keys_namespace = args
        .image_keys_namespace
        .clone()
        .unwrap_or_else(|| args.lease_namespace.clone());
    let config = ControllerConfig {
        kubeconfig: args.kubeconfig,
        namespace: args.namespace,
        concurrency: args.concurrency,
        metrics_addr: args.metrics_addr,
        audit_log: args.audit_log,
        audit_hmac_key_file: args.audit_hmac_key_file,
        audit_key_id: args.audit_key_id,
        audit_head_namespace: args.audit_head_namespace.or_else(|| {
            args.lease_name
                .is_some()
                .then(|| args.lease_namespace.clone())
        }),
        webhook_url: args.webhook_url,
        webhook_hmac_key_file: args.webhook_hmac_key_file,
        webhook_key_id: args.webhook_key_id,
        lease: args.lease_name.map(|name| LeaseSettings {
            name,
            namespace: args.lease_namespace,
            duration: args.lease_duration,
            grace: args.lease_grace,
        }),
        identity,
        registry_plain_http: args.registry_plain_http,
        image_keys_namespace,
        shard,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fife_controller::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "fife".to_owned());
        format!("{host}-{}", std::process::id())
    })
}
