//! `make demo` is the README's first command: this runs the same demo with the `fife`
//! binary under test, so a change that breaks it fails `make test`.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_promotes_one_release_rolls_back_the_other_and_verifies_the_audit_log() {
    let work_dir = tempfile::tempdir().unwrap();
    let repo = crate::harness::workspace();
    fife_demo::run(fife_demo::DemoOptions {
        fife: env!("CARGO_BIN_EXE_fife").into(),
        repo,
        work_dir: work_dir.path().to_owned(),
        release_timeout: Duration::from_secs(120),
    })
    .await
    .expect("the demo succeeds");
    let audit = std::fs::read_to_string(work_dir.path().join("audit.jsonl")).unwrap();
    for action in ["\"Promoted\"", "\"Aborted\"", "\"AnalysisCompleted\""] {
        assert!(
            audit.contains(action),
            "no {action} record in the demo's audit log"
        );
    }
}
