//! End-to-end HTTPS XCAP: the real `herald` binary with `--tls-cert`/`--tls-key` (a
//! self-signed certificate made at test time), driven by a rustls client over loopback:
//! PUT then keep-alive and pipelined GETs of the same bytes, a clean `close_notify` after
//! `Connection: close`, plain HTTP on the TLS port refused, and a bad key refused at start.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_tcp_port, Server, REPLY_TIMEOUT};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const DOC_PATH: &str = "/xcap-root/test-app/users/sip:alice@example.com/index";
const DOC: &str = "<?xml version=\"1.0\"?>\n<root xmlns=\"urn:test\">\n  <a id=\"1\"/>\n</root>\n";

struct Pki {
    dir: tempfile::TempDir,
    cert_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
        Pki {
            dir,
            cert_pem: ck.cert.pem(),
        }
    }
    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
    fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

fn start_tls_server(pki: &Pki) -> (Server, u16) {
    let port = free_tcp_port();
    let listen = format!("127.0.0.1:{port}");
    let (cert, key) = (pki.cert(), pki.key());
    let server = Server::start(&[
        "--xcap-listen",
        &listen,
        "--xcap-trusted-peers",
        "127.0.0.1/32",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    // The admin port answers before every shard has adopted its XCAP socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "XCAP port never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(pki: &Pki, port: u16) -> Tls {
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let conn =
        rustls::ClientConnection::new(pki.client(), "localhost".try_into().unwrap()).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Reads one Content-Length framed response: (status, body).
fn read_response(tls: &mut Tls, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line: {head:?}"));
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return (status, body);
            }
        }
        let n = tls.read(&mut chunk).expect("read response");
        assert!(n > 0, "connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn https_put_get_pipelined_and_close_notify() {
    let pki = Pki::new();
    let (_server, port) = start_tls_server(&pki);
    let mut tls = connect(&pki, port);
    let mut buf = Vec::new();

    write!(
        tls,
        "PUT {DOC_PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{DOC}",
        DOC.len()
    )
    .unwrap();
    tls.flush().unwrap();
    let (status, body) = read_response(&mut tls, &mut buf);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    // Two pipelined GETs on the same connection, the second closing it.
    write!(
        tls,
        "GET {DOC_PATH} HTTP/1.1\r\nHost: localhost\r\n\r\nGET {DOC_PATH}/~~/root/a/@id HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    tls.flush().unwrap();
    let (status, body) = read_response(&mut tls, &mut buf);
    assert_eq!((status, body.as_slice()), (200, DOC.as_bytes()));
    let (status, body) = read_response(&mut tls, &mut buf);
    assert_eq!((status, body.as_slice()), (200, &b"1"[..]));
    // The server ends with close_notify: read_to_end sees a clean EOF, not a truncation error.
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest)
        .expect("clean TLS close (close_notify)");
    assert!(buf.is_empty() && rest.is_empty());
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn plain_http_on_tls_port_gets_no_http_response() {
    let pki = Pki::new();
    let (_server, port) = start_tls_server(&pki);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s.write_all(format!("GET {DOC_PATH} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plaintext answered on the TLS port: {}",
        String::from_utf8_lossy(&got)
    );
    // The server is still fine for a TLS client afterwards.
    let mut tls = connect(&pki, port);
    let mut buf = Vec::new();
    write!(
        tls,
        "GET /xcap-root/xcap-caps/global/index HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    tls.flush().unwrap();
    let (status, _) = read_response(&mut tls, &mut buf);
    assert_eq!(status, 200);
}

/// A key that does not match the certificate stops herald at start with a message naming
/// the problem (never a server that fails every handshake).
#[test]
fn mismatched_key_refused_at_start() {
    let pki = Pki::new();
    let other = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["--shards", "1", "--no-pin", "--admin-listen", "off"])
            .args([
                "--listen",
                &format!("127.0.0.1:{}", common::free_port_udp_tcp()),
            ])
            .args(["--xcap-listen", &format!("127.0.0.1:{}", free_tcp_port())])
            .arg("--tls-cert")
            .arg(pki.cert())
            .arg("--tls-key")
            .arg(other.key())
            .arg("--data-dir")
            .arg(data.path()),
    );
    let (status, stderr) = out.expect("herald kept running with a mismatched TLS key");
    assert!(!status.success());
    assert!(stderr.contains("TLS"), "{stderr}");
}

/// Runs `cmd` for at most 20 s: Some((status, stderr)) if it exited, None if it was killed.
fn run_bounded(cmd: &mut Command) -> Option<(std::process::ExitStatus, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status, err));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
