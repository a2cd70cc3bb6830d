//! Parses arbitrary bytes as URIs: Uri::parse, parameter lookup, Aor, and the §19.1.4
//! comparison. Checks reflexivity, symmetry, and that equivalent URIs share one AoR.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_parser::*;

fuzz_target!(|data: &[u8]| {
    // Whole input as one URI, then split at the first NUL into two URIs to compare.
    let one = Uri::parse(data);
    if let Ok(u) = one {
        let _ = (u.param(b"transport"), u.param(b"user"));
        let aor = Aor::from_uri(&u);
        let _ = (aor.user(), aor.host(), aor.as_bytes());
        assert!(u.equivalent(&u), "not reflexive");
        assert_eq!(Aor::parse(data).ok(), Some(aor));
    }
    let _ = Uri::parse_request_uri(data);
    let _ = Aor::parse(data);
    if let Some(nul) = data.iter().position(|&b| b == 0) {
        let (a, b) = (&data[..nul], &data[nul + 1..]);
        if let (Ok(x), Ok(y)) = (Uri::parse(a), Uri::parse(b)) {
            let xy = x.equivalent(&y);
            assert_eq!(xy, y.equivalent(&x), "not symmetric");
            if xy {
                assert_eq!(
                    Aor::from_uri(&x),
                    Aor::from_uri(&y),
                    "equivalent URIs, different AoR"
                );
            }
        }
    }
});
