//! Structure-aware mutations of a valid document and hostile byte strings, shared by the workspace's three
//! fuzz files (`proto/tests/fuzz.rs`, `tests/fuzz.rs`, `edge/tests/fuzz.rs`), each of which includes it with
//! `#[path]`: they are test binaries of separate crates.

use proptest::prelude::*;
use proptest::sample::{select, Index};

/// `default_cases` unless `PROPTEST_CASES` is set (an explicit `cases` would otherwise override the variable).
/// Failures are not persisted to files: a failing input is printed, and kept as a regression test by hand.
pub fn config(default_cases: u32) -> ProptestConfig {
    let cases = match std::env::var("PROPTEST_CASES") {
        Ok(v) => v.parse().unwrap_or(default_cases),
        Err(_) => default_cases,
    };
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Numbers a broken or hostile writer produces.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "-0.5",
    "2.5",
    "12.000001",
    "1e3",
    "1e400",
    "-1e400",
    "1e-400",
    "5e-324",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "NaN",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "+inf",
    "Infinity",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "-2147483648",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775",
    "9223372036854776",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-18446744073709551616",
    "99999999999999999999999999999",
    "0x10",
    "0o7",
    "0b1",
    "1_000",
    "00",
    "01",
    "1e",
    ".5",
    "5.",
    "-",
    "+1",
    "1.0e+308",
    "0.0000001",
];

/// Values (or strings) to put where a quoted string was.
pub const VALUES: &[&str] = &[
    "\"\"",
    "\"x\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\\"\"",
    "\"a/b\"",
    "\"+\"",
    "\"#\"",
    "\"../../x\"",
    "\"é中文\"",
    "\"UPPER\"",
    "\" padded \"",
    "null",
    "true",
    "[]",
    "{}",
    "[[]]",
    "0",
    "-1",
    "1e400",
    "nan",
    "\"2026-13-40T25:61:00Z\"",
    "\"+262143-12-31T23:59:59Z\"",
    "\"-262143-01-01T00:00:00Z\"",
    "\"+262144-01-01T00:00:00Z\"",
    "\"9999-12-31T23:59:59.999999999Z\"",
    "\"1970-01-01T00:00:00Z\"",
    "\"2026-03-10T08:00:00+14:00\"",
    "\"2026-03-10T08:00:00-99:99\"",
    "\"2026-03-10T23:59:60Z\"",
    "\"2026-03-10\"",
    "\"24:00\"",
    "\"23:59\"",
    "\"99:99\"",
    "\"00:00\"",
    "\"mon\"",
    "\"someday\"",
    "1979-05-27T07:32:00Z",
    "{ type = \"Point\", coordinates = [0, 0] }",
    "{ type = \"Polygon\", coordinates = [] }",
    "{ type = \"Polygon\", coordinates = [[[0, 0], [nan, 0], [0, 1], [0, 0]]] }",
];

/// Bytes that change a document's structure.
pub const SPECIAL: &[u8] = b"{}[]\"',:=.\n\r\t \\#-+0123456789eE\0";

#[derive(Debug, Clone)]
pub enum Edit {
    /// Replace one byte.
    Byte(Index, u8),
    /// Delete up to n bytes.
    Delete(Index, usize),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Replace the i-th number with a hostile one.
    Number(Index, &'static str),
    /// Replace the i-th quoted string with a hostile value.
    Value(Index, &'static str),
    /// Replace the i-th quoted string with a long one.
    Long(Index, usize),
    /// Cut the document.
    Truncate(Index),
    /// Copy one line before another (duplicate keys, tables, fields).
    DupLine(Index, Index),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    let bytes = prop_oneof![
        select(NUMBERS).prop_map(|s| s.as_bytes().to_vec()),
        select(VALUES).prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(select(SPECIAL), 1..4),
        proptest::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        2 => (any::<Index>(), prop_oneof![select(SPECIAL), any::<u8>()]).prop_map(|(i, b)| Edit::Byte(i, b)),
        2 => (any::<Index>(), 1usize..32).prop_map(|(i, n)| Edit::Delete(i, n)),
        2 => (any::<Index>(), bytes).prop_map(|(i, b)| Edit::Insert(i, b)),
        4 => (any::<Index>(), select(NUMBERS)).prop_map(|(i, n)| Edit::Number(i, n)),
        3 => (any::<Index>(), select(VALUES)).prop_map(|(i, v)| Edit::Value(i, v)),
        1 => (any::<Index>(), prop_oneof![Just(129usize), Just(513), 0usize..5000]).prop_map(|(i, n)| Edit::Long(i, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::DupLine(a, b)),
    ]
}

/// One edit (most often: the document stays close to valid and reaches the checks behind the syntax), or up
/// to five.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop_oneof![3 => proptest::collection::vec(edit(), 1..2), 2 => proptest::collection::vec(edit(), 2..6)]
}

/// `(start, end)` of every number-looking token.
fn numbers(d: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        let starts = d[i].is_ascii_digit() && (i == 0 || !(d[i - 1].is_ascii_alphanumeric() || d[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        let s = if i > 0 && (d[i - 1] == b'-' || d[i - 1] == b'+') { i - 1 } else { i };
        let mut e = i;
        while e < d.len() && (d[e].is_ascii_digit() || b".eE+-_".contains(&d[e])) {
            e += 1;
        }
        out.push((s, e));
        i = e;
    }
    out
}

/// `(start, end)` of every double-quoted string, quotes included.
fn strings(d: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        if d[i] != b'"' {
            i += 1;
            continue;
        }
        let mut e = i + 1;
        while e < d.len() && d[e] != b'"' {
            e += if d[e] == b'\\' { 2 } else { 1 };
        }
        let end = (e + 1).min(d.len());
        out.push((i, end));
        i = end;
    }
    out
}

fn replace(d: &mut Vec<u8>, find: fn(&[u8]) -> Vec<(usize, usize)>, i: &Index, with: &[u8]) {
    let spans = find(d);
    if !spans.is_empty() {
        let (s, e) = spans[i.index(spans.len())];
        d.splice(s..e, with.iter().copied());
    }
}

/// `doc` with `edits` applied in order.
pub fn apply(doc: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut d = doc.to_vec();
    for e in edits {
        match e {
            Edit::Byte(i, b) if !d.is_empty() => {
                let k = i.index(d.len());
                d[k] = *b;
            }
            Edit::Delete(i, n) if !d.is_empty() => {
                let k = i.index(d.len());
                let end = (k + n).min(d.len());
                d.drain(k..end);
            }
            Edit::Insert(i, bytes) => {
                let k = i.index(d.len() + 1);
                d.splice(k..k, bytes.iter().copied());
            }
            Edit::Number(i, n) => replace(&mut d, numbers, i, n.as_bytes()),
            Edit::Value(i, v) => replace(&mut d, strings, i, v.as_bytes()),
            Edit::Long(i, n) => {
                let long = format!("\"{}\"", "x".repeat(*n));
                replace(&mut d, strings, i, long.as_bytes());
            }
            Edit::Truncate(i) => {
                let k = i.index(d.len() + 1);
                d.truncate(k);
            }
            Edit::DupLine(a, b) => {
                let mut lines: Vec<Vec<u8>> = d.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let line = lines[a.index(lines.len())].clone();
                let at = b.index(lines.len() + 1);
                lines.insert(at, line);
                d = lines.join(&b'\n');
            }
            Edit::Byte(..) | Edit::Delete(..) => {}
        }
    }
    d
}

/// One of `docs`, mutated.
pub fn mutated(docs: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (select(docs), edits()).prop_map(|(doc, e)| apply(&doc, &e))
}

/// Deeply nested brackets (parsers must refuse them as values, not overflow the stack).
pub fn deep() -> impl Strategy<Value = Vec<u8>> {
    (select(vec!["[", "{\"a\":", "{a=", "a = [", "[[", "{ x = "]), 1usize..20_000)
        .prop_map(|(open, n)| open.repeat(n).into_bytes())
}

/// Arbitrary bytes, sometimes starting with `prefix`, sometimes deeply nested.
pub fn bytes(prefix: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..512),
        2 => proptest::collection::vec(select(SPECIAL), 0..256),
        2 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(move |b| [prefix, &b[..]].concat()),
        1 => deep(),
    ]
}
