//! A classic BPF interpreter for the instructions the steering program uses, with the
//! kernel's semantics (a load past the packet ends the program with 0), so tests can run the
//! program on messages without a socket. On the paths a test executes it also asserts two
//! rules the kernel's checker enforces statically: no scratch cell is read before it is
//! written, and no jump leaves the program (backward jumps cannot be encoded; `Asm::finish`
//! checks label order).

use super::asm::*;

pub fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [None::<u32>; MEM_WORDS as usize];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        let class = i.code & 7;
        match class {
            LD | LDX => {
                let v = match i.code & 0xe0 {
                    IMM => i.k,
                    LEN => pkt.len() as u32,
                    MEM => mem[i.k as usize].expect("scratch cell read before written"),
                    mode @ (ABS | IND) => {
                        let off = if mode == IND {
                            x.wrapping_add(i.k)
                        } else {
                            i.k
                        } as usize;
                        let size = match i.code & 0x18 {
                            W => 4,
                            H => 2,
                            B => 1,
                            s => panic!("size {s:#x}"),
                        };
                        let Some(b) = pkt.get(off..off + size) else {
                            return 0;
                        };
                        b.iter().fold(0u32, |v, &c| v << 8 | u32::from(c))
                    }
                    m => panic!("mode {m:#x}"),
                };
                if class == LD {
                    a = v
                } else {
                    x = v
                }
            }
            ST => mem[i.k as usize] = Some(a),
            STX => mem[i.k as usize] = Some(x),
            ALU => {
                let v = if i.code & X != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    ADD => a.wrapping_add(v),
                    MUL => a.wrapping_mul(v),
                    OR => a | v,
                    AND => a & v,
                    LSH => a.wrapping_shl(v),
                    RSH => a.wrapping_shr(v),
                    MOD => {
                        if v == 0 {
                            return 0;
                        }
                        a % v
                    }
                    XOR => a ^ v,
                    op => panic!("alu {op:#x}"),
                };
            }
            JMP => {
                let op = i.code & 0xf0;
                if op == JA {
                    pc += i.k as usize;
                } else {
                    let v = if i.code & X != 0 { x } else { i.k };
                    let taken = match op {
                        JEQ => a == v,
                        JGT => a > v,
                        JGE => a >= v,
                        op => panic!("jmp {op:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                assert!(pc < prog.len(), "jump out of the program");
            }
            RET => return if i.code & RET_A != 0 { a } else { i.k },
            MISC => {
                if i.code & TXA != 0 {
                    a = x
                } else {
                    x = a
                }
            }
            c => panic!("class {c}"),
        }
    }
}
