//! XCAP error responses: the HTTP statuses and the RFC 4825 §11 `application/xcap-error+xml`
//! conflict report bodies.

use std::fmt;

pub const XCAP_ERROR_MIME: &str = "application/xcap-error+xml";
const XCAP_ERROR_NS: &str = "urn:ietf:params:xml:ns:xcap-error";

/// One `<exists>` of a uniqueness failure: where the clash is, and values that would not clash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exists {
    /// Node selector (relative to the document) of the non-unique element or attribute.
    pub field: String,
    pub alt_values: Vec<String>,
}

/// The §11 conditions reported with 409.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    NotWellFormed(String),
    NotXmlFrag,
    /// `ancestor` is the URI of the closest existing ancestor of the target.
    NoParent {
        ancestor: String,
    },
    SchemaValidation(String),
    NotXmlAttValue,
    CannotInsert,
    CannotDelete,
    Uniqueness(Vec<Exists>),
    ConstraintFailure(String),
    NotUtf8,
}

/// Every way a request can fail; each maps to one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XcapError {
    BadRequest(String),
    Forbidden,
    NotFound,
    /// 405; the value is the `Allow` header.
    MethodNotAllowed(&'static str),
    Conflict(Conflict),
    PreconditionFailed,
    UnsupportedMediaType,
    /// 415 for a body in a content coding other than `identity` (RFC 9110 §15.5.16); the
    /// response names the one herald reads in `Accept-Encoding`.
    UnsupportedContentEncoding,
    PayloadTooLarge,
    /// The store refused the write (I/O error, full map); 500/503 without leaking details.
    Storage(String),
}

impl XcapError {
    pub fn status(&self) -> u16 {
        match self {
            XcapError::BadRequest(_) => 400,
            XcapError::Forbidden => 403,
            XcapError::NotFound => 404,
            XcapError::MethodNotAllowed(_) => 405,
            XcapError::Conflict(_) => 409,
            XcapError::PreconditionFailed => 412,
            XcapError::PayloadTooLarge => 413,
            XcapError::UnsupportedMediaType | XcapError::UnsupportedContentEncoding => 415,
            XcapError::Storage(_) => 503,
        }
    }
}

impl From<Conflict> for XcapError {
    fn from(c: Conflict) -> Self {
        XcapError::Conflict(c)
    }
}

impl fmt::Display for XcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XcapError::BadRequest(s) => write!(f, "bad request: {s}"),
            XcapError::Forbidden => f.write_str("forbidden"),
            XcapError::NotFound => f.write_str("not found"),
            XcapError::MethodNotAllowed(a) => write!(f, "method not allowed (allow: {a})"),
            XcapError::Conflict(c) => write!(f, "conflict: {c:?}"),
            XcapError::PreconditionFailed => f.write_str("precondition failed"),
            XcapError::PayloadTooLarge => f.write_str("payload too large"),
            XcapError::UnsupportedMediaType => f.write_str("unsupported media type"),
            XcapError::UnsupportedContentEncoding => f.write_str("unsupported content coding"),
            XcapError::Storage(s) => write!(f, "storage error: {s}"),
        }
    }
}

impl std::error::Error for XcapError {}

/// XML-escapes text for element content and double-quoted attribute values. Characters
/// XML 1.0 forbids even escaped (C0 controls but TAB, LF, CR; U+FFFE; U+FFFF) become
/// U+FFFD: the text comes from requests (a parser's error phrase quotes the body, a
/// document name is percent-decoded) and the report must stay a document clients parse.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' => out.push(c),
            c if c >= '\u{10000}' => out.push(c),
            _ => out.push('\u{fffd}'),
        }
    }
    out
}

impl Conflict {
    /// The `application/xcap-error+xml` body.
    pub fn to_xml(&self) -> String {
        let inner = match self {
            Conflict::NotWellFormed(phrase) => phrased("not-well-formed", phrase),
            Conflict::NotXmlFrag => "<not-xml-frag/>".to_string(),
            Conflict::NoParent { ancestor } => format!(
                "<no-parent><ancestor>{}</ancestor></no-parent>",
                escape(ancestor)
            ),
            Conflict::SchemaValidation(phrase) => phrased("schema-validation-error", phrase),
            Conflict::NotXmlAttValue => "<not-xml-att-value/>".to_string(),
            Conflict::CannotInsert => "<cannot-insert/>".to_string(),
            Conflict::CannotDelete => "<cannot-delete/>".to_string(),
            Conflict::Uniqueness(exists) => {
                let mut s = String::from("<uniqueness-failure>");
                for e in exists {
                    s.push_str(&format!("<exists field=\"{}\"", escape(&e.field)));
                    if e.alt_values.is_empty() {
                        s.push_str("/>");
                    } else {
                        s.push('>');
                        for v in &e.alt_values {
                            s.push_str(&format!("<alt-value>{}</alt-value>", escape(v)));
                        }
                        s.push_str("</exists>");
                    }
                }
                s.push_str("</uniqueness-failure>");
                s
            }
            Conflict::ConstraintFailure(phrase) => phrased("constraint-failure", phrase),
            Conflict::NotUtf8 => "<not-utf-8/>".to_string(),
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xcap-error xmlns=\"{XCAP_ERROR_NS}\">{inner}</xcap-error>\n"
        )
    }
}

fn phrased(tag: &str, phrase: &str) -> String {
    if phrase.is_empty() {
        format!("<{tag}/>")
    } else {
        // Keep phrases short and single-line: they come from parser/validator messages.
        let p: String = phrase.chars().take(200).filter(|c| *c != '\n').collect();
        format!("<{tag} phrase=\"{}\"/>", escape(p.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert!(Conflict::CannotInsert.to_xml().contains("<cannot-insert/>"));
        let u = Conflict::Uniqueness(vec![Exists {
            field: "rls-services/service/@uri".into(),
            alt_values: vec!["sip:a1@b".into(), "sip:a2@b".into()],
        }])
        .to_xml();
        assert!(u.contains(
            "<uniqueness-failure><exists field=\"rls-services/service/@uri\"><alt-value>sip:a1@b</alt-value><alt-value>sip:a2@b</alt-value></exists></uniqueness-failure>"
        ));
        let n = Conflict::NoParent {
            ancestor: "http://h/xcap-root/a&b".into(),
        }
        .to_xml();
        assert!(n.contains("<ancestor>http://h/xcap-root/a&amp;b</ancestor>"));
        assert!(Conflict::SchemaValidation("x <y>".into())
            .to_xml()
            .contains("phrase=\"x &lt;y&gt;\""));
        // A control character quoted from a request body cannot enter the report.
        assert!(Conflict::NotWellFormed("tag `a\u{1}b\u{fffe}` c\td".into())
            .to_xml()
            .contains("phrase=\"tag `a\u{fffd}b\u{fffd}` c\td\""));
    }
}
