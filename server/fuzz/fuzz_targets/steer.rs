//! The kernel steering program against `route` on any datagram: see
//! [`server::fuzz_checks::steer_agrees`] for the input format and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzz_checks::steer_agrees(data));
