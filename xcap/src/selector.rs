//! Node selectors (RFC 4825 §6.3): the XPath subset that addresses one element, attribute or
//! the namespace bindings of an element inside an XCAP document.
//!
//! ```text
//! node-selector   = element-selector ["/" terminal-selector]
//! element-selector= step *( "/" step)
//! step            = by-name / by-pos / by-attr / by-pos-attr
//! by-name = NameorAny; by-pos = NameorAny "[" position "]"
//! by-attr = NameorAny "[" attr-test "]"; by-pos-attr = NameorAny "[" position "]" "[" attr-test "]"
//! attr-test = "@" att-name "=" AttValue
//! terminal-selector = "@" att-name / "namespace::*"
//! ```

use std::fmt;

/// Most steps accepted in one selector (documents are shallow; this bounds the work).
pub const MAX_STEPS: usize = 64;
/// Longest selector accepted, in bytes after percent-decoding.
pub const MAX_SELECTOR_LEN: usize = 4096;

/// A possibly prefixed XML name as written in the selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QName {
    pub prefix: Option<String>,
    pub local: String,
}

impl fmt::Display for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.prefix {
            Some(p) => write!(f, "{p}:{}", self.local),
            None => f.write_str(&self.local),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTest {
    /// `*`: any element.
    Any,
    Name(QName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrTest {
    pub name: QName,
    /// The value with XML references already expanded.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: NameTest,
    /// 1-based position among the siblings passing the name test.
    pub position: Option<usize>,
    pub attr: Option<AttrTest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    /// `@name`: an attribute of the selected element.
    Attribute(QName),
    /// `namespace::*`: the namespace bindings in scope on the selected element.
    Namespaces,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelector {
    pub steps: Vec<Step>,
    pub terminal: Option<Terminal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub &'static str);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid node selector: {}", self.0)
    }
}

impl std::error::Error for SelectorError {}

impl NodeSelector {
    /// Parses a percent-decoded selector; a leading `/` is optional (clients differ).
    pub fn parse(s: &str) -> Result<NodeSelector, SelectorError> {
        if s.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError("too long"));
        }
        let s = s.strip_prefix('/').unwrap_or(s);
        if s.is_empty() {
            return Err(SelectorError("empty"));
        }
        let parts = split_steps(s)?;
        if parts.len() > MAX_STEPS {
            return Err(SelectorError("too many steps"));
        }
        let mut steps = Vec::with_capacity(parts.len());
        let mut terminal = None;
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            if i == last && i > 0 {
                if let Some(att) = part.strip_prefix('@') {
                    terminal = Some(Terminal::Attribute(parse_qname(att)?));
                    break;
                }
                if *part == "namespace::*" {
                    terminal = Some(Terminal::Namespaces);
                    break;
                }
            }
            steps.push(parse_step(part)?);
        }
        if steps.is_empty() {
            return Err(SelectorError("no element step"));
        }
        Ok(NodeSelector { steps, terminal })
    }

    /// The selector as text (canonical form, used for `<ancestor>` and `field=`).
    pub fn render_steps(steps: &[Step]) -> String {
        let mut out = String::new();
        for st in steps {
            out.push('/');
            match &st.name {
                NameTest::Any => out.push('*'),
                NameTest::Name(q) => out.push_str(&q.to_string()),
            }
            if let Some(p) = st.position {
                out.push_str(&format!("[{p}]"));
            }
            if let Some(a) = &st.attr {
                out.push_str(&format!("[@{}=\"{}\"]", a.name, escape_attr(&a.value)));
            }
        }
        out
    }
}

fn escape_attr(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// Splits on `/` outside quotes and brackets.
fn split_steps(s: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote: Option<u8> = None;
    let mut depth = 0usize;
    for (i, c) in s.bytes().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' if depth > 0 => quote = Some(c),
                b'[' => depth += 1,
                b']' => depth = depth.checked_sub(1).ok_or(SelectorError("unbalanced ]"))?,
                b'/' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    if quote.is_some() || depth != 0 {
        return Err(SelectorError("unterminated predicate"));
    }
    parts.push(&s[start..]);
    if parts.iter().any(|p| p.is_empty()) {
        return Err(SelectorError("empty step"));
    }
    Ok(parts)
}

fn parse_step(part: &str) -> Result<Step, SelectorError> {
    let name_end = part.find('[').unwrap_or(part.len());
    let name = match &part[..name_end] {
        "*" => NameTest::Any,
        n => NameTest::Name(parse_qname(n)?),
    };
    let mut rest = &part[name_end..];
    let mut preds = Vec::new();
    while !rest.is_empty() {
        let inner_start = rest
            .strip_prefix('[')
            .ok_or(SelectorError("text after predicate"))?;
        let close = find_close(inner_start)?;
        preds.push(&inner_start[..close]);
        rest = &inner_start[close + 1..];
    }
    let mut step = Step {
        name,
        position: None,
        attr: None,
    };
    match preds.as_slice() {
        [] => {}
        [p] if p.starts_with('@') => step.attr = Some(parse_attr_test(p)?),
        [p] => step.position = Some(parse_position(p)?),
        [p, a] if a.starts_with('@') => {
            step.position = Some(parse_position(p)?);
            step.attr = Some(parse_attr_test(a)?);
        }
        _ => return Err(SelectorError("unsupported predicate combination")),
    }
    Ok(step)
}

/// Index of the `]` closing a predicate, skipping quoted text.
fn find_close(s: &str) -> Result<usize, SelectorError> {
    let mut quote: Option<u8> = None;
    for (i, c) in s.bytes().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b']' => return Ok(i),
                b'[' => return Err(SelectorError("nested [")),
                _ => {}
            },
        }
    }
    Err(SelectorError("unterminated predicate"))
}

fn parse_position(p: &str) -> Result<usize, SelectorError> {
    if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SelectorError("position must be digits"));
    }
    p.parse().map_err(|_| SelectorError("bad position"))
}

fn parse_attr_test(p: &str) -> Result<AttrTest, SelectorError> {
    let p = &p[1..];
    let eq = p
        .find('=')
        .ok_or(SelectorError("attribute test without ="))?;
    let name = parse_qname(p[..eq].trim())?;
    let v = p[eq + 1..].trim();
    let bytes = v.as_bytes();
    if bytes.len() < 2
        || !(bytes[0] == b'"' || bytes[0] == b'\'')
        || bytes[bytes.len() - 1] != bytes[0]
    {
        return Err(SelectorError("attribute value must be quoted"));
    }
    let inner = &v[1..v.len() - 1];
    if inner.contains(v.as_bytes()[0] as char) || inner.contains('<') {
        return Err(SelectorError("bad attribute value"));
    }
    Ok(AttrTest {
        name,
        value: unescape(inner).ok_or(SelectorError("bad reference in attribute value"))?,
    })
}

fn parse_qname(n: &str) -> Result<QName, SelectorError> {
    match n.split_once(':') {
        Some((p, l)) if is_ncname(p) && is_ncname(l) => Ok(QName {
            prefix: Some(p.to_string()),
            local: l.to_string(),
        }),
        None if is_ncname(n) => Ok(QName {
            prefix: None,
            local: n.to_string(),
        }),
        _ => Err(SelectorError("invalid name")),
    }
}

/// XML NCName (ASCII rules plus any non-ASCII character, which is what documents use).
pub fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || !c.is_ascii() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') || !c.is_ascii())
}

/// Expands the five predefined entities and character references; `None` on a bad one.
pub fn unescape(s: &str) -> Option<String> {
    if !s.contains('&') {
        return Some(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let semi = after.find(';')?;
        let ent = &after[..semi];
        match ent {
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            _ => {
                let code = if let Some(h) = ent.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()?
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse().ok()?
                } else {
                    return None;
                };
                out.push(char::from_u32(code)?);
            }
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(l: &str) -> NameTest {
        NameTest::Name(QName {
            prefix: None,
            local: l.into(),
        })
    }

    #[test]
    fn steps_and_predicates() {
        let s = NodeSelector::parse(
            "/resource-lists/list[@name=\"friends\"]/entry[2]/*[3][@uri='sip:a@b/c']",
        )
        .unwrap();
        assert_eq!(s.steps.len(), 4);
        assert_eq!(s.steps[0].name, q("resource-lists"));
        assert_eq!(s.steps[1].attr.as_ref().unwrap().value, "friends");
        assert_eq!(s.steps[2].position, Some(2));
        assert_eq!(s.steps[3].name, NameTest::Any);
        assert_eq!(s.steps[3].position, Some(3));
        assert_eq!(s.steps[3].attr.as_ref().unwrap().value, "sip:a@b/c");
        assert_eq!(s.terminal, None);
    }

    #[test]
    fn terminals() {
        let s = NodeSelector::parse("/rl:resource-lists/rl:list/@name").unwrap();
        assert_eq!(
            s.terminal,
            Some(Terminal::Attribute(QName {
                prefix: None,
                local: "name".into()
            }))
        );
        assert_eq!(s.steps[0].name.clone(), {
            NameTest::Name(QName {
                prefix: Some("rl".into()),
                local: "resource-lists".into(),
            })
        });
        let s = NodeSelector::parse("resource-lists/namespace::*").unwrap();
        assert_eq!(s.terminal, Some(Terminal::Namespaces));
        assert_eq!(s.steps.len(), 1);
    }

    #[test]
    fn entities_in_values() {
        let s = NodeSelector::parse("/a/b[@x=\"&quot;q&amp;&#65;\"]").unwrap();
        assert_eq!(s.steps[1].attr.as_ref().unwrap().value, "\"q&A");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "/",
            "/a//b",
            "/a[",
            "/a[x]",
            "/a[@b=c]",
            "/a[@b=\"c]",
            "/a[1][2]",
            "/a[@b=\"1\"][2]",
            "/1a",
            "/@a",
            "/a/b]",
            "/a[-1]",
            "/a/namespace::x",
        ] {
            assert!(NodeSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
