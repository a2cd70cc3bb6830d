//! Bounds on what the parser accepts.
//!
//! Every bound is a named constant so a hostile peer can never make the parser (or the code
//! that stores what it returns) use unbounded memory or time; the server exposes them as flags.

/// Largest message accepted: the maximum UDP payload, also used for stream framing.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 65_535;
/// Most header lines accepted (folded continuation lines count with their header).
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// Longest single header (name, value and folded continuations) accepted.
pub const DEFAULT_MAX_HEADER_LEN: usize = 8_192;

/// Configurable parser bounds; see the `DEFAULT_*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes from the start of the buffer to the end of the body.
    pub max_message_len: usize,
    /// Header fields (not counting continuation lines).
    pub max_headers: usize,
    /// Bytes of one header field including folded continuation lines.
    pub max_header_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
        }
    }
}
