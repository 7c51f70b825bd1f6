//! Argo Rollouts' `successCondition` / `failureCondition` (the expr language) rewritten as
//! the CEL that Fife's conditions are: `and`/`or`/`not` become `&&`/`||`/`!`, `len(x)`
//! becomes `size(x)`, `all(result, # < 1000)` becomes `result.all(x, x < 1000)`, and a bare
//! `result` (Argo's scalar form) becomes `result[0]`, since Fife's `result` is always a list.
//! What has no CEL counterpart (`isNaN`, `default`, ...) is refused with the reason.

/// A condition translated to CEL, and what the translation changed that a reader should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub cel: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number(String),
    Text(String),
    Symbol(String),
    /// `{{...}}`, kept as written: placeholders are rendered before the condition compiles.
    Placeholder(String),
}

/// Translates one expr condition, or says why it cannot be.
pub fn translate(expr: &str) -> Result<Translated, String> {
    let tokens = tokenize(expr)?;
    let mut notes = Vec::new();
    let cel = render(&tokens, &mut notes)?;
    notes.sort();
    notes.dedup();
    Ok(Translated { cel, notes })
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '{' && chars.get(i + 1) == Some(&'{') {
            let rest: String = chars[i..].iter().collect();
            let end = rest
                .find("}}")
                .ok_or_else(|| "it has a `{{` without `}}`".to_owned())?;
            let raw = &rest[..end + 2];
            tokens.push(Token::Placeholder(raw.to_owned()));
            i += raw.chars().count();
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == '"' || c == '\'' || c == '`' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err("it has a string without its closing quote".to_owned());
            }
            i += 1;
            let text: String = chars[start..i].iter().collect();
            tokens.push(Token::Text(if c == '`' {
                format!("\"{}\"", &text[1..text.len() - 1])
            } else {
                text
            }));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let symbol = match two.as_str() {
                "==" | "!=" | "<=" | ">=" | "&&" | "||" | "**" | "??" | "?." | ".." => two,
                _ => c.to_string(),
            };
            i += symbol.chars().count();
            tokens.push(Token::Symbol(symbol));
        }
    }
    Ok(tokens)
}

/// Functions of expr with a CEL macro or function of the same meaning.
fn collection_macro(name: &str) -> Option<&'static str> {
    match name {
        "all" => Some("all"),
        "any" => Some("exists"),
        "one" => Some("exists_one"),
        "filter" => Some("filter"),
        "map" => Some("map"),
        _ => None,
    }
}

fn render(tokens: &[Token], notes: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut i = 0;
    while i < tokens.len() {
        let piece = match &tokens[i] {
            Token::Word(word) => {
                let called = tokens.get(i + 1) == Some(&Token::Symbol("(".to_owned()));
                match word.as_str() {
                    "and" => "&&".to_owned(),
                    "or" => "||".to_owned(),
                    "not" => "!".to_owned(),
                    "nil" => "null".to_owned(),
                    "len" if called => "size".to_owned(),
                    "none" if called => {
                        let (args, end) = call_arguments(tokens, i + 1)?;
                        i = end;
                        format!("!{}", collection_call("exists", &args, notes)?)
                    }
                    name if called && collection_macro(name).is_some() => {
                        let (args, end) = call_arguments(tokens, i + 1)?;
                        i = end;
                        collection_call(collection_macro(name).unwrap_or(name), &args, notes)?
                    }
                    "result" => {
                        let indexed = matches!(
                            tokens.get(i + 1),
                            Some(Token::Symbol(s)) if s == "[" || s == "."
                        );
                        // `len(result)` and `all(result, ...)` take the whole list.
                        let whole = i >= 2
                            && tokens[i - 1] == Token::Symbol("(".to_owned())
                            && matches!(&tokens[i - 2], Token::Word(w) if w == "len" || w == "size")
                            || tokens.len() == 1;
                        if indexed || whole {
                            "result".to_owned()
                        } else {
                            notes.push(
                                "a bare `result` (Argo's scalar result) reads `result[0]`: Fife's result is always a list".to_owned(),
                            );
                            "result[0]".to_owned()
                        }
                    }
                    "isNaN" | "isInf" => {
                        return Err(format!(
                            "`{word}` has no counterpart: in Fife a NaN or infinite result is an Error measurement, never Successful"
                        ));
                    }
                    "true" | "false" | "in" | "size" | "int" | "double" | "string" => word.clone(),
                    other if called => {
                        return Err(format!("expr's function `{other}` has no CEL counterpart"));
                    }
                    other => other.to_owned(),
                }
            }
            Token::Symbol(symbol) => match symbol.as_str() {
                "#" => return Err("`#` is used outside all/any/none/filter/map".to_owned()),
                "**" | "??" | "?." | ".." => {
                    return Err(format!("expr's `{symbol}` operator has no CEL counterpart"));
                }
                other => other.to_owned(),
            },
            Token::Number(n) | Token::Text(n) | Token::Placeholder(n) => n.clone(),
        };
        push_spaced(&mut out, &piece);
        i += 1;
    }
    Ok(out)
}

/// `name(collection, predicate)` as CEL's `collection.name(x, predicate)`, `#` read as `x`.
fn collection_call(
    name: &str,
    args: &[Vec<Token>],
    notes: &mut Vec<String>,
) -> Result<String, String> {
    let [collection, predicate] = args else {
        return Err(format!(
            "`{name}` takes a collection and a predicate; this call has {} argument(s)",
            args.len()
        ));
    };
    // expr also writes the predicate as a closure: `{# < 1000}`.
    let predicate: Vec<Token> = match predicate.as_slice() {
        [Token::Symbol(open), inner @ .., Token::Symbol(close)] if open == "{" && close == "}" => {
            inner.to_vec()
        }
        other => other.to_vec(),
    };
    if predicate
        .iter()
        .any(|t| matches!(t, Token::Word(w) if w == "x"))
    {
        return Err("the predicate already uses the name `x`".to_owned());
    }
    let predicate: Vec<Token> = predicate
        .into_iter()
        .map(|t| match t {
            Token::Symbol(s) if s == "#" => Token::Word("x".to_owned()),
            other => other,
        })
        .collect();
    // The collection alone is rendered as a whole expression, so a bare `result` stays a list.
    let collection = render(collection, notes)?;
    let predicate = render(&predicate, notes)?;
    let target = if collection.chars().all(|c| c.is_alphanumeric() || c == '_') {
        collection
    } else {
        format!("({collection})")
    };
    Ok(format!("{target}.{name}(x, {predicate})"))
}

/// The arguments of the call whose `(` is at `open`, split at top-level commas, and the
/// index of its `)`.
fn call_arguments(tokens: &[Token], open: usize) -> Result<(Vec<Vec<Token>>, usize), String> {
    let mut depth = 0usize;
    let mut args = vec![Vec::new()];
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Symbol(s) if matches!(s.as_str(), "(" | "[" | "{") => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            Token::Symbol(s) if matches!(s.as_str(), ")" | "]" | "}") => {
                depth -= 1;
                if depth == 0 {
                    return Ok((args, i));
                }
            }
            Token::Symbol(s) if s == "," && depth == 1 => {
                args.push(Vec::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = args.last_mut() {
            last.push(token.clone());
        }
    }
    Err("it has a `(` without its `)`".to_owned())
}

/// Appends `piece` with the spacing a person would write: none around `.`, `(`, `[`.
fn push_spaced(out: &mut String, piece: &str) {
    let tight_after = out.ends_with(['(', '[', '.', '!']) || out.is_empty();
    let tight_before = matches!(piece, ")" | "]" | "," | "." | "(" | "[");
    let call_or_index = matches!(piece, "(" | "[")
        && out
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ')' || c == ']')
        && !(out == "in" || out.ends_with(" in"));
    if !(tight_after || (tight_before && (piece != "(" && piece != "[" || call_or_index))) {
        out.push(' ');
    }
    out.push_str(piece);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cel(expr: &str) -> String {
        translate(expr).unwrap().cel
    }

    #[test]
    fn the_documented_conditions_become_cel() {
        assert_eq!(cel("result[0] >= 0.95"), "result[0] >= 0.95");
        assert_eq!(cel("all(result, # < 1000)"), "result.all(x, x < 1000)");
        assert_eq!(cel("any(result, {# > 5})"), "result.exists(x, x > 5)");
        assert_eq!(cel("none(result, # > 5)"), "!result.exists(x, x > 5)");
        assert_eq!(
            cel("len(result) > 0 and result[0] < 2 or not (result[1] == 3)"),
            "size(result) > 0 && result[0] < 2 || !(result[1] == 3)"
        );
        assert_eq!(
            cel("result[0] >= {{ args.min }}"),
            "result[0] >= {{ args.min }}"
        );
        assert_eq!(cel("result[0] in [1, 2]"), "result[0] in [1, 2]");
        assert_eq!(cel("result[0] > 1e-3"), "result[0] > 1e-3");
        assert_eq!(cel("len(result) == 0"), "size(result) == 0");
    }

    #[test]
    fn a_bare_result_is_the_first_element_with_a_note() {
        let translated = translate("result > 0.9 && result < 1").unwrap();
        assert_eq!(translated.cel, "result[0] > 0.9 && result[0] < 1");
        assert_eq!(translated.notes.len(), 1);
    }

    #[test]
    fn functions_without_a_counterpart_are_refused_with_the_reason() {
        assert!(translate("isNaN(result[0])").unwrap_err().contains("isNaN"));
        assert!(
            translate("default(result[0], 0) > 1")
                .unwrap_err()
                .contains("default")
        );
        assert!(translate("result[0] ** 2 > 1").unwrap_err().contains("**"));
        assert!(translate("all(result, # < 1").unwrap_err().contains("`)`"));
    }
}
