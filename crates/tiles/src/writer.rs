//! One MVT layer message written feature by feature, knowing its exact size
//! at every step: key and value indices are handed out in order of first use
//! and never change, so a feature's bytes are final once written. That is
//! what lets the size budget be measured (not estimated) while features are
//! added largest first, and undone when one does not fit.

use crate::pbf;
use chizu_core::Value;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

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

    /// The length of [`Self::encode`]'s message.
    fn encoded_len(self) -> usize {
        match self {
            ValueKey::Text(s) => field_len(s.len()),
            ValueKey::Float(_) => 1 + 8,
            ValueKey::Int(i) if i < 0 => 1 + pbf::varint_len(((i << 1) ^ (i >> 63)) as u64),
            ValueKey::Int(i) => 1 + pbf::varint_len(i as u64),
            ValueKey::Bool(_) => 2,
        }
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
    body: usize,
    keys: usize,
    values: usize,
    values_bytes: usize,
    keys_bytes: usize,
}

pub(crate) struct LayerWriter<'v> {
    /// The message as it is written: version and name, then the features;
    /// keys, values and extent are appended by [`Self::finish`].
    body: Vec<u8>,
    keys: Vec<&'v str>,
    key_index: FastMap<&'v str, u32>,
    keys_bytes: usize,
    values: Vec<ValueKey<'v>>,
    value_index: FastMap<ValueKey<'v>, u32>,
    values_bytes: usize,
    /// The key index of each tag slot (a field's position in the
    /// properties) once known, `u32::MAX` before: a tag's key is found
    /// without hashing its name (three times a feature for a cadastre).
    slot_keys: Vec<u32>,
    /// Scratch, kept across features.
    tags: Vec<u32>,
}

/// Slots from here on are looked up by name.
const MAX_SLOTS: usize = 4096;

/// A tag of a feature: the slot of its key (any number that is the same for
/// every tag of that name in the layer, e.g. the field's position in the
/// properties), the key and the value.
pub(crate) type Tag<'v> = (usize, &'v str, ValueKey<'v>);

impl<'v> LayerWriter<'v> {
    /// `features` and `bytes`: about how many features and feature bytes
    /// will be written (the buffers grow past them if need be).
    pub(crate) fn new(name: &str, features: usize, bytes: usize) -> Self {
        let mut body = Vec::with_capacity(name.len() + 4 + bytes);
        pbf::uint_field(&mut body, 15, 2);
        pbf::bytes_field(&mut body, 1, name.as_bytes());
        LayerWriter {
            body,
            keys: Vec::new(),
            key_index: FastMap::default(),
            keys_bytes: 0,
            values: Vec::with_capacity(features),
            value_index: FastMap::with_capacity_and_hasher(features, Default::default()),
            values_bytes: 0,
            slot_keys: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// Writes one feature: id (none for label points), tags, type, commands.
    /// Its length is counted first and it is written straight into the
    /// message (this runs for every feature of every tile).
    pub(crate) fn push(
        &mut self,
        id: Option<u64>,
        kind: u64,
        commands: &[u32],
        tags: impl Iterator<Item = Tag<'v>>,
    ) {
        self.tags.clear();
        for (slot, name, value) in tags {
            let k = self.slot_key(slot, name);
            let v = self.value(value);
            self.tags.push(k);
            self.tags.push(v);
        }
        let (tags_len, commands_len) = (pbf::packed_len(&self.tags), pbf::packed_len(commands));
        // Fields 1 (id), 2 (tags), 3 (type) and 4 (geometry), one-byte keys.
        let feature_len = id.map_or(0, |id| 1 + pbf::varint_len(id))
            + packed_field_len(tags_len)
            + 1
            + pbf::varint_len(kind)
            + packed_field_len(commands_len);
        let out = &mut self.body;
        out.reserve(1 + pbf::varint_len(feature_len as u64) + feature_len);
        pbf::key(out, 2, pbf::LEN);
        pbf::varint(out, feature_len as u64);
        if let Some(id) = id {
            pbf::uint_field(out, 1, id);
        }
        pbf::packed_u32_counted(out, 2, &self.tags, tags_len);
        pbf::uint_field(out, 3, kind);
        pbf::packed_u32_counted(out, 4, commands, commands_len);
    }

    fn slot_key(&mut self, slot: usize, name: &'v str) -> u32 {
        // The name is checked (as a pointer: cheap) so that a caller's
        // slots that do not stay with one name cost time, not correctness.
        if let Some(&k) = self.slot_keys.get(slot)
            && k != u32::MAX
            && std::ptr::eq(self.keys[k as usize], name)
        {
            return k;
        }
        let k = self.key(name);
        if slot < MAX_SLOTS {
            if slot >= self.slot_keys.len() {
                self.slot_keys.resize(slot + 1, u32::MAX);
            }
            self.slot_keys[slot] = k;
        }
        k
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
        // One hash a value (most of a cadastre's values are new: chiban).
        match self.value_index.entry(value) {
            Entry::Occupied(v) => *v.get(),
            Entry::Vacant(slot) => {
                self.values_bytes += field_len(value.encoded_len());
                self.values.push(value);
                *slot.insert(self.values.len() as u32 - 1)
            }
        }
    }

    /// The exact length of [`Self::finish`]'s message as it stands.
    pub(crate) fn len(&self) -> usize {
        // Field 5 (extent 4096): one key byte and a two-byte varint.
        self.body.len() + self.keys_bytes + self.values_bytes + 3
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            body: self.body.len(),
            keys: self.keys.len(),
            values: self.values.len(),
            values_bytes: self.values_bytes,
            keys_bytes: self.keys_bytes,
        }
    }

    /// Undoes every feature written since `mark`.
    pub(crate) fn undo(&mut self, mark: Mark) {
        self.body.truncate(mark.body);
        for k in self.keys.drain(mark.keys..) {
            self.key_index.remove(k);
        }
        for k in &mut self.slot_keys {
            if *k != u32::MAX && *k as usize >= mark.keys {
                *k = u32::MAX;
            }
        }
        for v in self.values.drain(mark.values..) {
            self.value_index.remove(&v);
        }
        self.keys_bytes = mark.keys_bytes;
        self.values_bytes = mark.values_bytes;
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        let len = self.len();
        let mut body = self.body;
        body.reserve(len - body.len());
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

/// [`field_len`] of a packed field, which is left out when empty.
fn packed_field_len(len: usize) -> usize {
    if len == 0 { 0 } else { field_len(len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_is_exact_and_undo_restores_it() {
        let texts: Vec<Value> = (0..300)
            .map(|i| Value::Text("x".repeat(i % 140).into()))
            .collect();
        let mut w = LayerWriter::new("layer", 0, 0);
        for (i, t) in texts.iter().enumerate() {
            let mark = w.mark();
            let before = w.len();
            let tags = [
                (0, "name", ValueKey::of(t).unwrap()),
                (1, "n", ValueKey::Int(-(i as i64))),
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
        let values = [
            ValueKey::Text("地番"),
            ValueKey::Text(""),
            ValueKey::Float(1.5f64.to_bits()),
            ValueKey::Int(-300),
            ValueKey::Int(i64::MIN),
            ValueKey::Int(i64::MAX),
            ValueKey::Bool(true),
        ];
        for v in values {
            let mut b = Vec::new();
            v.encode(&mut b);
            assert_eq!(v.encoded_len(), b.len());
        }
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = Vec::new();
            pbf::varint(&mut b, v);
            assert_eq!(pbf::varint_len(v), b.len(), "{v}");
        }
    }
}
