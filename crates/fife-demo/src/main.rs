//! `fife-demo`: runs Fife's demo, two releases of one Rollout against the API test server,
//! synthetic workloads and a real Prometheus; one is promoted and one rolled back.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "fife-demo",
    about = "Fife's demo: one release promoted, one rolled back, the audit log verified"
)]
struct DemoArgs {
    /// The `fife` binary (controller, `get rollout`, `audit verify`).
    #[arg(long, default_value = "target/debug/fife")]
    fife: std::path::PathBuf,
    /// The repository root, for `crds/`.
    #[arg(long, default_value = ".")]
    repo: std::path::PathBuf,
    /// Where the kubeconfig, manifests, controller log and audit log go.
    #[arg(long, default_value = "target/demo")]
    work_dir: std::path::PathBuf,
    /// How long one release may take before the demo gives up.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    release_timeout: std::time::Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = DemoArgs::parse();
    fife_demo::run(fife_demo::DemoOptions {
        fife: args.fife,
        repo: args.repo,
        work_dir: args.work_dir,
        release_timeout: args.release_timeout,
    })
    .await
}
