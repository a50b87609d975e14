//! Filling model input tensors from resized BGR pixels. Pure; OpenCV only does the resize.

use super::manifest::{ChannelOrder, ModelSpec};

/// Writes a `new_w × new_h` BGR image (`bgr`, row-major, 3 bytes a pixel) into a `3 × in_h × in_w` CHW
/// float tensor at offset (`pad_x`, `pad_y`), normalised `(v − mean) / std` in the model's channel order;
/// the rest is the normalised padding value.
#[allow(clippy::too_many_arguments)]
pub fn fill_chw(
    out: &mut Vec<f32>,
    bgr: &[u8],
    new_w: usize,
    new_h: usize,
    pad_x: usize,
    pad_y: usize,
    (in_w, in_h): (usize, usize),
    spec: &ModelSpec,
) {
    let plane = in_w * in_h;
    out.clear();
    out.resize(3 * plane, 0.0);
    // Model channel c takes source byte src[c] of each BGR pixel.
    let src = match spec.channel_order {
        ChannelOrder::Bgr => [0usize, 1, 2],
        ChannelOrder::Rgb => [2usize, 1, 0],
    };
    for c in 0..3 {
        let inv = 1.0 / spec.std[c];
        let pad = (spec.pad_value as f32 - spec.mean[c]) * inv;
        let ch = &mut out[c * plane..(c + 1) * plane];
        ch.fill(pad);
        for y in 0..new_h.min(in_h - pad_y.min(in_h)) {
            let row = &bgr[y * new_w * 3..(y + 1) * new_w * 3];
            let dst = &mut ch[(y + pad_y) * in_w + pad_x..];
            for (x, px) in row.chunks_exact(3).enumerate().take(in_w - pad_x.min(in_w)) {
                dst[x] = (px[src[c]] as f32 - spec.mean[c]) * inv;
            }
        }
    }
}

/// Writes a `size × size` BGR image as an NHWC uint8 tensor in the model's channel order.
pub fn fill_hwc_u8(out: &mut Vec<u8>, bgr: &[u8], spec: &ModelSpec) {
    out.clear();
    match spec.channel_order {
        ChannelOrder::Bgr => out.extend_from_slice(bgr),
        ChannelOrder::Rgb => {
            out.reserve(bgr.len());
            for px in bgr.chunks_exact(3) {
                out.extend_from_slice(&[px[2], px[1], px[0]]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::manifest::Layout;

    fn spec(order: ChannelOrder) -> ModelSpec {
        ModelSpec {
            name: "t".into(),
            file: "t.onnx".into(),
            version: String::new(),
            sha256: String::new(),
            layout: Layout::NanodetGfl,
            input_size: 4,
            dynamic_hw: false,
            channel_order: order,
            mean: [10.0, 20.0, 30.0],
            std: [2.0, 4.0, 5.0],
            pad_value: 0,
            classes: 1,
            person_classes: vec![0],
            vehicle_classes: vec![],
            licence: String::new(),
            source: String::new(),
        }
    }

    #[test]
    fn chw_normalises_and_pads() {
        // A 2×1 image (B,G,R) = (12,24,35), (14,28,40) placed at (1, 2) in a 4×4 input.
        let img = [12u8, 24, 35, 14, 28, 40];
        let mut out = Vec::new();
        fill_chw(&mut out, &img, 2, 1, 1, 2, (4, 4), &spec(ChannelOrder::Bgr));
        assert_eq!(out.len(), 48);
        assert_eq!(out[0], -5.0, "padding is (0 − 10) / 2");
        assert_eq!((out[2 * 4 + 1], out[2 * 4 + 2]), (1.0, 2.0), "B plane: (12 − 10)/2, (14 − 10)/2");
        assert_eq!(out[16 + 2 * 4 + 1], 1.0, "G plane: (24 − 20)/4");
        assert_eq!(out[32 + 2 * 4 + 2], 2.0, "R plane: (40 − 30)/5");
        fill_chw(&mut out, &img, 2, 1, 1, 2, (4, 4), &spec(ChannelOrder::Rgb));
        assert_eq!(out[2 * 4 + 1], (35.0 - 10.0) / 2.0, "RGB order puts red in plane 0");
        // A 4 wide × 3 high input: rows are 4 long, planes 12.
        fill_chw(&mut out, &img, 2, 1, 1, 2, (4, 3), &spec(ChannelOrder::Bgr));
        assert_eq!(out.len(), 36);
        assert_eq!((out[2 * 4 + 1], out[12 + 2 * 4 + 1], out[2 * 4]), (1.0, 1.0, -5.0));
        let mut u = Vec::new();
        fill_hwc_u8(&mut u, &img, &spec(ChannelOrder::Rgb));
        assert_eq!(u, [35, 24, 12, 40, 28, 14]);
    }
}
