//! SIPp against the real binary: bounded scenarios from `tests/sipp/`, one socket per call
//! (`-t un`), must exit 0 (every call succeeded). Skipped with a message if `sipp` (Debian
//! package `sip-tester`) is not installed.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

fn sipp_available() -> bool {
    Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sipp")
        .join(name)
}

/// Runs sipp for at most ~30 s; returns (exit code, stdout+stderr).
fn run_sipp(server: &Server, scenario_file: &str, calls: u32, rate: u32) -> (i32, String) {
    let dir = std::env::temp_dir().join(common::unique("sipp"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new("sipp")
        .current_dir(&dir)
        .arg(server.sip.to_string())
        .args(["-sf"])
        .arg(scenario(scenario_file))
        .args(["-i", "127.0.0.1", "-t", "un", "-max_socket", "1000"])
        .args(["-m", &calls.to_string(), "-r", &rate.to_string()])
        .args(["-l", "200", "-timeout", "20s", "-timeout_error"])
        .args(["-recv_timeout", "8000", "-nostdin"])
        .arg("-trace_err")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipp");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().ends_with("errors.log") {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (status.code().unwrap_or(-1), text)
}

#[test]
fn sipp_subscribe_and_publish() {
    if !sipp_available() {
        eprintln!("sipp not installed (apt-get install sip-tester): skipping");
        return;
    }
    let s = Server::start(&[]);
    let (code, out) = run_sipp(&s, "subscribe.xml", 50, 50);
    assert_eq!(code, 0, "sipp subscribe failed:\n{out}");
    let (code, out) = run_sipp(&s, "publish.xml", 50, 50);
    assert_eq!(code, 0, "sipp publish failed:\n{out}");
}
