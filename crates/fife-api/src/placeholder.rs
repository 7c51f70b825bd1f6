//! The `{{…}}` placeholder syntax of query templates and conditions: `{{args.<name>}}` and
//! `{{role}}`, whitespace inside the braces allowed (`{{ role }}`, as Argo Rollouts writes
//! them). The one scanner of that syntax: validation, argument substitution and query
//! rendering all read templates through [`pieces`].

/// The `{{role}}` placeholder, as written in a comparison metric's query.
pub const ROLE: &str = "{{role}}";

/// What a placeholder names, from the text between its braces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder<'a> {
    /// `{{role}}`: `canary`, `baseline` or `stable`, in comparison metrics only.
    Role,
    /// `{{args.<name>}}`: an analysis argument's value.
    Arg(&'a str),
    /// Anything else; an error wherever it appears.
    Unknown(&'a str),
}

impl<'a> Placeholder<'a> {
    /// Reads the text between the braces (trimmed by the caller or not).
    pub fn parse(inner: &'a str) -> Placeholder<'a> {
        let inner = inner.trim();
        if inner == "role" {
            Placeholder::Role
        } else if let Some(name) = inner.strip_prefix("args.") {
            Placeholder::Arg(name)
        } else {
            Placeholder::Unknown(inner)
        }
    }
}

impl std::fmt::Display for Placeholder<'_> {
    /// The canonical spelling, braces included: `{{role}}`, `{{args.<name>}}`; an unknown
    /// placeholder is written back as it was named.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placeholder::Role => f.write_str(ROLE),
            Placeholder::Arg(name) => write!(f, "{{{{args.{name}}}}}"),
            Placeholder::Unknown(inner) => write!(f, "{{{{{inner}}}}}"),
        }
    }
}

/// One piece of a template, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text between placeholders.
    Text(&'a str),
    /// A closed placeholder: what it names, and `raw`, exactly as written with its braces.
    Placeholder {
        placeholder: Placeholder<'a>,
        raw: &'a str,
    },
    /// A `{{` at byte `offset` with no `}}` after it; `rest` is the text from there on.
    /// Always the last piece.
    Unclosed { offset: usize, rest: &'a str },
}

/// The pieces of `text`: literal text, placeholders, and at most one trailing unclosed `{{`.
pub fn pieces(text: &str) -> Pieces<'_> {
    Pieces { text, at: 0 }
}

/// Iterator returned by [`pieces`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let rest = &self.text[self.at..];
        if rest.is_empty() {
            return None;
        }
        match rest.find("{{") {
            None => {
                self.at = self.text.len();
                Some(Piece::Text(rest))
            }
            Some(0) => {
                let offset = self.at;
                match rest[2..].find("}}") {
                    Some(end) => {
                        let raw = &rest[..2 + end + 2];
                        self.at += raw.len();
                        Some(Piece::Placeholder {
                            placeholder: Placeholder::parse(&rest[2..2 + end]),
                            raw,
                        })
                    }
                    None => {
                        self.at = self.text.len();
                        Some(Piece::Unclosed { offset, rest })
                    }
                }
            }
            Some(start) => {
                self.at += start;
                Some(Piece::Text(&rest[..start]))
            }
        }
    }
}

/// The closed placeholders of `text`, in order.
pub fn placeholders(text: &str) -> impl Iterator<Item = Placeholder<'_>> {
    pieces(text).filter_map(|piece| match piece {
        Piece::Placeholder { placeholder, .. } => Some(placeholder),
        _ => None,
    })
}

/// True when `text` uses `{{role}}` (in any spacing).
pub fn uses_role(text: &str) -> bool {
    placeholders(text).any(|p| p == Placeholder::Role)
}

/// Replaces every `{{args.<name>}}` with its value and leaves every other placeholder, and
/// an unclosed `{{`, as written. `Err` is the name of an argument that has no value.
pub fn substitute_args<'v>(
    text: &str,
    value: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Text(text) | Piece::Unclosed { rest: text, .. } => out.push_str(text),
            Piece::Placeholder {
                placeholder: Placeholder::Arg(name),
                ..
            } => out.push_str(value(name).ok_or_else(|| name.to_owned())?),
            Piece::Placeholder { raw, .. } => out.push_str(raw),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_text_placeholders_and_an_unclosed_tail() {
        let text = "a{{ args.x }}b{{role}}{{pod}} {{open";
        assert_eq!(
            pieces(text).collect::<Vec<_>>(),
            vec![
                Piece::Text("a"),
                Piece::Placeholder {
                    placeholder: Placeholder::Arg("x"),
                    raw: "{{ args.x }}"
                },
                Piece::Text("b"),
                Piece::Placeholder {
                    placeholder: Placeholder::Role,
                    raw: "{{role}}"
                },
                Piece::Placeholder {
                    placeholder: Placeholder::Unknown("pod"),
                    raw: "{{pod}}"
                },
                Piece::Text(" "),
                Piece::Unclosed {
                    offset: 30,
                    rest: "{{open"
                },
            ]
        );
        assert_eq!(pieces("").count(), 0);
        assert_eq!(
            pieces("}} only").collect::<Vec<_>>(),
            [Piece::Text("}} only")]
        );
    }

    #[test]
    fn the_pieces_put_back_together_are_the_text() {
        for text in [
            "",
            "x",
            "{{a}}",
            "{{",
            "a{{b}}c{{",
            "}}{{}}{{ role }}",
            "é{{args.ü}}ß",
        ] {
            let joined: String = pieces(text)
                .map(|piece| match piece {
                    Piece::Text(t) | Piece::Unclosed { rest: t, .. } => t,
                    Piece::Placeholder { raw, .. } => raw,
                })
                .collect();
            assert_eq!(joined, text);
        }
    }

    #[test]
    fn substitution_fills_arguments_and_keeps_everything_else() {
        let value = |name: &str| (name == "a").then_some("1");
        assert_eq!(
            substitute_args("{{args.a}} {{ role }} {{", value).unwrap(),
            "1 {{ role }} {{"
        );
        assert_eq!(substitute_args("{{args.b}}", value).unwrap_err(), "b");
        assert!(uses_role("x{r=\"{{ role }}\"}"));
        assert_eq!(Placeholder::parse(" args.a ").to_string(), "{{args.a}}");
        assert_eq!(Placeholder::parse("role").to_string(), ROLE);
        assert_eq!(Placeholder::parse(" pod ").to_string(), "{{pod}}");
        assert!(!uses_role("x{r=\"{{args.role}}\"}"));
    }
}
