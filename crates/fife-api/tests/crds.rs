//! The committed `crds/` directory is exactly what the types generate, and the generated
//! schemas keep the properties the API promises.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    for (name, text) in fife_api::crd::render_all().unwrap() {
        let committed = std::fs::read_to_string(dir.join(&name))
            .unwrap_or_else(|e| panic!("crds/{name}: {e}; run `make crds`"));
        assert!(
            committed == text,
            "crds/{name} is out of date: run `make crds` and commit it"
        );
    }
}

#[test]
fn rollout_crd_has_scale_status_and_columns() {
    let crd = fife_api::crd::all().remove(0);
    assert_eq!(crd.metadata.name.as_deref(), Some("rollouts.fife.dev"));
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["frol".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    let subresources = version.subresources.as_ref().unwrap();
    assert!(subresources.status.is_some());
    let scale = subresources.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Phase", "Step", "Weight", "Ready", "Gate", "Opens", "Age", "Message"
        ]
    );
}

#[test]
fn every_crd_has_a_status_subresource_and_a_non_argo_short_name() {
    // The release-policy kinds are written by people only (the platform team, approvers,
    // break-glass requesters); the controller reports on them in the Rollout's status.
    let written_by_people = [
        "releasepolicies.fife.dev",
        "approvals.fife.dev",
        "breakglasses.fife.dev",
    ];
    for crd in fife_api::crd::all() {
        let name = crd.metadata.name.clone().unwrap();
        assert_eq!(
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            !written_by_people.contains(&name.as_str()),
            "{name}"
        );
        for short in crd.spec.names.short_names.iter().flatten() {
            assert!(
                !["ro", "at", "ar", "cat"].contains(&short.as_str()),
                "{name}: {short}"
            );
        }
    }
}

/// The API server compiles every `x-kubernetes-validations` rule when the CRD is applied;
/// a rule that does not even parse would make the CRD uninstallable.
#[test]
fn every_cel_rule_in_the_crds_parses() {
    fn visit(value: &serde_json::Value, rules: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(list)) = map.get("x-kubernetes-validations") {
                    for rule in list {
                        rules.push(rule["rule"].as_str().unwrap().to_owned());
                    }
                }
                map.values().for_each(|v| visit(v, rules));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| visit(v, rules)),
            _ => {}
        }
    }
    let mut rules = Vec::new();
    for crd in fife_api::crd::all() {
        visit(&serde_json::to_value(&crd).unwrap(), &mut rules);
    }
    assert!(
        rules.len() >= 10,
        "expected the declared rules, found {rules:?}"
    );
    for rule in rules {
        if let Err(err) = cel::Program::compile(&rule) {
            panic!("rule {rule:?} does not parse: {err}");
        }
    }
}
