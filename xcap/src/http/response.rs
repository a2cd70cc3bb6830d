//! Response serialisation into a caller-owned, reused buffer.

use super::Version;

/// Standard reason phrase for the statuses XCAP uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The interim response for `Expect: 100-continue`.
pub fn write_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// Appends one response. `Content-Length` and `Connection` are written here, so `headers`
/// must not contain them. With `head_only` (a HEAD request) the body is counted but not sent.
/// A header value never spans lines: a CR or LF in one (which only a bug upstream lets
/// through: values come from request bytes, stored tags and realms) is written as a space,
/// so it cannot split the response or add a header.
pub fn write_response(
    out: &mut Vec<u8>,
    version: Version,
    status: u16,
    headers: &[(&str, &[u8])],
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) {
    out.extend_from_slice(version.as_str().as_bytes());
    out.push(b' ');
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        debug_assert!(!name.eq_ignore_ascii_case("content-length"));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let at = out.len();
        out.extend_from_slice(value);
        for b in &mut out[at..] {
            if matches!(*b, b'\r' | b'\n') {
                *b = b' ';
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    push_u64(out, body.len() as u64);
    out.extend_from_slice(b"\r\n");
    match (keep_alive, version) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, Version::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_response() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            Version::Http11,
            200,
            &[("ETag", b"\"x\"")],
            b"body",
            true,
            false,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 4\r\n\r\nbody".to_vec()
        );
        out.clear();
        write_response(&mut out, Version::Http10, 404, &[], b"", false, false);
        assert_eq!(
            out,
            b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        );
        out.clear();
        let split = [("ETag", &b"\"x\"\r\nX-Injected: 1"[..])];
        write_response(&mut out, Version::Http11, 200, &split, b"", true, false);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nETag: \"x\"  X-Injected: 1\r\nContent-Length: 0\r\n\r\n".to_vec()
        );
    }
}
