//! What the signature gate adds before a new revision's first canary pod: the time to verify
//! one digest against a real registry on loopback (Debian's `docker-registry`), with a new
//! client per check (no connection reuse) and with one client, signature alone and with
//! provenance, and the pure verdict on attachments already fetched. Results go to
//! docs/BENCHMARKS.md. Run: `cargo run --release -p fife-provenance --example verify_latency`.

use std::time::{Duration, Instant};

use fife_provenance::{
    PinnedImage, ProvenanceRequirements, Registry, Requirements, TrustedKey, judge,
};
use fife_testkit::registry::{OciRegistry, public_key_pem, signing_key};

const ROUNDS: usize = 200;

fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    format!("median {:?}, p90 {:?}, max {:?}", at(0.5), at(0.9), at(1.0))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let registry = OciRegistry::start().expect("the registry starts");
    let key = signing_key(1);
    let image = registry.push_image("acme/api", "1.0", "bench").unwrap();
    registry.sign(&image, &key, None).unwrap();
    let builder = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.1.0";
    registry
        .attest(
            &image,
            &key,
            builder,
            "https://github.com/acme/api",
            "refs/heads/main",
        )
        .unwrap();
    let plain = vec![registry.host().to_string()];
    let keys = vec![TrustedKey::from_pem("release.pub", &public_key_pem(&key)).unwrap()];
    let signature_only = Requirements {
        keys: keys.clone(),
        provenance: None,
    };
    let with_provenance = Requirements {
        keys,
        provenance: Some(ProvenanceRequirements {
            builder_id: Some(builder.into()),
            source_repo: Some("https://github.com/acme/api".into()),
            source_ref: Some("refs/heads/main".into()),
        }),
    };

    for (name, requirements) in [
        ("signature", &signature_only),
        ("signature + provenance", &with_provenance),
    ] {
        let mut cold = Vec::new();
        for _ in 0..ROUNDS {
            let client = Registry::new(plain.clone());
            let start = Instant::now();
            client.verify(&image, requirements).await.unwrap().unwrap();
            cold.push(start.elapsed());
        }
        let client = Registry::new(plain.clone());
        let mut warm = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            client.verify(&image, requirements).await.unwrap().unwrap();
            warm.push(start.elapsed());
        }
        println!("{name}, new client per check: {}", summary(cold));
        println!("{name}, one client: {}", summary(warm));
    }

    let pinned = PinnedImage::parse(&image).unwrap();
    let attachments = Registry::new(plain)
        .attachments(&pinned, true)
        .await
        .unwrap();
    let mut pure = Vec::new();
    for _ in 0..ROUNDS * 5 {
        let start = Instant::now();
        judge(&pinned, &with_provenance, &attachments).unwrap();
        pure.push(start.elapsed());
    }
    println!(
        "pure verdict (two ECDSA verifications, parsing): {}",
        summary(pure)
    );
}
