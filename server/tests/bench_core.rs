//! `herald bench-core`: the core's speed measured by the server binary itself (so that a
//! profile-guided build is measured as built). Only the output's shape is checked here:
//! figures belong to benchmarks, never to tests.

use std::process::Command;

#[test]
fn bench_core_prints_fresh_and_steady_medians() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["bench-core", "--pairs", "200", "--rounds", "3"])
        .output()
        .expect("run herald bench-core");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text.trim();
    assert!(line.starts_with("200 pairs × 3: fresh core "), "{line}");
    let ns_after = |key: &str| {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|rest| rest.split_once(" ns/pair"))
            .and_then(|(n, _)| n.parse::<f64>().ok())
    };
    for key in ["fresh core", "steady core"] {
        assert!(ns_after(key).is_some_and(|ns| ns > 0.0), "{key}: {line}");
    }
}
