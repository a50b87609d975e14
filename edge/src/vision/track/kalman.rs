//! The motion model of a track: a constant-velocity Kalman filter on the box's centre, width and height, each
//! coordinate its own position–velocity pair (ByteTrack's 8-state filter with the cross terms it never uses).
//! Noise scales with the box's height, as in SORT and ByteTrack, so a near person (tall box) may move more
//! pixels per frame than a far one before a detection stops matching its prediction.

/// Process noise per frame: position σ = h / 20, velocity σ = h / 160 (ByteTrack's weights).
const STD_POS: f32 = 1.0 / 20.0;
const STD_VEL: f32 = 1.0 / 160.0;

/// One coordinate: position and velocity with their 2×2 covariance.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    x: f32,
    v: f32,
    /// Covariance [[pp, pv], [pv, vv]].
    pp: f32,
    pv: f32,
    vv: f32,
}

impl Axis {
    fn new(x: f32, scale: f32) -> Self {
        // Unknown velocity: a wide prior, as ByteTrack's initiate (10 × the velocity σ).
        let sp = 2.0 * STD_POS * scale;
        let sv = 10.0 * STD_VEL * scale;
        Axis { x, v: 0.0, pp: sp * sp, pv: 0.0, vv: sv * sv }
    }

    fn predict(&mut self, scale: f32) {
        let q_p = (STD_POS * scale).powi(2);
        let q_v = (STD_VEL * scale).powi(2);
        self.x += self.v;
        // P = F P Fᵀ + Q with F = [[1, 1], [0, 1]].
        let pp = self.pp + 2.0 * self.pv + self.vv + q_p;
        let pv = self.pv + self.vv;
        self.pp = pp;
        self.pv = pv;
        self.vv += q_v;
    }

    fn update(&mut self, z: f32, scale: f32) {
        let r = (STD_POS * scale).powi(2);
        let s = self.pp + r;
        let (kp, kv) = (self.pp / s, self.pv / s);
        let y = z - self.x;
        self.x += kp * y;
        self.v += kv * y;
        let (pp, pv, vv) = (self.pp, self.pv, self.vv);
        self.pp = (1.0 - kp) * pp;
        self.pv = (1.0 - kp) * pv;
        self.vv = vv - kv * pv;
    }
}

/// A box's motion: centre x, centre y, width, height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    axes: [Axis; 4],
}

impl Motion {
    /// Starts from a box `[x1, y1, x2, y2]`.
    pub fn new(b: [f32; 4]) -> Self {
        let m = measure(b);
        let h = m[3].max(1.0);
        Motion { axes: [Axis::new(m[0], h), Axis::new(m[1], h), Axis::new(m[2], h), Axis::new(m[3], h)] }
    }

    /// One frame ahead.
    pub fn predict(&mut self) {
        let h = self.axes[3].x.max(1.0);
        for a in &mut self.axes {
            a.predict(h);
        }
    }

    /// Corrects with a detected box.
    pub fn update(&mut self, b: [f32; 4]) {
        let m = measure(b);
        let h = m[3].max(1.0);
        for (a, z) in self.axes.iter_mut().zip(m) {
            a.update(z, h);
        }
    }

    /// The box as estimated now, `[x1, y1, x2, y2]`.
    pub fn bbox(&self) -> [f32; 4] {
        let [cx, cy, w, h] = self.axes.map(|a| a.x);
        let (w, h) = (w.max(1.0), h.max(1.0));
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
    }

    /// Pixels per frame of the centre.
    pub fn velocity(&self) -> (f32, f32) {
        (self.axes[0].v, self.axes[1].v)
    }
}

fn measure(b: [f32; 4]) -> [f32; 4] {
    [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, b[2] - b[0], b[3] - b[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_steady_walk_and_coasts_on_it() {
        // A 20×60 box walking 4 px/frame to the right.
        let at = |k: f32| [100.0 + 4.0 * k, 50.0, 120.0 + 4.0 * k, 110.0];
        let mut m = Motion::new(at(0.0));
        for k in 1..=12 {
            m.predict();
            m.update(at(k as f32));
        }
        let (vx, vy) = m.velocity();
        assert!((vx - 4.0).abs() < 0.3 && vy.abs() < 0.1, "velocity {vx}, {vy}");
        // Five frames without a detection: the prediction keeps walking, within a pixel of the truth.
        for _ in 0..5 {
            m.predict();
        }
        let b = m.bbox();
        assert!((b[0] - at(17.0)[0]).abs() < 1.5, "{b:?} vs {:?}", at(17.0));
        assert!((b[3] - b[1] - 60.0).abs() < 0.5, "height kept: {b:?}");
    }
}
