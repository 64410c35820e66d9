//! Attributes joined from a CSV ledger. A city's parcel map (from the
//! Ministry's XML) carries lot numbers and shapes; land category (地目), area
//! (地積) and owners come from the city's own register, exported from its
//! tax system as CSV (in CP932 when Excel wrote it). The join happens at
//! ingest, so every door serves the joined layer through the same views.

use crate::{IoError, RawFeature};
use chizu_core::{JoinConfig, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// The ledger, keyed by its `on` columns.
pub struct Ledger {
    path: PathBuf,
    on: Vec<String>,
    columns: Vec<String>,
    /// key → (CSV line, values of `columns`, matched)
    rows: HashMap<Vec<String>, (usize, Vec<Value>, bool)>,
}

impl Ledger {
    pub fn read(config: &JoinConfig) -> Result<Ledger, IoError> {
        let path = config.path.clone();
        let bytes = std::fs::read(&path).map_err(|e| IoError::open(&path, e))?;
        let encoding = config
            .encoding
            .as_deref()
            .and_then(chizu_core::config::encoding_for_label)
            .unwrap_or(encoding_rs::UTF_8);
        let (text, _, malformed) = encoding.decode(&bytes);
        if malformed {
            return Err(IoError::format(
                &path,
                format!(
                    "text is not valid {}: set `encoding` in the layer's source.join (CP932 for Excel's Japanese CSV)",
                    encoding.name()
                ),
            ));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| IoError::format(&path, e))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut key_at = Vec::new();
        for k in &config.on {
            let i = header.iter().position(|h| h == k).ok_or_else(|| {
                IoError::format(
                    &path,
                    format!("has no key column `{k}` (columns: {})", header.join(", ")),
                )
            })?;
            key_at.push(i);
        }
        let columns: Vec<String> = header
            .iter()
            .enumerate()
            .filter(|(i, _)| !key_at.contains(i))
            .map(|(_, h)| h.clone())
            .collect();
        let mut rows = HashMap::new();
        for (n, record) in reader.records().enumerate() {
            let line = n + 2;
            let record = record.map_err(|e| IoError::format(&path, format!("line {line}: {e}")))?;
            let key: Vec<String> = key_at
                .iter()
                .map(|&i| record[i].trim().to_string())
                .collect();
            let values = (0..record.len())
                .filter(|i| !key_at.contains(i))
                .map(|i| match record[i].trim() {
                    "" => Value::Null,
                    v => Value::Text(v.to_string().into()),
                })
                .collect();
            if let Some((first, _, _)) = rows.insert(key.clone(), (line, values, false)) {
                return Err(IoError::format(
                    &path,
                    format!(
                        "lines {first} and {line} have the same key ({}): the join would be ambiguous",
                        describe(&config.on, &key)
                    ),
                ));
            }
        }
        Ok(Ledger {
            path,
            on: config.on.clone(),
            columns,
            rows,
        })
    }

    /// Adds the matching row's columns to `raw` (nulls when none matches).
    pub fn apply(&mut self, raw: &mut RawFeature) {
        let key: Vec<String> = self
            .on
            .iter()
            .map(|k| match raw.attribute(k) {
                Some(Value::Null) | None => String::new(),
                Some(Value::Text(t)) => t.trim().to_string(),
                Some(v) => v.to_string(),
            })
            .collect();
        match self.rows.get_mut(&key) {
            Some((_, values, matched)) => {
                *matched = true;
                raw.attributes
                    .extend(self.columns.iter().cloned().zip(values.iter().cloned()));
            }
            None => raw
                .attributes
                .extend(self.columns.iter().map(|c| (c.clone(), Value::Null))),
        }
    }

    /// For the report: rows no feature matched, and the first of them.
    pub fn unmatched(&self) -> Option<String> {
        let mut lines: Vec<(usize, &Vec<String>)> = self
            .rows
            .iter()
            .filter(|(_, (_, _, m))| !m)
            .map(|(k, (line, _, _))| (*line, k))
            .collect();
        lines.sort();
        let (line, key) = lines.first()?;
        Some(format!(
            "{}: {} rows match no feature (the first: line {line}, {})",
            self.path.display(),
            lines.len(),
            describe(&self.on, key)
        ))
    }
}

fn describe(on: &[String], key: &[String]) -> String {
    on.iter()
        .zip(key)
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
