//! Every seed of the cargo-fuzz target `service` in `xcap/fuzz`, replayed through the same
//! check (`xcap::fuzz_checks::service`) without libFuzzer, so CI keeps them passing: drop a
//! crash artifact into `fuzz/seeds/service/` and it becomes a regression test.
//! Found so far, all fixed: two aborting a release server, an `encoding=` value not in
//! quotes (`encoding_not_quoted`, any PUT) and a backslash before a multi-byte character in
//! a digest `Authorization` value (`escaped_multibyte`, before authentication); and a `%0d`
//! in the XUI's domain that put a CR into the digest realm of the `WWW-Authenticate`
//! challenge, splitting the response (`realm_with_a_carriage_return`, before
//! authentication); a control character quoted from a PUT body into the phrase of a 409's
//! `not-well-formed` report, which made the report itself not XML
//! (`control_character_in_a_conflict_phrase`).

use std::path::Path;

#[test]
fn service_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/service");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        eprintln!("{}", path.display());
        xcap::fuzz_checks::service(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}
