//! Clipping to the buffered tile square, in tile coordinates (f64).
//!
//! Polygons use Sutherland-Hodgman against the four edges, which keeps ring
//! orientation and, against a convex window, yields one ring per input ring
//! (possibly with zero-width runs along the window edge, which renderers and the
//! MVT spec accept). Lines use Liang-Barsky per segment, split where they leave.

pub type Pt = [f64; 2];

#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub min: f64,
    pub max: f64,
}

impl Window {
    fn inside(&self, p: Pt, edge: usize) -> bool {
        match edge {
            0 => p[0] >= self.min,
            1 => p[0] <= self.max,
            2 => p[1] >= self.min,
            _ => p[1] <= self.max,
        }
    }

    fn cross(&self, a: Pt, b: Pt, edge: usize) -> Pt {
        let (axis, bound) = match edge {
            0 => (0, self.min),
            1 => (0, self.max),
            2 => (1, self.min),
            _ => (1, self.max),
        };
        let t = (bound - a[axis]) / (b[axis] - a[axis]);
        let mut p = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
        p[axis] = bound;
        p
    }

    pub fn contains_box(&self, min: Pt, max: Pt) -> bool {
        min[0] >= self.min && min[1] >= self.min && max[0] <= self.max && max[1] <= self.max
    }

    pub fn misses_box(&self, min: Pt, max: Pt) -> bool {
        max[0] < self.min || max[1] < self.min || min[0] > self.max || min[1] > self.max
    }
}

/// Clips a closed ring (first point repeated last, or not); returns an open ring.
pub fn clip_ring(ring: &[Pt], w: &Window) -> Vec<Pt> {
    let mut current: Vec<Pt> = ring.to_vec();
    if current.len() > 1 && current.first() == current.last() {
        current.pop();
    }
    for edge in 0..4 {
        if current.is_empty() {
            break;
        }
        let input = std::mem::take(&mut current);
        let mut prev = *input.last().unwrap_or(&[0.0, 0.0]);
        for &p in &input {
            let p_in = w.inside(p, edge);
            let prev_in = w.inside(prev, edge);
            if p_in {
                if !prev_in {
                    current.push(w.cross(prev, p, edge));
                }
                current.push(p);
            } else if prev_in {
                current.push(w.cross(prev, p, edge));
            }
            prev = p;
        }
    }
    current
}

/// Clips a line string; returns the pieces inside the window.
pub fn clip_line(line: &[Pt], w: &Window) -> Vec<Vec<Pt>> {
    let mut pieces = Vec::new();
    let mut current: Vec<Pt> = Vec::new();
    for seg in line.windows(2) {
        match clip_segment(seg[0], seg[1], w) {
            Some((a, b, a_moved, b_moved)) => {
                if current.is_empty() || a_moved {
                    if current.len() > 1 {
                        pieces.push(std::mem::take(&mut current));
                    }
                    current.clear();
                    current.push(a);
                }
                current.push(b);
                if b_moved {
                    pieces.push(std::mem::take(&mut current));
                }
            }
            None => {
                if current.len() > 1 {
                    pieces.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    if current.len() > 1 {
        pieces.push(current);
    }
    pieces
}

/// Liang-Barsky. Returns the clipped segment and whether each end was moved.
fn clip_segment(a: Pt, b: Pt, w: &Window) -> Option<(Pt, Pt, bool, bool)> {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let mut t0: f64 = 0.0;
    let mut t1: f64 = 1.0;
    for (p, q) in [
        (-dx, a[0] - w.min),
        (dx, w.max - a[0]),
        (-dy, a[1] - w.min),
        (dy, w.max - a[1]),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                if r > t1 {
                    return None;
                }
                t0 = t0.max(r);
            } else {
                if r < t0 {
                    return None;
                }
                t1 = t1.min(r);
            }
        }
    }
    let at = |t: f64| [a[0] + t * dx, a[1] + t * dy];
    Some((
        if t0 > 0.0 { at(t0) } else { a },
        if t1 < 1.0 { at(t1) } else { b },
        t0 > 0.0,
        t1 < 1.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        min: 0.0,
        max: 10.0,
    };

    #[test]
    fn ring_is_cut_to_the_window() {
        let ring = [
            [-5.0, -5.0],
            [5.0, -5.0],
            [5.0, 5.0],
            [-5.0, 5.0],
            [-5.0, -5.0],
        ];
        let out = clip_ring(&ring, &W);
        let area: f64 = out
            .iter()
            .zip(out.iter().cycle().skip(1))
            .map(|(a, b)| a[0] * b[1] - b[0] * a[1])
            .sum::<f64>()
            / 2.0;
        assert!((area - 25.0).abs() < 1e-9, "{out:?}");
    }

    #[test]
    fn line_leaving_and_returning_is_split() {
        let line = [[1.0, 1.0], [1.0, 20.0], [5.0, 20.0], [5.0, 1.0]];
        let pieces = clip_line(&line, &W);
        assert_eq!(
            pieces,
            vec![vec![[1.0, 1.0], [1.0, 10.0]], vec![[5.0, 10.0], [5.0, 1.0]]]
        );
        assert!(clip_line(&[[20.0, 20.0], [30.0, 30.0]], &W).is_empty());
    }
}
