//! Header routes: which `setHeaderRoute` routes are in force at a step. They exist only
//! while a canary is being rolled out: promotion, abort and a return to stable end them.

use super::*;

/// The header routes in force at step `index`: for each name, the last `setHeaderRoute` at
/// or before it, unless that step removes the route (no `match`). In the order the names
/// first appear in the steps, so the routes Fife writes do not move between steps.
pub fn header_routes_at(steps: &[CanaryStep], index: i32) -> Vec<SetHeaderRoute> {
    let upto = usize::try_from(index.max(-1) + 1)
        .unwrap_or(0)
        .min(steps.len());
    let mut routes: Vec<SetHeaderRoute> = Vec::new();
    for step in &steps[..upto] {
        let CanaryStep::SetHeaderRoute(route) = step else {
            continue;
        };
        match routes.iter_mut().find(|r| r.name == route.name) {
            Some(existing) => *existing = route.clone(),
            None => routes.push(route.clone()),
        }
    }
    routes.retain(|r| !r.r#match.is_empty());
    routes
}

/// Every route name the steps write: the routes Fife owns in the router's objects, and
/// removes whenever they are not in force.
pub fn header_route_names(steps: &[CanaryStep]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for step in steps {
        if let CanaryStep::SetHeaderRoute(route) = step
            && !names.contains(&route.name.as_str())
        {
            names.push(&route.name);
        }
    }
    names
}

impl<'a> Machine<'a> {
    /// The routes of the current step while a canary runs and takes requests; none once
    /// it is promoted, aborted or rolled back, or before its pods are wanted.
    pub(super) fn header_routes(&self) -> Vec<SetHeaderRoute> {
        let canary_runs = self.status.canary_revision.is_some()
            && !self.status.abort
            && self.children.canary.is_some();
        if !canary_runs {
            return Vec::new();
        }
        header_routes_at(self.steps(), self.index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::rollout::{HeaderRoutingMatch, StringMatch};

    fn route(name: &str, value: Option<&str>) -> CanaryStep {
        CanaryStep::SetHeaderRoute(SetHeaderRoute {
            name: name.to_owned(),
            r#match: value
                .map(|v| HeaderRoutingMatch {
                    header_name: "x-canary".to_owned(),
                    header_value: StringMatch {
                        exact: Some(v.to_owned()),
                        ..StringMatch::default()
                    },
                })
                .into_iter()
                .collect(),
        })
    }

    #[test]
    fn a_later_step_replaces_or_removes_a_route_of_the_same_name() {
        let steps = vec![
            route("a", Some("1")),
            route("b", Some("1")),
            CanaryStep::SetWeight(10),
            route("a", Some("2")),
            route("b", None),
        ];
        let names = |i| {
            header_routes_at(&steps, i)
                .into_iter()
                .map(|r| (r.name.clone(), r.r#match[0].header_value.exact.clone()))
                .collect::<Vec<_>>()
        };
        assert!(header_routes_at(&steps, -1).is_empty());
        assert_eq!(names(0), [("a".to_owned(), Some("1".to_owned()))]);
        assert_eq!(names(2).len(), 2);
        assert_eq!(
            names(3),
            [
                ("a".to_owned(), Some("2".to_owned())),
                ("b".to_owned(), Some("1".to_owned()))
            ]
        );
        assert_eq!(names(4), [("a".to_owned(), Some("2".to_owned()))]);
        assert_eq!(names(99), names(4));
        assert_eq!(header_route_names(&steps), ["a", "b"]);
    }
}
