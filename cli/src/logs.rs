//! Log lines from many hosts as one stream: when each line was written
//! (`timestamp`, for the formats vakt's hosts write), lines without a time
//! of their own taking their predecessor's (`stamp`), and the merge by time
//! (`merge`). Pure; `commands/logs.rs` fetches the lines and prints them.

use chrono::{DateTime, NaiveDateTime};

/// One log line and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When it was written (UTC); `None` before the first line with a time.
    pub at: Option<NaiveDateTime>,
    pub host: String,
    pub service: &'static str,
    pub text: String,
}

/// When a line was written, in UTC, from the formats vakt's hosts write:
/// RFC 3339 at its start (tracing's diagnostics, the VRRP notify script,
/// `journalctl -o short-iso-precise` with either offset spelling), or a
/// halog accept date `[01/Dec/2026:15:31:58.630]` near its start. The
/// accept date carries no zone (HAProxy writes local time); it is read as
/// UTC, which is what vakt's hosts run in.
pub fn timestamp(line: &str) -> Option<NaiveDateTime> {
    let first = line.split_whitespace().next()?;
    if first.len() >= 20 && first.as_bytes().get(4) == Some(&b'-') {
        if let Ok(t) = DateTime::parse_from_rfc3339(first) {
            return Some(t.naive_utc());
        }
        if let Ok(t) = DateTime::parse_from_str(first, "%Y-%m-%dT%H:%M:%S%.f%z") {
            return Some(t.naive_utc());
        }
    }
    let head = line.get(..line.len().min(80)).unwrap_or(line);
    let open = head.find('[')?;
    let close = open + head[open..].find(']')?;
    NaiveDateTime::parse_from_str(&head[open + 1..close], "%d/%b/%Y:%H:%M:%S%.f").ok()
}

/// One file's (or journal's) lines with their times; a line with no time of
/// its own (a banner, a continuation) takes the previous line's, so the
/// merge keeps it where it was written.
pub fn stamp(host: &str, service: &'static str, text: &str) -> Vec<Line> {
    let mut at = None;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            at = timestamp(l).or(at);
            Line {
                at,
                host: host.to_string(),
                service,
                text: l.to_string(),
            }
        })
        .collect()
}

/// Every host's lines in one order by time; lines of equal (or no) time keep
/// the order they came in (a stable sort), so one file's order is never
/// changed.
pub fn merge(mut lines: Vec<Line>) -> Vec<Line> {
    lines.sort_by_key(|l| l.at);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn the_formats_hosts_write_give_their_time() {
        let want = at("2026-12-01 15:31:58.630");
        for line in [
            "2026-12-01T15:31:58.630000Z  INFO vakt_runtime::supervisor: stopping",
            "2026-12-01T15:31:58.630Z lb01 MASTER",
            "2026-12-01T15:31:58.630000+0000 lb01 vakt-proxy[12]: hello",
            "2026-12-01T16:31:58.630000+01:00 lb01 vakt-proxy[12]: hello",
            "127.0.0.1:60594 [01/Dec/2026:15:31:58.630] local local/web01 0/0/0/1/2 200",
        ] {
            assert_eq!(timestamp(line), Some(want), "{line}");
        }
        assert_eq!(timestamp("Proxy started (1 listeners)."), None);
        assert_eq!(timestamp("[not a date]"), None);
    }

    #[test]
    fn lines_without_a_time_follow_their_predecessor_through_the_merge() {
        let a = stamp(
            "lb01",
            "proxy",
            "banner\n2026-12-01T10:00:01Z one\ncontinued\n2026-12-01T10:00:03Z three\n",
        );
        let b = stamp("web01", "demo-web", "2026-12-01T10:00:02Z two\n");
        let merged: Vec<String> = merge([a, b].concat()).into_iter().map(|l| l.text).collect();
        assert_eq!(
            merged,
            [
                "banner",
                "2026-12-01T10:00:01Z one",
                "continued",
                "2026-12-01T10:00:02Z two",
                "2026-12-01T10:00:03Z three"
            ]
        );
    }
}
