//! media-type (RFC 3261 §20.15, §20.1): Content-Type and Accept values, so the server can
//! check a PUBLISH body is `application/pidf+xml` and a watcher accepts what it will NOTIFY.

use crate::lex;
use crate::params;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaType<'b> {
    pub type_: &'b [u8],
    pub subtype: &'b [u8],
    /// Raw parameters starting at the first `;`.
    pub params: &'b [u8],
}

impl<'b> MediaType<'b> {
    pub fn parse(s: &'b [u8]) -> Option<MediaType<'b>> {
        let s = lex::trim(s);
        let (type_, rest) = lex::take_while(s, lex::is_token);
        let rest = lex::trim_start(rest);
        let rest = rest.strip_prefix(b"/")?;
        let (subtype, rest) = lex::take_while(lex::trim_start(rest), lex::is_token);
        let params = lex::trim_start(rest);
        if type_.is_empty() || subtype.is_empty() || !params::validate(params) {
            return None;
        }
        Some(MediaType {
            type_,
            subtype,
            params,
        })
    }

    /// As [`parse`](Self::parse) on the media type at the start of `s`, stopping after its
    /// parameters; returns where it ends (see `Typed`).
    pub(crate) fn parse_prefix(s: &'b [u8]) -> Option<(MediaType<'b>, usize)> {
        let (type_, rest) = lex::split_token_long(s);
        let rest = lex::trim_start(rest);
        let rest = rest.strip_prefix(b"/")?;
        let (subtype, rest) = lex::split_token_long(lex::trim_start(rest));
        let rest = lex::trim_start(rest);
        if type_.is_empty() || subtype.is_empty() {
            return None;
        }
        let ([], end) = params::validate_find_prefix(rest, [])?;
        let m = MediaType {
            type_,
            subtype,
            params: rest.get(..end)?,
        };
        Some((m, s.len() - rest.len() + end))
    }

    /// Exact case-insensitive match against `type/subtype` (parameters ignored).
    pub fn matches(&self, type_subtype: &[u8]) -> bool {
        match lex::find1(b'/', type_subtype) {
            Some(slash) => {
                lex::eq_ignore_case(self.type_, &type_subtype[..slash])
                    && lex::eq_ignore_case(self.subtype, &type_subtype[slash + 1..])
            }
            None => false,
        }
    }

    /// As [`matches`](Self::matches) but honouring Accept wildcards (`*/*`, `application/*`).
    pub fn accepts(&self, type_subtype: &[u8]) -> bool {
        let Some(slash) = lex::find1(b'/', type_subtype) else {
            return false;
        };
        let (t, st) = (&type_subtype[..slash], &type_subtype[slash + 1..]);
        (self.type_ == b"*" || self.type_.eq_ignore_ascii_case(t))
            && (self.subtype == b"*" || self.subtype.eq_ignore_ascii_case(st))
    }

    pub fn param(&self, name: &[u8]) -> Option<Option<&'b [u8]>> {
        params::param(self.params, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let m = MediaType::parse(b"Application/PIDF+XML ; charset=\"utf-8\"").unwrap();
        assert!(m.matches(b"application/pidf+xml"));
        assert!(!m.matches(b"application/xpidf+xml"));
        assert_eq!(m.param(b"charset"), Some(Some(&b"utf-8"[..])));
        let w = MediaType::parse(b"application/*").unwrap();
        assert!(w.accepts(b"application/pidf+xml"));
        assert!(!w.accepts(b"text/plain"));
        assert!(MediaType::parse(b"*/*").unwrap().accepts(b"text/plain"));
        assert!(MediaType::parse(b"application").is_none());
        assert!(MediaType::parse(b"application/").is_none());
        assert!(MediaType::parse(b"a/b c").is_none());
    }
}
