//! Strong entity tags and the If-Match / If-None-Match preconditions (RFC 4825 §7.11, §8.5;
//! RFC 9110 §13.1).

use std::fmt;

/// A strong entity tag, stored without quotes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ETag(pub String);

impl ETag {
    /// The header value: the tag in double quotes.
    pub fn header_value(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// Issues a fresh tag for every successful write, even when the bytes are unchanged:
/// `prefix` tells shards/boots apart, the counter orders writes within one.
#[derive(Debug, Clone)]
pub struct ETagGenerator {
    prefix: String,
    next: u64,
}

impl ETagGenerator {
    /// `prefix` must be unique per generator (e.g. shard id and boot time in hex).
    pub fn new(prefix: impl Into<String>) -> Self {
        ETagGenerator {
            prefix: prefix.into(),
            next: 1,
        }
    }

    pub fn issue(&mut self) -> ETag {
        let n = self.next;
        self.next += 1;
        ETag(format!("{}-{:x}", self.prefix, n))
    }
}

/// Outcome of evaluating the conditional headers against the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    Proceed,
    /// 304 (GET/HEAD with a matching If-None-Match).
    NotModified,
    /// 412.
    Failed,
}

/// One entity-tag list element: `*`, or a tag (quotes and `W/` tolerated).
fn list_items(value: &str) -> impl Iterator<Item = (bool, &str)> {
    value.split(',').filter_map(|raw| {
        let t = raw.trim();
        if t.is_empty() {
            return None;
        }
        let (weak, t) = match t.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let t = t
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(t);
        Some((weak, t))
    })
}

/// Evaluates preconditions. `current` is the document's tag (`None` if absent); `safe` is
/// true for GET/HEAD. Runs before any write.
pub fn evaluate(
    if_match: Option<&str>,
    if_none_match: Option<&str>,
    current: Option<&ETag>,
    safe: bool,
) -> Precondition {
    if let Some(v) = if_match {
        let ok = match current {
            None => false,
            Some(cur) => list_items(v).any(|(weak, t)| t == "*" || (!weak && t == cur.0)),
        };
        if !ok {
            return Precondition::Failed;
        }
    }
    if let Some(v) = if_none_match {
        let matched = match current {
            None => false,
            // Weak comparison for If-None-Match.
            Some(cur) => list_items(v).any(|(_, t)| t == "*" || t == cur.0),
        };
        if matched {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    }
    Precondition::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions() {
        let t = ETag("abc".into());
        use Precondition::*;
        assert_eq!(evaluate(Some("\"abc\""), None, Some(&t), false), Proceed);
        assert_eq!(evaluate(Some("abc"), None, Some(&t), false), Proceed);
        assert_eq!(
            evaluate(Some("\"x\", \"abc\""), None, Some(&t), false),
            Proceed
        );
        assert_eq!(evaluate(Some("W/\"abc\""), None, Some(&t), false), Failed);
        assert_eq!(evaluate(Some("\"x\""), None, Some(&t), false), Failed);
        assert_eq!(evaluate(Some("*"), None, None, false), Failed);
        assert_eq!(evaluate(Some("*"), None, Some(&t), false), Proceed);
        assert_eq!(evaluate(None, Some("*"), None, false), Proceed);
        assert_eq!(evaluate(None, Some("*"), Some(&t), false), Failed);
        assert_eq!(evaluate(None, Some("\"abc\""), Some(&t), true), NotModified);
        assert_eq!(evaluate(None, Some("abc"), Some(&t), true), NotModified);
        assert_eq!(evaluate(None, Some("\"zz\""), Some(&t), true), Proceed);
    }

    #[test]
    fn generator_is_fresh() {
        let mut g = ETagGenerator::new("s0");
        assert_ne!(g.issue(), g.issue());
    }
}
