//! Statistics over plain HTTP/1.0 (`GET /stats`, `GET /stats.json`, and `GET /metrics` for
//! Prometheus), for operators and tests.
//!
//! Runs on its own small OS thread with blocking std sockets: it is off every shard, so a
//! slow admin client can never stall SIP traffic, and it only reads the shards' atomics.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::stats::StatsRegistry;

/// Largest request head read from an admin client.
const MAX_ADMIN_REQUEST: usize = 4096;

/// Binds the admin listener and serves it on a background thread until `stop` is set.
pub fn spawn(
    addr: SocketAddr,
    stats: StatsRegistry,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let handle = std::thread::Builder::new()
        .name("herald-admin".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = serve(s, &stats);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
    Ok((local, handle))
}

fn serve(mut s: TcpStream, stats: &StatsRegistry) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; MAX_ADMIN_REQUEST];
    let mut n = 0;
    while n < buf.len() {
        let r = s.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n")
            || buf[..n].windows(2).any(|w| w == b"\n\n")
        {
            break;
        }
    }
    let line = buf[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/stats") | ("GET", "/stats.txt") => ("200 OK", "text/plain", stats.render_text()),
        ("GET", "/stats.json") => ("200 OK", "application/json", stats.render_json()),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            stats.render_prometheus(),
        ),
        ("GET", "/health") | ("GET", "/") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}
