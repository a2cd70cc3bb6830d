//! Stored XCAP documents and credentials as a disk fault may leave them, then requests:
//! see [`server::fuzz_checks::xcap_stored`] for the input format and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzz_checks::xcap_stored(data));
