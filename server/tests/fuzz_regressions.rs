//! Every seed and past crash of the cargo-fuzz targets in `server/fuzz`, replayed through
//! the same checks (`server::fuzz_checks`) without libFuzzer, so CI keeps them fixed:
//! drop a crash artifact into `fuzz/seeds/<target>/` and it becomes a regression test.
//! Found so far, all fixed: a UTF-8 byte order mark shifted every indexed PIDF child by 3
//! bytes (`seeds/pidf/bom`, and `double_bom`); an element name holding `/` got namespace
//! declarations written into it (`name_with_slash`); `xmlns:xmlns` declared
//! (`xmlns_prefix_declared`); a SUBSCRIBE Contact that no NOTIFY start line can carry
//! (`seeds/core_messages/contact_not_a_uri`); a stored dialog whose Contact an older version
//! kept, restored and NOTIFYed with a broken start line (`seeds/restore/
//! contact_from_an_old_version`); a stored publication order of `u64::MAX` overflowing the
//! order counter (`expiry_extremes_and_raw`); two stored publications sharing an order
//! (`publications_sharing_an_order`); the log reader, resynchronising after a damaged frame
//! by searching for the next magic, read frames that a key inside the damaged frame spelt
//! (`seeds/wal/forged_frames_inside_a_damaged_one`).

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        check(&data);
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

#[test]
fn pidf_seeds() {
    replay("pidf", server::fuzz_checks::pidf_bodies);
}

#[test]
fn core_message_seeds() {
    replay("core_messages", server::fuzz_checks::core_exchange);
}

#[test]
fn steer_seeds() {
    replay("steer", server::fuzz_checks::steer_agrees);
}

#[test]
fn restore_seeds() {
    replay("restore", server::fuzz_checks::restore_then_exchange);
}

#[test]
fn wal_seeds() {
    replay("wal", store::fuzz_checks::wal_frames);
}

#[test]
fn xcap_stored_seeds() {
    replay("xcap_stored", server::fuzz_checks::xcap_stored);
}
