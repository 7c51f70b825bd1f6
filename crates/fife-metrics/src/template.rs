//! Renders the placeholders of a query template, `{{args.<name>}}` and `{{role}}`, into
//! the text sent to a provider. Pure: no I/O, every failure names the placeholder.

use std::collections::BTreeMap;

/// Which pods a query measures; `{{role}}` renders as its name, which is also the value of
/// the `fife_role` series label. A comparison measures the canary and the baseline, and the
/// stable pods as more pods of the baseline's version (how pods of one version differ).
/// Owned by `fife_api::labels`, with the pod label it mirrors.
pub use fife_api::labels::Role;
use fife_api::placeholder::{Piece, Placeholder, pieces};

/// The values a template may refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateValues {
    /// Analysis arguments, by name (`{{args.service-name}}`).
    pub args: BTreeMap<String, String>,
    /// The role being measured; `None` for threshold metrics that do not compare roles.
    pub role: Option<Role>,
}

impl TemplateValues {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_arg(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.args.insert(name.into(), value.into());
        self
    }

    pub fn with_role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "the query uses `{{{{args.{name}}}}}` but the analysis has no argument `{name}`; add it to the template's `args` and give it a value in the rollout step"
    )]
    MissingArg { name: String },
    #[error(
        "the query uses `{{{{role}}}}` but this metric measures no role; use it only in comparison metrics"
    )]
    MissingRole,
    #[error(
        "the query has an unknown placeholder `{{{{{placeholder}}}}}`; the only placeholders are `{{{{args.<name>}}}}` and `{{{{role}}}}`"
    )]
    UnknownPlaceholder { placeholder: String },
    #[error(
        "the query has `{{{{` at byte {offset} without a closing `}}}}`; close the placeholder"
    )]
    Unclosed { offset: usize },
}

/// Renders every placeholder of `template`. Whitespace inside the braces is allowed
/// (`{{ role }}`), so templates copied from Argo Rollouts keep working. The syntax is read
/// by `fife_api::placeholder`, the one scanner validation also uses.
pub fn render(template: &str, values: &TemplateValues) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Placeholder { placeholder, .. } => out.push_str(resolve(placeholder, values)?),
            Piece::Unclosed { offset, .. } => return Err(TemplateError::Unclosed { offset }),
        }
    }
    Ok(out)
}

fn resolve<'v>(
    placeholder: Placeholder<'_>,
    values: &'v TemplateValues,
) -> Result<&'v str, TemplateError> {
    match placeholder {
        Placeholder::Role => values
            .role
            .map(Role::as_str)
            .ok_or(TemplateError::MissingRole),
        Placeholder::Arg(name) => {
            values
                .args
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| TemplateError::MissingArg {
                    name: name.to_owned(),
                })
        }
        Placeholder::Unknown(placeholder) => Err(TemplateError::UnknownPlaceholder {
            placeholder: placeholder.to_owned(),
        }),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues {
        TemplateValues::new()
            .with_arg("service-name", "checkout-api")
            .with_role(Role::Canary)
    }

    #[test]
    fn renders_args_and_role() {
        let query = r#"rate(x{service="{{args.service-name}}",fife_role="{{role}}"}[1m])"#;
        assert_eq!(
            render(query, &values()).unwrap(),
            r#"rate(x{service="checkout-api",fife_role="canary"}[1m])"#
        );
    }

    #[test]
    fn tolerates_whitespace_inside_braces_and_repeats() {
        let rendered = render("{{ role }}/{{role}}/{{  args.service-name }}", &values()).unwrap();
        assert_eq!(rendered, "canary/canary/checkout-api");
    }

    #[test]
    fn baseline_renders_as_baseline() {
        let v = TemplateValues::new().with_role(Role::Baseline);
        assert_eq!(render("r={{role}}", &v).unwrap(), "r=baseline");
    }

    #[test]
    fn stable_renders_as_stable() {
        let v = TemplateValues::new().with_role(Role::Stable);
        assert_eq!(render("r={{role}}", &v).unwrap(), "r=stable");
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        let query = "sum(rate(http_requests_total[5m])) by (code) {}";
        assert_eq!(render(query, &TemplateValues::new()).unwrap(), query);
    }

    #[test]
    fn missing_arg_names_the_argument() {
        let err = render("{{args.namespace}}", &values()).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingArg {
                name: "namespace".into()
            }
        );
        assert!(err.to_string().contains("`{{args.namespace}}`"), "{err}");
        assert!(err.to_string().contains("no argument `namespace`"), "{err}");
    }

    #[test]
    fn role_without_a_role_is_an_error() {
        let err = render("x{{role}}", &TemplateValues::new()).unwrap_err();
        assert_eq!(err, TemplateError::MissingRole);
        assert!(err.to_string().contains("`{{role}}`"), "{err}");
    }

    #[test]
    fn unknown_placeholder_is_named() {
        let err = render("{{ input.x }}", &values()).unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownPlaceholder {
                placeholder: "input.x".into()
            }
        );
        assert!(err.to_string().contains("`{{input.x}}`"), "{err}");
    }

    #[test]
    fn unclosed_placeholder_reports_its_offset() {
        let err = render("abc{{role} def", &values()).unwrap_err();
        assert_eq!(err, TemplateError::Unclosed { offset: 3 });
    }

    #[test]
    fn a_value_containing_braces_is_not_rendered_again() {
        let v = TemplateValues::new().with_arg("a", "{{role}}");
        assert_eq!(render("{{args.a}}", &v).unwrap(), "{{role}}");
    }
}
