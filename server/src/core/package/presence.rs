//! `presence` (RFC 3856): PIDF bodies aggregated across a presentity's publications.

use super::{BodyError, BodyIndex, EventPackage};
use crate::core::pidf;
use sip_parser::Aor;
use std::sync::Arc;

pub struct Presence;

impl EventPackage for Presence {
    fn name(&self) -> &'static str {
        "presence"
    }
    fn content_types(&self) -> &'static [&'static str] {
        &[pidf::PIDF_CONTENT_TYPE]
    }
    fn default_expires(&self) -> u32 {
        3600
    }
    fn validate(&self, body: &[u8]) -> Result<BodyIndex, BodyError> {
        pidf::validate(body).map_err(BodyError::Pidf)
    }
    fn index_stored(&self, body: &[u8]) -> Result<BodyIndex, BodyError> {
        pidf::index(body).map_err(BodyError::Pidf)
    }
    fn aggregate(&self, docs: &[(&[u8], &BodyIndex)], out: &mut Vec<u8>) {
        pidf::aggregate(docs, out)
    }
    fn aggregate_shared(&self, docs: &[(&Arc<[u8]>, &BodyIndex)]) -> Option<Arc<[u8]>> {
        match docs {
            [] => None,
            // `pidf::aggregate` of one document is the document: share it.
            [(only, _)] => (!only.is_empty()).then(|| Arc::clone(only)),
            _ => super::aggregate_new(self, docs),
        }
    }
    fn offline_body(&self, presentity: &Aor, out: &mut Vec<u8>) -> bool {
        pidf::offline_body(presentity.as_bytes(), out);
        true
    }
}
