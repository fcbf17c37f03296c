//! The request-head path: the hygiene `Scanner` decides on a head, then
//! hyper parses it with httparse. Neither may panic, and a head the scanner
//! passes on whole must parse: otherwise a client gets an answer the
//! scanner did not mean (hyper's 400 after the scanner said yes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vakt_runtime::fuzzing::Scanner;

fuzz_target!(|data: &[u8]| {
    let mut s = Scanner::new(16 * 1024);
    let verdict = s.feed(data);
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(data);
    if verdict.is_ok() && !s.mid_head() {
        // The scanner saw at least one complete head, so the first one is
        // complete for httparse too (leading empty lines aside, which both skip).
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            if data[..end].iter().any(|&b| b != b'\r' && b != b'\n') {
                assert!(
                    matches!(parsed, Ok(httparse::Status::Complete(_))),
                    "the scanner passed a head httparse refuses: {parsed:?}"
                );
            }
        }
    }
});
