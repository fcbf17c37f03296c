//! The request hygiene `Scanner` fed one byte stream twice: whole, and cut at
//! points the fuzzer picks. It must never panic, and its verdict (accepted, or
//! refused with which status and reason) and where it stands at the end (in a
//! head, in a body) must not depend on how the stream was cut.
//!
//! Input: one byte `n`, then `n` cut offsets (one byte each, as gaps between
//! cuts), then the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vakt_runtime::fuzzing::{Reject, Scanner};

/// What the scanner concluded: the refusal if any, and its state at the end.
fn run(pieces: &[&[u8]]) -> (Option<Reject>, bool, bool) {
    let mut s = Scanner::new(1024);
    for p in pieces {
        if let Err((good, reject)) = s.feed(p) {
            assert!(
                good <= p.len(),
                "good prefix {good} past the fed {} bytes",
                p.len()
            );
            return (Some(reject), false, false);
        }
    }
    (None, s.mid_head(), s.in_body())
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (gaps, stream) = rest.split_at(n);
    let mut pieces = Vec::new();
    let mut at = 0;
    for &g in gaps {
        let end = (at + usize::from(g)).min(stream.len());
        pieces.push(&stream[at..end]);
        at = end;
    }
    pieces.push(&stream[at..]);
    let whole = run(&[stream]);
    let split = run(&pieces);
    assert_eq!(whole, split, "the verdict depends on the cuts {gaps:?}");
    // Byte by byte is the cut most likely to expose lookahead.
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(whole, run(&bytes), "the verdict differs byte by byte");
});
