//! Shared output helpers: kubectl-style ages, aligned tables, and `-o json|yaml`.

use std::io::Write;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use crate::Error;
use crate::cli::Output;

/// Seconds from `at` to `now` (never negative: a clock skewed ahead reads as 0).
pub fn age_seconds(now: Timestamp, at: &Time) -> i64 {
    now.duration_since(at.0).as_secs().max(0)
}

/// An age as `kubectl get` prints it: `45s`, `3m12s`, `4m`, `17m`, `5h3m`, `5h`, `20h`, `3d`.
pub fn age(seconds: i64) -> String {
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        s if s < 2 * 86_400 => format!("{h}h"),
        _ => format!("{d}d"),
    }
}

/// Writes `rows` as columns separated by three spaces, each as wide as its widest cell (the last
/// column unpadded).
pub fn table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|v| v.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                line.push_str(&format!("{cell:<width$}   ", width = widths[c]));
            } else {
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes `value` as JSON (pretty, one trailing newline) or YAML.
pub fn machine(out: &mut impl Write, format: Output, value: &impl Serialize) -> Result<(), Error> {
    let text = match format {
        Output::Json => {
            serde_json::to_string_pretty(value).map(|s| s + "\n").map_err(|e| Error::Encode(e.to_string()))?
        }
        Output::Yaml => serde_yaml::to_string(value).map_err(|e| Error::Encode(e.to_string()))?,
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (192, "3m12s"),
            (240, "4m"),
            (18_000, "5h"),
            (1020, "17m"),
            (18_180, "5h3m"),
            (72_000, "20h"),
            (259_200, "3d"),
        ];
        for (s, want) in cases {
            assert_eq!(age(s), want, "{s}");
        }
    }

    #[test]
    fn tables_align_every_column_but_the_last() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["TYPE".into(), "STATUS".into(), "MESSAGE".into()],
            vec!["Ready".into(), "True".into(), "".into()],
        ];
        table(&mut out, &rows).expect("writes");
        assert_eq!(String::from_utf8(out).expect("utf-8"), "TYPE    STATUS   MESSAGE\nReady   True\n");
    }
}
