//! Reads a file of samples for `fife judge`: one number per line, blank lines skipped,
//! `NaN` and `inf` are values (the judge's NaN policy decides what they mean).
//!
//! A file of 10⁵ numbers is read in chunks and parsed as it arrives, each number with
//! `fast-float2` straight from the bytes: for 10⁵ full-precision numbers that takes 2.1 ms,
//! where `str::parse` over the lines of a `String` took 2.9–3.1 ms before the file was even
//! read, and a whole-file buffer's fresh pages cost faults of their own (docs/BENCHMARKS.md).

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

/// Bytes read at a time; a longer line grows the buffer.
const CHUNK: usize = 1 << 16;

/// Why a sample file could not be used.
#[derive(Debug)]
pub enum SampleFileError {
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    NotANumber {
        path: PathBuf,
        line: usize,
        text: String,
    },
}

impl fmt::Display for SampleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleFileError::Unreadable { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            SampleFileError::NotANumber { path, line, text } => write!(
                f,
                "{}:{line}: {text:?} is not a number; write one number per line (NaN allowed, \
                 blank lines ignored)",
                path.display()
            ),
        }
    }
}

/// Every number of the file at `path`, in file order.
pub fn read_samples(path: &Path) -> Result<Vec<f64>, SampleFileError> {
    let unreadable = |source| SampleFileError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    // A guess at the count: a number and its newline take 6–7 bytes rounded to 0.01 and
    // about 19 at full precision; a short guess costs the vector one doubling.
    let expected = file.metadata().map_or(0, |m| m.len() as usize / 8);
    let mut samples = Vec::with_capacity(expected);
    let mut lines = Lines::default();
    let mut buffer = vec![0u8; CHUNK];
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            buffer.resize(2 * buffer.len(), 0);
        }
        let read = match file.read(&mut buffer[filled..]) {
            Ok(read) => read,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreadable(e)),
        };
        filled += read;
        // Only whole lines are parsed: a number cut by the chunk's end would parse as a
        // different number.
        let end = if read == 0 {
            filled
        } else {
            match buffer[..filled].iter().rposition(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                None => continue,
            }
        };
        lines
            .parse(&buffer[..end], &mut samples)
            .map_err(|BadLine { line, text }| SampleFileError::NotANumber {
                path: path.to_owned(),
                line,
                text,
            })?;
        buffer.copy_within(end..filled, 0);
        filled -= end;
        if read == 0 {
            return Ok(samples);
        }
    }
}

/// A line that holds something other than one number.
#[derive(Debug, PartialEq)]
struct BadLine {
    /// 1-based.
    line: usize,
    text: String,
}

/// The line count carried from one chunk of whole lines to the next.
#[derive(Debug)]
struct Lines {
    /// The line the next byte belongs to, 1-based.
    current: usize,
}

impl Default for Lines {
    fn default() -> Self {
        Lines { current: 1 }
    }
}

impl Lines {
    /// Appends the number of every non-blank line of `text` (whole lines) to `out`.
    fn parse(&mut self, mut text: &[u8], out: &mut Vec<f64>) -> Result<(), BadLine> {
        loop {
            // Blank lines and the whitespace around a number are skipped.
            loop {
                match text {
                    [b'\n', rest @ ..] => {
                        self.current += 1;
                        text = rest;
                    }
                    [b' ' | b'\t' | b'\r', rest @ ..] => text = rest,
                    _ => break,
                }
            }
            if text.is_empty() {
                return Ok(());
            }
            let parsed =
                fast_float2::parse_partial::<f64, _>(text)
                    .ok()
                    .and_then(|(value, length)| {
                        let mut rest = &text[length..];
                        while let [b' ' | b'\t' | b'\r', tail @ ..] = rest {
                            rest = tail;
                        }
                        // One number per line: what follows it must end the line.
                        matches!(rest, [] | [b'\n', ..]).then_some((value, rest))
                    });
            match parsed {
                Some((value, rest)) => {
                    out.push(value);
                    text = rest;
                }
                None => {
                    let end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
                    return Err(BadLine {
                        line: self.current,
                        text: String::from_utf8_lossy(&text[..end]).trim().to_owned(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Vec<f64>, BadLine> {
        let mut out = Vec::new();
        Lines::default()
            .parse(text.as_bytes(), &mut out)
            .map(|()| out)
    }

    #[test]
    fn one_number_a_line_with_blank_lines_and_crlf() {
        let values = parse("1.5\n\n  -2e3 \r\n+7\n0.000000000000000001\n1e400\n").unwrap();
        assert_eq!(values, vec![1.5, -2000.0, 7.0, 1e-18, f64::INFINITY]);
        assert_eq!(parse("").unwrap(), Vec::<f64>::new());
        assert_eq!(parse("\n \n\t\n").unwrap(), Vec::<f64>::new());
        assert_eq!(
            parse("3").unwrap(),
            vec![3.0],
            "no newline after the last line"
        );
    }

    #[test]
    fn nan_and_infinities_are_values() {
        let values = parse("NaN\nnan\ninf\n-inf\ninfinity\n").unwrap();
        assert!(values[0].is_nan() && values[1].is_nan());
        assert_eq!(
            values[2..],
            [f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]
        );
    }

    #[test]
    fn a_line_that_is_not_one_number_is_named_with_its_number() {
        for (text, line, bad) in [
            ("1\n2\nabc\n4\n", 3, "abc"),
            ("1\n\n1.5 2.5\n", 3, "1.5 2.5"),
            ("1e\n", 1, "1e"),
            ("12ms\n", 1, "12ms"),
            ("1\r\n0x10\r\n", 2, "0x10"),
            ("1,5\n", 1, "1,5"),
            ("  .\n", 1, "."),
        ] {
            assert_eq!(
                parse(text),
                Err(BadLine {
                    line,
                    text: bad.to_owned()
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_file_read_in_chunks_gives_every_line_and_the_right_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.txt");
        // Lines of varied length so that chunk ends fall inside numbers, and one line
        // longer than a chunk.
        let values: Vec<f64> = (0..20_000)
            .map(|i| f64::from(i) * 1.000_000_1 / 7.0)
            .collect();
        let mut text: String = values.iter().map(|v| format!("{v}\n")).collect();
        let long = format!("{}1\n", " ".repeat(3 * CHUNK));
        text.push_str(&long);
        std::fs::write(&path, &text).unwrap();
        let mut expected = values.clone();
        expected.push(1.0);
        assert_eq!(read_samples(&path).unwrap(), expected);

        text.push_str("\nnot-a-number\n");
        std::fs::write(&path, &text).unwrap();
        let error = read_samples(&path).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "samples.txt:20003: \"not-a-number\" is not a number; write one number per \
                 line (NaN allowed, blank lines ignored)"
            ),
            "{error}"
        );
        let missing = read_samples(&dir.path().join("missing.txt")).unwrap_err();
        assert!(missing.to_string().starts_with("cannot read "), "{missing}");
    }

    proptest! {
        /// Every number Rust or Prometheus writes (shortest round trip, `%.17g`-like
        /// exponents) reads back as the standard library reads it.
        #[test]
        fn reads_what_the_standard_library_reads(
            bits in any::<u64>(),
            style in 0..3usize,
        ) {
            let value = f64::from_bits(bits);
            prop_assume!(value.is_finite());
            let text = match style {
                0 => format!("{value}"),
                1 => format!("{value:e}"),
                _ => format!("{value:.17e}"),
            };
            let parsed = parse(&format!("{text}\n")).unwrap();
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(parsed[0].to_bits(), text.parse::<f64>().unwrap().to_bits());
        }
    }
}
