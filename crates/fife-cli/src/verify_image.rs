//! `fife verify-image IMAGE --key FILE...`: what the controller's signature gate will decide
//! about an image, from CI or a terminal. Exit 0 verified, 1 refused, 3 could not check (a
//! key that cannot be read, a registry that cannot be reached).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fife_provenance::{ProvenanceRequirements, Registry, Requirements, TrustedKey};

#[derive(Debug, Args)]
pub struct VerifyImageArgs {
    /// The image, pinned by digest: REGISTRY/REPOSITORY@sha256:<digest>.
    image: String,
    /// A trusted public key (PEM, as cosign.pub); repeat for several. A signature by any of them passes.
    #[arg(long = "key", value_name = "FILE", required = true)]
    keys: Vec<PathBuf>,
    /// Require SLSA provenance whose builder id is exactly this.
    #[arg(long, value_name = "ID")]
    builder: Option<String>,
    /// Require SLSA provenance built from this source repository (e.g. https://github.com/acme/api).
    #[arg(long, value_name = "URL")]
    source_repo: Option<String>,
    /// Require SLSA provenance built from this source ref (e.g. refs/heads/main).
    #[arg(long, value_name = "REF")]
    source_ref: Option<String>,
    /// Reach this registry (HOST:PORT) over plain HTTP, e.g. a local registry; repeatable.
    #[arg(long, value_name = "HOST")]
    plain_http: Vec<String>,
}

const EXIT_REFUSED: u8 = 1;
const EXIT_UNCHECKED: u8 = 3;

pub fn run(args: VerifyImageArgs) -> ExitCode {
    let mut keys = Vec::new();
    for path in &args.keys {
        let name = path.display().to_string();
        let key = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key {name}: {e}"))
            .and_then(|pem| TrustedKey::from_pem(name, &pem).map_err(|e| e.to_string()));
        match key {
            Ok(key) => keys.push(key),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_UNCHECKED);
            }
        }
    }
    let asks_provenance =
        args.builder.is_some() || args.source_repo.is_some() || args.source_ref.is_some();
    let requirements = Requirements {
        keys,
        provenance: asks_provenance.then(|| ProvenanceRequirements {
            builder_id: args.builder.clone(),
            source_repo: args.source_repo.clone(),
            source_ref: args.source_ref.clone(),
        }),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_UNCHECKED);
        }
    };
    let registry = Registry::new(args.plain_http.clone());
    match runtime.block_on(registry.verify(&args.image, &requirements)) {
        Ok(Ok(verified)) => {
            println!("verified: {verified}");
            ExitCode::SUCCESS
        }
        Ok(Err(refusal)) => {
            println!("refused: {refusal}");
            ExitCode::from(EXIT_REFUSED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_UNCHECKED)
        }
    }
}
