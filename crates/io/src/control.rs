//! Placing a map drawn in arbitrary local coordinates (任意座標系) on the earth
//! from control points: pairs of local and zone coordinates of the same marks.
//!
//! Two transformations are fitted by least squares: the Helmert (similarity)
//! transformation, which keeps shapes (one scale, one rotation, a shift), and
//! the affine one, which also absorbs a paper map's uneven shrinking. Every
//! control point's residual is reported, so a surveyor can see a mistyped
//! point instead of a silently distorted sheet.
//!
//! Coordinates follow the MOJ XML convention: X is northing, Y is easting.

use serde::Deserialize;
use std::path::Path;

/// The control point file of a layer: one entry per 任意座標系 sheet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPointFile {
    #[serde(default)]
    pub sheet: Vec<SheetControl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SheetControl {
    /// The sheet's 地図名, as in the XML.
    pub map: String,
    /// The zone the control points' `zone` coordinates are in (`EPSG:6670`).
    pub crs: String,
    #[serde(default)]
    pub method: Method,
    /// A sheet whose largest residual exceeds this (metres) is refused.
    #[serde(default = "default_max_residual")]
    pub max_residual_m: f64,
    pub points: Vec<ControlPoint>,
}

fn default_max_residual() -> f64 {
    0.1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPoint {
    pub name: String,
    /// [X, Y] in the sheet's local coordinates.
    pub local: [f64; 2],
    /// [X, Y] in the zone (`crs`).
    pub zone: [f64; 2],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Similarity: scale, rotation and shift (4 parameters).
    #[default]
    Helmert,
    /// Affine: 6 parameters.
    Affine,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Helmert => "Helmert",
            Method::Affine => "affine",
        })
    }
}

impl ControlPointFile {
    pub fn read(path: &Path) -> Result<ControlPointFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        toml::from_str(&text).map_err(|e| e.to_string())
    }

    pub fn for_sheet(&self, map: &str) -> Option<&SheetControl> {
        self.sheet.iter().find(|s| s.map == map)
    }
}

/// A fitted transformation: `X' = a0 + a1·X + a2·Y`, `Y' = b0 + b1·X + b2·Y`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub method: Method,
    a: [f64; 3],
    b: [f64; 3],
    /// Per control point: its name and residual in metres.
    pub residuals: Vec<(String, f64)>,
}

impl Fitted {
    /// Local (X, Y) to zone (X, Y).
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a[0] + self.a[1] * x + self.a[2] * y,
            self.b[0] + self.b[1] * x + self.b[2] * y,
        )
    }

    pub fn max_residual(&self) -> f64 {
        self.residuals.iter().map(|r| r.1).fold(0.0, f64::max)
    }

    /// "K1 0.3 mm, K2 0.1 mm, ..." for reports.
    pub fn residual_list(&self) -> String {
        self.residuals
            .iter()
            .map(|(n, r)| format!("{n} {:.2} mm", r * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Fits `method` to the control points (at least three, not on one line).
pub fn fit(method: Method, points: &[ControlPoint]) -> Result<Fitted, String> {
    if points.len() < 3 {
        return Err(format!(
            "{} control points given; at least 3 are needed",
            points.len()
        ));
    }
    if let Some(p) = points
        .iter()
        .find(|p| !p.local.iter().chain(&p.zone).all(|v| v.is_finite()))
    {
        return Err(format!(
            "control point {}: a coordinate is not a number",
            p.name
        ));
    }
    // Centred sums keep the normal equations well conditioned for zone
    // coordinates of a hundred kilometres.
    let n = points.len() as f64;
    let mean = |f: &dyn Fn(&ControlPoint) -> f64| points.iter().map(f).sum::<f64>() / n;
    let (lx, ly) = (mean(&|p| p.local[0]), mean(&|p| p.local[1]));
    let (zx, zy) = (mean(&|p| p.zone[0]), mean(&|p| p.zone[1]));
    let centred: Vec<[f64; 4]> = points
        .iter()
        .map(|p| {
            [
                p.local[0] - lx,
                p.local[1] - ly,
                p.zone[0] - zx,
                p.zone[1] - zy,
            ]
        })
        .collect();
    let (sxx, syy, sxy) = centred.iter().fold((0.0, 0.0, 0.0), |(a, b, c), p| {
        (a + p[0] * p[0], b + p[1] * p[1], c + p[0] * p[1])
    });
    let det = sxx * syy - sxy * sxy;
    if det <= 1e-9 * (sxx + syy).powi(2) {
        return Err("the control points lie on one line: they cannot fix a sheet".into());
    }
    let ([a1, a2], [b1, b2]) = match method {
        Method::Helmert => {
            // X' = a·X − b·Y, Y' = b·X + a·Y (centred).
            let norm = sxx + syy;
            let a = centred
                .iter()
                .map(|p| p[0] * p[2] + p[1] * p[3])
                .sum::<f64>()
                / norm;
            let b = centred
                .iter()
                .map(|p| p[0] * p[3] - p[1] * p[2])
                .sum::<f64>()
                / norm;
            ([a, -b], [b, a])
        }
        Method::Affine => {
            let solve = |k: usize| {
                let sx = centred.iter().map(|p| p[0] * p[k]).sum::<f64>();
                let sy = centred.iter().map(|p| p[1] * p[k]).sum::<f64>();
                [(syy * sx - sxy * sy) / det, (sxx * sy - sxy * sx) / det]
            };
            (solve(2), solve(3))
        }
    };
    let mut fitted = Fitted {
        method,
        a: [zx - a1 * lx - a2 * ly, a1, a2],
        b: [zy - b1 * lx - b2 * ly, b1, b2],
        residuals: Vec::new(),
    };
    fitted.residuals = points
        .iter()
        .map(|p| {
            let (x, y) = fitted.apply(p.local[0], p.local[1]);
            (p.name.clone(), (x - p.zone[0]).hypot(y - p.zone[1]))
        })
        .collect();
    Ok(fitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(f: impl Fn(f64, f64) -> (f64, f64)) -> Vec<ControlPoint> {
        [(0.0, 0.0), (120.0, 10.0), (30.0, 250.0), (200.0, 180.0)]
            .iter()
            .enumerate()
            .map(|(i, &(x, y))| {
                let (zx, zy) = f(x, y);
                ControlPoint {
                    name: format!("K{}", i + 1),
                    local: [x, y],
                    zone: [zx, zy],
                }
            })
            .collect()
    }

    #[test]
    fn a_known_similarity_is_recovered() {
        let (s, t) = (1.0003_f64, 0.37_f64);
        let truth = |x: f64, y: f64| {
            (
                -12_345.678 + s * (t.cos() * x - t.sin() * y),
                23_456.789 + s * (t.sin() * x + t.cos() * y),
            )
        };
        for method in [Method::Helmert, Method::Affine] {
            let fitted = fit(method, &points(truth)).unwrap();
            assert!(fitted.max_residual() < 1e-6, "{method}: {fitted:?}");
            let (x, y) = fitted.apply(77.0, 133.0);
            let (tx, ty) = truth(77.0, 133.0);
            assert!((x - tx).hypot(y - ty) < 1e-6);
        }
    }

    #[test]
    fn a_shear_is_only_absorbed_by_the_affine_fit() {
        let sheared = |x: f64, y: f64| (1000.0 + x + 0.01 * y, 2000.0 + y);
        let affine = fit(Method::Affine, &points(sheared)).unwrap();
        assert!(affine.max_residual() < 1e-9);
        let helmert = fit(Method::Helmert, &points(sheared)).unwrap();
        assert!(helmert.max_residual() > 0.1, "{helmert:?}");
    }

    #[test]
    fn too_few_or_collinear_points_are_refused() {
        let mut p = points(|x, y| (x, y));
        p.truncate(2);
        assert!(fit(Method::Helmert, &p).unwrap_err().contains("at least 3"));
        let line: Vec<_> = (0..4)
            .map(|i| ControlPoint {
                name: format!("L{i}"),
                local: [i as f64, 2.0 * i as f64],
                zone: [i as f64, 2.0 * i as f64],
            })
            .collect();
        assert!(fit(Method::Affine, &line).unwrap_err().contains("one line"));
    }
}
