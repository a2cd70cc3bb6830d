//! Whole SIP exchanges through the sans-IO core: see [`server::fuzz_checks::core_exchange`]
//! for the input format and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzz_checks::core_exchange(data));
