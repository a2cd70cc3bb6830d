//! XML Schema validation with libxml2 (through the `libxml` crate), against the XSDs of the
//! RFCs kept in `xcap/schemas/`.
//!
//! The schemas are compiled by libxml2, not by us: we only feed it documents that already
//! passed the hostile-XML checks of `xml::XmlIndex` (no DTD, bounded depth, names, size), and
//! parse with `XML_PARSE_NONET` so nothing is ever fetched. libxml2 objects are not `Send`,
//! so each shard thread compiles its own validators lazily and keeps them in a thread-local.
//! The XSD files are embedded in the binary and written once per process to a private temp
//! directory, because libxml2 resolves `xs:import schemaLocation` against files.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libxml::parser::{Parser, ParserOptions};
use libxml::schemas::{SchemaParserContext, SchemaValidationContext};

/// The schemas application usages validate against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaId {
    /// RFC 4826 resource-lists.
    ResourceLists,
    /// RFC 4826 rls-services (imports resource-lists).
    RlsServices,
    /// RFC 4745 common-policy with the RFC 5025 presence permissions.
    PresRules,
    /// RFC 3863 PIDF (pidf-manipulation, RFC 4827).
    Pidf,
}

const FILES: &[(&str, &str)] = &[
    ("xml.xsd", include_str!("../schemas/xml.xsd")),
    (
        "resource-lists.xsd",
        include_str!("../schemas/resource-lists.xsd"),
    ),
    (
        "rls-services.xsd",
        include_str!("../schemas/rls-services.xsd"),
    ),
    (
        "common-policy.xsd",
        include_str!("../schemas/common-policy.xsd"),
    ),
    ("pres-rules.xsd", include_str!("../schemas/pres-rules.xsd")),
    ("pidf.xsd", include_str!("../schemas/pidf.xsd")),
];

impl SchemaId {
    fn file(self) -> &'static str {
        match self {
            SchemaId::ResourceLists => "resource-lists.xsd",
            SchemaId::RlsServices => "rls-services.xsd",
            SchemaId::PresRules => "pres-rules.xsd",
            SchemaId::Pidf => "pidf.xsd",
        }
    }
}

fn schema_dir() -> Result<&'static PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("herald-xcap-schemas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("schema dir: {e}"))?;
        for (name, text) in FILES {
            std::fs::write(dir.join(name), text).map_err(|e| format!("schema {name}: {e}"))?;
        }
        Ok(dir)
    })
    .as_ref()
    .map_err(Clone::clone)
}

thread_local! {
    static VALIDATORS: RefCell<HashMap<SchemaId, SchemaValidationContext>> =
        RefCell::new(HashMap::new());
}

fn compile(id: SchemaId) -> Result<SchemaValidationContext, String> {
    let path = schema_dir()?.join(id.file());
    let path = path.to_str().ok_or("non-UTF-8 temp dir")?;
    let mut parser = SchemaParserContext::from_file(path);
    SchemaValidationContext::from_parser(&mut parser).map_err(|errs| {
        format!(
            "schema {} does not compile: {}",
            id.file(),
            first_message(&errs)
        )
    })
}

fn first_message(errs: &[libxml::error::StructuredError]) -> String {
    errs.iter()
        .find_map(|e| e.message.clone())
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| "invalid".to_string())
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// libxml2 found the document not well-formed.
    NotWellFormed(String),
    /// The document does not conform; text from the validator.
    Invalid(String),
    /// The validator itself could not be set up (a bug or a full temp dir).
    Unavailable(String),
}

/// Checks well-formedness with libxml2 (all documents, schema or not).
pub fn check_well_formed(doc: &[u8]) -> Result<(), SchemaError> {
    parse(doc).map(|_| ())
}

fn parse(doc: &[u8]) -> Result<libxml::tree::Document, SchemaError> {
    let parser = Parser::default();
    let opts = ParserOptions {
        recover: false,
        no_def_dtd: true,
        no_error: true,
        no_warning: true,
        no_net: true,
        ..ParserOptions::default()
    };
    parser
        .parse_string_with_options(doc, opts)
        .map_err(|e| SchemaError::NotWellFormed(format!("{e:?}")))
}

/// Validates a whole document against one schema.
pub fn validate(id: SchemaId, doc: &[u8]) -> Result<(), SchemaError> {
    let parsed = parse(doc)?;
    VALIDATORS.with(|cell| {
        let mut map = cell.borrow_mut();
        if let std::collections::hash_map::Entry::Vacant(v) = map.entry(id) {
            v.insert(compile(id).map_err(SchemaError::Unavailable)?);
        }
        let ctx = map
            .get_mut(&id)
            .ok_or(SchemaError::Unavailable("lost".into()))?;
        ctx.validate_document(&parsed)
            .map_err(|errs| SchemaError::Invalid(first_message(&errs)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_schemas_compile() {
        for id in [
            SchemaId::ResourceLists,
            SchemaId::RlsServices,
            SchemaId::PresRules,
            SchemaId::Pidf,
        ] {
            compile(id).unwrap();
        }
    }

    #[test]
    fn resource_lists_valid_and_invalid() {
        let ok = br#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends"><entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry></list>
</resource-lists>"#;
        validate(SchemaId::ResourceLists, ok).unwrap();
        let bad = br#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list><entry/></list></resource-lists>"#;
        assert!(matches!(
            validate(SchemaId::ResourceLists, bad),
            Err(SchemaError::Invalid(_))
        ));
        let wrong_ns = br#"<resource-lists xmlns="urn:other"/>"#;
        assert!(validate(SchemaId::ResourceLists, wrong_ns).is_err());
    }

    #[test]
    fn pres_rules_and_pidf() {
        let rules = br#"<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy" xmlns:pr="urn:ietf:params:xml:ns:pres-rules">
  <cr:rule id="a"><cr:conditions><cr:identity><cr:one id="sip:bob@example.com"/></cr:identity></cr:conditions>
  <cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions></cr:rule></cr:ruleset>"#;
        validate(SchemaId::PresRules, rules).unwrap();
        let bad_rules = br#"<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy" xmlns:pr="urn:ietf:params:xml:ns:pres-rules">
  <cr:rule id="a"><cr:actions><pr:sub-handling>maybe</pr:sub-handling></cr:actions></cr:rule></cr:ruleset>"#;
        assert!(validate(SchemaId::PresRules, bad_rules).is_err());
        let pidf =
            br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">
  <tuple id="t1"><status><basic>open</basic></status></tuple></presence>"#;
        validate(SchemaId::Pidf, pidf).unwrap();
        let bad_pidf = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple id="t1"><status><basic>maybe</basic></status></tuple></presence>"#;
        assert!(validate(SchemaId::Pidf, bad_pidf).is_err());
    }
}
