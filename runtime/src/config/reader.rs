//! A typed walk over a TOML document that keeps positions. [`Fields`] hands out
//! the keys a reader asks for, records a [`Diagnostic`](super::Diagnostic) for
//! every value of the wrong type, and reports each key nobody asked for as
//! unknown (with a "did you mean"). Readers never stop at the first problem.
//! Shared by the proxy TOML front end and the CLI's inventory.

use std::ops::Range;
use std::time::Duration;

use toml_edit::{Item, TableLike};

use crate::config::diag::{Diagnostics, Source, closest};

/// Parses `src` as TOML; a syntax error becomes one diagnostic.
pub fn parse(src: &Source) -> Result<toml_edit::Document<String>, Diagnostics> {
    let invalid = |span: Option<Range<usize>>, message: &str| {
        let mut d = Diagnostics::new();
        d.error_hint(
            src,
            span,
            format!("invalid TOML: {}", message.trim()),
            "see https://toml.io for the syntax",
        );
        d
    };
    // toml_edit 0.23 panics ("all items have spans") on some malformed
    // input, such as the five bytes `==\r.=` that the config_toml fuzz
    // target found. The `toml` crate's parser refuses those cleanly, so it
    // checks the syntax first and toml_edit only reads text it accepted.
    if let Err(e) = src.text().parse::<toml::Table>() {
        return Err(invalid(e.span(), e.message()));
    }
    toml_edit::Document::parse(src.text().to_string()).map_err(|e| invalid(e.span(), e.message()))
}

/// The keys of one table, read one by one.
pub struct Fields<'a> {
    src: &'a Source,
    table: &'a dyn TableLike,
    span: Option<Range<usize>>,
    /// Dotted path of this table, for messages (`listen[0].check`).
    path: String,
    known: Vec<&'static str>,
}

/// One value found under a key.
#[derive(Clone, Copy)]
pub struct Field<'a> {
    src: &'a Source,
    pub item: &'a Item,
    key_span: Option<(usize, usize)>,
}

impl<'a> Fields<'a> {
    pub fn root(src: &'a Source, doc: &'a toml_edit::Document<String>) -> Self {
        Fields {
            src,
            table: doc.as_table(),
            span: Some(0..0),
            path: String::new(),
            known: Vec::new(),
        }
    }

    pub fn source(&self) -> &'a Source {
        self.src
    }

    pub fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full name of `key` in this table, for messages.
    pub fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Looks `key` up and marks it known.
    pub fn get(&mut self, key: &'static str) -> Option<Field<'a>> {
        self.known.push(key);
        let (k, item) = self.table.get_key_value(key)?;
        if item.is_none() {
            return None;
        }
        Some(Field {
            src: self.src,
            item,
            key_span: k.span().map(|s| (s.start, s.end)),
        })
    }

    /// Every key this table holds, asked for or not: lets a reader tell a
    /// missing key from a misspelt one (which `finish` reports).
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let table: &'a dyn TableLike = self.table;
        table.iter().map(|(k, _)| k)
    }

    /// Marks keys as known without reading them (read elsewhere).
    pub fn allow(&mut self, keys: &[&'static str]) {
        self.known.extend_from_slice(keys);
    }

    pub fn str(
        &mut self,
        key: &'static str,
        d: &mut Diagnostics,
    ) -> Option<(&'a str, Range<usize>)> {
        let f = self.get(key)?;
        let name = self.name(key);
        f.as_str(&name, d).map(|s| (s, f.span()))
    }

    pub fn string(&mut self, key: &'static str, d: &mut Diagnostics) -> Option<String> {
        self.str(key, d).map(|(s, _)| s.to_string())
    }

    pub fn bool(&mut self, key: &'static str, d: &mut Diagnostics) -> Option<bool> {
        let f = self.get(key)?;
        let name = self.name(key);
        f.as_bool(&name, d)
    }

    /// An integer within `lo..=hi`.
    pub fn int(&mut self, key: &'static str, lo: i64, hi: i64, d: &mut Diagnostics) -> Option<i64> {
        let f = self.get(key)?;
        let name = self.name(key);
        f.as_int(&name, lo, hi, d)
    }

    pub fn duration(&mut self, key: &'static str, d: &mut Diagnostics) -> Option<Duration> {
        let f = self.get(key)?;
        let name = self.name(key);
        f.as_duration(&name, d)
    }

    /// An array of strings (a lone string is accepted as a one-element array).
    pub fn strings(
        &mut self,
        key: &'static str,
        d: &mut Diagnostics,
    ) -> Option<Vec<(&'a str, Range<usize>)>> {
        let f = self.get(key)?;
        let name = self.name(key);
        f.as_strings(&name, d)
    }

    /// A sub-table (standard `[a.b]` or inline `{ .. }`).
    pub fn table(&mut self, key: &'static str, d: &mut Diagnostics) -> Option<Fields<'a>> {
        let f = self.get(key)?;
        let name = self.name(key);
        f.as_table(&name, d)
    }

    /// An array of tables (`[[listen]]`, or an inline array of inline tables).
    pub fn tables(&mut self, key: &'static str, d: &mut Diagnostics) -> Vec<Fields<'a>> {
        let Some(f) = self.get(key) else {
            return Vec::new();
        };
        let name = self.name(key);
        f.as_tables(&name, d)
    }

    /// Reports every key that no reader asked for. Call once the table is read.
    pub fn finish(self, d: &mut Diagnostics) {
        for (key, item) in self.table.iter() {
            if self.known.contains(&key) {
                continue;
            }
            let span = self
                .table
                .get_key_value(key)
                .and_then(|(k, _)| k.span())
                .or_else(|| item.span());
            let place = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{}`", self.path)
            };
            let hint = match closest(key, &self.known) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("known keys here: {}", self.known.join(", ")),
            };
            d.error_hint(self.src, span, format!("unknown key `{key}` {place}"), hint);
        }
    }
}

impl<'a> Field<'a> {
    /// Span of the value (or of its key when the value has none).
    pub fn span(&self) -> Range<usize> {
        self.item
            .span()
            .or_else(|| self.key_span.map(|(s, e)| s..e))
            .unwrap_or(0..0)
    }

    fn wrong_type(&self, name: &str, want: &str, d: &mut Diagnostics) {
        d.error(
            self.src,
            Some(self.span()),
            format!("`{name}` must be {want}, found {}", self.item.type_name()),
        );
    }

    pub fn as_str(&self, name: &str, d: &mut Diagnostics) -> Option<&'a str> {
        let s = self.item.as_str();
        if s.is_none() {
            self.wrong_type(name, "a string", d);
        }
        s
    }

    pub fn as_bool(&self, name: &str, d: &mut Diagnostics) -> Option<bool> {
        let b = self.item.as_bool();
        if b.is_none() {
            self.wrong_type(name, "true or false", d);
        }
        b
    }

    pub fn as_int(&self, name: &str, lo: i64, hi: i64, d: &mut Diagnostics) -> Option<i64> {
        let Some(n) = self.item.as_integer() else {
            self.wrong_type(name, "an integer", d);
            return None;
        };
        if n < lo || n > hi {
            d.error(
                self.src,
                Some(self.span()),
                format!("`{name}` is {n}, it must be between {lo} and {hi}"),
            );
            return None;
        }
        Some(n)
    }

    pub fn as_duration(&self, name: &str, d: &mut Diagnostics) -> Option<Duration> {
        let s = self.as_str(name, d)?;
        match parse_duration(s) {
            Ok(v) => Some(v),
            Err(e) => {
                d.error_hint(
                    self.src,
                    Some(self.span()),
                    format!("`{name}` = \"{s}\": {e}"),
                    "write a number and a unit: \"500ms\", \"2s\", \"1m\", \"1h\"",
                );
                None
            }
        }
    }

    pub fn as_strings(
        &self,
        name: &str,
        d: &mut Diagnostics,
    ) -> Option<Vec<(&'a str, Range<usize>)>> {
        if let Some(s) = self.item.as_str() {
            return Some(vec![(s, self.span())]);
        }
        let Some(arr) = self.item.as_array() else {
            self.wrong_type(name, "an array of strings", d);
            return None;
        };
        let mut out = Vec::new();
        for v in arr.iter() {
            match v.as_str() {
                Some(s) => out.push((s, v.span().unwrap_or_else(|| self.span()))),
                None => d.error(
                    self.src,
                    v.span().or_else(|| Some(self.span())),
                    format!("`{name}` must hold strings, found {}", v.type_name()),
                ),
            }
        }
        Some(out)
    }

    pub fn as_table(&self, name: &str, d: &mut Diagnostics) -> Option<Fields<'a>> {
        let Some(t) = self.item.as_table_like() else {
            self.wrong_type(name, "a table", d);
            return None;
        };
        Some(Fields {
            src: self.src,
            table: t,
            span: Some(self.span()),
            path: name.to_string(),
            known: Vec::new(),
        })
    }

    pub fn as_tables(&self, name: &str, d: &mut Diagnostics) -> Vec<Fields<'a>> {
        let src = self.src;
        if let Some(aot) = self.item.as_array_of_tables() {
            return aot
                .iter()
                .enumerate()
                .map(|(i, t)| Fields {
                    src,
                    table: t,
                    span: t.span().or_else(|| Some(self.span())),
                    path: format!("{name}[{i}]"),
                    known: Vec::new(),
                })
                .collect();
        }
        if let Some(arr) = self.item.as_array() {
            let mut out = Vec::new();
            for (i, v) in arr.iter().enumerate() {
                match v.as_inline_table() {
                    Some(t) => out.push(Fields {
                        src,
                        table: t,
                        span: v.span().or_else(|| Some(self.span())),
                        path: format!("{name}[{i}]"),
                        known: Vec::new(),
                    }),
                    None => d.error(
                        src,
                        v.span().or_else(|| Some(self.span())),
                        format!("`{name}` must hold tables, found {}", v.type_name()),
                    ),
                }
            }
            return out;
        }
        self.wrong_type(name, &format!("an array of tables ([[{name}]])"), d);
        Vec::new()
    }
}

/// The longest duration any setting takes: HAProxy's limit, 2^31-1 ms
/// (24d20h31m23s647ms). Bounding every duration here is what keeps
/// `Instant + timeout` from overflowing (a panic in a worker) anywhere.
pub const MAX_DURATION: Duration = Duration::from_millis(2_147_483_647);

/// Parses "500ms", "2s", "1m30s", "1h", "100us". A bare number is refused so
/// that nobody has to guess its unit (HAProxy reads it as milliseconds).
/// Durations over [`MAX_DURATION`] are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let too_large = || format!("\"{s}\" is too large: at most 2147483647ms (24d20h31m23s)");
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at \"{rest}\""));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let micros_per_unit: u64 = match unit {
            "us" => 1,
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            "" => return Err(format!("\"{s}\" has no unit")),
            u => return Err(format!("unknown unit \"{u}\"")),
        };
        let micros = n.checked_mul(micros_per_unit).ok_or_else(too_large)?;
        total = total
            .checked_add(Duration::from_micros(micros))
            .filter(|t| *t <= MAX_DURATION)
            .ok_or_else(too_large)?;
    }
    Ok(total)
}

/// Writes a duration the way [`parse_duration`] reads it back, in the largest
/// whole unit ("2s", "5m", "1h", "1500ms"); what `vakt import` writes.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_durations_read_back() {
        for (ms, text) in [
            (0, "0s"),
            (1500, "1500ms"),
            (2000, "2s"),
            (300_000, "5m"),
            (7_200_000, "2h"),
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d));
        }
    }

    #[test]
    fn malformed_toml_that_panicked_toml_edit_is_a_diagnostic() {
        // Found by runtime/fuzz (config_toml); toml_edit 0.23 panicked.
        for text in ["==\r.=", "a=1\n==\r.="] {
            let d = parse(&Source::new("bad.toml", text)).unwrap_err();
            assert!(d.to_string().contains("invalid TOML"), "{d}");
        }
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5000").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn durations_are_bounded_by_haproxys_limit_never_wrapping() {
        assert_eq!(parse_duration("2147483647ms"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("24d20h31m23s647ms"), Ok(MAX_DURATION));
        for big in [
            "2147483648ms",
            "18446744073709551615s",
            "307445734561825862m",
            "99999999999999999999999s",
            "25d",
            "24d20h31m24s",
        ] {
            let e = parse_duration(big).unwrap_err();
            assert!(e.contains("too large"), "{big}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_reported_with_position_and_suggestion() {
        let src = Source::new("t.toml", "[global]\nmaxcon = 3\n");
        let doc = parse(&src).unwrap();
        let mut d = Diagnostics::new();
        let mut root = Fields::root(&src, &doc);
        let mut g = root.table("global", &mut d).unwrap();
        g.int("maxconn", 1, 10, &mut d);
        g.finish(&mut d);
        root.finish(&mut d);
        let text = d.to_string();
        assert!(
            text.starts_with("t.toml:2:1: error: unknown key `maxcon` in `global`"),
            "{text}"
        );
        assert!(text.contains("did you mean `maxconn`?"), "{text}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let src = Source::new("t.toml", "n = \"x\"\n");
        let doc = parse(&src).unwrap();
        let mut d = Diagnostics::new();
        let mut root = Fields::root(&src, &doc);
        assert_eq!(root.int("n", 0, 5, &mut d), None);
        assert_eq!(
            d.to_string(),
            "t.toml:1:5: error: `n` must be an integer, found string"
        );
    }
}
