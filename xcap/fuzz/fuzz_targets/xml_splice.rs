//! Arbitrary bytes as a stored document and as a PUT fragment: the indexer must refuse or
//! index without panicking, and a successful splice must select back what was PUT.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcap::select::NsContext;
use xcap::selector::NodeSelector;
use xcap::splice;
use xcap::xml::{XmlIndex, XmlLimits};

fuzz_target!(|data: &[u8]| {
    let l = XmlLimits::default();
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (doc, frag) = data.split_at(split);
    let frag = frag.get(1..).unwrap_or(&[]);
    let _ = XmlIndex::document(doc, &l);
    let _ = XmlIndex::fragment(frag, &l);
    let ctx = NsContext { default_ns: None, bindings: &[] };
    for sel in ["/*/*", "/*/*[1]", "/*/*[2][@id=\"1\"]", "/*/a"] {
        let steps = NodeSelector::parse(sel).unwrap().steps;
        if let Ok(e) = splice::put_element(doc, &l, &steps, &ctx, frag, "u") {
            let got = splice::get_element(&e.new_doc, &l, &steps, &ctx).unwrap();
            let trimmed = std::str::from_utf8(frag).unwrap().trim();
            assert_eq!(got, trimmed.as_bytes());
        }
    }
});
