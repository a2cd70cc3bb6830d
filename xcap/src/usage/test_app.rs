//! `test-app`: any well-formed document in any namespace, no schema (RFC 4825 test usage,
//! as OpenXCAP serves it for its test suite).

use super::ApplicationUsage;

pub struct TestApp;

impl ApplicationUsage for TestApp {
    fn auid(&self) -> &'static str {
        "test-app"
    }
    fn default_ns(&self) -> Option<&'static str> {
        None
    }
    fn mime(&self) -> &'static str {
        "application/xml"
    }
}
