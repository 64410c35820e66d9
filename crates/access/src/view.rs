//! Callers and views: the pure function from (roles, layer files) to what is visible.

use chizu_core::config::PUBLIC_ROLE;
use chizu_core::cql2::{CompiledExpr, Expr};
use chizu_core::{LayerConfig, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Who is calling. The anonymous caller has exactly the role `public`; every
/// logged-in caller has `public` too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    pub user: Option<String>,
    pub roles: BTreeSet<String>,
}

impl Caller {
    pub fn anonymous() -> Caller {
        Caller {
            user: None,
            roles: BTreeSet::from([PUBLIC_ROLE.to_string()]),
        }
    }

    pub fn user(name: &str, roles: impl IntoIterator<Item = String>) -> Caller {
        let mut set: BTreeSet<String> = roles.into_iter().collect();
        set.insert(PUBLIC_ROLE.to_string());
        Caller {
            user: Some(name.to_string()),
            roles: set,
        }
    }

    /// A caller with these roles and no user (for `chizu publish` and tests).
    pub fn roles(roles: impl IntoIterator<Item = String>) -> Caller {
        let mut set: BTreeSet<String> = roles.into_iter().collect();
        set.insert(PUBLIC_ROLE.to_string());
        Caller {
            user: None,
            roles: set,
        }
    }
}

/// What one caller sees of one layer.
#[derive(Debug, Clone)]
pub struct LayerView {
    pub id: String,
    /// Indices of the visible fields, in schema order.
    pub fields: Vec<usize>,
    /// Rows the caller may see; `None` is every row.
    pub rows: Option<Arc<CompiledExpr>>,
    pub can_export: bool,
    /// Visible fields marked `personal` (their reads are audited).
    pub personal: Vec<usize>,
    /// Equal for equal views of this layer (fields and row filter): the cache key part.
    pub fingerprint: String,
}

impl LayerView {
    pub fn admits(&self, row: &[Value]) -> bool {
        self.rows.as_ref().is_none_or(|f| f.matches(row))
    }

    pub fn shows_field(&self, index: usize) -> bool {
        self.fields.contains(&index)
    }
}

/// Everything one caller may see: layers that are not here do not exist for it.
#[derive(Debug, Clone)]
pub struct View {
    pub caller: Caller,
    /// Shared between callers with the same roles (views are cached per policy version).
    layers: Arc<BTreeMap<String, LayerView>>,
}

impl View {
    /// The pure function at the heart of the permission model.
    pub fn for_caller<'a>(
        caller: &Caller,
        layers: impl IntoIterator<Item = &'a LayerConfig>,
    ) -> View {
        let has = |list: &[String]| list.iter().any(|r| caller.roles.contains(r));
        let mut out = BTreeMap::new();
        for config in layers {
            let access = &config.access;
            if !has(&access.read) {
                continue;
            }
            let fields: Vec<usize> = config
                .fields
                .iter()
                .enumerate()
                .filter(|(_, f)| access.fields.get(&f.name).is_none_or(|roles| has(roles)))
                .map(|(i, _)| i)
                .collect();
            // Roles of the caller that the layer file lists as readers. Each lifts
            // the rows to its filter, or to all rows when it has none.
            let readers: Vec<&String> = access
                .read
                .iter()
                .filter(|r| caller.roles.contains(*r))
                .collect();
            let mut filters = Vec::new();
            let mut unfiltered = false;
            for role in readers {
                match access.rows.get(role) {
                    None => unfiltered = true,
                    Some(text) => filters.push(text),
                }
            }
            let rows = if unfiltered {
                None
            } else {
                // Filters were parsed and checked when the layer file was read; one
                // that fails here admits nothing rather than everything.
                let parts: Vec<Expr> = filters
                    .iter()
                    .map(|t| chizu_core::cql2::parse(t).unwrap_or(Expr::Const(false)))
                    .collect();
                let expr = if parts.len() == 1 {
                    parts.into_iter().next().unwrap_or(Expr::Const(false))
                } else {
                    Expr::Or(parts)
                };
                Some(expr)
            };
            let rows_text = rows
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "*".into());
            let compiled =
                rows.map(|e| Arc::new(e.compile(&config.fields).unwrap_or(Expr::Const(false))));
            let personal = fields
                .iter()
                .copied()
                .filter(|i| config.fields[*i].personal)
                .collect();
            let fingerprint = format!(
                "{}|{}",
                fields
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                rows_text
            );
            out.insert(
                config.id.clone(),
                LayerView {
                    id: config.id.clone(),
                    fields,
                    rows: compiled,
                    can_export: has(&access.export),
                    personal,
                    fingerprint,
                },
            );
        }
        View {
            caller: caller.clone(),
            layers: Arc::new(out),
        }
    }

    /// The same view for another caller with the same roles (a cached view,
    /// handed to the next request): only the caller changes.
    pub fn for_same_roles(&self, caller: &Caller) -> View {
        debug_assert_eq!(caller.roles, self.caller.roles);
        View {
            caller: caller.clone(),
            layers: self.layers.clone(),
        }
    }

    pub fn layer(&self, id: &str) -> Option<&LayerView> {
        self.layers.get(id)
    }

    pub fn layers(&self) -> impl Iterator<Item = &LayerView> {
        self.layers.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chizu_core::{RoleSet, Value};
    use std::path::Path;

    fn roles() -> RoleSet {
        RoleSet::from_toml(
            Path::new("roles.toml"),
            "[roles]\npublic='' \nstaff=''\nwater=''\n",
        )
        .unwrap()
    }

    fn layer(id: &str, access: &str) -> LayerConfig {
        let text = format!(
            r#"id = "{id}"
title = {{ ja = "x" }}
source = {{ path = "x.geojson", format = "geojson", crs = "EPSG:4326" }}
geometry = "line"
zoom = {{ min = 0, max = 22 }}
fields = [ {{ name = "status", type = "text" }}, {{ name = "owner", type = "text", personal = true }}, {{ name = "pressure", type = "text" }} ]
[access]
{access}
"#
        );
        LayerConfig::from_toml(Path::new(&format!("{id}.toml")), &text, &roles()).unwrap()
    }

    #[test]
    fn layers_fields_and_rows_follow_roles() {
        let layers = [
            layer(
                "pipes",
                "read = [\"staff\"]\nfields = { pressure = [\"water\"] }",
            ),
            layer(
                "parcels",
                "read = [\"public\"]\nexport = [\"staff\"]\nfields = { owner = [\"staff\"] }",
            ),
            layer(
                "hazard",
                "read = [\"public\", \"staff\"]\nrows = { public = \"status = 'published'\" }",
            ),
        ];
        let public = View::for_caller(&Caller::anonymous(), &layers);
        assert!(public.layer("pipes").is_none());
        let parcels = public.layer("parcels").unwrap();
        assert_eq!(parcels.fields, vec![0, 2]);
        assert!(parcels.personal.is_empty() && !parcels.can_export);
        let hazard = public.layer("hazard").unwrap();
        let row = |s: &str| vec![Value::Text(s.into()), Value::Null, Value::Null];
        assert!(hazard.admits(&row("published")) && !hazard.admits(&row("draft")));

        let staff = View::for_caller(&Caller::user("a", ["staff".to_string()]), &layers);
        assert_eq!(staff.layer("pipes").unwrap().fields, vec![0, 1]);
        assert_eq!(staff.layer("parcels").unwrap().personal, vec![1]);
        assert!(staff.layer("parcels").unwrap().can_export);
        assert!(staff.layer("hazard").unwrap().admits(&row("draft")));

        let water = View::for_caller(
            &Caller::user("b", ["staff".to_string(), "water".to_string()]),
            &layers,
        );
        assert_eq!(water.layer("pipes").unwrap().fields, vec![0, 1, 2]);
        // Equal views share a fingerprint; different ones do not.
        assert_eq!(
            public.layer("hazard").unwrap().fingerprint,
            View::for_caller(&Caller::roles(["water".to_string()]), &layers)
                .layer("hazard")
                .unwrap()
                .fingerprint
        );
        assert_ne!(
            public.layer("parcels").unwrap().fingerprint,
            staff.layer("parcels").unwrap().fingerprint
        );
    }
}
