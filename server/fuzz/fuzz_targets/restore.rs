//! Start-up from hostile stored records, then traffic: see
//! [`server::fuzz_checks::restore_then_exchange`] for the input format and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzz_checks::restore_then_exchange(data));
