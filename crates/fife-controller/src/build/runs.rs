//! Builds an `AnalysisRun` from the templates a step (or the background analysis) names:
//! metrics merged, arguments resolved, `{{args.<name>}}` substituted. `{{role}}` is left
//! in place; it is rendered per query when a comparison measures each side. Pure.
//!
//! The run carries the resolved metrics, not a reference to its templates, so editing or
//! deleting a template while a run is in progress does not change that run.

use std::collections::BTreeMap;

use fife_api::analysis::{ArgumentValueFrom, PodTemplateHashValue};
use fife_api::analysis_run::RolloutRef;
use fife_api::{
    AnalysisRun, AnalysisRunSpec, AnalysisTemplateSpec, Argument, Metric, MetricProvider, Rollout,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::build::children::{BuildError, owner_reference, qualified_name};
use fife_api::labels::{ROLLOUT_LABEL, carry_shard_label};

/// Why a run could not be built from its templates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error(
        "analysis argument `{name}` of Rollout {rollout} has no value: give it one in the step's \
         `args` or a default in the template"
    )]
    MissingArg { rollout: String, name: String },
    #[error(
        "analysis argument `{name}` of Rollout {rollout} takes its value from `{field_path}`, \
         which is not supported or not set; use metadata.name, metadata.namespace, metadata.uid, \
         metadata.labels['<key>'] or metadata.annotations['<key>']"
    )]
    UnsupportedFieldRef {
        rollout: String,
        name: String,
        field_path: String,
    },
    #[error(
        "analysis argument `{name}` of Rollout {rollout} asks for the {which} revision's hash, \
         which is not known yet"
    )]
    UnknownRevision {
        rollout: String,
        name: String,
        which: &'static str,
    },
    #[error(
        "metric `{metric}` is defined by more than one template of Rollout {rollout}'s analysis; \
         rename one of them"
    )]
    DuplicateMetric { rollout: String, metric: String },
    #[error(
        "metric `{metric}` of Rollout {rollout} uses `{{{{args.{name}}}}}` but no template \
         declares argument `{name}`; add it to the template's `args`"
    )]
    UndeclaredArg {
        rollout: String,
        metric: String,
        name: String,
    },
    #[error(transparent)]
    Owner(#[from] BuildError),
}

/// What the run is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext<'a> {
    /// The run's name, as the engine chose it.
    pub name: &'a str,
    /// The step that started it; `None` for background analysis.
    pub step_index: Option<i32>,
    pub stable_revision: Option<&'a str>,
    pub canary_revision: Option<&'a str>,
}

/// The AnalysisRun for `templates` (in the order the Rollout names them) and the step's
/// `args`.
pub fn build_analysis_run(
    rollout: &Rollout,
    context: &RunContext<'_>,
    templates: &[AnalysisTemplateSpec],
    step_args: &[Argument],
) -> Result<AnalysisRun, RunError> {
    let args = resolve_args(rollout, context, templates, step_args)?;
    let mut metrics: Vec<Metric> = Vec::new();
    for template in templates {
        for metric in &template.metrics {
            if metrics.iter().any(|m| m.name == metric.name) {
                return Err(RunError::DuplicateMetric {
                    rollout: qualified_name(rollout),
                    metric: metric.name.clone(),
                });
            }
            metrics.push(substitute_metric(rollout, metric, &args)?);
        }
    }
    let mut run = AnalysisRun::new(
        context.name,
        AnalysisRunSpec {
            metrics,
            args: args
                .iter()
                .map(|(name, value)| Argument {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                })
                .collect(),
            rollout: Some(RolloutRef {
                name: rollout.name_any(),
                uid: rollout.uid(),
                canary_revision: context.canary_revision.map(str::to_owned),
                stable_revision: context.stable_revision.map(str::to_owned),
                step_index: context.step_index,
            }),
            terminate: false,
        },
    );
    run.metadata = ObjectMeta {
        name: Some(context.name.to_owned()),
        namespace: rollout.namespace(),
        labels: Some({
            let mut labels = BTreeMap::from([(ROLLOUT_LABEL.to_owned(), rollout.name_any())]);
            carry_shard_label(rollout.labels(), &mut labels);
            labels
        }),
        owner_references: Some(vec![owner_reference(rollout)?]),
        ..ObjectMeta::default()
    };
    Ok(run)
}

/// Template defaults, overridden by the step's arguments; every declared argument must end
/// with a value.
fn resolve_args(
    rollout: &Rollout,
    context: &RunContext<'_>,
    templates: &[AnalysisTemplateSpec],
    step_args: &[Argument],
) -> Result<BTreeMap<String, String>, RunError> {
    let mut declared: BTreeMap<String, Option<String>> = BTreeMap::new();
    for arg in templates.iter().flat_map(|t| &t.args) {
        let entry = declared.entry(arg.name.clone()).or_default();
        if arg.value.is_some() {
            *entry = arg.value.clone();
        }
    }
    for arg in step_args {
        let value = match (&arg.value, &arg.value_from) {
            (Some(value), _) => value.clone(),
            (None, Some(from)) => value_from(rollout, context, &arg.name, from)?,
            (None, None) => continue,
        };
        declared.insert(arg.name.clone(), Some(value));
    }
    declared
        .into_iter()
        .map(|(name, value)| match value {
            Some(value) => Ok((name, value)),
            None => Err(RunError::MissingArg {
                rollout: qualified_name(rollout),
                name,
            }),
        })
        .collect()
}

fn value_from(
    rollout: &Rollout,
    context: &RunContext<'_>,
    name: &str,
    from: &ArgumentValueFrom,
) -> Result<String, RunError> {
    if let Some(which) = from.pod_template_hash_value {
        let (revision, label) = match which {
            PodTemplateHashValue::Stable => (context.stable_revision, "stable"),
            PodTemplateHashValue::Latest => (context.canary_revision, "latest"),
        };
        return revision
            .map(str::to_owned)
            .ok_or_else(|| RunError::UnknownRevision {
                rollout: qualified_name(rollout),
                name: name.to_owned(),
                which: label,
            });
    }
    let path = from
        .field_ref
        .as_ref()
        .map(|f| f.field_path.as_str())
        .unwrap_or_default();
    field_value(rollout, path).ok_or_else(|| RunError::UnsupportedFieldRef {
        rollout: qualified_name(rollout),
        name: name.to_owned(),
        field_path: path.to_owned(),
    })
}

/// The downward-API paths a Rollout can answer.
fn field_value(rollout: &Rollout, path: &str) -> Option<String> {
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)?
            .strip_suffix("']")
            .map(str::to_owned)
    };
    match path {
        "metadata.name" => Some(rollout.name_any()),
        "metadata.namespace" => rollout.namespace(),
        "metadata.uid" => rollout.uid(),
        _ => {
            if let Some(key) = keyed("metadata.labels['") {
                rollout.labels().get(&key).cloned()
            } else if let Some(key) = keyed("metadata.annotations['") {
                rollout.annotations().get(&key).cloned()
            } else {
                None
            }
        }
    }
}

fn substitute_metric(
    rollout: &Rollout,
    metric: &Metric,
    args: &BTreeMap<String, String>,
) -> Result<Metric, RunError> {
    substitute_metric_args(metric, args).map_err(|name| RunError::UndeclaredArg {
        rollout: qualified_name(rollout),
        metric: metric.name.clone(),
        name,
    })
}

/// `metric` with every `{{args.<name>}}` of its conditions, provider address and query
/// replaced; `Err` names an argument that has no value.
pub fn substitute_metric_args(
    metric: &Metric,
    args: &BTreeMap<String, String>,
) -> Result<Metric, String> {
    let sub = |text: &str| substitute_args(text, args);
    let mut out = metric.clone();
    out.success_condition = metric.success_condition.as_deref().map(sub).transpose()?;
    out.failure_condition = metric.failure_condition.as_deref().map(sub).transpose()?;
    match &mut out.provider {
        MetricProvider::Prometheus(p) => {
            p.address = sub(&p.address)?;
            p.query = sub(&p.query)?;
        }
    }
    if let Some(compare) = &mut out.compare {
        compare.requests = compare.requests.as_deref().map(sub).transpose()?;
    }
    Ok(out)
}

/// Replaces every `{{args.<name>}}` (whitespace inside the braces allowed) and leaves all
/// other placeholders as written. `Err` names an argument that has no value.
pub fn substitute_args(text: &str, args: &BTreeMap<String, String>) -> Result<String, String> {
    fife_api::placeholder::substitute_args(text, |name| args.get(name).map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::children::tests::mk_rollout;
    use fife_api::PrometheusProvider;
    use fife_api::analysis::FieldRef;

    fn metric(name: &str, query: &str) -> Metric {
        let mut m = Metric::new(
            name,
            MetricProvider::Prometheus(PrometheusProvider {
                address: "http://prom:9090".into(),
                query: query.into(),
                ..PrometheusProvider::default()
            }),
        );
        m.success_condition = Some("result[0] >= {{args.slo}}".into());
        m
    }

    fn template(args: Vec<Argument>, metrics: Vec<Metric>) -> AnalysisTemplateSpec {
        AnalysisTemplateSpec { args, metrics }
    }

    fn arg(name: &str, value: Option<&str>) -> Argument {
        Argument {
            name: name.into(),
            value: value.map(Into::into),
            value_from: None,
        }
    }

    fn ctx() -> RunContext<'static> {
        RunContext {
            name: "web-rev2-step-2",
            step_index: Some(2),
            stable_revision: Some("rev1"),
            canary_revision: Some("rev2"),
        }
    }

    fn query(run: &AnalysisRun, i: usize) -> &str {
        match &run.spec.metrics[i].provider {
            MetricProvider::Prometheus(p) => &p.query,
        }
    }

    #[test]
    fn args_are_substituted_and_role_is_kept() {
        let rollout = mk_rollout("web:2");
        let t = template(
            vec![arg("service", None), arg("slo", Some("0.99"))],
            vec![metric(
                "latency",
                r#"x{service="{{ args.service }}",fife_role="{{role}}"}"#,
            )],
        );
        let run = build_analysis_run(&rollout, &ctx(), &[t], &[arg("service", Some("checkout"))])
            .unwrap();
        assert_eq!(
            query(&run, 0),
            r#"x{service="checkout",fife_role="{{role}}"}"#
        );
        assert_eq!(
            run.spec.metrics[0].success_condition.as_deref(),
            Some("result[0] >= 0.99")
        );
        assert_eq!(run.metadata.name.as_deref(), Some("web-rev2-step-2"));
        let r = run.spec.rollout.as_ref().unwrap();
        assert_eq!(
            (r.step_index, r.canary_revision.as_deref()),
            (Some(2), Some("rev2"))
        );
        assert_eq!(
            run.metadata.owner_references.as_ref().unwrap()[0].controller,
            Some(true)
        );
        assert_eq!(run.spec.args.len(), 2);
    }

    #[test]
    fn step_value_overrides_template_default() {
        let rollout = mk_rollout("web:2");
        let t = template(vec![arg("slo", Some("0.99"))], vec![metric("m", "q")]);
        let run = build_analysis_run(&rollout, &ctx(), &[t], &[arg("slo", Some("0.5"))]).unwrap();
        assert_eq!(
            run.spec.metrics[0].success_condition.as_deref(),
            Some("result[0] >= 0.5")
        );
    }

    #[test]
    fn a_declared_argument_without_value_is_refused_by_name() {
        let rollout = mk_rollout("web:2");
        let t = template(
            vec![arg("service", None), arg("slo", Some("1"))],
            vec![metric("m", "q")],
        );
        let err = build_analysis_run(&rollout, &ctx(), &[t], &[]).unwrap_err();
        assert!(
            matches!(&err, RunError::MissingArg { name, .. } if name == "service"),
            "{err}"
        );
    }

    #[test]
    fn an_undeclared_argument_in_a_query_is_refused() {
        let rollout = mk_rollout("web:2");
        let t = template(
            vec![arg("slo", Some("1"))],
            vec![metric("m", "{{args.nope}}")],
        );
        let err = build_analysis_run(&rollout, &ctx(), &[t], &[]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn value_from_reads_revisions_and_fields() {
        let mut rollout = mk_rollout("web:2");
        rollout.metadata.labels = Some(BTreeMap::from([("team".into(), "payments".into())]));
        let t = template(
            vec![
                arg("slo", Some("1")),
                arg("rev", None),
                arg("team", None),
                arg("name", None),
            ],
            vec![metric("m", "{{args.rev}}/{{args.team}}/{{args.name}}")],
        );
        let from = |hash, path: Option<&str>| Argument {
            name: String::new(),
            value: None,
            value_from: Some(ArgumentValueFrom {
                pod_template_hash_value: hash,
                field_ref: path.map(|p| FieldRef {
                    field_path: p.into(),
                }),
            }),
        };
        let step = vec![
            Argument {
                name: "rev".into(),
                ..from(Some(PodTemplateHashValue::Latest), None)
            },
            Argument {
                name: "team".into(),
                ..from(None, Some("metadata.labels['team']"))
            },
            Argument {
                name: "name".into(),
                ..from(None, Some("metadata.name"))
            },
        ];
        let run = build_analysis_run(&rollout, &ctx(), &[t], &step).unwrap();
        assert_eq!(query(&run, 0), "rev2/payments/web");
    }

    #[test]
    fn duplicate_metric_names_across_templates_are_refused() {
        let rollout = mk_rollout("web:2");
        let a = template(vec![arg("slo", Some("1"))], vec![metric("m", "q")]);
        let err = build_analysis_run(&rollout, &ctx(), &[a.clone(), a], &[]).unwrap_err();
        assert!(matches!(err, RunError::DuplicateMetric { .. }), "{err}");
    }

    #[test]
    fn substitution_leaves_unclosed_braces_alone() {
        let args = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        assert_eq!(substitute_args("{{args.a}} {{", &args).unwrap(), "1 {{");
    }
}
