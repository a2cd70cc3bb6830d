//! Iterating header values: every header of one kind, split at top-level commas when the
//! grammar makes it a list (RFC 3261 §7.3.1). Commas inside quoted strings and `<...>` are
//! not separators, so `"Doe, John" <sip:a@b>, <sip:c@d>` is two values.

use crate::header::{Header, HeaderKind};
use crate::lex;

/// Splits a list header value at top-level commas, yielding trimmed non-empty elements.
#[derive(Clone, Debug)]
pub struct CommaSplit<'b> {
    rest: &'b [u8],
}

impl<'b> CommaSplit<'b> {
    pub fn new(value: &'b [u8]) -> Self {
        CommaSplit { rest: value }
    }
}

impl<'b> Iterator for CommaSplit<'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        while !self.rest.is_empty() {
            let (item, rest) = match lex::find_unquoted(self.rest, b',', true) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let item = lex::trim(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    }
}

/// All values of one header kind, in message order. See [`crate::Message::values`].
#[derive(Clone, Debug)]
pub struct Values<'h, 'b> {
    headers: core::slice::Iter<'h, Header<'b>>,
    kind: HeaderKind,
    name: Option<&'h [u8]>,
    split: Option<CommaSplit<'b>>,
}

impl<'h, 'b> Values<'h, 'b> {
    pub(crate) fn new(headers: &'h [Header<'b>], kind: HeaderKind) -> Self {
        Values {
            headers: headers.iter(),
            kind,
            name: None,
            split: None,
        }
    }

    /// Values of headers called `name` (case-insensitive); used for `HeaderKind::Other`.
    pub(crate) fn named(headers: &'h [Header<'b>], name: &'h [u8]) -> Self {
        let kind = HeaderKind::from_name(name);
        Values {
            headers: headers.iter(),
            kind,
            name: (kind == HeaderKind::Other).then_some(name),
            split: None,
        }
    }
}

impl<'b> Iterator for Values<'_, 'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        loop {
            if let Some(split) = self.split.as_mut() {
                if let Some(v) = split.next() {
                    return Some(v);
                }
                self.split = None;
            }
            let h = self.headers.next()?;
            if h.kind != self.kind {
                continue;
            }
            if let Some(name) = self.name {
                if !h.name.eq_ignore_ascii_case(name) {
                    continue;
                }
            }
            if self.kind.is_list() {
                self.split = Some(CommaSplit::new(h.value));
            } else {
                return Some(h.value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_respecting_quotes_and_angles() {
        let v: Vec<&[u8]> =
            CommaSplit::new(b"\"Doe, John\" <sip:a@b;x=1,2>;q=0.5 ,, <sip:c@d> ,").collect();
        assert_eq!(
            v,
            vec![
                &b"\"Doe, John\" <sip:a@b;x=1,2>;q=0.5"[..],
                &b"<sip:c@d>"[..]
            ]
        );
    }
}
