//! Pipelined HTTP requests through the whole XCAP service: see
//! [`xcap::fuzz_checks::service`] for the input format and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xcap::fuzz_checks::service(data));
