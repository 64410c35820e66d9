//! The few protobuf primitives the MVT encoder needs (varints, tags, packed fields).

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;

pub fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, ((field as u64) << 3) | wire as u64);
}

pub fn bytes_field(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(buf, field, LEN);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

pub fn uint_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    key(buf, field, VARINT);
    varint(buf, v);
}

/// Bytes of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The body length of a packed field of `values`.
pub fn packed_len(values: &[u32]) -> usize {
    values.iter().map(|v| varint_len(*v as u64)).sum()
}

/// A packed field whose body length `len` ([`packed_len`]) is known, written
/// in place; nothing when `values` is empty.
pub fn packed_u32_counted(buf: &mut Vec<u8>, field: u32, values: &[u32], len: usize) {
    if values.is_empty() {
        return;
    }
    key(buf, field, LEN);
    varint(buf, len as u64);
    for v in values {
        varint(buf, *v as u64);
    }
}

pub fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag() {
        let mut b = vec![];
        varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
    }
}
