//! One MVT layer message written feature by feature, knowing its exact size
//! at every step: key and value indices are handed out in order of first use
//! and never change, so a feature's bytes are final once written. That is
//! what lets the size budget be measured (not estimated) while features are
//! added largest first, and undone when one does not fit.

use crate::pbf;
use chizu_core::Value;
use std::collections::HashMap;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// A value of the layer's value table, deduplicated by type and exact bits
/// (1 and 1.0 stay distinct).
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
pub(crate) enum ValueKey<'v> {
    Text(&'v str),
    Float(u64),
    Int(i64),
    Bool(bool),
}

impl<'v> ValueKey<'v> {
    /// `None` for nulls, which MVT leaves out.
    pub(crate) fn of(v: &'v Value) -> Option<ValueKey<'v>> {
        Some(match v {
            Value::Text(s) => ValueKey::Text(s),
            Value::Float(f) => ValueKey::Float(f.to_bits()),
            Value::Int(i) => ValueKey::Int(*i),
            Value::Bool(b) => ValueKey::Bool(*b),
            Value::Null => return None,
        })
    }

    /// The `Value` message (MVT 2.1 4.1).
    fn encode(self, out: &mut Vec<u8>) {
        match self {
            ValueKey::Text(s) => pbf::bytes_field(out, 1, s.as_bytes()),
            ValueKey::Float(bits) => {
                pbf::key(out, 3, pbf::FIXED64);
                out.extend_from_slice(&f64::from_bits(bits).to_le_bytes());
            }
            ValueKey::Int(i) if i < 0 => pbf::uint_field(out, 6, ((i << 1) ^ (i >> 63)) as u64),
            ValueKey::Int(i) => pbf::uint_field(out, 5, i as u64),
            ValueKey::Bool(b) => pbf::uint_field(out, 7, b as u64),
        }
    }
}

/// Where a writer was before a feature, to undo it.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    features: usize,
    keys: usize,
    values: usize,
    values_bytes: usize,
    keys_bytes: usize,
}

pub(crate) struct LayerWriter<'v> {
    head: Vec<u8>,
    features: Vec<u8>,
    keys: Vec<&'v str>,
    key_index: FastMap<&'v str, u32>,
    keys_bytes: usize,
    values: Vec<ValueKey<'v>>,
    value_index: FastMap<ValueKey<'v>, u32>,
    values_bytes: usize,
    // Scratch, kept across features.
    feature: Vec<u8>,
    tags: Vec<u32>,
    scratch: Vec<u8>,
}

impl<'v> LayerWriter<'v> {
    pub(crate) fn new(name: &str) -> Self {
        let mut head = Vec::with_capacity(name.len() + 4);
        pbf::uint_field(&mut head, 15, 2);
        pbf::bytes_field(&mut head, 1, name.as_bytes());
        LayerWriter {
            head,
            features: Vec::new(),
            keys: Vec::new(),
            key_index: FastMap::default(),
            keys_bytes: 0,
            values: Vec::new(),
            value_index: FastMap::default(),
            values_bytes: 0,
            feature: Vec::new(),
            tags: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Writes one feature: id (none for label points), tags, type, commands.
    pub(crate) fn push(
        &mut self,
        id: Option<u64>,
        kind: u64,
        commands: &[u32],
        tags: impl Iterator<Item = (&'v str, ValueKey<'v>)>,
    ) {
        self.tags.clear();
        for (name, value) in tags {
            let k = self.key(name);
            let v = self.value(value);
            self.tags.push(k);
            self.tags.push(v);
        }
        self.feature.clear();
        if let Some(id) = id {
            pbf::uint_field(&mut self.feature, 1, id);
        }
        pbf::packed_u32(&mut self.feature, 2, &self.tags);
        pbf::uint_field(&mut self.feature, 3, kind);
        pbf::packed_u32(&mut self.feature, 4, commands);
        pbf::bytes_field(&mut self.features, 2, &self.feature);
    }

    fn key(&mut self, name: &'v str) -> u32 {
        if let Some(k) = self.key_index.get(name) {
            return *k;
        }
        self.keys.push(name);
        self.keys_bytes += field_len(name.len());
        let k = self.keys.len() as u32 - 1;
        self.key_index.insert(name, k);
        k
    }

    fn value(&mut self, value: ValueKey<'v>) -> u32 {
        if let Some(v) = self.value_index.get(&value) {
            return *v;
        }
        self.scratch.clear();
        value.encode(&mut self.scratch);
        self.values_bytes += field_len(self.scratch.len());
        self.values.push(value);
        let v = self.values.len() as u32 - 1;
        self.value_index.insert(value, v);
        v
    }

    /// The exact length of [`Self::finish`]'s message as it stands.
    pub(crate) fn len(&self) -> usize {
        // Field 5 (extent 4096): one key byte and a two-byte varint.
        self.head.len() + self.features.len() + self.keys_bytes + self.values_bytes + 3
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            features: self.features.len(),
            keys: self.keys.len(),
            values: self.values.len(),
            values_bytes: self.values_bytes,
            keys_bytes: self.keys_bytes,
        }
    }

    /// Undoes every feature written since `mark`.
    pub(crate) fn undo(&mut self, mark: Mark) {
        self.features.truncate(mark.features);
        for k in self.keys.drain(mark.keys..) {
            self.key_index.remove(k);
        }
        for v in self.values.drain(mark.values..) {
            self.value_index.remove(&v);
        }
        self.keys_bytes = mark.keys_bytes;
        self.values_bytes = mark.values_bytes;
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        let len = self.len();
        let mut body = self.head;
        body.reserve(len - body.len());
        body.extend_from_slice(&self.features);
        for k in &self.keys {
            pbf::bytes_field(&mut body, 3, k.as_bytes());
        }
        let mut v = Vec::new();
        for value in &self.values {
            v.clear();
            value.encode(&mut v);
            pbf::bytes_field(&mut body, 4, &v);
        }
        pbf::uint_field(&mut body, 5, crate::EXTENT as u64);
        body
    }
}

/// Bytes of a length-delimited field of `len` bytes with a one-byte key.
fn field_len(len: usize) -> usize {
    1 + pbf::varint_len(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_is_exact_and_undo_restores_it() {
        let texts: Vec<Value> = (0..300)
            .map(|i| Value::Text("x".repeat(i % 140).into()))
            .collect();
        let mut w = LayerWriter::new("layer");
        for (i, t) in texts.iter().enumerate() {
            let mark = w.mark();
            let before = w.len();
            let tags = [
                ("name", ValueKey::of(t).unwrap()),
                ("n", ValueKey::Int(-(i as i64))),
            ];
            w.push(
                Some(i as u64 + 1),
                3,
                &[9, 2, 2, 18, 4, 4, 4, 15],
                tags.into_iter(),
            );
            if i % 7 == 3 {
                w.undo(mark);
                assert_eq!(w.len(), before);
            }
        }
        let len = w.len();
        assert_eq!(w.finish().len(), len);
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = Vec::new();
            pbf::varint(&mut b, v);
            assert_eq!(pbf::varint_len(v), b.len(), "{v}");
        }
    }
}
