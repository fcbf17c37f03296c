//! The one grammar of the chunked transfer coding (RFC 9112 §7.1) that both
//! sides of the proxy use: the request scanner (`hygiene`)
//! checks client bodies with it before hyper reads them, and the upstream
//! client decodes server bodies with it. Lines are whole, CRLF included.
//!
//! It is deliberately at least as strict as hyper's decoder (no whitespace
//! before the size, none between its digits, CRLF only, trailer fields with a
//! colon), so nothing we accept can make hyper fail after the request head
//! has gone to a server: a disagreement there would turn a bad request into
//! a 502 blamed on the server.

/// Longest chunk-size line (size, extensions, CRLF) we accept.
pub(crate) const MAX_LINE: usize = 4096;
/// Extension bytes over a whole body; hyper refuses a body at 16 KiB.
pub(crate) const MAX_EXTENSIONS: usize = 8192;
/// Trailer section bytes; hyper refuses at 16 KiB.
pub(crate) const MAX_TRAILERS: usize = 8192;
/// Trailer fields; hyper refuses at 100.
pub(crate) const MAX_TRAILER_FIELDS: usize = 64;

/// A chunk-size line: `1*HEXDIG *(SP / HTAB) [ ";" extensions ] CRLF`.
/// Returns the size and how many extension bytes the line carried.
pub(crate) fn size_line(line: &[u8]) -> Result<(u64, usize), &'static str> {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err("chunk-size line not ended by CRLF");
    };
    let digits = body.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err("chunk size is not a hexadecimal number");
    }
    // 15 hex digits is 2^60: far beyond any body, and no overflow below.
    if digits > 15 {
        return Err("chunk size too large");
    }
    let mut size = 0u64;
    for &b in &body[..digits] {
        // Every byte here is a hex digit, so to_digit gives Some.
        size = size * 16 + u64::from((b as char).to_digit(16).unwrap_or(0));
    }
    let rest = &body[digits..];
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &rest[ws..];
    match rest.first() {
        None => Ok((size, 0)),
        Some(b';') => {
            if rest.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err("control byte in chunk extension");
            }
            Ok((size, rest.len()))
        }
        Some(_) => Err("invalid chunk size"),
    }
}

/// A trailer field line: `field-name ":" field-value CRLF`, the name a
/// token, the value without control bytes but HTAB.
pub(crate) fn trailer_line(line: &[u8]) -> Result<(), &'static str> {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err("trailer line not ended by CRLF");
    };
    let Some(colon) = body.iter().position(|&b| b == b':') else {
        return Err("trailer field without a colon");
    };
    let (name, value) = (&body[..colon], &body[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err("invalid trailer field name");
    }
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("control byte in trailer field");
    }
    Ok(())
}

/// RFC 9110 §5.6.2 token characters.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_lines_follow_hypers_grammar_or_stricter() {
        assert_eq!(size_line(b"5\r\n"), Ok((5, 0)));
        assert_eq!(size_line(b"1F\r\n"), Ok((31, 0)));
        assert_eq!(size_line(b"5 \t\r\n"), Ok((5, 0)));
        assert_eq!(size_line(b"5;a=b\r\n"), Ok((5, 4)));
        assert_eq!(size_line(b"5 ;a\r\n"), Ok((5, 2)));
        for bad in [
            &b" 5\r\n"[..],
            b"1 0\r\n",
            b"5\n",
            b"5;a\n",
            b"0x10\r\n",
            b"\r\n",
            b"5;a\rb\r\n",
            b"-1\r\n",
            b"10000000000000000\r\n",
        ] {
            assert!(
                size_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn trailer_lines_need_a_token_a_colon_and_crlf() {
        assert_eq!(trailer_line(b"X-T: 1\r\n"), Ok(()));
        assert_eq!(trailer_line(b"X-T:\r\n"), Ok(()));
        for bad in [
            &b"no colon\r\n"[..],
            b"X-T: 1\n",
            b": v\r\n",
            b"X T: 1\r\n",
            b"X-T: a\x01b\r\n",
        ] {
            assert!(
                trailer_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
