//! Event header (RFC 6665 §8.2.1, RFC 3265): which package a SUBSCRIBE/NOTIFY/PUBLISH is
//! about. Templates (`presence.winfo`, RFC 3857) select a different state set of the same
//! package, and `id` distinguishes several subscriptions in one dialog.

use crate::lex;
use crate::params;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'b> {
    /// Package name before the first `.`, e.g. `presence`.
    pub package: &'b [u8],
    /// Everything after the first `.`, e.g. `winfo`.
    pub template: Option<&'b [u8]>,
    pub id: Option<&'b [u8]>,
    /// Raw parameters starting at the first `;` (e.g. `;sla` for `dialog;sla`).
    pub params: &'b [u8],
    /// Package and template as written (`presence.winfo`); see [`Event::full_name`].
    pub full: &'b [u8],
}

impl<'b> Event<'b> {
    pub fn parse(s: &'b [u8]) -> Option<Event<'b>> {
        let s = lex::trim(s);
        // Eight bytes per step: package names (`presence`, `presence.winfo`, `dialog`,
        // `message-summary`) are mostly that long or longer.
        let (full, rest) = lex::split_token_long(s);
        if full.is_empty() || full.starts_with(b".") || full.ends_with(b".") {
            return None;
        }
        let params = lex::trim_start(rest);
        // Usually there are none (`Event: presence`): skip the parameter pass.
        let [id] = if params.is_empty() {
            [None]
        } else {
            params::validate_find(params, [b"id"])?
        };
        let (package, template) = match lex::find1(b'.', full) {
            Some(dot) => (&full[..dot], Some(&full[dot + 1..])),
            None => (full, None),
        };
        let id = match id {
            None => None,
            Some(v) => Some(v?),
        };
        Some(Event {
            package,
            template,
            id,
            params,
            full,
        })
    }

    /// `presence.winfo`: the event type as written.
    pub fn full_name(&self) -> &'b [u8] {
        self.full
    }

    /// Flag or valued parameter present (name case-insensitive).
    pub fn has_param(&self, name: &[u8]) -> bool {
        params::param(self.params, name).is_some()
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
        let e = Event::parse(b"presence").unwrap();
        assert_eq!(
            (e.package, e.template, e.id),
            (&b"presence"[..], None, None)
        );
        let e = Event::parse(b"presence.winfo ; id=7").unwrap();
        assert_eq!(e.package, b"presence");
        assert_eq!(e.template, Some(&b"winfo"[..]));
        assert_eq!(e.full_name(), b"presence.winfo");
        assert_eq!(e.id, Some(&b"7"[..]));
        let e = Event::parse(b"dialog;sla;include-session-description").unwrap();
        assert!(e.has_param(b"SLA"));
        assert!(!e.has_param(b"x"));
        assert!(Event::parse(b"").is_none());
        assert!(Event::parse(b"pres ence").is_none());
        assert!(Event::parse(b"presence;id").is_none());
        assert!(Event::parse(b".x").is_none());
    }
}
