//! Parses one document (a JSON object, a JSON array, NDJSON, or CSV with a header line) into typed
//! records. One bad record never loses the good ones around it: every parse returns the records that
//! could be read together with one error string per record that could not.

use serde::de::DeserializeOwned;

/// The syntax of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON object, a JSON array of objects, or newline-delimited JSON objects.
    Json,
    /// CSV whose first line names the fields.
    Csv,
}

/// Strips a UTF-8 byte-order mark and leading whitespace.
fn trim_start(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
    &body[start..]
}

/// Picks the format: CSV if the content type says so, JSON if the body starts with `{` or `[`,
/// CSV otherwise.
pub fn detect(content_type: Option<&str>, body: &[u8]) -> Format {
    if content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("csv")) {
        return Format::Csv;
    }
    match trim_start(body).first() {
        Some(b'{') | Some(b'[') => Format::Json,
        _ => Format::Csv,
    }
}

/// Picks the format from a file name's extension (`.csv`, `.json`, `.ndjson`, `.jsonl`), falling
/// back to [`detect`] on the body.
pub fn detect_path(path: &std::path::Path, body: &[u8]) -> Format {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Format::Csv,
        Some("json") | Some("ndjson") | Some("jsonl") => Format::Json,
        _ => detect(None, body),
    }
}

/// Parses `body` as `format`.
pub fn parse<T: DeserializeOwned>(format: Format, body: &[u8]) -> (Vec<T>, Vec<String>) {
    match format {
        Format::Json => parse_json(body),
        Format::Csv => parse_csv(body),
    }
}

/// Detects the format (see [`detect`]) and parses `body`.
pub fn parse_auto<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> (Vec<T>, Vec<String>) {
    parse(detect(content_type, body), body)
}

/// Parses a JSON object, a JSON array (each element on its own), or NDJSON (each line on its own).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> (Vec<T>, Vec<String>) {
    let body = trim_start(body);
    let mut records = Vec::new();
    let mut errors = Vec::new();
    if body.is_empty() {
        return (records, errors);
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                match serde_json::from_value(item) {
                    Ok(r) => records.push(r),
                    Err(e) => errors.push(format!("element {i}: {e}")),
                }
            }
        }
        Ok(value) => match serde_json::from_value(value) {
            Ok(r) => records.push(r),
            Err(e) => errors.push(format!("document: {e}")),
        },
        // Not one JSON value: newline-delimited JSON, each line parsed on its own.
        Err(_) => {
            for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                let line = trim_start(line);
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice(line) {
                    Ok(r) => records.push(r),
                    Err(e) => errors.push(format!("line {}: {e}", i + 1)),
                }
            }
        }
    }
    (records, errors)
}

/// Parses CSV whose first line is the header. Fields are trimmed; blank lines are skipped.
pub fn parse_csv<T: DeserializeOwned>(body: &[u8]) -> (Vec<T>, Vec<String>) {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(body);
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for result in reader.deserialize::<T>() {
        match result {
            Ok(r) => records.push(r),
            Err(e) => {
                let is_io = matches!(e.kind(), csv::ErrorKind::Io(_));
                errors.push(e.to_string());
                if is_io {
                    break;
                }
            }
        }
    }
    (records, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Rec {
        name: String,
        n: f64,
        #[serde(default)]
        extra: Option<u32>,
    }

    fn rec(name: &str, n: f64) -> Rec {
        Rec { name: name.into(), n, extra: None }
    }

    #[test]
    fn json_object() {
        let (r, e) = parse_auto::<Rec>(None, b"  {\"name\":\"a\",\n \"n\":1}");
        assert_eq!(r, vec![rec("a", 1.0)]);
        assert!(e.is_empty());
    }

    #[test]
    fn json_array_keeps_good_elements() {
        let (r, e) =
            parse_auto::<Rec>(Some("application/json"), br#"[{"name":"a","n":1},{"name":"b"},{"name":"c","n":3}]"#);
        assert_eq!(r, vec![rec("a", 1.0), rec("c", 3.0)]);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("element 1"), "{e:?}");
    }

    #[test]
    fn ndjson_with_bad_line_between_good_ones() {
        let body = b"{\"name\":\"a\",\"n\":1}\n{oops\n\n{\"name\":\"c\",\"n\":3,\"extra\":7}\n";
        let (r, e) = parse_json::<Rec>(body);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].extra, Some(7));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("line 2"), "{e:?}");
    }

    #[test]
    fn csv_with_bad_line_between_good_ones() {
        let body = b"\xEF\xBB\xBFname, n\na, 1\nb, lots\n\nc,3\nd\n";
        let (r, e) = parse_auto::<Rec>(Some("text/csv"), body);
        assert_eq!(r, vec![rec("a", 1.0), rec("c", 3.0)]);
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn detection() {
        assert_eq!(detect(None, b"\n [1]"), Format::Json);
        assert_eq!(detect(Some("text/csv; charset=utf-8"), b"{"), Format::Csv);
        assert_eq!(detect(Some("application/json"), b"a,b\n"), Format::Csv);
        assert_eq!(detect_path(std::path::Path::new("x.NDJSON"), b"a"), Format::Json);
        let (r, e) = parse_auto::<Rec>(None, b"");
        assert!(r.is_empty() && e.is_empty());
    }
}
