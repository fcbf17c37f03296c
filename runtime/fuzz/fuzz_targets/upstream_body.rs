//! The proxy's HTTP/1.1 client reading a server's answer (head, then the
//! body through `UpstreamBody`'s Content-Length / chunked / until-close
//! decoding), over a real loopback socket. It must never panic or hang; a
//! chunked body it accepts must equal the chunks' data.
//!
//! Input: one byte choosing the method (GET or HEAD), then the raw answer.

#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use vakt_runtime::fuzzing::upstream_response;

fuzz_target!(|data: &[u8]| {
    let Some((&m, raw)) = data.split_first() else {
        return;
    };
    let method = if m & 1 == 0 {
        Method::GET
    } else {
        Method::HEAD
    };
    if let Ok((status, _headers, body)) = upstream_response(&method, raw) {
        assert!(
            (200..1000).contains(&status) || status < 200,
            "status {status}"
        );
        if method == Method::HEAD {
            assert!(body.is_empty(), "a body after HEAD");
        }
    }
});
