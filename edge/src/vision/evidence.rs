//! Evidence snapshots for a ticket. Frames never leave the edge by default; when a snapshot is asked for,
//! every person is blurred beyond recognition and the JPEG is kept under a size limit.

use opencv::core::{Mat, Rect, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

use super::detect::{Class, Detection};

/// Why a snapshot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// OpenCV failed.
    #[error("opencv: {0}")]
    OpenCv(#[from] opencv::Error),
    /// Even the smallest quality and size did not fit.
    #[error("snapshot does not fit in {0} bytes")]
    TooLarge(usize),
}

/// A JPEG of `frame` with every person box (grown by 10 %) heavily blurred, at most `max_bytes` long:
/// quality steps down from 85, then the image is halved, until it fits.
pub fn blurred_jpeg(frame: &Mat, dets: &[Detection], max_bytes: usize) -> Result<Vec<u8>, EvidenceError> {
    let mut img = frame.try_clone()?;
    let (w, h) = (img.cols(), img.rows());
    for d in dets.iter().filter(|d| d.class == Class::Person) {
        let (bw, bh) = (d.x2 - d.x1, d.y2 - d.y1);
        let x1 = ((d.x1 - bw * 0.1).floor() as i32).clamp(0, w - 1);
        let y1 = ((d.y1 - bh * 0.1).floor() as i32).clamp(0, h - 1);
        let x2 = ((d.x2 + bw * 0.1).ceil() as i32).clamp(x1 + 1, w);
        let y2 = ((d.y2 + bh * 0.1).ceil() as i32).clamp(y1 + 1, h);
        let rect = Rect::new(x1, y1, x2 - x1, y2 - y1);
        let src = Mat::roi(&img, rect)?.try_clone()?;
        let mut small = Mat::default();
        // Pixelate (down to ~6 px across) then blur: no face or clothing detail survives.
        let sw = (rect.width / 8).clamp(1, 6);
        let sh = (rect.height / 8).clamp(1, 12);
        imgproc::resize(&src, &mut small, Size::new(sw, sh), 0.0, 0.0, imgproc::INTER_AREA)?;
        let mut big = Mat::default();
        imgproc::resize(&small, &mut big, Size::new(rect.width, rect.height), 0.0, 0.0, imgproc::INTER_LINEAR)?;
        let mut blurred = Mat::default();
        let k = ((rect.width.min(rect.height) / 2) | 1).max(3);
        imgproc::gaussian_blur_def(&big, &mut blurred, Size::new(k, k), 0.0)?;
        let mut dst = Mat::roi_mut(&mut img, rect)?;
        blurred.copy_to(&mut dst)?;
    }
    let mut scaled = img;
    loop {
        for q in [85, 70, 55, 40, 25] {
            let mut buf = Vector::<u8>::new();
            let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, q]);
            imgcodecs::imencode(".jpg", &scaled, &mut buf, &params)?;
            if buf.len() <= max_bytes {
                return Ok(buf.to_vec());
            }
        }
        if scaled.cols() < 64 {
            return Err(EvidenceError::TooLarge(max_bytes));
        }
        let mut half = Mat::default();
        imgproc::resize(
            &scaled,
            &mut half,
            Size::new(scaled.cols() / 2, scaled.rows() / 2),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        scaled = half;
    }
}
