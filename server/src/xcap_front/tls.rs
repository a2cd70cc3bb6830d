//! TLS for the XCAP front (`--tls-cert` / `--tls-key`, an `https://` XCAP root).
//!
//! Why futures-rustls rather than our own record-layer state machine: glommio's `TcpStream`
//! implements the futures-io `AsyncRead`/`AsyncWrite` traits (the ones futures-lite
//! re-exports), which is exactly what futures-rustls wraps. Its `TlsStream` drives
//! `rustls::ServerConnection` (handshake, buffered records, `close_notify` on close) and is
//! itself futures-io `AsyncRead + AsyncWrite`, so the plain-TCP connection loop serves it
//! unchanged. The crate is small, maintained alongside rustls' own tokio-rustls, and has no
//! runtime of its own: nothing here leaves the accepting shard.
//!
//! Provider: `ring` (builds with a C compiler only; aws-lc-rs would need cmake/nasm here).
//! The provider is passed explicitly, so a second provider feature enabled elsewhere in the
//! dependency graph cannot make config building panic.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// A server-side TLS connection over `S` (a glommio `TcpStream` in the binary).
///
/// `get_ref().0` reaches the TCP stream (peer address, timeouts); `get_ref().1` the rustls
/// connection (negotiated ALPN, SNI, protocol version).
pub type TlsStream<S> = futures_rustls::server::TlsStream<S>;

/// Longest time a client may take to finish the TLS handshake; a peer that connects and
/// stays silent must not hold a connection slot for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificate or key could not be turned into a server configuration.
#[derive(Debug)]
pub enum TlsError {
    /// The certificate file could not be read or holds malformed PEM.
    Cert { path: PathBuf, source: pem::Error },
    /// The certificate file holds no `CERTIFICATE` section.
    NoCertificate { path: PathBuf },
    /// The key file could not be read or holds malformed PEM, or no private key at all
    /// (PKCS#8, PKCS#1 RSA or SEC1 EC are accepted).
    Key { path: PathBuf, source: pem::Error },
    /// rustls refused the pair: unsupported key type, or the key does not match the first
    /// certificate of the chain.
    Rejected(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Cert { path, source } => {
                write!(f, "TLS certificate {}: {source}", path.display())
            }
            TlsError::NoCertificate { path } => write!(
                f,
                "TLS certificate {}: no PEM CERTIFICATE section found",
                path.display()
            ),
            TlsError::Key {
                path,
                source: pem::Error::NoItemsFound,
            } => write!(
                f,
                "TLS key {}: no PEM private key found (PKCS#8, RSA or EC)",
                path.display()
            ),
            TlsError::Key { path, source } => write!(f, "TLS key {}: {source}", path.display()),
            TlsError::Rejected(e) => write!(f, "TLS certificate/key rejected: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Cert { source, .. } | TlsError::Key { source, .. } => Some(source),
            TlsError::Rejected(e) => Some(e),
            TlsError::NoCertificate { .. } => None,
        }
    }
}

/// Reads a PEM certificate chain (leaf first) and its private key into a server config
/// shared by every shard. Called once at start-up, so errors are fatal there and name
/// the file.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |source| TlsError::Cert {
        path: cert.to_path_buf(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    server_config(chain, key_der).map_err(TlsError::Rejected)
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // XCAP is HTTP/1.1 only; advertising it lets ALPN-speaking clients settle at once.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Session tickets: softphones reconnect often; resumption skips the signature.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(cfg))
}

/// Runs the server side of the handshake on an accepted stream, bounded by
/// [`HANDSHAKE_TIMEOUT`]. Must run on a glommio executor (the timeout is a glommio timer).
pub async fn accept<S>(cfg: Arc<ServerConfig>, stream: S) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = futures_rustls::TlsAcceptor::from(cfg).accept(stream);
    futures_lite::future::or(handshake, async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use std::io::{Read, Write};

    fn self_signed() -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (ck.cert.pem(), ck.key_pair.serialize_pem())
    }

    fn write_pair(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    fn client_config(cert_pem: &str) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    #[test]
    fn load_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let missing = dir.path().join("nope.pem");
        let e = load_server_config(&missing, &missing).unwrap_err();
        assert!(matches!(e, TlsError::Cert { .. }), "{e}");
        assert!(e.to_string().contains("nope.pem"), "{e}");

        // A key file given as the certificate: no CERTIFICATE section.
        let (c, k) = write_pair(dir.path(), &key, &key);
        let e = load_server_config(&c, &k).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");

        // A certificate given as the key: no private key.
        let (c, k) = write_pair(dir.path(), &cert, &cert);
        let e = load_server_config(&c, &k).unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e}");
        assert!(e.to_string().contains("no PEM private key"), "{e}");

        // A key that does not belong to the certificate.
        let (_, other_key) = self_signed();
        let (c, k) = write_pair(dir.path(), &cert, &other_key);
        let e = load_server_config(&c, &k).unwrap_err();
        assert!(matches!(e, TlsError::Rejected(_)), "{e}");

        let (c, k) = write_pair(dir.path(), &cert, &key);
        let cfg = load_server_config(&c, &k).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    /// A glommio listener wraps accepted streams in TLS; a rustls client on a std thread
    /// completes the handshake and exchanges two keep-alive HTTP requests.
    #[test]
    fn https_exchange_over_glommio_tcp() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let (c, k) = write_pair(dir.path(), &cert, &key);
        let server_cfg = load_server_config(&c, &k).unwrap();

        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .io_memory(1 << 20)
                .make()
                .unwrap();
            ex.run(async move {
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let tcp = listener.accept().await.unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut tls = accept(server_cfg, tcp).await.unwrap();
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut served = 0;
                while served < 2 {
                    let n = tls.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "client closed early");
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8(buf.drain(..end + 4).collect()).unwrap();
                        assert!(head.starts_with("GET /xcap-root/"), "{head}");
                        let body = b"<ok/>";
                        let resp =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        tls.write_all(resp.as_bytes()).await.unwrap();
                        tls.write_all(body).await.unwrap();
                        tls.flush().await.unwrap();
                        served += 1;
                    }
                }
                tls.close().await.unwrap();
            });
        });

        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let conn =
            rustls::ClientConnection::new(client_config(&cert), "localhost".try_into().unwrap())
                .unwrap();
        let sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut got = Vec::new();
        for i in 0..2 {
            write!(
                tls,
                "GET /xcap-root/test-app/users/sip:a@example.com/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n"
            )
            .unwrap();
            tls.flush().unwrap();
            let want = (i + 1) * "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n<ok/>".len();
            let mut chunk = [0u8; 4096];
            while got.len() < want {
                let n = tls.read(&mut chunk).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
            }
        }
        // The server closes with close_notify: a clean end of stream, not a truncation.
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        let got = String::from_utf8(got).unwrap();
        assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 2, "{got}");
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        server.join().unwrap();
    }
}
