//! The cluster-facing commands (`get`, `list`, `promote`, `abort`, `retry`, `pause`,
//! `resume`, `status`, `approve`, `break-glass`): what `kubectl fife` does against a live
//! Rollout. Each command is a
//! thin shell around a pure part (rendering, patch bodies, verdicts) that is tested alone.
//!
//! ```text
//!  flags ─▶ connect (kubeconfig, context, namespace, --as) ─▶ Api<Rollout>
//!     get/list ─▶ render (pure)        promote/abort/... ─▶ action::patch (pure) ─▶ PATCH
//!     status ─▶ watch ─▶ status::verdict (pure) ─▶ exit code
//! ```

pub mod action;
pub mod connect;
pub mod error;
pub mod get;
pub mod release;
pub mod render;
pub mod status;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use error::OpsError;

/// The resource names errors and RBAC hints use.
pub(crate) const ROLLOUT_KIND: &str = "Rollout";
pub(crate) const ROLLOUTS: &str = "rollouts.fife.dev";

/// Colour only for a terminal, and never when `NO_COLOR` is set (https://no-color.org).
pub(crate) fn palette() -> render::Palette {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    render::Palette {
        color: !no_color && std::io::stdout().is_terminal(),
    }
}

/// Runs a command's future on a small runtime and turns its error into a message and exit
/// code 1 (`status` picks its own codes through `Ok`).
pub(crate) fn block_on<F>(future: F) -> ExitCode
where
    F: std::future::Future<Output = Result<ExitCode, OpsError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
