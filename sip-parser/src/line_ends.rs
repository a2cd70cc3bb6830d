//! Line ends of a message head, found 64 bytes at a time.
//!
//! A SIP header line is ~25 bytes. Searching each one for its `\n` with `memchr` paid a
//! call, a length dispatch and a vector setup per line. Here one pass turns each 64-byte
//! block into a bit mask of its `\n` bytes, and every line end after that is a
//! `trailing_zeros` and a bit clear. On the core bench (callgrind) the line-end search went
//! from ~30 to ~20 instructions a line, and the pair took 0.94–0.98× the time: the header
//! loop lost a call per line. The block compare is SSE2 on x86_64 (always present there, so
//! no run-time dispatch) and a word-at-a-time compare elsewhere.

/// Block size: one `u64` mask bit per byte.
const BLOCK: usize = 64;

/// The positions of `\n` in `hay` at or after a start offset, in order.
pub(crate) struct LineEnds<'a> {
    hay: &'a [u8],
    /// Start of the block `mask` describes.
    base: usize,
    /// `\n` bits of the block at `base` not yet returned.
    mask: u64,
}

impl<'a> LineEnds<'a> {
    #[inline]
    pub(crate) fn new(hay: &'a [u8], from: usize) -> Self {
        LineEnds {
            hay,
            base: from,
            mask: block_mask(hay, from),
        }
    }

    /// The next `\n` (an offset into `hay`), or `None` when `hay` has no more.
    #[inline(always)]
    pub(crate) fn next_end(&mut self) -> Option<usize> {
        loop {
            if self.mask != 0 {
                let at = self.base + self.mask.trailing_zeros() as usize;
                self.mask &= self.mask - 1;
                return Some(at);
            }
            self.base += BLOCK;
            if self.base >= self.hay.len() {
                return None;
            }
            self.mask = block_mask(self.hay, self.base);
        }
    }
}

/// `\n` bits of `hay[at..at + 64]`; bytes past the end of `hay` count as not `\n`.
#[inline(always)]
fn block_mask(hay: &[u8], at: usize) -> u64 {
    match hay.get(at..).and_then(<[u8]>::first_chunk::<BLOCK>) {
        Some(block) => newlines(block),
        None => tail_mask(hay, at),
    }
}

/// [`block_mask`] for the last, partial block: copied into a zeroed block. Once per
/// message at most, so out of line.
#[inline(never)]
fn tail_mask(hay: &[u8], at: usize) -> u64 {
    let tail = hay.get(at..).unwrap_or_default();
    let mut block = [0u8; BLOCK];
    let n = tail.len().min(BLOCK);
    block[..n].copy_from_slice(&tail[..n]);
    newlines(&block)
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
#[allow(unsafe_code)]
fn newlines(block: &[u8; BLOCK]) -> u64 {
    use core::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
    let word = |b: &[u8]| i64::from_le_bytes(b.try_into().unwrap_or_default());
    let mut mask = 0u64;
    for (i, lane) in block.chunks_exact(16).enumerate() {
        let (lo, hi) = lane.split_at(8);
        // SAFETY: the only requirement of these intrinsics is SSE2, which the cfg above
        // guarantees is enabled for the whole build (it is in the x86_64 baseline). They
        // take values, not pointers: the bytes were read by safe slice code (two adjacent
        // words, which LLVM merges into one unaligned 16-byte load).
        let bits = unsafe {
            let v = _mm_set_epi64x(word(hi), word(lo));
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)))
        };
        mask |= u64::from(bits as u16) << (16 * i);
    }
    mask
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn newlines(block: &[u8; BLOCK]) -> u64 {
    newlines_swar(block)
}

/// [`newlines`] a word at a time, for targets without SSE2 (and tested on every target).
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
#[inline(always)]
fn newlines_swar(block: &[u8; BLOCK]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const NLS: u64 = 0x0101_0101_0101_0101 * b'\n' as u64;
    let mut mask = 0u64;
    for (i, w) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(w.try_into().unwrap_or_default()) ^ NLS;
        // Exact "byte is zero" (no borrow between bytes): high bit set where x's byte is 0.
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        // Gather the eight high bits into the low byte.
        let bits = (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= bits << (8 * i);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ends(hay: &[u8], from: usize) -> Vec<usize> {
        let mut l = LineEnds::new(hay, from);
        std::iter::from_fn(|| l.next_end()).collect()
    }

    fn naive(hay: &[u8], from: usize) -> Vec<usize> {
        (from..hay.len()).filter(|&i| hay[i] == b'\n').collect()
    }

    #[test]
    fn finds_every_line_end_across_blocks_and_in_the_tail() {
        let mut hay = Vec::new();
        for i in 0..40 {
            hay.extend_from_slice(format!("Header-{i}: {}\r\n", "v".repeat(i)).as_bytes());
        }
        for from in [0, 1, 63, 64, 65, 200, hay.len() - 1, hay.len()] {
            assert_eq!(ends(&hay, from), naive(&hay, from), "from {from}");
        }
        assert_eq!(ends(b"", 0), Vec::<usize>::new());
        assert_eq!(ends(b"\n", 0), vec![0]);
    }

    fn naive_mask(block: &[u8; BLOCK]) -> u64 {
        (0..BLOCK).fold(0, |m, i| m | u64::from(block[i] == b'\n') << i)
    }

    #[test]
    fn the_word_at_a_time_compare_is_exact() {
        // Bytes one bit away from `\n` or that borrow in a subtraction trick must not count.
        let near = [0x0a, 0x0b, 0x09, 0x8a, 0x00, 0xff, 0x0e, 0x2a];
        for pattern in 0u32..256 {
            let block: [u8; BLOCK] = core::array::from_fn(|i| {
                if pattern >> (i % 8) & 1 == 1 {
                    near[0]
                } else {
                    near[1 + i % 7]
                }
            });
            assert_eq!(newlines_swar(&block), naive_mask(&block), "{pattern:08b}");
            assert_eq!(newlines(&block), naive_mask(&block), "{pattern:08b}");
        }
    }

    proptest! {
        #[test]
        fn same_as_a_byte_scan(hay in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..400), from in 0usize..420) {
            let from = from.min(hay.len());
            prop_assert_eq!(ends(&hay, from), naive(&hay, from));
        }

        #[test]
        fn both_block_compares_are_a_byte_compare(bytes in proptest::collection::vec(
            prop_oneof![Just(b'\n'), any::<u8>()], BLOCK)) {
            let block: [u8; BLOCK] = bytes.try_into().unwrap();
            prop_assert_eq!(newlines(&block), naive_mask(&block));
            prop_assert_eq!(newlines_swar(&block), naive_mask(&block));
        }
    }
}
