//! `fife convert FILE...`: Argo Rollouts and Flagger manifests as Fife manifests on stdout,
//! with a comment on every field that has no exact counterpart. Exits 0 when every document
//! was converted or passed through, 2 when a file cannot be read or parsed or a document is
//! not one it can handle (nothing is written then, so a half-converted file is never applied).
//!
//! This module reads the files and splits them into documents; the conversion itself is pure
//! ([`manifest::convert`]).

mod argo;
mod commented;
mod condition;
mod flagger;
pub mod manifest;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use manifest::{DEFAULT_PROMETHEUS, Document, Options};

use crate::yaml_lines::parse_documents;

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Manifests to convert (multi-document YAML); `-` reads stdin. Objects of other kinds
    /// (Services, ConfigMaps, Fife's own) are written back unchanged.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The Prometheus that converted metrics query where the input names none (Flagger's
    /// built-in checks, Kayenta).
    #[arg(long, value_name = "URL", default_value = DEFAULT_PROMETHEUS)]
    prometheus: String,
}

pub fn run(args: ConvertArgs) -> ExitCode {
    let mut documents = Vec::new();
    let mut failed = false;
    for file in &args.files {
        match read(file) {
            Ok(mut docs) => documents.append(&mut docs),
            Err(message) => {
                eprintln!("{message}");
                failed = true;
            }
        }
    }
    if failed {
        return ExitCode::from(2);
    }
    let options = Options {
        prometheus: args.prometheus,
    };
    match manifest::convert(&documents, &options) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(refused) => {
            for r in refused {
                eprintln!("{r}");
            }
            ExitCode::from(2)
        }
    }
}

/// The documents of one file (`-`: stdin), each with its own text.
fn read(file: &PathBuf) -> Result<Vec<Document>, String> {
    let name = file.display().to_string();
    let text = if name == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| format!("-: cannot read stdin: {err}"))?;
        text
    } else {
        std::fs::read_to_string(file).map_err(|err| format!("{name}: cannot read: {err}"))?
    };
    let mut documents = Vec::new();
    for (first_line, chunk) in split_documents(&text) {
        let parsed = parse_documents(&chunk).map_err(|err| match err.line {
            Some(line) => format!(
                "{name}:{}: cannot parse YAML: {}",
                first_line + line - 1,
                err.message
            ),
            None => format!("{name}: cannot parse YAML: {}", err.message),
        })?;
        for document in parsed {
            documents.push(Document {
                source: format!("{name}:{}", first_line + document.line.max(1) - 1),
                text: chunk.clone(),
                value: document.value,
            });
        }
    }
    Ok(documents)
}

/// Splits a YAML stream at its `---` lines, keeping each document's text as written and the
/// line it starts on (1-based).
fn split_documents(text: &str) -> Vec<(u64, String)> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker || line == "..." {
            chunks.push((start, std::mem::take(&mut current)));
            start = i as u64 + 2;
            if let Some(rest) = line.strip_prefix("---").filter(|r| !r.trim().is_empty()) {
                // Content on the marker line (`--- !tag` or `--- {a: 1}`) belongs to the document.
                current.push_str(rest.trim_start());
                current.push('\n');
                start -= 1;
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    chunks.push((start, current));
    chunks
        .into_iter()
        .filter(|(_, c)| !c.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_their_markers_with_their_lines() {
        let text = "# lead\n---\na: 1\n---\n\n...\nb: |\n  --- not a marker\n--- {c: 1}\n";
        let chunks = split_documents(text);
        assert_eq!(
            chunks,
            [
                (1, "# lead\n".to_owned()),
                (3, "a: 1\n".to_owned()),
                (7, "b: |\n  --- not a marker\n".to_owned()),
                (9, "{c: 1}\n".to_owned()),
            ]
        );
    }
}
