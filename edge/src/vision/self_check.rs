//! The known image a model must pass before a camera switches to it (a model pushed from the centre): a frame
//! of OpenCV's `vtest.avi` (frame 300, the same as `tests/data/vision/vtest_300.jpg`) in which the shipped
//! NanoDet-g finds 6 persons at 0.45. A model that loads but decodes to nothing useful — wrong layout, wrong
//! normalisation, a broken quantisation — finds no person there and is refused, and the camera keeps counting
//! with the model it had.

use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;

use super::detect::Class;
use super::model::Detector;

const IMAGE: &[u8] = include_bytes!("../../assets/selfcheck.jpg");

/// Score at which the check counts persons (whatever the camera's threshold: a camera set to 0.9 still needs
/// a model that sees people).
pub const SCORE: f32 = 0.25;
/// How many persons the check accepts at [`SCORE`]: there are 6 to 8 people in the frame; a model that sees none
/// or dozens is broken (the shipped NanoDet-g finds 8, the SSD person model 3).
pub const PERSONS: std::ops::RangeInclusive<usize> = 1..=30;

/// Runs `det` on the known image; the persons it found at [`SCORE`], or why it failed.
pub fn run(det: &mut Detector) -> Result<usize, String> {
    let buf = Vector::<u8>::from_slice(IMAGE);
    let img: Mat = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR).map_err(|e| e.to_string())?;
    if img.empty() {
        return Err("the self-check image did not decode".into());
    }
    let dets = det.detect(&img).map_err(|e| format!("the model failed on the self-check image: {e}"))?;
    let persons = dets.iter().filter(|d| d.class == Class::Person && d.score >= SCORE).count();
    if !PERSONS.contains(&persons) {
        return Err(format!(
            "self-check: {persons} person(s) found on the known image at {SCORE}, want {} to {}",
            PERSONS.start(),
            PERSONS.end()
        ));
    }
    Ok(persons)
}
