//! A tiny classic-BPF assembler: forward labels, and "far" jumps.
//!
//! Classic BPF conditional jumps reach at most 255 instructions ahead, while the steering
//! program is thousands long and every byte it scans may need to leave for the end. So every
//! jump to a label is an unconditional `ja` (32-bit offset), reached by a conditional that
//! only ever skips a few instructions; [`Asm::finish`] resolves the labels and checks the
//! rules the kernel's checker enforces (forward jumps only, within the program).

/// One classic BPF instruction, as `struct sock_filter` lays it out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcode parts (linux/bpf_common.h, linux/filter.h).
pub const LD: u16 = 0x00;
pub const LDX: u16 = 0x01;
pub const ST: u16 = 0x02;
pub const STX: u16 = 0x03;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;
pub const MISC: u16 = 0x07;
pub const W: u16 = 0x00;
pub const H: u16 = 0x08;
pub const B: u16 = 0x10;
pub const IMM: u16 = 0x00;
pub const ABS: u16 = 0x20;
pub const IND: u16 = 0x40;
pub const MEM: u16 = 0x60;
pub const LEN: u16 = 0x80;
pub const ADD: u16 = 0x00;
pub const MUL: u16 = 0x20;
pub const OR: u16 = 0x40;
pub const AND: u16 = 0x50;
pub const LSH: u16 = 0x60;
pub const RSH: u16 = 0x70;
pub const MOD: u16 = 0x90;
pub const XOR: u16 = 0xa0;
pub const JA: u16 = 0x00;
pub const JEQ: u16 = 0x10;
pub const JGT: u16 = 0x20;
pub const JGE: u16 = 0x30;
pub const K: u16 = 0x00;
pub const X: u16 = 0x08;
/// `RET` of the accumulator.
pub const RET_A: u16 = 0x10;
pub const TAX: u16 = 0x00;
pub const TXA: u16 = 0x80;

/// Longest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// Scratch memory cells (`BPF_MEMWORDS`).
pub const MEM_WORDS: u32 = 16;

/// A jump target, bound once with [`Asm::bind`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Label(usize);

#[derive(Default)]
pub struct Asm {
    code: Vec<Insn>,
    /// Position each label was bound to.
    bound: Vec<Option<usize>>,
    /// `ja` instructions waiting for their label.
    fixups: Vec<(usize, Label)>,
}

/// Why a program could not be assembled (a bug in the generator, caught by its tests).
#[derive(Debug, PartialEq, Eq)]
pub enum AsmError {
    TooLong(usize),
    Unbound,
    Backward,
}

impl Asm {
    pub fn label(&mut self) -> Label {
        self.bound.push(None);
        Label(self.bound.len() - 1)
    }

    pub fn bind(&mut self, l: Label) {
        debug_assert!(self.bound[l.0].is_none(), "label bound twice");
        self.bound[l.0] = Some(self.code.len());
    }

    fn emit(&mut self, code: u16, jt: u8, jf: u8, k: u32) {
        self.code.push(Insn { code, jt, jf, k });
    }

    pub fn op(&mut self, code: u16, k: u32) {
        let scratch =
            matches!(code & 7, ST | STX) || (matches!(code & 7, LD | LDX) && code & 0xe0 == MEM);
        debug_assert!(!scratch || k < MEM_WORDS, "scratch cell out of range");
        self.emit(code, 0, 0, k);
    }

    /// Conditional jump that skips `jt` / `jf` instructions (local, short).
    pub fn jump(&mut self, cond: u16, k: u32, jt: u8, jf: u8) {
        self.emit(JMP | cond | K, jt, jf, k);
    }

    pub fn goto(&mut self, l: Label) {
        self.fixups.push((self.code.len(), l));
        self.emit(JMP | JA, 0, 0, 0);
    }

    /// `if A <cond> k goto l`.
    pub fn goto_if(&mut self, cond: u16, k: u32, l: Label) {
        self.jump(cond, k, 0, 1);
        self.goto(l);
    }

    /// `if !(A <cond> k) goto l`.
    pub fn goto_unless(&mut self, cond: u16, k: u32, l: Label) {
        self.jump(cond, k, 1, 0);
        self.goto(l);
    }

    /// `if !(A <cond> X) goto l`.
    pub fn goto_unless_x(&mut self, cond: u16, l: Label) {
        self.emit(JMP | cond | X, 1, 0, 0);
        self.goto(l);
    }

    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for &(at, l) in &self.fixups {
            let to = self.bound[l.0].ok_or(AsmError::Unbound)?;
            if to <= at {
                return Err(AsmError::Backward);
            }
            self.code[at].k = (to - at - 1) as u32;
        }
        if self.code.len() > MAX_INSNS {
            return Err(AsmError::TooLong(self.code.len()));
        }
        Ok(self.code)
    }
}

/// Four bytes as a word load sees them (network order).
pub const fn word(b: &[u8; 4]) -> u32 {
    u32::from_be_bytes(*b)
}

/// Two bytes as a half-word load sees them.
pub const fn half(b: &[u8; 2]) -> u32 {
    u16::from_be_bytes(*b) as u32
}
