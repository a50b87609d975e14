//! Plane geometry for cameras: points in polygons, polygon areas and the image → ground homography.
//! Pure and synchronous; the numbers in the tests are worked by hand.

/// A point in image pixels or in ground metres.
pub type Point = [f64; 2];

/// True when `p` is inside `poly` (even–odd rule; points on an edge may go either way).
pub fn contains(poly: &[Point], p: Point) -> bool {
    let mut inside = false;
    let n = poly.len();
    if n < 3 {
        return false;
    }
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (poly[i], poly[j]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
            if p[0] < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// Unsigned area of a simple polygon (shoelace formula), in the square of its unit.
pub fn area(poly: &[Point]) -> f64 {
    let n = poly.len();
    if n < 3 {
        return 0.0;
    }
    let mut s = 0.0;
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + 1) % n]);
        s += a[0] * b[1] - b[0] * a[1];
    }
    (s / 2.0).abs()
}

/// Why a homography could not be estimated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HomographyError {
    /// Fewer than 4 correspondences, or the two lists differ in length.
    #[error("need at least 4 image/ground point pairs of equal count, got {image} image and {ground} ground points")]
    TooFewPoints {
        /// Image points given.
        image: usize,
        /// Ground points given.
        ground: usize,
    },
    /// The points are degenerate (e.g. three on a line).
    #[error("the calibration points are degenerate (collinear or repeated)")]
    Degenerate,
}

/// A 3×3 planar homography mapping image pixels to ground metres, `h[2][2] = 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography {
    /// Row-major matrix.
    pub h: [[f64; 3]; 3],
}

impl Homography {
    /// Least-squares estimate from 4 or more `image[i] → ground[i]` pairs (DLT with `h33 = 1`, solved
    /// through the normal equations). Points are normalised first for numerical stability.
    pub fn fit(image: &[Point], ground: &[Point]) -> Result<Homography, HomographyError> {
        if image.len() < 4 || image.len() != ground.len() {
            return Err(HomographyError::TooFewPoints { image: image.len(), ground: ground.len() });
        }
        let (ti, ni) = normaliser(image);
        let (tg, ng) = normaliser(ground);
        let mut ata = [[0.0f64; 8]; 8];
        let mut atb = [0.0f64; 8];
        for (p, q) in ni.iter().zip(&ng) {
            let (x, y, u, v) = (p[0], p[1], q[0], q[1]);
            let rows =
                [([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y], u), ([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y], v)];
            for (r, b) in rows {
                for i in 0..8 {
                    atb[i] += r[i] * b;
                    for j in 0..8 {
                        ata[i][j] += r[i] * r[j];
                    }
                }
            }
        }
        let s = solve8(ata, atb).ok_or(HomographyError::Degenerate)?;
        let hn = [[s[0], s[1], s[2]], [s[3], s[4], s[5]], [s[6], s[7], 1.0]];
        // H = Tg⁻¹ · Hn · Ti
        let h = mul(&mul(&inverse_similarity(&tg), &hn), &ti);
        if h[2][2].abs() < 1e-12 || !h.iter().flatten().all(|v| v.is_finite()) {
            return Err(HomographyError::Degenerate);
        }
        let k = h[2][2];
        let h = h.map(|row| row.map(|v| v / k));
        Ok(Homography { h })
    }

    /// Maps an image point to the ground; `None` at or behind the horizon.
    pub fn apply(&self, p: Point) -> Option<Point> {
        let h = &self.h;
        let w = h[2][0] * p[0] + h[2][1] * p[1] + h[2][2];
        if w.abs() < 1e-12 {
            return None;
        }
        Some([(h[0][0] * p[0] + h[0][1] * p[1] + h[0][2]) / w, (h[1][0] * p[0] + h[1][1] * p[1] + h[1][2]) / w])
    }

    /// Ground area (m²) of an image polygon: a homography maps straight edges to straight edges, so the
    /// mapped vertices bound the ground polygon exactly. `None` if a vertex maps beyond the horizon.
    pub fn ground_area(&self, poly: &[Point]) -> Option<f64> {
        let mapped: Option<Vec<Point>> = poly.iter().map(|p| self.apply(*p)).collect();
        mapped.map(|m| area(&m))
    }
}

/// Similarity transform moving the centroid to 0 and the mean distance to √2 (Hartley normalisation).
fn normaliser(pts: &[Point]) -> ([[f64; 3]; 3], Vec<Point>) {
    let n = pts.len() as f64;
    let cx = pts.iter().map(|p| p[0]).sum::<f64>() / n;
    let cy = pts.iter().map(|p| p[1]).sum::<f64>() / n;
    let d = pts.iter().map(|p| ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt()).sum::<f64>() / n;
    let s = if d > 1e-12 { std::f64::consts::SQRT_2 / d } else { 1.0 };
    let t = [[s, 0.0, -s * cx], [0.0, s, -s * cy], [0.0, 0.0, 1.0]];
    (t, pts.iter().map(|p| [s * (p[0] - cx), s * (p[1] - cy)]).collect())
}

fn inverse_similarity(t: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let s = t[0][0];
    [[1.0 / s, 0.0, -t[0][2] / s], [0.0, 1.0 / s, -t[1][2] / s], [0.0, 0.0, 1.0]]
}

fn mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    r
}

/// Gaussian elimination with partial pivoting; `None` if singular.
#[allow(clippy::needless_range_loop)]
fn solve8(mut a: [[f64; 8]; 8], mut b: [f64; 8]) -> Option<[f64; 8]> {
    for c in 0..8 {
        let piv = (c..8).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[piv][c].abs() < 1e-10 {
            return None;
        }
        a.swap(c, piv);
        b.swap(c, piv);
        for r in c + 1..8 {
            let f = a[r][c] / a[c][c];
            for k in c..8 {
                a[r][k] -= f * a[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = [0.0; 8];
    for r in (0..8).rev() {
        let s: f64 = (r + 1..8).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_and_area_worked_numbers() {
        // An L-shaped zone: 4×4 square minus its top-right 2×2 quarter → 12 square units.
        let l = [[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [2.0, 2.0], [2.0, 4.0], [0.0, 4.0]];
        assert_eq!(area(&l), 12.0);
        assert!(contains(&l, [1.0, 3.0]));
        assert!(contains(&l, [3.0, 1.0]));
        assert!(!contains(&l, [3.0, 3.0]), "the cut-out corner is outside");
        assert!(!contains(&l, [5.0, 1.0]));
        assert_eq!(area(&[[0.0, 0.0], [1.0, 1.0]]), 0.0);
    }

    #[test]
    fn homography_recovers_a_known_perspective() {
        // Ground rectangle 10 m × 20 m seen in perspective: the far edge (y = 20 m) is 200 px wide
        // at row 100, the near edge 600 px wide at row 500.
        let image = [[100.0, 500.0], [700.0, 500.0], [500.0, 100.0], [300.0, 100.0]];
        let ground = [[0.0, 0.0], [10.0, 0.0], [10.0, 20.0], [0.0, 20.0]];
        let h = Homography::fit(&image, &ground).unwrap();
        for (i, g) in image.iter().zip(&ground) {
            let m = h.apply(*i).unwrap();
            assert!((m[0] - g[0]).abs() < 1e-6 && (m[1] - g[1]).abs() < 1e-6, "{i:?} → {m:?}, want {g:?}");
        }
        // The trapezoid's pixel area is 160,000 px², but its ground area is the 200 m² rectangle.
        assert_eq!(area(&image), 160_000.0);
        assert!((h.ground_area(&image).unwrap() - 200.0).abs() < 1e-6);
        // The centre line: the image midpoint of the near edge is the ground point (5, 0).
        let m = h.apply([400.0, 500.0]).unwrap();
        assert!((m[0] - 5.0).abs() < 1e-9 && m[1].abs() < 1e-9);
    }

    #[test]
    fn homography_rejects_bad_calibration() {
        let three = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        assert!(matches!(Homography::fit(&three, &three), Err(HomographyError::TooFewPoints { .. })));
        let line = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
        assert_eq!(Homography::fit(&line, &line), Err(HomographyError::Degenerate));
    }
}
