//! HPACK Huffman strings (RFC 7541 §5.2, Appendix B) decoded before loona-hpack sees a
//! header block. loona-hpack builds its Huffman decoder (two levels of `HashMap`, 257 entries)
//! anew for every Huffman-coded string and walks it a bit at a time through hashing, which
//! under h2load took most of the session's time. `plain_block` rewrites a block with each
//! Huffman string decoded by a table built once (the code is canonical, so the lengths of
//! Appendix B give it), and the block, now of literal strings only, goes to loona-hpack as
//! before: the indexes, the dynamic table and every check stay its own. A block this cannot
//! rewrite (bad padding, EOS in a string, a truncated string) goes to loona-hpack as it came,
//! which finds the same fault and reports it.

use std::sync::OnceLock;

/// The code length of each symbol (0–255, then EOS), RFC 7541 Appendix B.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MAX_LEN: usize = 30;

/// The canonical code, by length: the first code of each length, how many there are, and
/// where their symbols start in `symbols` (sorted by length, then symbol).
struct Table {
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    offset: [u32; MAX_LEN + 1],
    symbols: [u16; 257],
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Table {
            first: [0; MAX_LEN + 1],
            count: [0; MAX_LEN + 1],
            offset: [0; MAX_LEN + 1],
            symbols: [0; 257],
        };
        for &len in &LENGTHS {
            t.count[usize::from(len)] += 1;
        }
        let mut code = 0u32;
        let mut at = 0u32;
        for len in 1..=MAX_LEN {
            t.first[len] = code;
            t.offset[len] = at;
            at += t.count[len];
            code = (code + t.count[len]) << 1;
        }
        let mut next = t.offset;
        for (symbol, &len) in LENGTHS.iter().enumerate() {
            let len = usize::from(len);
            t.symbols[next[len] as usize] = symbol as u16;
            next[len] += 1;
        }
        t
    })
}

/// Decodes a Huffman-coded string onto `out`; `None` for padding longer than 7 bits or not
/// all ones, or EOS inside the string (§5.2).
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let t = table();
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in input {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if len > MAX_LEN {
                return None;
            }
            let first = t.first[len];
            if code >= first && code - first < t.count[len] {
                let symbol = t.symbols[(t.offset[len] + code - first) as usize];
                if symbol == EOS {
                    return None;
                }
                out.push(symbol as u8);
                code = 0;
                len = 0;
            }
        }
    }
    (len <= 7 && code == (1u32 << len) - 1).then_some(())
}

/// An HPACK integer with an `prefix`-bit prefix at `buf[at]` (§5.1): its value and the
/// index past it.
fn integer(buf: &[u8], at: usize, prefix: u8) -> Option<(usize, usize)> {
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(*buf.get(at)?) & max;
    let mut at = at + 1;
    if value < max {
        return Some((value, at));
    }
    let mut shift = 0;
    loop {
        let byte = *buf.get(at)?;
        at += 1;
        if shift > 28 {
            return None;
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some((value, at));
        }
    }
}

/// Appends an HPACK integer with a `prefix`-bit prefix under `pattern` (RFC 7541 §5.1).
pub(crate) fn push_integer(out: &mut Vec<u8>, mut value: usize, prefix: u8, pattern: u8) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(pattern | value as u8);
        return;
    }
    out.push(pattern | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// Copies the string at `buf[at]` onto `out`, decoded when Huffman-coded; the index past it.
fn string(buf: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let huffman = *buf.get(at)? & 0x80 != 0;
    let (len, start) = integer(buf, at, 7)?;
    let end = start.checked_add(len)?;
    let raw = buf.get(start..end)?;
    if huffman {
        // Decoded in place; its length, known after, is put in front.
        let mark = out.len();
        decode(raw, out)?;
        let decoded = out.len() - mark;
        if decoded < 0x7f {
            out.insert(mark, decoded as u8);
        } else {
            let mut prefix = Vec::with_capacity(4);
            push_integer(&mut prefix, decoded, 7, 0);
            out.splice(mark..mark, prefix);
        }
    } else {
        out.extend_from_slice(&buf[at..end]);
    }
    Some(end)
}

/// `out` receives the block with every Huffman string decoded; `None` when the block is
/// not well formed (it then goes to loona-hpack as it came).
pub fn plain_block(block: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let mut at = 0;
    while at < block.len() {
        let first = block[at];
        let (prefix, literal) = if first & 0x80 != 0 {
            (7, false)
        } else if first & 0xc0 == 0x40 {
            (6, true)
        } else if first & 0xe0 == 0x20 {
            (5, false)
        } else {
            (4, true)
        };
        let (index, next) = integer(block, at, prefix)?;
        out.extend_from_slice(&block[at..next]);
        at = next;
        if literal {
            if index == 0 {
                at = string(block, at, out)?;
            }
            at = string(block, at, out)?;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_as_loona_hpack_does() {
        // RFC 7541 C.4.1–C.4.3 and C.6.1 strings, and every single byte.
        let samples: [&[u8]; 4] = [
            &[
                0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
            ],
            &[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf],
            &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f],
            &[0x64, 0x02],
        ];
        let mut reference = loona_hpack::huffman::HuffmanDecoder::new();
        for sample in samples {
            let mut out = Vec::new();
            decode(sample, &mut out).unwrap();
            assert_eq!(out, reference.decode(sample).unwrap());
        }
        assert_eq!(
            {
                let mut out = Vec::new();
                decode(
                    &[
                        0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
                    ],
                    &mut out,
                )
                .unwrap();
                out
            },
            b"www.example.com"
        );
        // Padding of 8 ones, and padding that is not all ones, are refused.
        assert!(decode(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf, 0xff], &mut Vec::new()).is_none());
        assert!(decode(&[0x00], &mut Vec::new()).is_none());
    }

    #[test]
    fn a_rewritten_block_decodes_to_the_same_fields() {
        let mut encoder = loona_hpack::Encoder::new();
        let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..=255u8)
            .map(|b| (format!("x-byte-{b}").into_bytes(), vec![b, b'a', 0xff, b]))
            .collect();
        let plain = encoder.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])));
        // The same block, every string Huffman-coded (C.4.1 of RFC 7541 by hand).
        let huffman: &[u8] = &[
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let mut out = Vec::new();
        plain_block(huffman, &mut out).unwrap();
        let want = loona_hpack::Decoder::new().decode(huffman).unwrap();
        assert_eq!(loona_hpack::Decoder::new().decode(&out).unwrap(), want);
        assert_eq!(want[3].1, b"www.example.com");
        plain_block(&plain, &mut out).unwrap();
        assert_eq!(out, plain, "a block without Huffman strings is unchanged");
        // A truncated block is not rewritten.
        assert!(plain_block(&huffman[..10], &mut out).is_none());
    }
}
