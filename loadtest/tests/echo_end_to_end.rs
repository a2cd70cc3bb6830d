//! Starts the real `herald-echo` binary on a fresh loopback port and drives it with the real
//! `herald-load` binary, bounded by --count and --duration (a few seconds in all).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Echo {
    child: Child,
    addr: String,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_echo() -> Echo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-echo"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--notify",
            "--exit-after",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start herald-echo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read listen line");
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("address on the listen line")
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "unexpected line {line:?}");
    Echo { child, addr }
}

fn load(addr: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_herald-load"))
        .args([
            "--target",
            addr,
            "--json",
            "--threads",
            "2",
            "--sockets",
            "4",
        ])
        .args(extra)
        .output()
        .expect("run herald-load");
    assert!(
        out.status.success(),
        "herald-load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn options_against_echo_has_rate_and_no_failures() {
    let echo = start_echo();
    let r = load(
        &echo.addr,
        &[
            "-s",
            "options",
            "--count",
            "20000",
            "--duration",
            "2",
            "-m",
            "64",
        ],
    );
    assert!(r["calls_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["calls_ok"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["calls_failed"].as_u64(), Some(0), "{r}");
    assert_eq!(r["timeouts"].as_u64(), Some(0), "{r}");
    assert!(
        r["latency_request_response"]["p99_ms"].as_f64().is_some(),
        "{r}"
    );
}

#[test]
fn subscribe_against_echo_answers_notifies() {
    let echo = start_echo();
    let r = load(
        &echo.addr,
        &[
            "-s",
            "subscribe",
            "--count",
            "2000",
            "--duration",
            "2",
            "--rate",
            "2000",
        ],
    );
    assert!(r["calls_ok"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["calls_failed"].as_u64(), Some(0), "{r}");
    assert_eq!(r["notifies"], r["calls_ok"], "{r}");
    assert!(
        r["latency_subscribe_notify"]["p50_ms"].as_f64().is_some(),
        "{r}"
    );
}

#[test]
fn refuses_remote_targets() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald-load"))
        .args(["--target", "192.0.2.1:5060", "--count", "1"])
        .output()
        .expect("run herald-load");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
