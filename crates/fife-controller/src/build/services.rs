//! Builds the Services in front of a Rollout's pods. Pure.
//!
//! - `<name>` selects every role: without a traffic router, traffic splits by replica
//!   counts, so this is the Service clients use.
//! - `<name>-stable`, `<name>-canary`, `<name>-baseline` select one role each, with any
//!   traffic router: the backends a Gateway API `HTTPRoute` weighs, the hosts of an Istio
//!   VirtualService split by host, the services of the stable and canary Ingresses.
//!
//! Ports are the container ports of the pod template (named ports keep their names).
//!
//! A blue-green Rollout gets none of these: its clients use the active and preview
//! Services its author names, whose selectors Fife sets to a revision (in act).

use std::collections::BTreeMap;

use fife_api::Rollout;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::build::children::{BuildError, owner_reference};
use fife_api::labels::{ROLE_LABEL, ROLLOUT_LABEL, Role, carry_shard_label};

/// The Services a Rollout needs. Empty when its pods expose no container port: a Service
/// without ports is invalid, and such a workload receives no traffic to split.
pub fn build_services(
    rollout: &Rollout,
    template: &PodTemplateSpec,
) -> Result<Vec<Service>, BuildError> {
    let ports = service_ports(template);
    if ports.is_empty() || rollout.spec.strategy.blue_green.is_some() {
        return Ok(Vec::new());
    }
    let base = rollout
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    let mut services = vec![service(
        rollout,
        rollout.name_any(),
        None,
        base.clone(),
        &ports,
    )?];
    if uses_router(rollout) {
        for role in Role::ALL {
            let mut selector = base.clone();
            selector.insert(ROLE_LABEL.to_owned(), role.as_str().to_owned());
            services.push(service(
                rollout,
                role.child_name(&rollout.name_any()),
                Some(role),
                selector,
                &ports,
            )?);
        }
    }
    Ok(services)
}

/// True when a traffic router (not replica counts) splits the Rollout's traffic.
pub fn uses_router(rollout: &Rollout) -> bool {
    rollout
        .spec
        .strategy
        .canary
        .traffic_routing
        .as_ref()
        .is_some_and(fife_api::rollout::TrafficRouting::routes)
}

fn service(
    rollout: &Rollout,
    name: String,
    role: Option<Role>,
    selector: BTreeMap<String, String>,
    ports: &[ServicePort],
) -> Result<Service, BuildError> {
    let mut labels = BTreeMap::from([(ROLLOUT_LABEL.to_owned(), rollout.name_any())]);
    if let Some(role) = role {
        labels.insert(ROLE_LABEL.to_owned(), role.as_str().to_owned());
    }
    carry_shard_label(rollout.labels(), &mut labels);
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: rollout.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(rollout)?]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports.to_vec()),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

fn service_ports(template: &PodTemplateSpec) -> Vec<ServicePort> {
    let Some(spec) = &template.spec else {
        return Vec::new();
    };
    let mut ports: Vec<ServicePort> = Vec::new();
    for port in spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
    {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
        if ports
            .iter()
            .any(|p| p.port == port.container_port && p.protocol.as_deref() == Some(&protocol))
        {
            continue;
        }
        ports.push(ServicePort {
            name: port
                .name
                .clone()
                .or_else(|| Some(format!("port-{}", port.container_port))),
            port: port.container_port,
            target_port: Some(match &port.name {
                Some(name) => IntOrString::String(name.clone()),
                None => IntOrString::Int(port.container_port),
            }),
            protocol: Some(protocol),
            ..ServicePort::default()
        });
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::children::tests::{mk_rollout, mk_template};
    use fife_api::rollout::{GatewayApiRouting, TrafficRouting};

    fn selector(s: &Service) -> BTreeMap<String, String> {
        s.spec.as_ref().unwrap().selector.clone().unwrap()
    }

    #[test]
    fn replica_ratio_routing_gets_one_service_selecting_every_role() {
        let rollout = mk_rollout("web:1");
        let services = build_services(&rollout, &mk_template("web:1")).unwrap();
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].metadata.name.as_deref(), Some("web"));
        assert!(!selector(&services[0]).contains_key(ROLE_LABEL));
        let port = &services[0].spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.port, 8080);
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
    }

    #[test]
    fn gateway_api_routing_adds_one_service_per_role() {
        let mut rollout = mk_rollout("web:1");
        rollout.spec.strategy.canary.traffic_routing = Some(TrafficRouting {
            gateway_api: Some(GatewayApiRouting {
                http_route: "web".into(),
                namespace: None,
            }),
            ..TrafficRouting::default()
        });
        let services = build_services(&rollout, &mk_template("web:1")).unwrap();
        let names: Vec<_> = services.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["web", "web-stable", "web-canary", "web-baseline"]);
        assert_eq!(
            selector(&services[2]).get(ROLE_LABEL).map(String::as_str),
            Some("canary")
        );
        assert_eq!(
            selector(&services[2]).get("app").map(String::as_str),
            Some("web")
        );
    }

    #[test]
    fn a_blue_green_rollout_gets_no_service_of_its_own() {
        let mut rollout = mk_rollout("web:1");
        rollout.spec.strategy.blue_green = Some(fife_api::rollout::BlueGreenStrategy {
            active_service: "web".into(),
            ..Default::default()
        });
        let services = build_services(&rollout, &mk_template("web:1")).unwrap();
        assert!(services.is_empty(), "{services:?}");
    }

    #[test]
    fn pods_without_ports_get_no_service() {
        let rollout = mk_rollout("web:1");
        let mut template = mk_template("web:1");
        template.spec.as_mut().unwrap().containers[0].ports = None;
        assert!(build_services(&rollout, &template).unwrap().is_empty());
    }
}
