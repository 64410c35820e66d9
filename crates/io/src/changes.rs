//! What a new version of a layer changes, feature by feature: the Ministry
//! republishes its parcel map yearly, and a city checks the update (parcels
//! added, removed, changed) before the public sees it.
//!
//! Features are matched by the layer's `key` fields (a parcel's 地図名 +
//! 筆ID, or 大字 + 地番) and compared by a fingerprint of their geometry and
//! of the values of the new version's fields.

use chizu_core::{Feature, FieldDef, Value};
use geo::CoordsIter;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// How many keys of each kind are listed in the report.
const EXAMPLES: usize = 10;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeReport {
    /// The key fields, for the report.
    pub key: Vec<String>,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
    /// Up to ten keys of each kind, as "key=value, ...".
    pub added_keys: Vec<String>,
    pub removed_keys: Vec<String>,
    pub changed_keys: Vec<String>,
}

impl std::fmt::Display for ChangeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "by {}: {} added, {} removed, {} changed, {} unchanged",
            self.key.join(" + "),
            self.added,
            self.removed,
            self.changed,
            self.unchanged
        )?;
        for (what, keys) in [
            ("added", &self.added_keys),
            ("removed", &self.removed_keys),
            ("changed", &self.changed_keys),
        ] {
            for k in keys {
                write!(f, "\n  {what}: {k}")?;
            }
        }
        Ok(())
    }
}

/// Fingerprints of one version's features by key (a key can repeat).
#[derive(Debug, Default)]
pub struct Fingerprints {
    by_key: HashMap<String, Vec<u64>>,
}

impl Fingerprints {
    /// Adds a feature whose property values are laid out as `fields`.
    /// `compared` are the fields of the new version (values are compared by
    /// name, so a version with another field order still matches).
    pub fn add(&mut self, key: &[String], fields: &[FieldDef], compared: &[FieldDef], f: &Feature) {
        let value = |name: &str| -> &Value {
            fields
                .iter()
                .position(|d| d.name == name)
                .and_then(|i| f.properties.get(i))
                .unwrap_or(&Value::Null)
        };
        let key_text = key
            .iter()
            .map(|k| match value(k) {
                Value::Text(t) => format!("{k}={t}"),
                Value::Null => format!("{k}="),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for c in f.geometry.coords_iter() {
            c.x.to_bits().hash(&mut hasher);
            c.y.to_bits().hash(&mut hasher);
        }
        for d in compared {
            value(&d.name).to_string().hash(&mut hasher);
            matches!(value(&d.name), Value::Null).hash(&mut hasher);
        }
        self.by_key
            .entry(key_text)
            .or_default()
            .push(hasher.finish());
    }

    /// What `new` changes from `self` (the old version).
    pub fn compare(mut self, mut new: Fingerprints, key: &[String]) -> ChangeReport {
        let mut report = ChangeReport {
            key: key.to_vec(),
            ..ChangeReport::default()
        };
        let mut keys: Vec<&String> = new.by_key.keys().chain(self.by_key.keys()).collect();
        keys.sort();
        keys.dedup();
        let keys: Vec<String> = keys.into_iter().cloned().collect();
        for k in keys {
            let (old, fresh) = (self.by_key.remove(&k), new.by_key.remove(&k));
            let (list, count) = match (old, fresh) {
                (None, Some(_)) => (&mut report.added_keys, &mut report.added),
                (Some(_), None) => (&mut report.removed_keys, &mut report.removed),
                (Some(mut a), Some(mut b)) => {
                    a.sort_unstable();
                    b.sort_unstable();
                    if a == b {
                        report.unchanged += 1;
                        continue;
                    }
                    (&mut report.changed_keys, &mut report.changed)
                }
                (None, None) => continue,
            };
            *count += 1;
            if list.len() < EXAMPLES {
                list.push(k);
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chizu_core::FieldType;

    fn parcel(id: &str, chiban: &str, x: f64) -> Feature {
        Feature {
            id: 0,
            geometry: geo::Point::new(x, 0.0).into(),
            properties: vec![Value::Text(id.into()), Value::Text(chiban.into())],
        }
    }

    #[test]
    fn added_removed_and_changed_are_told_apart() {
        let fields = vec![
            FieldDef::new("fude_id", FieldType::Text),
            FieldDef::new("chiban", FieldType::Text),
        ];
        let key = vec!["fude_id".to_string()];
        let (mut old, mut new) = (Fingerprints::default(), Fingerprints::default());
        for f in [
            parcel("H1", "1", 1.0),
            parcel("H2", "2", 2.0),
            parcel("H3", "3", 3.0),
        ] {
            old.add(&key, &fields, &fields, &f);
        }
        for f in [
            parcel("H1", "1", 1.0),
            parcel("H2", "2-1", 2.0),
            parcel("H4", "4", 4.0),
        ] {
            new.add(&key, &fields, &fields, &f);
        }
        let report = old.compare(new, &key);
        assert_eq!(
            (
                report.added,
                report.removed,
                report.changed,
                report.unchanged
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(report.changed_keys, vec!["fude_id=H2"]);
        assert_eq!(report.added_keys, vec!["fude_id=H4"]);
        assert_eq!(report.removed_keys, vec!["fude_id=H3"]);
    }
}
