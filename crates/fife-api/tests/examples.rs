//! Every manifest under `examples/` reads into the typed API and survives a round trip.

use std::path::{Path, PathBuf};

use fife_api::manifest::{FifeObject, parse_yaml_documents};

fn example_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn fife_objects(path: &Path) -> Vec<FifeObject> {
    let text = std::fs::read_to_string(path).unwrap();
    parse_yaml_documents(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .iter()
        .filter_map(FifeObject::from_value)
        .map(|o| o.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

#[test]
fn every_example_deserializes_and_round_trips() {
    let files = example_files();
    assert!(
        files.len() >= 3,
        "expected the example manifests, found {files:?}"
    );
    let mut seen = 0;
    for path in &files {
        for object in fife_objects(path) {
            let value = object.to_value().unwrap();
            let again = FifeObject::from_value(&value).unwrap().unwrap();
            assert_eq!(
                object,
                again,
                "{}: {} does not round-trip",
                path.display(),
                object.name()
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 6,
        "expected at least six Fife objects in examples/, found {seen}"
    );
}

#[test]
fn background_document_manifests_read_as_written() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rollouts/canary-slo-gate.yaml");
    let objects = fife_objects(&path);
    let [
        FifeObject::AnalysisTemplate(template),
        FifeObject::Rollout(rollout),
    ] = &objects[..]
    else {
        panic!("expected an AnalysisTemplate then a Rollout, got {objects:?}");
    };
    assert_eq!(template.spec.metrics.len(), 2);
    let success = &template.spec.metrics[0];
    assert_eq!(success.count, Some(5));
    assert_eq!(success.interval, Some(fife_api::Duration::from_secs(60)));
    assert_eq!(success.failure_limit, 1);
    assert_eq!(success.consecutive_error_limit, 4);
    assert_eq!(success.measurement_retention, 10);

    use fife_api::CanaryStep;
    let steps = rollout.spec.steps();
    assert_eq!(steps.len(), 7);
    assert_eq!(steps[0], CanaryStep::SetWeight(5));
    let CanaryStep::Pause(pause) = &steps[1] else {
        panic!("step 2 is {:?}", steps[1])
    };
    assert_eq!(pause.duration, Some(fife_api::Duration::from_secs(600)));
    let CanaryStep::Analysis(analysis) = &steps[2] else {
        panic!("step 3 is {:?}", steps[2])
    };
    assert_eq!(analysis.templates[0].template_name, "canary-slo-gate");
    assert_eq!(analysis.args[0].value.as_deref(), Some("checkout-api"));
    assert!(
        rollout.spec.is_inert(),
        "the background Rollout has no pod template"
    );
    assert_eq!(rollout.spec.replicas, 1);
}
