//! [`route`](super::route) compiled to a classic BPF program for `SO_ATTACH_REUSEPORT_CBPF`,
//! so the kernel delivers most datagrams straight to the shard that owns them.
//!
//! Why: with the kernel's 4-tuple hash a datagram lands on a random shard, and with two
//! shards half of all requests, and half of the 200s to our NOTIFYs, cost a hand-off: a
//! second executor wake-up (membarrier, io_uring enters: tens of µs), which doubled the CPU
//! per SUBSCRIBE of two shards over one. The program returns the owner's index in the
//! port's reuseport group, which is the shard number because every shard binds its socket in
//! shard order. Whatever it cannot decide exactly it leaves to the kernel's hash (it returns
//! an index past the group), and the receiving shard routes and hands off as before: the
//! program is an optimisation, never a source of truth.
//!
//! What it decides (everything else falls back):
//! - `SUBSCRIBE` / `PUBLISH` whose Request-URI is `sip:user@host`: FNV-1a-64 of the
//!   normalised AoR (`tags::aor_hash`), computed with 32-bit halves since classic BPF has
//!   no 64-bit arithmetic; the host is lower-cased as `Aor` does; escapes (`%`), URIs
//!   without a user, and AoRs longer than [`AOR_SCAN`] bytes fall back.
//! - responses whose first `z9hG` starts one of our branches (`tags::Branch`) within the
//!   first [`BRANCH_SCAN`] bytes: the presentity hash in it.
//!   The program trusts that first `z9hG` to be the top Via's branch: a response carrying
//!   one before it (in a hostile reason phrase, say) is steered by that one, and the shard
//!   it reaches hands it off as it does any message the program does not decide.
//!
//! In-dialog SUBSCRIBEs carry their owner in the To-tag, which can be anywhere in the
//! message, so the program does not look for it: it hashes their Request-URI like any
//! other. That is our Contact (RFC 3261 §12.2.1.1), whose user part each shard picks so that
//! it hashes to itself (`route::shard_contact`), or the presentity (herald-load, SIPp):
//! either way the owner. Anything else is handed off by the shard that receives it.

pub mod asm;
/// The program's interpreter, for the tests and the `steer` fuzz target.
#[doc(hidden)]
pub mod interp;

use super::tags::{BRANCH_COOKIE, PREFIX};
use asm::*;

/// The program's answer for "not decided here": past any group, so the kernel hashes.
pub const FALLBACK: u32 = u32::MAX;
/// AoR bytes after `sip:` the program hashes (longer ones fall back). Each costs ~49
/// instructions; [`asm::MAX_INSNS`] bounds the whole program.
pub const AOR_SCAN: u32 = 64;
/// Offsets from the start of a response where a branch may begin.
pub const BRANCH_SCAN: u32 = 128;
/// Shortest datagram worth looking at.
const MIN_LEN: u32 = 16;
/// Where the scan for a branch starts: after `SIP/2.0 NNN X\r\n`.
pub const BRANCH_FROM: u32 = 12;

// Scratch cells.
const M_LEN: u32 = 0;
const M_BASE: u32 = 1;
const M_LO: u32 = 2;
const M_HI: u32 = 3;
const M_AT: u32 = 4;
const M_T: u32 = 5;

/// Low part of the FNV-1a-64 prime 2^40 + 0x1b3 (`tags::fnv1a64`).
const FNV_PRIME_LOW: u32 = 0x1b3;

/// The steering program for a reuseport group of `shards` sockets bound in shard order.
/// `None` for one shard (nothing to steer).
pub fn program(shards: u16) -> Option<Vec<Insn>> {
    if shards <= 1 {
        return None;
    }
    let n = u32::from(shards);
    let mut a = Asm::default();
    let fallback = a.label();
    let response = a.label();
    let subscribe = a.label();
    let publish = a.label();
    let request = a.label();
    let end = a.label();
    let branch = a.label();

    a.op(LD | W | LEN, 0);
    a.op(ST, M_LEN);
    a.goto_unless(JGE, MIN_LEN, fallback);
    a.op(LD | W | ABS, 0);
    a.goto_if(JEQ, word(b"SIP/"), response);
    a.goto_if(JEQ, word(b"SUBS"), subscribe);
    a.goto_if(JEQ, word(b"PUBL"), publish);
    a.goto(fallback);

    a.bind(subscribe);
    a.op(LD | W | ABS, 4);
    a.goto_unless(JEQ, word(b"CRIB"), fallback);
    a.op(LD | H | ABS, 8);
    a.goto_unless(JEQ, half(b"E "), fallback);
    a.op(LD | IMM, 10);
    a.op(ST, M_BASE);
    a.goto(request);

    a.bind(publish);
    a.op(LD | W | ABS, 4);
    a.goto_unless(JEQ, word(b"ISH "), fallback);
    a.op(LD | IMM, 8);
    a.op(ST, M_BASE);

    // Request-URI at M_BASE: `sip:` then the AoR bytes, hashed one by one.
    a.bind(request);
    a.op(LDX | W | MEM, M_BASE);
    a.op(LD | W | IND, 0);
    a.goto_unless(JEQ, word(b"sip:"), fallback);
    let h = super::tags::fnv1a64(b"sip:");
    a.op(LD | IMM, h as u32);
    a.op(ST, M_LO);
    a.op(LD | IMM, (h >> 32) as u32);
    a.op(ST, M_HI);
    a.op(LD | IMM, 0);
    a.op(ST, M_AT);
    for i in 0..AOR_SCAN {
        aor_byte(&mut a, 4 + i, end, fallback);
    }
    a.goto(fallback);

    a.bind(end);
    // Only `user@host` URIs: without a user the host would need lower-casing from its
    // start. This also sends a `:` before any `@` (a password, not a port) to the kernel.
    a.op(LD | W | MEM, M_AT);
    a.goto_if(JEQ, 0, fallback);
    // (h ^ h >> 32) as u32 = lo ^ hi.
    a.op(LD | W | MEM, M_HI);
    a.op(MISC | TAX, 0);
    a.op(LD | W | MEM, M_LO);
    a.op(ALU | XOR | X, 0);
    a.op(ALU | MOD | K, n);
    a.op(RET | RET_A, 0);

    // Responses: find the first `z9hG`, in blocks whose loads the length allows.
    a.bind(response);
    // Our branches start `z9hG4bK` `hd` (`tags::Branch`): checked as two words and a byte.
    let marker = [BRANCH_COOKIE, PREFIX].concat();
    let mark = [
        word(&[marker[0], marker[1], marker[2], marker[3]]),
        word(&[marker[4], marker[5], marker[6], marker[7]]),
        u32::from(marker[8]),
    ];
    let hex_at = marker.len() as u32;
    assert_eq!(hex_at, 9, "branch marker layout");
    let mut at = BRANCH_FROM;
    while at < BRANCH_FROM + BRANCH_SCAN {
        a.op(LD | W | MEM, M_LEN);
        a.goto_unless(JGE, at + 16 + 3, fallback);
        for i in at..at + 16 {
            a.op(LD | W | ABS, i);
            a.jump(JEQ, mark[0], 0, 2);
            a.op(LDX | IMM, i);
            a.goto(branch);
        }
        at += 16;
    }
    a.goto(fallback);

    // X = where `z9hG` starts: `z9hG4bK` `hd` then 8 hex digits of the presentity hash.
    a.bind(branch);
    a.op(STX, M_BASE);
    a.op(MISC | TXA, 0);
    a.op(ALU | ADD | K, hex_at + 8);
    a.op(MISC | TAX, 0);
    a.op(LD | W | MEM, M_LEN);
    a.goto_unless_x(JGE, fallback);
    a.op(LDX | W | MEM, M_BASE);
    a.op(LD | W | IND, 4);
    a.goto_unless(JEQ, mark[1], fallback);
    a.op(LD | B | IND, 8);
    a.goto_unless(JEQ, mark[2], fallback);
    a.op(LD | IMM, 0);
    a.op(ST, M_LO);
    for k in 0..8 {
        // Digit value without branches: (c & 15) + 9 * (c >> 6) for 0-9 and a-f.
        a.op(LDX | W | MEM, M_BASE);
        a.op(LD | B | IND, hex_at + k);
        a.op(ST, M_T);
        a.op(ALU | RSH | K, 6);
        a.op(ALU | MUL | K, 9);
        a.op(MISC | TAX, 0);
        a.op(LD | W | MEM, M_T);
        a.op(ALU | AND | K, 15);
        a.op(ALU | ADD | X, 0);
        a.op(MISC | TAX, 0);
        a.op(LD | W | MEM, M_LO);
        a.op(ALU | LSH | K, 4);
        a.op(ALU | ADD | X, 0);
        a.op(ST, M_LO);
    }
    a.op(ALU | MOD | K, n);
    a.op(RET | RET_A, 0);

    a.bind(fallback);
    a.op(RET | K, FALLBACK);
    Some(
        a.finish()
            .expect("steering program assembles (covered by tests)"),
    )
}

/// One AoR byte at `M_BASE + off`: end, fall back, or fold it into the hash.
fn aor_byte(a: &mut Asm, off: u32, end: Label, fallback: Label) {
    a.op(LDX | W | MEM, M_BASE);
    a.op(LD | B | IND, off);
    // Space, CR and controls end the Request-URI.
    a.goto_unless(JGT, 0x20, end);
    // 0x3a-0x3f: `;` `?` end the AoR, `:` may; `<` `=` `>` fall back.
    a.jump(JGE, 0x3a, 0, 8);
    a.jump(JGT, 0x3f, 7, 0);
    a.goto_if(JEQ, u32::from(b';'), end);
    a.goto_if(JEQ, u32::from(b'?'), end);
    a.goto_if(JEQ, u32::from(b':'), end);
    a.goto(fallback);
    a.goto_if(JEQ, u32::from(b'%'), fallback);
    // After `@`, M_AT holds 0x20: OR-ing it into A-Z lower-cases the host.
    a.jump(JEQ, u32::from(b'@'), 0, 2);
    a.op(LDX | IMM, 0x20);
    a.op(STX, M_AT);
    a.jump(JGE, u32::from(b'A'), 0, 3);
    a.jump(JGT, u32::from(b'Z'), 2, 0);
    a.op(LDX | W | MEM, M_AT);
    a.op(ALU | OR | X, 0);
    // h = (h ^ c) * (2^40 + 0x1b3) in 32-bit halves:
    //   lo' = lo * 0x1b3;  hi' = hi * 0x1b3 + carry(lo * 0x1b3) + (lo << 8).
    a.op(MISC | TAX, 0);
    a.op(LD | W | MEM, M_LO);
    a.op(ALU | XOR | X, 0);
    a.op(ST, M_LO);
    // carry = ((lo >> 16) * 0x1b3 + ((lo & 0xffff) * 0x1b3 >> 16)) >> 16
    a.op(ALU | AND | K, 0xffff);
    a.op(ALU | MUL | K, FNV_PRIME_LOW);
    a.op(ALU | RSH | K, 16);
    a.op(ST, M_T);
    a.op(LD | W | MEM, M_LO);
    a.op(ALU | RSH | K, 16);
    a.op(ALU | MUL | K, FNV_PRIME_LOW);
    a.op(LDX | W | MEM, M_T);
    a.op(ALU | ADD | X, 0);
    a.op(ALU | RSH | K, 16);
    a.op(ST, M_T);
    a.op(LD | W | MEM, M_LO);
    a.op(ALU | LSH | K, 8);
    a.op(LDX | W | MEM, M_T);
    a.op(ALU | ADD | X, 0);
    a.op(MISC | TAX, 0);
    a.op(LD | W | MEM, M_HI);
    a.op(ALU | MUL | K, FNV_PRIME_LOW);
    a.op(ALU | ADD | X, 0);
    a.op(ST, M_HI);
    a.op(LD | W | MEM, M_LO);
    a.op(ALU | MUL | K, FNV_PRIME_LOW);
    a.op(ST, M_LO);
}

#[cfg(test)]
mod tests;
