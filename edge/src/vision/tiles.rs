//! Sliced inference for drone frames and wide shots: the frame is cut into overlapping tiles, each run
//! through the detector at full model resolution (so a 20-px person in a 4K frame stays ~10 px instead of
//! ~2 px), and the boxes are shifted back and merged with class-wise NMS.

use super::detect::{nms, Detection};

/// A tile in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Left.
    pub x: i32,
    /// Top.
    pub y: i32,
    /// Width.
    pub w: i32,
    /// Height.
    pub h: i32,
}

/// Start offsets of tiles of length `tile` over `len` with at least `overlap` pixels shared by neighbours;
/// the last tile ends exactly at `len`.
fn starts(len: i32, tile: i32, overlap: i32) -> Vec<i32> {
    if len <= tile {
        return vec![0];
    }
    let step = (tile - overlap).max(1);
    let n = ((len - tile) as f32 / step as f32).ceil() as i32 + 1;
    (0..n).map(|i| if n == 1 { 0 } else { ((len - tile) as i64 * i as i64 / (n - 1) as i64) as i32 }).collect()
}

/// Square tiles of side `tile` (clipped to the frame) covering a `w × h` frame, neighbours overlapping by
/// at least `overlap` (a fraction of the tile, 0..0.9).
pub fn grid(w: i32, h: i32, tile: i32, overlap: f32) -> Vec<Tile> {
    let ov = (tile as f32 * overlap.clamp(0.0, 0.9)).round() as i32;
    let mut out = Vec::new();
    for y in starts(h, tile, ov) {
        for x in starts(w, tile, ov) {
            out.push(Tile { x, y, w: tile.min(w - x), h: tile.min(h - y) });
        }
    }
    out
}

/// Shifts each tile's detections (in tile pixels) into frame pixels and merges them with NMS.
pub fn merge(per_tile: Vec<(Tile, Vec<Detection>)>, iou: f32) -> Vec<Detection> {
    let all: Vec<Detection> = per_tile
        .into_iter()
        .flat_map(|(t, ds)| {
            ds.into_iter().map(move |d| Detection {
                x1: d.x1 + t.x as f32,
                x2: d.x2 + t.x as f32,
                y1: d.y1 + t.y as f32,
                y2: d.y2 + t.y as f32,
                ..d
            })
        })
        .collect();
    nms(all, iou)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::detect::Class;

    #[test]
    fn tiles_cover_the_frame_with_overlap() {
        // 1920×1080 with 640-px tiles and 20 % overlap (128 px): 4 columns, 2 rows.
        let g = grid(1920, 1080, 640, 0.2);
        assert_eq!(g.len(), 8, "{g:?}");
        assert_eq!(g[0], Tile { x: 0, y: 0, w: 640, h: 640 });
        assert_eq!(g[3], Tile { x: 1280, y: 0, w: 640, h: 640 }, "the last column ends at the right edge");
        assert_eq!(g[4].y, 440, "the last row ends at the bottom edge");
        let xs: Vec<i32> = g[..4].iter().map(|t| t.x).collect();
        assert!(xs.windows(2).all(|p| p[0] + 640 - p[1] >= 128), "overlap at least 128 px: {xs:?}");
        // A frame smaller than a tile is one clipped tile.
        assert_eq!(grid(300, 200, 640, 0.2), vec![Tile { x: 0, y: 0, w: 300, h: 200 }]);
    }

    #[test]
    fn a_person_on_a_tile_seam_is_counted_once() {
        let d = |x1: f32, x2: f32, score: f32| Detection {
            class: Class::Person,
            raw_class: 0,
            score,
            x1,
            y1: 10.0,
            x2,
            y2: 50.0,
        };
        let t0 = Tile { x: 0, y: 0, w: 640, h: 640 };
        let t1 = Tile { x: 512, y: 0, w: 640, h: 640 };
        // The same person at frame x 600..620 seen by both tiles, plus one only in tile 1.
        let merged =
            merge(vec![(t0, vec![d(600.0, 620.0, 0.8)]), (t1, vec![d(88.0, 108.0, 0.7), d(300.0, 320.0, 0.9)])], 0.5);
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert_eq!((merged[0].x1, merged[1].x1), (812.0, 600.0));
    }
}
