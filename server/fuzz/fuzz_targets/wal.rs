//! The write-ahead log reader on hostile segment files, and on written logs with one byte
//! changed: see [`store::fuzz_checks::wal_frames`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| store::fuzz_checks::wal_frames(data));
