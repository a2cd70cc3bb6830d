//! Byte-position index of an XML document, built with quick-xml.
//!
//! XCAP stores documents byte for byte and edits them by splicing, so instead of a DOM we
//! keep, for every element, where its start tag, content and end tag are in the stored text,
//! where each attribute's value is, and its namespace. The same pass enforces the hostile-XML
//! bounds (no DTD, depth, name length, node count) before any validator sees the bytes.

mod index;

pub use index::{Attr, Element, XmlError, XmlIndex, XmlLimits};
