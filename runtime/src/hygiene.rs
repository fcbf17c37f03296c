//! Request hygiene: a [`Scanner`] follows request framing on the raw client
//! byte stream, in front of hyper, and rejects any request whose framing a
//! server could read differently from us (the root of request smuggling).
//!
//! hyper alone is lenient where RFC 9112 allows it: it merges duplicate equal
//! `Content-Length`s and silently drops `Content-Length` when
//! `Transfer-Encoding` is present. A proxy in front of PHP apps must instead
//! refuse those (RFC 9112 §6.3: such a message "ought to be handled as an
//! error"), so every head is checked here first: duplicate or malformed
//! `Content-Length`, `Transfer-Encoding` with `Content-Length`, any coding but
//! a single `chunked`, `Transfer-Encoding` in HTTP/1.0, bare CR, NUL or other
//! control bytes, obs-fold, and heads over the size limit. The scanner then
//! skips the body (by length or chunk by chunk) to find the next head.

/// Why a request was refused, as the status the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> Reject {
    Reject {
        status: 400,
        reason,
    }
}

const MAX_HEADERS: usize = 128;
/// The largest request-head buffer a connection keeps between requests.
const HEAD_KEPT: usize = 4096;

#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head,
    /// Skipping a body of known length.
    Body(u64),
    /// Collecting a chunk-size line into `line`.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Collecting the CRLF after chunk data into `line`.
    ChunkCrlf,
    /// Collecting trailer lines after the last chunk into `line`.
    Trailer,
    /// After a WebSocket upgrade request: the bytes that follow are either
    /// the tunnel's (after a 101) or the next request (after any other
    /// answer), which only the answer tells. Nothing is scanned until
    /// [`Scanner::resume`].
    Upgrade,
}

#[derive(Debug)]
pub struct Scanner {
    state: State,
    head: Vec<u8>,
    max_head: usize,
    /// The chunk-size, chunk-end or trailer line being collected: chunked
    /// framing is checked a whole line at a time by [`crate::chunked`].
    line: Vec<u8>,
    /// Extension bytes in this body so far.
    extensions: usize,
    /// Trailer bytes and fields in this body so far.
    trailers: (usize, usize),
    /// Where in the last fed bytes an upgrade request's head ended (the
    /// bytes from there on were not scanned).
    held_at: Option<usize>,
    /// Whether a whole request head has been scanned on this connection.
    seen_head: bool,
}

impl Scanner {
    pub fn new(max_head: usize) -> Self {
        Scanner {
            state: State::Head,
            head: Vec::new(),
            max_head,
            line: Vec::new(),
            extensions: 0,
            trailers: (0, 0),
            held_at: None,
            seen_head: false,
        }
    }

    /// True after a whole request (head and body) and before the first byte
    /// of the next: the client owes us nothing, hyper holds no bytes.
    pub fn between_requests(&self) -> bool {
        self.seen_head && matches!(self.state, State::Head) && self.head.is_empty()
    }

    /// After the last [`Scanner::feed`]: where a WebSocket upgrade request's
    /// head ended in those bytes, if one did. The scanner then holds until
    /// [`Scanner::resume`].
    pub fn take_hold(&mut self) -> Option<usize> {
        self.held_at.take()
    }

    /// The upgrade was refused (the server answered anything but 101): the
    /// bytes after it are HTTP again, scanned from a request head.
    pub fn resume(&mut self) {
        if matches!(self.state, State::Upgrade) {
            self.state = State::Head;
        }
    }

    /// True between requests and while reading a head: a timeout now with
    /// [`Scanner::mid_head`] false is an idle keep-alive, not a slow client.
    pub fn mid_head(&self) -> bool {
        matches!(self.state, State::Head) && !self.head.is_empty()
    }

    /// True while a request body is being received.
    pub fn in_body(&self) -> bool {
        !matches!(self.state, State::Head | State::Upgrade)
    }

    /// Scans bytes as they arrive. On a bad request, returns how many bytes
    /// before it belong to earlier, good requests, and why.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), (usize, Reject)> {
        let mut i = 0;
        // Where the request being scanned starts in `data` (0 when it began
        // in an earlier read): a refusal hands hyper the bytes before it.
        let mut req_start = 0;
        while i < data.len() {
            match &mut self.state {
                State::Upgrade => {
                    self.held_at = Some(i);
                    return Ok(());
                }
                State::Head => {
                    let start = i;
                    // Leading empty lines before a request line are ignored
                    // (RFC 9112 §2.2), as hyper does.
                    // Only whole line ends: a bare CR here is refused by
                    // httparse, so it must reach `check_head` (found by the
                    // request_head fuzz target).
                    if self.head.is_empty() {
                        while i < data.len()
                            && (data[i] == b'\n'
                                || (data[i] == b'\r' && data.get(i + 1) == Some(&b'\n')))
                        {
                            i += 1;
                        }
                        if i == data.len() {
                            break;
                        }
                    }
                    let head_start_in_data = if self.head.is_empty() { i } else { start };
                    if self.head.is_empty() {
                        req_start = i;
                    }
                    let room = self.max_head + 1 - self.head.len().min(self.max_head + 1);
                    let take = room.min(data.len() - i);
                    let already = self.head.len();
                    self.head.extend_from_slice(&data[i..i + take]);
                    match check_head(&self.head) {
                        Ok(Some((len, framing))) => {
                            // Bytes past the head go back to the loop.
                            let consumed = len - already;
                            i += consumed;
                            self.seen_head = true;
                            // A large head (up to max_header_size) would
                            // otherwise stay allocated for the connection's
                            // life; a usual one's buffer is kept for the next.
                            if self.head.capacity() > HEAD_KEPT {
                                self.head = Vec::new();
                            } else {
                                self.head.clear();
                            }
                            self.state = match framing {
                                Framing::Upgrade => {
                                    self.held_at = Some(i);
                                    self.state = State::Upgrade;
                                    return Ok(());
                                }
                                Framing::None | Framing::Length(0) => State::Head,
                                Framing::Length(n) => State::Body(n),
                                Framing::Chunked => {
                                    self.line.clear();
                                    self.extensions = 0;
                                    self.trailers = (0, 0);
                                    State::ChunkSize
                                }
                            };
                        }
                        Ok(None) => {
                            if self.head.len() > self.max_head {
                                return Err((
                                    head_start_in_data,
                                    Reject {
                                        status: 431,
                                        reason: "request head too large",
                                    },
                                ));
                            }
                            i += take;
                        }
                        Err(r) => {
                            let at = if already == 0 { head_start_in_data } else { 0 };
                            return Err((at, r));
                        }
                    }
                }
                State::Body(n) => {
                    let take = (*n).min((data.len() - i) as u64);
                    *n -= take;
                    i += take as usize;
                    if *n == 0 {
                        self.state = State::Head;
                    }
                }
                State::ChunkData(n) => {
                    let take = (*n).min((data.len() - i) as u64);
                    *n -= take;
                    i += take as usize;
                    if *n == 0 {
                        self.state = State::ChunkCrlf;
                    }
                }
                State::ChunkSize | State::ChunkCrlf | State::Trailer => {
                    let (taken, complete) = take_line(&mut self.line, &data[i..]);
                    i += taken;
                    if let Some(r) = self.check_line_so_far() {
                        return Err((req_start, r));
                    }
                    if complete {
                        self.end_line().map_err(|r| (req_start, r))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Limits that hold before a line is whole, so a client cannot make us
    /// buffer without end.
    fn check_line_so_far(&self) -> Option<Reject> {
        let line = &self.line;
        match self.state {
            State::ChunkSize if line.len() > crate::chunked::MAX_LINE => {
                Some(bad("chunk-size line too long"))
            }
            State::ChunkCrlf if !b"\r\n".starts_with(line) => {
                Some(bad("chunk data longer than its size"))
            }
            State::Trailer if self.trailers.0 + line.len() > crate::chunked::MAX_TRAILERS => {
                Some(Reject {
                    status: 431,
                    reason: "trailers too large",
                })
            }
            _ => None,
        }
    }

    /// A whole line (ending in LF) of chunked framing.
    fn end_line(&mut self) -> Result<(), Reject> {
        let line = std::mem::take(&mut self.line);
        match self.state {
            State::ChunkSize => {
                let (size, ext) = crate::chunked::size_line(&line).map_err(bad)?;
                self.extensions += ext;
                if self.extensions > crate::chunked::MAX_EXTENSIONS {
                    return Err(bad("chunk extensions too large"));
                }
                self.state = if size == 0 {
                    State::Trailer
                } else {
                    State::ChunkData(size)
                };
            }
            State::ChunkCrlf => {
                if line != b"\r\n" {
                    return Err(bad("chunk data not ended by CRLF"));
                }
                self.state = State::ChunkSize;
            }
            State::Trailer => {
                if line == b"\r\n" {
                    self.state = State::Head;
                } else {
                    crate::chunked::trailer_line(&line).map_err(bad)?;
                    self.trailers.0 += line.len();
                    self.trailers.1 += 1;
                    if self.trailers.1 > crate::chunked::MAX_TRAILER_FIELDS {
                        return Err(bad("too many trailer fields"));
                    }
                }
            }
            _ => {}
        }
        self.line = line;
        self.line.clear();
        Ok(())
    }
}

/// Appends `data` to `line` up to and including the first LF; returns how
/// many bytes were taken and whether the line is now whole.
fn take_line(line: &mut Vec<u8>, data: &[u8]) -> (usize, bool) {
    match data.iter().position(|&b| b == b'\n') {
        Some(p) => {
            line.extend_from_slice(&data[..=p]);
            (p + 1, true)
        }
        None => {
            // Bound what one call may add; the caller checks the limits.
            let n = data.len().min(crate::chunked::MAX_LINE + 1);
            line.extend_from_slice(&data[..n]);
            (n, false)
        }
    }
}

enum Framing {
    None,
    Length(u64),
    Chunked,
    /// No body, and a WebSocket upgrade ([`is_websocket`]).
    Upgrade,
}

/// Parses a (possibly partial) head. `Ok(None)` = need more bytes.
fn check_head(buf: &[u8]) -> Result<Option<(usize, Framing)>, Reject> {
    // Raw byte checks first: httparse tolerates some of these in places, and
    // we want one clear rule — no NUL, no bare CR, no obs-fold, anywhere.
    let end = find_head_end(buf);
    let scan = &buf[..end.unwrap_or(buf.len())];
    for (k, &b) in scan.iter().enumerate() {
        match b {
            0 => return Err(bad("NUL byte in request head")),
            b'\r' => {
                if let Some(&n) = scan.get(k + 1) {
                    if n != b'\n' {
                        return Err(bad("bare CR in request head"));
                    }
                } else if end.is_some() {
                    return Err(bad("bare CR in request head"));
                }
            }
            b'\n' => {
                if let Some(&n) = scan.get(k + 1)
                    && (n == b' ' || n == b'\t')
                {
                    return Err(bad("obsolete line folding in header"));
                }
            }
            b'\t' => {}
            c if c < 0x20 || c == 0x7f => return Err(bad("control byte in request head")),
            _ => {}
        }
    }
    let Some(_) = end else {
        return Ok(None);
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Reject {
                status: 431,
                reason: "too many headers",
            });
        }
        Err(_) => return Err(bad("malformed request head")),
    };
    if let Some(target) = req.path {
        check_target(target.as_bytes())?;
    }
    let mut content_length: Option<u64> = None;
    let mut te = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(bad("more than one Content-Length"));
            }
            let v = trim(h.value);
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Err(bad("invalid Content-Length"));
            }
            // Digits only and at most 18 of them: the parse cannot fail.
            content_length = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if te {
                return Err(bad("more than one Transfer-Encoding"));
            }
            if !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                return Err(bad("Transfer-Encoding other than chunked"));
            }
            te = true;
        }
    }
    // RFC 9112 §3.2: more than one Host, or none in HTTP/1.1, is a 400:
    // two Hosts let the proxy route on one and the server trust the other.
    if hosts > 1 {
        return Err(bad("more than one Host header"));
    }
    if hosts == 0 && req.version == Some(1) {
        return Err(bad("HTTP/1.1 request without a Host header"));
    }
    if te && content_length.is_some() {
        return Err(bad("Transfer-Encoding together with Content-Length"));
    }
    if te && req.version == Some(0) {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    let framing = match (te, content_length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) if n > 0 => Framing::Length(n),
        (false, _)
            if is_websocket(
                req.method.unwrap_or(""),
                req.version == Some(1),
                req.headers.iter().map(|h| (h.name, h.value)),
            ) =>
        {
            Framing::Upgrade
        }
        (false, _) => Framing::None,
    };
    Ok(Some((len, framing)))
}

/// A WebSocket opening handshake (RFC 6455 §4.1): an HTTP/1.1 GET whose
/// `Upgrade` names `websocket` and whose `Connection` names `upgrade`
/// (tokens, any case: Firefox sends `Connection: keep-alive, Upgrade`).
/// The scanner and the proxy both ask here, so they agree on which requests
/// may become tunnels; any other upgrade (h2c, …) stays plain HTTP.
pub(crate) fn is_websocket<'a>(
    method: &str,
    http11: bool,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> bool {
    if method != "GET" || !http11 {
        return false;
    }
    let (mut upgrade, mut connection) = (false, false);
    for (name, value) in headers {
        let has = |token: &str| {
            value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
        };
        if name.eq_ignore_ascii_case("upgrade") && has("websocket") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case("connection") && has("upgrade") {
            connection = true;
        }
    }
    upgrade && connection
}

/// The request target (RFC 9112 §3.2): a fragment is never sent by a
/// client (RFC 9110 §4.2.5) and raw bytes above 0x7F are not URI characters;
/// forwarding either lets the server read another URI than we routed.
/// In absolute form, userinfo (`http://user@host/`) is refused as RFC 9110
/// §4.2.4 says senders must not send it, and it hides the real host.
fn check_target(t: &[u8]) -> Result<(), Reject> {
    if t.contains(&b'#') {
        return Err(bad("fragment in request target"));
    }
    if t.iter().any(|&b| b >= 0x80) {
        return Err(bad("raw non-ASCII byte in request target"));
    }
    if let Some(rest) = absolute_form_rest(t) {
        let authority_end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.contains(&b'@') {
            return Err(bad("userinfo in request target"));
        }
        if authority.is_empty() {
            return Err(bad("absolute-form target without a host"));
        }
    }
    Ok(())
}

/// For `http://host/path` or `https://…`, what follows `://`.
fn absolute_form_rest(t: &[u8]) -> Option<&[u8]> {
    let lower = |p: &[u8]| t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p);
    if lower(b"http://") {
        Some(&t[7..])
    } else if lower(b"https://") {
        Some(&t[8..])
    } else {
        None
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e]
}

/// Offset just past the blank line ending a head (CRLF CRLF or LF LF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut k = 0;
    while let Some(p) = buf[k..].iter().position(|&b| b == b'\n') {
        let nl = k + p;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        k = nl + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(bytes: &[u8]) -> Result<(), (usize, Reject)> {
        Scanner::new(16384).feed(bytes)
    }

    fn reason(bytes: &[u8]) -> &'static str {
        scan(bytes).unwrap_err().1.reason
    }

    #[test]
    fn between_requests_only_after_a_whole_request_and_before_the_next_byte() {
        let mut s = Scanner::new(16384);
        // A fresh connection has not had a request yet.
        assert!(!s.between_requests());
        s.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
            .unwrap();
        assert!(!s.between_requests(), "mid-body");
        s.feed(b"cd").unwrap();
        assert!(s.between_requests());
        s.feed(b"\r\n").unwrap();
        assert!(s.between_requests(), "empty lines before a request line");
        s.feed(b"GET / HT").unwrap();
        assert!(!s.between_requests(), "mid-head");
        s.feed(b"TP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n")
            .unwrap();
        assert!(!s.between_requests(), "mid-chunks");
        s.feed(b"0\r\n\r\n").unwrap();
        assert!(s.between_requests());
        let ws = b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        s.feed(ws).unwrap();
        assert!(!s.between_requests(), "held after an upgrade request");
    }

    #[test]
    fn a_websocket_head_holds_what_follows_until_the_answer_and_h2c_does_not() {
        let ws = b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n";
        let mut data = ws.to_vec();
        data.extend_from_slice(b"\x81\x00 frame bytes");
        let mut s = Scanner::new(16384);
        assert_eq!(s.feed(&data), Ok(()));
        assert_eq!(s.take_hold(), Some(ws.len()));
        assert!(!s.in_body() && !s.mid_head());
        // Held: nothing more is scanned, not even bytes that are no HTTP.
        assert_eq!(s.feed(b"\x00\x01"), Ok(()));
        assert_eq!(s.take_hold(), Some(0));
        // A refused upgrade: what follows is scanned as requests again.
        s.resume();
        assert_eq!(s.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(()));
        assert_eq!(s.take_hold(), None);
        assert_eq!(s.feed(b"\x00"), Err((0, bad("NUL byte in request head"))));
        for other in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        ] {
            let mut s = Scanner::new(16384);
            assert_eq!(s.feed(other), Ok(()));
            assert_eq!(s.take_hold(), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn good_pipelined_requests_pass_whole_and_byte_by_byte() {
        let reqs: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n";
        assert_eq!(scan(reqs), Ok(()));
        let mut s = Scanner::new(16384);
        for b in reqs {
            s.feed(std::slice::from_ref(b)).unwrap();
        }
        assert!(!s.mid_head());
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        assert_eq!(
            reason(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            "more than one Content-Length"
        );
        assert_eq!(
            reason(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            "more than one Content-Length"
        );
        assert_eq!(
            reason(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"),
            "invalid Content-Length"
        );
        assert_eq!(
            reason(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
            "Transfer-Encoding together with Content-Length"
        );
        assert_eq!(
            reason(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            "Transfer-Encoding other than chunked"
        );
        assert_eq!(
            reason(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "Transfer-Encoding in an HTTP/1.0 request"
        );
    }

    #[test]
    fn host_headers_must_be_exactly_one_in_http_1_1() {
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            "more than one Host header"
        );
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 request without a Host header"
        );
        assert_eq!(scan(b"GET / HTTP/1.0\r\n\r\n"), Ok(()));
    }

    #[test]
    fn dangerous_bytes_are_refused() {
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n"),
            "bare CR in request head"
        );
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n"),
            "NUL byte in request head"
        );
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n"),
            "obsolete line folding in header"
        );
    }

    #[test]
    fn oversized_heads_get_431_and_good_bytes_before_a_bad_request_are_kept() {
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 20000));
        assert_eq!(scan(&big).unwrap_err().1.status, 431);
        let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nX: \0\r\n\r\n";
        assert_eq!(scan(two).unwrap_err().0, 27);
    }

    #[test]
    fn chunk_overflow_is_refused() {
        assert!(
            scan(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n")
                .is_err()
        );
        assert!(
            scan(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .is_err()
        );
    }

    fn chunked(body: &[u8]) -> Result<(), (usize, Reject)> {
        let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        req.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let whole = Scanner::new(16384).feed(&req);
        // The verdict must not depend on how the bytes arrive.
        let mut s = Scanner::new(16384);
        let split = req.iter().try_for_each(|b| s.feed(std::slice::from_ref(b)));
        assert_eq!(
            whole.is_ok(),
            split.is_ok(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        whole
    }

    #[test]
    fn chunked_framing_that_hyper_refuses_is_refused_here_first() {
        for bad in [
            &b" 5\r\nhello\r\n0\r\n\r\n"[..],
            b"1 0\r\n0123456789abcdef\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5;ext\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nno colon\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"0x10\r\n0123456789abcdef\r\n0\r\n\r\n",
        ] {
            assert!(chunked(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        for good in [
            &b"5\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
        ] {
            assert_eq!(chunked(good), Ok(()), "{:?}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn a_good_request_before_a_bad_chunk_in_the_same_read_is_kept() {
        let good = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut two = good.to_vec();
        two.extend_from_slice(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 0\r\n",
        );
        assert_eq!(scan(&two).unwrap_err().0, good.len());
    }

    #[test]
    fn a_bare_cr_before_the_request_line_is_refused_as_httparse_would() {
        assert_eq!(
            reason(b"\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            "bare CR in request head"
        );
        assert_eq!(scan(b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(()));
    }

    #[test]
    fn targets_with_fragments_raw_utf8_or_userinfo_are_refused() {
        assert_eq!(
            reason(b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"),
            "fragment in request target"
        );
        assert_eq!(
            reason("GET /bl\u{e5}b\u{e6}r HTTP/1.1\r\nHost: a\r\n\r\n".as_bytes()),
            "raw non-ASCII byte in request target"
        );
        assert_eq!(
            reason(b"GET http://u:p@other.test/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            "userinfo in request target"
        );
        assert_eq!(
            scan(b"GET http://other.test/abs?q=@ HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(())
        );
        assert_eq!(scan(b"GET /%C3%A5 HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(()));
    }
}
