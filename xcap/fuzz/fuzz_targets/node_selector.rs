//! Arbitrary text as a node selector, then (when it parses) evaluated against a fixed
//! document for GET, PUT and DELETE: no panics, and PUT must stay idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcap::select::NsContext;
use xcap::selector::{NodeSelector, Terminal};
use xcap::splice;
use xcap::xml::XmlLimits;

const DOC: &[u8] = br#"<?xml version="1.0"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists" xmlns:x="urn:x">
  <list name="a"><entry uri="sip:a@b"/><entry uri="sip:c@d" x:y="1"/></list>
  <list name="b"/>
</resource-lists>"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sel) = NodeSelector::parse(text) else {
        return;
    };
    let _ = NodeSelector::render_steps(&sel.steps);
    let bindings = vec![("rl".to_string(), "urn:ietf:params:xml:ns:resource-lists".to_string())];
    let ctx = NsContext {
        default_ns: Some("urn:ietf:params:xml:ns:resource-lists"),
        bindings: &bindings,
    };
    let l = XmlLimits::default();
    match &sel.terminal {
        None => {
            let _ = splice::get_element(DOC, &l, &sel.steps, &ctx);
            if let Ok(e) = splice::put_element(DOC, &l, &sel.steps, &ctx, b"<entry uri=\"sip:n@m\"/>", "u") {
                let got = splice::get_element(&e.new_doc, &l, &sel.steps, &ctx).unwrap();
                assert_eq!(got, b"<entry uri=\"sip:n@m\"/>");
            }
            let _ = splice::delete_element(DOC, &l, &sel.steps, &ctx);
        }
        Some(Terminal::Attribute(a)) => {
            let _ = splice::get_attribute(DOC, &l, &sel.steps, a, &ctx);
            let _ = splice::put_attribute(DOC, &l, &sel.steps, a, &ctx, b"v", "u");
            let _ = splice::delete_attribute(DOC, &l, &sel.steps, a, &ctx);
        }
        Some(Terminal::Namespaces) => {
            let _ = splice::get_namespaces(DOC, &l, &sel.steps, &ctx);
        }
    }
});
