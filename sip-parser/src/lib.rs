//! Zero-copy SIP (RFC 3261) parser and writer for herald, modelled on httparse.
//!
//! `parse` indexes a message into caller-provided header slots, borrowing every slice from
//! the receive buffer; typed accessors on [`Message`] parse individual header values lazily.
//! Nothing on the parse path allocates; [`Aor`] (the presentity key) is the one owned type.
//! Writers ([`ResponseWriter`], [`RequestWriter`]) fill a reused `Vec<u8>`.
//!
//! ```
//! use sip_parser::{parse, Framing, Header, HeaderKind, Limits, Status};
//! let msg = b"SUBSCRIBE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
//!             f: <sip:alice@example.com>;tag=a\r\nt: <sip:bob@example.com>\r\ni: c1\r\n\
//!             CSeq: 1 SUBSCRIBE\r\no: presence\r\nl: 0\r\n\r\n";
//! let mut slots = [Header::EMPTY; 32];
//! let Status::Complete(m) = parse(msg, &mut slots, Framing::Datagram, &Limits::default()).unwrap() else {
//!     unreachable!()
//! };
//! assert_eq!(m.event().unwrap().unwrap().package, b"presence");
//! assert_eq!(m.from().unwrap().tag(), Some(&b"a"[..]));
//! ```
//!
//! # Refinements of the contract in `notes/PARSER_API.md`
//! - `HeaderKind` also has `ContentEncoding`, `Subject`, `ReferTo`, `ReferredBy`,
//!   `SessionExpires`, `Identity` so every compact form maps to a kind.
//! - `Message::header(kind)` is `values(kind).next()`: for list headers it is the first
//!   comma-separated element. `values`/`require`/`supported`/... return the named iterator
//!   `Values`; typed list accessors return `Typed<'h, 'b, T>` (an `Iterator` struct, no
//!   longer an alias of `Map<Values, fn>`: it parses each element in place and falls back to
//!   split-then-parse, with identical results and errors).
//! - `header_named`/`values_named` look headers up by name; `reason()`, `allow()`,
//!   `unsupported()`, `proxy_require()` were added.
//! - Single-valued headers (From, To, Call-ID, CSeq, Max-Forwards, Expires, Min-Expires, Event,
//!   Content-Type, Content-Length, Subscription-State) repeated with different values give
//!   `FieldError::Duplicate`.
//! - Max-Forwards above 255 and any number above `u32::MAX` are `Malformed`.
//! - `NameAddr::display_name` is the inside of the quotes (escapes kept) or the bare tokens.
//! - `Contact: *` is a `Contact` whose `addr.uri == b"*"` (`Contact::is_star`).
//! - `Event` has an extra field `full` (`presence.winfo`), returned by `full_name()`.
//! - `MediaType::accepts` honours Accept wildcards.
//! - tel URIs: the number is in `Uri::user`, `host` is empty.
//! - Writers CLEAR the output buffer first; `RequestWriter::cseq` writes `CSeq: n METHOD`.
//! - `ParseError::status_code()` gives the response to send (400, 505 or 513);
//!   `ParseError::Empty` is a CRLF keep-alive datagram: drop it silently.
//! - Framing::Stream returns `Partial` while only CRLF keep-alives are buffered; `len`
//!   counts those leading CRLFs.
// One audited exception: the SSE2 line-end scan in `line_ends.rs`.
#![deny(unsafe_code)]

mod accessors;
mod aor;
mod error;
mod event;
mod header;
mod lex;
mod limits;
mod line_ends;
mod media_type;
mod message;
mod method;
mod name_addr;
mod params;
mod substate;
mod uri;
mod values;
mod via;
mod writer;

pub use accessors::{CSeq, Typed};
pub use aor::Aor;
pub use error::{FieldError, ParseError, UriError};
pub use event::Event;
pub use header::{Header, HeaderKind};
pub use limits::{Limits, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_MESSAGE_LEN};
pub use media_type::MediaType;
pub use message::{parse, parse_head, Framing, Message, StartLine, Status};
pub use method::Method;
pub use name_addr::{Contact, NameAddr};
pub use params::{param, Params};
pub use substate::{SubState, SubscriptionState};
pub use uri::{Scheme, Uri};
pub use values::{CommaSplit, Values};
pub use via::{ip_of, Via, MAGIC_COOKIE};
pub use writer::{push_u32, reason_phrase, RequestWriter, ResponseWriter};
