//! Error types: small `Copy` enums so the hot path never allocates to report bad input,
//! with `Display` texts that name what was wrong (usable as a SIP reason phrase or log line).

use core::fmt;

use crate::header::HeaderKind;

/// Why a message could not be framed or its start line / header section read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseError {
    /// Only CRLF (keep-alive) or nothing at all in a datagram.
    Empty,
    /// Message (or header section) longer than `Limits::max_message_len`.
    TooLarge,
    /// More header fields than `Limits::max_headers` or than the caller's slots.
    TooManyHeaders,
    /// One header longer than `Limits::max_header_len`.
    HeaderTooLong,
    /// Start line is neither a request line nor a status line.
    InvalidStartLine,
    /// Request method is not a token.
    InvalidMethod,
    /// Request-URI empty or containing whitespace / control characters.
    InvalidRequestUri,
    /// `SIP/x.y` other than `SIP/2.0` (answer 505).
    VersionNotSupported,
    /// Status code not three digits 100..=699.
    InvalidStatusCode,
    /// Header name empty or not a token.
    InvalidHeaderName,
    /// Header line without a colon, or continuation line before any header.
    InvalidHeaderLine,
    /// Stream framing requires Content-Length.
    MissingContentLength,
    /// Content-Length not a number, or several disagreeing ones.
    InvalidContentLength,
    /// Datagram carries fewer body bytes than Content-Length says.
    BodyTooShort,
    /// Datagram ends before the empty line closing the header section.
    UnterminatedHeaders,
}

impl ParseError {
    /// The SIP status a server should answer with, when it answers at all.
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::VersionNotSupported => 505,
            ParseError::TooLarge | ParseError::HeaderTooLong | ParseError::TooManyHeaders => 513,
            _ => 400,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Empty => "empty message",
            ParseError::TooLarge => "message too large",
            ParseError::TooManyHeaders => "too many header fields",
            ParseError::HeaderTooLong => "header field too long",
            ParseError::InvalidStartLine => "invalid start line",
            ParseError::InvalidMethod => "invalid method",
            ParseError::InvalidRequestUri => "invalid Request-URI",
            ParseError::VersionNotSupported => "SIP version not supported",
            ParseError::InvalidStatusCode => "invalid status code",
            ParseError::InvalidHeaderName => "invalid header name",
            ParseError::InvalidHeaderLine => "invalid header line",
            ParseError::MissingContentLength => "missing Content-Length",
            ParseError::InvalidContentLength => "invalid Content-Length",
            ParseError::BodyTooShort => "body shorter than Content-Length",
            ParseError::UnterminatedHeaders => "header section not terminated",
        })
    }
}

impl std::error::Error for ParseError {}

/// A typed accessor found its header absent (where required), malformed or duplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldError {
    /// Mandatory header absent.
    Missing(HeaderKind),
    /// Header present but its value does not follow the grammar.
    Malformed(HeaderKind),
    /// Single-valued header present more than once (RFC 4475 §3.3 `multi01`: answer 400).
    Duplicate(HeaderKind),
    /// Header disagrees with the start line (CSeq method ≠ request method, RFC 4475 `mismatch01`).
    Mismatch(HeaderKind),
}

impl FieldError {
    /// Which header the error is about.
    pub fn kind(&self) -> HeaderKind {
        match *self {
            FieldError::Missing(k)
            | FieldError::Malformed(k)
            | FieldError::Duplicate(k)
            | FieldError::Mismatch(k) => k,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Missing(k) => write!(f, "missing {} header", k),
            FieldError::Malformed(k) => write!(f, "malformed {} header", k),
            FieldError::Duplicate(k) => write!(f, "duplicate {} header", k),
            FieldError::Mismatch(k) => write!(f, "{} header does not match the start line", k),
        }
    }
}

impl std::error::Error for FieldError {}

/// Why a URI (or an AoR built from it) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UriError {
    /// Nothing to parse.
    Empty,
    /// Scheme other than `sip`, `sips` or `tel`, or no scheme at all.
    UnsupportedScheme,
    /// User or password part with characters outside the grammar.
    InvalidUser,
    /// Host missing or with characters outside the grammar.
    InvalidHost,
    /// Port not a number in 0..=65535.
    InvalidPort,
    /// Parameters or headers section malformed.
    InvalidParams,
    /// Telephone number missing or malformed.
    InvalidNumber,
    /// `?headers` in a Request-URI (RFC 3261 §19.1.1; RFC 4475 `escruri`).
    HeadersNotAllowed,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::Empty => "empty URI",
            UriError::UnsupportedScheme => "unsupported URI scheme",
            UriError::InvalidUser => "invalid URI user part",
            UriError::InvalidHost => "invalid URI host",
            UriError::InvalidPort => "invalid URI port",
            UriError::InvalidParams => "invalid URI parameters",
            UriError::InvalidNumber => "invalid telephone number",
            UriError::HeadersNotAllowed => "headers not allowed in Request-URI",
        })
    }
}

impl std::error::Error for UriError {}
