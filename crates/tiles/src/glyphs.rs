//! Glyph PBFs for map labels: the `glyphs` URL of a MapLibre style
//! (`/fonts/{fontstack}/{start}-{end}.pbf`).
//!
//! MapLibre draws text from signed distance fields (SDF) of each glyph, 24 px
//! to the em with a 3 px border, fetched in ranges of 256 code points. chizu
//! renders them from the font files it is given (TrueType, OpenType or
//! collections such as Debian's `NotoSansCJK-Regular.ttc`), so labels work
//! with no font server on the internet. The distance field follows Mapbox's
//! TinySDF: exact Euclidean distance transform (Felzenszwalb & Huttenlocher)
//! over the antialiased coverage, radius 8 px, cutoff 0.25, which is what
//! MapLibre's shader expects (the edge at 192/255).

use crate::pbf;
use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Pixels to the em that MapLibre expects of server glyphs.
const EM_PX: f32 = 24.0;
/// Border around each bitmap, in pixels.
const BUFFER: usize = 3;
/// Distance (px) that maps to the full 0..255 range.
const RADIUS: f64 = 8.0;
/// Share of the byte range used for the outside of the glyph.
const CUTOFF: f64 = 0.25;
/// MapLibre asks for 256 code points at a time.
pub const RANGE_SIZE: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum GlyphError {
    #[error("cannot read font file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a font file chizu can read")]
    NotAFont { path: PathBuf },
    #[error("no font is loaded, so labels cannot be drawn (start the server with --fonts)")]
    NoFonts,
    #[error("a glyph range starts at a multiple of 256 and spans 256 code points, below U+10000")]
    BadRange,
}

/// A font stack as resolved to loaded faces (indices, in order of preference).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FontStack(Vec<usize>);

/// One face of a font file (a collection holds several).
struct Face {
    name: String,
    data: Arc<memmap2::Mmap>,
    index: u32,
}

/// The fonts a server draws labels with, by name ("Noto Sans CJK JP Regular").
#[derive(Default)]
pub struct FontLibrary {
    faces: Vec<Face>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for FontLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl FontLibrary {
    /// Loads font files, or every `.ttf`, `.otf`, `.ttc` and `.otc` file of a
    /// directory. The first face loaded is the fallback for stacks that name
    /// no loaded font, the way a browser falls back to its default font.
    pub fn load(paths: &[PathBuf]) -> Result<Self, GlyphError> {
        let mut library = FontLibrary::default();
        for path in paths {
            if path.is_dir() {
                let entries = std::fs::read_dir(path).map_err(|source| GlyphError::Read {
                    path: path.clone(),
                    source,
                })?;
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_font_file(p))
                    .collect();
                files.sort();
                for file in files {
                    library.add_file(&file)?;
                }
            } else {
                library.add_file(path)?;
            }
        }
        Ok(library)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), GlyphError> {
        let read_error = |source| GlyphError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        // Mapped, not read: the CJK collections are ~20 MB each, and only the
        // pages of the glyphs labels ask for are ever touched.
        // SAFETY: font files are installed packages, not rewritten while the
        // server runs; a truncated file would fault, as reading it would fail.
        let data = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(read_error)?);
        let count = ttf_parser::fonts_in_collection(&data).unwrap_or(1);
        let before = self.faces.len();
        for index in 0..count {
            let Ok(face) = ttf_parser::Face::parse(&data, index) else {
                continue;
            };
            let Some(name) = face_name(&face) else {
                continue;
            };
            if self.by_name.contains_key(&name) {
                continue;
            }
            self.by_name.insert(name.clone(), self.faces.len());
            self.faces.push(Face {
                name,
                data: data.clone(),
                index,
            });
        }
        if self.faces.len() == before && !self.faces.iter().any(|f| Arc::ptr_eq(&f.data, &data)) {
            return Err(GlyphError::NotAFont {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Names of the loaded faces, in load order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.faces.iter().map(|f| f.name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    /// The faces a comma-separated font stack resolves to: the named faces
    /// that are loaded, in order, then the fallback face. Requests for stacks
    /// that resolve alike are one and the same (and share a cache entry, so
    /// made-up stack names cannot fill a cache).
    pub fn resolve(&self, stack: &str) -> FontStack {
        let mut faces: Vec<usize> = Vec::new();
        for index in stack
            .split(',')
            .filter_map(|name| self.by_name.get(name.trim()))
        {
            if !faces.contains(index) {
                faces.push(*index);
            }
        }
        if !self.faces.is_empty() && !faces.contains(&0) {
            faces.push(0);
        }
        FontStack(faces)
    }

    /// Renders the glyphs of `stack` for code points `start..start + 256` as a
    /// glyphs protobuf. Each code point comes from the first face in the stack
    /// that has it; code points no face has are left out, as MapLibre expects.
    pub fn render_range(
        &self,
        stack: &FontStack,
        start: u32,
        end: u32,
    ) -> Result<Vec<u8>, GlyphError> {
        if !is_range(start, end) {
            return Err(GlyphError::BadRange);
        }
        let faces: Vec<&Face> = stack.0.iter().filter_map(|i| self.faces.get(*i)).collect();
        if faces.is_empty() {
            return Err(GlyphError::NoFonts);
        }
        let name = faces
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let fonts: Vec<FontRef<'_>> = faces
            .iter()
            .filter_map(|f| FontRef::try_from_slice_and_index(&f.data, f.index).ok())
            .collect();
        let mut fontstack = Vec::new();
        pbf::bytes_field(&mut fontstack, 1, name.as_bytes());
        pbf::bytes_field(&mut fontstack, 2, format!("{start}-{end}").as_bytes());
        for code in start..=end {
            let Some(ch) = char::from_u32(code) else {
                continue;
            };
            let Some(font) = fonts.iter().find(|f| f.glyph_id(ch).0 != 0) else {
                continue;
            };
            let glyph = render_glyph(font, ch);
            pbf::bytes_field(&mut fontstack, 3, &glyph.encode(code));
        }
        let mut out = Vec::with_capacity(fontstack.len() + 8);
        pbf::bytes_field(&mut out, 1, &fontstack);
        Ok(out)
    }
}

/// Whether `start-end` is a range MapLibre asks for: 256 code points from a
/// multiple of 256, in the Basic Multilingual Plane.
pub fn is_range(start: u32, end: u32) -> bool {
    start.is_multiple_of(RANGE_SIZE) && end == start + RANGE_SIZE - 1 && start < 0x10000
}

fn is_font_file(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "ttf" | "otf" | "ttc" | "otc"
        )
    })
}

/// "Family Style" from the name table, preferring the typographic names
/// (ids 16 and 17) that group a family's weights, as Martin does.
fn face_name(face: &ttf_parser::Face<'_>) -> Option<String> {
    let find = |id: u16| {
        face.names()
            .into_iter()
            .filter(|n| n.name_id == id && n.is_unicode())
            .find_map(|n| n.to_string())
            .filter(|s| !s.is_empty())
    };
    let family = find(ttf_parser::name_id::TYPOGRAPHIC_FAMILY)
        .or_else(|| find(ttf_parser::name_id::FAMILY))?;
    let style = find(ttf_parser::name_id::TYPOGRAPHIC_SUBFAMILY)
        .or_else(|| find(ttf_parser::name_id::SUBFAMILY))
        .unwrap_or_else(|| "Regular".into());
    Some(format!("{family} {style}"))
}

/// One glyph as MapLibre wants it: metrics in pixels at 24 px to the em, the
/// bitmap `(width + 6) x (height + 6)` bytes of distance field.
#[derive(Debug, Clone, PartialEq)]
pub struct Glyph {
    pub width: u32,
    pub height: u32,
    pub left: i32,
    /// Top of the bitmap relative to the ascender line (usually negative).
    pub top: i32,
    pub advance: u32,
    pub bitmap: Vec<u8>,
}

impl Glyph {
    fn encode(&self, id: u32) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.bitmap.len() + 24);
        pbf::uint_field(&mut buf, 1, id as u64);
        if !self.bitmap.is_empty() {
            pbf::bytes_field(&mut buf, 2, &self.bitmap);
        }
        pbf::uint_field(&mut buf, 3, self.width as u64);
        pbf::uint_field(&mut buf, 4, self.height as u64);
        pbf::uint_field(&mut buf, 5, pbf::zigzag(self.left) as u64);
        pbf::uint_field(&mut buf, 6, pbf::zigzag(self.top) as u64);
        pbf::uint_field(&mut buf, 7, self.advance as u64);
        buf
    }
}

fn render_glyph(font: &FontRef<'_>, ch: char) -> Glyph {
    let units_per_em = font.units_per_em().unwrap_or(1000.0);
    // ab_glyph scales by ascent - descent; MapLibre's 24 px are to the em.
    let scale = PxScale::from(EM_PX * font.height_unscaled() / units_per_em);
    let scaled = font.as_scaled(scale);
    // Rounded up, as FreeType rounds its size metrics (fontnik and Martin agree).
    let ascender = scaled.ascent().ceil() as i32;
    let id = font.glyph_id(ch);
    let advance = scaled.h_advance(id).round().max(0.0) as u32;
    let Some(outlined) = font.outline_glyph(id.with_scale(scale)) else {
        // Spaces and other glyphs with nothing to draw: advance only.
        return Glyph {
            width: 0,
            height: 0,
            left: 0,
            top: -ascender,
            advance,
            bitmap: Vec::new(),
        };
    };
    let bounds = outlined.px_bounds();
    let width = bounds.width().max(0.0) as usize;
    let height = bounds.height().max(0.0) as usize;
    let mut coverage = vec![0f32; width * height];
    outlined.draw(|x, y, c| {
        if let Some(cell) = coverage.get_mut(y as usize * width + x as usize) {
            *cell = c.clamp(0.0, 1.0);
        }
    });
    Glyph {
        width: width as u32,
        height: height as u32,
        left: bounds.min.x as i32,
        top: -(bounds.min.y as i32) - ascender,
        advance,
        bitmap: distance_field(&coverage, width, height),
    }
}

const INF: f64 = 1e20;

/// The signed distance field of an antialiased coverage bitmap, with the
/// border added: 255 deep inside, 192 on the outline, falling to 0 eight
/// pixels outside.
pub fn distance_field(coverage: &[f32], width: usize, height: usize) -> Vec<u8> {
    let (w, h) = (width + 2 * BUFFER, height + 2 * BUFFER);
    let mut outer = vec![INF; w * h];
    let mut inner = vec![0.0; w * h];
    for y in 0..height {
        for x in 0..width {
            let a = coverage[y * width + x] as f64;
            let j = (y + BUFFER) * w + x + BUFFER;
            if a >= 1.0 {
                outer[j] = 0.0;
                inner[j] = INF;
            } else if a > 0.0 {
                // A partly covered pixel: the outline crosses it at about
                // (0.5 - a) px from its centre.
                let d = 0.5 - a;
                outer[j] = if d > 0.0 { d * d } else { 0.0 };
                inner[j] = if d < 0.0 { d * d } else { 0.0 };
            }
        }
    }
    distance_transform(&mut outer, w, h);
    distance_transform(&mut inner, w, h);
    outer
        .iter()
        .zip(&inner)
        .map(|(o, i)| {
            let d = o.sqrt() - i.sqrt();
            (255.0 - 255.0 * (d / RADIUS + CUTOFF))
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// Squared Euclidean distance transform in place: columns, then rows.
fn distance_transform(grid: &mut [f64], width: usize, height: usize) {
    let n = width.max(height);
    let mut f = vec![0.0; n];
    let mut v = vec![0usize; n];
    let mut z = vec![0.0; n + 1];
    for x in 0..width {
        transform_1d(grid, x, width, height, &mut f, &mut v, &mut z);
    }
    for y in 0..height {
        transform_1d(grid, y * width, 1, width, &mut f, &mut v, &mut z);
    }
}

/// Felzenszwalb & Huttenlocher's lower envelope of parabolas along one line.
fn transform_1d(
    grid: &mut [f64],
    offset: usize,
    stride: usize,
    len: usize,
    f: &mut [f64],
    v: &mut [usize],
    z: &mut [f64],
) {
    v[0] = 0;
    z[0] = -INF;
    z[1] = INF;
    f[0] = grid[offset];
    let mut k = 0usize;
    for q in 1..len {
        f[q] = grid[offset + q * stride];
        let q2 = (q * q) as f64;
        let mut s;
        loop {
            let r = v[k];
            s = (f[q] - f[r] + q2 - (r * r) as f64) / (q - r) as f64 / 2.0;
            if s <= z[k] && k > 0 {
                k -= 1;
            } else {
                break;
            }
        }
        if s > z[k] {
            k += 1;
        }
        v[k] = q;
        z[k] = s;
        z[k + 1] = INF;
    }
    let mut k = 0usize;
    for q in 0..len {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let r = v[k];
        let qr = q as f64 - r as f64;
        grid[offset + q * stride] = f[r] + qr * qr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_field_of_a_square() {
        // A 10 x 10 px fully covered square.
        let field = distance_field(&[1.0; 100], 10, 10);
        let w = 10 + 2 * BUFFER;
        assert_eq!(field.len(), w * w);
        let at = |x: usize, y: usize| field[y * w + x];
        // Centre: 5 px inside -> 255 - 255 * (-5/8 + 0.25) = 350 -> 255.
        assert_eq!(at(8, 8), 255);
        // Distances run between pixel centres, so the outline (192) lies
        // halfway between the last inked pixel, 1 px from the nearest blank
        // one: 255 - 255 * (-1/8 + 0.25) = 223 ...
        assert_eq!(at(BUFFER, 8), 223);
        // ... and the first blank pixel, 1 px from the ink: 159.
        assert_eq!(at(BUFFER - 1, 8), 159);
        // The corner of the border is sqrt(18) px away diagonally.
        let d = (18f64).sqrt();
        assert_eq!(at(0, 0), (255.0 - 255.0 * (d / 8.0 + 0.25)).round() as u8);
    }

    #[test]
    fn one_dimensional_transform_matches_brute_force() {
        let input = [INF, 0.0, INF, INF, INF, 0.0, INF, INF, 2.0, INF];
        let mut grid = input;
        let (mut f, mut v, mut z) = (vec![0.0; 10], vec![0; 10], vec![0.0; 11]);
        transform_1d(&mut grid, 0, 1, 10, &mut f, &mut v, &mut z);
        for (q, got) in grid.iter().enumerate() {
            let want = (input.iter().enumerate())
                .map(|(p, v)| v + ((q as f64) - p as f64).powi(2))
                .fold(INF, f64::min);
            assert_eq!(*got, want, "at {q}");
        }
    }

    #[test]
    fn ranges_must_be_whole_blocks() {
        let library = FontLibrary::default();
        let stack = library.resolve("x");
        assert!(matches!(
            library.render_range(&stack, 1, 256),
            Err(GlyphError::BadRange)
        ));
        assert!(matches!(
            library.render_range(&stack, 0, 255),
            Err(GlyphError::NoFonts)
        ));
    }
}
