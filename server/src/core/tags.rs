//! Identifiers we generate (To-tag, Via branch, SIP-ETag) carry the presentity hash.
//!
//! Why the hash and not the shard number: `route()` computes `hash % shards`, so a dialog
//! created before a restart with a different `--shards` still reaches the shard that now
//! owns its presentity (the store redistributes records by the same function). The rest of
//! the token is a 64-bit id unique on the shard, so lookups are one integer hash probe.
//!
//! Token layout (ASCII): `hd` + 8 hex (presentity hash) + 16 hex (id) = 26 bytes.
//! Branch: `z9hG4bK` + token + 8 hex (NOTIFY CSeq, tells retransmitted responses of an
//! older transaction apart).

/// Length of a tag / ETag token.
pub const TOKEN_LEN: usize = 26;
/// RFC 3261 magic cookie.
pub const BRANCH_COOKIE: &[u8] = b"z9hG4bK";
/// Length of a branch we generate.
pub const BRANCH_LEN: usize = BRANCH_COOKIE.len() + TOKEN_LEN + 8;
/// First bytes of every token (To-tag, ETag, and after the cookie in a branch).
pub const PREFIX: &[u8] = b"hd";

/// FNV-1a 64 over the AoR bytes, folded to 32 bits. Stable across versions and platforms:
/// it decides which shard owns a presentity, on disk as well as in memory.
pub fn aor_hash(aor: &[u8]) -> u32 {
    let h = fnv1a64(aor);
    (h ^ (h >> 32)) as u32
}

/// FNV-1a 64 state after `bytes` (`aor_hash` before folding; the steering program starts
/// from the state after `sip:`).
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// `v` as 8 lower-case hex digits, all at once in one register (SWAR): tags and branches
/// are written for every response and NOTIFY, a nibble loop showed in profiles.
fn hex8(v: u32) -> [u8; 8] {
    // One nibble per byte, most significant first once stored big-endian.
    let x = u64::from(v);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // Per byte d: '0' + d, plus ('a' - '0' - 10) where d >= 10. No byte carries over.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

fn get_hex(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

/// A fixed-size token: To-tag or ETag.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Token(pub [u8; TOKEN_LEN]);

impl Token {
    pub fn new(hash: u32, id: u64) -> Token {
        let mut t = [0u8; TOKEN_LEN];
        t[..2].copy_from_slice(PREFIX);
        t[2..10].copy_from_slice(&hex8(hash));
        t[10..18].copy_from_slice(&hex8((id >> 32) as u32));
        t[18..26].copy_from_slice(&hex8(id as u32));
        Token(t)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// `(presentity hash, id)` if `b` is one of ours.
    pub fn decode(b: &[u8]) -> Option<(u32, u64)> {
        if b.len() != TOKEN_LEN || &b[..2] != PREFIX {
            return None;
        }
        Some((get_hex(&b[2..10])? as u32, get_hex(&b[10..26])?))
    }
    /// `b` as a token, if it is one of ours.
    pub fn parse(b: &[u8]) -> Option<Token> {
        Token::decode(b)?;
        Some(Token(b.try_into().ok()?))
    }
}

/// Via branch of a NOTIFY we send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Branch(pub [u8; BRANCH_LEN]);

impl Branch {
    pub fn new(hash: u32, sub_id: u64, cseq: u32) -> Branch {
        let mut b = [0u8; BRANCH_LEN];
        let c = BRANCH_COOKIE.len();
        b[..c].copy_from_slice(BRANCH_COOKIE);
        b[c..c + TOKEN_LEN].copy_from_slice(&Token::new(hash, sub_id).0);
        b[c + TOKEN_LEN..].copy_from_slice(&hex8(cseq));
        Branch(b)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// `(presentity hash, subscription id, cseq)` if `b` is one of ours.
    pub fn decode(b: &[u8]) -> Option<(u32, u64, u32)> {
        let c = BRANCH_COOKIE.len();
        if b.len() != BRANCH_LEN || &b[..c] != BRANCH_COOKIE {
            return None;
        }
        let (h, id) = Token::decode(&b[c..c + TOKEN_LEN])?;
        Some((h, id, get_hex(&b[c + TOKEN_LEN..])? as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hash_is_stable() {
        // Pinned: changing it would re-shard every stored record.
        assert_eq!(aor_hash(b""), 0xcbf29ce4 ^ 0x84222325);
        assert_eq!(
            aor_hash(b"sip:alice@example.com"),
            aor_hash(b"sip:alice@example.com")
        );
        assert_ne!(
            aor_hash(b"sip:alice@example.com"),
            aor_hash(b"sip:bob@example.com")
        );
    }

    #[test]
    fn foreign_tokens_rejected() {
        assert_eq!(Token::decode(b"abc"), None);
        assert_eq!(Token::decode(b"xx0000000000000000000000000"), None);
        assert_eq!(Branch::decode(b"z9hG4bK-foreign"), None);
        let mut t = Token::new(1, 2).0;
        t[5] = b'G';
        assert_eq!(Token::decode(&t), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn hex8_is_format_x(v: u32) {
            let want = format!("{v:08x}");
            prop_assert_eq!(&hex8(v)[..], want.as_bytes());
        }
        #[test]
        fn token_round_trips(hash: u32, id: u64) {
            let t = Token::new(hash, id);
            prop_assert_eq!(Token::decode(t.as_bytes()), Some((hash, id)));
        }
        #[test]
        fn branch_round_trips_and_routes(hash: u32, id: u64, cseq: u32, shards in 1u16..64) {
            let b = Branch::new(hash, id, cseq);
            prop_assert!(b.as_bytes().starts_with(b"z9hG4bK"));
            let (h, i, c) = Branch::decode(b.as_bytes()).unwrap();
            prop_assert_eq!((h, i, c), (hash, id, cseq));
            prop_assert_eq!(h % shards as u32, hash % shards as u32);
        }
    }
}
