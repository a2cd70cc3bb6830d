//! Published PIDF bodies through validation and aggregation: see
//! [`server::fuzz_checks::pidf_bodies`] for the input format and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzz_checks::pidf_bodies(data));
