//! Property tests: parsers never panic; PUT-then-GET gives back what was PUT (RFC 4825
//! §8.2.5) and create-then-delete restores the document byte for byte.
//! Case count: 256 by default, more with PROPTEST_CASES.

use proptest::prelude::*;
use xcap::http::{decode, Decoded, Limits};
use xcap::select::NsContext;
use xcap::selector::NodeSelector;
use xcap::splice::{delete_element, get_element, put_element};
use xcap::xml::{XmlIndex, XmlLimits};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn selector_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_string()),
            Just("a".to_string()),
            Just("rl:list".to_string()),
            Just("*".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("[1]".to_string()),
            Just("[@name=\"x/y\"]".to_string()),
            Just("@".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("=".to_string()),
            Just("namespace::*".to_string()),
            Just("&quot;".to_string()),
            Just("&#x41;".to_string()),
            "[0-9]{1,12}",
            ".{0,3}",
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

/// A small test-app document: root with children from {a,b,c}, some with an `id`.
fn doc() -> impl Strategy<Value = String> {
    proptest::collection::vec((0..3usize, proptest::option::of(0..4u8), 0..3usize), 0..8).prop_map(
        |kids| {
            let mut s = String::from("<?xml version=\"1.0\"?>\n<root xmlns=\"urn:t\">\n");
            for (name, id, ws) in kids {
                let n = ["a", "b", "c"][name];
                match id {
                    Some(i) => s.push_str(&format!("<{n} id=\"{i}\"/>")),
                    None => s.push_str(&format!("<{n}><x/></{n}>")),
                }
                s.push_str(["", "\n", "  "][ws]);
            }
            s.push_str("<!-- c --></root>\n");
            s
        },
    )
}

fn target() -> impl Strategy<Value = (String, String)> {
    (
        0..4usize,
        proptest::option::of(0..5usize),
        proptest::option::of(0..5u8),
        0..3usize,
        0..5u8,
    )
        .prop_map(|(name, pos, id, body_name, body_id)| {
            let n = ["a", "b", "c", "*"][name];
            let mut sel = format!("/root/{n}");
            if let Some(p) = pos {
                sel.push_str(&format!("[{p}]"));
            }
            if let Some(i) = id {
                sel.push_str(&format!("[@id=\"{i}\"]"));
            }
            let bn = ["a", "b", "c"][body_name];
            (sel, format!("<{bn} id=\"{body_id}\"/>"))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn selector_parser_never_panics(s in selector_text()) {
        let _ = NodeSelector::parse(&s);
    }

    #[test]
    fn selector_parser_never_panics_on_any_text(s in ".{0,64}") {
        let _ = NodeSelector::parse(&s);
    }

    #[test]
    fn http_decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&b, &Limits::default());
        let mut framed = b"PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        framed.extend_from_slice(&b);
        let _ = decode(&framed, &Limits::default());
    }

    #[test]
    fn http_decoder_any_split(cut in 0usize..120) {
        let req = b"PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let first_len = req.len() - b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".len();
        let cut = cut.min(req.len());
        match decode(&req[..cut], &Limits::default()).unwrap() {
            Decoded::Partial { .. } => prop_assert!(cut < first_len),
            Decoded::Complete { body, consumed, .. } => {
                prop_assert_eq!(&body[..], b"abcde");
                prop_assert_eq!(consumed, first_len);
            }
        }
    }

    #[test]
    fn xml_indexer_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256), s in "[<>/a-c =\"'&;!?-]{0,64}") {
        let _ = XmlIndex::document(&b, &XmlLimits::default());
        let _ = XmlIndex::document(s.as_bytes(), &XmlLimits::default());
        let _ = XmlIndex::fragment(s.as_bytes(), &XmlLimits::default());
    }

    #[test]
    fn put_then_get_is_idempotent(d in doc(), (sel, body) in target()) {
        let limits = XmlLimits::default();
        let ctx = NsContext { default_ns: Some("urn:t"), bindings: &[] };
        let steps = NodeSelector::parse(&sel).unwrap().steps;
        if let Ok(edit) = put_element(d.as_bytes(), &limits, &steps, &ctx, body.as_bytes(), "u") {
            let got = get_element(&edit.new_doc, &limits, &steps, &ctx).unwrap();
            prop_assert_eq!(got, body.as_bytes());
            if edit.created {
                let back = delete_element(&edit.new_doc, &limits, &steps, &ctx).unwrap();
                prop_assert_eq!(back, d.as_bytes().to_vec());
            }
        }
    }
}
