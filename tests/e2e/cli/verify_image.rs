//! `fife verify-image` against a real registry: exit 0 and the signer for a signed digest,
//! exit 1 and the refusal for an unsigned one, a tag or the wrong provenance, exit 3 when a
//! key cannot be read.

use std::process::Command;

use fife_testkit::registry::{OciRegistry, public_key_pem, signing_key};

const BUILDER: &str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.1.0";

fn verify_image(registry: &OciRegistry, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fife"))
        .arg("verify-image")
        .args(args)
        .args(["--plain-http", registry.host()])
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn verdicts_and_exit_codes() {
    let registry = OciRegistry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("cosign.pub");
    std::fs::write(&key_file, public_key_pem(&signing_key(1))).unwrap();
    let key = key_file.to_str().unwrap();

    let signed = registry.push_image("acme/api", "1.0", "signed").unwrap();
    registry.sign(&signed, &signing_key(1), None).unwrap();
    registry
        .attest(
            &signed,
            &signing_key(1),
            BUILDER,
            "https://github.com/acme/api",
            "refs/heads/main",
        )
        .unwrap();
    let (code, stdout, stderr) = verify_image(&registry, &[&signed, "--key", key]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "verified: image {signed} is signed by key \"{key}\" (sha256:"
        )),
        "{stdout}"
    );

    let (code, stdout, _) = verify_image(
        &registry,
        &[
            &signed,
            "--key",
            key,
            "--builder",
            BUILDER,
            "--source-repo",
            "https://github.com/acme/api",
            "--source-ref",
            "refs/heads/main",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "provenance from builder {BUILDER} of https://github.com/acme/api@refs/heads/main"
        )),
        "{stdout}"
    );

    let (code, stdout, _) = verify_image(
        &registry,
        &[&signed, "--key", key, "--source-ref", "refs/tags/v1.0.0"],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(
            "names source ref \"refs/heads/main\", the policy requires \"refs/tags/v1.0.0\""
        ),
        "{stdout}"
    );

    let unsigned = registry.push_image("acme/api", "1.1", "unsigned").unwrap();
    let (code, stdout, _) = verify_image(&registry, &[&unsigned, "--key", key]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("refused: image {unsigned} is not signed")),
        "{stdout}"
    );

    let tag = format!("{}/acme/api:1.0", registry.host());
    let (code, stdout, _) = verify_image(&registry, &[&tag, "--key", key]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("refused: image {tag} names a tag, not a digest")),
        "{stdout}"
    );

    let missing = dir.path().join("missing.pub");
    let (code, _, stderr) = verify_image(&registry, &[&signed, "--key", missing.to_str().unwrap()]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot read key {}", missing.display())),
        "{stderr}"
    );
}
